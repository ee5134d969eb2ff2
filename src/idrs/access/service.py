"""The need-to-know bases and declarations: cases, taxpayer contacts, declared relationships.

Callers: the CLI (operator commands act as ``os:<user>``) and the API (a signed-in manager
or the employee themselves). Each change is validated first (unknown SEID or TIN, a case on
a TIN that is not in the master file, a contact without a TIN: clear errors, nothing
changed), then recorded in the audit log (``admin:*``; taxpayers as pseudonyms), then
written. Recording before writing means no change ever exists without its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.access import conflicts
from idrs.access.models import CaseAssignment, DeclaredRelationship, TaxpayerContact
from idrs.audit import log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import Conflict, NotFound, ValidationFailed
from idrs.identifiers import BadIdentifier, check_case_id, normalize_tin
from idrs.masterfile.models import Taxpayer
from idrs.people.models import Employee

CHANNELS = ("phone", "letter", "visit")
KINDS = ("friend", "relative", "neighbor", "business", "former_spouse", "other")


@dataclass(frozen=True)
class Actor:
    """Who performs an administrative change and through which interface."""

    name: str  # "os:<user>" for operator commands, the SEID for signed-in employees
    interface: str = "cli"
    address: str | None = None


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


def _require_taxpayer(session: Session, app: App, tin: str) -> bytes:
    idx = app.keyring.tin_index(tin)
    if session.scalar(select(Taxpayer.id).where(Taxpayer.tin_index == idx)) is None:
        raise NotFound("no taxpayer with this TIN in the master file")
    return idx


def _record(
    app: App,
    event: EventType,
    actor: Actor,
    obj: dict[str, Any],
    detail: dict[str, Any] | None = None,
) -> int:
    return log.append(
        app.engine,
        make_event(
            event,
            time=app.clock.now(),
            actor=actor.name,
            outcome="success",
            interface=actor.interface,
            address=actor.address,
            obj=obj,
            detail=detail,
        ),
    )


def assign_case(app: App, *, seid: str, tin: str, case_id: str, actor: Actor) -> dict[str, Any]:
    """Open a case on ``tin`` assigned to ``seid`` (the need-to-know basis). Records it."""
    case_id = _check_id(case_id, "case_id")
    canonical = _canonical_tin(tin)
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        idx = _require_taxpayer(s, app, canonical)
        if s.scalar(select(CaseAssignment.id).where(CaseAssignment.case_id == case_id)):
            raise Conflict(f"case {case_id} already exists")
        emp_id, emp_seid = emp.id, emp.seid
    index = _record(
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
    return {"case_id": case_id, "seid": emp_seid, "status": "open", "audit_index": index}


def close_case(app: App, *, case_id: str, actor: Actor) -> dict[str, Any]:
    """Close an open case (access on its basis ends at once). Records it."""
    case_id = _check_id(case_id, "case_id")
    with session_scope(app.engine) as s:
        case = s.scalar(select(CaseAssignment).where(CaseAssignment.case_id == case_id))
        if case is None:
            raise NotFound(f"no case {case_id}")
        if case.closed_at is not None:
            raise Conflict(f"case {case_id} is already closed")
        seid = s.get(Employee, case.employee_id).seid  # type: ignore[union-attr]
    index = _record(app, EventType.ADMIN_CASE_CLOSE, actor, {"case_id": case_id, "seid": seid})
    with session_scope(app.engine) as s:
        case = s.scalar(select(CaseAssignment).where(CaseAssignment.case_id == case_id))
        case.closed_at = app.clock.now()  # type: ignore[union-attr]
    return {"case_id": case_id, "seid": seid, "status": "closed", "audit_index": index}


def open_contact(
    app: App, *, seid: str, tin: str | None, contact_id: str, channel: str = "phone", actor: Actor
) -> dict[str, Any]:
    """Open a taxpayer contact (call, letter, visit) handled by ``seid``. Records it."""
    contact_id = _check_id(contact_id, "contact_id")
    if channel not in CHANNELS:
        raise ValidationFailed([f"channel: one of {', '.join(CHANNELS)}"])
    canonical = _canonical_tin(tin)
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        idx = _require_taxpayer(s, app, canonical)
        if s.scalar(select(TaxpayerContact.id).where(TaxpayerContact.contact_id == contact_id)):
            raise Conflict(f"contact {contact_id} already exists")
        emp_id, emp_seid = emp.id, emp.seid
    index = _record(
        app,
        EventType.ADMIN_CONTACT_OPEN,
        actor,
        {
            "contact_id": contact_id,
            "seid": emp_seid,
            "channel": channel,
            "taxpayer": app.keyring.pseudonym(canonical),
        },
    )
    with session_scope(app.engine) as s:
        s.add(
            TaxpayerContact(
                contact_id=contact_id,
                employee_id=emp_id,
                tin_index=idx,
                channel=channel,
                opened_at=app.clock.now(),
            )
        )
    return {
        "contact_id": contact_id,
        "seid": emp_seid,
        "channel": channel,
        "status": "open",
        "audit_index": index,
    }


def close_contact(
    app: App, *, contact_id: str, actor: Actor, only_for_employee: int | None = None
) -> dict[str, Any]:
    """Close an open contact. ``only_for_employee`` restricts it to that employee's contacts."""
    contact_id = _check_id(contact_id, "contact_id")
    with session_scope(app.engine) as s:
        c = s.scalar(select(TaxpayerContact).where(TaxpayerContact.contact_id == contact_id))
        if c is None or (only_for_employee is not None and c.employee_id != only_for_employee):
            raise NotFound(f"no contact {contact_id}")
        if c.closed_at is not None:
            raise Conflict(f"contact {contact_id} is already closed")
        seid = s.get(Employee, c.employee_id).seid  # type: ignore[union-attr]
    index = _record(
        app, EventType.ADMIN_CONTACT_CLOSE, actor, {"contact_id": contact_id, "seid": seid}
    )
    with session_scope(app.engine) as s:
        c = s.scalar(select(TaxpayerContact).where(TaxpayerContact.contact_id == contact_id))
        c.closed_at = app.clock.now()  # type: ignore[union-attr]
    return {"contact_id": contact_id, "seid": seid, "status": "closed", "audit_index": index}


def declare_relationship(
    app: App, *, seid: str, tin: str, kind: str, actor: Actor
) -> dict[str, Any]:
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
    index = _record(
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
    return {"seid": emp_seid, "kind": kind, "audit_index": index}


def refresh_employee(app: App, seid: str) -> int:
    """Recompute one employee's conflict index (after creation or a TIN change)."""
    with session_scope(app.engine) as s:
        emp = employee_by_seid(s, seid)
        return conflicts.refresh_for_employees(s, app, [emp.id])
