"""Pages of disclosures to other agencies (issue 16.5).

- ``/disclosures``: the disclosure officer's queue: batches held over their caps with the
  counts per official and per investigation (approve or reject), the latest refused records
  and why, and every batch; ``?system=NAME`` narrows the list to one requester's batches
  (the requester's own view is the API, ``GET /api/v1/disclosures``: a machine has no
  pages);
- ``/disclosures/{batch_id}``: one batch, its counts and decisions;
- ``POST /disclosures/{batch_id}/approve`` | ``/reject``: the officer's decision.

The taxpayer's accounting of disclosures is on ``/taxpayers`` beside employees' accesses.
Every page calls ``disclosure.service``, which checks the role and records what it does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from idrs.disclosure import service
from idrs.grants import records
from idrs.people.roles import DISCLOSURE_OFFICERS, DISCLOSURE_READERS
from idrs.web.render import WebRoute, page, posted, role_rule
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
STATUSES = ("held", "decided", "rejected")


def _require(request: Request, user: WebUser, roles: frozenset[str], what: str) -> None:
    records.require(app_of(request), user.employee, roles, what, "web", client_address(request))


@router.get("/disclosures", openapi_extra=role_rule(DISCLOSURE_READERS))
async def queue_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(request, user, DISCLOSURE_READERS, "the disclosure queue")
    app = app_of(request)
    system = (request.query_params.get("system") or "").strip().lower()[:40] or None
    status = request.query_params.get("status")
    status = status if status in STATUSES else None
    viewer = service.Viewer(employee=user.employee)
    address = client_address(request)

    def load() -> tuple[dict[str, Any], dict[str, Any]]:
        q = service.queue(app, user.employee, interface="web", address=address)
        b = service.list_batches(app, viewer, status=status, system=system, interface="web",
                                 address=address)
        return q, b

    q, b = await run_in_threadpool(load)
    return page(request, "disclosures.html", user, queue=q, batches=b["batches"],
                system=system or "", status_filter=status or "",
                officer=bool(user.roles & DISCLOSURE_OFFICERS),
                done=request.query_params.get("done"))


@router.get("/disclosures/{batch_id}", openapi_extra=role_rule(DISCLOSURE_READERS))
async def batch_page(batch_id: str, request: Request) -> HTMLResponse:
    user = current_user(request)
    _require(request, user, DISCLOSURE_READERS, "disclosure batches")
    app = app_of(request)
    viewer = service.Viewer(employee=user.employee)
    b = await run_in_threadpool(lambda: service.get_batch(
        app, viewer, batch_id[:24], limit=500, interface="web", address=client_address(request)))
    return page(request, "disclosure.html", user, batch=b,
                officer=bool(user.roles & DISCLOSURE_OFFICERS))


@router.post("/disclosures/{batch_id}/{decision}", openapi_extra=role_rule(DISCLOSURE_OFFICERS))
async def decide_page(batch_id: str, decision: str, request: Request) -> Response:
    """The officer approves or rejects a held batch (the service checks the role)."""
    user, _form = await posted(request)
    app = app_of(request)
    call = {"approve": service.approve, "reject": service.reject}.get(decision)
    if call is None:
        from idrs.errors import NotFound

        raise NotFound(f"no action {decision[:20]}")
    out = await run_in_threadpool(lambda: call(app, user.employee, batch_id[:24],
                                               interface="web",
                                               address=client_address(request)))
    return RedirectResponse(f"/disclosures/{quote(out['batch_id'])}", status_code=303)
