"""Access-domain routes: taxpayer contacts and cases (the need-to-know bases) and, for
security staff, ``explain`` / ``who-can`` / ``what-can``. Paths without the ``/api/v1`` prefix.

Who may do what (each change and each question is recorded in the audit log):
- contacts: the contact feed (a machine principal of kind ``contact_feed``, never an
  employee) records the calls, letters and visits routed to an employee
  (``POST /contacts/inbound``); an employee of a walk-in role declares a contact without one
  (``POST /contacts``, marked ``declared``; anyone else: 403 NO_INBOUND_RECORD); a manager
  also for employees of their unit; either closes it;
- cases: a manager assigns and closes them for employees of their unit, never to themselves
  (403 SELF_ASSIGNMENT);
- explain / who-can / what-can: security staff (security_admin, privacy_analyst,
  privacy_officer) only: the answers reveal who is linked to whom.
The employee who is refused sees only codes and plain messages (the 403 body of research).

``who-can`` pages its two lists (``can``, ``refused``) with ``?limit=&offset=``;
``what-can`` is one employee's profile summary (one row per command code), never long.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from idrs.access import questions, service
from idrs.access import results as basis
from idrs.api.answers import Answer
from idrs.api.deps import (
    AppDep,
    EmployeeDep,
    client_address,
    require_roles,
    role_rule,
    system_principal,
    system_rule,
)
from idrs.api.middleware import problem_responses
from idrs.api.paging import Page, PageDep
from idrs.audit import log
from idrs.audit.events import Actor, EventType
from idrs.context import App
from idrs.errors import AccessDenied
from idrs.people.roles import ACCESS_EXPLAINERS, UNIT_MANAGERS
from idrs.people.systems import CONTACT_FEED, Principal

if TYPE_CHECKING:
    from idrs.people.models import Employee

FEEDS = frozenset({CONTACT_FEED})
FeedDep = Annotated[Principal, system_principal(FEEDS, "recording an inbound contact")]

router = APIRouter(tags=["access"])

EXPLAIN_EVENT = EventType.ACCESS_EXPLAIN
_CHANGE = problem_responses(400, 401, 403, 404, 409, 422)
_QUESTION = problem_responses(400, 401, 403, 404, 422)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tin: str = Field(..., max_length=20, description="9 digits, dashes optional")
    contact_id: str = Field(..., max_length=40)
    channel: Literal["phone", "letter", "visit"] = "phone"
    seid: str | None = Field(
        None, max_length=16, description="the handling employee (default: yourself)"
    )


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tin: str = Field(..., max_length=20)
    case_id: str = Field(..., max_length=40)
    seid: str = Field(..., max_length=16)


class InboundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["call", "phone", "letter", "visit"]
    tin: str = Field(..., max_length=20, description="9 digits, dashes optional")
    seid: str = Field(..., max_length=16, description="the employee the contact is routed to")
    contact_id: str = Field(..., max_length=40, description="the feed's own record id")


class ContactOpened(Answer):
    contact_id: str
    seid: str
    channel: str
    origin: str
    status: str
    audit_index: int


class BasisClosed(Answer):
    """A contact or case closed (the key of its kind first: ``contact_id`` or ``case_id``)."""

    contact_id: str | None = None
    case_id: str | None = None
    seid: str
    status: str
    audit_index: int


class CaseAssigned(Answer):
    case_id: str
    seid: str
    status: str
    audit_index: int


class ReasonOut(Answer):
    code: str
    message: str


class RuleOut(Answer):
    policy: str
    name: str
    effect: str
    reason: str | None
    applies: bool
    text: str


class Explanation(Answer):
    """Every rule, fact and piece of evidence behind one decision (the taxpayer by pseudonym)."""

    seid: str
    taxpayer: str
    command: str
    decision: str
    reasons: list[ReasonOut]
    basis: str | None
    policy_version: str
    visible_classes: list[str]
    rules: list[RuleOut]
    facts: dict[str, Any]
    evidence: dict[str, Any]


class WhoRow(Answer):
    """An employee who could open the account (``commands``, ``visible_classes``) or who is
    refused (``refused``: command → reason codes)."""

    seid: str
    unit: str | None
    roles: list[str]
    basis: str | None
    cases: list[str]
    contacts: list[str]
    commands: list[str] = []
    visible_classes: list[str] = []
    refused: dict[str, list[str]] = {}


class WhoCan(Answer):
    taxpayer: str
    command: str | None
    policy_version: str
    can: list[WhoRow]
    refused: list[WhoRow]
    note: str
    limit: int
    offset: int
    total: int
    totals: dict[str, int]
    next_offset: int | None


class ByBasis(Answer):
    case: int
    contact: int
    none: int


class WhatRow(Answer):
    """One command code of the profile: a name search (``basis``, limits) or a lookup
    (``by_basis``, ``refused_despite_basis``)."""

    command: str
    kind: str
    visible_classes: list[str]
    masked_classes: list[str]
    basis: str | None = None
    taxpayers: int | None
    per_search_limit: int | None = None
    daily_limit: int | None = None
    by_basis: ByBasis | None = None
    refused_despite_basis: int | None = None


class WhatCan(Answer):
    seid: str
    roles: list[str]
    profile: list[str]
    authorities: list[str]
    policy_version: str
    open_bases: int
    can_change: bool
    commands: list[WhatRow]


def _actor(emp: Employee, request: Request) -> Actor:
    return Actor(seid=emp.seid, interface="api", address=client_address(request))


def _checked(
    app: App,
    actor: Actor,
    operation: str,
    seid: str | None,
    tin: str,
    check: Any,
) -> Any:
    """Run an authorization check; its refusal is recorded (``access:basis:deny``) before it
    is raised, so every attempt leaves a trace, whether or not the TIN exists."""
    try:
        return check()
    except AccessDenied as exc:
        raise service.refuse(app, actor, operation, exc.reasons, seid=seid, tin=tin) from None


@router.post(
    "/contacts/inbound",
    response_model=ContactOpened,
    status_code=201,
    summary="Record a call, letter or visit routed to an employee (the contact feed only)",
    responses=_CHANGE,
    openapi_extra=system_rule(FEEDS),
)
def inbound_contact(
    body: InboundIn, request: Request, app: AppDep, feed: FeedDep
) -> basis.ContactOpened:
    return service.record_inbound(
        app,
        seid=body.seid,
        tin=body.tin,
        contact_id=body.contact_id,
        channel=body.channel,
        actor=Actor(seid=feed.actor, interface="api", address=client_address(request)),
    )


@router.post(
    "/contacts",
    response_model=ContactOpened,
    status_code=201,
    summary="Open a taxpayer contact (call, letter, visit)",
    responses=_CHANGE,
    openapi_extra={"x-authorization": "signed-in"},
)
def open_contact(body: ContactIn, request: Request, app: AppDep,
                 me: EmployeeDep) -> basis.ContactOpened:
    """A declared contact (no intake record): walk-in roles only, marked ``declared``."""
    actor = _actor(me, request)
    seid = _checked(
        app,
        actor,
        "contact:open",
        body.seid or me.seid,
        body.tin,
        lambda: questions.may_act_for(app, me, body.seid),
    )
    return service.open_contact(
        app,
        seid=seid,
        tin=body.tin,
        contact_id=body.contact_id,
        channel=body.channel,
        actor=actor,
    )


@router.post(
    "/contacts/{contact_id}/close",
    response_model=BasisClosed,
    response_model_exclude_unset=True,
    summary="Close a taxpayer contact (your own, or as the manager of its handler)",
    responses=_CHANGE,
    openapi_extra={"x-authorization": "signed-in"},
)
def close_contact(
    contact_id: str, request: Request, app: AppDep, me: EmployeeDep
) -> basis.ContactClosed:
    questions.may_act_for(app, me, questions.contact_owner(app, contact_id))
    return service.close_contact(app, contact_id=contact_id, actor=_actor(me, request))


@router.post(
    "/cases",
    response_model=CaseAssigned,
    status_code=201,
    summary="Assign a case (managers, own unit)",
    responses=_CHANGE,
    openapi_extra=role_rule(UNIT_MANAGERS),
)
def assign_case(body: CaseIn, request: Request, app: AppDep,
                me: EmployeeDep) -> basis.CaseChanged:
    actor = _actor(me, request)

    def check() -> str:
        require_roles(me, UNIT_MANAGERS, "assigning a case")
        return questions.may_act_for(app, me, body.seid, managers_only=True)

    seid = _checked(app, actor, "case:assign", body.seid, body.tin, check)
    return service.assign_case(app, seid=seid, tin=body.tin, case_id=body.case_id, actor=actor)


@router.post(
    "/cases/{case_id}/close",
    response_model=BasisClosed,
    response_model_exclude_unset=True,
    summary="Close a case (managers, own unit)",
    responses=_CHANGE,
    openapi_extra=role_rule(UNIT_MANAGERS),
)
def close_case(case_id: str, request: Request, app: AppDep,
               me: EmployeeDep) -> basis.CaseChanged:
    require_roles(me, UNIT_MANAGERS, "closing a case")
    questions.may_act_for(app, me, questions.case_owner(app, case_id), managers_only=True)
    return service.close_case(app, case_id=case_id, actor=_actor(me, request))


def _record(app: App, me: Employee, request: Request, question: str, obj: dict[str, Any]) -> None:
    log.record(app, EXPLAIN_EVENT, Actor(me.seid, "api", client_address(request)), obj,
               {"question": question})


def _require_security_staff(me: Employee) -> None:
    require_roles(me, ACCESS_EXPLAINERS, "explanations")


@router.get(
    "/access/explain",
    response_model=Explanation,
    summary="Every rule, fact and piece of evidence behind a decision",
    responses=_QUESTION,
    openapi_extra=role_rule(ACCESS_EXPLAINERS),
)
def access_explain(
    request: Request,
    app: AppDep,
    me: EmployeeDep,
    seid: str = Query(..., max_length=16),
    tin: str = Query(..., max_length=20),
    command: str = Query(..., max_length=10),
    case: str | None = Query(None, max_length=40),
    contact: str | None = Query(None, max_length=40),
    reason: str | None = Query(None, max_length=500),
) -> dict[str, Any]:
    _require_security_staff(me)
    result = questions.explain_decision(
        app, seid=seid, tin=tin, command=command, case=case, contact=contact, reason=reason
    )
    _record(
        app,
        me,
        request,
        "explain",
        {"seid": result["seid"], "taxpayer": result["taxpayer"], "command": result["command"]},
    )
    return result


def _page_two(result: dict[str, Any], page: Page, *keys: str) -> dict[str, Any]:
    """Page each list in ``keys`` with the same window: ``total`` and ``next_offset`` count the
    longest of them; ``totals`` gives each list's own length."""
    totals = {k: len(result[k]) for k in keys}
    longest = max(totals.values(), default=0)
    nxt = page.offset + page.limit
    return {
        **result,
        **{k: result[k][page.offset : nxt] for k in keys},
        "limit": page.limit,
        "offset": page.offset,
        "total": longest,
        "totals": totals,
        "next_offset": nxt if nxt < longest else None,
    }


