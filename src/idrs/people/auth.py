"""Signing in (password + TOTP), sessions, signing out.

Sessions are random tokens; only their SHA-256 is stored. A session ends after
``session_idle_minutes`` without use or ``session_absolute_hours`` after sign-in, whichever
comes first. One live session per employee unless ``concurrent_sessions`` is set: a new
sign-in ends the older one and says so.

Progressive delays, not a hard lock: after ``lockout_threshold`` consecutive failures the
account is locked for ``lockout_seconds``; each further failure (possible only once a lock
has lapsed) locks it again for twice as long, up to ``lockout_max_seconds``. A stranger who
types wrong passwords can so keep an employee out for minutes, not until an administrator
acts; a success or a security administrator's unlock clears the count. While locked, an
attempt is answered exactly like a wrong password (the same AUTH_FAILED, after the same
password-hashing work), so the answer never tells whether a SEID exists or is locked; the
audit entry says ACCOUNT_LOCKED and the lock shows in the security administrator's view.

Every success, failure, lockout, sign-out and expiry is an ``auth:*`` audit event. Callers:
the CLI (``idrs login``/``logout``), the HTTP API (``POST /api/v1/sessions``), research.run.

One unit of work: each state change commits in the same transaction as its audit entry
(``audit.log.record_in``). A change that gives access (a new session, with the TOTP step it
uses and the failure count it clears, and the older session it supersedes) stands only with
its entry: if the entry cannot be written, nothing is written and the sign-in is refused
(AUDIT_UNAVAILABLE). A change that only takes access away (a failure counted, a lock, a
session ended at sign-out or expiry) is written with its entry too, but if the entry cannot
be written it still commits on its own (:func:`_standing`): a refusal is never weakened
because the log is down. Each such transaction takes the log's lock first
(``audit.log.lock_first``), as the group commit does before it updates a session's
last-seen time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Dialect, select, update
from sqlalchemy.orm import Session, configure_mappers

from idrs.audit import log
from idrs.audit.events import Actor, EventType
from idrs.audit.log import AuditUnavailable
from idrs.clock import as_utc
from idrs.context import App
from idrs.crypto import random_token, sha256_hex
from idrs.db import db_datetime, session_scope
from idrs.errors import AccessDenied, IdrsError, Reason
from idrs.people import passwords, totp
from idrs.people.models import Employee, SignInSession
from idrs.people.service import normalize_seid, record

AUTH_FAILED = Reason("AUTH_FAILED", "sign-in failed: SEID, password or code not accepted")
ACCOUNT_LOCKED = Reason(
    "ACCOUNT_LOCKED", "this account is locked after repeated failures; ask a security administrator"
)
AUTH_REQUIRED = Reason("AUTH_REQUIRED", "sign in first")
SESSION_EXPIRED = Reason("SESSION_EXPIRED", "your session has expired; sign in again")
SUPERSEDED = Reason("AUTH_REQUIRED", "your session was ended by a newer sign-in; sign in again")
AUDIT_UNAVAILABLE = Reason("AUDIT_UNAVAILABLE", "the audit log cannot be written; nothing was done")

_T = TypeVar("_T")


def _standing(
    app: App, change: Callable[[Session], _T], entries: Callable[[Session, _T], object]
) -> tuple[_T, AuditUnavailable | None]:
    """Commit a change that only takes access away with its audit ``entries`` (one
    transaction, the log's lock first). If the entries cannot be written, the change is
    committed on its own all the same and the AuditUnavailable returned beside its result."""
    try:
        with session_scope(app.engine) as s:
            log.lock_first(s)
            got = change(s)
            entries(s, got)
        return got, None
    except AuditUnavailable as exc:
        with session_scope(app.engine) as s:
            return change(s), exc

_EMPLOYEE_COLUMNS = tuple(c.name for c in Employee.__table__.columns)
_SESSION_COLUMNS = ("id", "ended_at", "end_reason", "expires_at", "last_seen_at")
#: The hot path of every request: the session and its employee in one indexed join, sent
#: straight to the driver on the caller's connection (no statement compilation, no ORM).
_SESSION_LOOKUP = (
    "SELECT "  # noqa: S608 - column names from the models
    + ", ".join([f"s.{n}" for n in _SESSION_COLUMNS] + [f"e.{n}" for n in _EMPLOYEE_COLUMNS])
    + " FROM signin_session s JOIN employee e ON e.id = s.employee_id WHERE s.token_hash = :h"
)


class _SessionRow(NamedTuple):
    s_id: int
    s_ended_at: datetime | None
    s_end_reason: str | None
    s_expires_at: datetime
    s_last_seen_at: datetime


@lru_cache(maxsize=8)
def _plan(dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """The lookup in the driver's parameter style, and each column's result conversion (the
    very processors SQLAlchemy applies: SQLite keeps datetimes as text, booleans as 0/1)."""
    cols = [SignInSession.__table__.c[n] for n in _SESSION_COLUMNS] + list(
        Employee.__table__.columns
    )
    procs = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in cols)
    sql = _SESSION_LOOKUP.replace(":h", "%(h)s") if dialect.name == "postgresql" else _SESSION_LOOKUP
    return sql, procs


def _fetch_session(conn: Connection, token_hash: str) -> tuple[_SessionRow, Employee] | None:
    """The session row and its (detached) employee, or None for an unknown token."""
    sql, procs = _plan(conn.dialect)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql, {"h": token_hash})
        row = cur.fetchone()
    finally:
        cur.close()
    if row is None:
        return None
    values = [v if p is None or v is None else p(v) for p, v in zip(procs, row, strict=True)]
    n = len(_SESSION_COLUMNS)
    return _SessionRow(*values[:n]), _detached_employee(values[n:])


def employee_of_token(conn: Connection, token: str) -> Employee | None:
    """The (detached) employee a session token names, whatever the session's state; None for
    an unknown token. Reads only: it authenticates nothing (``authenticate`` does)."""
    found = _fetch_session(conn, sha256_hex(token))
    return None if found is None else found[1]


_EMPLOYEE_MAPPER = Employee.__mapper__
_EMPLOYEE_MANAGER = _EMPLOYEE_MAPPER.class_manager


def _detached_employee(values: list[Any]) -> Employee:
    """An Employee built from its column values the way the ORM loader does (no __init__)."""
    if not _EMPLOYEE_MAPPER.configured:
        configure_mappers()  # bypassing __init__ skips the lazy configuration
    emp = _EMPLOYEE_MANAGER.new_instance()
    emp.__dict__.update(zip(_EMPLOYEE_COLUMNS, values, strict=True))
    return emp  # type: ignore[no-any-return]


#: last_seen_at is refreshed at most this often (a write per request would cost more than it buys).
TOUCH_EVERY = timedelta(seconds=30)


class SignIn(NamedTuple):
    """``(token, expires_at, ended_previous)``: the token is shown once and never stored."""

    token: str
    expires_at: datetime
    ended_previous: bool


class _Raced(Exception):
    """The TOTP step was used (or the account locked) between the check and the write."""


def _safe_seid(raw: str) -> str:
    try:
        return normalize_seid(raw)
    except IdrsError:
        return "invalid"


def sign_in(
    app: App, seid: str, password: str, otp: str, interface: str, address: str | None = None
) -> SignIn:
    """Check password and TOTP; start a session. AccessDenied AUTH_FAILED / ACCOUNT_LOCKED.

    The refusal never says which part was wrong. Records auth:signin:success|failure|lockout.
    """
    who = _safe_seid(seid)
    now = app.clock.now()
    with Session(app.engine) as s:
        emp = s.scalar(select(Employee).where(Employee.seid == who))
    if emp is None or not emp.active:
        passwords.burn_time(password or "")
        _audit_failure(app, who, interface, address, "unknown_or_inactive")
        raise AccessDenied([AUTH_FAILED])
    until = lock_until(app, emp)
    if until is not None and now < until:
        passwords.burn_time(password or "")  # the work of a wrong password: no timing tell
        _audit_failure(app, who, interface, address, "locked", codes=["ACCOUNT_LOCKED"],
                       detail={"locked_until": until.isoformat()})
        raise AccessDenied([AUTH_FAILED])
    step = _check_factors(app, emp, password, otp, now)
    if step is None:
        raise _fail(app, emp, interface, address)
    try:
        return _start_session(app, emp, step, now, interface, address)
    except _Raced:
        raise _fail(app, emp, interface, address) from None


def _check_factors(app: App, emp: Employee, password: str, otp: str, now: datetime) -> int | None:
    """The TOTP step if both factors are right, else None (both are always checked)."""
    ok = True
    try:
        passwords.check_password(emp.password_hash, password or "")
    except passwords.BadPassword:
        ok = False
    step: int | None = None
    try:
        if emp.totp_secret_enc is None:
            raise totp.BadCode
        secret = app.keyring.decrypt(emp.totp_secret_enc, "employee.totp_secret")
        step = totp.check_code(secret, otp or "", now, emp.totp_last_step)
    except totp.BadCode:
        ok = False
    return step if ok else None


def lock_seconds(app: App, failures: int) -> int:
    """How long ``failures`` consecutive failures lock an account (0: not locked)."""
    over = failures - app.settings.lockout_threshold
    if over < 0:
        return 0
    return min(app.settings.lockout_max_seconds, app.settings.lockout_seconds << min(over, 20))


def lock_until(app: App, emp: Employee) -> datetime | None:
    """When the account's current lock lapses (None: never locked or cleared)."""
    if emp.locked_at is None:
        return None
    return as_utc(emp.locked_at) + timedelta(seconds=lock_seconds(app, emp.failed_logins or 0))


def _fail(app: App, emp: Employee, interface: str, address: str | None) -> AccessDenied:
    """Count one failure (atomically); at the threshold and beyond, (re)lock for a growing
    time. Returns the refusal to raise: AUTH_FAILED, the same whether or not it locks."""
    now = app.clock.now()
    actor = Actor(emp.seid, interface, address)

    def count(s: Session) -> tuple[int, int]:
        s.execute(
            update(Employee)
            .where(Employee.id == emp.id)
            .values(failed_logins=Employee.failed_logins + 1)
        )
        n = s.scalar(select(Employee.failed_logins).where(Employee.id == emp.id)) or 0
        seconds = lock_seconds(app, n)
        if seconds:
            s.execute(update(Employee).where(Employee.id == emp.id).values(locked_at=now))
        return n, seconds

    def entries(s: Session, got: tuple[int, int]) -> None:
        n, seconds = got
        log.record_in(s, app, EventType.AUTH_SIGNIN_FAILURE, actor, obj={"seid": emp.seid},
                      detail={"why": "bad_credentials", "consecutive_failures": n},
                      outcome="failure", reasons=["AUTH_FAILED"])
        if seconds:
            log.record_in(s, app, EventType.AUTH_SIGNIN_LOCKOUT, actor, obj={"seid": emp.seid},
                          detail={"consecutive_failures": n, "locked_seconds": seconds},
                          outcome="locked", reasons=[ACCOUNT_LOCKED.code])

    # the count (and lock) stands even when its entries cannot be written: so does the refusal
    _standing(app, count, entries)
    return AccessDenied([AUTH_FAILED])


def _audit_failure(
    app: App,
    seid: str,
    interface: str,
    address: str | None,
    why: str,
    codes: list[str] | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    # The refusal stands either way; an unrecorded failure never becomes a success.
    with contextlib.suppress(AuditUnavailable):
        record(
            app,
            EventType.AUTH_SIGNIN_FAILURE,
            actor=seid,
            interface=interface,
            address=address,
            outcome="failure",
            obj={"seid": seid},
            reasons=codes or ["AUTH_FAILED"],
            detail={"why": why, **(detail or {})},
        )


def _start_session(
    app: App, emp: Employee, step: int, now: datetime, interface: str, address: str | None
) -> SignIn:
    token = random_token(32)
    expires = now + timedelta(hours=app.settings.session_absolute_hours)
    try:
        return _open_session(app, emp, step, now, interface, address, token, expires)
    except AuditUnavailable:  # nothing was written: no session, no step used, none ended
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None


def _open_session(
    app: App,
    emp: Employee,
    step: int,
    now: datetime,
    interface: str,
    address: str | None,
    token: str,
    expires: datetime,
) -> SignIn:
    """The session, the step it uses, the older session it ends, and auth:signin:success:
    one transaction (AuditUnavailable, nothing written, if the entry cannot be)."""
    with session_scope(app.engine) as s:
        log.lock_first(s)
        # Atomic replay guard: the step must still be newer than the last one used, and no
        # failure counted (no lock set) since the account was read, at the moment of writing.
        res = s.execute(
            update(Employee)
            .where(
                Employee.id == emp.id,
                Employee.totp_last_step < step,
                Employee.failed_logins == (emp.failed_logins or 0),
            )
            .values(totp_last_step=step, failed_logins=0, locked_at=None)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise _Raced
        ended = 0
        if not app.settings.concurrent_sessions:
            ended = s.execute(
                update(SignInSession)
                .where(SignInSession.employee_id == emp.id, SignInSession.ended_at.is_(None))
                .values(ended_at=now, end_reason="superseded")
            ).rowcount  # type: ignore[attr-defined]
        row = SignInSession(
            token_hash=sha256_hex(token),
            employee_id=emp.id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
            interface=interface[:8],
        )
        s.add(row)
        s.flush()
        log.record_in(s, app, EventType.AUTH_SIGNIN_SUCCESS, Actor(emp.seid, interface, address),
                      obj={"seid": emp.seid, "session": row.id},
                      detail={"ended_previous": ended})
    return SignIn(token, expires, ended > 0)


def _end_in(s: Session, session_id: int, now: datetime, reason: str) -> None:
    s.execute(
        update(SignInSession)
        .where(SignInSession.id == session_id, SignInSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


def _end(app: App, session_id: int, now: datetime, reason: str) -> None:
    with session_scope(app.engine) as s:
        _end_in(s, session_id, now, reason)


def authenticate(
    app: App,
    token: str | None,
    *,
    interface: str = "api",
    address: str | None = None,
    conn: Connection | None = None,
) -> Employee:
    """The employee behind a live session token; AccessDenied AUTH_REQUIRED / SESSION_EXPIRED.

    An expired session is ended and recorded (auth:session:expire). The returned Employee is
    detached (read-only use).
    """
    return authenticate_session(app, token, interface=interface, address=address, conn=conn)[0]


def _touch_write(dialect: str, session_id: int, now: datetime) -> tuple[str, dict[str, Any]]:
    """The last-seen update of a sign-in session, as a write for an audit append's ``also``."""
    at = db_datetime(dialect, now)
    return "UPDATE signin_session SET last_seen_at = :at WHERE id = :sid", {"at": at, "sid": session_id}


def authenticate_session(
    app: App,
    token: str | None,
    *,
    interface: str = "api",
    address: str | None = None,
    conn: Connection | None = None,
    touches: list[tuple[str, dict[str, Any]]] | None = None,
) -> tuple[Employee, int]:
    """:func:`authenticate`, also returning the id of the live sign-in session.

    Every check is made on each call from the stored rows (one indexed join, no cache): a
    session ended, an account locked or deactivated a moment ago refuses this request.

    ``touches``: a caller that holds a connection (``conn``) and commits its own audit entry
    passes a list; the session's last-seen update is then appended to it as a write for that
    commit instead of being made on a second pooled connection (many concurrent requests
    each holding one connection and waiting for another would exhaust the pool).
    """
    if not token:
        raise AccessDenied([AUTH_REQUIRED])
    now = app.clock.now()
    if conn is None:
        with app.engine.connect() as own:
            found = _fetch_session(own, sha256_hex(token))
    else:
        found = _fetch_session(conn, sha256_hex(token))
    if found is None:
        raise AccessDenied([AUTH_REQUIRED])
    sess, emp = found
    # from here on the token names its employee: a refusal is theirs (recorded under them)
    if sess.s_ended_at is not None:
        if sess.s_end_reason in ("idle", "absolute"):
            raise AccessDenied([SESSION_EXPIRED], seid=emp.seid)
        ended = SUPERSEDED if sess.s_end_reason == "superseded" else AUTH_REQUIRED
        raise AccessDenied([ended], seid=emp.seid)
    until = lock_until(app, emp)
    if not emp.active or (until is not None and now < until):
        _end(app, sess.s_id, now, "account_disabled")
        raise AccessDenied([AUTH_REQUIRED], seid=emp.seid)
    idle = timedelta(minutes=app.settings.session_idle_minutes)
    why = None
    if now >= as_utc(sess.s_expires_at):
        why = "absolute"
    elif now - as_utc(sess.s_last_seen_at) >= idle:
        why = "idle"
    if why:
        sid, reason = int(sess.s_id), why
        # ended with its entry; if the entry cannot be written, ended all the same
        _standing(
            app,
            lambda s: _end_in(s, sid, now, reason),
            lambda s, _: log.record_in(
                s, app, EventType.AUTH_SESSION_EXPIRE, Actor(emp.seid, interface, address),
                obj={"seid": emp.seid, "session": sid}, detail={"why": reason},
                outcome="expired"),
        )
        raise AccessDenied([SESSION_EXPIRED], seid=emp.seid)
    if now - as_utc(sess.s_last_seen_at) >= TOUCH_EVERY:
        if touches is not None:
            touches.append(_touch_write(app.engine.dialect.name, int(sess.s_id), now))
            return emp, int(sess.s_id)
        with session_scope(app.engine) as s:
            s.execute(
                update(SignInSession).where(SignInSession.id == sess.s_id).values(last_seen_at=now)
            )
    return emp, int(sess.s_id)


def sign_out(
    app: App, token: str | None, *, interface: str = "cli", address: str | None = None
) -> bool:
    """End the session of ``token``; True if a live session was ended. Records auth:session:end."""
    if not token:
        return False
    now = app.clock.now()

    def end(s: Session) -> tuple[int, str] | None:
        row = s.execute(
            select(SignInSession.id, Employee.seid)
            .join(Employee, Employee.id == SignInSession.employee_id)
            .where(SignInSession.token_hash == sha256_hex(token), SignInSession.ended_at.is_(None))
        ).one_or_none()
        if row is None:
            return None
        _end_in(s, row.id, now, "signout")
        return int(row.id), str(row.seid)

    def entry(s: Session, ended: tuple[int, str] | None) -> None:
        if ended is not None:
            log.record_in(s, app, EventType.AUTH_SESSION_END, Actor(ended[1], interface, address),
                          obj={"seid": ended[1], "session": ended[0]},
                          detail={"why": "signout"})

    # the session ends even when its entry cannot be written (AuditUnavailable then, as ever)
    ended, failed = _standing(app, end, entry)
    if ended is None:
        return False
    if failed is not None:
        raise failed
    return True
