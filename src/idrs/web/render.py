"""Shared page plumbing: templates, the form reader, error pages, the route class.

Every page route of the web interface uses :class:`WebRoute`, which turns the service
layer's exceptions into HTML answers: a missing or expired session → the sign-in page (GET)
or 401 (POST: the form is not replayed, nothing was done); a bad CSRF token → 403; a
refusal → 403 with its reason codes; bad input → its 4xx with the one-line message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from idrs.api.middleware import public_message
from idrs.documents import environment
from idrs.errors import AccessDenied, IdrsError
from idrs.people.roles import (
    ACCOUNTING_READERS,
    ADJUSTMENT_APPROVERS,
    ADJUSTMENT_REQUESTERS,
    ALERT_REVIEWERS,
    DISCLOSURE_READERS,
    INVESTIGATORS,
    NOTICE_STAFF,
    OVERSIGHT_READERS,
    SECURITY_ADMINS,
    WEEKLY_OVERSEERS,
    WEEKLY_READERS,
)
from idrs.web.security import (
    PRE_CSRF_COOKIE,
    CsrfFailed,
    WebUser,
    app_of,
    check_csrf,
    clear_session,
    current_user,
)

HERE = Path(__file__).parent
# the same Environment construction as every document (autoescape on): idrs.documents
templates = Jinja2Templates(env=environment(HERE / "templates"))
_SIGNED_OUT = frozenset({"AUTH_REQUIRED", "SESSION_EXPIRED", "AUTH_FAILED"})
MAX_FORM = 64 * 1024

#: Navigation: (path, label, the people.roles group that sees it; empty = every signed-in
#: employee).
NAV: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/research", "Research", frozenset()),
    ("/cases", "Cases and contacts", frozenset()),
    ("/adjust", "Request an adjustment", ADJUSTMENT_REQUESTERS),
    ("/adjustments", "Approvals", ADJUSTMENT_APPROVERS),
    ("/alerts", "Alert desk", ALERT_REVIEWERS),
    ("/investigations", "Investigations", INVESTIGATORS),
    ("/grants", "Grants", frozenset()),
    ("/analysis", "Analysis", frozenset()),
    ("/agreements", "Agreements", frozenset()),
    ("/training", "Training", frozenset()),
    ("/reports/weekly", "Weekly report", WEEKLY_READERS),
    ("/reports/certification-rate", "Certification rate", WEEKLY_OVERSEERS),
    ("/taxpayers", "Taxpayer accounting", ACCOUNTING_READERS),
    ("/notices", "Notices", NOTICE_STAFF),
    ("/disclosures", "Disclosures", DISCLOSURE_READERS),
    ("/oversight", "Oversight report", OVERSIGHT_READERS),
    ("/admin", "Security administration", SECURITY_ADMINS),
    ("/audit", "Audit log", frozenset()),
)


def role_rule(roles: Iterable[str]) -> dict[str, Any]:
    """``openapi_extra`` declaring that a page needs one of ``roles`` (a people.roles group)."""
    return {"x-authorization": "role:" + ",".join(sorted(roles))}


class FormError(IdrsError):
    status_code = 400


class WrongContentType(IdrsError):
    status_code = 415


class FormTooLarge(IdrsError):
    status_code = 413


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (first value of each field); 415 / 413 / 400 on anything else."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise WrongContentType("forms must be sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM:
        raise FormTooLarge(f"the form is too large (at most {MAX_FORM // 1024} KiB)")
    try:
        parsed = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=50, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form could not be read") from None
    return {k: v[0] for k, v in parsed.items()}


async def posted(request: Request) -> tuple[WebUser, dict[str, str]]:
    """The signed-in user and the form of a POST, CSRF checked (nothing read before that)."""
    user = current_user(request)
    form = await read_form(request)
    check_csrf(request, form.get("csrf"), user)
    return user, form


def page(
    request: Request,
    name: str,
    user: WebUser | None,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    """Render ``name`` inside the layout with the navigation, form token and expiry notice."""
    app = app_of(request)
    idle = app.settings.session_idle_minutes
    nav = []
    if user is not None:
        nav = [(p, label) for p, label, roles in NAV if not roles or roles & user.roles]
    context = {
        "user": user,
        "csrf": user.csrf if user is not None else ctx.pop("csrf", ""),
        "nav": nav,
        "path": request.url.path,
        "idle_seconds": idle * 60,
        "idle_ends": (app.clock.now() + timedelta(minutes=idle)).strftime("%H:%M UTC"),
        **ctx,
    }
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    reasons: list[dict[str, str]] | None = None,
    audit_index: int | None = None,
) -> HTMLResponse:
    user = None
    with contextlib.suppress(AccessDenied):
        user = current_user(request)
    return page(
        request,
        "error.html",
        user,
        status=status,
        title=title,
        message=message,
        reasons=reasons or [],
        audit_index=audit_index,
    )


def _signed_out(request: Request, exc: AccessDenied) -> Response:
    expired = "SESSION_EXPIRED" in exc.codes
    if request.method == "GET":
        target = f"/signin?next={quote(request.url.path)}" + ("&expired=1" if expired else "")
        response: Response = RedirectResponse(target, status_code=303)
        if request.headers.get("hx-request"):
            response = Response(status_code=200, headers={"HX-Redirect": target})
    else:
        msg = (
            "your session has expired; sign in again (nothing was done)"
            if expired
            else "sign in first (nothing was done)"
        )
        response = page(
            request,
            "error.html",
            None,
            status=401,
            title="Signed out",
            message=msg,
            reasons=[r.as_dict() for r in exc.reasons],
            audit_index=None,
            csrf="",
        )
    clear_session(request, response)
    return response


class WebRoute(APIRoute):
    """An APIRoute that answers the service layer's exceptions with HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except CsrfFailed as exc:
                return error_page(request, 403, "Form refused", exc.reasons[0].message)
            except AccessDenied as exc:
                if exc.codes and set(exc.codes) <= _SIGNED_OUT:
                    return _signed_out(request, exc)
                return error_page(
                    request,
                    503 if "AUDIT_UNAVAILABLE" in exc.codes else 403,
                    "Refused",
                    "; ".join(r.message for r in exc.reasons),
                    [r.as_dict() for r in exc.reasons],
                    exc.audit_index,
                )
            except IdrsError as exc:
                return error_page(request, exc.status_code, "Not done", public_message(exc))

        return handler


def forget_pre_csrf(response: Response) -> None:
    response.delete_cookie(PRE_CSRF_COOKIE, path="/")
