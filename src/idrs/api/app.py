"""The HTTP API: ``create_app(app) -> FastAPI`` with every router under ``/api/v1``.

Errors: IdrsError → its status code with ``{"error": message}``; AccessDenied → 403
``{"decision": "deny", "reasons": [{"code", "message"}], "audit_index"}``, or 401 when every
reason is an AUTH_* / SESSION_EXPIRED code (with ``WWW-Authenticate: Bearer``), 503 when the audit log
could not be written (AUDIT_UNAVAILABLE), or 423 when the account is locked.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from idrs.context import App
from idrs.errors import AccessDenied, IdrsError

API_PREFIX = "/api/v1"
_UNAUTHENTICATED = frozenset({"AUTH_REQUIRED", "AUTH_FAILED", "SESSION_EXPIRED"})


def denial_status(exc: AccessDenied) -> int:
    codes = set(exc.codes)
    if "AUDIT_UNAVAILABLE" in codes:
        return 503  # not a decision about the caller: the log could not be written
    if "ACCOUNT_LOCKED" in codes:
        return 423
    if codes and codes <= _UNAUTHENTICATED:
        return 401
    return 403


def _denied(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDenied)
    status = denial_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {
        "decision": "deny",
        "reasons": [r.as_dict() for r in exc.reasons],
        "audit_index": exc.audit_index,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdrsError)
    from idrs.api.middleware import public_message

    return JSONResponse({"error": public_message(exc)}, status_code=exc.status_code)


def create_app(app: App) -> FastAPI:
    """The FastAPI application serving ``app`` (settings, engine, keys, clock)."""
    from idrs.access import policy
    from idrs.api import (
        access,
        adjustments,
        admin,
        anonymized,
        audit,
        detection,
        disclosures,
        grants,
        middleware,
        reports,
        research,
        sessions,
        statistics,
        throttle,
    )
    from idrs.web import app as web

    # Refuse to start on a policy that does not parse or validate; record a new version.
    policy.loaded()
    policy.record_version(app)

    api = FastAPI(
        title="idrs",
        version="1",
        description="Taxpayer accounts behind need-to-know access and a verifiable audit log. "
        "Sign in with POST /api/v1/sessions; send `Authorization: Bearer TOKEN`.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        # no TIN, name or address from an anonymized principal, on any route (api/anonymized)
        dependencies=[Depends(anonymized.no_identifiers)],
    )
    api.state.app = app
    api.add_exception_handler(AccessDenied, _denied)
    api.add_exception_handler(IdrsError, _error)
    for module in (sessions, research, audit, access, adjustments, grants, anonymized,
                   statistics, detection, reports, admin, disclosures):
        api.include_router(module.router, prefix=API_PREFIX)
    web.mount(api, app)
    # Security headers, request ids, the body limit; errors as application/problem+json that
    # keep the contract's keys (decision, reasons, audit_index, error).
    middleware.install(api)
    middleware.install_problem_handlers(api)
    throttle.install(api)  # the sign-in and research limits (dependencies of those routes)
    _sign_tail_at_shutdown(api)
    return api


def _sign_tail_at_shutdown(api: FastAPI) -> None:
    """Outermost lifespan: when the server stops (after the throttle's last summaries are
    recorded), sign a checkpoint over whatever this process appended that none covers yet.
    While it runs, the audit log's tail signer keeps every entry's wait for a checkpoint
    within IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS (``idrs.audit.log``)."""
    import contextlib
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    import anyio

    from idrs.audit import log

    previous: Callable[[Any], Any] = api.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        try:
            async with previous(asgi) as state:
                yield state
        finally:
            await anyio.to_thread.run_sync(log.flush_unsigned)

    api.router.lifespan_context = lifespan
