"""Reads from a streaming replica (``IDRS_REPLICA_URL``), against a real standby.

The standby is a second PostgreSQL cluster on this machine made with PostgreSQL's own tools
(``scripts/pg-replica``: pg_createcluster, pg_basebackup -R -X stream, pg_ctlcluster), which
``.ci/run`` starts before the tests. Each test's database is created on the primary and
reaches the standby by physical replication. Nothing here is skipped: a replica that cannot
be reached fails the tests, with what to do.

Shown: the oversight report and the weekly report read from the replica equal the same
reports read from the primary; the replica's reads wait for it to replay the primary's WAL
(and fail clearly when it does not in time); no write goes to the replica (its read-only
engine refuses one, its counters of written rows stay still, and the reports' own audit
entries are on the primary); a replica URL naming anything but this primary's standby is
refused.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError

from idrs.audit import log as audit_log
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor, make_event
from idrs.config import Settings, get_settings
from idrs.context import App
from idrs.db import make_engine, make_read_engine, session_scope
from idrs.detection import reports, service, weekly
from idrs.detection.events import DetectionEvent
from idrs.detection.simulator import simulate
from idrs.errors import ConfigurationError, ReplicaBehind
from idrs.oversight import report
from idrs.people.models import Unit

pytestmark = pytest.mark.postgres

REPLICA_ADMIN = os.environ.get(
    "IDRS_TEST_PG_REPLICA", "postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
)
REPLICA_BASE = REPLICA_ADMIN.rsplit("/", 1)[0]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-replica"
START = datetime(2026, 3, 2, tzinfo=UTC)
OPERATOR = Actor("os:test")
# a report covers these; everything else (the time it was made, its own audit entry and
# checkpoint) differs between two reports of the same data by construction
VOLATILE = ("audit_index", "checkpoint")


def _standby_problem() -> str | None:
    """Why the replica cannot be used (None: it is a standby that streams)."""
    engine = create_engine(REPLICA_ADMIN, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            ok = conn.execute(text(
                "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
                "WHERE status = 'streaming')")).scalar()
        return None if ok else "it is not a standby streaming from the primary"
    except DBAPIError as exc:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def replica_base() -> str:
    problem = _standby_problem()
    if problem and os.geteuid() == 0 and SCRIPT.exists():  # locally: set it up as CI does
        done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=900,
                              check=False)
        problem = _standby_problem()
        if problem and done.returncode != 0:
            problem += f"; {SCRIPT.name} said: {(done.stderr or done.stdout).strip()[-500:]}"
    if problem:
        pytest.fail(f"the streaming replica {REPLICA_ADMIN} cannot be used: {problem}. "
                    f"Run scripts/pg-replica as root (.ci/run does), or point IDRS_TEST_PG_REPLICA "
                    f"at a standby of the primary", pytrace=False)
    return REPLICA_BASE


@pytest.fixture
def on_replica(app: App, replica_base: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """The same application opened as an operator would, with ``IDRS_REPLICA_URL`` naming
    the test database's copy on the replica."""
    url = f"{replica_base}/{app.engine.url.database}"
    monkeypatch.setenv("IDRS_REPLICA_URL", url)
    get_settings.cache_clear()
    opened = App.open(app.engine.url.render_as_string(hide_password=False),
                      home=app.settings.home, clock=app.clock)
    assert opened.replica is not None and opened.read_engine is opened.replica
    assert opened.replica.url.port == make_url(url).port
    opened.await_replica()  # the database created on the primary has reached the replica
    with opened.read_engine.connect() as conn:
        assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
    yield opened
    opened.replica.dispose()
    opened.engine.dispose()
    get_settings.cache_clear()


