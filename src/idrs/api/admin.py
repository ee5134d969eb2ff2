"""HTTP API of security administration (mounted under /api/v1 by api/app.py).

Units and their ceilings, employees, profile changes (restricted additions wait for a
second security administrator), deactivation, unlocks. Every route needs a signed-in
security administrator (Bearer token); ``idrs.people.admin`` checks the role, the units the
administrator may administer, the ban on administering oneself and the two-person rule, and
records every step in the audit log. No answer ever holds a TIN, password or TOTP secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.bounds import RowId
from idrs.api.deps import AppDep, EmployeeDep, client_address, role_rule
from idrs.api.paging import PageDep, paged
from idrs.audit.events import Actor
from idrs.people import admin
from idrs.people.roles import SECURITY_ADMINS

if TYPE_CHECKING:
    from idrs.people.models import Employee

router = APIRouter(tags=["security administration"])
#: Every route declares who may call it (a meta-test checks the declaration and the refusal).
ADMIN_ONLY: dict[str, Any] = role_rule(SECURITY_ADMINS)


def _actor(emp: Employee, request: Request) -> Actor:
    return Actor(emp.seid, "api", client_address(request))


# -- schemas -------------------------------------------------------------------------------


class UnitOut(BaseModel):
    code: str
    name: str
    ceiling: list[str]
    headcount: int
    administered: bool


class UnitsOut(BaseModel):
    units: list[UnitOut]


class CeilingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ceiling: list[str] = Field(max_length=50, description="command codes; [] for none")


class CeilingOut(BaseModel):
    code: str
    ceiling: list[str]
    before: list[str]
    trimmed: dict[str, list[str]] = Field(description="SEID → codes removed from their profile")
    audit_index: int


class EmployeeOut(BaseModel):
    seid: str
    name: str
    kind: str
    unit: str
    roles: list[str]
    profile: list[str]
    authorities: list[str]
    active: bool
    locked: bool
    training_current_since: str | None
    pending_change: int | None
    is_self: bool


class BeforeAfter(BaseModel):
    before: list[str]
    after: list[str]


class ChangeOut(BaseModel):
    change_id: int
    seid: str
    unit: str
    status: Literal["pending", "applied", "confirmed", "rejected", "expired"]
    roles: BeforeAfter
    profile: BeforeAfter
    authorities: BeforeAfter
    added: list[str]
    removed: list[str]
    restricted: list[str] = Field(description="restricted additions a second admin confirms")
    requested_by: str
    requested_at: str | None
    expires_at: str | None
    note: str | None
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None
    can_confirm: bool | None = None
    audit_index: int | None = None


class EmployeeDetail(EmployeeOut):
    ceiling: list[str]
    changes: list[ChangeOut]


class EmployeePage(BaseModel):
    employees: list[EmployeeOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class ChangePage(BaseModel):
    changes: list[ChangeOut]
    limit: int
    offset: int
    total: int
    next_offset: int | None


class ChangeIn(BaseModel):
    """The new sets; an absent (null) field stays as it is."""

    model_config = ConfigDict(extra="forbid")
    roles: list[str] | None = Field(default=None, max_length=20)
    codes: list[str] | None = Field(default=None, max_length=50)
    authorities: list[str] | None = Field(default=None, max_length=50)
    note: str | None = Field(default=None, max_length=admin.MAX_NOTE)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=admin.MAX_NOTE)


class ActiveOut(BaseModel):
    seid: str
    active: bool
    sessions_ended: int
    audit_index: int


class UnlockOut(BaseModel):
    seid: str
    locked: bool


# -- routes --------------------------------------------------------------------------------


@router.get("/units", response_model=UnitsOut, openapi_extra=ADMIN_ONLY)
def units(app: AppDep, emp: EmployeeDep, request: Request) -> dict[str, Any]:
    """Every unit with its ceiling, active headcount and whether you administer it."""
    return {"units": admin.list_units(app, _actor(emp, request))}


@router.put("/units/{code}/ceiling", response_model=CeilingOut, openapi_extra=ADMIN_ONLY)
def set_ceiling(
    code: str, body: CeilingIn, app: AppDep, emp: EmployeeDep, request: Request
) -> dict[str, Any]:
    """Set the ceiling of a unit you administer; lowering it trims the unit's profiles."""
    return admin.set_ceiling(app, _actor(emp, request), unit=code, codes=body.ceiling).as_dict()


