"""HTTP routes of the audit log (mounted by the lead under ``/api/v1``).

Public (no sign-in; sizes and hashes only): ``GET /audit/checkpoint`` (text/plain signed
note), ``GET /audit/proofs/inclusion``, ``GET /audit/proofs/consistency``.
Auditor only: ``GET /audit/entries`` (entries name employees); every call is recorded.

The signed-in employee comes from ``idrs.api.deps.current_employee`` and the application
context from ``idrs.api.deps.get_app``. Refusals and bad input raise IdrsError subclasses,
answered by the API's exception handlers (``idrs.api.app``): 400/404/422 with
``{"error"}``, 401/403 with the denial body.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from idrs.audit import service
from idrs.context import App
from idrs.errors import AccessDenied, Reason


def _app_from_state(request: Request) -> App:
    return request.app.state.app


def _no_employee() -> Any:
    raise AccessDenied(reasons=[Reason("AUTH_REQUIRED", "sign in first")])


try:  # provided by the sign-in/API helper; imported here so FastAPI sees its own dependencies
    from idrs.api.deps import current_employee as _current_employee  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - only while the API package is incomplete
    _current_employee = _no_employee
try:
    from idrs.api.deps import get_app as _get_app  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _get_app = _app_from_state

router = APIRouter(tags=["audit"])


@router.get(
    "/audit/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint signed note)",
)
def get_checkpoint(app: App = Depends(_get_app)) -> Any:
    return PlainTextResponse(service.latest_checkpoint(app), media_type="text/plain; charset=utf-8")


@router.get("/audit/proofs/inclusion", summary="RFC 9162 inclusion proof")
def get_inclusion(
    index: int = Query(..., ge=0),
    tree_size: int = Query(..., ge=1),
    app: App = Depends(_get_app),
) -> Any:
    return service.inclusion_proof(app, index, tree_size)


@router.get("/audit/proofs/consistency", summary="RFC 9162 consistency proof")
def get_consistency(
    first: int = Query(..., ge=0),
    second: int = Query(..., ge=0),
    app: App = Depends(_get_app),
) -> Any:
    return service.consistency_proof(app, first, second)


@router.get("/audit/entries", summary="Entries start <= index < end (auditor only)")
def get_entries(
    request: Request,
    start: int = Query(..., ge=0),
    end: int = Query(..., ge=0),
    app: App = Depends(_get_app),
    employee: Any = Depends(_current_employee),
) -> Any:
    address = request.client.host if request.client else None
    return service.entries(app, employee, start, end, interface="api", address=address)