def _replica_stats(replica_base: str, name: str) -> dict[str, int]:
    """The replica's counters of the test database (flushed: read from a fresh connection
    after the application's connections to it have ended)."""
    engine = create_engine(f"{replica_base}/postgres")
    with engine.connect() as conn:
        # a backend flushes its counters as it exits, before it leaves pg_stat_activity
        for _ in range(600):
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            if not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n"),
                                {"n": name}).scalar():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"connections to {name} on the replica did not end")
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(text(
            "SELECT tup_returned, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
            "WHERE datname = :n"), {"n": name}).one()
    engine.dispose()
    return dict(zip(("returned", "inserted", "updated", "deleted"), map(int, row), strict=True))


def _checkouts(engine) -> list[int]:  # type: ignore[no-untyped-def]
    seen = [0]

    @event.listens_for(engine, "checkout")
    def _count(*_args) -> None:  # type: ignore[no-untyped-def]
        seen[0] += 1

    return seen


def _same(a: dict, b: dict) -> dict:  # type: ignore[type-arg]
    out = {k: v for k, v in a.items() if k not in VOLATILE}
    if isinstance(out.get("answers"), dict):  # the answers are the same; their checkpoint is
        out["answers"] = {k: v for k, v in out["answers"].items() if k != "checkpoint"}
    return out


def _world(app: App, tmp_path: Path) -> None:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    out = simulate(app, days=2, employees=12, seed=5, violation_rate=0.4,
                   truth_out=tmp_path / "truth.json", start=START)
    assert out["accesses"] > 150


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_reports_read_from_the_replica_equal_the_primary_and_write_nothing_there(
        app: App, on_replica: App, replica_base: str, tmp_path: Path) -> None:
    _world(app, tmp_path)
    # detection reads the log from the replica too; its alerts are written to the primary
    found = service.run(on_replica)
    assert found["alerts"] and found["summary"]["entries_read"] > 150
    assert service.run(app)["summary"]["entries_read"] == 1  # the cursor moved on the primary

    name = app.engine.url.database
    assert on_replica.replica is not None
    on_replica.await_replica()
    on_replica.replica.dispose()
    before = _replica_stats(replica_base, name)
    used = _checkouts(on_replica.replica)

    primary = report.build(app, unit="U01", actor=OPERATOR)
    mirrored = report.build(on_replica, unit="U01", actor=OPERATOR)
    assert mirrored["actual"]["totals"]["allowed"] > 0 and mirrored["potential"]
    assert _same(mirrored, primary) == _same(primary, mirrored)
    # the replica's report covers the primary's log up to its own, later, checkpoint
    assert mirrored["checkpoint"]["tree_size"] > primary["checkpoint"]["tree_size"]

    week = date(2026, 3, 2)
    w_primary = reports.weekly(app, unit="U01", week=week, actor="os:test")
    w_mirrored = reports.weekly(on_replica, unit="U01", week=week, actor="os:test")
    assert w_mirrored["report"]["conflict_refusals"] and w_mirrored["report"]["open_alerts"]
    assert _same(w_mirrored, w_primary) == _same(w_primary, w_mirrored)
    assert weekly.list_reports(on_replica) == weekly.list_reports(app)
    assert reports.certification_rate(on_replica) == reports.certification_rate(app)

    # the reads went to the replica...
    assert used[0] > 0
    on_replica.replica.dispose()
    after = _replica_stats(replica_base, name)
    assert after["returned"] > before["returned"]
    # ...and no write did: nothing inserted, updated or deleted by a session on it
    assert {k: after[k] for k in ("inserted", "updated", "deleted")} == {
        k: before[k] for k in ("inserted", "updated", "deleted")}
    # the reports' own records are on the primary, in its log
    with session_scope(app.engine) as s:
        for idx in (mirrored["audit_index"], w_mirrored["audit_index"]):
            row = s.execute(text("SELECT leaf_input FROM audit_entry WHERE idx = :i"),
                            {"i": idx}).one()
            assert b"report" in bytes(row[0])


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_write_through_the_read_engine_is_refused_by_the_database(
        app: App, on_replica: App) -> None:
    on_replica.await_replica()
    with pytest.raises(DBAPIError, match="read-only"), session_scope(on_replica.read_engine) as s:
        s.add(Unit(code="UX9", name="never written", ceiling=""))
    with pytest.raises(audit_log.AuditUnavailable, match="read-only"):
        audit_log.append(on_replica.read_engine, make_event(
            DetectionEvent.DETECT_REPORT_WEEKLY, time=app.clock.now(), actor="os:test",
            outcome="success", interface="cli", obj={"unit": "U01"}))  # type: ignore[arg-type]
    # read-only by the engine's own setting, not only because a standby is: pointed at the
    # primary by mistake, it still refuses to write
    misused = make_read_engine(str(app.engine.url.render_as_string(hide_password=False)))
    try:
        with pytest.raises(DBAPIError, match="read-only"), session_scope(misused) as s:
            s.add(Unit(code="UX8", name="never written", ceiling=""))
    finally:
        misused.dispose()
    with session_scope(app.engine) as s:
        assert s.execute(text("SELECT count(*) FROM unit WHERE code LIKE 'UX%'")).scalar() == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_reads_wait_for_the_replica_and_fail_clearly_when_it_lags(
        app: App, on_replica: App, replica_base: str) -> None:
    """Replay paused on the standby: a report cannot cover the newest entries, so it waits
    and then refuses (503) rather than report from a stale copy; resumed, it is complete."""
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    with session_scope(app.engine) as s:
        s.add(Unit(code="U01", name="Unit one", ceiling=""))
    on_replica.await_replica()
    admin = create_engine(f"{replica_base}/postgres", isolation_level="AUTOCOMMIT")
    short = App(settings=on_replica.settings.model_copy(update={"replica_wait_seconds": 0.5}),
                engine=app.engine, keyring=app.keyring, clock=app.clock,
                replica=on_replica.replica)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_pause()"))
        with pytest.raises(ReplicaBehind, match="has not replayed the primary's WAL") as lag:
            report.build(short, unit="U01", actor=OPERATOR)
        assert lag.value.status_code == 503
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))
        admin.dispose()
    entries = _log_entries(app)
    done = report.build(on_replica, unit="U01", actor=OPERATOR)
    assert done["checkpoint"]["tree_size"] > entries


