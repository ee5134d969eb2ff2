"""Many concurrent research calls on one session while its last-seen update is due (SQLite and
PostgreSQL): each call holds one pooled connection for its whole life, so the update must ride
with the audit commit instead of asking the pool for a second connection (more concurrent
calls than the pool holds would otherwise wait on each other until the pool timed out)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import text

from idrs import research
from idrs.clock import as_utc
from idrs.crypto import sha256_hex
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture
from tests.integration.test_research import _sign_in


def _last_seen(app, token) -> datetime:
    with app.engine.connect() as conn:
        value = conn.execute(
            text("SELECT last_seen_at FROM signin_session WHERE token_hash = :h"),
            {"h": sha256_hex(token)},
        ).scalar_one()
    if isinstance(value, str):  # SQLite keeps SQLAlchemy's text form of a naive UTC time
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return as_utc(value)


def test_a_call_due_a_touch_needs_no_second_connection(app):
    """The pool has one connection left: the call takes it, and its touch must not wait for
    another (it did: every request in a full pool then waited for the others)."""
    f.carter_household(app)
    token = _sign_in(app, "EX001", "examiner", "900-40-0001")
    f.open_case(app, "EX001", f.CARTER, "C-1")
    pool = app.engine.pool
    pool._timeout = 2  # a pool wait fails fast instead of after 30 s
    app.clock.advance(minutes=1)  # the session's last-seen update is now due
    before = _last_seen(app, token)
    held = []
    try:
        while pool.checkedout() < pool.size() + pool._max_overflow - 1:  # all but one
            held.append(app.engine.connect())
        ans = research.run(app, token=token, command="ENMOD", tin=f.CARTER, case="C-1",
                           interface="test")
    finally:
        for conn in held:
            conn.close()
    assert ans.audit_index is not None
    assert before < _last_seen(app, token) == as_utc(app.clock.now())


def test_many_concurrent_calls_due_a_touch_all_answer(app):
    f.carter_household(app)
    token = _sign_in(app, "EX001", "examiner", "900-40-0001")
    f.open_case(app, "EX001", f.CARTER, "C-1")
    app.engine.pool._timeout = 5
    app.clock.advance(minutes=1)
    calls = 48  # more than either pool holds (SQLite 5 + 10, PostgreSQL 10 + 20)

    def enmod(_: int) -> int:
        return research.run(app, token=token, command="ENMOD", tin=f.CARTER, case="C-1",
                            interface="test").audit_index

    with ThreadPoolExecutor(max_workers=calls) as workers:
        indexes = list(workers.map(enmod, range(calls), timeout=120))
    assert len(set(indexes)) == calls
    assert _last_seen(app, token) == as_utc(app.clock.now())
