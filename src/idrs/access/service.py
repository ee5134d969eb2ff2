"""The need-to-know bases and declarations: cases, taxpayer contacts, declared relationships.

Callers: the CLI (operator commands act as ``os:<user>``), the API (a signed-in manager or
the employee themselves) and the contact feed (a machine principal, ``system:<name>``). Each
change is validated first (unknown SEID, a contact without a TIN: clear errors, nothing
changed), then recorded in the audit log (``admin:*``; taxpayers as pseudonyms), then
written. Recording before writing means no change ever exists without its entry.

Need to know comes from the agency's records, not from the employee:

- a contact rests on an inbound record: a call, letter or visit the telephony or
  correspondence feed recorded and routed to the employee (``record_inbound``, origin
  ``inbound``). A contact without one (``open_contact``) is *declared*: only an employee of
  a walk-in role (``WALK_IN_ROLES``) may hold one, it is marked ``declared`` (the audit entry
  says so, and detection treats it as opened by the handler, whoever typed it);
- nobody assigns a case to themselves (``SELF_ASSIGNMENT``).

Every attempt leaves a trace: a refusal (``access:basis:deny``, with its reasons) and an
attempt on a TIN the master file does not hold (the same event, outcome ``not_found``) are
recorded like a success. Who may not act at all is refused before the TIN is looked up, so
the answer is the same whether or not the taxpayer exists.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.access import conflicts
from idrs.access.models import CaseAssignment, DeclaredRelationship, TaxpayerContact
from idrs.access.results import CaseChanged, ContactClosed, ContactOpened, RelationshipDeclared
from idrs.audit import log
from idrs.audit.events import Actor, EventType, make_event
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import BadIdentifier, check_case_id, normalize_tin
from idrs.masterfile.models import Taxpayer
from idrs.people.models import Employee
from idrs.people.roles import WALK_IN_ROLES

CHANNELS = ("phone", "letter", "visit")
#: the feed's word for a telephone contact
CHANNEL_ALIASES = {"call": "phone"}
INBOUND, DECLARED = "inbound", "declared"
NO_INBOUND_RECORD = Reason(
    "NO_INBOUND_RECORD",
    "a contact comes from the intake record of a call, letter or visit routed to you; "
    "only walk-in roles may declare one without it",
)
SELF_ASSIGNMENT = Reason("SELF_ASSIGNMENT", "a case is assigned by someone else, never to oneself")
NO_TAXPAYER = "no taxpayer with this TIN in the master file"
KINDS = ("friend", "relative", "neighbor", "business", "former_spouse", "other")


def _canonical_tin(tin: str | None) -> str:
    if tin is None or not str(tin).strip():
        raise ValidationFailed(["tin: required"])
    try:
        return normalize_tin(str(tin))
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None


def _check_id(value: str | None, what: str) -> str:
    # the documented id format: no name, no TIN or account number gets into the log this way
    return check_case_id(value, what)


def employee_by_seid(session: Session, seid: str) -> Employee:
    emp = session.scalar(select(Employee).where(Employee.seid == (seid or "").strip().upper()))
    if emp is None:
        raise NotFound(f"no employee with SEID {(seid or '').strip().upper()!r}")
    return emp


def _taxpayer_index(session: Session, app: App, tin: str) -> bytes | None:
    idx = app.keyring.tin_index(tin)
    if session.scalar(select(Taxpayer.id).where(Taxpayer.tin_index == idx)) is None:
        return None
    return idx


def _pseudonym(app: App, tin: str | None) -> str | None:
    try:
        return app.keyring.pseudonym(normalize_tin(str(tin or "")))
    except BadIdentifier:
        return None


def _attempt(
    app: App,
    actor: Actor,
    operation: str,
    *,
    seid: str | None,
    tin: str | None,
    outcome: str,
    reasons: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    obj: dict[str, Any] = {"operation": operation, **(extra or {})}
    if seid:
        obj["seid"] = seid.strip().upper()[:16]
    pseud = _pseudonym(app, tin)
    if pseud:
        obj["taxpayer"] = pseud
    return log.append(
        app.engine,
        make_event(
            EventType.ACCESS_BASIS_DENY,
            time=app.clock.now(),
            actor=actor.seid,
            outcome=outcome,
            interface=actor.interface,
            address=actor.address,
            obj=obj,
            reasons=reasons,
        ),
    )


def refuse(
    app: App,
    actor: Actor,
    operation: str,
    reasons: list[Reason],
    *,
    seid: str | None = None,
    tin: str | None = None,
    extra: dict[str, Any] | None = None,
) -> AccessDenied:
    """Record a refused attempt on a need-to-know basis; return the AccessDenied to raise.

    ``operation``: ``case:assign``, ``contact:open``, ``contact:inbound``... The refusal
    stands even if the audit log cannot take the entry (fail closed).
    """
    idx = None
    with contextlib.suppress(IdrsError):
        idx = _attempt(
            app,
            actor,
            operation,
            seid=seid,
            tin=tin,
            outcome="deny",
            reasons=[r.code for r in reasons],
            extra=extra,
        )
    return AccessDenied(list(reasons), idx)


def _not_found(app: App, actor: Actor, operation: str, *, seid: str, tin: str) -> NotFound:
    """Record an attempt on a TIN the master file does not hold; return the 404 to raise."""
    _attempt(app, actor, operation, seid=seid, tin=tin, outcome="not_found")
    return NotFound(NO_TAXPAYER)



def assign_case(app: App, *, seid: str, tin: str, case_id: str, actor: Actor) -> CaseChanged:
    """Open a case on ``tin`` assigned to ``seid`` (the need-to-know basis). Records it.

    Refused (recorded) when the actor assigns it to themselves (SELF_ASSIGNMENT), before the
    TIN is looked up; a TIN the master file does not hold is recorded and answered 404.
    """
    case_id = _check_id(case_id, "case_id")
    canonical = _canonical_tin(tin)
    if actor.seid.strip().upper() == (seid or "").strip().upper():
        raise refuse(
            app,
            actor,
            "case:assign",
            [SELF_ASSIGNMENT],
            seid=seid,
            tin=canonical,
            extra={"case_id": case_id},
        )
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        emp_id, emp_seid = emp.id, emp.seid
        idx = _taxpayer_index(s, app, canonical)
        taken = idx is not None and s.scalar(
            select(CaseAssignment.id).where(CaseAssignment.case_id == case_id)
        )
    if idx is None:
        raise _not_found(app, actor, "case:assign", seid=emp_seid, tin=canonical)
    if taken:
        raise Conflict(f"case {case_id} already exists")
    index = log.record(
        app,
        EventType.ADMIN_CASE_ASSIGN,
        actor,
        {"case_id": case_id, "seid": emp_seid, "taxpayer": app.keyring.pseudonym(canonical)},
    )
    with session_scope(app.engine) as s:
        s.add(
            CaseAssignment(
                case_id=case_id, employee_id=emp_id, tin_index=idx, opened_at=app.clock.now()
            )
        )
    return CaseChanged(case_id=case_id, seid=emp_seid, status="open", audit_index=index)


def close_case(app: App, *, case_id: str, actor: Actor) -> CaseChanged:
    """Close an open case (access on its basis ends at once). Records it."""
    case_id = _check_id(case_id, "case_id")
    with session_scope(app.engine) as s:
        case = s.scalar(select(CaseAssignment).where(CaseAssignment.case_id == case_id))
        if case is None:
            raise NotFound(f"no case {case_id}")
        if case.closed_at is not None:
            raise Conflict(f"case {case_id} is already closed")
        seid = s.get(Employee, case.employee_id).seid  # type: ignore[union-attr]
    index = log.record(app, EventType.ADMIN_CASE_CLOSE, actor, {"case_id": case_id, "seid": seid})
    with session_scope(app.engine) as s:
        case = s.scalar(select(CaseAssignment).where(CaseAssignment.case_id == case_id))
        case.closed_at = app.clock.now()  # type: ignore[union-attr]
    return CaseChanged(case_id=case_id, seid=seid, status="closed", audit_index=index)


def record_inbound(
    app: App, *, seid: str, tin: str | None, contact_id: str, channel: str = "phone", actor: Actor
) -> ContactOpened:
    """The feed's record of a call, letter or visit routed to ``seid``: opens their contact.

    ``actor`` is the feed (``system:<name>``; the API lets only a ``contact_feed`` principal
    call this). A TIN the master file does not hold is recorded and answered 404.
    """
    return _open(
        app, seid=seid, tin=tin, contact_id=contact_id, channel=channel, actor=actor, origin=INBOUND
    )


def open_contact(
    app: App, *, seid: str, tin: str | None, contact_id: str, channel: str = "phone", actor: Actor
) -> ContactOpened:
    """A contact the employee ``seid`` declares without an intake record (a walk-in).

    Only an employee of a walk-in role may hold one: anyone else is refused
    (NO_INBOUND_RECORD, recorded) before the TIN is looked up. Marked ``declared``.
    """
    return _open(
        app,
        seid=seid,
        tin=tin,
        contact_id=contact_id,
        channel=channel,
        actor=actor,
        origin=DECLARED,
    )


def _open(
    app: App,
    *,
    seid: str,
    tin: str | None,
    contact_id: str,
    channel: str,
    actor: Actor,
    origin: str,
) -> ContactOpened:
    contact_id = _check_id(contact_id, "contact_id")
    channel = CHANNEL_ALIASES.get(channel, channel)
    if channel not in CHANNELS:
        raise ValidationFailed([f"channel: one of {', '.join(CHANNELS)}"])
    canonical = _canonical_tin(tin)
    operation = "contact:inbound" if origin == INBOUND else "contact:open"
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        emp_id, emp_seid, walk_in = emp.id, emp.seid, bool(emp.role_set & WALK_IN_ROLES)
    if origin == DECLARED and not walk_in:
        raise refuse(
            app,
            actor,
            operation,
            [NO_INBOUND_RECORD],
            seid=emp_seid,
            tin=canonical,
            extra={"contact_id": contact_id, "channel": channel},
        )
    with session_scope(app.engine) as s:
        idx = _taxpayer_index(s, app, canonical)
        taken = idx is not None and s.scalar(
            select(TaxpayerContact.id).where(TaxpayerContact.contact_id == contact_id)
        )
    if idx is None:
        raise _not_found(app, actor, operation, seid=emp_seid, tin=canonical)
    if taken:
        raise Conflict(f"contact {contact_id} already exists")
    obj: dict[str, Any] = {
        "contact_id": contact_id,
        "seid": emp_seid,
        "channel": channel,
        "taxpayer": app.keyring.pseudonym(canonical),
        "origin": origin,
    }
    if origin == DECLARED:
        obj["declared"] = True
    index = log.record(app, EventType.ADMIN_CONTACT_OPEN, actor, obj)
    with session_scope(app.engine) as s:
        s.add(
            TaxpayerContact(
                contact_id=contact_id,
                employee_id=emp_id,
                tin_index=idx,
                channel=channel,
                opened_at=app.clock.now(),
                origin=origin,
                recorded_by=actor.seid[:60] if origin == INBOUND else None,
            )
        )
    return ContactOpened(
        contact_id=contact_id,
        seid=emp_seid,
        channel=channel,
        origin=origin,
        status="open",
        audit_index=index,
    )


def close_contact(
    app: App, *, contact_id: str, actor: Actor, only_for_employee: int | None = None
) -> ContactClosed:
    """Close an open contact. ``only_for_employee`` restricts it to that employee's contacts."""
    contact_id = _check_id(contact_id, "contact_id")
    with session_scope(app.engine) as s:
        c = s.scalar(select(TaxpayerContact).where(TaxpayerContact.contact_id == contact_id))
        if c is None or (only_for_employee is not None and c.employee_id != only_for_employee):
            raise NotFound(f"no contact {contact_id}")
        if c.closed_at is not None:
            raise Conflict(f"contact {contact_id} is already closed")
        seid = s.get(Employee, c.employee_id).seid  # type: ignore[union-attr]
    index = log.record(
        app, EventType.ADMIN_CONTACT_CLOSE, actor, {"contact_id": contact_id, "seid": seid}
    )
    with session_scope(app.engine) as s:
        c = s.scalar(select(TaxpayerContact).where(TaxpayerContact.contact_id == contact_id))
        c.closed_at = app.clock.now()  # type: ignore[union-attr]
    return ContactClosed(contact_id=contact_id, seid=seid, status="closed", audit_index=index)


