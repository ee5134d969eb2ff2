"""Security administration: units and their ceilings, roles and profiles, two-person changes.

Callers: the CLI (``idrs employee …`` / ``idrs unit …`` as the employee signed in with
``idrs login``), the HTTP API (``idrs.api.admin``) and the web pages
(``idrs.web.admin_pages``). Every function takes the acting employee as an :class:`Actor`
and checks, itself, that the actor may act (fail closed: a check raises, never returns a
bool). The rules, and the reason code each refusal carries:

- only an active, unlocked **security administrator** acts (``NOT_IN_PROFILE``);
- **scope**: an administrator of the security unit ``SEC`` (the agency's security office)
  administers every unit; any other administrator (a unit security representative)
  administers their own unit plus each unit named by an ``admin:UNIT`` authority on their
  record (``OUT_OF_SCOPE`` otherwise). Unlocking is the exception: any security
  administrator may unlock any account but their own (it restores no privilege);
- nobody administers **their own record** (``SELF_ADMINISTRATION``);
- a profile must lie inside the **unit's ceiling** (``CEILING_EXCEEDED``, naming the codes);
- a change that **adds** a restricted command code, role or authority (``RESTRICTED_*``;
  research codes too for an auditor, privacy staff or a security administrator, issue 13.10)
  is stored ``pending`` and applies only when a *different* security administrator of the
  subject's unit confirms it — never the requester (``SELF_APPROVAL``), never the subject
  (``SELF_ADMINISTRATION``) — within ``PENDING_TTL`` (72 hours); it may be rejected, and it
  expires otherwise. Removals and other additions apply at once. One pending change per
  employee at a time (409).

Every change, every refusal and every expiry appends one ``admin:*`` audit entry naming
employees by SEID only (never a name, TIN or note). Each change is also a
:class:`~idrs.people.models.ProfileChange` row, a durable before/after history.

Why changes commit first and are recorded after (as ``people.service`` does): the audit log
appends on its own connection, and on SQLite a transaction that holds the write lock cannot
wait for it. A write transaction here starts with a write (``_lock``) so that SQLite takes its
write lock before anything is read (no stale snapshot to upgrade) and PostgreSQL locks the row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from idrs.audit import log
from idrs.audit.events import Actor, EventType
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import screen_text
from idrs.people import service
from idrs.people.models import Employee, ProfileChange, SignInSession, Unit
from idrs.people.results import ActiveSet, CeilingSet, Unlocked
from idrs.people.roles import RESTRICTED_ROLES, WATCH_ROLES, join, parse_codes, parse_roles
from idrs.vocabulary import ADJUSTMENT_CODES, RESEARCH_CODES, Role

T = TypeVar("T")

#: Adding any of these needs a second security administrator. Why these: adjustment codes
#: change accounts (a refund redirected, a tax abated); the roles (people.roles
#: RESTRICTED_ROLES) approve other people's adjustments, grants or profiles; the authorities
#: open protected and sensitive accounts.
RESTRICTED_CODES: frozenset[str] = frozenset(ADJUSTMENT_CODES)
#: restricted too when the employee holds one of ``WATCH_ROLES`` (see restricted_additions)
RESEARCH: frozenset[str] = frozenset(RESEARCH_CODES)
#: every authority is restricted, the ``admin:UNIT`` scopes included
RESTRICTED_AUTHORITIES: frozenset[str] = frozenset(service.AUTHORITIES)
SCOPE_PREFIX = "admin:"
PENDING_TTL = timedelta(hours=72)
MAX_NOTE = 500
STATUSES = ("pending", "applied", "confirmed", "rejected", "expired")

SELF = "SELF_ADMINISTRATION"


@dataclass(frozen=True)
class Sets:
    """An employee's roles, command-code profile and authorities."""

    roles: frozenset[str]
    codes: frozenset[str]
    authorities: frozenset[str]

    @classmethod
    def of(cls, emp: Employee) -> Sets:
        return cls(
            frozenset(emp.role_set), frozenset(emp.profile_set), frozenset(emp.authority_set)
        )


