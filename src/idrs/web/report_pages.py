"""Pages of the weekly security reports and of the taxpayer's side.

- ``/reports/weekly``: the manager's weekly Security Violations / Sensitive Access report of
  their unit (overseers pick any unit), with a Certify button; the unit's earlier reports.
- ``/reports/certification-rate``: how many reports are certified, and who has not (overseers).
- ``/taxpayers``: the accounting of who opened an account (privacy staff, auditors); the TIN
  is posted, never put in a URL.
- ``/notices``: the IRC §7431(e) notices — produce those of a referred alert, list, download.

Each page calls ``detection.reports``, ``detection.taxpayer`` or ``detection.notices``, which
record what they do; who may see which unit is ``detection.weekly.may_read``.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from idrs.api.bounds import MAX_DATE, MIN_DATE
from idrs.detection import notices, reports, taxpayer, weekly
from idrs.detection.results import ReportListed, WeeklyReportView
from idrs.errors import IdrsError, ValidationFailed
from idrs.grants import records
from idrs.people.roles import (
    ACCOUNTING_READERS,
    NOTICE_STAFF,
    UNIT_MANAGERS,
    WEEKLY_OVERSEERS,
    WEEKLY_READERS,
)
from idrs.web.render import WebRoute, page, posted, role_rule
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
#: a notice is a standalone letter: its own inline style, nothing else
NOTICE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
              "base-uri 'none'; form-action 'none'")


def _require(request: Request, user: WebUser, roles: frozenset[str], what: str) -> None:
    records.require(app_of(request), user.employee, roles, what, "web",
                    client_address(request))


def _week(value: str | None, default: date) -> date:
    text = (value or "").strip()
    if not text:
        return default
    try:
        week = date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(["week: a date (YYYY-MM-DD)"]) from None
    if not MIN_DATE <= week <= MAX_DATE:
        raise ValidationFailed([f"week: out of range ({MIN_DATE} to {MAX_DATE})"])
    return week


# -- the weekly report -----------------------------------------------------------------------


@router.get("/reports/weekly", openapi_extra=role_rule(WEEKLY_READERS))
async def weekly_page(request: Request) -> HTMLResponse:
    """Build (until certified) and show a unit's weekly report. Recorded on every build."""
    user = current_user(request)
    _require(request, user, WEEKLY_READERS, "the weekly security reports")
    app = app_of(request)
    overseer = bool(user.roles & WEEKLY_OVERSEERS)
    own = await run_in_threadpool(lambda: weekly.unit_of(app, user.seid))
    unit = (request.query_params.get("unit") or ("" if overseer else own or "")).strip().upper()[:20]
    day = _week(request.query_params.get("week"), app.clock.now().date())
    ctx: dict[str, Any] = {"unit": unit, "week": day.isoformat(), "overseer": overseer,
                           "units": await run_in_threadpool(lambda: weekly.units(app)),
                           "report": None, "history": [], "done": request.query_params.get("done")}
    if unit:
        if not await run_in_threadpool(lambda: weekly.may_read(app, user.employee, unit)):
            raise records.refuse(app, user.employee, f"the weekly report of unit {unit} (a "
                                 "manager reads their own unit's)", WEEKLY_OVERSEERS, "web",
                                 client_address(request))

        def load() -> tuple[WeeklyReportView, list[ReportListed]]:
            rep = reports.weekly(app, unit=unit, week=day, actor=user.seid, interface="web")
            return rep, weekly.list_reports(app, unit=unit)

        ctx["report"], ctx["history"] = await run_in_threadpool(load)
        ctx["may_certify"] = (bool(user.roles & UNIT_MANAGERS) and own == unit
                              and ctx["report"].certified_at is None)
    return page(request, "weekly.html", user, **ctx)


@router.post("/reports/weekly/certify", openapi_extra=role_rule(UNIT_MANAGERS))
async def weekly_certify(request: Request) -> Response:
    """The manager of the unit certifies the week's report (the service checks the manager)."""
    user, form = await posted(request)
    app = app_of(request)
    unit = (form.get("unit") or "").strip().upper()[:20]
    day = _week(form.get("week"), app.clock.now().date())
    if not unit:
        raise ValidationFailed(["unit: required"])
    rep = await run_in_threadpool(lambda: reports.certify(
        app, unit=unit, week=day, manager=user.seid, interface="web"))
    return RedirectResponse(f"/reports/weekly?unit={quote(rep.unit)}&week={rep.week_start}"
                            "&done=certified", status_code=303)


