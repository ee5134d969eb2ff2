"""Master file write side: seed 1,000,000 taxpayers into SQLite; import 100,000 from JSON Lines
into SQLite and PostgreSQL (one process, then worker processes), side by side in one run.

``ensure_million(path)`` builds the 1M-taxpayer SQLite database other benchmarks reuse
(``/tmp/idrs-bench-1m/idrs.db`` with IDRS_HOME ``/tmp/idrs-bench-1m/home`` and employee
credentials in ``/tmp/idrs-bench-1m/credentials.json``) only if it is absent. The seed runs
as a subprocess (``idrs init`` then ``idrs seed``); its peak RSS is read with
``resource.getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

TITLE = "Master file: seed and import"
MILLION_DIR = Path("/tmp/idrs-bench-1m")
MILLION_DB = MILLION_DIR / "idrs.db"
SEED_MINUTES_TARGET = 10.0
IMPORT_RATE_TARGET = 2000.0
#: worker processes of the parallel PostgreSQL import (``idrs import --workers``)
IMPORT_WORKERS = max(2, min(4, os.cpu_count() or 2))


def _env(db: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["IDRS_DATABASE_URL"] = f"sqlite:///{db}"
    env["IDRS_HOME"] = str(home)
    return env


def _idrs(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "idrs", *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"idrs {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def build_seeded(db: Path, taxpayers: int, employees: int = 50, seed: int = 1) -> dict[str, float]:
    """A fresh database at ``db`` (home next to it) seeded by a subprocess; time and peak RSS."""
    folder = db.parent
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = _env(db, folder / "home")
    _idrs(["init"], env)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    _idrs(
        [
            "seed",
            "--taxpayers",
            str(taxpayers),
            "--employees",
            str(employees),
            "--seed",
            str(seed),
            "--credentials-out",
            str(folder / "credentials.json"),
            "--json",
        ],
        env,
    )
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "taxpayers": taxpayers,
        "load_average": os.getloadavg()[0],
    }


def ensure_million(path: Path = MILLION_DB) -> Path:
    """The 1,000,000-taxpayer SQLite database at ``path`` (built only when absent)."""
    path = Path(path)
    done = path.parent / "seed-figures.json"
    if path.exists() and done.exists():
        return path
    figures = build_seeded(path, 1_000_000)
    figures["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")  # type: ignore[assignment]
    done.write_text(json.dumps(figures))
    return path


def _seed_figures(scale: str) -> list[dict]:
    if scale == "full":
        ensure_million(MILLION_DB)
        fig = json.loads((MILLION_DIR / "seed-figures.json").read_text())
        n, note = 1_000_000, f"SQLite; built {fig.get('built_at')} (reused if present)"
        target_s = SEED_MINUTES_TARGET * 60
    else:
        fig = build_seeded(Path("/tmp/idrs-bench-quick/idrs.db"), 20_000, employees=5)
        n, note = 20_000, "SQLite, quick scale"
        target_s = SEED_MINUTES_TARGET * 60 * n / 1_000_000
    if "cpu_seconds" in fig:
        note += f"; {fig['cpu_seconds']:.0f} s CPU, load average {fig['load_average']:.1f}"
    return [
        {
            "what": f"seed {n:,} taxpayers into SQLite",
            "value": round(fig["seconds"], 1),
            "unit": "s",
            "target": f"<= {target_s:.0f} s",
            "met": fig["seconds"] <= target_s,
            "note": note,
        },
        {
            "what": f"seed {n:,} taxpayers: peak RSS",
            "value": round(fig["peak_rss_mib"]),
            "unit": "MiB",
            "target": "bounded",
            "met": None,
            "note": "subprocess max RSS",
        },
    ]


def _import_once(url: str, home: Path, src: Path, workers: int) -> dict[str, float]:
    """One import of ``src`` into a fresh migrated database at ``url``: rate, wall, CPU."""
    from idrs import migrate
    from idrs.audit import log
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine
    from idrs.masterfile.importer import import_file

    engine = make_engine(url)
    migrate.upgrade(engine)
    Keyring.create(home)
    app = App(
        settings=Settings(database_url=url, home=home), engine=engine, keyring=Keyring.load(home)
    )
    t0, c0 = time.perf_counter(), time.process_time()
    result = import_file(app, src, "os:bench", workers=workers)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    log.forget(engine)
    engine.dispose()
    return {
        "lines": result.lines,
        "rate": result.lines / seconds,
        "seconds": seconds,
        "cpu": cpu,
        "load": os.getloadavg()[0],
    }


def _import_figures(scale: str) -> list[dict]:
    """The same file imported into SQLite, PostgreSQL by one process, PostgreSQL with
    ``IMPORT_WORKERS`` worker processes (COPY-ready rows), one after the other in this run."""
    from bench.bench_audit import _pg_db, _pg_drop
    from idrs.masterfile.seed import export_jsonl

    n = 100_000 if scale == "full" else 5_000
    folder = Path(f"/tmp/idrs-bench-import-{scale}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    src = folder / "taxpayers.jsonl"
    export_jsonl(src, taxpayers=n, seed_value=11)
    size_mib = src.stat().st_size / 2**20
    runs: list[tuple[str, str, dict[str, float]]] = []
    runs.append(
        (
            "SQLite",
            "1 process",
            _import_once(f"sqlite:///{folder / 'idrs.db'}", folder / "home-sqlite", src, 1),
        )
    )
    for workers in (1, IMPORT_WORKERS):
        name, url = _pg_db()
        try:
            fig = _import_once(url, folder / f"home-pg-{workers}", src, workers)
        finally:
            _pg_drop(name)
        how = (
            "1 process, COPY"
            if workers == 1
            else (
                f"{workers} worker processes validating and encrypting, COPY-ready rows, one COPY a "
                "table a block"
            )
        )
        runs.append(("PostgreSQL", how, fig))
    base = runs[0][2]["rate"]
    out = []
    for kind, how, fig in runs:
        out.append(
            {
                "what": f"import {n:,} taxpayers from JSON Lines ({kind}, {how})",
                "value": round(fig["rate"]),
                "unit": "taxpayers/s",
                "target": f">= {IMPORT_RATE_TARGET:.0f}",
                "met": fig["rate"] >= IMPORT_RATE_TARGET,
                "note": f"{fig['seconds']:.1f} s wall, {fig['cpu']:.1f} s CPU in the importing "
                f"process, {fig['rate'] / base:.2f}× SQLite's rate in this run; {size_mib:.0f} MiB"
                f" file, 3 tax years each, one transaction, load average {fig['load']:.1f}",
            }
        )
    return out


def run(scale: str) -> list[dict]:
    return _import_figures(scale) + _seed_figures(scale)


if __name__ == "__main__":
    for f in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(f)