def declare_relationship(
    app: App, *, seid: str, tin: str, kind: str, actor: Actor
) -> RelationshipDeclared:
    """Record a relationship the employee declared; the account is blocked for them at once.

    The TIN need not be in the master file (a friend may not have filed yet): the block
    then applies from the first import on.
    """
    if kind not in KINDS:
        raise ValidationFailed([f"kind: one of {', '.join(KINDS)}"])
    canonical = _canonical_tin(tin)
    idx = app.keyring.tin_index(canonical)
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        emp_id, emp_seid = emp.id, emp.seid
    index = log.record(
        app,
        EventType.ADMIN_RELATIONSHIP_DECLARE,
        actor,
        {"seid": emp_seid, "kind": kind, "taxpayer": app.keyring.pseudonym(canonical)},
    )
    with session_scope(app.engine) as s:
        s.add(
            DeclaredRelationship(
                employee_id=emp_id, tin_index=idx, kind=kind, declared_at=app.clock.now()
            )
        )
        s.flush()
        conflicts.refresh_for_employees(s, app, [emp_id])
    return RelationshipDeclared(seid=emp_seid, kind=kind, audit_index=index)


def refresh_employee(app: App, seid: str) -> int:
    """Recompute one employee's conflict index (after creation or a TIN change)."""
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        return conflicts.refresh_for_employees(s, app, [emp.id])