# -- pure rules -----------------------------------------------------------------------------


def restricted_additions(before: Sets, after: Sets) -> list[str]:
    """The restricted items ``after`` adds to ``before`` (``code:X``, ``role:X``, ``authority:X``).

    Research codes are restricted for someone who watches the system (``WATCH_ROLES``:
    auditor, privacy staff, security administrator, authorizing official): a research code
    added while they hold such a role, or such a role added while they hold research codes
    (so removing the role, adding the codes and adding the role back is caught too).
    """
    added_codes = after.codes - before.codes
    codes = added_codes & RESTRICTED_CODES
    roles = (after.roles - before.roles) & RESTRICTED_ROLES
    watching = after.roles & WATCH_ROLES
    if watching:
        codes |= added_codes & RESEARCH
        if after.codes & RESEARCH:
            roles |= watching - before.roles
    out = [f"code:{c}" for c in sorted(codes)]
    out += [f"role:{r}" for r in sorted(roles)]
    out += [
        f"authority:{a}"
        for a in sorted(after.authorities - before.authorities)
        if a in RESTRICTED_AUTHORITIES or a.startswith(SCOPE_PREFIX)
    ]
    return out


def outside_ceiling(codes: Iterable[str], ceiling: Iterable[str]) -> list[str]:
    """The codes of a profile that its unit's ceiling does not hold (sorted)."""
    return sorted(set(codes) - set(ceiling))


def scope_units(admin_unit: str, authorities: Iterable[str]) -> frozenset[str] | None:
    """The unit codes an administrator may administer; None means every unit (unit SEC)."""
    if admin_unit == service.SECURITY_UNIT:
        return None
    extra = {a[len(SCOPE_PREFIX) :] for a in authorities if a.startswith(SCOPE_PREFIX)}
    return frozenset({admin_unit} | extra)


def _split(value: str | None) -> frozenset[str]:
    return frozenset(x for x in (value or "").split(",") if x)


# -- input ---------------------------------------------------------------------------------


def _seid(raw: str, field: str = "seid") -> str:
    try:
        return service.normalize_seid(raw)
    except IdrsError as exc:
        raise ValidationFailed([f"{field}: {exc}"]) from None


def _roles(raw: str | Iterable[str]) -> frozenset[str]:
    try:
        return frozenset(str(r) for r in parse_roles(raw))
    except IdrsError as exc:
        raise ValidationFailed([f"roles: {exc}"]) from None


def _codes(raw: str | Iterable[str], field: str = "codes") -> frozenset[str]:
    try:
        return parse_codes(raw)
    except IdrsError as exc:
        raise ValidationFailed([f"{field}: {exc}"]) from None


