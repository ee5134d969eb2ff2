"""The web interface's pages: sign-in, the research prompt, cases and contacts.

``router`` (mounted at ``/``) holds every page; ``mount_static(api)`` serves
``/static`` (CSS, the vendored htmx, the expiry-warning script). Pages are server-rendered
and work without JavaScript; with it, htmx (``hx-boost``) swaps the page body in place.

Research goes only through ``idrs.research.run(..., interface="web")``: this module never
reads the master file itself. The prompt is a POST (the TIN never appears in a URL).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from idrs import research
from idrs.api.deps import run_research
from idrs.api.middleware import public_message
from idrs.api.throttle import research_limits, signin_limits
from idrs.errors import AccessDenied, IdrsError, NotFound
from idrs.people import auth
from idrs.web import inventory, pages, screens
from idrs.web.prompt import History, HistoryItem, PromptError, parse_line
from idrs.web.render import HERE, WebRoute, forget_pre_csrf, page, posted, read_form
from idrs.web.security import (
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    WebUser,
    app_of,
    check_csrf,
    clear_session,
    client_address,
    current_user,
    pre_csrf,
    safe_next,
    set_cookie,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
history = History()


def mount_static(api: FastAPI) -> None:
    """Serve ``/static`` from the package (no directory listing, no path outside it)."""
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def _maybe_user(request: Request) -> WebUser | None:
    try:
        return current_user(request)
    except AccessDenied:
        return None


@router.get("/", openapi_extra={"x-authorization": "public"})
def home(request: Request) -> Response:
    return RedirectResponse("/research" if _maybe_user(request) else "/signin", status_code=303)


# -- sign-in -------------------------------------------------------------------------------


def _signin_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    reasons: list[dict[str, str]] | None = None,
    seid: str = "",
    next_path: str = "/research",
) -> HTMLResponse:
    token = pre_csrf(request)
    expired = request.query_params.get("expired") == "1"
    response = page(
        request,
        "signin.html",
        None,
        status=status,
        csrf=token,
        error=error,
        reasons=reasons or [],
        seid=seid,
        next=safe_next(next_path),
        expired=expired,
        bye=request.query_params.get("bye") == "1",
    )
    set_cookie(request, response, PRE_CSRF_COOKIE, token)
    return response


@router.get("/signin", openapi_extra={"x-authorization": "public"})
def signin_form(request: Request) -> Response:
    return _signin_page(request, next_path=request.query_params.get("next") or "/research")


@router.post(
    "/signin", openapi_extra={"x-authorization": "public"}, dependencies=[Depends(signin_limits)]
)
async def signin(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf"), None)
    app = app_of(request)
    seid = form.get("seid", "")[:16]
    try:
        signed = await run_in_threadpool(
            auth.sign_in,
            app,
            seid,
            form.get("password", "")[:200],
            form.get("otp", "")[:10],
            "web",
            client_address(request),
        )
    except AccessDenied as exc:
        return _signin_page(
            request,
            status=503 if "AUDIT_UNAVAILABLE" in exc.codes else 401,
            error="Sign-in refused.",
            reasons=[r.as_dict() for r in exc.reasons],
            seid=seid,
            next_path=form.get("next", ""),
        )
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, signed.token)
    forget_pre_csrf(response)
    return response


@router.post("/signout", openapi_extra={"x-authorization": "signed-in"})
async def signout(request: Request) -> Response:
    user, _ = await posted(request)
    app = app_of(request)
    await run_in_threadpool(
        lambda: auth.sign_out(app, user.token, interface="web", address=client_address(request))
    )
    history.forget(user.token)
    response = RedirectResponse("/signin?bye=1", status_code=303)
    clear_session(request, response)
    return response


# -- the research prompt -------------------------------------------------------------------


@router.get("/research", openapi_extra={"x-authorization": "signed-in"})
def research_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    return page(
        request,
        "research.html",
        user,
        history=history.of(user.token),
        line="",
        commands=research.valid_commands(),
    )


@router.post(
    "/research",
    openapi_extra={"x-authorization": "signed-in"},
    dependencies=[Depends(research_limits)],
)
async def research_run(request: Request) -> HTMLResponse:
    user, form = await posted(request)
    line = form.get("line", "").strip()
    ctx: dict[str, object] = {"line": line, "commands": research.valid_commands()}
    status = 200
    index: int | None = None
    try:
        cmd = parse_line(line)
        ans = await run_research(
            request,
            lambda: research.run(
                app_of(request),
                token=user.token,
                command=cmd.command,
                tin=cmd.tin,
                year=cmd.year,
                case=cmd.case,
                contact=cmd.contact,
                reason=cmd.reason,
                name=cmd.name,
                place=cmd.place,
                interface="web",
                address=client_address(request),
            ),
        )
        ctx.update(answer=ans, blocks=screens.layout(ans.command, ans.data))
        outcome, index = "allowed", ans.audit_index
    except AccessDenied as exc:
        if set(exc.codes) <= {"AUTH_REQUIRED", "SESSION_EXPIRED"}:
            raise
        status = 503 if "AUDIT_UNAVAILABLE" in exc.codes else 403
        outcome, index = "refused", exc.audit_index
        ctx.update(refusal=exc)
    except NotFound as exc:
        status, outcome, index = 404, "not found", None
        ctx.update(problem=str(exc))
    except (PromptError, IdrsError) as exc:
        status, outcome, index = exc.status_code, "error", None
        ctx.update(problem=public_message(exc))
    if line:
        history.add(user.token, HistoryItem(line[:200], outcome, index, datetime.now(UTC)))
    return page(
        request, "research.html", user, status=status, history=history.of(user.token), **ctx
    )


# -- cases and contacts --------------------------------------------------------------------


@router.get("/cases", openapi_extra={"x-authorization": "signed-in"})
async def cases_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    app = app_of(request)
    inv = await run_in_threadpool(inventory.open_work, app, user.employee.id)
    return page(request, "cases.html", user, cases=inv.cases, contacts=inv.contacts)


router.include_router(pages.router)
