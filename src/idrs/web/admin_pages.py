"""Pages of security administration: employees, profiles, units and ceilings, pending
changes awaiting a second administrator, unlocks.

Every page calls only ``idrs.people.admin``, which checks the role, the administrator's
units, the ban on administering oneself and the two-person rule, and records every step.
Forms are plain POSTs with the CSRF token (``posted``) and work without JavaScript; each
action answers with a redirect to the page that shows its result (post/redirect/get).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from idrs.api.bounds import RowId
from idrs.audit.events import Actor
from idrs.errors import AccessDenied, IdrsError
from idrs.people import admin
from idrs.people.roles import ALL_ROLES, RESTRICTED_ROLES, SECURITY_ADMINS
from idrs.people.service import AUTHORITIES as KNOWN_AUTHORITIES
from idrs.vocabulary import ADJUSTMENT_CODES, RESEARCH_CODES
from idrs.web.render import WebRoute, page, posted, role_rule
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
ADMIN_ONLY: dict[str, Any] = role_rule(SECURITY_ADMINS)
CODES: tuple[str, ...] = RESEARCH_CODES + ADJUSTMENT_CODES
ROLES: tuple[str, ...] = tuple(sorted(ALL_ROLES))
AUTHORITIES: tuple[str, ...] = tuple(KNOWN_AUTHORITIES)
PAGE = 50


def _actor(user: WebUser, request: Request) -> Actor:
    return Actor(user.seid, "web", client_address(request))


def _offset(raw: str | None) -> int:
    try:
        return max(0, min(int(raw or 0), 10**9))
    except ValueError:
        return 0


def _restricted() -> dict[str, frozenset[str]]:
    return {
        "codes": admin.RESTRICTED_CODES,
        "roles": RESTRICTED_ROLES,
        "authorities": admin.RESTRICTED_AUTHORITIES,
    }


# -- the hub and unlocks -------------------------------------------------------------------


@router.get("/admin", openapi_extra=ADMIN_ONLY)
async def admin_page(request: Request) -> HTMLResponse:
    """The security administration hub: what waits for you, and the unlock form."""
    user = current_user(request)
    app = app_of(request)
    waiting = await run_in_threadpool(
        lambda: admin.list_changes(app, _actor(user, request), status="pending")
    )
    return page(
        request,
        "admin.html",
        user,
        done=request.query_params.get("done"),
        waiting=sum(1 for c in waiting if c["can_confirm"]),
        pending=len(waiting),
    )


@router.post("/admin/unlock", openapi_extra=ADMIN_ONLY)
async def admin_unlock(request: Request) -> Response:
    """Unlock an account (a security administrator, never their own). Recorded."""
    user, form = await posted(request)
    app = app_of(request)
    seid = (form.get("seid") or "").strip()[:16]
    out = await run_in_threadpool(lambda: admin.unlock(app, _actor(user, request), seid=seid))
    return RedirectResponse(f"/admin?done={quote(out.seid)}", status_code=303)


# -- employees -----------------------------------------------------------------------------


@router.get("/admin/employees", openapi_extra=ADMIN_ONLY)
async def employees_page(request: Request) -> HTMLResponse:
    """Employees of the units you administer, 50 a page, optionally one unit."""
    user = current_user(request)
    app = app_of(request)
    unit = (request.query_params.get("unit") or "").strip()[:20] or None
    offset = _offset(request.query_params.get("offset"))
    actor = _actor(user, request)

    def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            admin.list_employees(app, actor, unit=unit),
            [u for u in admin.list_units(app, actor) if u["administered"]],
        )

    rows, units = await run_in_threadpool(load)
    window = rows[offset : offset + PAGE]
    return page(
        request,
        "admin_employees.html",
        user,
        employees=window,
        units=units,
        unit=unit or "",
        offset=offset,
        total=len(rows),
        page_size=PAGE,
        next_offset=offset + PAGE if offset + PAGE < len(rows) else None,
        prev_offset=max(0, offset - PAGE) if offset else None,
    )


async def _employee_page(
    request: Request, user: WebUser, seid: str, *, status: int = 200, **ctx: Any
) -> HTMLResponse:
    app = app_of(request)
    emp = await run_in_threadpool(lambda: admin.show_employee(app, _actor(user, request), seid))
    scopes = [
        a[len(admin.SCOPE_PREFIX) :] for a in emp["authorities"] if a.startswith(admin.SCOPE_PREFIX)
    ]
    return page(
        request,
        "admin_employee.html",
        user,
        status=status,
        e=emp,
        codes=CODES,
        scopes=scopes,
        roles=ROLES,
        authorities=AUTHORITIES,
        restricted=_restricted(),
        done=request.query_params.get("done"),
        **ctx,
    )


@router.get("/admin/employees/{seid}", openapi_extra=ADMIN_ONLY)
async def employee_page(request: Request, seid: str) -> HTMLResponse:
    """One employee: roles, profile, authorities, the unit's ceiling, the change form."""
    return await _employee_page(request, current_user(request), seid[:16])


