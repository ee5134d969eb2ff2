"""Disclosures to other agencies (issue 16): the requesting system's routes and the
disclosure officer's.

The requesting agency system (a machine principal of kind ``agency_system``, bearer token
from ``POST /system-sessions``; an employee's token is refused 403 WRONG_PRINCIPAL and
recorded):

- ``POST /disclosures``: a batch ``{"basis", "request", "records"}``; 201 with every
  record's decision (or 202 ``status: held`` when over a cap);
- ``GET /disclosures``: its own batches; ``GET /disclosures/{batch_id}``: one, with its
  decisions (paged); ``GET /disclosures/{batch_id}/records/{line}/proof``: one decision's
  document, leaf hash, inclusion proof and the root committed in the audit log. Another
  system's batch is answered 404 like a missing one.

The disclosure officer and auditors (``disclosure_*`` role groups):

- ``GET /disclosure-queue``: held batches with their counts against the caps, refused
  records and why;
- ``GET /disclosure-batches[/{batch_id}[/records/{line}/proof]]``: any system's batches;
- ``POST /disclosure-batches/{batch_id}/approve`` | ``/reject``: decide a held batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.deps import AppDep, client_address, role_rule, system_principal, system_rule
from idrs.api.grants import needs
from idrs.api.middleware import problem_responses
from idrs.api.paging import PageDep
from idrs.disclosure import service
from idrs.people.roles import DISCLOSURE_OFFICERS, DISCLOSURE_READERS
from idrs.people.systems import AGENCY_SYSTEM, Principal

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee
else:
    Employee = object

router = APIRouter(tags=["disclosures"])
AGENCIES = frozenset({AGENCY_SYSTEM})
AgencyDep = Annotated[Principal, system_principal(AGENCIES, "a disclosure request")]
Officer = Annotated[Employee, needs(DISCLOSURE_OFFICERS, "deciding a held disclosure batch")]
Reader = Annotated[Employee, needs(DISCLOSURE_READERS, "disclosure batches")]
Line = Annotated[int, Path(ge=1, le=service.MAX_RECORDS, description="1-based record line")]
_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)


class DisclosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basis: str = Field(..., max_length=20, description="the statutory basis, e.g. 6103i2")
    request: dict[str, Any] = Field(
        ..., description="signatory, signatory_rank, agency, proceeding, official, reference"
    )
    records: list[Any] = Field(
        ..., description="each {tin?, first_name, last_name, address{street,city,state,zip}, "
        "proceeding?, official?, reference?}"
    )


class DecisionOut(BaseModel):
    line: int
    outcome: Literal["disclosed", "refused"]
    reasons: list[str]
    #: the basis's scope only: ``{"address_confirmed": true}`` or ``{}``
    answer: dict[str, bool]


class CountOut(BaseModel):
    name: str
    batch: int
    window: int | None = None
    cap: int | None = None
    over: bool | None = None


class CountsOut(BaseModel):
    officials: list[CountOut]
    investigations: list[CountOut]
    over_cap: bool | None = None
    cap_official: int | None = None
    cap_investigation: int | None = None
    window_days: int | None = None


class SubmittedOut(BaseModel):
    """A batch as submitted or decided: ``decisions`` empty while it is held."""

    batch_id: str
    status: Literal["held", "decided", "rejected"]
    basis: str
    audit_index: int
    root: str | None
    records: int
    disclosed: int | None = None
    refused: int | None = None
    counts: CountsOut | None = None
    decisions: list[DecisionOut]


class BatchOut(BaseModel):
    batch_id: str
    system: str
    agency: str | None
    basis: str
    status: Literal["held", "decided", "rejected"]
    records: int
    disclosed: int
    refused: int
    reasons: dict[str, int]
    submitted_at: str
    decided_at: str | None
    audit_index: int | None
    root: str | None
    hold_index: int | None
    approved_by: str | None
    approval_index: int | None
    counts: CountsOut | None = None


class BatchPage(BatchOut):
    decisions: list[DecisionOut]
    limit: int
    offset: int
    next_offset: int | None


class BatchesOut(BaseModel):
    batches: list[BatchOut]
    limit: int
    offset: int
    next_offset: int | None


class ProofOut(BaseModel):
    batch_id: str
    line: int
    #: the decision document exactly as hashed (canonical JSON)
    document: str
    leaf_hash: str
    leaf_index: int
    tree_size: int
    proof: list[str]
    root: str
    audit_index: int


class RefusedOut(BaseModel):
    batch_id: str
    line: int
    reasons: list[str]
    system: str
    basis: str


class QueueOut(BaseModel):
    held: list[BatchOut]
    refused: list[RefusedOut]


@router.post("/disclosures", status_code=201, response_model=SubmittedOut, openapi_extra=system_rule(AGENCIES),
             responses=_ERRORS)
def submit(body: DisclosureIn, request: Request, response: Response, app: AppDep,
           me: AgencyDep) -> dict[str, Any]:
    """Decide a batch record by record under ``basis`` (202 and ``status: held`` when the
    batch is over a cap: the disclosure officer decides; read it later by its id)."""
    out = service.submit(app, me, basis=body.basis, request=body.request, records=body.records,
                         interface="api")
    if out["status"] == "held":
        response.status_code = 202
    del request
    return out


@router.get("/disclosures", response_model=BatchesOut, openapi_extra=system_rule(AGENCIES),
            responses=_ERRORS)
def own_batches(app: AppDep, me: AgencyDep, page: PageDep,
                status: Literal["held", "decided", "rejected"] | None = None) -> dict[str, Any]:
    """The requesting system's own batches, newest first."""
    return service.list_batches(app, service.Viewer(system_id=me.id), status=status,
                                limit=page.limit, offset=page.offset)