def _log_entries(app: App) -> int:
    with session_scope(app.engine) as s:
        return int(s.execute(text("SELECT count(*) FROM audit_entry")).scalar() or 0)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_replica_url_that_is_not_this_primarys_standby_is_refused(
        app: App, replica_base: str, tmp_path: Path) -> None:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    with session_scope(app.engine) as s:
        s.add(Unit(code="U01", name="Unit one", ceiling=""))

    def reading(url: str) -> App:
        settings = app.settings.model_copy(update={"replica_url": url,
                                                   "replica_wait_seconds": 1.0})
        return App(settings=settings, engine=app.engine, keyring=app.keyring, clock=app.clock,
                   replica=make_read_engine(url))

    cases = {
        # another database of the same standby
        f"{replica_base}/postgres": "not a replica of IDRS_DATABASE_URL",
        # the primary itself: not a standby
        app.engine.url.render_as_string(hide_password=False): "not a standby",
        # nothing listens there
        "postgresql+psycopg://postgres@127.0.0.1:1/x": "unreachable",
    }
    for url, message in cases.items():
        other = reading(url)
        with pytest.raises(ConfigurationError, match=message):
            report.build(other, unit="U01", actor=OPERATOR)
        assert other.replica is not None
        other.replica.dispose()
    # a replica of SQLite does not exist; nor is a SQLite file a replica
    sqlite_url = f"sqlite:///{tmp_path / 'x.db'}"
    lite = make_engine(sqlite_url)
    with pytest.raises(ConfigurationError, match="not PostgreSQL"):
        App(settings=Settings(database_url=sqlite_url, home=app.settings.home,
                              replica_url=f"{replica_base}/postgres"),
            engine=lite, keyring=app.keyring)
    lite.dispose()
    with pytest.raises(ConfigurationError, match="PostgreSQL standby"):
        make_read_engine(sqlite_url)
