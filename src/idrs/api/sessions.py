"""``POST /api/v1/sessions`` (sign in) and ``DELETE /api/v1/sessions/current`` (sign out).

201 ``{"token", "expires_at", "ended_previous"}``; 401 on bad credentials (never saying
which part was wrong), and exactly the same 401 when the account is locked (the lock shows
in the security administrator's view and the audit entry, never to the caller); every
attempt is recorded by people.auth. 429 with ``Retry-After`` when the address or the SEID
has tried too often (``idrs.api.throttle``; the burst is recorded).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from idrs.api.deps import AppDep, TokenDep, client_address
from idrs.api.middleware import problem_responses
from idrs.api.throttle import signin_limits
from idrs.people import auth, systems

router = APIRouter(tags=["sessions"])


class SignInBody(BaseModel):
    seid: str = Field(min_length=1, max_length=16)
    password: str = Field(min_length=1, max_length=200)
    otp: str = Field(min_length=1, max_length=10)


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    #: an older session of this employee was ended by this sign-in
    ended_previous: bool


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="Sign in (password + TOTP code)",
    responses=problem_responses(401, 413, 415, 422, 429, 503),
    openapi_extra={"x-authorization": "public"},
    dependencies=[Depends(signin_limits)],
)
def sign_in(body: SignInBody, request: Request, app: AppDep) -> SessionOut:
    token, expires, ended = auth.sign_in(
        app, body.seid, body.password, body.otp, "api", client_address(request)
    )
    return SessionOut(token=token, expires_at=expires, ended_previous=ended)


class SystemSignInBody(BaseModel):
    system: str = Field(min_length=1, max_length=40)
    secret: str = Field(min_length=1, max_length=200)


class SystemSessionOut(BaseModel):
    token: str
    expires_at: datetime
    system: str
    kind: str


@router.post(
    "/system-sessions",
    status_code=201,
    response_model=SystemSessionOut,
    summary="A machine principal signs in (its name and secret; no TOTP)",
    responses=problem_responses(401, 413, 415, 422, 429, 503),
    openapi_extra={"x-authorization": "public"},
    dependencies=[Depends(signin_limits)],
)
def system_sign_in(body: SystemSignInBody, request: Request, app: AppDep) -> SystemSessionOut:
    """401 AUTH_FAILED, never saying which part was wrong; every attempt is recorded
    (``auth:system:success|failure``). The token is unknown to every employee route."""
    out = systems.start_session(
        app, name=body.system, secret=body.secret, interface="api", address=client_address(request)
    )
    return SystemSessionOut(**out)


@router.delete(
    "/sessions/current",
    status_code=204,
    summary="Sign out",
    responses=problem_responses(401),
    openapi_extra={"x-authorization": "signed-in"},
)
def sign_out(request: Request, app: AppDep, token: TokenDep) -> Response:
    if not auth.sign_out(app, token, interface="api", address=client_address(request)):
        auth.authenticate(app, token, interface="api")  # raises the right 401
    return Response(status_code=204)
