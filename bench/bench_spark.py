"""Analytics on DuckDB and on Apache Spark (local mode): the same queries, the same export.

A small simulated log (quick: 1 day, 8 employees; full: 3 days, 24 employees) is exported
with ``idrs audit export --format parquet``; each named query of
:mod:`idrs.analytics.engines` runs over that export on both engines, and a detection run
over the same log on both (each on its own copy of the database). Reported: the Spark
session's start, each engine's time per query and per detection run, and whether both
engines gave the same rows and the same alerts. On one machine DuckDB is expected to win by
far: Spark pays a fixed cost per query (planning, scheduling a job on the JVM) that only
pays off when the log outgrows one machine; this benchmark measures that cost, it is not a
throughput target.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TITLE = "Analytics engines: DuckDB and Spark (local) on the same Parquet export"
SIM = {"full": (3, 24), "quick": (1, 8)}
ROOT = Path("/tmp/idrs-bench-spark")
START = datetime(2026, 3, 2, tzinfo=UTC)


def _app(root: Path, name: str, when: datetime) -> Any:
    from idrs.clock import FakeClock
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    path = root / f"{name}.db"
    if not path.exists():
        shutil.copy(root / "base.db", path)
    url = f"sqlite:///{path}"
    return App(settings=Settings(database_url=url, home=root / "home"), engine=make_engine(url),
               keyring=Keyring.load(root / "home"), clock=FakeClock(when))


def run(scale: str) -> list[dict[str, Any]]:
    from idrs import migrate
    from idrs.analytics import engines
    from idrs.audit import service as audit_service
    from idrs.audit.checkpoint import ensure_signing_key
    from idrs.crypto import Keyring
    from idrs.db import make_engine
    from idrs.detection import service, simulator

    days, employees = SIM[scale]
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    Keyring.create(ROOT / "home")
    migrate.upgrade(make_engine(f"sqlite:///{ROOT / 'base.db'}"))
    base = _app(ROOT, "base", START)
    ensure_signing_key(base.settings.home, base.settings.audit_origin)
    simulator.simulate(base, days=days, employees=employees, seed=5, violation_rate=0.3,
                       truth_out=ROOT / "truth.json", start=START, workers=1)
    base.engine.dispose()
    after = START + timedelta(days=days)
    a = _app(ROOT, "export", after)
    export = ROOT / "export"
    summary = audit_service.export(a, export, "os:bench", fmt="parquet")
    a.engine.dispose()
    entries = int(summary["entries"])

    t0 = time.perf_counter()
    engines.spark_session(conf={"spark.sql.shuffle.partitions": "2"})
    spark_start = time.perf_counter() - t0

    figures: list[dict[str, Any]] = [
        {"what": f"log exported to Parquet ({days} days, {employees} employees)",
         "value": entries, "unit": "entries", "target": "-", "met": None},
        {"what": "Spark session start (local mode, JVM)", "value": round(spark_start, 1),
         "unit": "s", "target": "-", "met": None},
    ]
    same = True
    per: dict[str, float] = {}
    for name in engines.ENGINES:
        t0 = time.perf_counter()
        rows = {q: engines.run_query(q, export, engine=name) for q in engines.QUERIES}
        per[name] = (time.perf_counter() - t0) / len(engines.QUERIES)
        if name == "duckdb":
            expected = rows
        else:
            same = same and rows == expected
    for name in engines.ENGINES:
        figures.append({"what": f"named query over the export on {name} (mean of "
                                f"{len(engines.QUERIES)})",
                        "value": round(per[name] * 1000, 1), "unit": "ms", "target": "-",
                        "met": None})
    alerts: dict[str, Any] = {}
    for name in engines.ENGINES:
        app = _app(ROOT, f"detect-{name}", after)
        t0 = time.perf_counter()
        alerts[name] = service.run(app, engine=name)["alerts"]
        elapsed = time.perf_counter() - t0
        app.engine.dispose()
        figures.append({"what": f"detection run on {name}", "value": round(elapsed, 2),
                        "unit": "s", "target": "-", "met": None})
    figures.append({"what": "same rows and same alerts on both engines",
                    "value": "yes" if same and alerts["duckdb"] == alerts["spark"] else "NO",
                    "unit": "", "target": "yes",
                    "met": same and alerts["duckdb"] == alerts["spark"]})
    engines.stop_spark()
    shutil.rmtree(ROOT, ignore_errors=True)
    return figures
