"""Adjustments over HTTP: request, approve, reject, list, reverse (thin; ``adjustments.service``).

* ``POST /accounts/{tin}/adjustments`` body ``{"command", "case", "reason", ...}`` → 201
  ``{"adjustment_id", "status": "applied" | "pending_approval", "audit_index"}`` (+ ``requires``
  when pending, ``reasons`` naming the earlier adjustments summed with it when an amount
  threshold applies, ``version`` when applied); 403 with reason codes; 409 a version conflict
  (``{"error", "audit_index"}``); 422 bad input (nothing stored).
* ``POST /adjustments/{id}/approve`` and ``/reject`` (an approver) → 200 ``{"status", ...}``.
* ``POST /adjustments/{id}/reverse`` body ``{"case", "reason"}`` → 201 (a reversing posting).
* ``GET /adjustments?status=pending&limit=&offset=`` (approvers) → ``{"adjustments": [...],
  "audit_index", "limit", "offset", "total", "next_offset"}`` (paged by ``idrs.api.paging``
  over the service's listing, which stops at its first 1,000 requests, oldest first).

Errors are problem+json (``idrs.api.middleware``); the version conflict keeps its 409
``{"error", "audit_index"}`` keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from idrs.adjustments import service
from idrs.adjustments.apply import VersionConflict
from idrs.api.answers import Answer
from idrs.api.bounds import DbCount, RowId
from idrs.api.deps import AppDep, TokenDep, client_address, role_rule
from idrs.api.middleware import problem
from idrs.api.middleware import problem_responses as _problems
from idrs.api.paging import PageDep, paged
from idrs.people.roles import ADJUSTMENT_APPROVERS
from idrs.vocabulary import CommandCode

router = APIRouter(tags=["adjustments"])

_ERRORS = _problems(400, 401, 403, 404, 409, 413, 415, 422)
_ERRORS[409]["description"] = (
    '{"error", "audit_index"}: a version conflict, or the request was already decided or expired'
)


class AddressBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    street: str
    city: str
    state: str
    zip: str


class NameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first: str
    middle: str = ""
    last: str
    suffix: str = ""


class AdjustmentIn(BaseModel):
    """ENREQ: address and/or name. ADJ54: tax_year, tc 290|291, amount. REQ77: tax_year,
    tc 570|571|971 and, for 971, action_code. ``base_version``: the version the change is
    based on (default: the one seen at the prerequisite research)."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(..., examples=[CommandCode.ADJ54])
    case: str | None = Field(None, max_length=40)
    contact: str | None = Field(None, max_length=40)
    reason: str | None = Field(None, max_length=500)
    tax_year: int | None = Field(None, ge=1900, le=2999)
    tc: str | None = None
    amount: Any = Field(None, description="dollars, positive, at most two decimals")
    action_code: str | None = None
    date: str | None = Field(None, description="YYYY-MM-DD, not in the future (default today)")
    base_version: DbCount | None = None
    address: AddressBody | None = None
    name: NameBody | None = None


class AdjustmentOut(BaseModel):
    adjustment_id: int
    status: str
    audit_index: int
    requires: list[str] | None = None
    version: int | None = None
    #: why an amount threshold applies: {code, scope, total_cents, threshold_cents,
    #: window_days, with: [earlier adjustment ids], message}
    reasons: list[dict[str, Any]] | None = None


class AdjustmentRow(Answer):
    """One request as an approver sees it: the taxpayer by pseudonym, never a TIN."""

    adjustment_id: int
    command: str
    kind: str
    status: str
    taxpayer: str
    tax_year: int | None
    tc: str | None
    amount: str | None
    action_code: str | None
    requester: str
    case: str | None
    requires: list[str]
    requested_at: str | None
    expires_at: str | None
    changes: list[Any]
    #: why an amount threshold applies (as in AdjustmentOut.reasons)
    reasons: list[dict[str, Any]]
    reverses: int | None
    own: bool


class AdjustmentsPage(Answer):
    adjustments: list[AdjustmentRow]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    audit_index: int


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=500)


class ReverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str | None = Field(None, max_length=40)
    contact: str | None = Field(None, max_length=40)
    reason: str | None = Field(None, max_length=500)
    base_version: DbCount | None = None


