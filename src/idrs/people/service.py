"""Creating units and employees, the first security administrator, unlocking accounts.

Callers: the CLI (operator commands, acting as ``os:<user>``), the seed and demo, the tests.
Every change is recorded in the audit log (``admin:*`` events) in the change's own
transaction (``audit.log.record_in``): if the entry cannot be written, the change does not
stand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.audit import log
from idrs.audit.events import Actor, AuditEventType, EventType
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import BadIdentifier, is_synthetic_tin, normalize_tin
from idrs.people import passwords, totp
from idrs.people.models import Employee, Unit
from idrs.people.roles import join, parse_codes, parse_roles, profile_for
from idrs.vocabulary import ALL_CODES, Role

_SEID = re.compile(r"^[A-Z0-9]{1,8}$")
_UNIT = re.compile(r"^[A-Z0-9_-]{1,20}$")
KINDS = ("employee", "detailee", "contractor", "appointee")
AUTHORITIES = ("adoption", "employee_accounts", "sensitive_accounts")
#: The unit an employee lands in when none is named; its ceiling is every command code.
DEFAULT_UNIT = "HQ"
#: The unit of the first security administrator; its ceiling holds no taxpayer command code.
SECURITY_UNIT = "SEC"
FIRST_ADMIN_SEID = "SA001"


def record(app: App, event: AuditEventType, *, actor: str, interface: str = "cli",
           address: str | None = None, outcome: str = "success", **kw: Any) -> int:
    """Append one audit entry for a people event and return its index (``audit.log.record``:
    committed on its own; a change records with ``audit.log.record_in`` instead)."""
    return log.record(app, event, Actor(actor, interface, address), outcome=outcome, **kw)


def normalize_seid(raw: str) -> str:
    seid = (raw or "").strip().upper()
    if not _SEID.match(seid):
        raise IdrsError("SEID must be 1 to 8 letters or digits")
    return seid


def create_unit(app: App, code: str, name: str | None = None, ceiling: Iterable[str] | str | None = None,
                *, actor: str = "system", interface: str = "cli") -> Unit:
    """Create a unit with its ceiling profile (default: every command code); records it."""
    code = (code or "").strip().upper()
    if not _UNIT.match(code):
        raise IdrsError("unit code must be 1 to 20 letters, digits, '-' or '_'")
    codes = ALL_CODES if ceiling is None else parse_codes(ceiling)
    with session_scope(app.engine) as s:
        if s.scalar(select(Unit.id).where(Unit.code == code)) is not None:
            raise Conflict(f"unit {code} already exists")
        unit = Unit(code=code, name=name or code, ceiling=join(codes))
        s.add(unit)
        log.record_in(s, app, EventType.ADMIN_UNIT_CREATE, Actor(actor, interface),
                      obj={"unit": code}, detail={"ceiling": sorted(codes)})
    return unit


def _unit_for(app: App, session: Session, code: str | None, actor: str) -> Unit:
    code = (code or DEFAULT_UNIT).strip().upper()
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is not None:
        return unit
    if code != DEFAULT_UNIT:
        raise NotFound(f"no unit {code} (create it with 'idrs unit add')")
    # Created and recorded in the caller's transaction: both commit, or neither.
    unit = Unit(code=DEFAULT_UNIT, name="Headquarters", ceiling=join(ALL_CODES))
    session.add(unit)
    log.record_in(session, app, EventType.ADMIN_UNIT_CREATE, Actor(actor),
                  obj={"unit": DEFAULT_UNIT}, detail={"ceiling": sorted(ALL_CODES)})
    return unit


def _check_tin(app: App, tin: str | None) -> str | None:
    if tin is None or tin == "":
        return None
    try:
        canonical = normalize_tin(tin)
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None
    if app.settings.synthetic_only and not is_synthetic_tin(canonical):
        raise ValidationFailed(["tin: not in the synthetic range (area 900-999, group 00-49)"])
    return canonical


def _check_authorities(authorities: Iterable[str]) -> frozenset[str]:
    out = frozenset(a.strip().lower() for a in authorities if a.strip())
    unknown = sorted(out - set(AUTHORITIES))
    if unknown:
        raise IdrsError(f"unknown authority {', '.join(unknown)}; valid: {', '.join(AUTHORITIES)}")
    return out


def create_employee(
    app: App,
    session: Session | None = None,
    *,
    seid: str,
    name: str,
    tin: str | None,
    roles: Iterable[str] | str,
    unit: str | None = None,
    kind: str = "employee",
    authorities: Iterable[str] = (),
    home_org: str | None = None,
    actor: str = "system",
    interface: str = "cli",
    unax_attested_at: datetime | None = None,
    credentials: bool = True,
) -> dict[str, str]:
    """Create an employee with a random password and a TOTP secret; return them once.

    The profile is the roles' codes within the unit's ceiling. With ``session`` the caller
    owns the transaction (the row is flushed, the audit entry appended at once); without it
    the employee is committed here. Records ``admin:employee:create`` (SEID, roles, unit).
    With ``credentials=False`` (the seed: argon2 is slow) no password or TOTP secret is made
    (the returned ones are empty; a security administrator resets the account); the row and
    the audit entry are otherwise the same.
    """
    seid = normalize_seid(seid)
    role_set = parse_roles(roles)
    canonical_tin = _check_tin(app, tin)
    if kind not in KINDS:
        raise IdrsError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    auth = _check_authorities(authorities)
    if not (name or "").strip():
        raise IdrsError("name is required")
    password = passwords.generate_password() if credentials else ""
    secret = totp.new_secret() if credentials else ""
    ring = app.keyring

    def _insert(s: Session) -> Employee:
        if s.scalar(select(Employee.id).where(Employee.seid == seid)) is not None:
            raise Conflict(f"employee {seid} already exists")
        u = _unit_for(app, s, unit, actor)
        emp = Employee(
            seid=seid, name=name.strip(), kind=kind, home_org=home_org, unit_id=u.id,
            tin_index=ring.tin_index(canonical_tin) if canonical_tin else None,
            tin_enc=ring.encrypt(canonical_tin, "employee.tin") if canonical_tin else None,
            roles=join(role_set), profile=join(profile_for(role_set, u.ceiling.split(","))),
            authorities=join(auth),
            password_hash=passwords.hash_password(password) if credentials else None,
            totp_secret_enc=ring.encrypt(secret, "employee.totp_secret") if credentials else None,
            totp_last_step=0,
            failed_logins=0, active=True, created_at=app.clock.now(),
            # UNAX training recorded by the learning system (None: must attest before access)
            training_attested_at=unax_attested_at,
        )
        s.add(emp)
        s.flush()
        # The new employee's conflicts (own, spouse, relatives...) from day one, same transaction.
        from idrs.access import conflicts  # here: a command that creates no one skips it

        conflicts.refresh_for_employees(s, app, [emp.id])
        return emp

    def _record(s: Session, emp: Employee) -> None:
        unit_code = s.get(Unit, emp.unit_id).code  # type: ignore[union-attr]
        log.record_in(s, app, EventType.ADMIN_EMPLOYEE_CREATE, Actor(actor, interface),
                      obj={"seid": seid}, detail={"roles": sorted(role_set), "unit": unit_code,
                                                  "kind": kind, "profile": sorted(emp.profile_set),
                                                  "authorities": sorted(auth)})

    if session is not None:
        # The caller owns the transaction: the entry is written in it and commits with it.
        _record(session, _insert(session))
    else:
        with session_scope(app.engine) as s:
            _record(s, _insert(s))
    return {"seid": seid, "password": password, "totp_secret": secret}


def ensure_first_admin(app: App, *, actor: str = "system") -> dict[str, str] | None:
    """Create the first security administrator if no active one exists; credentials or None.

    Callers: ``idrs init`` and the demo. The administrator sits in unit SEC, whose ceiling
    holds no command code, so the account can manage people but open no taxpayer account.
    """
    with session_scope(app.engine) as s:
        admins = s.scalars(select(Employee).where(Employee.active.is_(True))).all()
        if any(Role.SECURITY_ADMIN in e.role_set for e in admins):
            return None
        has_sec = s.scalar(select(Unit.id).where(Unit.code == SECURITY_UNIT)) is not None
        taken = {e.seid for e in s.scalars(select(Employee)).all()}
    if not has_sec:
        create_unit(app, SECURITY_UNIT, "Security administration", ceiling=[], actor=actor)
    seid, n = FIRST_ADMIN_SEID, 1
    while seid in taken:
        n += 1
        seid = f"SA{n:03d}"
    return create_employee(app, seid=seid, name="Security Administrator", tin=None,
                           roles=[Role.SECURITY_ADMIN], unit=SECURITY_UNIT, actor=actor)


def unlock(app: App, admin_seid: str | None = None, *, seid: str, actor: str | None = None,
           interface: str = "cli", address: str | None = None) -> None:
    """Clear a lockout. ``admin_seid`` (a signed-in security administrator) or the operator.

    A security administrator may not unlock themself. Records ``admin:employee:unlock``.
    """
    seid = normalize_seid(seid)
    who = actor or (admin_seid or "system")
    with session_scope(app.engine) as s:
        if admin_seid is not None:
            admin = s.scalar(select(Employee).where(Employee.seid == normalize_seid(admin_seid)))
            if admin is None or not admin.active or Role.SECURITY_ADMIN not in admin.role_set:
                raise AccessDenied([Reason("NOT_IN_PROFILE", "only a security administrator may unlock accounts")])
            if admin.seid == seid:
                raise AccessDenied([Reason("SELF_APPROVAL", "you may not unlock your own account")])
        emp = s.scalar(select(Employee).where(Employee.seid == seid).with_for_update())
        if emp is None:
            raise NotFound(f"no employee {seid}")
        was_locked = emp.locked_at is not None
        emp.locked_at = None
        emp.failed_logins = 0
        log.record_in(s, app, EventType.ADMIN_EMPLOYEE_UNLOCK, Actor(who, interface, address),
                      obj={"seid": seid}, detail={"was_locked": was_locked})
