"""Pages of outside access: grants (request, approve, revoke, end, renew), agreements (versions,
signing with a one-time code), UNAX training and clearance records.

Every page calls the grants package's service functions (``grants.service`` decides and
records; ``grants.records`` says who may see what). A sponsor (any signed-in employee)
requests a grant for a principal; the principal reads and signs the agreement and attests
training; the approving roles approve, revoke or end. Forms are plain POSTs with the CSRF
field: they work without JavaScript.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from idrs.api.bounds import MAX_DATE, MAX_DB_INT, MIN_DATE, RowId
from idrs.audit.events import Actor
from idrs.config import get_settings
from idrs.errors import AccessDenied, IdrsError, ValidationFailed
from idrs.grants import records, rules
from idrs.grants import service as grants
from idrs.people.roles import AGREEMENT_AUTHORS, GRANT_RECORD_READERS, RECORD_KEEPERS
from idrs.vocabulary import ALL_CODES
from idrs.web.render import WebRoute, page, posted, role_rule
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
GRANT_FIELDS = ("principal", "purpose", "basis", "population", "start", "days", "daily_limit",
                "agreement", "epsilon")
SIGNED_IN: dict[str, Any] = {"x-authorization": "signed-in"}
#: as this process's settings name them (the service checks the rule of ``app.settings``)
APPROVERS: dict[str, Any] = role_rule(rules.ApprovalRule.from_settings(get_settings()).roles)
BAD_CODE = "the one-time code was not accepted (wrong, expired or already used); nothing was done"


def _actor(user: WebUser, request: Request) -> Actor:
    return Actor(user.seid, "web", client_address(request))


def _int(value: str | None, what: str) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        raise ValidationFailed([f"{what}: a whole number"]) from None
    if abs(number) > MAX_DB_INT:
        raise ValidationFailed([f"{what}: out of range"])
    return number


def _day(value: str | None, what: str) -> date:
    try:
        day = date.fromisoformat((value or "").strip())
    except ValueError:
        raise ValidationFailed([f"{what}: a date (YYYY-MM-DD)"]) from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValidationFailed([f"{what}: out of range ({MIN_DATE} to {MAX_DATE})"])
    return day


def _code_refused(exc: AccessDenied) -> bool:
    """A refused one-time code (the session itself was checked before: it is valid)."""
    return exc.codes == ["AUTH_FAILED"]


# -- grants ----------------------------------------------------------------------------------


@router.get("/grants", openapi_extra=SIGNED_IN)
async def grants_page(request: Request) -> HTMLResponse:
    """Grants (staff: all; anyone else: those they sponsor or hold), optionally one state."""
    user = current_user(request)
    app = app_of(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in rules.STATES:
        raise ValidationFailed([f"state: one of {', '.join(rules.STATES)}"])
    rows = await run_in_threadpool(lambda: grants.list_grants(app, state=state))
    rows = [g for g in rows if records.may_see_grant(user.employee, g)]
    return page(request, "grants.html", user, grants=rows, state=state or "",
                states=rules.STATES, staff=bool(user.roles & GRANT_RECORD_READERS))


def _new_form(request: Request, user: WebUser, v: dict[str, Any], *, status: int = 200,
              problems: list[str] | None = None) -> HTMLResponse:
    app = app_of(request)
    titles = sorted({a["title"] for a in records.list_agreements(app, current_only=True)})
    return page(request, "grant_new.html", user, status=status, v=v, problems=problems or [],
                commands=sorted(ALL_CODES), classes=sorted(rules.ALL_CLASSES),
                populations=(*rules.POPULATIONS, "statistics"), titles=titles)


@router.get("/grants/new", openapi_extra=SIGNED_IN)
def grant_new(request: Request) -> HTMLResponse:
    """The request form (a sponsor asks for a principal's access)."""
    user = current_user(request)
    start = app_of(request).clock.now().date().isoformat()
    return _new_form(request, user, {"start": start, "days": "120", "population": "cases",
                                     "commands": [], "classes": [], "epsilon": ""})


def _grant_form(form: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
    v: dict[str, Any] = {k: (form.get(k) or "").strip()[:2000] for k in GRANT_FIELDS}
    v["commands"] = [c for c in multi.get("commands", []) if c][:20]
    v["classes"] = [c for c in multi.get("classes", []) if c][:10]
    v["allow_changes"] = form.get("allow_changes") == "1"
    return v


def _epsilon(text: str | None) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValidationFailed(["epsilon: a number such as 1.0"]) from None


async def _multi(request: Request) -> dict[str, list[str]]:
    """Every value of the repeatable fields (check boxes); ``posted`` read and checked the form."""
    body = (await request.body()).decode("utf-8", errors="replace")
    parsed = parse_qs(body, keep_blank_values=False, max_num_fields=50)
    return {k: parsed.get(k, []) for k in ("commands", "classes")}


@router.post("/grants/new", openapi_extra=SIGNED_IN)
async def grant_request(request: Request) -> Response:
    """Request the grant (pending approval); bad input re-shows the form, nothing stored."""
    user, form = await posted(request)
    multi = await _multi(request)
    v = _grant_form(form, multi)
    app = app_of(request)
    try:
        start = _day(v["start"], "start")
        days, limit = _int(v["days"], "days"), _int(v["daily_limit"], "daily_limit")
        epsilon = _epsilon(v["epsilon"])
        out = await run_in_threadpool(lambda: grants.request_grant(
            app, principal=v["principal"], purpose=v["purpose"], basis=v["basis"],
            commands=v["commands"], classes=v["classes"], population=v["population"],
            allow_changes=v["allow_changes"], agreement=v["agreement"] or None,
            start=start, days=days, daily_limit=limit, epsilon=epsilon,
            actor=_actor(user, request)))
    except ValidationFailed as exc:
        return _new_form(request, user, v, status=422, problems=exc.problems)
    except IdrsError as exc:
        if isinstance(exc, AccessDenied):
            raise
        return _new_form(request, user, v, status=exc.status_code, problems=[str(exc)])
    return RedirectResponse(f"/grants/{out.grant_id}?done=requested", status_code=303)


async def _grant_page(request: Request, user: WebUser, grant_id: int, *, status: int = 200,
                      problem: str | None = None) -> HTMLResponse:
    app = app_of(request)
    g = await run_in_threadpool(lambda: records.visible_grant(
        app, user.employee, grant_id, interface="web", address=client_address(request)))
    approvers = rules.ApprovalRule.from_settings(app.settings).roles
    return page(request, "grant.html", user, status=status, g=g, problem=problem,
                done=request.query_params.get("done"),
                approver=bool(user.roles & set(approvers)),
                renewable=g["status"] in records.RENEWABLE and g["renewal_of"] is None,
                principal=user.seid == g["principal"])


@router.get("/grants/{grant_id}", openapi_extra=SIGNED_IN)
async def grant_page(request: Request, grant_id: RowId) -> HTMLResponse:
    user = current_user(request)
    return await _grant_page(request, user, grant_id)


@router.post("/grants/{grant_id}/approve", openapi_extra=APPROVERS)
async def grant_approve(request: Request, grant_id: RowId) -> Response:
    """One approval with a re-entered one-time code (the service checks role and person)."""
    user, form = await posted(request)
    app = app_of(request)
    try:
        res = await run_in_threadpool(lambda: grants.approve_grant(
            app, user.employee, grant_id=grant_id, otp=(form.get("otp") or "")[:10],
            actor=_actor(user, request)))
    except AccessDenied as exc:
        if not _code_refused(exc):
            raise
        return await _grant_page(request, user, grant_id, status=403, problem=BAD_CODE)
    return RedirectResponse(f"/grants/{grant_id}?done={res.status}", status_code=303)


async def _close(request: Request, grant_id: int, *, revoke: bool) -> Response:
    user, form = await posted(request)
    fn = grants.revoke_grant if revoke else grants.end_grant
    app = app_of(request)
    reason = (form.get("reason") or "").strip()[:2000]
    res = await run_in_threadpool(
        lambda: fn(app, user.employee, grant_id=grant_id, reason=reason,
                   actor=_actor(user, request)))
    return RedirectResponse(f"/grants/{grant_id}?done={res.status}", status_code=303)


@router.post("/grants/{grant_id}/revoke", openapi_extra=APPROVERS)
async def grant_revoke(request: Request, grant_id: RowId) -> Response:
    """Revoke with a reason (an approving role; the service checks it)."""
    return await _close(request, grant_id, revoke=True)


@router.post("/grants/{grant_id}/end", openapi_extra=APPROVERS)
async def grant_end(request: Request, grant_id: RowId) -> Response:
    """End early with a reason (an approving role; the service checks it)."""
    return await _close(request, grant_id, revoke=False)


@router.post("/grants/{grant_id}/renew", openapi_extra=SIGNED_IN)
async def grant_renew(request: Request, grant_id: RowId) -> Response:
    """Request the one renewal (same scope, a new term); pending approval like any grant."""
    user, form = await posted(request)
    app = app_of(request)
    try:
        start = _day(form.get("start"), "start") if (form.get("start") or "").strip() else None
        days = _int(form.get("days"), "days")
        out = await run_in_threadpool(lambda: records.request_renewal(
            app, user.employee, grant_id=grant_id, start=start, days=days,
            actor=_actor(user, request)))
    except ValidationFailed as exc:
        return await _grant_page(request, user, grant_id, status=422,
                                 problem="; ".join(exc.problems))
    return RedirectResponse(f"/grants/{out.grant_id}?done=requested", status_code=303)


# -- agreements ------------------------------------------------------------------------------


@router.get("/agreements", openapi_extra=SIGNED_IN)
async def agreements_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    app = app_of(request)
    rows = await run_in_threadpool(lambda: records.list_agreements(app))
    return page(request, "agreements.html", user, agreements=rows, v={}, problems=[],
                author=bool(user.roles & AGREEMENT_AUTHORS))


@router.post("/agreements", openapi_extra=role_rule(AGREEMENT_AUTHORS))
async def agreement_add(request: Request) -> Response:
    """A new version of an agreement (privacy officer or authorizing official)."""
    user, form = await posted(request)
    app = app_of(request)
    records.require(app, user.employee, AGREEMENT_AUTHORS, "adding an agreement",
                    "web", client_address(request))
    v = {"title": (form.get("title") or "").strip()[:200], "text": (form.get("text") or "")}
    try:
        out = await run_in_threadpool(lambda: grants.add_agreement(
            app, title=v["title"], text=v["text"], actor=_actor(user, request)))
    except ValidationFailed as exc:
        rows = await run_in_threadpool(lambda: records.list_agreements(app))
        return page(request, "agreements.html", user, status=422, agreements=rows, v=v,
                    problems=exc.problems, author=True)
    return RedirectResponse(f"/agreements/{out.agreement_id}?done=added", status_code=303)


async def _agreement_page(request: Request, user: WebUser, agreement_id: int, *,
                          status: int = 200, problem: str | None = None) -> HTMLResponse:
    app = app_of(request)
    a = await run_in_threadpool(
        lambda: records.show_agreement(app, agreement_id, reader=user.employee))
    reader = bool(user.roles & GRANT_RECORD_READERS)
    sigs = await run_in_threadpool(lambda: records.agreement_signatures(app, agreement_id)) \
        if reader else []
    return page(request, "agreement.html", user, status=status, a=a, signatures=sigs,
                reader=reader, problem=problem, done=request.query_params.get("done"))


@router.get("/agreements/{agreement_id}", openapi_extra=SIGNED_IN)
async def agreement_page(request: Request, agreement_id: RowId) -> HTMLResponse:
    user = current_user(request)
    return await _agreement_page(request, user, agreement_id)


@router.post("/agreements/{agreement_id}/sign", openapi_extra=SIGNED_IN)
async def agreement_sign(request: Request, agreement_id: RowId) -> Response:
    """Sign the current version with a freshly entered one-time code (recorded)."""
    user, form = await posted(request)
    app = app_of(request)
    try:
        await run_in_threadpool(lambda: grants.sign_agreement(
            app, user.employee, agreement_id=agreement_id, otp=(form.get("otp") or "")[:10],
            actor=_actor(user, request)))
    except AccessDenied as exc:
        if not _code_refused(exc):
            raise
        return await _agreement_page(request, user, agreement_id, status=403, problem=BAD_CODE)
    return RedirectResponse(f"/agreements/{agreement_id}?done=signed", status_code=303)


# -- training and clearance ------------------------------------------------------------------


async def _training_page(request: Request, user: WebUser, *, status: int = 200,
                         problem: str | None = None) -> HTMLResponse:
    app = app_of(request)
    seid = (request.query_params.get("seid") or user.seid).strip().upper()[:16]
    if not records.may_read_records(user.employee, seid):
        raise records.refuse(app, user.employee, "another person's records",
                             GRANT_RECORD_READERS, "web", client_address(request))

    def load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return records.training(app, seid), records.clearances(app, seid)

    training, clearances = await run_in_threadpool(load)
    return page(request, "training.html", user, status=status, t=training,
                clearances=clearances, problem=problem, own=seid == user.seid,
                keeper=bool(user.roles & RECORD_KEEPERS),
                done=request.query_params.get("done"))


@router.get("/training", openapi_extra=SIGNED_IN)
async def training_page(request: Request) -> HTMLResponse:
    """Your UNAX training (attest with a code) and clearance; staff: anyone's (``?seid=``)."""
    user = current_user(request)
    return await _training_page(request, user)


@router.post("/training/attest", openapi_extra=SIGNED_IN)
async def training_attest(request: Request) -> Response:
    user, form = await posted(request)
    app = app_of(request)
    try:
        await run_in_threadpool(lambda: grants.attest_training(
            app, user.employee, otp=(form.get("otp") or "")[:10], actor=_actor(user, request)))
    except AccessDenied as exc:
        if not _code_refused(exc):
            raise
        return await _training_page(request, user, status=403, problem=BAD_CODE)
    return RedirectResponse("/training?done=attested", status_code=303)


@router.post("/training/record", openapi_extra=role_rule(RECORD_KEEPERS))
async def training_record(request: Request) -> Response:
    """Record, for another person, a UNAX attestation taken elsewhere or a verified clearance."""
    user, form = await posted(request)
    app = app_of(request)
    records.require(app, user.employee, RECORD_KEEPERS, "recording for another person",
                    "web", client_address(request))
    seid = (form.get("seid") or "").strip().upper()[:16]
    what = form.get("what")
    actor = _actor(user, request)
    if what == "training":
        await run_in_threadpool(lambda: grants.record_training(app, seid=seid, actor=actor))
    elif what == "clearance":
        note = (form.get("note") or "").strip()[:2000] or None
        await run_in_threadpool(lambda: grants.verify_clearance(
            app, seid=seid, by=user.seid, actor=actor, note=note))
    else:
        raise ValidationFailed(["what: training or clearance"])
    return RedirectResponse(f"/training?seid={quote(seid)}&done={what}", status_code=303)