def _conflict(exc: VersionConflict, request: Request) -> JSONResponse:
    return problem(409, str(exc), request_id=getattr(request.state, "request_id", None),
                   error=str(exc), audit_index=exc.audit_index)


@router.post("/accounts/{tin}/adjustments", status_code=201, response_model=AdjustmentOut,
             response_model_exclude_none=True, responses=_ERRORS,
             summary="Request an adjustment (ENREQ, ADJ54, REQ77) on one account",
             openapi_extra={"x-authorization": "signed-in"})
def request_adjustment(tin: str, body: AdjustmentIn, request: Request, app: AppDep,
                       token: TokenDep) -> Any:
    fields = body.model_dump(exclude={"command", "case", "contact", "reason", "address", "name"},
                             exclude_none=True)
    if body.name is not None:
        fields["name"] = body.name.model_dump()
    try:
        res = service.request(
            app, token=token, tin=tin, command=body.command, case=body.case,
            contact=body.contact, reason=body.reason, interface="api",
            origin=client_address(request),
            address=body.address.model_dump() if body.address is not None else None, **fields)
    except VersionConflict as exc:
        return _conflict(exc, request)
    return AdjustmentOut(**res.as_dict())


def _decide(adjustment_id: int, body: DecisionIn | None, request: Request, app: Any,
            token: str | None, approve: bool) -> Any:
    fn = service.approve if approve else service.reject
    try:
        res = fn(app, token=token, adjustment_id=adjustment_id,
                 note=body.note if body is not None else None, interface="api",
                 origin=client_address(request))
    except VersionConflict as exc:
        return _conflict(exc, request)
    return AdjustmentOut(**res.as_dict())


@router.post("/adjustments/{adjustment_id}/approve", response_model=AdjustmentOut,
             response_model_exclude_none=True, responses=_ERRORS,
             summary="Approve a pending adjustment (applies it)",
             openapi_extra=role_rule(ADJUSTMENT_APPROVERS))
def approve_adjustment(adjustment_id: RowId, request: Request, app: AppDep, token: TokenDep,
                       body: DecisionIn | None = None) -> Any:
    return _decide(adjustment_id, body, request, app, token, approve=True)


@router.post("/adjustments/{adjustment_id}/reject", response_model=AdjustmentOut,
             response_model_exclude_none=True, responses=_ERRORS,
             summary="Reject a pending adjustment",
             openapi_extra=role_rule(ADJUSTMENT_APPROVERS))
def reject_adjustment(adjustment_id: RowId, request: Request, app: AppDep, token: TokenDep,
                      body: DecisionIn | None = None) -> Any:
    return _decide(adjustment_id, body, request, app, token, approve=False)


@router.post("/adjustments/{adjustment_id}/reverse", status_code=201,
             response_model=AdjustmentOut, response_model_exclude_none=True, responses=_ERRORS,
             summary="Undo an applied adjustment by a reversing posting",
             openapi_extra={"x-authorization": "signed-in"})
def reverse_adjustment(adjustment_id: RowId, body: ReverseIn, request: Request, app: AppDep,
                       token: TokenDep) -> Any:
    try:
        res = service.reverse(app, token=token, adjustment_id=adjustment_id, case=body.case,
                              contact=body.contact, reason=body.reason, interface="api",
                              origin=client_address(request), base_version=body.base_version)
    except VersionConflict as exc:
        return _conflict(exc, request)
    return AdjustmentOut(**res.as_dict())


@router.get("/adjustments", response_model=AdjustmentsPage, responses=_ERRORS,
            summary="Adjustments by status (default pending), for approvers; paged",
            openapi_extra=role_rule(ADJUSTMENT_APPROVERS))
def list_adjustments(request: Request, app: AppDep, token: TokenDep, page: PageDep,
                     status: str = Query("pending", max_length=20,
                                         description="pending, applied, rejected, expired")
                     ) -> dict[str, Any]:
    out = service.listing(app, token=token, status=status, interface="api",
                          origin=client_address(request))
    return paged(out["adjustments"], page, key="adjustments", audit_index=out["audit_index"])