@router.get("/disclosures/{batch_id}", response_model=BatchPage,
            openapi_extra=system_rule(AGENCIES), responses=_ERRORS)
def own_batch(batch_id: str, app: AppDep, me: AgencyDep, page: PageDep,
              outcome: Literal["disclosed", "refused"] | None = None) -> dict[str, Any]:
    """One of the system's batches with its decisions (paged by ``limit``/``offset``)."""
    return service.get_batch(app, service.Viewer(system_id=me.id), batch_id[:24],
                             limit=page.limit, offset=page.offset, outcome=outcome)


@router.get("/disclosures/{batch_id}/records/{line}/proof", response_model=ProofOut,
            openapi_extra=system_rule(AGENCIES), responses=_ERRORS)
def own_proof(batch_id: str, line: Line, app: AppDep, me: AgencyDep) -> dict[str, Any]:
    """One decision: its document, leaf hash, inclusion proof and the committed root."""
    return service.proof(app, service.Viewer(system_id=me.id), batch_id[:24], line)


@router.get("/disclosure-queue", response_model=QueueOut,
            openapi_extra=role_rule(DISCLOSURE_READERS), responses=_ERRORS)
def queue(request: Request, app: AppDep, me: Reader,
          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """Held batches (counts per official and per investigation against the caps) and the
    latest refused records with their reasons."""
    return service.queue(app, me, limit=limit, address=client_address(request))


@router.get("/disclosure-batches", response_model=BatchesOut,
            openapi_extra=role_rule(DISCLOSURE_READERS), responses=_ERRORS)
def batches(request: Request, app: AppDep, me: Reader, page: PageDep,
            status: Literal["held", "decided", "rejected"] | None = None,
            system: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
    """Every system's batches (``system=`` one requester's), newest first."""
    return service.list_batches(app, service.Viewer(employee=me), status=status, system=system,
                                limit=page.limit, offset=page.offset,
                                address=client_address(request))


@router.get("/disclosure-batches/{batch_id}", response_model=BatchPage,
            openapi_extra=role_rule(DISCLOSURE_READERS), responses=_ERRORS)
def batch(batch_id: str, request: Request, app: AppDep, me: Reader, page: PageDep,
          outcome: Literal["disclosed", "refused"] | None = None) -> dict[str, Any]:
    """One batch, its counts and decisions."""
    return service.get_batch(app, service.Viewer(employee=me), batch_id[:24], limit=page.limit,
                             offset=page.offset, outcome=outcome,
                             address=client_address(request))


@router.get("/disclosure-batches/{batch_id}/records/{line}/proof", response_model=ProofOut,
            openapi_extra=role_rule(DISCLOSURE_READERS), responses=_ERRORS)
def batch_proof(batch_id: str, line: Line, request: Request, app: AppDep,
                me: Reader) -> dict[str, Any]:
    """One decision of any batch with its inclusion proof (for auditors)."""
    return service.proof(app, service.Viewer(employee=me), batch_id[:24], line,
                         address=client_address(request))


@router.post("/disclosure-batches/{batch_id}/{decision}", response_model=SubmittedOut,
             openapi_extra=role_rule(DISCLOSURE_OFFICERS), responses=_ERRORS)
def decide_held(batch_id: str, decision: Literal["approve", "reject"], request: Request,
                app: AppDep, me: Officer) -> dict[str, Any]:
    """Approve (decide record by record, caps lifted) or reject (every record refused,
    CAP_NOT_APPROVED) a batch held over its caps."""
    call = service.approve if decision == "approve" else service.reject
    return call(app, me, batch_id[:24], interface="api", address=client_address(request))
