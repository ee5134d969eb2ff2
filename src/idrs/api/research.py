"""``GET /api/v1/accounts/{tin}/{command}`` and ``GET /api/v1/names``: research command codes.

Thin: the path and query go to ``idrs.research.run`` unchanged; that function authenticates,
decides, records and masks. 200 ``{"command", "data", "masked", "withheld", "audit_index"}``;
403 ``{"decision": "deny", "reasons": [...], "audit_index"}``; 401 without a valid session;
400 bad TIN / unknown command / missing year; 404 an allowed lookup of an unknown TIN;
429 with ``Retry-After`` when the session calls faster than ``IDRS_RESEARCH_RATE`` or the
address has spent its unauthenticated calls (``idrs.api.throttle``); 503 AUDIT_UNAVAILABLE
when the entry cannot be committed (the database lock not had within
``IDRS_DB_LOCK_TIMEOUT`` seconds included). A NAMES answer holds at most ``IDRS_NAMES_MAX_MATCHES`` matches:
no research answer is an unbounded list, so none is paged.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from idrs import research
from idrs.api.bounds import BoundedDate
from idrs.api.deps import bearer, client_address, run_research
from idrs.api.middleware import problem_responses
from idrs.api.throttle import research_admit, research_refused
from idrs.context import App
from idrs.errors import AccessDenied
from idrs.vocabulary import CommandCode

router = APIRouter(tags=["research"], dependencies=[Depends(research_admit)])


class ResearchOut(BaseModel):
    command: str
    data: Any
    #: paths of the fields the answer masked (``entity.tin``, ``dependents[0].tin``)
    masked: list[str]
    #: paths of related people's TINs withheld (a spouse, dependent or claimant the employee
    #: may not see: their own conflict, an employee's or a high-profile account); no reason
    withheld: list[str] = []
    audit_index: int


_ERRORS = problem_responses(400, 401, 403, 404, 422, 429, 503)
#: who may call (checked by research.run) and how: the bearer token of POST /api/v1/sessions
_SIGNED_IN: dict[str, Any] = {"x-authorization": "signed-in", "security": [{"HTTPBearer": []}]}


async def _research(request: Request, **call: Any) -> ResearchOut:
    """``idrs.research.run`` for this request, in the research pool (``run_research``).

    The application and the bearer token are read here rather than declared as dependencies
    (FastAPI solves every dependency on every request: on this, the hottest route, that cost
    more than the route's own work); the operation still declares the bearer scheme."""
    app: App = request.app.state.app
    creds = await bearer(request)
    token = creds.credentials if creds is not None else None
    try:
        ans = await run_research(
            request,
            functools.partial(
                research.run, app, token=token, interface="api",
                address=client_address(request), **call,
            ),
        )
    except AccessDenied as exc:
        research_refused(request, exc)
        raise
    return ResearchOut(**ans.as_dict())


@router.get(
    "/accounts/{tin}/{command}",
    response_model=ResearchOut,
    responses=_ERRORS,
    summary="Run a research command code on one taxpayer",
    openapi_extra=_SIGNED_IN,
)
async def account_research(
    tin: str,
    command: str,
    request: Request,
    case: str | None = Query(None, max_length=40, description="case ID (need-to-know basis)"),
    contact: str | None = Query(None, max_length=40, description="taxpayer contact ID"),
    reason: str | None = Query(None, max_length=500, description="stated reason"),
    year: int | None = Query(None, ge=1900, le=2999, description="tax year (TXMOD, RTVUE)"),
    place: str | None = Query(None, max_length=20, description="NAMES only: ST, ZIP or 'ST ZIP'"),
    as_of: BoundedDate | None = Query(
        None, description="ENMOD/TXMOD: the account as it stood at the end of this day"
    ),
) -> ResearchOut:
    is_names = command.strip().upper() == CommandCode.NAMES  # {tin} is then the name query
    return await _research(
        request, command=command, tin=None if is_names else tin,
        name=tin if is_names else None, place=place, year=year, case=case, contact=contact,
        reason=reason, as_of=as_of,
    )


@router.get(
    "/names",
    response_model=ResearchOut,
    responses=_ERRORS,
    summary="NAMES: search taxpayers by name (and state/ZIP); always reasoned",
    openapi_extra=_SIGNED_IN,
)
async def names_search(
    request: Request,
    name: str = Query(..., max_length=100, description="LAST or LAST,FIRST"),
    place: str | None = Query(None, max_length=20, description="ST, ZIP or 'ST ZIP'"),
    reason: str | None = Query(None, max_length=500),
    case: str | None = Query(None, max_length=40),
    contact: str | None = Query(None, max_length=40),
) -> ResearchOut:
    return await _research(
        request, command=CommandCode.NAMES, tin=None, name=name, place=place,
        case=case, contact=contact, reason=reason,
    )
