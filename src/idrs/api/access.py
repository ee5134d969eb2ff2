"""Access-domain routes: taxpayer contacts and cases (the need-to-know bases) and, for
security staff, ``explain`` / ``who-can`` / ``what-can``. Paths without the ``/api/v1`` prefix.

Who may do what (each change and each question is recorded in the audit log):
- contacts: an employee opens and closes their own; a manager also for employees of their unit;
- cases: a manager assigns and closes them for employees of their unit;
- explain / who-can / what-can: security staff (security_admin, privacy_analyst,
  privacy_officer) only: the answers reveal who is linked to whom.
The employee who is refused sees only codes and plain messages (the 403 body of research).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from idrs.access import explain, service
from idrs.api.deps import AppDep, EmployeeDep, client_address
from idrs.audit import log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, NotFound, Reason
from idrs.people.models import Employee

router = APIRouter(tags=["access"])

SECURITY_STAFF = frozenset({"security_admin", "privacy_analyst", "privacy_officer"})
EXPLAIN_EVENT = EventType.ACCESS_EXPLAIN


class ContactIn(BaseModel):
    tin: str = Field(..., description="9 digits, dashes optional")
    contact_id: str = Field(..., max_length=40)
    channel: Literal["phone", "letter", "visit"] = "phone"
    seid: str | None = Field(None, description="the handling employee (default: yourself)")


class CaseIn(BaseModel):
    tin: str
    case_id: str = Field(..., max_length=40)
    seid: str


def _actor(emp: Employee, request: Request) -> service.Actor:
    return service.Actor(name=emp.seid, interface="api", address=client_address(request))


def _may_act_for(app: App, me: Employee, seid: str | None, *, managers_only: bool = False) -> str:
    """The SEID acted for; AccessDenied unless it is me (when allowed) or I manage their unit."""
    target = (seid or me.seid).strip().upper()
    if target == me.seid and not managers_only:
        return target
    with session_scope(app.engine) as s:
        other = service.employee_by_seid(s, target)
        same_unit = other.unit_id == me.unit_id
    if "manager" in me.role_set and same_unit:
        return target
    raise AccessDenied(
        [Reason("NOT_IN_PROFILE", "only a manager of the employee's unit may do this")]
    )


def _require_security_staff(me: Employee) -> None:
    if not (me.role_set & SECURITY_STAFF):
        raise AccessDenied([Reason("NOT_IN_PROFILE", "explanations are for security staff")])


@router.post("/contacts", status_code=201, summary="Open a taxpayer contact (call, letter, visit)")
def open_contact(body: ContactIn, request: Request, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    seid = _may_act_for(app, me, body.seid)
    return service.open_contact(
        app,
        seid=seid,
        tin=body.tin,
        contact_id=body.contact_id,
        channel=body.channel,
        actor=_actor(me, request),
    )


@router.post("/contacts/{contact_id}/close", summary="Close a taxpayer contact")
def close_contact(
    contact_id: str, request: Request, app: AppDep, me: EmployeeDep
) -> dict[str, Any]:
    from sqlalchemy import select

    from idrs.access.models import TaxpayerContact

    with session_scope(app.engine) as s:
        owner = s.scalar(
            select(Employee.seid)
            .join(TaxpayerContact, TaxpayerContact.employee_id == Employee.id)
            .where(TaxpayerContact.contact_id == contact_id)
        )
    if owner is None:
        raise NotFound(f"no contact {contact_id}")
    _may_act_for(app, me, owner)
    return service.close_contact(app, contact_id=contact_id, actor=_actor(me, request))


@router.post("/cases", status_code=201, summary="Assign a case (managers, own unit)")
def assign_case(body: CaseIn, request: Request, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    seid = _may_act_for(app, me, body.seid, managers_only=True)
    return service.assign_case(
        app, seid=seid, tin=body.tin, case_id=body.case_id, actor=_actor(me, request)
    )


@router.post("/cases/{case_id}/close", summary="Close a case (managers, own unit)")
def close_case(case_id: str, request: Request, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    from sqlalchemy import select

    from idrs.access.models import CaseAssignment

    with session_scope(app.engine) as s:
        owner = s.scalar(
            select(Employee.seid)
            .join(CaseAssignment, CaseAssignment.employee_id == Employee.id)
            .where(CaseAssignment.case_id == case_id)
        )
    if owner is None:
        raise NotFound(f"no case {case_id}")
    _may_act_for(app, me, owner, managers_only=True)
    return service.close_case(app, case_id=case_id, actor=_actor(me, request))


def _record(app: App, me: Employee, request: Request, question: str, obj: dict[str, Any]) -> None:
    log.append(
        app.engine,
        make_event(
            EXPLAIN_EVENT,
            time=app.clock.now(),
            actor=me.seid,  # type: ignore[arg-type]
            outcome="success",
            interface="api",
            address=client_address(request),
            obj=obj,
            detail={"question": question},
        ),
    )


@router.get("/access/explain", summary="Every rule, fact and piece of evidence behind a decision")
def access_explain(
    request: Request,
    app: AppDep,
    me: EmployeeDep,
    seid: str = Query(...),
    tin: str = Query(...),
    command: str = Query(...),
    case: str | None = Query(None, max_length=40),
    contact: str | None = Query(None, max_length=40),
    reason: str | None = Query(None, max_length=500),
) -> dict[str, Any]:
    _require_security_staff(me)
    with session_scope(app.engine) as s:
        result = explain.explain(
            s, app, seid=seid, tin=tin, command=command, case=case, contact=contact, reason=reason
        )
    _record(
        app,
        me,
        request,
        "explain",
        {"seid": result["seid"], "taxpayer": result["taxpayer"], "command": result["command"]},
    )
    return result


@router.get("/access/who-can", summary="The employees who could open one account now")
def access_who_can(
    request: Request,
    app: AppDep,
    me: EmployeeDep,
    tin: str = Query(...),
    command: str | None = Query(None),
) -> dict[str, Any]:
    _require_security_staff(me)
    with session_scope(app.engine) as s:
        result = explain.who_can(s, app, tin=tin, command=command)
    _record(app, me, request, "who-can", {"taxpayer": result["taxpayer"], "command": command})
    return result


@router.get("/access/what-can", summary="What one employee could open now, per command code")
def access_what_can(
    request: Request, app: AppDep, me: EmployeeDep, seid: str = Query(...)
) -> dict[str, Any]:
    _require_security_staff(me)
    with session_scope(app.engine) as s:
        result = explain.what_can(s, app, seid=seid)
    _record(app, me, request, "what-can", {"seid": result["seid"]})
    return result