@router.get("/employees", response_model=EmployeePage, openapi_extra=ADMIN_ONLY)
def employees(
    app: AppDep,
    emp: EmployeeDep,
    request: Request,
    page: PageDep,
    unit: str | None = Query(default=None, max_length=20, description="one unit you administer"),
    active_only: bool = Query(default=False),
) -> dict[str, Any]:
    """Employees of the units you administer, by SEID (paged)."""
    rows = admin.list_employees(
        app, _actor(emp, request), unit=unit, include_inactive=not active_only
    )
    return paged(rows, page, key="employees")


@router.get("/employees/{seid}", response_model=EmployeeDetail, openapi_extra=ADMIN_ONLY)
def employee(seid: str, app: AppDep, emp: EmployeeDep, request: Request) -> dict[str, Any]:
    """One employee of your units, with the unit's ceiling and the change history."""
    return admin.show_employee(app, _actor(emp, request), seid)


@router.post(
    "/employees/{seid}/profile-changes",
    status_code=201,
    response_model=ChangeOut,
    openapi_extra=ADMIN_ONLY,
)
def request_change(
    seid: str, body: ChangeIn, app: AppDep, emp: EmployeeDep, request: Request
) -> dict[str, Any]:
    """Change roles, profile and/or authorities: ``applied`` at once, or ``pending`` when it
    adds a restricted item (``restricted``) that a second security administrator confirms."""
    return admin.request_change(
        app,
        _actor(emp, request),
        seid=seid,
        roles=body.roles,
        codes=body.codes,
        authorities=body.authorities,
        note=body.note,
    )


@router.get("/profile-changes", response_model=ChangePage, openapi_extra=ADMIN_ONLY)
def changes(
    app: AppDep,
    emp: EmployeeDep,
    request: Request,
    page: PageDep,
    status: Literal["pending", "applied", "confirmed", "rejected", "expired", "all"] = "pending",
) -> dict[str, Any]:
    """Profile changes in your units, newest first (default: those waiting; paged)."""
    return paged(admin.list_changes(app, _actor(emp, request), status=status), page, key="changes")


@router.post(
    "/profile-changes/{change_id}/confirm", response_model=ChangeOut, openapi_extra=ADMIN_ONLY
)
def confirm(
    change_id: RowId, app: AppDep, emp: EmployeeDep, request: Request, body: DecisionIn | None = None
) -> dict[str, Any]:
    """Confirm a pending change (not your own request, not about you); it applies now."""
    return admin.confirm_change(app, _actor(emp, request), change_id, body.note if body else None)


@router.post(
    "/profile-changes/{change_id}/reject", response_model=ChangeOut, openapi_extra=ADMIN_ONLY
)
def reject(
    change_id: RowId, app: AppDep, emp: EmployeeDep, request: Request, body: DecisionIn | None = None
) -> dict[str, Any]:
    """Reject (or withdraw your own) pending change; nothing is applied."""
    return admin.reject_change(app, _actor(emp, request), change_id, body.note if body else None)


@router.post("/employees/{seid}/deactivate", response_model=ActiveOut, openapi_extra=ADMIN_ONLY)
def deactivate(seid: str, app: AppDep, emp: EmployeeDep, request: Request) -> dict[str, Any]:
    """Deactivate an employee of your units; their live sessions end at once."""
    return admin.set_active(app, _actor(emp, request), seid=seid, active=False).as_dict()


@router.post("/employees/{seid}/reactivate", response_model=ActiveOut, openapi_extra=ADMIN_ONLY)
def reactivate(seid: str, app: AppDep, emp: EmployeeDep, request: Request) -> dict[str, Any]:
    """Reactivate a deactivated employee of your units."""
    return admin.set_active(app, _actor(emp, request), seid=seid, active=True).as_dict()


@router.post("/employees/{seid}/unlock", response_model=UnlockOut, openapi_extra=ADMIN_ONLY)
def unlock(seid: str, app: AppDep, emp: EmployeeDep, request: Request) -> dict[str, Any]:
    """Clear a lockout (any employee but yourself)."""
    return admin.unlock(app, _actor(emp, request), seid=seid).as_dict()