def _authorities(raw: str | Iterable[str]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    out: set[str] = set()
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if item.lower().startswith(SCOPE_PREFIX):
            out.add(SCOPE_PREFIX + item[len(SCOPE_PREFIX) :].strip().upper())
        elif item.lower() in service.AUTHORITIES:
            out.add(item.lower())
        else:
            raise ValidationFailed(
                [
                    f"authorities: unknown authority {item!r}; valid: "
                    + ", ".join(service.AUTHORITIES)
                    + f", {SCOPE_PREFIX}UNIT"
                ]
            )
    return frozenset(out)


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed([f"note: at most {MAX_NOTE} characters"])
    screen_text(note, "note")  # kept with the change record: no taxpayer identifier in it
    return note or None


def _unit_code(raw: str) -> str:
    code = (raw or "").strip().upper()
    if not code or len(code) > 20:
        raise ValidationFailed(["unit: a unit code of 1 to 20 characters is required"])
    return code


# -- checks --------------------------------------------------------------------------------


def _deny(code: str, message: str) -> AccessDenied:
    return AccessDenied([Reason(code, message)])


def _admin(s: Session, actor: Actor) -> Employee:
    """The acting security administrator, freshly read; NOT_IN_PROFILE otherwise."""
    emp = s.scalar(select(Employee).where(Employee.seid == actor.seid))
    if (
        emp is None
        or not emp.active
        or emp.locked_at is not None
        or Role.SECURITY_ADMIN not in emp.role_set
    ):
        raise _deny("NOT_IN_PROFILE", "security administration needs the security_admin role")
    return emp


def _scope(s: Session, admin: Employee) -> frozenset[str]:
    unit = s.get(Unit, admin.unit_id)
    scope = scope_units(unit.code if unit else "", admin.authority_set)
    if scope is None:
        return frozenset(s.scalars(select(Unit.code)).all())
    return scope


def _require_scope(s: Session, admin: Employee, unit_code: str) -> None:
    if unit_code not in _scope(s, admin):
        raise _deny("OUT_OF_SCOPE", f"unit {unit_code} is outside the units you administer")


def _not_self(admin: Employee, subject: Employee) -> None:
    if admin.id == subject.id:
        raise _deny(SELF, "nobody administers their own record; ask another security administrator")


def _employee(s: Session, seid: str) -> Employee:
    emp = s.scalar(select(Employee).where(Employee.seid == seid))
    if emp is None:
        raise NotFound(f"no employee {seid}")
    return emp


def _unit(s: Session, code: str) -> Unit:
    unit = s.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        raise NotFound(f"no unit {code}")
    return unit


def _subject(s: Session, actor: Actor, seid: str) -> tuple[Employee, Employee, Unit]:
    """(administrator, employee, unit) once the actor may administer that employee's unit."""
    admin = _admin(s, actor)
    emp = _employee(s, seid)
    unit = s.get(Unit, emp.unit_id)
    assert unit is not None  # a foreign key
    _require_scope(s, admin, unit.code)
    return admin, emp, unit


def _lock_employee(s: Session, seid: str) -> None:
    # a write first: SQLite takes its write lock now, PostgreSQL locks the row
    s.execute(update(Employee).where(Employee.seid == seid).values(active=Employee.active))


def _guarded(
    app: App, actor: Actor, event: EventType, obj: dict[str, Any], fn: Callable[[], T]
) -> T:
    """Run ``fn``; a refusal is recorded (outcome ``denied``) and re-raised with its index."""
    try:
        return fn()
    except AccessDenied as exc:
        exc.audit_index = service.record(
            app,
            event,
            actor=actor.seid,
            interface=actor.interface,
            address=actor.address,
            outcome="denied",
            reasons=exc.codes,
            obj=obj,
        )
        raise


# -- views ---------------------------------------------------------------------------------


def _employee_view(
    emp: Employee, unit_code: str, *, me: Employee | None = None, pending: int | None = None
) -> dict[str, Any]:
    """What administration shows of an employee: never the TIN, password or TOTP secret."""
    return {
        "seid": emp.seid,
        "name": emp.name,
        "kind": emp.kind,
        "unit": unit_code,
        "roles": sorted(emp.role_set),
        "profile": sorted(emp.profile_set),
        "authorities": sorted(emp.authority_set),
        "active": bool(emp.active),
        "locked": emp.locked_at is not None,
        "training_current_since": (
            emp.training_attested_at.isoformat() if emp.training_attested_at else None
        ),
        "pending_change": pending,
        "is_self": me is not None and me.id == emp.id,
    }


def _change_view(ch: ProfileChange, seid: str, unit_code: str) -> dict[str, Any]:
    def iso(d: datetime | None) -> str | None:
        return as_utc(d).isoformat() if d else None

    before = Sets(_split(ch.roles_before), _split(ch.profile_before), _split(ch.authorities_before))
    after = Sets(_split(ch.roles_after), _split(ch.profile_after), _split(ch.authorities_after))
    return {
        "change_id": ch.id,
        "seid": seid,
        "unit": unit_code,
        "status": ch.status,
        "roles": {"before": sorted(before.roles), "after": sorted(after.roles)},
        "profile": {"before": sorted(before.codes), "after": sorted(after.codes)},
        "authorities": {"before": sorted(before.authorities), "after": sorted(after.authorities)},
        "added": _diff(after, before),
        "removed": _diff(before, after),
        "restricted": sorted(_split(ch.restricted)),
        "requested_by": ch.requested_by,
        "requested_at": iso(ch.requested_at),
        "expires_at": iso(ch.expires_at),
        "note": ch.note,
        "decided_by": ch.decided_by,
        "decided_at": iso(ch.decided_at),
        "decision_note": ch.decision_note,
    }


def _diff(a: Sets, b: Sets) -> list[str]:
    """What ``a`` holds that ``b`` does not, labelled (``code:X``, ``role:X``, ``authority:X``)."""
    return (
        [f"code:{c}" for c in sorted(a.codes - b.codes)]
        + [f"role:{r}" for r in sorted(a.roles - b.roles)]
        + [f"authority:{x}" for x in sorted(a.authorities - b.authorities)]
    )


def _unit_codes(s: Session) -> dict[int, str]:
    return {u.id: u.code for u in s.scalars(select(Unit)).all()}


def _pending_by_employee(s: Session, ids: Iterable[int]) -> dict[int, int]:
    ids = list(ids)
    if not ids:
        return {}
    rows = s.execute(
        select(ProfileChange.employee_id, ProfileChange.id).where(
            ProfileChange.status == "pending", ProfileChange.employee_id.in_(ids)
        )
    ).all()
    return {r[0]: r[1] for r in rows}


# -- reads ---------------------------------------------------------------------------------


def list_units(app: App, actor: Actor) -> list[dict[str, Any]]:
    """Every unit with its ceiling, active headcount and whether ``actor`` administers it.

    Callers: security administrators. Records nothing (no taxpayer or personal data).
    """
    with session_scope(app.engine) as s:
        admin = _admin(s, actor)
        scope = _scope(s, admin)
        counts = dict(
            s.execute(
                select(Employee.unit_id, func.count(Employee.id))
                .where(Employee.active.is_(True))
                .group_by(Employee.unit_id)
            ).all()
        )
        units = s.scalars(select(Unit).order_by(Unit.code)).all()
        return [
            {
                "code": u.code,
                "name": u.name,
                "ceiling": sorted(_split(u.ceiling)),
                "headcount": int(counts.get(u.id, 0)),
                "administered": u.code in scope,
            }
            for u in units
        ]


def list_employees(
    app: App, actor: Actor, *, unit: str | None = None, include_inactive: bool = True
) -> list[dict[str, Any]]:
    """The employees of the units ``actor`` administers (or of one of them), by SEID.

    Never a TIN, password or TOTP secret. A unit outside the actor's scope is refused
    (OUT_OF_SCOPE); an unknown unit is NotFound. Records nothing.
    """
    code = _unit_code(unit) if unit else None
    with session_scope(app.engine) as s:
        admin = _admin(s, actor)
        scope = _scope(s, admin)
        if code is not None:
            _unit(s, code)
            _require_scope(s, admin, code)
            scope = frozenset({code})
        codes = _unit_codes(s)
        ids = [uid for uid, c in codes.items() if c in scope]
        q = select(Employee).where(Employee.unit_id.in_(ids)).order_by(Employee.seid)
        if not include_inactive:
            q = q.where(Employee.active.is_(True))
        emps = s.scalars(q).all()
        pending = _pending_by_employee(s, [e.id for e in emps])
        return [
            _employee_view(e, codes[e.unit_id], me=admin, pending=pending.get(e.id)) for e in emps
        ]


def show_employee(app: App, actor: Actor, seid: str) -> dict[str, Any]:
    """One employee of the actor's units, with the unit's ceiling and the change history.

    Viewing one's own record is allowed (``is_self``: nothing can be changed). Records nothing.
    """
    seid = _seid(seid)
    expire_due(app)
    with session_scope(app.engine) as s:
        admin, emp, unit = _subject(s, actor, seid)
        history = s.scalars(
            select(ProfileChange)
            .where(ProfileChange.employee_id == emp.id)
            .order_by(ProfileChange.id.desc())
            .limit(50)
        ).all()
        pending = next((c.id for c in history if c.status == "pending"), None)
        out = _employee_view(emp, unit.code, me=admin, pending=pending)
        out["ceiling"] = sorted(_split(unit.ceiling))
        out["changes"] = [_change_view(c, emp.seid, unit.code) for c in history]
        return out


def list_changes(app: App, actor: Actor, *, status: str = "pending") -> list[dict[str, Any]]:
    """Profile changes of employees in the actor's units, newest first (``status`` or ``all``).

    Overdue pending changes are expired (and recorded) first. Each item says whether the
    actor may decide it (``can_confirm``: not their own request, not about themself).
    """
    if status != "all" and status not in STATUSES:
        raise ValidationFailed([f"status: one of {', '.join(STATUSES)} or all"])
    expire_due(app)
    with session_scope(app.engine) as s:
        admin = _admin(s, actor)
        scope = _scope(s, admin)
        codes = _unit_codes(s)
        q = (
            select(ProfileChange, Employee.seid, Employee.unit_id)
            .join(Employee, Employee.id == ProfileChange.employee_id)
            .order_by(ProfileChange.id.desc())
        )
        if status != "all":
            q = q.where(ProfileChange.status == status)
        out = []
        for ch, seid, unit_id in s.execute(q).all():
            if codes.get(unit_id) not in scope:
                continue
            view = _change_view(ch, seid, codes[unit_id])
            view["can_confirm"] = (
                ch.status == "pending" and ch.requested_by != admin.seid and seid != admin.seid
            )
            out.append(view)
        return out


# -- expiry --------------------------------------------------------------------------------


def expire_due(app: App) -> list[int]:
    """Mark pending changes past their expiry ``expired``; record each (actor ``system``)."""
    now = app.clock.now()
    with session_scope(app.engine) as s:
        due = [
            (c.id, seid)
            for c, seid in s.execute(
                select(ProfileChange, Employee.seid)
                .join(Employee, Employee.id == ProfileChange.employee_id)
                .where(ProfileChange.status == "pending")
            ).all()
            if c.expires_at is not None and as_utc(c.expires_at) <= now
        ]
    expired: list[int] = []
    for cid, seid in due:
        with session_scope(app.engine) as s:
            res = s.execute(
                update(ProfileChange)
                .where(ProfileChange.id == cid, ProfileChange.status == "pending")
                .values(status="expired", decided_at=now)
            )
            n = res.rowcount  # type: ignore[attr-defined]
            if n:  # another process may have expired or decided it in between
                log.record_in(s, app, EventType.ADMIN_PROFILE_CHANGE_EXPIRE, Actor("system"),
                              obj={"change": cid, "seid": seid}, outcome="expired")
        if n:
            expired.append(cid)
    return expired


# -- profile changes -----------------------------------------------------------------------


def request_change(
    app: App,
    actor: Actor,
    *,
    seid: str,
    roles: str | Iterable[str] | None = None,
    codes: str | Iterable[str] | None = None,
    authorities: str | Iterable[str] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Change an employee's roles, command-code profile and/or authorities (None: unchanged).

    Each given set replaces the current one. Refused: not a security administrator, the
    employee outside the actor's units, the actor's own record, a profile outside the
    unit's ceiling, another change already pending (409), nothing to change (422). A change
    that adds a restricted item is stored ``pending`` (answer ``status`` = ``pending``,
    ``requires`` = the items a second administrator must confirm); any other applies at
    once (``applied``). Records ``admin:profile-change:request`` (or the refusal).
    """
    seid = _seid(seid)
    new_roles = _roles(roles) if roles is not None else None
    new_codes = _codes(codes) if codes is not None else None
    new_auth = _authorities(authorities) if authorities is not None else None
    note = _note(note)
    if new_roles is None and new_codes is None and new_auth is None:
        raise ValidationFailed(["change: give roles, codes or authorities to change"])
    expire_due(app)

    def apply() -> dict[str, Any]:
        with session_scope(app.engine) as s:
            _lock_employee(s, seid)
            admin, emp, unit = _subject(s, actor, seid)
            _not_self(admin, emp)
            before = Sets.of(emp)
            after = Sets(
                new_roles if new_roles is not None else before.roles,
                new_codes if new_codes is not None else before.codes,
                new_auth if new_auth is not None else before.authorities,
            )
            _check_authorities(s, after)
            if after == before:
                raise ValidationFailed(
                    [
                        f"change: nothing to change: {seid} already has "
                        "these roles, codes and authorities"
                    ]
                )
            _check_ceiling(after.codes, unit)
            _check_none_pending(s, emp)
            ch = _new_change(app, admin, emp, before, after, note)
            s.add(ch)
            s.flush()
            view = _change_view(ch, seid, unit.code)
            view["requires"] = view["restricted"]
            # in the change's transaction: no change stands without its entry
            view["audit_index"] = log.record_in(
                s, app, EventType.ADMIN_PROFILE_CHANGE_REQUEST, actor,
                obj={"change": ch.id, "seid": seid, "unit": unit.code},
                detail={"added": view["added"], "removed": view["removed"],
                        "requires": view["restricted"]},
                outcome=ch.status,
            )
            return view

    return _guarded(app, actor, EventType.ADMIN_PROFILE_CHANGE_REQUEST, {"seid": seid}, apply)


def _check_none_pending(s: Session, emp: Employee) -> None:
    open_id = s.scalar(
        select(ProfileChange.id).where(
            ProfileChange.employee_id == emp.id, ProfileChange.status == "pending"
        )
    )
    if open_id is not None:
        raise Conflict(
            f"change {open_id} for {emp.seid} is already waiting for confirmation; "
            "confirm or reject it first"
        )


def _new_change(
    app: App, admin: Employee, emp: Employee, before: Sets, after: Sets, note: str | None
) -> ProfileChange:
    """The change row; applied to ``emp`` at once unless it adds a restricted item."""
    restricted = restricted_additions(before, after)
    now = app.clock.now()
    if not restricted:
        _write(emp, after)
    return ProfileChange(
        employee_id=emp.id,
        unit_id=emp.unit_id,
        status="pending" if restricted else "applied",
        roles_before=join(before.roles),
        roles_after=join(after.roles),
        profile_before=join(before.codes),
        profile_after=join(after.codes),
        authorities_before=join(before.authorities),
        authorities_after=join(after.authorities),
        restricted=",".join(restricted),
        requested_by=admin.seid,
        requested_at=now,
        expires_at=now + PENDING_TTL if restricted else None,
        note=note,
    )


def _check_authorities(s: Session, after: Sets) -> None:
    scopes = sorted(a[len(SCOPE_PREFIX) :] for a in after.authorities if a.startswith(SCOPE_PREFIX))
    if scopes and Role.SECURITY_ADMIN not in after.roles:
        raise ValidationFailed([f"authorities: {SCOPE_PREFIX}UNIT needs the security_admin role"])
    known = set(s.scalars(select(Unit.code).where(Unit.code.in_(scopes))).all())
    missing = [c for c in scopes if c not in known]
    if missing:
        raise ValidationFailed([f"authorities: no unit {', '.join(missing)}"])


def _check_ceiling(codes: Iterable[str], unit: Unit) -> None:
    outside = outside_ceiling(codes, _split(unit.ceiling))
    if outside:
        raise _deny(
            "CEILING_EXCEEDED",
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} outside the ceiling "
            f"of unit {unit.code} ({', '.join(sorted(_split(unit.ceiling))) or 'no codes'})",
        )


def _write(emp: Employee, after: Sets) -> None:
    emp.roles = join(after.roles)
    emp.profile = join(after.codes)
    emp.authorities = join(after.authorities)


def _decide(
    app: App, actor: Actor, change_id: int, note: str | None, confirm: bool
) -> dict[str, Any]:
    note = _note(note)
    expire_due(app)
    event = (
        EventType.ADMIN_PROFILE_CHANGE_CONFIRM if confirm else EventType.ADMIN_PROFILE_CHANGE_REJECT
    )

    def apply() -> dict[str, Any]:
        with session_scope(app.engine) as s:
            s.execute(
                update(ProfileChange)
                .where(ProfileChange.id == change_id)
                .values(status=ProfileChange.status)
            )
            admin = _admin(s, actor)
            ch = s.get(ProfileChange, change_id)
            if ch is None:
                raise NotFound(f"no profile change {change_id}")
            emp = s.get(Employee, ch.employee_id)
            unit = s.get(Unit, emp.unit_id) if emp else None
            assert emp is not None and unit is not None
            _require_scope(s, admin, unit.code)
            _not_self(admin, emp)
            if confirm and ch.requested_by == admin.seid:
                raise _deny(
                    "SELF_APPROVAL",
                    "you requested this change; another security administrator confirms it",
                )
            if ch.status != "pending":
                raise Conflict(f"change {change_id} is {ch.status}, not pending")
            if ch.expires_at is not None and as_utc(ch.expires_at) <= app.clock.now():
                raise Conflict(
                    f"change {change_id} expired at {as_utc(ch.expires_at):%Y-%m-%d %H:%M} UTC"
                )
            if confirm:
                _check_still_valid(ch, emp, unit)
                _write(
                    emp,
                    Sets(
                        _split(ch.roles_after),
                        _split(ch.profile_after),
                        _split(ch.authorities_after),
                    ),
                )
            ch.status = "confirmed" if confirm else "rejected"
            ch.decided_by, ch.decided_at, ch.decision_note = admin.seid, app.clock.now(), note
            view = _change_view(ch, emp.seid, unit.code)
            view["audit_index"] = log.record_in(
                s, app, event, actor,
                obj={"change": ch.id, "seid": emp.seid, "unit": unit.code},
                detail={
                    "added": view["added"],
                    "removed": view["removed"],
                    "requested_by": ch.requested_by,
                },
                outcome=ch.status,
            )
            return view

    return _guarded(app, actor, event, {"change": change_id}, apply)


def _check_still_valid(ch: ProfileChange, emp: Employee, unit: Unit) -> None:
    now = Sets.of(emp)
    was = Sets(_split(ch.roles_before), _split(ch.profile_before), _split(ch.authorities_before))
    if now != was or emp.unit_id != ch.unit_id:
        raise Conflict(
            f"{emp.seid}'s record changed since change {ch.id} was requested; "
            "reject it and request again"
        )
    _check_ceiling(_split(ch.profile_after), unit)


def confirm_change(
    app: App, actor: Actor, change_id: int, note: str | None = None
) -> dict[str, Any]:
    """Confirm a pending change: a second security administrator of the subject's unit,
    neither the requester (SELF_APPROVAL) nor the subject (SELF_ADMINISTRATION). Applies it
    if the record is unchanged since the request and still inside the ceiling (409 /
    CEILING_EXCEEDED otherwise). Records ``admin:profile-change:confirm``.
    """
    return _decide(app, actor, change_id, note, confirm=True)


def reject_change(
    app: App, actor: Actor, change_id: int, note: str | None = None
) -> dict[str, Any]:
    """Reject a pending change (any administrator of the unit but the subject; the requester
    may withdraw their own). Nothing is applied. Records ``admin:profile-change:reject``.
    """
    return _decide(app, actor, change_id, note, confirm=False)


# -- units, activation, unlock -------------------------------------------------------------


def set_ceiling(app: App, actor: Actor, *, unit: str,
                codes: str | Iterable[str]) -> CeilingSet:
    """Set a unit's ceiling profile (a unit the actor administers).

    Lowering it trims, in the same transaction, every profile of the unit to the new
    ceiling (the trimmed SEIDs and codes are in the answer and the audit entry). Raising it
    grants nobody anything: restricted codes still need a confirmed profile change.
    Records ``admin:unit:ceiling``.
    """
    code = _unit_code(unit)
    ceiling = _codes(codes, "ceiling")

    def apply() -> tuple[list[str], dict[str, list[str]], int]:
        with session_scope(app.engine) as s:
            s.execute(update(Unit).where(Unit.code == code).values(ceiling=Unit.ceiling))
            admin = _admin(s, actor)
            u = _unit(s, code)
            _require_scope(s, admin, code)
            before = sorted(_split(u.ceiling))
            u.ceiling = join(ceiling)
            trimmed: dict[str, list[str]] = {}
            for emp in s.scalars(select(Employee).where(Employee.unit_id == u.id)).all():
                outside = outside_ceiling(emp.profile_set, ceiling)
                if outside:
                    emp.profile = join(emp.profile_set & ceiling)
                    trimmed[emp.seid] = outside
            index = log.record_in(
                s, app, EventType.ADMIN_UNIT_CEILING, actor, obj={"unit": code},
                detail={"before": before, "after": sorted(ceiling), "trimmed": trimmed},
            )
            return before, trimmed, index

    before, trimmed, index = _guarded(
        app, actor, EventType.ADMIN_UNIT_CEILING, {"unit": code}, apply
    )
    return CeilingSet(
        code=code, ceiling=sorted(ceiling), before=before, trimmed=trimmed, audit_index=index
    )


def set_active(app: App, actor: Actor, *, seid: str, active: bool) -> ActiveSet:
    """Deactivate (ends every live session at once) or reactivate an employee of the actor's
    units, never oneself. 409 when already so. Records ``admin:employee:deactivate`` or
    ``admin:employee:reactivate``.
    """
    seid = _seid(seid)
    event = EventType.ADMIN_EMPLOYEE_REACTIVATE if active else EventType.ADMIN_EMPLOYEE_DEACTIVATE

    def apply() -> tuple[int, int]:
        with session_scope(app.engine) as s:
            _lock_employee(s, seid)
            admin, emp, _ = _subject(s, actor, seid)
            _not_self(admin, emp)
            if bool(emp.active) == active:
                raise Conflict(f"{seid} is already {'active' if active else 'inactive'}")
            emp.active = active
            ended = 0
            if not active:
                res = s.execute(
                    update(SignInSession)
                    .where(SignInSession.employee_id == emp.id, SignInSession.ended_at.is_(None))
                    .values(ended_at=app.clock.now(), end_reason="deactivated")
                )
                ended = res.rowcount  # type: ignore[attr-defined]
            index = log.record_in(s, app, event, actor, obj={"seid": seid},
                                  detail={"sessions_ended": int(ended or 0)})
            return int(ended or 0), index

    ended, index = _guarded(app, actor, event, {"seid": seid}, apply)
    return ActiveSet(seid=seid, active=active, sessions_ended=ended, audit_index=index)


def unlock(app: App, actor: Actor, *, seid: str) -> Unlocked:
    """Clear a lockout: any security administrator, never their own account.

    Not limited to the actor's units: unlocking restores no privilege, only the employee's
    own sign-in with their own factors, and a help desk must reach every locked account.
    Records ``admin:employee:unlock`` (through ``people.service.unlock``).
    """
    seid = _seid(seid)

    def check() -> None:
        with session_scope(app.engine) as s:
            admin = _admin(s, actor)
            _not_self(admin, _employee(s, seid))

    _guarded(app, actor, EventType.ADMIN_EMPLOYEE_UNLOCK, {"seid": seid}, check)
    service.unlock(app, actor.seid, seid=seid, interface=actor.interface, address=actor.address)
    return Unlocked(seid=seid, locked=False)