def _form_sets(form: dict[str, str]) -> dict[str, Any]:
    """The full new sets from the profile form (one checkbox field per item)."""
    scopes = [s for s in (form.get("scopes") or "").replace(",", " ").split() if s]
    return {
        "roles": [r for r in ROLES if form.get(f"role_{r}")],
        "codes": [c for c in CODES if form.get(f"code_{c}")],
        "authorities": [a for a in AUTHORITIES if form.get(f"auth_{a}")]
        + [admin.SCOPE_PREFIX + s for s in scopes],
        "note": form.get("note") or None,
    }


@router.post("/admin/employees/{seid}/profile", openapi_extra=ADMIN_ONLY)
async def employee_profile(request: Request, seid: str) -> Response:
    """Request a profile change; a refusal or bad input is shown on the form, nothing done."""
    user, form = await posted(request)
    app = app_of(request)
    sets = _form_sets(form)
    try:
        ch = await run_in_threadpool(
            lambda: admin.request_change(app, _actor(user, request), seid=seid[:16], **sets)
        )
    except AccessDenied as exc:
        if set(exc.codes) <= {"AUTH_REQUIRED", "SESSION_EXPIRED", "NOT_IN_PROFILE"}:
            raise
        return await _employee_page(request, user, seid[:16], status=403, refusal=exc)
    except IdrsError as exc:
        if exc.status_code == 404:
            raise
        return await _employee_page(
            request, user, seid[:16], status=exc.status_code, problem=str(exc)
        )
    return RedirectResponse(
        f"/admin/employees/{quote(ch['seid'])}?done={ch['status']}:{ch['change_id']}",
        status_code=303,
    )


async def _set_active(request: Request, seid: str, active: bool) -> Response:
    user, _ = await posted(request)
    app = app_of(request)
    out = await run_in_threadpool(
        lambda: admin.set_active(app, _actor(user, request), seid=seid[:16], active=active)
    )
    state = "reactivated" if active else "deactivated"
    return RedirectResponse(f"/admin/employees/{quote(out.seid)}?done={state}", status_code=303)


@router.post("/admin/employees/{seid}/deactivate", openapi_extra=ADMIN_ONLY)
async def employee_deactivate(request: Request, seid: str) -> Response:
    """Deactivate an employee of your units (their sessions end at once)."""
    return await _set_active(request, seid, False)


@router.post("/admin/employees/{seid}/reactivate", openapi_extra=ADMIN_ONLY)
async def employee_reactivate(request: Request, seid: str) -> Response:
    """Reactivate a deactivated employee of your units."""
    return await _set_active(request, seid, True)


# -- units ---------------------------------------------------------------------------------


@router.get("/admin/units", openapi_extra=ADMIN_ONLY)
async def units_page(request: Request) -> HTMLResponse:
    """Every unit with its ceiling; a ceiling form for each unit you administer."""
    user = current_user(request)
    app = app_of(request)
    units = await run_in_threadpool(lambda: admin.list_units(app, _actor(user, request)))
    return page(
        request,
        "admin_units.html",
        user,
        units=units,
        codes=CODES,
        done=request.query_params.get("done"),
        trimmed=request.query_params.get("trimmed"),
    )


@router.post("/admin/units/{code}/ceiling", openapi_extra=ADMIN_ONLY)
async def unit_ceiling(request: Request, code: str) -> Response:
    """Set a unit's ceiling (lowering it trims the unit's profiles at once)."""
    user, form = await posted(request)
    app = app_of(request)
    codes = [c for c in CODES if form.get(f"code_{c}")]
    out = await run_in_threadpool(
        lambda: admin.set_ceiling(app, _actor(user, request), unit=code[:20], codes=codes)
    )
    trimmed = ",".join(sorted(out.trimmed))
    return RedirectResponse(
        f"/admin/units?done={quote(out.code)}&trimmed={quote(trimmed)}", status_code=303
    )


# -- pending changes -----------------------------------------------------------------------


@router.get("/admin/changes", openapi_extra=ADMIN_ONLY)
async def changes_page(request: Request) -> HTMLResponse:
    """Profile changes in your units: those waiting for a second administrator by default."""
    user = current_user(request)
    app = app_of(request)
    status = request.query_params.get("status") or "pending"
    items = await run_in_threadpool(
        lambda: admin.list_changes(app, _actor(user, request), status=status)
    )
    return page(
        request,
        "admin_changes.html",
        user,
        items=items[:200],
        shown=status,
        statuses=(*admin.STATUSES, "all"),
        done=request.query_params.get("done"),
    )


async def _decide(request: Request, change_id: int, confirm: bool) -> Response:
    user, form = await posted(request)
    app = app_of(request)
    note = form.get("note") or None
    fn = admin.confirm_change if confirm else admin.reject_change
    out = await run_in_threadpool(lambda: fn(app, _actor(user, request), change_id, note))
    return RedirectResponse(
        f"/admin/changes?done={out['change_id']}:{out['status']}", status_code=303
    )


@router.post("/admin/changes/{change_id}/confirm", openapi_extra=ADMIN_ONLY)
async def change_confirm(request: Request, change_id: RowId) -> Response:
    """Confirm a change (a second administrator: not the requester, not the subject)."""
    return await _decide(request, change_id, True)


@router.post("/admin/changes/{change_id}/reject", openapi_extra=ADMIN_ONLY)
async def change_reject(request: Request, change_id: RowId) -> Response:
    """Reject (or, as its requester, withdraw) a pending change."""
    return await _decide(request, change_id, False)
