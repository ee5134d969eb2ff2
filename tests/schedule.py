"""The order in which ``pytest -n 2 --dist loadfile`` hands test files to its workers.

xdist's own order puts the files with the most tests first, so a file of a few long tests
(Spark, the simulator's workers, the browser) came last and one worker ran it alone while the
other had finished: the suite's wall time was set by that tail. Here the files go out
longest first (the classic LPT rule), by the seconds a CI run measured for each
(:data:`SECONDS`, from ``--durations``; a file not listed counts ``DEFAULT`` seconds a test).
Only the order changes: every test still runs, each file on one worker as before (the
browser files that share one world go to one worker together: :func:`scope_of`).

The figures need not be exact (a file's weight only decides when it starts); refresh them
when a file becomes much faster or slower.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: seconds per file, estimated from a CI run's 120 slowest set-ups, calls and teardowns (and
#: DEFAULT for each of its other tests); only files of more than about ten seconds
SECONDS: dict[str, float] = {
    "tests/browser/test_demo_flows.py": 52,
    "tests/integration/test_detection_profiles.py": 51,
    "tests/integration/test_analytics_engines.py": 49,
    "tests/integration/test_web_bad_input.py": 46,
    "tests/integration/test_audit_parallel.py": 45,
    "tests/integration/test_simulator_workers.py": 43,
    "tests/integration/test_serve_tls.py": 43,
    "tests/integration/test_investigations.py": 42,
    "tests/integration/test_detection_incremental.py": 35,
    "tests/integration/test_audit_tail.py": 30,
    "tests/integration/test_adjustments.py": 29,
    "tests/browser/test_accessibility.py": 24,
    "tests/integration/test_anonymized_records.py": 23,
    "tests/integration/test_witness.py": 19,
    "tests/integration/test_seed_parallel.py": 19,
    "tests/unit/test_commitment.py": 18,
    "tests/integration/test_adjust_split.py": 18,
    "tests/integration/test_import.py": 15,
    "tests/integration/test_access_stateful.py": 13,
    "tests/integration/test_api_fuzz.py": 12,
    "tests/integration/test_detection_cli.py": 11,
    "tests/integration/test_import_copy.py": 11,
    "tests/integration/test_detection.py": 10,
    "tests/integration/test_replica.py": 10,
    "tests/integration/test_api_extremes.py": 10,
}

#: seconds a test of a file not in SECONDS is assumed to take
DEFAULT = 0.5

#: the browser files that share the session's world, server and Chromium (tests/browser/
#: conftest.py): one unit of work, so that one worker builds them, not both
BROWSER_WORLD = "tests/browser/"
BROWSER_OWN = {"tests/browser/test_demo_flows.py"}  # its own demo world: a unit of its own


def scope_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith(BROWSER_WORLD) and path not in BROWSER_OWN:
        return BROWSER_WORLD
    return path


def weight(scope: str, nodeids: list[str]) -> float:
    by_file: dict[str, int] = {}
    for nodeid in nodeids:
        path = nodeid.split("::", 1)[0]
        by_file[path] = by_file.get(path, 0) + 1
    return sum(SECONDS.get(path, DEFAULT * n) for path, n in by_file.items())


def make_scheduler(config: Any, log: Any) -> Any:
    from xdist.scheduler import LoadFileScheduling

    class LongestFirst(LoadFileScheduling):  # type: ignore[misc]
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the queue is complete before the first file goes out
                self.ordered = True
                queue = sorted(self.workqueue.items(), key=lambda kv: -weight(kv[0], list(kv[1])))
                self.workqueue = OrderedDict(queue)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)
