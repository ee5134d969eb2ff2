"""Pages of the watching roles: audit log, approvals, alert desk, investigations, oversight,
unlocks.

(Grants, agreements and training are web/grant_pages.py.)

Each page calls only the owning package's service functions; those functions check and
record. Where a service function does not check the caller's role itself (it was written
for the local operator), the page checks it first and refuses with NOT_IN_PROFILE.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from idrs.adjustments import service as adjustments
from idrs.api.bounds import MAX_DB_INT, RowId
from idrs.audit import service as audit
from idrs.audit.events import Actor
from idrs.detection import investigations, triage
from idrs.detection.results import CaseTriggerStep
from idrs.errors import AccessDenied, IdrsError, NotFound, Reason, ValidationFailed
from idrs.people.roles import (
    ADJUSTMENT_APPROVERS,
    ALERT_REVIEWERS,
    AUDIT_READERS,
    INVESTIGATORS,
    OVERSIGHT_READERS,
)
from idrs.vocabulary import CommandCode
from idrs.web.render import WebRoute, page, posted, role_rule
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
#: the adjustment form's command choices, the first selected by default
ADJUST_CHOICES = (CommandCode.ADJ54, CommandCode.REQ77, CommandCode.ENREQ)
#: The report's own stylesheet and charts are inline (it is a standalone document); it has
#: no script, so this page may allow inline style and data: images and nothing else.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _require(user: WebUser, roles: frozenset[str], what: str) -> None:
    if not roles & user.roles:
        raise AccessDenied(
            [Reason("NOT_IN_PROFILE", f"{what} needs one of the roles " + ", ".join(sorted(roles)))]
        )


def _int(value: str | None, what: str) -> int:
    try:
        number = int(value or "")
    except ValueError:
        raise IdrsError(f"{what} must be a whole number") from None
    if abs(number) > MAX_DB_INT:
        raise IdrsError(f"{what} is out of range")
    return number


# -- audit ---------------------------------------------------------------------------------


def _audit_state(request: Request) -> dict[str, Any]:
    app = app_of(request)
    try:
        note = audit.latest_checkpoint(app)
    except NotFound:
        note = None
    return {"checkpoint": note, "size": audit.tree_size(app)}


@router.get("/audit", openapi_extra={"x-authorization": "signed-in"})
async def audit_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    state = await run_in_threadpool(_audit_state, request)
    return page(request, "audit.html", user, report=None,
                audit_reader=bool(user.roles & AUDIT_READERS), **state)


@router.post("/audit/verify", openapi_extra=role_rule(AUDIT_READERS))
async def audit_verify(request: Request) -> HTMLResponse:
    """Verify the whole log now (auditor). Records audit:log:verify."""
    user, _ = await posted(request)
    audit.require_auditor(user.employee)
    app = app_of(request)
    report = await run_in_threadpool(lambda: audit.verify(app, user.seid, interface="web"))
    state = await run_in_threadpool(_audit_state, request)
    return page(
        request, "audit.html", user, status=200 if report.get("ok") else 409, report=report,
        audit_reader=bool(user.roles & AUDIT_READERS), **state
    )


@router.post("/audit/export", openapi_extra=role_rule(AUDIT_READERS))
async def audit_export(request: Request) -> Response:
    """The export (entries.jsonl, checkpoint, key.vkey) as one zip (auditor). Recorded."""
    user, _ = await posted(request)
    audit.require_auditor(user.employee)
    app = app_of(request)

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="idrs-export-") as tmp:
            out = Path(tmp) / "export"
            audit.export(app, out, user.seid, interface="web")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(out.iterdir()):
                    zf.write(f, f"idrs-audit-export/{f.name}")
            return buf.getvalue()

    data = await run_in_threadpool(build)
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="idrs-audit-export.zip"',
            "Cache-Control": "no-store",
        },
    )


# -- adjustments: the approver's queue -----------------------------------------------------


@router.get("/adjustments", openapi_extra=role_rule(ADJUSTMENT_APPROVERS))
async def adjustments_page(request: Request) -> HTMLResponse:
    """Pending requests (managers). The service checks the role and records the listing."""
    user = current_user(request)
    app = app_of(request)
    out = await run_in_threadpool(
        lambda: adjustments.pending(
            app, token=user.token, interface="web", origin=client_address(request)
        )
    )
    return page(
        request,
        "adjustments.html",
        user,
        items=out["adjustments"],
        done=request.query_params.get("done"),
    )


@router.post("/adjustments/{adjustment_id}/{decision}", openapi_extra=role_rule(ADJUSTMENT_APPROVERS))
async def adjustments_decide(request: Request, adjustment_id: RowId, decision: str) -> Response:
    user, form = await posted(request)
    if decision not in ("approve", "reject"):
        raise NotFound("no such decision")
    fn = adjustments.approve if decision == "approve" else adjustments.reject
    app = app_of(request)
    note = (form.get("note") or "").strip() or None
    res = await run_in_threadpool(
        lambda: fn(
            app,
            token=user.token,
            adjustment_id=adjustment_id,
            note=note,
            interface="web",
            origin=client_address(request),
        )
    )
    return RedirectResponse(f"/adjustments?done={res.adjustment_id}:{res.status}", status_code=303)


# -- adjustments: the request form ---------------------------------------------------------

ADJUST_FIELDS = (
    "tin",
    "command",
    "case",
    "contact",
    "reason",
    "tax_year",
    "tc",
    "amount",
    "action_code",
    "date",
    "street",
    "city",
    "state",
    "zip",
)


def _adjust_kwargs(form: dict[str, str]) -> dict[str, Any]:
    """The request's fields from the form; empty fields are left out (the service validates)."""
    v = {k: (form.get(k) or "").strip()[:500] for k in ADJUST_FIELDS}
    kw: dict[str, Any] = {k: v[k] for k in ("tc", "amount", "action_code", "date") if v[k]}
    if v["tax_year"]:
        kw["tax_year"] = _int(v["tax_year"], "tax year")
    if any(v[k] for k in ("street", "city", "state", "zip")):
        kw["address"] = {k: v[k] for k in ("street", "city", "state", "zip")}
    return kw


