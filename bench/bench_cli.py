"""CLI start-up (issue 12): ``idrs --help`` and commands up to the point they touch the database.

Each case is a fresh ``python -m idrs ...`` process, timed from spawn to exit; the cases run in
turns (round robin) so that the machine's load falls on all of them alike, and ``python -c
pass`` runs in the same turns as the floor. Medians of N runs of the wall-clock time (what a
user waits) and, in the notes, of the child's CPU time (user + system: on a machine whose load
average exceeds its cores the wall clock mostly measures the neighbours), two ways:

* **cached**: bytecode caches present (``make install`` compiles the virtual environment and
  ``src``; this module compiles ``src`` again first so no edited file runs from source);
* **no caches**: ``PYTHONDONTWRITEBYTECODE=1`` with ``PYTHONPYCACHEPREFIX`` pointing at an
  empty directory, so nothing is read from or written to a cache — every module, the standard
  library's included, is compiled from source on every run (worse than a first run anywhere).

Targets (issue 12): ``idrs --help`` under 300 ms, any command's start-up under 400 ms before it
touches the database, both with caches. The last case runs a real command, ``idrs research``,
against a PostgreSQL port nobody listens on: its time is the whole start-up (settings, keys,
models, services) plus one refused connection.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "CLI start-up (idrs --help and commands before the database)"
ROOT = Path(__file__).resolve().parent.parent

#: (label, arguments after ``python``, target in ms or None)
CASES: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", ["-c", "pass"], None),
    ("idrs --help", ["-m", "idrs", "--help"], 300),
    ("idrs research --help", ["-m", "idrs", "research", "--help"], 400),
    ("idrs audit verify --help", ["-m", "idrs", "audit", "verify", "--help"], 400),
    ("idrs init --help", ["-m", "idrs", "init", "--help"], 400),
    ("idrs case assign (missing options: usage error)", ["-m", "idrs", "case", "assign"], 400),
    ("idrs research --as-of 'soon' (bad argument)", ["-m", "idrs", "research", "ENMOD",
                                                     "123456789", "--as-of", "soon"], 400),
    ("idrs research ENMOD (until its first connection, refused)",
     ["-m", "idrs", "research", "ENMOD", "123456789"], 400),
]  # fmt: skip


def _measure(env: dict[str, str], n: int) -> dict[str, tuple[list[float], list[float]]]:
    """label -> (wall-clock ms, CPU ms of the child: user + system) of each run."""
    times: dict[str, tuple[list[float], list[float]]] = {c[0]: ([], []) for c in CASES}
    for _ in range(n):
        for label, args, _ in CASES:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, *args], env=env, capture_output=True, timeout=300)
            wall = (time.perf_counter() - t0) * 1000
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
            times[label][0].append(wall)
            times[label][1].append(cpu)
            if r.returncode not in (0, 1, 2) or b"Traceback" in r.stderr:
                raise RuntimeError(f"{label}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return times


def run(scale: str) -> list[dict[str, Any]]:
    from idrs.crypto import Keyring

    n = 15 if scale == "full" else 5
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True,
                   capture_output=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="idrs-bench-cli-") as tmp:
        home = Path(tmp) / "home"
        Keyring.create(home)  # the real command gets as far as the database
        base = {k: v for k, v in os.environ.items() if not k.startswith(("IDRS_", "PYTHON"))}
        base |= {
            "IDRS_HOME": str(home),
            "IDRS_DATABASE_URL": "postgresql+psycopg://idrs@127.0.0.1:9/none?connect_timeout=2",
            "COLUMNS": "100",
        }
        cached = _measure(base, n)
        cold_env = base | {
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "no-caches"),
        }
        cold = _measure(cold_env, max(3, n // 4))
    load = os.getloadavg()[0]
    med = statistics.median
    floor = med(cached["python -c pass"][0])
    figures: list[dict[str, Any]] = []
    for label, _, target in CASES:
        wall, cpu = med(cached[label][0]), med(cached[label][1])
        note = (
            f"CPU (user+sys) {cpu:.0f} ms; no caches: {med(cold[label][0]):.0f} ms "
            f"(CPU {med(cold[label][1]):.0f} ms); {n} runs with caches, {len(cold[label][0])} "
            f"without; 1-min load average {load:.1f} on {os.cpu_count()} cores"
        )
        if label != "python -c pass":
            note = f"{wall - floor:.0f} ms over python -c pass; " + note
        figures.append({
            "what": f"{label} (median, with caches)",
            "value": round(wall),
            "unit": "ms",
            "target": f"< {target:.0f} ms" if target else "-",
            "met": wall < target if target else None,
            "note": note,
        })  # fmt: skip
    return figures
