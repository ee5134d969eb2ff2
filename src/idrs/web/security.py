"""Cookie sessions and CSRF protection of the web interface.

The session cookie holds the same session token as the API (``people.auth.sign_in`` with
interface ``web``): HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it), Secure when served over TLS.

CSRF (synchronizer token): every form carries a hidden ``csrf`` field. Signed in, its value
is a keyed HMAC of the session token (``keyring.blind_index(token, "web-csrf")``), so it
needs no storage and dies with the session; before sign-in (the sign-in form itself) it is
a random value also set in an HttpOnly cookie (double submit). A POST whose field does not
match is refused with 403 before anything is read or changed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request, Response

from idrs.context import App
from idrs.crypto import random_token
from idrs.errors import AccessDenied, Reason
from idrs.people import auth

if TYPE_CHECKING:  # the HTTP layer names the model for type checking only (service path)
    from idrs.people.models import Employee

SESSION_COOKIE = "idrs_session"
PRE_CSRF_COOKIE = "idrs_csrf"
CSRF_FIELD = "csrf"
BAD_CSRF = Reason("CSRF_FAILED", "this form is stale or did not come from idrs; nothing was done")


class CsrfFailed(AccessDenied):
    """The form's CSRF token is missing or wrong (403, nothing done)."""


@dataclass(frozen=True)
class WebUser:
    """The signed-in employee of one request, with the token and the form token."""

    employee: Employee
    token: str
    csrf: str

    @property
    def seid(self) -> str:
        return self.employee.seid

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.employee.role_set)


def app_of(request: Request) -> App:
    return request.app.state.app  # type: ignore[no-any-return]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def session_csrf(app: App, token: str) -> str:
    return app.keyring.blind_index(token, "web-csrf").hex()


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=is_tls(request), path="/"
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="strict", secure=is_tls(request), path="/"
    )


def pre_csrf(request: Request) -> str:
    """The sign-in form's token: the cookie's value if it looks right, else a new one."""
    value = request.cookies.get(PRE_CSRF_COOKIE, "")
    if len(value) >= 32 and value.replace("-", "").replace("_", "").isalnum():
        return value
    return random_token(24)


def current_user(request: Request) -> WebUser:
    """The employee behind the session cookie; AccessDenied (AUTH_REQUIRED/SESSION_EXPIRED)."""
    app = app_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    emp = auth.authenticate(app, token, interface="web", address=client_address(request))
    assert token is not None
    return WebUser(emp, token, session_csrf(app, token))


def check_csrf(request: Request, submitted: str | None, user: WebUser | None) -> None:
    """Raise CsrfFailed unless ``submitted`` matches this session's (or pre-session) token."""
    expected = user.csrf if user is not None else request.cookies.get(PRE_CSRF_COOKIE)
    if not submitted or not expected or not hmac.compare_digest(submitted, expected):
        raise CsrfFailed([BAD_CSRF])


def safe_next(target: str | None) -> str:
    """Only a local path is a valid place to return to after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/research"
