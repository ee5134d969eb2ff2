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

import asyncio
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
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
    """The peer's address as the server saw it: a proxy's ``X-Forwarded-For`` counts only
    when the operator named that proxy (``idrs serve --forwarded-allow-ips``)."""
    return request.client.host if request.client else None


T = TypeVar("T")


def research_pool(request: Request) -> anyio.CapacityLimiter:
    """The worker threads research calls run in: ``IDRS_RESEARCH_THREADS`` at once per
    process (one limiter per event loop; the calls beyond it queue)."""
    state = request.app.state
    pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None
    pools = getattr(state, "research_pools", None)
    if pools is None:
        pools = state.research_pools = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    pool = pools.get(loop)
    if pool is None:
        pool = pools[loop] = anyio.CapacityLimiter(state.app.settings.research_threads)
    return pool


async def run_research(request: Request, call: Callable[[], T]) -> T:
    """Run a research call (``idrs.research.run`` bound to its arguments) in the research
    pool. Its database calls block (a lock held by another process is waited for up to
    ``IDRS_DB_LOCK_TIMEOUT`` seconds): in a worker thread they never hold up the event loop,
    so every other route keeps answering. A fixed, small pool keeps the thread hand-off
    cheap (measured: bench/bench_http.py); FastAPI's default pool of 40 threads spent more
    CPU switching between them than on the research itself."""
    return await anyio.to_thread.run_sync(call, limiter=research_pool(request))


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


def system_principal(kinds: frozenset[str], what: str) -> Any:
    """A dependency: the machine principal behind the bearer token, of one of ``kinds``
    (``people.systems.authenticate``: 401 for a token it does not know, 403 WRONG_PRINCIPAL,
    recorded, for an employee's session or a machine of another kind)."""
    from idrs.people import systems

    def dependency(
        request: Request,
        app: Annotated[App, Depends(current_app)],
        token: Annotated[str | None, Depends(bearer_token)],
    ) -> systems.Principal:
        return systems.authenticate(
            app, token, kinds=kinds, what=what, interface="api", address=client_address(request)
        )

    return Depends(dependency)


def system_rule(kinds: Iterable[str]) -> dict[str, Any]:
    """``openapi_extra`` declaring that a route is for machine principals of ``kinds``."""
    return {"x-authorization": "system:" + ",".join(sorted(kinds))}


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
