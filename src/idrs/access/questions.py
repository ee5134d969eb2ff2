"""Session-free service functions for the HTTP layer of the access domain.

The routes in ``idrs.api.access`` call only these (and ``idrs.access.service``): who may act
for whom on cases and contacts, and the security staff's questions (explain, who-can,
what-can), each opening and closing its own database session. Nothing here records; the
callers record what they change or ask.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from idrs.access import explain
from idrs.access.models import CaseAssignment, TaxpayerContact
from idrs.access.service import employee_by_seid
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, NotFound, Reason
from idrs.identifiers import check_case_id
from idrs.people.models import Employee
from idrs.people.roles import UNIT_MANAGERS

NOT_MANAGER = Reason("NOT_IN_PROFILE", "only a manager of the employee's unit may do this")


def may_act_for(app: App, me: Employee, seid: str | None, *, managers_only: bool = False) -> str:
    """The SEID acted for; AccessDenied unless it is ``me`` (when allowed) or ``me`` manages
    their unit. A non-manager asking for someone else is refused before any lookup."""
    target = (seid or me.seid).strip().upper()
    if target == me.seid and not managers_only:
        return target
    if not (me.role_set & UNIT_MANAGERS):
        raise AccessDenied([NOT_MANAGER])
    with session_scope(app.engine) as s:
        try:
            same_unit = employee_by_seid(s, target).unit_id == me.unit_id
        except NotFound:  # the same answer as another unit's employee: no SEID probe
            same_unit = False
    if same_unit:
        return target
    raise AccessDenied([NOT_MANAGER])


def contact_owner(app: App, contact_id: str) -> str:
    """The SEID of the employee who handles ``contact_id``; NotFound otherwise."""
    contact_id = check_case_id(contact_id, "contact_id")
    with session_scope(app.engine) as s:
        owner = s.scalar(
            select(Employee.seid)
            .join(TaxpayerContact, TaxpayerContact.employee_id == Employee.id)
            .where(TaxpayerContact.contact_id == contact_id)
        )
    if owner is None:
        raise NotFound(f"no contact {contact_id}")
    return owner


def case_owner(app: App, case_id: str) -> str:
    """The SEID of the employee assigned ``case_id``; NotFound otherwise."""
    case_id = check_case_id(case_id, "case_id")
    with session_scope(app.engine) as s:
        owner = s.scalar(
            select(Employee.seid)
            .join(CaseAssignment, CaseAssignment.employee_id == Employee.id)
            .where(CaseAssignment.case_id == case_id)
        )
    if owner is None:
        raise NotFound(f"no case {case_id}")
    return owner


def explain_decision(app: App, **question: Any) -> dict[str, Any]:
    """``explain.explain`` in its own session."""
    with session_scope(app.engine) as s:
        return explain.explain(s, app, **question)


def who_can(app: App, *, tin: str, command: str | None = None) -> dict[str, Any]:
    """``explain.who_can`` in its own session."""
    with session_scope(app.engine) as s:
        return explain.who_can(s, app, tin=tin, command=command)


def what_can(app: App, *, seid: str) -> dict[str, Any]:
    """``explain.what_can`` in its own session."""
    with session_scope(app.engine) as s:
        return explain.what_can(s, app, seid=seid)
