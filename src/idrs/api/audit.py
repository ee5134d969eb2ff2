"""HTTP routes of the audit log (mounted under ``/api/v1``).

Public (no sign-in; sizes and hashes only): ``GET /audit/checkpoint`` (text/plain signed
note), ``GET /audit/proofs/inclusion``, ``GET /audit/proofs/consistency``.
Auditor only: ``GET /audit/entries`` (entries name employees); every call is recorded.

Pagination of the entries is the contract's own window: ``?start=I&end=J`` answers
``I <= index < J``, at most ``idrs.audit.service.MAX_ENTRIES`` (10,000) a call; the answer
adds ``start``, ``end``, ``tree_size`` and ``next_start`` (``end`` while the log holds more,
else null), so a reader walks the log with ``start=next_start&end=next_start+N``.

The signed-in employee comes from ``idrs.api.deps.current_employee`` and the application
context from ``idrs.api.deps.get_app`` (aliased here so tests can override them). Refusals
and bad input are problem+json answers (``idrs.api.middleware``): 400/404/422 with
``error``, 401/403 with the denial's keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from idrs.api.deps import client_address, role_rule
from idrs.api.deps import current_employee as _current_employee
from idrs.api.deps import get_app as _get_app
from idrs.api.middleware import problem_responses
from idrs.audit import service
from idrs.context import App
from idrs.people.roles import AUDIT_READERS

router = APIRouter(tags=["audit"])


class InclusionOut(BaseModel):
    index: int
    tree_size: int
    #: RFC 9162 inclusion path, hex SHA-256 hashes
    hashes: list[str]


class ConsistencyOut(BaseModel):
    first: int
    second: int
    #: RFC 9162 consistency proof, hex SHA-256 hashes
    hashes: list[str]


class EntryOut(BaseModel):
    index: int
    #: the entry's canonical JSON bytes, base64
    leaf_input: str


class EntriesOut(BaseModel):
    entries: list[EntryOut]
    start: int
    end: int
    #: the log's size when read (before this read's own audit entry)
    tree_size: int
    #: where the next window starts (null: this one reached the end of the log)
    next_start: int | None


@router.get(
    "/audit/checkpoint",
    response_class=PlainTextResponse,
    response_model=None,
    summary="The latest signed checkpoint (C2SP tlog-checkpoint signed note)",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **problem_responses(404),
    },
    openapi_extra={"x-authorization": "public"},
)
def get_checkpoint(app: App = Depends(_get_app)) -> Any:
    return PlainTextResponse(service.latest_checkpoint(app), media_type="text/plain; charset=utf-8")


@router.get(
    "/audit/proofs/inclusion",
    response_model=InclusionOut,
    summary="RFC 9162 inclusion proof",
    responses=problem_responses(400, 404, 422),
    openapi_extra={"x-authorization": "public"},
)
def get_inclusion(
    index: int = Query(..., ge=0, le=2**62),
    tree_size: int = Query(..., ge=1, le=2**62),
    app: App = Depends(_get_app),
) -> Any:
    return service.inclusion_proof(app, index, tree_size)


@router.get(
    "/audit/proofs/consistency",
    response_model=ConsistencyOut,
    summary="RFC 9162 consistency proof",
    responses=problem_responses(400, 404, 422),
    openapi_extra={"x-authorization": "public"},
)
def get_consistency(
    first: int = Query(..., ge=0, le=2**62),
    second: int = Query(..., ge=0, le=2**62),
    app: App = Depends(_get_app),
) -> Any:
    return service.consistency_proof(app, first, second)


@router.get(
    "/audit/entries",
    response_model=EntriesOut,
    summary="Entries start <= index < end, at most 10,000 a call (auditor only)",
    responses=problem_responses(400, 401, 403, 404, 422),
    openapi_extra=role_rule(AUDIT_READERS),
)
def get_entries(
    request: Request,
    start: int = Query(..., ge=0, le=2**62, description="first index (inclusive)"),
    end: int = Query(..., ge=0, le=2**62, description="last index (exclusive)"),
    app: App = Depends(_get_app),
    employee: Any = Depends(_current_employee),
) -> Any:
    # the size before this read: its own record (appended by entries) is not a next page
    size = service.tree_size(app)
    out = service.entries(
        app, employee, start, end, interface="api", address=client_address(request)
    )
    return {
        **out,
        "start": start,
        "end": end,
        "tree_size": size,
        "next_start": end if end < size else None,
    }
