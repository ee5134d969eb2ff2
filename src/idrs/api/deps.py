"""Typed FastAPI dependencies: the application context and the signed-in employee.

``current_employee`` turns ``Authorization: Bearer TOKEN`` into an Employee through
``people.auth.authenticate`` (which records session expiry); a missing, unknown or expired
token raises AccessDenied (AUTH_REQUIRED / SESSION_EXPIRED), answered 401.

Route authorization is declared on every route, API and page alike, as
``openapi_extra={"x-authorization": RULE}`` with RULE ``"public"``, ``"signed-in"`` or
``"role:r1,r2"`` (any of those roles); tests/integration/test_route_authorization.py checks
that each route has a valid label and refuses callers the label excludes. The checks
themselves stay in the services (and in ``require_roles`` below for routes whose service
was written for the local operator).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from idrs.context import App
from idrs.people import auth

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee
else:
    Employee = object  # FastAPI only needs the dependency, never the annotation's class

bearer = HTTPBearer(auto_error=False, description="the token from POST /api/v1/sessions")


async def current_app(request: Request) -> App:
    """The idrs application context the FastAPI app was created with."""
    return request.app.state.app  # type: ignore[no-any-return]


get_app = current_app


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def bearer_token(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    """The raw bearer token, or None (research records unauthenticated calls itself)."""
    return creds.credentials if creds is not None else None


def current_employee(
    request: Request,
    app: Annotated[App, Depends(current_app)],
    token: Annotated[str | None, Depends(bearer_token)],
) -> Employee:
    """The employee behind the bearer token; AccessDenied (→ 401) otherwise."""
    return auth.authenticate(app, token, interface="api", address=client_address(request))


AppDep = Annotated[App, Depends(current_app)]
EmployeeDep = Annotated[Employee, Depends(current_employee)]
TokenDep = Annotated[str | None, Depends(bearer_token)]


def role_rule(roles: Iterable[str]) -> dict[str, Any]:
    """``openapi_extra`` declaring that a route needs one of ``roles`` (a people.roles group)."""
    return {"x-authorization": "role:" + ",".join(sorted(roles))}


def require_roles(employee: Employee, roles: frozenset[str], what: str) -> None:
    """AccessDenied NOT_IN_PROFILE unless ``employee`` holds one of ``roles``."""
    from idrs.errors import AccessDenied, Reason

    if not (frozenset(employee.role_set) & roles):
        raise AccessDenied(
            [Reason("NOT_IN_PROFILE", f"{what} needs one of the roles " + ", ".join(sorted(roles)))]
        )
