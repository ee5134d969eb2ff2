"""Anonymized records (``/api/v1/anonymized/...``), re-identification, and the guard that
keeps every TIN, name and address away from an anonymized principal.

``no_identifiers`` is a dependency of every route of ``create_app`` (API and pages): when the
request carries an identifier (a path, query, form or JSON field named like one, or any value
shaped like a TIN) and its session token names an anonymized principal, it refuses with 403
ANONYMIZED_NO_IDENTIFIER (recorded) before the route runs. The research routes check the
same thing inside ``idrs.research.run`` (in the read they already do), so the guard skips
them. The logic lives in ``idrs.grants.anonymized``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.answers import Answer
from idrs.api.bounds import RowId
from idrs.api.deps import AppDep, EmployeeDep, client_address, role_rule
from idrs.audit.events import Actor
from idrs.grants import anonymized
from idrs.people.roles import GRANT_STAFF, REIDENTIFIERS

router = APIRouter(tags=["anonymized"])
SIGNED_IN = {"x-authorization": "signed-in"}

#: the route functions whose service refuses an anonymized principal itself
#: (idrs.research.run), by name in idrs.api.research. Matched on the endpoint, not the path:
#: the route a dependency sees carries its path without the router's /api/v1 prefix, so a
#: path test never matched and every research call paid a second session lookup.
CHECKED_IN_SERVICE = frozenset({"account_research"})


def _checked_in_service(request: Request) -> bool:
    endpoint = request.scope.get("endpoint")
    return (
        getattr(endpoint, "__module__", None) == "idrs.api.research"
        and getattr(endpoint, "__name__", None) in CHECKED_IN_SERVICE
    )


def _token(request: Request) -> str | None:
    from idrs.web.security import SESSION_COOKIE

    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


async def _body_fields(request: Request) -> list[str]:
    """Identifier fields of a JSON or urlencoded body (read once: Starlette keeps it for the
    route); any other body counts when its text holds something shaped like a TIN."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return []
    raw = await request.body()
    if not raw:
        return []
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if kind == "application/x-www-form-urlencoded":
        form = parse_qs(text, keep_blank_values=True, max_num_fields=200)
        # the page's own CSRF token (hex: nine digits in a row are common in it) carries no
        # identifier: a form whose token is not exactly the session's is refused anyway
        from idrs.web.security import CSRF_FIELD

        form.pop(CSRF_FIELD, None)
        return anonymized.identifier_fields(form)
    try:
        return anonymized.identifier_fields(json.loads(text))
    except ValueError:
        return ["body"] if anonymized.TIN_VALUE.search(text) else []


async def no_identifiers(request: Request) -> None:
    """Refuse (403, recorded) a TIN, name or address from an anonymized principal."""
    token = _token(request)
    if not token or _checked_in_service(request):
        return  # no credentials: the route refuses by itself
    query: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        query.setdefault(k, []).append(v)  # every value of a repeated parameter
    fields = anonymized.identifier_fields(dict(request.path_params))
    fields += anonymized.identifier_fields(query)
    fields += await _body_fields(request)
    if not fields:
        return
    app = request.app.state.app
    who = await anyio.to_thread.run_sync(anonymized.anonymized_principal_of_token, app, token)
    if who is not None:
        what = ", ".join(sorted(set(fields)))[:200]
        interface = "api" if request.url.path.startswith("/api/") else "web"
        raise await anyio.to_thread.run_sync(
            lambda: anonymized.refuse_identifier(
                app, who, what, interface=interface, address=client_address(request)
            )
        )


def _actor(emp: Any, request: Request) -> Actor:
    return Actor(emp.seid, "api", client_address(request))


class ReidentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pseudonym: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)


class ReleasedRecord(Answer):
    """One released record: its pseudonym and its generalized quasi-identifiers (null where
    the grant's level generalizes one away)."""

    pseudonym: str
    tax_year: int
    filing_status: str
    state: str | None
    zip3: str | None
    agi_band: str | None
    wages_band: str | None
    birth_years: str | None


class ReleasedRecords(Answer):
    grant_id: int
    k: int
    level: int
    suppressed: int
    matched: int
    records: list[ReleasedRecord]
    audit_index: int


class ReleasedRecordOut(Answer):
    grant_id: int
    k: int
    level: int
    record: ReleasedRecord


class Reidentified(Answer):
    """The taxpayer behind a pseudonym (security staff only; recorded)."""

    grant_id: int
    pseudonym: str
    tin: str
    taxpayer: str
    tax_year: int
    audit_index: int


class KeyRotated(Answer):
    grant_id: int
    key_version: int
    audit_index: int


@router.get("/anonymized/records", response_model=ReleasedRecords, openapi_extra=SIGNED_IN)
def anonymized_records(
    request: Request,
    app: AppDep,
    emp: EmployeeDep,
    limit: Annotated[int, Query(ge=1, le=anonymized.MAX_LIMIT)] = 100,
    sample: bool = False,
    grant: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    tax_year: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    filing_status: Annotated[str | None, Query(max_length=3)] = None,
    state: Annotated[str | None, Query(max_length=2)] = None,
    zip3: Annotated[str | None, Query(max_length=3)] = None,
    agi_band: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    """Released records of the caller's anonymized grant: listed (pseudonym order) or a random
    ``sample``, filtered on generalized attributes. ``{"records", "k", "suppressed", ...}``."""
    filters = {
        "tax_year": tax_year,
        "filing_status": filing_status,
        "state": state,
        "zip3": zip3,
        "agi_band": agi_band,
    }
    return anonymized.list_records(
        app,
        emp,
        filters=filters,
        limit=limit,
        sample=sample,
        grant_id=grant,
        actor=_actor(emp, request),
    )


@router.get("/anonymized/records/{pseudonym}", response_model=ReleasedRecordOut,
            openapi_extra=SIGNED_IN)
def anonymized_record(
    request: Request,
    app: AppDep,
    emp: EmployeeDep,
    pseudonym: str,
    grant: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """One released record addressed by its pseudonym under the caller's grant (404 for
    another grant's, a forged or a suppressed one alike)."""
    return anonymized.show_record(app, emp, pseudonym, grant_id=grant, actor=_actor(emp, request))


@router.post("/grants/{grant_id}/reidentify", response_model=Reidentified,
             openapi_extra=role_rule(REIDENTIFIERS))
def reidentify(
    grant_id: RowId, body: ReidentifyIn, request: Request, app: AppDep, emp: EmployeeDep
) -> dict[str, Any]:
    """The taxpayer behind one pseudonym of an anonymized grant (security staff; recorded)."""
    return anonymized.reidentify(
        app,
        emp,
        grant_id=grant_id,
        pseudonym=body.pseudonym,
        reason=body.reason,
        actor=_actor(emp, request),
    ).as_dict()


@router.post("/grants/{grant_id}/rotate-key", response_model=KeyRotated,
             openapi_extra=role_rule(GRANT_STAFF))
def rotate_key(grant_id: RowId, request: Request, app: AppDep, emp: EmployeeDep) -> dict[str, Any]:
    """A new pseudonym key version for an anonymized grant: earlier pseudonyms stop working."""
    return anonymized.rotate_key(app, emp, grant_id=grant_id,
                                 actor=_actor(emp, request)).as_dict()
