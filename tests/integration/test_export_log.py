"""A verified Parquet export read as detection reads the live log (analytics.export_log):
the same ``ev`` rows as ``logscan.load`` over the same entries, the same entry times, and a
clear refusal of an export that does not match its checkpoint or is signed by another key.

DuckDB only (Spark: tests/integration/test_analytics_engines.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from idrs import migrate
from idrs.analytics import engines, export_log
from idrs.audit import service as audit_service
from idrs.audit.checkpoint import ensure_signing_key, load_signer
from idrs.audit.export import ExportInvalid
from idrs.audit.store import raw
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.detection import logscan, simulator

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[App, Path]:
    root = tmp_path_factory.mktemp("export-log")
    home = root / "home"
    Keyring.create(home)
    url = f"sqlite:///{root / 'idrs.db'}"
    migrate.upgrade(make_engine(url))
    a = App(settings=Settings(database_url=url, home=home), engine=make_engine(url),
            keyring=Keyring.load(home), clock=FakeClock(START))
    ensure_signing_key(home, a.settings.audit_origin)
    simulator.simulate(a, days=1, employees=6, seed=3, violation_rate=0.5,
                       truth_out=root / "truth.json", start=START, workers=1)
    out = root / "export"
    audit_service.export(a, out, "os:test", fmt="parquet")
    return a, out


def _ev(con: engines.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in con.execute("SELECT * FROM ev ORDER BY idx").fetchall()]


def test_the_export_gives_detection_the_same_entries_as_the_live_log(
        logged: tuple[App, Path]) -> None:
    a, out = logged
    log = export_log.open_export(out, load_signer(a.settings.home).vkey())
    with raw(a.engine) as db:
        assert log.size <= int(db.size())
    live, exported = engines.connect("duckdb"), engines.connect("duckdb")
    try:
        for lo, hi in ((0, log.size), (log.size // 3, log.size // 2)):
            n_live = logscan.load(a, live, lo, hi)
            n = log.load(exported, lo, hi, logscan.TYPES)
            rows = _ev(live)
            assert rows, "the simulated log has research entries"
            assert _ev(exported) == rows
            assert n == len(rows) <= n_live
    finally:
        live.close()
        exported.close()
    with raw(a.engine) as db:
        for i in (0, log.size // 2, log.size - 1):
            leaf = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (i,))[0]
            assert log.time_of(i) == datetime.fromisoformat(json.loads(bytes(leaf))["time"])
    t = log.time_of(log.size // 2)
    assert log.first_index_at(t) <= log.size // 2 and log.times()[log.first_index_at(t)] == t


def test_an_export_that_does_not_match_is_refused(logged: tuple[App, Path],
                                                  tmp_path: Path) -> None:
    import shutil

    a, out = logged
    with pytest.raises(ExportInvalid, match="not a Parquet export"):
        export_log.open_export(tmp_path)
    with pytest.raises(ExportInvalid, match="another key"):
        export_log.open_export(out, "someone-else+00000000+AAAA")
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    victim = next(bad.rglob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ExportInvalid, match="SHA-256"):
        export_log.open_export(bad)
