"""CLI start-up of two source trees side by side, in one run (not part of ``make bench``).

Usage::

    git archive main src | tar -x -C /tmp/before    # and likewise the tree to compare
    .venv/bin/python -m bench.cli_side_by_side 15 5 before=/tmp/before/src after=src

Runs each case as a fresh process with ``PYTHONPATH=SRC`` (ahead of the editable install),
``N_CACHED`` times with bytecode caches (both trees are compiled first: an environment with
``PYTHONDONTWRITEBYTECODE=1``, as some are, never writes them itself) and ``N_COLD`` times
with none (``PYTHONDONTWRITEBYTECODE=1`` and ``PYTHONPYCACHEPREFIX`` pointing at an empty
directory, so every module, the standard library's too, is compiled on every run). Cases and
trees take turns (round robin), so the machine's load falls on all alike. Prints a Markdown
table of medians: wall clock from spawn to exit, and the child's CPU time (user + system),
the steadier figure on a loaded machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CASES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("idrs --help", ["-m", "idrs", "--help"]),
    ("idrs research --help", ["-m", "idrs", "research", "--help"]),
    ("idrs audit verify --help", ["-m", "idrs", "audit", "verify", "--help"]),
    ("idrs case assign --help", ["-m", "idrs", "case", "assign", "--help"]),
]


def main(argv: list[str]) -> None:
    n_cached, n_cold = int(argv[0]), int(argv[1])
    trees = dict(a.split("=", 1) for a in argv[2:])
    for src in trees.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IDRS_", "PYTHON"))}
    base["COLUMNS"] = "100"
    runs: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for mode, n in (("cached", n_cached), ("cold", n_cold)):
        for _ in range(n):
            for tree, src in trees.items():
                for label, args in CASES:
                    env = base | {"PYTHONPATH": src}
                    empty = tempfile.mkdtemp() if mode == "cold" else None
                    if empty:
                        env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty}
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, *args], env=env, capture_output=True)
                    wall = (time.perf_counter() - t0) * 1000
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
                    if empty:
                        shutil.rmtree(empty)
                    if r.returncode != 0:
                        raise SystemExit(f"{tree}: {label}: exit {r.returncode}: {r.stderr[-300:]!r}")
                    runs.setdefault((mode, label, tree), []).append((wall, cpu))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{n_cached} runs with caches, {n_cold} without")  # fmt: skip
    print("| command | caches | " + " | ".join(f"{t} wall | {t} CPU" for t in trees) + " |")
    print("| --- | --- |" + " --- | --- |" * len(trees))
    for mode in ("cached", "cold"):
        for label, _ in CASES:
            cells = []
            for tree in trees:
                xs = runs[(mode, label, tree)]
                cells += [f"{statistics.median(w for w, _ in xs):.0f} ms",
                          f"{statistics.median(c for _, c in xs):.0f} ms"]  # fmt: skip
            caches = "yes" if mode == "cached" else "no"
            print(f"| `{label}` | {caches} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
