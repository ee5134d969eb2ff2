"""Issue 17: detection on the independent workload (bench/workload_independent.py), small.

A small agency written apart from the simulator, through the real service path (SQLite):
each of the four violation kinds of the issue's table is found (recall >= 0.95 per type) and
precision is at least 0.9 per type and overall; the same agency's honest week (a dozen
accounts in one sitting included) raises no alert at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import bench_detection_independent as bench

DAYS, PACE = 3, 0.5


@pytest.fixture(scope="module")
def with_violations(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return bench.one(tmp_path_factory.mktemp("indep") / "v", days=DAYS, pace=PACE, seed=2)


def test_every_kind_is_found_and_alerts_are_about_violations(with_violations: dict) -> None:
    r = with_violations
    kinds = {v["type"] for v in r["truth"]["violations"]}
    assert kinds == set(bench.TYPES), kinds
    assert r["missed"] == [], r["missed"]
    assert r["false"] == [], r["false"]
    by_type = r["result"]["by_type"]
    for t in bench.TYPES:
        assert by_type[t]["recall"] >= 0.95, (t, by_type[t])
        if by_type[t]["alerts"]:
            assert by_type[t]["precision"] >= 0.9, (t, by_type[t])
    assert r["result"]["overall"]["precision"] >= 0.9, r["result"]["overall"]


def test_the_honest_week_with_its_batch_sittings_raises_nothing(tmp_path: Path) -> None:
    r = bench.one(tmp_path / "h", days=DAYS, pace=PACE, seed=2, violations=False)
    assert r["truth"]["violations"] == [] and r["truth"]["employee_days"] > 0
    assert r["false"] == [], r["false"]
    assert r["result"]["false_alerts_per_1000_employee_days"] == 0.0