@router.get(
    "/access/who-can",
    response_model=WhoCan,
    response_model_exclude_unset=True,
    summary="The employees who could open one account now (paged: can, refused)",
    responses=_QUESTION,
    openapi_extra=role_rule(ACCESS_EXPLAINERS),
)
def access_who_can(
    request: Request,
    app: AppDep,
    me: EmployeeDep,
    page: PageDep,
    tin: str = Query(..., max_length=20),
    command: str | None = Query(None, max_length=10),
) -> dict[str, Any]:
    _require_security_staff(me)
    result = questions.who_can(app, tin=tin, command=command)
    _record(app, me, request, "who-can", {"taxpayer": result["taxpayer"], "command": command})
    return _page_two(result, page, "can", "refused")


@router.get(
    "/access/what-can",
    response_model=WhatCan,
    response_model_exclude_unset=True,
    summary="What one employee could open now, per command code",
    responses=_QUESTION,
    openapi_extra=role_rule(ACCESS_EXPLAINERS),
)
def access_what_can(
    request: Request, app: AppDep, me: EmployeeDep, seid: str = Query(..., max_length=16)
) -> dict[str, Any]:
    _require_security_staff(me)
    result = questions.what_can(app, seid=seid)
    _record(app, me, request, "what-can", {"seid": result["seid"]})
    return result
