"""HTTP routes of the detection domain (mounted under /api/v1 by api/app.py).

- ``POST /detection/runs`` (privacy staff): one detection run over the audit log;
- ``GET /alerts`` (privacy analysts: the alerts they may work, paged), ``GET /alerts/{id}``,
  ``POST /alerts/{id}/assign|review|dismiss|refer`` (the signed-in analyst);
- ``GET /investigations`` (investigators: the cases they may work, paged),
  ``GET /investigations/{case_id}``, ``POST /investigations/{case_id}/open|outcomes|close``
  (the signed-in investigator); an outcome that is a statutory trigger (criminal charge,
  proposed adverse action) issues the taxpayers' §7431(e) notices, once;
- ``POST /self-reports`` (the signed-in employee's own accidental access);
- ``GET /taxpayers/{tin}/accesses`` (the accounting of who opened an account, without
  employee identities; privacy staff and auditors answering a taxpayer's request);
- ``POST /alerts/{id}/notice`` (privacy roles): the IRC §7431(e) notice(s) of an alert whose
  investigation recorded a trigger (a retry: the trigger issues them), recorded as sent; ``GET /notices`` and ``GET /notices/{id}/{html|pdf}`` hand a
  stored notice out by its number (recorded).

Every route declares ``x-authorization`` (see api/grants.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.answers import Answer
from idrs.api.bounds import BoundedDatetime, DbCount, RowId
from idrs.api.deps import AppDep, EmployeeDep, TokenDep, client_address, role_rule
from idrs.api.grants import SIGNED_IN, needs
from idrs.api.paging import PageDep, paged
from idrs.detection import investigations, notices, results, service, taxpayer, triage
from idrs.people.roles import (
    ACCOUNTING_READERS,
    ALERT_REVIEWERS,
    DETECTION_RUNNERS,
    INVESTIGATORS,
    NOTICE_STAFF,
)

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee
else:
    Employee = object  # FastAPI needs the dependency, never the annotation's class

router = APIRouter(tags=["detection"])
#: the service checks the analyst role itself; the declaration says what it requires
ANALYST_RULE = role_rule(ALERT_REVIEWERS)

Accountant = Annotated[Employee, needs(ACCOUNTING_READERS, "the accounting of accesses")]
NoticeStaff = Annotated[Employee, needs(NOTICE_STAFF, "taxpayer notices")]
Runner = Annotated[Employee, needs(DETECTION_RUNNERS, "a detection run")]
Investigator = Annotated[Employee, needs(INVESTIGATORS, "investigations")]
#: an upper bound the alert list is read to (the queue is ranked; paging slices it)
ALERTS_READ = 100_000


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=2000)


class SelfReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit_index: DbCount
    reason: str = Field(..., min_length=1, max_length=500)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: BoundedDatetime | None = Field(None, description="analyse entries from this time "
                                                     "(default: continue from the last run)")


class NoticeOut(BaseModel):
    notice_id: int | None
    alert_id: str
    taxpayer: str
    dates: list[str]
    trigger: str | None = None
    audit_index: int


class InvestigationStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=2000)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["unsubstantiated", "substantiated", "adverse_action_proposed",
                     "criminal_charge", "resigned"]
    reason: str = Field(..., min_length=1, max_length=2000)


class NoticesIssued(BaseModel):
    notices: list[NoticeOut]


class NoticeRow(BaseModel):
    notice_id: int
    alert_id: str
    taxpayer: str
    trigger: str | None = None
    sent_at: str
    audit_index: int


class InvestigationRow(BaseModel):
    case_id: str
    alert_id: str
    subject: str
    unit: str
    state: str
    finding: str | None
    investigator: str | None
    referred_by: str
    referred_at: str
    opened_at: str | None
    closed_at: str | None
    outcomes: list[str]


class InvestigationsPage(BaseModel):
    investigations: list[InvestigationRow]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class InvestigationStepOut(BaseModel):
    step: str
    actor: str
    reason: str
    at: str
    audit_index: int


class CaseNotice(BaseModel):
    notice_id: int
    taxpayer: str
    trigger: str | None
    sent_at: str
    audit_index: int


class InvestigationDetail(InvestigationRow):
    """One case: its row, its steps, what may come next, its notices."""

    steps: list[InvestigationStepOut]
    next: list[str]
    notices: list[CaseNotice]


class TriggeredNotices(BaseModel):
    sent: list[NoticeOut]
    why_none: str | None


class InvestigationStepDone(BaseModel):
    case_id: str
    alert_id: str
    step: str
    by: str
    state: str
    finding: str | None
    audit_index: int
    notices: TriggeredNotices | None = None


class NoticesPage(BaseModel):
    notices: list[NoticeRow]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class RunAlert(Answer):
    """An alert a run raised or updated."""

    alert_id: str
    seid: str
    score: float
    category: str
    day: str
    #: each signal: ``name``, ``weight``, ``evidence`` (audit indexes, codes…), ``taxpayer``
    signals: list[dict[str, Any]]
    audit_indexes: list[int]
    why: list[str]
    state: str


class RunOut(Answer):
    alerts: list[RunAlert]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    #: the entries read and how they were explained (``from_index``, ``to_index``,
    #: ``entries_read``, ``explained_*``, ``unexplained``, ``refused``, ``alerts``, …)
    summary: dict[str, Any]


class AlertOut(Answer):
    alert_id: str
    seid: str
    unit: str
    day: str
    score: float
    category: str
    signals: list[dict[str, Any]]
    audit_indexes: list[int]
    taxpayers: list[str]
    state: str
    assignee: str | None
    self_reported: bool
    close_reason: str | None
    why: list[str]


class AlertsPage(Answer):
    alerts: list[AlertOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class AlertActionOut(Answer):
    action: str
    actor: str
    note: str
    at: str
    audit_index: int


class AlertSelfReport(Answer):
    audit_index: int
    seid: str
    reason: str
    reported_at: str


class AlertDetail(AlertOut):
    """One alert with its triage history, the subject's self-reports and its case (if
    referred)."""

    actions: list[AlertActionOut]
    self_reports: list[AlertSelfReport]
    case_id: str | None


class PackageSelfReport(Answer):
    audit_index: int
    reason: str
    at: str


class PackageCheckpoint(Answer):
    note: str
    tree_size: int


class PackageEntry(Answer):
    """One cited audit entry (base64 leaf) with its inclusion proof (hex hashes)."""

    index: int
    leaf_input: str
    inclusion_proof: list[str]


class ReferralPackage(Answer):
    alert: AlertOut
    triage: list[AlertActionOut]
    self_reports: list[PackageSelfReport]
    checkpoint: PackageCheckpoint
    entries: list[PackageEntry]
    referred_by: str


class AlertStep(Answer):
    """A triage step done (``state`` null for a review: it leaves the state as it was); a
    referral adds its ``case_id`` and ``package``."""

    alert_id: str
    action: str
    by: str
    state: str | None
    audit_index: int
    case_id: str | None = None
    package: ReferralPackage | None = None


class SelfReported(Answer):
    seid: str
    audit_index: int
    recorded_as: int


class Opening(Answer):
    """One opening of the account: no employee identity."""

    date: str
    unit: str
    purpose: str
    command: str | None


class DisclosureOut(Answer):
    date: str | None
    agency: str
    system: str
    basis: str
    statute: str
    disclosed: str
    batch_id: str
    line: int


class TaxpayerAccesses(Answer):
    openings: list[Opening]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    taxpayer: str
    refused_attempts: int
    disclosures: list[DisclosureOut]


# -- detection runs and the alert queue -------------------------------------------------------


@router.post("/detection/runs", response_model=RunOut,
             openapi_extra=role_rule(DETECTION_RUNNERS))
def run_detection(body: RunIn, app: AppDep, me: Runner, page: PageDep) -> dict[str, Any]:
    """Explain every access, score the rest, raise alerts (continues from the last run).

    Recorded (``detect:run:complete``) under the employee who asked. The alerts raised or
    updated are paged; ``summary`` counts the entries read and explained.
    """
    result = service.run(app, since=body.since, actor=me.seid, interface="api")
    return paged(result["alerts"], page, key="alerts", summary=result["summary"])


@router.get("/alerts", response_model=AlertsPage, openapi_extra=ANALYST_RULE)
def list_alerts(app: AppDep, me: EmployeeDep, page: PageDep,
                state: Annotated[Literal["open", "assigned", "dismissed", "referred"] | None,
                                 Query()] = None) -> dict[str, Any]:
    """The alerts the signed-in analyst may work, highest score first."""
    rows = triage.list_alerts(app, state=state, analyst=me.seid, limit=ALERTS_READ)
    return paged(rows, page, key="alerts")


@router.get("/alerts/{alert_id}", response_model=AlertDetail, openapi_extra=ANALYST_RULE)
def show_alert(alert_id: str, app: AppDep, me: EmployeeDep) -> results.AlertDetail:
    return triage.show(app, alert_id[:40], analyst=me.seid, interface="api")


@router.post("/alerts/{alert_id}/assign", response_model=AlertStep,
             response_model_exclude_unset=True, openapi_extra=ANALYST_RULE)
def assign_alert(alert_id: str, app: AppDep, me: EmployeeDep) -> results.AlertStepDone:
    return triage.assign(app, alert_id=alert_id[:40], analyst=me.seid, interface="api")


@router.post("/alerts/{alert_id}/review", response_model=AlertStep,
             response_model_exclude_unset=True, openapi_extra=ANALYST_RULE)
def review_alert(alert_id: str, body: NoteIn, app: AppDep, me: EmployeeDep) -> results.AlertStepDone:
    return triage.review(app, alert_id=alert_id[:40], analyst=me.seid, note=body.note,
                         interface="api")


@router.post("/alerts/{alert_id}/dismiss", response_model=AlertStep,
             response_model_exclude_unset=True, openapi_extra=ANALYST_RULE)
def dismiss_alert(alert_id: str, body: ReasonIn, app: AppDep, me: EmployeeDep) -> results.AlertStepDone:
    return triage.dismiss(app, alert_id=alert_id[:40], analyst=me.seid, reason=body.reason,
                          interface="api")


@router.post("/alerts/{alert_id}/refer", response_model=AlertStep,
             response_model_exclude_unset=True, openapi_extra=ANALYST_RULE)
def refer_alert(alert_id: str, body: NoteIn, app: AppDep, me: EmployeeDep) -> results.AlertStepDone:
    return triage.refer(app, alert_id=alert_id[:40], analyst=me.seid, note=body.note,
                        interface="api")


# -- investigations of referred alerts ----------------------------------------------------------

CaseId = Annotated[str, Path(max_length=40)]


@router.get("/investigations", response_model=InvestigationsPage,
            openapi_extra=role_rule(INVESTIGATORS))
def list_investigations(app: AppDep, me: Investigator, page: PageDep,
                        state: Annotated[Literal["referred", "opened", "closed"] | None,
                                         Query()] = None) -> dict[str, Any]:
    """The cases the signed-in investigator may work, newest referral first (never a case
    about themselves, their unit, or one they referred)."""
    rows = investigations.list_cases(app, investigator=me.seid, state=state, interface="api")
    return paged(rows, page, key="investigations")


@router.get("/investigations/{case_id}", response_model=InvestigationDetail,
            openapi_extra=role_rule(INVESTIGATORS))
def show_investigation(case_id: CaseId, app: AppDep, me: Investigator) -> results.CaseDetail:
    """One case: steps (each with its audit entry), ``next`` steps, notices sent (recorded)."""
    return investigations.show(app, case_id=case_id, investigator=me.seid, interface="api")


@router.post("/investigations/{case_id}/open", response_model=InvestigationStepDone,
             openapi_extra=role_rule(INVESTIGATORS))
def open_investigation(case_id: CaseId, body: InvestigationStepIn, app: AppDep,
                       me: Investigator) -> results.CaseStepDone:
    """Take a referred case (referred → opened). 403 for the subject, their unit, the analyst
    who referred it; 409 unless referred."""
    return investigations.open_case(app, case_id=case_id, investigator=me.seid,
                                    reason=body.reason, interface="api")


@router.post("/investigations/{case_id}/outcomes", status_code=201,
             response_model=InvestigationStepDone, openapi_extra=role_rule(INVESTIGATORS))
def record_investigation_outcome(case_id: CaseId, body: OutcomeIn, app: AppDep,
                                 me: Investigator) -> results.CaseStepDone:
    """Record one outcome (each at most once; 409 out of order). On ``criminal_charge`` or
    ``adverse_action_proposed`` the answer's ``notices`` lists the §7431(e) notices issued
    (or why none was: already sent, or no allowed inspection cited)."""
    return investigations.record_outcome(app, case_id=case_id, outcome=body.outcome,
                                         investigator=me.seid, reason=body.reason,
                                         interface="api")


@router.post("/investigations/{case_id}/close", response_model=InvestigationStepDone,
             openapi_extra=role_rule(INVESTIGATORS))
def close_investigation(case_id: CaseId, body: InvestigationStepIn, app: AppDep,
                        me: Investigator) -> results.CaseStepDone:
    """End an opened case that is substantiated or whose subject resigned."""
    return investigations.close(app, case_id=case_id, investigator=me.seid,
                                reason=body.reason, interface="api")


@router.post("/self-reports", status_code=201, response_model=SelfReported,
             openapi_extra=SIGNED_IN)
def self_report(body: SelfReportIn, request: Request, app: AppDep, token: TokenDep,
                emp: EmployeeDep) -> results.SelfReported:
    """Report an accidental access of one's own (the entry's index, within a day of it).

    ``emp``: FastAPI resolves the dependencies before it validates the body, so a caller
    without a session is answered 401 whatever the body (the service authenticates again).
    """
    del emp
    return triage.self_report(app, token=token, audit_index=body.audit_index, reason=body.reason,
                              interface="api", address=client_address(request))


# -- the taxpayer's side ----------------------------------------------------------------------


@router.get("/taxpayers/{tin}/accesses", response_model=TaxpayerAccesses,
            openapi_extra=role_rule(ACCOUNTING_READERS))
def taxpayer_accesses(tin: str, app: AppDep, me: Accountant, page: PageDep) -> dict[str, Any]:
    """Who in the agency opened the account: date, unit, purpose (no employee identity).

    Refused attempts (nothing shown) are counted; ``disclosures`` lists each disclosure to
    another agency (agency, basis, date, what). Recorded as ``taxpayer:accesses:read``.
    """
    out = taxpayer.accesses(app, tin=tin[:20], actor=me.seid, interface="api")
    return paged(out.openings, page, key="openings", taxpayer=out.taxpayer,
                 refused_attempts=out.refused_attempts, disclosures=out.disclosures)


@router.post("/alerts/{alert_id}/notice", status_code=201, response_model=NoticesIssued,
             openapi_extra=role_rule(NOTICE_STAFF))
def send_notice(alert_id: str, app: AppDep, me: NoticeStaff) -> dict[str, Any]:
    """Produce the IRC §7431(e) notice(s) of an alert (one per inspected taxpayer).

    The investigation issues them itself when it records a criminal charge or a proposed
    adverse action; this retries one that failed. Each is rendered (HTML and PDF), stored
    and recorded as sent (``taxpayer:notice:send``); download them by ``notice_id``. 400
    unless the alert's investigation records a trigger (a referral is none), 409 when its
    notices were already sent.
    """
    return {"notices": notices.issue(app, alert_id=alert_id[:40], actor=me.seid,
                                     interface="api")}


@router.get("/notices", response_model=NoticesPage, openapi_extra=role_rule(NOTICE_STAFF))
def list_notices(app: AppDep, me: NoticeStaff, page: PageDep,
                 alert: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
    """Notices sent, newest first (taxpayer by pseudonym only)."""
    del me
    return paged(notices.list_notices(app, alert_id=alert), page, key="notices")


@router.get("/notices/{notice_id}/{fmt}", openapi_extra=role_rule(NOTICE_STAFF),
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}, "text/html": {}}}})
def notice_document(notice_id: RowId, fmt: Literal["html", "pdf"], app: AppDep,
                    me: NoticeStaff) -> Response:
    """One stored notice as a download (served by its number; recorded as handed out)."""
    content, media, name = notices.document(app, notice_id=notice_id, fmt=fmt, actor=me.seid,
                                            interface="api")
    return Response(content, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        # a standalone letter: its own inline style, nothing else
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    })
