"""HTTP routes of the detection domain (mounted under /api/v1 by api/app.py).

``GET /alerts`` (privacy analysts: the alerts they may work), ``GET /alerts/{id}``,
``POST /alerts/{id}/assign|review|dismiss|refer`` (the signed-in analyst),
``POST /self-reports`` (the signed-in employee's own accidental access),
``GET /taxpayers/{tin}/accesses`` (the accounting of who opened an account, without
employee identities; for privacy analysts and auditors answering a taxpayer's request).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from idrs.api.deps import AppDep, EmployeeDep, TokenDep, client_address
from idrs.detection import taxpayer, triage
from idrs.errors import AccessDenied, Reason

router = APIRouter(tags=["detection"])
ACCOUNTING_ROLES = frozenset({"privacy_analyst", "auditor", "privacy_officer"})


class NoteIn(BaseModel):
    note: str = Field("", max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=2000)


class SelfReportIn(BaseModel):
    audit_index: int = Field(..., ge=0)
    reason: str = Field(..., min_length=1, max_length=500)


@router.get("/alerts")
def list_alerts(app: AppDep, me: EmployeeDep, state: str | None = None) -> dict[str, Any]:
    return {"alerts": triage.list_alerts(app, state=state, analyst=me.seid)}


@router.get("/alerts/{alert_id}")
def show_alert(alert_id: str, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    return triage.show(app, alert_id, analyst=me.seid, interface="api")


@router.post("/alerts/{alert_id}/assign")
def assign_alert(alert_id: str, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    return triage.assign(app, alert_id=alert_id, analyst=me.seid, interface="api")


@router.post("/alerts/{alert_id}/review")
def review_alert(alert_id: str, body: NoteIn, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    return triage.review(app, alert_id=alert_id, analyst=me.seid, note=body.note, interface="api")


@router.post("/alerts/{alert_id}/dismiss")
def dismiss_alert(alert_id: str, body: ReasonIn, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    return triage.dismiss(app, alert_id=alert_id, analyst=me.seid, reason=body.reason, interface="api")


@router.post("/alerts/{alert_id}/refer")
def refer_alert(alert_id: str, body: NoteIn, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    return triage.refer(app, alert_id=alert_id, analyst=me.seid, note=body.note, interface="api")


@router.post("/self-reports", status_code=201)
def self_report(body: SelfReportIn, request: Request, app: AppDep, token: TokenDep) -> dict[str, Any]:
    return triage.self_report(app, token=token, audit_index=body.audit_index, reason=body.reason,
                              interface="api", address=client_address(request))


@router.get("/taxpayers/{tin}/accesses")
def taxpayer_accesses(tin: str, app: AppDep, me: EmployeeDep) -> dict[str, Any]:
    if not (me.role_set & ACCOUNTING_ROLES):
        raise AccessDenied([Reason("NOT_IN_PROFILE",
                                   "the accounting of accesses is given by privacy and audit staff")])
    return taxpayer.accesses(app, tin=tin, actor=me.seid, interface="api")
