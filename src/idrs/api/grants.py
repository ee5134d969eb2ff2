"""HTTP API of outside access (mounted under /api/v1 by api/app.py).

Grants (request, list, show, approve, revoke, end, renew, the "exports outstanding" alerts),
agreements (versions, text, signatures), clearance verifications, UNAX training, exports
(create, show, certify destroyed). Every call needs a signed-in employee (Bearer token).

Authorization: every route declares its rule in the OpenAPI document as
``x-authorization`` ("public", "signed-in" or "role:r1,r2" — any of the roles). Where the
service decides who may act (approving roles, the holder of an export, the signer), it
checks and records; where it was written for the local operator, the route checks the role
first (``needs``: refused with NOT_IN_PROFILE, recorded as ``access:route:deny``).
Lists are paged (``limit``/``offset``, ``next_offset``; idrs.api.paging).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.answers import Answer
from idrs.api.bounds import BoundedDate, DbCount, RowId
from idrs.api.deps import AppDep, EmployeeDep, TokenDep, client_address, role_rule
from idrs.api.middleware import problem
from idrs.api.paging import PageDep, paged
from idrs.audit.events import Actor
from idrs.config import get_settings
from idrs.context import App
from idrs.errors import AccessDenied
from idrs.grants import exports, records, rules, service
from idrs.people.roles import AGREEMENT_AUTHORS, GRANT_RECORD_READERS, RECORD_KEEPERS

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee
else:
    Employee = object  # FastAPI needs the dependency, never the annotation's class

router = APIRouter(tags=["grants"])

# -- authorization declarations (shared by the routers of this capability) ----------------


def authz(rule: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a route's authorization rule."""
    return {"x-authorization": rule}


SIGNED_IN = authz("signed-in")


def needs(roles: frozenset[str], what: str) -> Any:
    """A dependency: the signed-in employee, refused (recorded) unless they hold a role."""

    def dependency(request: Request, app: AppDep, emp: EmployeeDep) -> Employee:
        records.require(app, emp, roles, what, "api", client_address(request))
        return emp

    return Depends(dependency)


#: The approving roles of the configured rule, as this process's settings name them (the
#: service checks the rule of ``app.settings`` on every call).
APPROVERS = frozenset(rules.ApprovalRule.from_settings(get_settings()).roles)

Staff = Annotated[Employee, needs(GRANT_RECORD_READERS, "the register of grants")]
AgreementAuthor = Annotated[Employee, needs(AGREEMENT_AUTHORS, "adding an agreement")]
RecordKeeper = Annotated[Employee, needs(RECORD_KEEPERS, "recording for another person")]
SignatureReader = Annotated[Employee, needs(GRANT_RECORD_READERS, "the signatures of an agreement")]


def _actor(emp: Any, request: Request) -> Actor:
    return Actor(emp.seid, "api", client_address(request))


def _with_code(request: Request, action: Callable[[], Any]) -> Any:
    """Run an action that consumes a re-entered one-time code. A refused code (AUTH_FAILED
    from the service, recorded there) is answered 403, not 401: the session was checked
    before and is valid, and 401 means "no session" (a client would drop its token)."""
    try:
        return action()
    except AccessDenied as exc:
        if exc.codes != ["AUTH_FAILED"]:
            raise
        return problem(403, "; ".join(r.message for r in exc.reasons),
                       request_id=getattr(request.state, "request_id", None),
                       decision="deny", reasons=[r.as_dict() for r in exc.reasons],
                       audit_index=exc.audit_index)


# -- bodies and answers ----------------------------------------------------------------------


class OtpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    otp: str = Field(min_length=1, max_length=12)


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=16)
    purpose: str = Field(min_length=1, max_length=2000)
    basis: str = Field(min_length=1, max_length=2000)
    commands: list[str] = Field(default_factory=list, max_length=20,
                                description="at least one, except for a statistics grant (none)")
    classes: list[str] = Field(default_factory=list, max_length=10,
                               description="at least one, except for a statistics grant (none)")
    population: Literal["cases", "all", "anonymized", "statistics"] | None = None
    kind: Literal["records", "anonymized", "statistics"] | None = None
    k: int | None = Field(None, ge=2, le=1000, description="anonymized grants (default 10)")
    epsilon: float | None = Field(None, gt=0, le=100,
                                  description="statistics grants: the privacy budget ε in all")
    delta: float | None = Field(None, ge=0, le=1,
                                description="statistics grants: δ in all (default 1e-6)")
    allow_changes: bool = False
    start: BoundedDate
    days: int | None = Field(None, ge=1, le=3650)
    end: BoundedDate | None = None
    renewal_of: DbCount | None = None
    daily_limit: int | None = Field(None, ge=1, le=1_000_000)
    agreement: str | None = Field(None, max_length=200)


class RenewalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: BoundedDate | None = Field(None, description="default: the day the renewed grant ends")
    days: int | None = Field(None, ge=1, le=3650)
    end: BoundedDate | None = None


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=200_000)


class ClearanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seid: str = Field(min_length=1, max_length=16)
    verified_by: str | None = Field(None, max_length=16,
                                    description="who verified it (default: you)")
    note: str | None = Field(None, max_length=2000)


class TrainingRecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seid: str = Field(min_length=1, max_length=16)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str
    tins: list[str] = Field(min_length=1, max_length=exports.MAX_TINS)
    format: Literal["csv", "pdf"] = "csv"
    year: int | None = None
    case: str | None = None
    reason: str | None = None


class DestructionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field(min_length=1, max_length=2000)
    witness_seid: str
    destroyed_at: datetime | None = None


class GrantRequested(BaseModel):
    grant_id: int
    status: str
    principal: str
    start: str
    term_days: int
    end: str
    audit_index: int


class AgreementOut(BaseModel):
    agreement_id: int
    title: str
    version: int
    sha256: str
    current: bool
    added_by: str
    added_at: str
    signatures: int


class AgreementText(AgreementOut):
    text: str
    signed_by_you: bool
    signed_at: str | None


class AgreementsPage(BaseModel):
    agreements: list[AgreementOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class AgreementAdded(BaseModel):
    agreement_id: int
    sha256: str
    title: str
    version: int
    audit_index: int


class GrantApprovalOut(Answer):
    role: str
    seid: str
    at: str


class GrantExportOut(Answer):
    export_id: str
    created_at: str
    format: str
    taxpayers: int
    destroyed: bool
    method: str | None
    holder: str | None
    witness: str | None


class GrantOut(Answer):
    """One grant as the register describes it (no taxpayer data); the budget fields are
    null except on a statistics grant."""

    grant_id: int
    principal: str | None
    principal_kind: str | None
    home_org: str | None
    status: str
    stored_status: str
    requested_by: str
    requested_at: str
    purpose: str
    legal_basis: str
    commands: list[str]
    classes: list[str]
    population: str
    kind: str
    k: int | None
    key_version: int
    epsilon: float | None
    delta: float | None
    epsilon_spent: float | None
    delta_spent: float | None
    budget_left: float | None
    access: str
    allow_changes: bool
    start: str
    term_days: int
    end: str
    renewal_of: int | None
    daily_limit: int | None
    agreement: str | None
    approved_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    ended_at: str | None
    ended_by: str | None
    reason: str | None
    approvals: list[GrantApprovalOut]
    exports: list[GrantExportOut]
    exports_outstanding: bool
    outstanding_exports: list[str]


class ClearanceSeen(Answer):
    verified_by: str
    verified_at: str


class Prerequisites(Answer):
    clearance_verified: bool
    clearance: ClearanceSeen | None
    agreement_signed: bool
    training_current: bool
    training_attested_at: str | None


class GrantDetail(GrantOut):
    prerequisites: Prerequisites


class GrantsPage(Answer):
    grants: list[GrantOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class OutstandingAlert(Answer):
    grant_id: int
    seid: str
    exports: list[str]
    audit_index: int


class OutstandingAlertsPage(Answer):
    alerts: list[OutstandingAlert]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class GrantApproved(Answer):
    grant_id: int
    status: str
    role: str
    approvals: list[str]
    audit_index: int


class GrantClosed(Answer):
    grant_id: int
    status: str
    audit_index: int


class SignatureOut(Answer):
    seid: str
    kind: str
    signed_at: str
    sha256: str


class SignaturesPage(Answer):
    signatures: list[SignatureOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class AgreementSigned(Answer):
    signature_id: int
    agreement_id: int
    sha256: str
    signed_at: str
    audit_index: int


class ClearanceVerified(Answer):
    seid: str
    verified_by: str
    verified_at: str
    audit_index: int


class ClearanceOut(Answer):
    seid: str
    verified_by: str
    recorded_by: str | None
    verified_at: str
    note: str | None


class ClearancesPage(Answer):
    clearances: list[ClearanceOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    seid: str


class TrainingAttested(Answer):
    seid: str
    attested_at: str
    valid_until: str
    audit_index: int


class AttestationOut(Answer):
    course: str
    attested_at: str
    valid_until: str
    with_code: bool


class TrainingPage(Answer):
    attestations: list[AttestationOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    seid: str
    current: bool
    last_attested_at: str | None
    valid_until: str | None


class ExportCreated(Answer):
    """The register entry of a new export and the file itself (base64 in ``content``)."""

    export_id: str
    format: str
    filename: str
    taxpayers: int
    counts: dict[str, int]
    grant_id: int | None
    sha256: str
    audit_index: int
    media_type: str
    content: str


class ExportOut(Answer):
    """One export's register entry: counts and pseudonyms, never TINs."""

    export_id: str
    holder: str | None
    grant_id: int | None
    created_at: str
    command: str
    format: str
    counts: dict[str, int]
    taxpayers: int
    pseudonyms: list[str]
    sha256: str
    destroyed: bool
    destroyed_at: str | None
    witness: str | None
    method: str | None


class ExportDestroyed(Answer):
    export_id: str
    status: str
    holder: str
    witness: str
    method: str
    destroyed_at: str
    audit_index: int


# -- grants ----------------------------------------------------------------------------------


def _grant_for(app: App, emp: Employee, grant_id: int, request: Request) -> dict[str, Any]:
    return records.visible_grant(app, emp, grant_id, interface="api",
                                 address=client_address(request))


@router.post("/grants", status_code=201, response_model=GrantRequested, openapi_extra=SIGNED_IN)
def request_grant(body: GrantIn, request: Request, app: AppDep,
                  emp: EmployeeDep) -> dict[str, Any]:
    """Request a grant (the signed-in employee is the requester, e.g. the sponsor).

    It starts ``pending_approval``; two approving roles must approve it.
    """
    return service.request_grant(app, **body.model_dump(), actor=_actor(emp, request)).as_dict()


@router.get("/grants", response_model=GrantsPage, openapi_extra=SIGNED_IN)
def list_grants(app: AppDep, emp: EmployeeDep, page: PageDep,
                principal: Annotated[str | None, Query(max_length=16)] = None,
                state: Annotated[str | None, Query(max_length=20,
                                                   description=", ".join(rules.STATES))] = None,
                ) -> dict[str, Any]:
    """Grants, newest first (staff: all; others: their own as principal or requester)."""
    rows = service.list_grants(app, principal=principal, state=state)
    return paged([g for g in rows if records.may_see_grant(emp, g)], page, key="grants")


@router.post("/grants/outstanding-alerts", response_model=OutstandingAlertsPage,
             openapi_extra=role_rule(GRANT_RECORD_READERS))
def raise_outstanding(app: AppDep, me: Staff, page: PageDep) -> dict[str, Any]:
    """Raise (once per grant, recorded) the "exports outstanding" alerts; list those raised."""
    del me
    return paged([a.as_dict() for a in service.check_outstanding(app)], page, key="alerts")


@router.get("/grants/{grant_id}", response_model=GrantDetail, openapi_extra=SIGNED_IN)
def show_grant(grant_id: RowId, request: Request, app: AppDep, emp: EmployeeDep) -> dict[str, Any]:
    """One grant: state (from the clock), scope, term, approvals, prerequisites, exports.

    Staff, the principal and the requester may read it.
    """
    return _grant_for(app, emp, grant_id, request)


@router.post("/grants/{grant_id}/approvals", response_model=GrantApproved,
             openapi_extra=role_rule(APPROVERS))
def approve_grant(grant_id: RowId, body: OtpIn, request: Request, app: AppDep,
                  emp: EmployeeDep) -> Any:
    """One approval by an approving role, with a re-entered one-time code → {"status", …}.

    A wrong, old or reused code: 403 with AUTH_FAILED (recorded; the session stays valid).
    """
    return _with_code(request, lambda: service.approve_grant(
        app, emp, grant_id=grant_id, otp=body.otp, actor=_actor(emp, request)).as_dict())


@router.post("/grants/{grant_id}/revocation", response_model=GrantClosed,
             openapi_extra=role_rule(APPROVERS))
def revoke_grant(grant_id: RowId, body: RevokeIn, request: Request, app: AppDep,
                 emp: EmployeeDep) -> dict[str, Any]:
    """Revoke (either approving role); effective on the principal's next request."""
    return service.revoke_grant(app, emp, grant_id=grant_id, reason=body.reason,
                                actor=_actor(emp, request)).as_dict()


@router.post("/grants/{grant_id}/end", response_model=GrantClosed,
             openapi_extra=role_rule(APPROVERS))
def end_grant(grant_id: RowId, body: RevokeIn, request: Request, app: AppDep,
              emp: EmployeeDep) -> dict[str, Any]:
    """End a grant early (the detail is over) — either approving role."""
    return service.end_grant(app, emp, grant_id=grant_id, reason=body.reason,
                             actor=_actor(emp, request)).as_dict()


@router.post("/grants/{grant_id}/renewals", status_code=201, response_model=GrantRequested,
             openapi_extra=SIGNED_IN)
def renew_grant(grant_id: RowId, body: RenewalIn, request: Request, app: AppDep,
                emp: EmployeeDep) -> dict[str, Any]:
    """Request the renewal of a grant (pending approval like any grant; renewable once)."""
    return records.request_renewal(app, emp, grant_id=grant_id, start=body.start, days=body.days,
                                   end=body.end, actor=_actor(emp, request)).as_dict()


# -- agreements ------------------------------------------------------------------------------


@router.get("/agreements", response_model=AgreementsPage, openapi_extra=SIGNED_IN)
def list_agreements(app: AppDep, emp: EmployeeDep, page: PageDep,
                    title: Annotated[str | None, Query(max_length=200)] = None,
                    current: bool = False) -> dict[str, Any]:
    """Agreement versions (by title, newest version first); ``current=true``: signable ones."""
    del emp
    return paged(records.list_agreements(app, title=title, current_only=current), page,
                 key="agreements")


@router.post("/agreements", status_code=201, response_model=AgreementAdded,
             openapi_extra=role_rule(AGREEMENT_AUTHORS))
def add_agreement(body: AgreementIn, request: Request, app: AppDep,
                  me: AgreementAuthor) -> dict[str, Any]:
    """Store a new version of the agreement ``title``; it becomes the one current version.

    Who signed an earlier version must sign the new one before their grant allows access.
    """
    return service.add_agreement(app, title=body.title, text=body.text,
                                 actor=_actor(me, request)).as_dict()


@router.get("/agreements/{agreement_id}", response_model=AgreementText, openapi_extra=SIGNED_IN)
def show_agreement(agreement_id: RowId, app: AppDep, emp: EmployeeDep) -> dict[str, Any]:
    """One version with its full text and SHA-256, and whether you signed it."""
    return records.show_agreement(app, agreement_id, reader=emp)


@router.get("/agreements/{agreement_id}/signatures", response_model=SignaturesPage,
            openapi_extra=role_rule(GRANT_RECORD_READERS))
def agreement_signatures(agreement_id: RowId, app: AppDep, me: SignatureReader,
                         page: PageDep) -> dict[str, Any]:
    """Who signed this version, when, and the digest of the text they signed."""
    del me
    return paged(records.agreement_signatures(app, agreement_id), page, key="signatures")


@router.post("/agreements/{agreement_id}/signatures", status_code=201,
             response_model=AgreementSigned, openapi_extra=SIGNED_IN)
def sign_agreement(agreement_id: RowId, body: OtpIn, request: Request, app: AppDep,
                   emp: EmployeeDep) -> Any:
    """The signed-in employee signs the current version of an agreement (fresh code).

    A wrong, old or reused code: 403 with AUTH_FAILED (recorded; the session stays valid).
    """
    return _with_code(request, lambda: service.sign_agreement(
        app, emp, agreement_id=agreement_id, otp=body.otp, actor=_actor(emp, request)).as_dict())


# -- clearance and training ------------------------------------------------------------------


def _records_of(app: App, emp: Employee, seid: str | None, request: Request) -> str:
    """The SEID whose records are asked for (default: one's own); refused unless allowed."""
    target = (seid or emp.seid).strip().upper()
    if not records.may_read_records(emp, target):
        raise records.refuse(app, emp, "another person's records", GRANT_RECORD_READERS,
                             "api", client_address(request))
    return target


@router.post("/clearances", status_code=201, response_model=ClearanceVerified,
             openapi_extra=role_rule(RECORD_KEEPERS))
def verify_clearance(body: ClearanceIn, request: Request, app: AppDep,
                     me: RecordKeeper) -> dict[str, Any]:
    """Record that ``seid``'s security clearance was verified (by ``verified_by``, default you)."""
    return service.verify_clearance(app, seid=body.seid, by=body.verified_by or me.seid,
                                    note=body.note, actor=_actor(me, request)).as_dict()


@router.get("/clearances", response_model=ClearancesPage, openapi_extra=SIGNED_IN)
def list_clearances(request: Request, app: AppDep, emp: EmployeeDep, page: PageDep,
                    seid: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
    """Clearance verifications of ``seid`` (default: yours; anyone's for record readers)."""
    target = _records_of(app, emp, seid, request)
    return paged(records.clearances(app, target), page, key="clearances", seid=target)


@router.post("/training/attestations", status_code=201, response_model=TrainingAttested,
             openapi_extra=SIGNED_IN)
def attest_training(body: OtpIn, request: Request, app: AppDep,
                    emp: EmployeeDep) -> Any:
    """The signed-in employee attests UNAX training (valid 365 days) with a fresh code.

    A wrong, old or reused code: 403 with AUTH_FAILED (recorded; the session stays valid).
    """
    return _with_code(request, lambda: service.attest_training(
        app, emp, otp=body.otp, actor=_actor(emp, request)).as_dict())


@router.get("/training/attestations", response_model=TrainingPage, openapi_extra=SIGNED_IN)
def list_training(request: Request, app: AppDep, emp: EmployeeDep, page: PageDep,
                  seid: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
    """UNAX attestations of ``seid`` (default: yours) and whether training is current."""
    target = _records_of(app, emp, seid, request)
    t = records.training(app, target)
    items = t.pop("attestations")
    return paged(items, page, key="attestations", **t)


@router.post("/training/records", status_code=201, response_model=TrainingAttested,
             openapi_extra=role_rule(RECORD_KEEPERS))
def record_training(body: TrainingRecordIn, request: Request, app: AppDep,
                    me: RecordKeeper) -> dict[str, Any]:
    """Record a UNAX attestation taken elsewhere (the learning system) for ``seid``."""
    return service.record_training(app, seid=body.seid, actor=_actor(me, request)).as_dict()


# -- exports ---------------------------------------------------------------------------------


@router.post("/exports", status_code=201, response_model=ExportCreated, openapi_extra=SIGNED_IN)
def create_export(body: ExportIn, request: Request, app: AppDep, token: TokenDep,
                  emp: EmployeeDep, response: Response) -> dict[str, Any]:
    """Export research results; every TIN goes through the research service.

    201 with ``export_id``, the register entry and the file (base64) in ``content``; the
    ``X-Idrs-Export-Id`` header carries the id too.
    """
    # ``emp``: FastAPI resolves the dependencies before it validates the body, so a caller
    # without a session is answered 401 whatever the body (the service authenticates again).
    del emp
    f = exports.create_export(app, token=token, command=body.command, tins=body.tins,
                              fmt=body.format, year=body.year, case=body.case,
                              reason=body.reason, interface="api",
                              address=client_address(request))
    response.headers["X-Idrs-Export-Id"] = f.export_id
    return {**f.summary(), "media_type": f.media_type,
            "content": base64.b64encode(f.content).decode()}


@router.get("/exports/{export_id}", response_model=ExportOut, openapi_extra=SIGNED_IN)
def show_export(export_id: str, app: AppDep, emp: EmployeeDep) -> dict[str, Any]:
    """One export's register entry (counts and pseudonyms, never TINs): holder or staff."""
    return records.show_export(app, export_id[:40], reader=emp)


@router.post("/exports/{export_id}/destruction", response_model=ExportDestroyed,
             openapi_extra=SIGNED_IN)
def destroy_export(export_id: str, body: DestructionIn, request: Request, app: AppDep,
                   emp: EmployeeDep) -> dict[str, Any]:
    """The holder certifies the export destroyed, with a witness, the method and the time."""
    return exports.destroy_export(app, emp, export_id=export_id, method=body.method,
                                  witness_seid=body.witness_seid,
                                  destroyed_at=body.destroyed_at,
                                  actor=_actor(emp, request)).as_dict()

