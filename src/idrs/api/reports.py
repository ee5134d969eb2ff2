"""HTTP routes of the reports managers certify and overseers read (under /api/v1).

- ``GET /reports/weekly?unit=&week=``: the unit's weekly Security Violations / Sensitive
  Access report for the week containing ``week`` (default: this week), built or rebuilt
  until certified (recorded each time). A manager reads their own unit's; the overseers any.
- ``GET /reports/weekly/history?unit=``: the stored reports, newest week first (paged).
- ``POST /reports/weekly/{unit}/{week}/certification``: a manager of the unit certifies it
  (frozen afterwards; recorded).
- ``GET /reports/certification-rate?week=``: how many reports are certified, and which units
  (with their managers) have not; the overseers.
- ``GET /oversight/report?grant=|seids=|unit=&from=&to=&format=``: potential and actual
  access, for oversight bodies (recorded), as JSON, CSV, HTML or PDF.

Every route declares ``x-authorization`` (see api/grants.py).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.answers import Answer
from idrs.api.bounds import MAX_DB_INT, BoundedDate
from idrs.api.deps import AppDep, client_address, role_rule
from idrs.api.grants import needs
from idrs.api.paging import PageDep, paged
from idrs.audit.events import Actor
from idrs.context import App
from idrs.detection import reports, weekly
from idrs.detection.results import WeeklyReportRecorded, WeeklyReportView
from idrs.grants import records
from idrs.people.roles import OVERSIGHT_READERS, UNIT_MANAGERS, WEEKLY_OVERSEERS, WEEKLY_READERS

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee
else:
    Employee = object  # FastAPI needs the dependency, never the annotation's class

router = APIRouter(tags=["reports"])

Reader = Annotated[Employee, needs(WEEKLY_READERS, "the weekly security reports")]
Manager = Annotated[Employee, needs(UNIT_MANAGERS, "certifying a weekly report")]
Overseer = Annotated[Employee, needs(WEEKLY_OVERSEERS, "the certification rate")]
OversightReader = Annotated[Employee, needs(OVERSIGHT_READERS, "the oversight report")]
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
         "html": "text/html; charset=utf-8", "pdf": "application/pdf"}
class ReportScope(BaseModel):
    description: str
    grant_id: int | None
    unit: str | None
    seids: list[str]
    start: date = Field(alias="from")
    end: date = Field(alias="to")


class ReportCheckpoint(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    root_hex: str
    note: str


class ReportAnswer(BaseModel):
    """One answer a principal received: its entry and commitment (never its content)."""

    seid: str
    index: int
    time: str | None
    type: str | None
    command: str
    commitment: str
    open: str


class ReportWitness(BaseModel):
    name: str
    vkey: str
    cosigned: bool


class ReportAnswersCheckpoint(BaseModel):
    origin: str
    tree_size: int
    root_hex: str
    note: str
    witnesses: list[ReportWitness]
    cosignatures: int


class ReportAnswers(BaseModel):
    """Every committed answer of the scope in the period, the witnessed checkpoint covering
    them, and the commands that open one (``idrs audit open``) and check the opening."""

    total: int
    items: list[ReportAnswer]
    checkpoint: ReportAnswersCheckpoint
    open_command: str
    check_command: str
    how: str


class OversightReportOut(BaseModel):
    """The JSON form of the oversight report (``format=json``); the other formats render it.
    Sections may add fields (``extra``): the ones named here are always present."""

    model_config = ConfigDict(extra="allow")

    title: str
    generated_at: str
    audit_index: int
    scope: ReportScope
    population: dict[str, int]
    potential: list[dict[str, Any]]
    actual: dict[str, Any]
    checkpoint: ReportCheckpoint
    answers: ReportAnswers


#: the report's HTML is a standalone document: its own inline style and data: charts only
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Uncertified(BaseModel):
    unit: str
    week_start: str
    managers: list[str]


class CertificationRate(BaseModel):
    reports: int
    certified: int
    rate: float | None
    not_certified: list[Uncertified]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class StoredReport(BaseModel):
    unit: str
    week_start: str
    created_at: str
    conflict_refusals: int
    open_alerts: int
    outcomes_this_week: int = 0
    certified_by: str | None
    certified_at: str | None


class ReportHistory(BaseModel):
    reports: list[StoredReport]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class WeeklyReportOut(Answer):
    """A unit's weekly report. ``report``: ``unit``, ``week_start``, ``conflict_refusals``
    (own, spouse, employee, other_conflict: each entry's index, SEID, time, command and
    reason codes), ``other_refusals`` (reason code → count), ``open_alerts``,
    ``investigations`` (``week`` and ``to_date`` counts). ``audit_index``: the entry that
    recorded this reading or certification (absent when a certified report is read: it is
    not rebuilt)."""

    unit: str
    week_start: str
    report: dict[str, Any]
    certified_by: str | None
    certified_at: str | None
    audit_index: int | None = None


def _may_read(app: App, me: Employee, unit: str, request: Request) -> None:
    if not weekly.may_read(app, me, unit):
        raise records.refuse(app, me, f"the weekly report of unit {unit.strip().upper()[:20]} "
                             "(a manager reads their own unit's)", WEEKLY_OVERSEERS, "api",
                             client_address(request))


@router.get("/reports/weekly", response_model=WeeklyReportOut,
            response_model_exclude_unset=True, openapi_extra=role_rule(WEEKLY_READERS))
def weekly_report(request: Request, app: AppDep, me: Reader,
                  unit: Annotated[str, Query(min_length=1, max_length=20)],
                  week: Annotated[date | None, Query(description="any day of the week "
                                                     "(default: this week)")] = None,
                  ) -> WeeklyReportView:
    """The unit's weekly security report: refusals for conflicts (own, spouse, employee,
    other), other refusals by reason, open alerts; who certified it."""
    _may_read(app, me, unit, request)
    day = week or app.clock.now().date()
    return reports.weekly(app, unit=unit, week=day, actor=me.seid, interface="api")


@router.get("/reports/weekly/history", response_model=ReportHistory,
            openapi_extra=role_rule(WEEKLY_READERS))
def weekly_history(request: Request, app: AppDep, me: Reader, page: PageDep,
                   unit: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
    """Stored weekly reports, newest week first (a manager: their own unit's only)."""
    if not (me.role_set & WEEKLY_OVERSEERS):
        own = weekly.unit_of(app, me.seid)
        if unit and unit.strip().upper() != own:
            _may_read(app, me, unit, request)
        if own is None:
            return paged([], page, key="reports")
        unit = own
    return paged(weekly.list_reports(app, unit=unit), page, key="reports")


@router.post("/reports/weekly/{unit}/{week}/certification", response_model=WeeklyReportOut,
             response_model_exclude_unset=True, openapi_extra=role_rule(UNIT_MANAGERS))
def certify_report(unit: str, week: BoundedDate, app: AppDep,
                   me: Manager) -> WeeklyReportRecorded:
    """A manager of the unit certifies having reviewed the week's report (frozen afterwards).

    403 for anyone but a manager of that unit; 404 before the report is built; 409 when it
    is already certified.
    """
    return reports.certify(app, unit=unit[:20], week=week, manager=me.seid, interface="api")


@router.get("/reports/certification-rate", response_model=CertificationRate,
            openapi_extra=role_rule(WEEKLY_OVERSEERS))
def certification_rate(app: AppDep, me: Overseer, page: PageDep,
                       week: Annotated[date | None, Query()] = None) -> dict[str, Any]:
    """Reports built, certified, the rate; the uncertified ones (paged) with their managers."""
    del me
    out = reports.certification_rate(app, week=week)
    return paged(out.not_certified, page, key="not_certified", reports=out.reports,
                 certified=out.certified, rate=out.rate)


@router.get("/oversight/report", openapi_extra=role_rule(OVERSIGHT_READERS),
            response_class=Response,
            responses={200: {"content": {
                m.split(";")[0]: ({"schema": OversightReportOut.model_json_schema(by_alias=True)}
                                  if f == "json" else {})
                for f, m in MEDIA.items()}}})
def oversight_report(
    request: Request,
    app: AppDep,
    me: OversightReader,
    format: Literal["json", "csv", "html", "pdf"] = "json",  # noqa: A002 - the query name
    grant: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
    seids: Annotated[str | None, Query(max_length=2000, description="S1,S2,…")] = None,
    unit: Annotated[str | None, Query(max_length=20)] = None,
    system: Annotated[str | None, Query(max_length=40, description="an agency system")] = None,
    start: Annotated[BoundedDate | None, Query(alias="from")] = None,
    end: Annotated[BoundedDate | None, Query(alias="to")] = None,
) -> Response:
    """Potential and actual access of a grant's principal, some SEIDs or a unit; potential
    and actual disclosures of an agency system (``system=``). Recorded."""
    from idrs.oversight import render, report

    rep = report.build(app, grant_id=grant,
                       seids=[s for s in (seids or "").replace(",", " ").split() if s] or None,
                       unit=unit, system=system, start=start, end=end,
                       actor=Actor(me.seid, "api", client_address(request)))
    headers = {"Content-Disposition": f'attachment; filename="oversight-report.{format}"'}
    if format == "html":
        headers["Content-Security-Policy"] = REPORT_CSP
    if format == "json":  # the document that leaves has the declared shape
        OversightReportOut.model_validate(rep)
    return Response(render.render(rep, format), media_type=MEDIA[format], headers=headers)