@router.get("/adjust", openapi_extra={"x-authorization": "signed-in"})
def adjust_form(request: Request) -> HTMLResponse:
    user = current_user(request)
    return page(request, "adjust.html", user, v={}, result=None, problems=[], refusal=None,
                commands=ADJUST_CHOICES)


@router.post("/adjust", openapi_extra={"x-authorization": "signed-in"})
async def adjust_request(request: Request) -> HTMLResponse:
    """Request an adjustment (ENREQ, ADJ54, REQ77): applied at once or left for a second person.

    The service decides and records everything (profile, need to know, conflicts, the
    prerequisite research in this sign-in session, two-person triggers).
    """
    user, form = await posted(request)
    app = app_of(request)
    v = {k: (form.get(k) or "").strip()[:500] for k in ADJUST_FIELDS}
    ctx: dict[str, Any] = {"v": v, "result": None, "problems": [], "refusal": None}
    status = 201
    try:
        kw = _adjust_kwargs(form)
        res = await run_in_threadpool(
            lambda: adjustments.request(
                app,
                token=user.token,
                tin=v["tin"],
                command=v["command"],
                case=v["case"] or None,
                contact=v["contact"] or None,
                reason=v["reason"] or None,
                interface="web",
                origin=client_address(request),
                **kw,
            )
        )
        ctx["result"] = res
    except ValidationFailed as exc:
        status, ctx["problems"] = 422, exc.problems
    except AccessDenied as exc:
        if set(exc.codes) <= {"AUTH_REQUIRED", "SESSION_EXPIRED"}:
            raise
        status, ctx["refusal"] = 403, exc
    return page(request, "adjust.html", user, status=status, commands=ADJUST_CHOICES, **ctx)


# -- the privacy analyst's alert desk -----------------------------------------------------


def _by_week(alerts: list[dict[str, Any]]) -> list[tuple[str, dict[str, int]]]:
    from datetime import date

    weeks: dict[str, dict[str, int]] = {}
    for a in alerts:
        y, w, _ = date.fromisoformat(a["day"]).isocalendar()
        cell = weeks.setdefault(f"{y}-W{w:02d}", {})
        cell[a["category"]] = cell.get(a["category"], 0) + 1
    return sorted(weeks.items())


@router.get("/alerts", openapi_extra=role_rule(ALERT_REVIEWERS))
async def alerts_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    app = app_of(request)
    state = request.query_params.get("state") or None
    if state not in (None, "open", "assigned", "dismissed", "referred"):
        raise IdrsError("state: one of open, assigned, dismissed, referred")
    listed = await run_in_threadpool(
        lambda: triage.list_alerts(app, state=state, analyst=user.seid)
    )
    # the page's own view of each alert: its fields and the names of its signals
    alerts = [
        {
            **a,
            "signal_names": sorted(
                {str(x.get("name", x)) if isinstance(x, dict) else str(x) for x in a.signals}
            ),
        }
        for a in listed
    ]
    weeks = _by_week(alerts)
    categories = sorted({c for _, cell in weeks for c in cell})
    peak = max((n for _, cell in weeks for n in cell.values()), default=1)
    return page(
        request,
        "alerts.html",
        user,
        alerts=alerts,
        state=state or "",
        weeks=weeks,
        categories=categories,
        peak=peak,
    )


@router.get("/alerts/{alert_id}", openapi_extra=role_rule(ALERT_REVIEWERS))
async def alert_page(request: Request, alert_id: str) -> HTMLResponse:
    user = current_user(request)
    app = app_of(request)
    alert = await run_in_threadpool(
        lambda: triage.show(app, alert_id[:40], analyst=user.seid, interface="web")
    )
    return page(request, "alert.html", user, alert=alert)


