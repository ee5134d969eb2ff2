"""The research service's one commit: the audit entry, the daily-ceiling count and the
research trail commit together (``audit.log.append(also=)``), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import text

from idrs import db, research
from idrs.access import ratelimit
from idrs.audit import log
from idrs.audit.service import tree_size
from idrs.crypto import sha256_hex
from idrs.errors import AccessDenied
from tests.integration import factories as f
from tests.integration.audit_helpers import entry
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture
from tests.integration.test_research import _entry, _sign_in

EXAMINER_TIN = "900-40-0001"


@pytest.fixture
def world(app):
    f.carter_household(app)
    token = _sign_in(app, "EX001", "examiner", EXAMINER_TIN)
    f.open_case(app, "EX001", f.CARTER, "C-1")
    return app, token


def _enmod(app, token):
    return research.run(
        app, token=token, command="ENMOD", tin=f.CARTER, case="C-1", interface="test"
    )


def _rows(app, sql: str, **params) -> list[tuple]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _employee_id(app, seid: str) -> int:
    return _rows(app, "SELECT id FROM employee WHERE seid = :s", s=seid)[0][0]


def test_allowed_research_is_counted_and_chained_with_its_entry(world):
    app, token = world
    before = tree_size(app)
    ans = _enmod(app, token)
    assert ans.audit_index == before and tree_size(app) == before + 1
    emp = _employee_id(app, "EX001")
    tin_index = app.keyring.tin_index(f.CARTER.replace("-", ""))
    counted = _rows(
        app, "SELECT day FROM access_counter WHERE employee_id = :e AND tin_index = :t",
        e=emp, t=tin_index,
    )
    assert len(counted) == 1
    session_id = _rows(
        app, "SELECT id FROM signin_session WHERE token_hash = :h", h=sha256_hex(token)
    )[0][0]
    chained = _rows(
        app,
        "SELECT command, version_seen FROM research_trail"
        " WHERE signin_session_id = :s AND employee_id = :e AND tin_index = :t",
        s=session_id, e=emp, t=tin_index,
    )
    assert chained == [("ENMOD", 0)]
    # the same taxpayer again the same day: one more trail row, still one counted taxpayer
    _enmod(app, token)
    assert len(_rows(app, "SELECT 1 FROM access_counter WHERE employee_id = :e", e=emp)) == 1
    assert len(_rows(app, "SELECT 1 FROM research_trail WHERE employee_id = :e", e=emp)) == 2


def test_a_denial_writes_no_count_and_no_trail(world):
    app, token = world
    with pytest.raises(AccessDenied) as exc:
        research.run(app, token=token, command="ENMOD", tin=f.CARTER_CHILD, interface="test")
    assert "NO_BUSINESS_NEED" in exc.value.codes
    assert _entry(app, exc.value.audit_index)["outcome"] == "deny"
    assert _rows(app, "SELECT 1 FROM access_counter") == []
    assert _rows(app, "SELECT 1 FROM research_trail") == []


def test_writes_with_the_entry_commit_together_or_the_entry_alone(app):
    """A write the database refuses (here: a counter for an employee that does not exist)
    never costs the entry: it is committed alone and AlsoFailed names its index."""
    bad = ratelimit.counter_writes(app.engine.dialect.name, 987654, app.clock.now().date(),
                                   [b"\x01" * 16])
    first = log.append(app.engine, entry(app, 0))
    with pytest.raises(log.AlsoFailed) as exc:
        log.append(app.engine, entry(app, 1), also=bad)
    assert exc.value.index == first + 1
    assert tree_size(app) == first + 2  # the entry is in the log
    assert _rows(app, "SELECT 1 FROM access_counter") == []  # its write is not
    # and the log goes on: the next append (with a good write) commits both
    _sign_in(app, "EX002", "examiner", "900-40-0002")
    good = ratelimit.counter_writes(app.engine.dialect.name, _employee_id(app, "EX002"),
                                    app.clock.now().date(), [b"\x02" * 16])
    size = tree_size(app)
    assert log.append(app.engine, entry(app, 2), also=good) == size
    assert len(_rows(app, "SELECT 1 FROM access_counter")) == 1


def test_research_is_refused_when_its_count_cannot_be_written(world, monkeypatch):
    """The count toward the daily ceiling is part of the access: if it cannot be written,
    nothing is shown, and the refusal names the entry that records the decision."""
    app, token = world
    counter_writes = ratelimit.counter_writes

    def refused(dialect, employee_id, day, tin_indexes):
        return counter_writes(dialect, 987654, day, tin_indexes)  # no such employee

    monkeypatch.setattr(ratelimit, "counter_writes", refused)
    with pytest.raises(AccessDenied) as exc:
        _enmod(app, token)
    assert exc.value.codes == ["AUDIT_UNAVAILABLE"]
    assert exc.value.audit_index is not None
    assert _entry(app, exc.value.audit_index)["outcome"] == "allow"
    assert _rows(app, "SELECT 1 FROM research_trail") == []


def test_no_read_snapshot_is_held_while_the_entry_commits(world, monkeypatch):
    """The request's reads end before its audit entry commits, and the connection it lends
    the appender is idle: on SQLite a snapshot held across the commit kept the WAL from ever
    being checkpointed back to its start (it grew with every request, and every commit then
    paid an fsync)."""
    app, token = world
    seen = []
    append = log.append

    def watching(engine, entry, also=None, via=None):
        if engine.dialect.name == "sqlite":
            seen.append(via is not None and not via.in_transaction)
        else:
            import psycopg

            seen.append(via is not None and via.info.transaction_status
                        == psycopg.pq.TransactionStatus.IDLE)
        return append(engine, entry, also=also, via=via)

    monkeypatch.setattr(log, "append", watching)
    _enmod(app, token)
    with pytest.raises(AccessDenied):
        research.run(app, token=token, command="ENMOD", tin=f.CARTER_CHILD, interface="test")
    with pytest.raises(AccessDenied):
        research.run(app, token="not-a-session", command="ENMOD", tin=f.CARTER, interface="test")
    assert seen == [True, True, True]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a property of SQLite's WAL
def test_sqlite_wal_is_checkpointed_in_the_background(world):
    """Committed frames are copied back to the database file by the engine's background
    checkpointer (no request pays for it), which ends with its engine."""
    app, token = world
    assert app.engine.dialect.name == "sqlite"
    path = app.engine.url.database
    time.sleep(0.5)  # let the checkpointer catch up with the set-up's writes
    before = os.stat(path).st_mtime_ns
    for _ in range(20):  # far below SQLite's own automatic checkpoint (10,000 pages)
        _enmod(app, token)
    # in WAL mode only a checkpoint writes the database file itself
    while os.stat(path).st_mtime_ns == before:  # pytest-timeout guards a hang
        time.sleep(0.05)
    assert os.stat(path).st_mtime_ns != before
    threads = [t for t in threading.enumerate() if t.name == "idrs-wal-checkpoint"]
    app.engine.dispose()
    ours = db._checkpointers[app.engine].thread
    assert ours in threads
    ours.join(timeout=5)
    assert not ours.is_alive()
