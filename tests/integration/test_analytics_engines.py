"""Detection, the weekly report and the oversight report's actual access on DuckDB and on
Apache Spark (local mode) from one definition of each query: the same small log, identical
alerts and identical figures.

One SparkSession for the module (local[1], one shuffle partition, no UI) and one simulated
log, copied for each engine so that both start from the same database.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from idrs import migrate
from idrs.analytics import engines, export_log
from idrs.audit import service as audit_service
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine, session_scope
from idrs.detection import logscan, reports, service, simulator
from idrs.errors import IdrsError
from idrs.masterfile.models import Marker, Taxpayer
from idrs.oversight import report
from idrs.people.models import Unit
from tests.integration.cli_helpers import run_cli

START = datetime(2026, 3, 2, tzinfo=UTC)
AFTER = datetime(2026, 3, 4, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        pytest.fail("the Spark engine needs Java 17 (.ci/run installs openjdk-17-jre-headless)")
    session = engines.spark_session(
        master="local[1]", conf={"spark.sql.shuffle.partitions": "1"})
    yield session
    engines.stop_spark()


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        Keyring.create(self.home)
        self.base = root / "base.db"
        migrate.upgrade(make_engine(f"sqlite:///{self.base}"))

    def app(self, name: str, when: datetime = START) -> App:
        path = self.root / f"{name}.db"
        if not path.exists():
            shutil.copy(self.base, path)
        url = f"sqlite:///{path}"
        return App(settings=Settings(database_url=url, home=self.home), engine=make_engine(url),
                   keyring=Keyring.load(self.home), clock=FakeClock(when))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("engines"))
    a = App(settings=Settings(database_url=f"sqlite:///{w.base}", home=w.home),
            engine=make_engine(f"sqlite:///{w.base}"), keyring=Keyring.load(w.home),
            clock=FakeClock(START))
    ensure_signing_key(a.settings.home, a.settings.audit_origin)
    simulator.simulate(a, days=1, employees=8, seed=5, violation_rate=0.5,
                       truth_out=w.root / "truth.json", start=START, workers=1)
    a.engine.dispose()
    return w


def _units(a: App) -> list[str]:
    with session_scope(a.engine) as s:
        return sorted(s.scalars(select(Unit.code)))


def test_detection_and_weekly_report_are_the_same_on_duckdb_and_spark(
        world: World, spark: Any) -> None:
    out: dict[str, Any] = {}
    for name in engines.ENGINES:
        a = world.app(f"run-{name}", AFTER)
        result = service.run(a, engine=name)
        weekly = [reports.weekly(a, unit=u, week=START.date(), actor="os:test", engine=name)
                  for u in _units(a)]
        out[name] = (result, [w["report"] for w in weekly])
        a.engine.dispose()
    (duck, duck_weekly), (spk, spk_weekly) = out["duckdb"], out["spark"]
    assert duck["alerts"], "the simulated log must raise alerts for the comparison to mean much"
    assert spk["alerts"] == duck["alerts"]
    assert spk["summary"] == duck["summary"]
    # the week's refusals are the figures the log gives the report
    assert any(r["other_refusals"] or any(r["conflict_refusals"].values()) for r in duck_weekly)
    assert spk_weekly == duck_weekly


def _high_profile(a: App) -> None:
    """Every fifth taxpayer high-profile, so that the report counts sensitive accounts."""
    with session_scope(a.engine) as s:
        for tid in s.scalars(select(Taxpayer.id).where(Taxpayer.id % 5 == 0)):
            if s.get(Marker, (tid, "high_profile")) is None:
                s.add(Marker(taxpayer_id=tid, marker="high_profile"))


def test_the_oversight_reports_actual_access_is_the_same_on_duckdb_and_spark(
        world: World, spark: Any, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out: dict[str, Any] = {}
    for name in engines.ENGINES:
        a = world.app(f"oversight-{name}", AFTER)
        _high_profile(a)
        reps = [report.build(a, unit=u, start=START.date(), end=AFTER.date(),
                             actor=Actor("os:test"), engine=name) for u in _units(a)]
        out[name] = [(r["actual"], r["answers"]["items"]) for r in reps]
        a.engine.dispose()
    duck, spk = out["duckdb"], out["spark"]
    totals = [actual["totals"] for actual, _ in duck]
    # every figure the query gives is there for the comparison to mean much
    assert sum(t["allowed"] for t in totals) and sum(t["denied"] for t in totals)
    assert any(t["accesses_by_class"] and t["denials_by_reason"] for t in totals)
    assert any(t["sensitive_accounts_touched"].get("high_profile") for t in totals)
    assert any(d["accesses"] for actual, _ in duck for d in actual["per_day"])
    assert spk == duck
    # the command line's --engine spark: the same figures in the report it writes
    a = world.app("oversight-cli", AFTER)
    _high_profile(a)
    unit = next(u for u, (actual, _) in zip(_units(a), duck, strict=True)
                if actual["totals"]["allowed"])
    a.engine.dispose()
    monkeypatch.setenv("IDRS_HOME", str(world.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", f"sqlite:///{world.root / 'oversight-cli.db'}")
    target = world.root / "oversight-cli.json"
    code, _out, err = run_cli(capsys, "oversight", "report", "--unit", unit, "--from",
                              START.date().isoformat(), "--to", AFTER.date().isoformat(),
                              "--format", "json", "--out", str(target), "--engine", "spark")
    assert code == 0, err
    written = json.loads(target.read_text())
    assert written["actual"] == duck[_units(a).index(unit)][0]


def test_named_queries_give_the_same_rows_over_one_parquet_export(
        world: World, spark: Any) -> None:
    a = world.app("export", AFTER)
    out = world.root / "export"
    audit_service.export(a, out, "os:test", fmt="parquet")
    for name in engines.QUERIES:
        duck = engines.run_query(name, out, engine="duckdb")
        spk = engines.run_query(name, out, engine="spark")
        assert duck or name == "after_hours", name  # the simulation works office hours
        assert spk == duck, name
    # the export read as detection reads the live log: the same ``ev`` on Spark
    log = export_log.open_export(out)
    rows = {}
    for name in engines.ENGINES:
        con = engines.connect(name)
        try:
            log.load(con, 0, log.size, logscan.TYPES)
            rows[name] = con.execute("SELECT * FROM ev ORDER BY idx").fetchall()
        finally:
            con.close()
    assert rows["duckdb"] and rows["spark"] == rows["duckdb"]
    a.engine.dispose()


def _both(sql: str, params: list[Any] | None = None) -> tuple[list[Any], list[Any]]:
    duck = engines.connect("duckdb")
    spk = engines.connect("spark")
    try:
        return duck.execute(sql, params or []).fetchall(), spk.execute(sql, params).fetchall()
    finally:
        duck.close()
        spk.close()


def test_the_rewrites_keep_duckdbs_meaning_on_spark(spark: Any) -> None:
    # Sunday 2026-03-08 and Monday 2026-03-09: ISO day 7 and 1 (SQLGlot alone gives 2 and 3)
    data = """(VALUES (CAST('2026-03-08 23:30:00+00' AS TIMESTAMPTZ), 3, NULL),
                      (CAST('2026-03-09 06:59:59+00' AS TIMESTAMPTZ), 1, 'b'),
                      (CAST('2026-03-09 07:00:00+00' AS TIMESTAMPTZ), 2, 'a')) v(t, x, s)"""
    duck, spk = _both(f"SELECT isodow(t), hour(t), CAST(t AS DATE), epoch_us(t) FROM {data} "  # noqa: S608
                      "ORDER BY t")
    assert [r[0] for r in duck] == [7, 1, 1]
    assert spk == duck
    # an ordered list keeps its order (SQLGlot alone gives COLLECT_LIST, of no set order);
    # NULLs sort last in ascending order on both; 7 / 2 is 3.5 and 7 // 2 is 3 on both
    # (a NULL key last, as DuckDB puts it, unless NULLS FIRST: Spark's struct order alone
    # puts it first)
    duck, spk = _both(f"SELECT list(x ORDER BY t), list(x ORDER BY s, x), "  # noqa: S608
                      f"list(x ORDER BY s NULLS FIRST), 7 / 2, 7 // 2 FROM {data}")
    assert duck == [([3, 1, 2], [2, 1, 3], [3, 2, 1], 3.5, 3)]
    assert spk == duck
    duck, spk = _both(f"SELECT s FROM {data} ORDER BY s")  # noqa: S608
    assert duck == [("a",), ("b",), (None,)] and spk == duck
    # parameters become typed literals: a day, an instant, a list
    duck, spk = _both(f"SELECT count(*) FROM {data} WHERE CAST(t AS DATE) >= ? "  # noqa: S608
                      "AND t < ? AND x IN (SELECT unnest(?))",
                      [date(2026, 3, 9), datetime(2026, 3, 9, 7, tzinfo=UTC), [1, 2]])
    assert duck == [(1,)] and spk == duck
    # in the order of the text, a WITH clause's first (a walk of the tree meets it last);
    # a '?' inside a string is no parameter
    duck, spk = _both("WITH a AS (SELECT ? AS first) SELECT first, ?, '?' FROM a", [1, 2])
    assert duck == [(1, 2, "?")] and spk == duck


def test_list_order_by_desc_is_refused_not_mistranslated() -> None:
    with pytest.raises(IdrsError, match="DESC"):
        engines.to_spark("SELECT list(x ORDER BY t DESC) FROM v")


def test_an_unknown_engine_is_refused_clearly(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(engines.UnknownEngine, match=r"unknown analytics engine 'hive'.*duckdb, spark"):
        engines.check_engine("hive")
    a = world.app("unknown")
    with pytest.raises(engines.UnknownEngine):
        service.run(a, engine="Spork")
    with pytest.raises(engines.UnknownEngine):
        reports.weekly(a, unit=_units(a)[0], week=START.date(), actor="os:test", engine="sqlite")
    with pytest.raises(engines.UnknownEngine):
        report.build(a, unit=_units(a)[0], actor=Actor("os:test"), engine="hive")
    a.engine.dispose()
    for args in (("detect", "run"), ("reports", "weekly", "--unit", "X"),
                 ("oversight", "report", "--unit", "X", "--format", "json", "--out", "x.json")):
        code, _out, err = run_cli(capsys, *args, "--engine", "hive")
        assert code == 1
        assert "unknown analytics engine 'hive'" in err and "duckdb, spark" in err
    assert engines.check_engine(" Spark ") == "spark" and engines.check_engine(None) == "duckdb"