@router.post("/alerts/{alert_id}/{action}", openapi_extra=role_rule(ALERT_REVIEWERS))
async def alert_act(request: Request, alert_id: str, action: str) -> Response:
    user, form = await posted(request)
    app = app_of(request)
    note = (form.get("note") or "").strip()[:2000]
    aid = alert_id[:40]
    steps = {
        "assign": lambda: triage.assign(app, alert_id=aid, analyst=user.seid, interface="web"),
        "review": lambda: triage.review(
            app, alert_id=aid, analyst=user.seid, note=note, interface="web"
        ),
        "dismiss": lambda: triage.dismiss(
            app, alert_id=aid, analyst=user.seid, reason=note, interface="web"
        ),
        "refer": lambda: triage.refer(
            app, alert_id=aid, analyst=user.seid, note=note, interface="web"
        ),
    }
    if action not in steps:
        raise NotFound("no such triage action")
    await run_in_threadpool(steps[action])
    return RedirectResponse(f"/alerts/{aid}", status_code=303)


# -- the investigator's cases ---------------------------------------------------------------

#: the outcomes as the investigator's form names them
OUTCOME_LABELS = {
    "unsubstantiated": "unsubstantiated (closes the case)",
    "substantiated": "substantiated",
    "adverse_action_proposed": "disciplinary or adverse action proposed (notifies the taxpayers)",
    "criminal_charge": "criminal charge (notifies the taxpayers)",
    "resigned": "resignation before completion",
}


@router.get("/investigations", openapi_extra=role_rule(INVESTIGATORS))
async def investigations_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(user, INVESTIGATORS, "investigations")
    app = app_of(request)
    state = request.query_params.get("state") or None
    if state not in (None, *investigations.STATES):
        raise IdrsError("state: one of " + ", ".join(investigations.STATES))
    rows = await run_in_threadpool(lambda: investigations.list_cases(
        app, investigator=user.seid, state=state, interface="web"))
    return page(request, "investigations.html", user, cases=rows, state=state or "",
                states=investigations.STATES)


@router.get("/investigations/{case_id}", openapi_extra=role_rule(INVESTIGATORS))
async def investigation_page(request: Request, case_id: str) -> HTMLResponse:
    user = current_user(request)
    _require(user, INVESTIGATORS, "investigations")
    app = app_of(request)
    case = await run_in_threadpool(lambda: investigations.show(
        app, case_id=case_id[:40], investigator=user.seid, interface="web"))
    outcomes = [(o, OUTCOME_LABELS[o]) for o in investigations.OUTCOMES if o in case["next"]]
    done = request.query_params.get("done", "")
    sent = request.query_params.get("sent", "")
    return page(request, "investigation.html", user, case=case, outcomes=outcomes,
                done=done if done in investigations.STEPS else "",
                sent=int(sent) if sent.isdigit() and len(sent) < 6 else 0)


@router.post("/investigations/{case_id}/{action}", openapi_extra=role_rule(INVESTIGATORS))
async def investigation_act(request: Request, case_id: str, action: str) -> Response:
    user, form = await posted(request)
    _require(user, INVESTIGATORS, "investigations")
    app = app_of(request)
    cid = case_id[:40]
    reason = (form.get("reason") or "").strip()[:2000]
    outcome = (form.get("outcome") or "").strip()[:40]
    steps = {
        "open": lambda: investigations.open_case(
            app, case_id=cid, investigator=user.seid, reason=reason, interface="web"),
        "outcome": lambda: investigations.record_outcome(
            app, case_id=cid, outcome=outcome, investigator=user.seid, reason=reason,
            interface="web"),
        "close": lambda: investigations.close(
            app, case_id=cid, investigator=user.seid, reason=reason, interface="web"),
    }
    if action not in steps:
        raise NotFound("no such investigation step")
    done = await run_in_threadpool(steps[action])
    sent = len(done.notices.sent) if isinstance(done, CaseTriggerStep) else 0
    return RedirectResponse(f"/investigations/{done.case_id}?done={done.step}&sent={sent}",
                            status_code=303)


# -- the oversight report ------------------------------------------------------------------


@router.get("/oversight", openapi_extra=role_rule(OVERSIGHT_READERS))
def oversight_form(request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(user, OVERSIGHT_READERS, "the oversight report")
    return page(request, "oversight.html", user)


@router.post("/oversight", openapi_extra=role_rule(OVERSIGHT_READERS))
async def oversight_report(request: Request) -> Response:
    """Build the report (recorded: oversight:report:generate) and show its HTML."""
    from idrs.oversight import render, report

    user, form = await posted(request)
    _require(user, OVERSIGHT_READERS, "the oversight report")
    app = app_of(request)
    grant = (form.get("grant") or "").strip()
    unit = (form.get("unit") or "").strip() or None
    seids = [s for s in (form.get("seids") or "").replace(",", " ").split() if s] or None
    actor = Actor(user.seid, "web", client_address(request))

    def build() -> bytes:
        rep = report.build(
            app,
            grant_id=_int(grant, "grant") if grant else None,
            seids=seids,
            unit=unit,
            actor=actor,
        )
        return render.to_html(rep)

    html = await run_in_threadpool(build)
    return HTMLResponse(
        html, headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store"}
    )

