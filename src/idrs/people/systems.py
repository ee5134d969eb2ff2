"""Machine principals: other systems with their own credentials, sessions and audit entries.

A machine principal is not an employee: it has a ``kind`` that says what it may do, no
roles, no profile, no TOTP, and it acts under its own name (``system:<name>`` in the audit
log). Kinds:

- ``contact_feed``: the telephony or correspondence intake; it records the calls, letters
  and visits routed to an employee (``POST /api/v1/contacts/inbound``), the agency's record
  an employee's contact rests on;
- ``agency_system``: another agency's system (its grants are a later matter).

Credentials: a random secret (256 bits), shown once at creation or rotation and stored only
as an argon2id hash (``people.passwords``); ``start_session`` exchanges it for a bearer token
(``POST /api/v1/system-sessions``) of which only the SHA-256 is stored, valid
:data:`SESSION_MINUTES`. A rotation ends every live session of the principal at once.

Separation: the secret and the tokens live in their own tables, so an employee's token is
unknown here and a machine's token is unknown to ``people.auth`` (401 either way), and a
machine name is never a SEID. A live employee session presented where a machine is expected
is refused and recorded (``WRONG_PRINCIPAL``, ``auth:system:deny``), as is a machine of the
wrong kind.

One unit of work: a principal's creation, a rotation (the new secret and the end of every
live token) and a new machine session each commit in the same transaction as their audit
entry (``audit.log.record_in``); if the entry cannot be written, nothing is written and the
call fails (AuditUnavailable; a session: AUDIT_UNAVAILABLE).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from idrs.audit import log
from idrs.audit.events import Actor, EventType
from idrs.audit.log import AuditUnavailable
from idrs.clock import as_utc
from idrs.context import App
from idrs.crypto import random_token, sha256_hex
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, NotFound, Reason, ValidationFailed
from idrs.people import passwords
from idrs.people.models import SignInSession, SystemPrincipal, SystemSession
from idrs.people.service import record

CONTACT_FEED = "contact_feed"
AGENCY_SYSTEM = "agency_system"
KINDS = (CONTACT_FEED, AGENCY_SYSTEM)
#: how long a machine's bearer token lives (it asks for a new one with its secret)
SESSION_MINUTES = 60
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

SYSTEM_AUTH_FAILED = Reason("AUTH_FAILED", "system credentials not accepted")
AUTH_REQUIRED = Reason("AUTH_REQUIRED", "present a system session token")
WRONG_PRINCIPAL = Reason(
    "WRONG_PRINCIPAL", "this route is for a system of another kind, not for these credentials"
)


@dataclass(frozen=True)
class Principal:
    """A signed-in machine principal (what the routes see)."""

    id: int
    name: str
    kind: str
    agency: str | None

    @property
    def actor(self) -> str:
        """Its name in the audit log (never a SEID: SEIDs have no ':')."""
        return f"system:{self.name}"


def _name(raw: str) -> str:
    name = (raw or "").strip().lower()
    if not _NAME.match(name):
        raise ValidationFailed(
            ["name: 1 to 40 lowercase letters, digits or '-' (letter or digit first)"]
        )
    return name


def add_system(
    app: App, *, name: str, kind: str, agency: str | None = None, actor: str, interface: str = "cli"
) -> dict[str, Any]:
    """Create a machine principal; returns its credentials (the secret, shown this once)."""
    name = _name(name)
    if kind not in KINDS:
        raise ValidationFailed([f"kind: one of {', '.join(KINDS)}"])
    agency = (agency or "").strip() or None
    if agency is not None and len(agency) > 120:
        raise ValidationFailed(["agency: at most 120 characters"])
    if kind == AGENCY_SYSTEM and agency is None:
        raise ValidationFailed(["agency: required for an agency_system"])
    secret = secrets.token_urlsafe(32)
    secret_hash = passwords.hash_password(secret)  # before the write lock: argon2 is slow
    with session_scope(app.engine) as s:
        if s.scalar(select(SystemPrincipal.id).where(SystemPrincipal.name == name)) is not None:
            raise Conflict(f"system {name} already exists")
        s.add(
            SystemPrincipal(
                name=name,
                kind=kind,
                agency=agency,
                secret_hash=secret_hash,
                active=True,
                created_at=app.clock.now(),
            )
        )
        # the principal stands only with its entry (AuditUnavailable: neither is written)
        index = log.record_in(
            s, app, EventType.ADMIN_SYSTEM_CREATE, Actor(actor, interface),
            obj={"system": name, "kind": kind}, detail={"agency": agency} if agency else None,
        )
    return {"system": name, "kind": kind, "agency": agency, "secret": secret, "audit_index": index}


def rotate_secret(app: App, *, name: str, actor: str, interface: str = "cli") -> dict[str, Any]:
    """A new secret for ``name`` (shown once); the old one and every live token stop at once."""
    name = _name(name)
    secret = secrets.token_urlsafe(32)
    secret_hash = passwords.hash_password(secret)  # before the write lock: argon2 is slow
    now = app.clock.now()
    with session_scope(app.engine) as s:
        p = s.scalar(select(SystemPrincipal).where(SystemPrincipal.name == name))
        if p is None:
            raise NotFound(f"no system {name}")
        kind = p.kind
        p.secret_hash = secret_hash
        p.rotated_at = now
        s.execute(
            update(SystemSession)
            .where(SystemSession.principal_id == p.id, SystemSession.ended_at.is_(None))
            .values(ended_at=now)
        )
        # the new secret stands only with its entry (AuditUnavailable: the old one stays)
        index = log.record_in(
            s, app, EventType.ADMIN_SYSTEM_ROTATE, Actor(actor, interface),
            obj={"system": name, "kind": kind},
        )
    return {"system": name, "kind": kind, "secret": secret, "audit_index": index}


def list_systems(app: App) -> list[dict[str, Any]]:
    """Every machine principal (never a secret or its hash)."""
    with session_scope(app.engine) as s:
        rows = s.scalars(select(SystemPrincipal).order_by(SystemPrincipal.name)).all()
        return [
            {
                "system": p.name,
                "kind": p.kind,
                "agency": p.agency,
                "active": p.active,
                "created_at": as_utc(p.created_at).isoformat(),
                "rotated_at": as_utc(p.rotated_at).isoformat() if p.rotated_at else None,
            }
            for p in rows
        ]


def _failure(app: App, name: str, interface: str, address: str | None, why: str) -> None:
    with contextlib.suppress(AuditUnavailable):  # the refusal stands either way
        record(
            app,
            EventType.AUTH_SYSTEM_FAILURE,
            actor=f"system:{name}",
            interface=interface,
            address=address,
            outcome="failure",
            obj={"system": name},
            reasons=["AUTH_FAILED"],
            detail={"why": why},
        )


def start_session(
    app: App, *, name: str, secret: str, interface: str = "api", address: str | None = None
) -> dict[str, Any]:
    """Exchange a machine's name and secret for a bearer token; AccessDenied AUTH_FAILED.

    The answer never says which part was wrong; an unknown name costs the same hashing work.
    """
    try:
        who = _name(name)
    except ValidationFailed:
        who = "invalid"
    with session_scope(app.engine) as s:
        p = s.scalar(select(SystemPrincipal).where(SystemPrincipal.name == who))
        found = (p.id, p.kind, p.secret_hash, p.active) if p is not None else None
    if found is None or not found[3]:
        passwords.burn_time(secret or "")
        _failure(app, who, interface, address, "unknown_or_inactive")
        raise AccessDenied([SYSTEM_AUTH_FAILED])
    try:
        passwords.check_password(found[2], secret or "")
    except passwords.BadPassword:
        _failure(app, who, interface, address, "bad_secret")
        raise AccessDenied([SYSTEM_AUTH_FAILED]) from None
    token = random_token(32)
    now = app.clock.now()
    expires = now + timedelta(minutes=SESSION_MINUTES)
    try:
        with session_scope(app.engine) as s:
            row = SystemSession(
                token_hash=sha256_hex(token), principal_id=found[0], created_at=now,
                expires_at=expires,
            )
            s.add(row)
            s.flush()
            # the session stands only with its entry
            log.record_in(
                s, app, EventType.AUTH_SYSTEM_SUCCESS, Actor(f"system:{who}", interface, address),
                obj={"system": who, "kind": found[1], "session": row.id},
            )
    except AuditUnavailable:  # nothing was written
        raise AccessDenied(
            [Reason("AUDIT_UNAVAILABLE", "the audit log cannot be written; nothing was done")]
        ) from None
    return {"token": token, "expires_at": expires, "system": who, "kind": found[1]}


def _deny(
    app: App, actor: str, what: str, interface: str, address: str | None, detail: dict[str, Any]
) -> AccessDenied:
    idx = None
    with contextlib.suppress(AuditUnavailable):
        idx = record(
            app,
            EventType.AUTH_SYSTEM_DENY,
            actor=actor,
            interface=interface,
            address=address,
            outcome="deny",
            obj={"what": what},
            reasons=[WRONG_PRINCIPAL.code],
            detail=detail,
        )
    return AccessDenied([WRONG_PRINCIPAL], idx)


def authenticate(
    app: App,
    token: str | None,
    *,
    kinds: frozenset[str],
    what: str,
    interface: str = "api",
    address: str | None = None,
) -> Principal:
    """The machine behind a live system token, of one of ``kinds``.

    401 (AUTH_REQUIRED) for no token or one this table does not know; 403 WRONG_PRINCIPAL,
    recorded, for a live *employee* session or a machine of another kind.
    """
    if not token:
        raise AccessDenied([AUTH_REQUIRED])
    h = sha256_hex(token)
    now = app.clock.now()
    with session_scope(app.engine) as s:
        row = s.execute(
            select(
                SystemSession.ended_at,
                SystemSession.expires_at,
                SystemPrincipal.id,
                SystemPrincipal.name,
                SystemPrincipal.kind,
                SystemPrincipal.agency,
                SystemPrincipal.active,
            )
            .join(SystemPrincipal, SystemPrincipal.id == SystemSession.principal_id)
            .where(SystemSession.token_hash == h)
        ).first()
        employee = None
        if row is None:
            employee = s.execute(
                select(SignInSession.employee_id, SignInSession.ended_at).where(
                    SignInSession.token_hash == h
                )
            ).first()
    if row is None:
        if employee is not None and employee[1] is None:
            from idrs.people.models import Employee

            with session_scope(app.engine) as s:
                seid = s.scalar(select(Employee.seid).where(Employee.id == employee[0]))
            raise _deny(
                app, seid or "unknown", what, interface, address, {"presented": "employee_session"}
            )
        raise AccessDenied([AUTH_REQUIRED])
    ended, expires, pid, name, kind, agency, active = row
    if ended is not None or not active or now >= as_utc(expires):
        raise AccessDenied([AUTH_REQUIRED])
    if kind not in kinds:
        raise _deny(app, f"system:{name}", what, interface, address, {"kind": kind})
    return Principal(pid, name, kind, agency)
