"""HTTP API of outside access (mounted under /api/v1 by api/app.py).

Every call needs a signed-in employee (Bearer token); the service functions decide who may
do what (approving roles, the holder of an export, the signer) and record every action.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from idrs.api.deps import AppDep, EmployeeDep, TokenDep, client_address
from idrs.grants import exports, service

router = APIRouter(tags=["grants"])


def _actor(emp: Any, request: Request) -> service.Actor:
    return service.Actor(emp.seid, "api", client_address(request))


class OtpIn(BaseModel):
    otp: str = Field(min_length=1, max_length=12)


class GrantIn(BaseModel):
    principal: str
    purpose: str
    basis: str
    commands: list[str]
    classes: list[str]
    population: Literal["cases", "all", "anonymized"]
    allow_changes: bool = False
    start: date
    days: int | None = None
    end: date | None = None
    renewal_of: int | None = None
    daily_limit: int | None = None
    agreement: str | None = None


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class ExportIn(BaseModel):
    command: str
    tins: list[str] = Field(min_length=1, max_length=exports.MAX_TINS)
    format: Literal["csv", "pdf"] = "csv"
    year: int | None = None
    case: str | None = None
    reason: str | None = None


class DestructionIn(BaseModel):
    method: str = Field(min_length=1, max_length=2000)
    witness_seid: str
    destroyed_at: datetime | None = None


@router.post("/grants", status_code=201)
def request_grant(body: GrantIn, request: Request, app: AppDep,
                  emp: EmployeeDep) -> dict[str, Any]:
    """Request a grant (the signed-in employee is the requester) → {"grant_id", "status"}."""
    return service.request_grant(app, **body.model_dump(), actor=_actor(emp, request))


@router.get("/grants/{grant_id}")
def show_grant(grant_id: int, app: AppDep, emp: EmployeeDep) -> dict[str, Any]:
    """One grant: state (from the clock), scope, term, approvals, prerequisites, exports."""
    del emp  # any signed-in employee: a grant holds no taxpayer data
    return service.show_grant(app, grant_id)


@router.post("/grants/{grant_id}/approvals")
def approve_grant(grant_id: int, body: OtpIn, request: Request, app: AppDep,
                  emp: EmployeeDep) -> dict[str, Any]:
    """One approval by an approving role, with a re-entered one-time code → {"status", …}."""
    return service.approve_grant(app, emp, grant_id=grant_id, otp=body.otp,
                                 actor=_actor(emp, request))


@router.post("/grants/{grant_id}/revocation")
def revoke_grant(grant_id: int, body: RevokeIn, request: Request, app: AppDep,
                 emp: EmployeeDep) -> dict[str, Any]:
    """Revoke (either approving role); effective on the principal's next request."""
    return service.revoke_grant(app, emp, grant_id=grant_id, reason=body.reason,
                                actor=_actor(emp, request))


@router.post("/agreements/{agreement_id}/signatures", status_code=201)
def sign_agreement(agreement_id: int, body: OtpIn, request: Request, app: AppDep,
                   emp: EmployeeDep) -> dict[str, Any]:
    """The signed-in employee signs the current version of an agreement (fresh code)."""
    return service.sign_agreement(app, emp, agreement_id=agreement_id, otp=body.otp,
                                  actor=_actor(emp, request))


@router.post("/training/attestations", status_code=201)
def attest_training(body: OtpIn, request: Request, app: AppDep,
                    emp: EmployeeDep) -> dict[str, Any]:
    """The signed-in employee attests UNAX training (valid 365 days)."""
    return service.attest_training(app, emp, otp=body.otp, actor=_actor(emp, request))


@router.post("/exports", status_code=201)
def create_export(body: ExportIn, request: Request, app: AppDep, token: TokenDep,
                  response: Response) -> dict[str, Any]:
    """Export research results; every TIN goes through the research service.

    201 with ``export_id``, the register entry and the file (base64) in ``content``; the
    ``X-Idrs-Export-Id`` header carries the id too.
    """
    f = exports.create_export(app, token=token, command=body.command, tins=body.tins,
                              fmt=body.format, year=body.year, case=body.case,
                              reason=body.reason, interface="api",
                              address=client_address(request))
    response.headers["X-Idrs-Export-Id"] = f.export_id
    return {**f.summary(), "media_type": f.media_type,
            "content": base64.b64encode(f.content).decode()}


@router.post("/exports/{export_id}/destruction")
def destroy_export(export_id: str, body: DestructionIn, request: Request, app: AppDep,
                   emp: EmployeeDep) -> dict[str, Any]:
    """The holder certifies the export destroyed, with a witness, the method and the time."""
    return exports.destroy_export(app, emp, export_id=export_id, method=body.method,
                                  witness_seid=body.witness_seid,
                                  destroyed_at=body.destroyed_at, actor=_actor(emp, request))
