"""Durable appends with 8 writers on SQLite and PostgreSQL, 12,000 entries each, side by side,
without rewriting docs/benchmarks.md: ``python -m bench.appends_quiet [RUNS]``.

It uses bench_audit's own ``_appends`` (the figure ``make bench`` reports), so a run on a quiet
machine can be compared with it; the figures go below the hand-measured marker of
docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench import bench_audit as ba
from idrs.audit.checkpoint import ensure_signing_key

WRITERS, PER_WRITER = 8, 1500


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    tmp = Path(tempfile.mkdtemp(prefix="idrs-appends-"))
    ensure_signing_key(tmp / "home", name="idrs.example/audit-log")
    os.environ.setdefault("IDRS_HOME", str(tmp / "home"))
    for run in range(runs):
        rate, n = ba._appends(f"sqlite:///{tmp / f'a{run}.db'}", WRITERS, PER_WRITER)
        print(f"run {run + 1}: SQLite, {WRITERS} writers: {rate:,.0f} entries/s ({n} entries)")
        name, url = ba._pg_db()
        try:
            rate, n = ba._appends(url, WRITERS, PER_WRITER)
        finally:
            ba._pg_drop(name)
        print(f"run {run + 1}: PostgreSQL, {WRITERS} writers: {rate:,.0f} entries/s ({n} entries)")
    print("load average", ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