@router.get("/reports/certification-rate", openapi_extra=role_rule(WEEKLY_OVERSEERS))
async def rate_page(request: Request) -> HTMLResponse:
    """Certified reports over reports built; the units (and managers) that have not certified."""
    user = current_user(request)
    _require(request, user, WEEKLY_OVERSEERS, "the certification rate")
    app = app_of(request)
    text = (request.query_params.get("week") or "").strip()
    day = _week(text, app.clock.now().date()) if text else None
    out = await run_in_threadpool(lambda: reports.certification_rate(app, week=day))
    return page(request, "certification.html", user, r=out, week=day.isoformat() if day else "")


# -- the taxpayer's side -----------------------------------------------------------------------


@router.get("/taxpayers", openapi_extra=role_rule(ACCOUNTING_READERS))
def taxpayers_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(request, user, ACCOUNTING_READERS, "the accounting of accesses")
    return page(request, "taxpayer.html", user, result=None, problem=None)


@router.post("/taxpayers", openapi_extra=role_rule(ACCOUNTING_READERS))
async def taxpayer_accounting(request: Request) -> HTMLResponse:
    """The accounting of one taxpayer's account (recorded: taxpayer:accesses:read)."""
    user, form = await posted(request)
    _require(request, user, ACCOUNTING_READERS, "the accounting of accesses")
    app = app_of(request)
    tin = (form.get("tin") or "").strip()[:20]
    try:
        out = await run_in_threadpool(
            lambda: taxpayer.accesses(app, tin=tin, actor=user.seid, interface="web"))
    except IdrsError as exc:
        if not isinstance(exc, ValidationFailed) and exc.status_code != 404:
            raise
        return page(request, "taxpayer.html", user, status=exc.status_code, result=None,
                    problem=str(exc))
    return page(request, "taxpayer.html", user, result=out, problem=None)


@router.get("/notices", openapi_extra=role_rule(NOTICE_STAFF))
async def notices_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(request, user, NOTICE_STAFF, "taxpayer notices")
    app = app_of(request)
    rows = await run_in_threadpool(lambda: notices.list_notices(app))
    return page(request, "notices.html", user, notices=rows, problem=None,
                done=request.query_params.get("done"), alert="")


@router.post("/notices", openapi_extra=role_rule(NOTICE_STAFF))
async def notices_send(request: Request) -> Response:
    """Produce the §7431(e) notice(s) of a referred alert; recorded as sent."""
    user, form = await posted(request)
    _require(request, user, NOTICE_STAFF, "taxpayer notices")
    app = app_of(request)
    alert = (form.get("alert") or "").strip().upper()[:40]
    try:
        sent = await run_in_threadpool(
            lambda: notices.issue(app, alert_id=alert, actor=user.seid, interface="web"))
    except IdrsError as exc:
        if exc.status_code >= 500 or exc.status_code in (401, 403):
            raise
        rows = await run_in_threadpool(lambda: notices.list_notices(app))
        return page(request, "notices.html", user, status=exc.status_code, notices=rows,
                    problem=str(exc), done=None, alert=alert)
    return RedirectResponse(f"/notices?done={len(sent)}", status_code=303)


@router.get("/notices/{notice_id}/{fmt}", openapi_extra=role_rule(NOTICE_STAFF))
async def notice_download(request: Request, notice_id: int, fmt: str) -> Response:
    """One stored notice by its number (HTML or PDF); recorded as handed out."""
    user = current_user(request)
    _require(request, user, NOTICE_STAFF, "taxpayer notices")
    app = app_of(request)
    content, media, name = await run_in_threadpool(lambda: notices.document(
        app, notice_id=notice_id, fmt=fmt[:4], actor=user.seid, interface="web"))
    return Response(content, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Security-Policy": NOTICE_CSP, "Cache-Control": "no-store"})
