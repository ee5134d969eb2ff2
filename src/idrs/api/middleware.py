"""HTTP hardening for the API and the pages: headers, request ids, body limit, problem+json.

``install(api)`` adds one pure-ASGI middleware (it never buffers responses) that

- sets the request's origin address for the audit entries made while answering it
  (``idrs.audit.events.request_address``: the peer, or the client a named proxy forwarded);
- gives every answer an ``X-Request-ID`` (the client's, when it is a short safe token, else
  a new random one), also available to handlers as ``request.state.request_id``;
- refuses a request body larger than ``max_body`` bytes with 413 (by Content-Length before
  reading, and while streaming for chunked bodies), before any handler runs;
- adds the security headers: a Content-Security-Policy with no inline script (unless the
  route set its own), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``frame-ancestors 'none'``, ``Referrer-Policy: no-referrer``, ``Cross-Origin-Opener-Policy``,
  ``Permissions-Policy``, ``Cache-Control: no-store`` on everything but static files, and
  ``Strict-Transport-Security`` only when the request came over TLS.

- answers an exception no handler caught with 500 ``application/problem+json`` (the request
  id in the body, nothing of the exception) and lets it propagate to the server's log.

The sign-in and research rate limits (429) are ``idrs.api.throttle``: dependencies of those
routes, installed by create_app; their answers pass through this middleware like any other.

``problem(...)`` builds an RFC 9457 ``application/problem+json`` answer;
``install_problem_handlers(api)`` answers IdrsError / AccessDenied / validation errors /
HTTP errors in that format, keeping the contract's keys (``decision``, ``reasons``,
``audit_index`` for a denial; ``error`` for other refusals) as extension members:

- a denial: 401 (AUTH_* / SESSION_EXPIRED only, with ``WWW-Authenticate: Bearer``), 503
  (AUDIT_UNAVAILABLE: the log could not be written, e.g. the database lock was not had in
  ``IDRS_DB_LOCK_TIMEOUT`` seconds), else 403, the daily ceiling's RATE_LIMITED included (an access decision,
  recorded; the HTTP throttle's 429 is another thing);
- 404 unknown route, 405 wrong method (with ``Allow``), 413 body too large, 415 a JSON body
  sent with another content type, 422 a body or parameter that does not validate or JSON that
  does not parse, each problem named ``body.seid: Field required`` in ``problems`` and
  ``error``; 503 a database that cannot be reached or locked (no driver text); 500 anything
  unexpected. No 5xx answer echoes an exception's text: it names the request id only.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from idrs.audit.events import request_address
from idrs.errors import AccessDenied, IdrsError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"
DEFAULT_MAX_BODY = 1024 * 1024
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's interactive docs page loads Swagger UI from a CDN with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ReasonOut(BaseModel):
    code: str
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details) with the contract's keys as extensions."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    #: every refusal that is not an access decision: the one-line message
    error: str | None = None
    #: each input problem as ``field: reason``
    problems: list[str] | None = None
    #: an access decision: "deny", its reason codes and the audit entry that records it
    decision: str | None = None
    reasons: list[ReasonOut] | None = None
    audit_index: int | None = None
    #: 429 only: seconds to wait (also the Retry-After header)
    retry_after: int | None = None


_WHEN = {
    400: "bad input (a TIN, a command code, a parameter), nothing done",
    401: "no valid session: send Authorization: Bearer TOKEN (reasons AUTH_REQUIRED, "
    "AUTH_FAILED or SESSION_EXPIRED)",
    403: "refused: decision deny with reason codes (and the audit index when recorded)",
    404: "not found",
    409: "conflict with the current state",
    413: "the request body is too large",
    415: "a JSON body sent with another content type",
    422: "a parameter or body field does not validate (each named in problems)",
    503: "the audit log cannot be written now (AUDIT_UNAVAILABLE) or the database is busy",
    429: "rate limited (RATE_LIMITED): wait Retry-After seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for routes: each status answered as application/problem+json."""
    return {
        status: {
            "model": Problem,
            "description": _WHEN.get(status, _STATUS_TITLES.get(status, "error")),
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """An ``application/problem+json`` answer (RFC 9457) with extension members."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _STATUS_TITLES.get(status, "Error"),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = bytes(value).decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
    return secrets.token_hex(16)


class _TooLarge(Exception):
    pass


async def _send_problem(send: Send, status: int, detail: str, rid: str, *, close: bool) -> None:
    """A problem+json answer sent straight over ASGI (no handler ran or could)."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": _STATUS_TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "request_id": rid,
            "error": detail,
        }
    ).encode()
    headers = [
        (b"content-type", PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HardeningMiddleware:
    """The pure-ASGI middleware ``install`` adds (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        docs_path: str = "/api/v1/docs",
        static_prefix: str = "/static/",
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.docs_path = docs_path
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        tls = scope.get("scheme") == "https"
        path = scope.get("path", "")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(list(message.get("headers", [])), rid, tls, path)
            await send(message)

        declared = self._content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._too_large(rid, send_with_headers)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        client = scope.get("client")
        try:
            # every audit entry made while answering carries the client's address
            with request_address(client[0] if client else None):
                await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not started:
                await self._too_large(rid, send_with_headers)
        except Exception:
            if not started:
                await self._server_error(rid, send_with_headers)
            raise

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def _too_large(self, rid: str, send: Send) -> None:
        detail = f"the request body exceeds {self.max_body} bytes"
        await _send_problem(send, 413, detail, rid, close=True)

    @staticmethod
    async def _server_error(rid: str, send: Send) -> None:
        detail = "the server failed to answer; the request id identifies it in the server log"
        await _send_problem(send, 500, detail, rid, close=False)

    def _headers(
        self, headers: list[tuple[bytes, bytes]], rid: str, tls: bool, path: str
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}

        def add(name: str, value: str) -> None:
            if name.encode() not in present:
                headers.append((name.encode(), value.encode()))

        add("x-request-id", rid)
        add("content-security-policy", DOCS_CSP if path == self.docs_path else CSP)
        add("x-content-type-options", "nosniff")
        add("x-frame-options", "DENY")
        add("referrer-policy", "no-referrer")
        add("cross-origin-opener-policy", "same-origin")
        add("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()")
        # answers may hold taxpayer data: never cached; the static files are public and fixed
        add(
            "cache-control",
            "public, max-age=3600" if path.startswith(self.static_prefix) else "no-store",
        )
        if tls:
            add("strict-transport-security", HSTS)
        return headers


def install(api: FastAPI, *, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Add the hardening middleware to ``api`` once (call from create_app, before serving)."""
    if getattr(api.state, "idrs_hardening", False):
        return
    docs = f"{api.docs_url}" if api.docs_url else "/api/v1/docs"
    api.add_middleware(HardeningMiddleware, max_body=max_body, docs_path=docs)
    api.state.idrs_hardening = True


# -- problem+json error handlers (optional; keep the contract's keys) ----------------------


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _denied(request: Request, exc: Exception) -> JSONResponse:
    from idrs.api.app import denial_status

    assert isinstance(exc, AccessDenied)
    status = denial_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(
        status,
        "; ".join(r.message for r in exc.reasons),
        request_id=_rid(request),
        headers=headers,
        decision="deny",
        reasons=[r.as_dict() for r in exc.reasons],
        audit_index=exc.audit_index,
    )


#: what a 5xx answer says instead of the exception's own text (which may name tables,
#: statements, file paths or values): the request id finds the rest in the server log
UNAVAILABLE = "the service cannot answer now; the request id identifies it in the server log"


def public_message(exc: IdrsError, request_id: str | None = None) -> str:
    """The message an answer may carry for ``exc``: its own for a refusal (4xx, written for
    the caller), a fixed sentence for a server-side failure (5xx: logged, never echoed)."""
    if exc.status_code < 500:
        return str(exc)
    _log.warning("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
    return UNAVAILABLE


def _error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdrsError)
    message = public_message(exc, _rid(request))
    extra: dict[str, Any] = {"error": message}
    problems = getattr(exc, "problems", None)
    if problems and exc.status_code < 500:
        extra["problems"] = list(problems)
    return problem(exc.status_code, message, request_id=_rid(request), **extra)


def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    """The net under the input bounds (``idrs.api.bounds``): a number or date that slipped
    past them and overflowed further in is the caller's bad input, 422, never a 500."""
    _log.warning("request %s: a value out of range got past validation", _rid(request),
                 exc_info=exc)
    msg = "a number or date in the request is out of range"
    return problem(422, "the request does not validate", request_id=_rid(request), error=msg,
                   problems=[f"request: {msg}"])


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached or whose lock was not had in time: 503, no text of
    the driver's (it names statements and values)."""
    _log.warning("request %s: database unavailable: %s", _rid(request), type(exc).__name__)
    return problem(503, UNAVAILABLE, request_id=_rid(request), error=UNAVAILABLE,
                   headers={"Retry-After": "1"})


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _describe(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        why = (error.get("ctx") or {}).get("error", "invalid JSON")
        where = loc[1] if len(loc) > 1 else "?"
        return f"body: the JSON does not parse at character {where}: {why}"
    return f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}"


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if (
        body_errors
        and isinstance(exc.body, bytes | bytearray)
        and exc.body
        and not _is_json(request.headers.get("content-type"))
    ):
        # A JSON route was sent another media type (a form, text): say so, not "invalid".
        sent = request.headers.get("content-type") or "no Content-Type"
        msg = f"the body must be application/json, not {sent}"
        return problem(415, msg, request_id=_rid(request), error=msg, problems=[f"body: {msg}"])
    problems = [_describe(e) for e in errors]
    return problem(
        422,
        "the request does not validate",
        request_id=_rid(request),
        error="; ".join(problems[:5]),
        problems=problems,
    )


#: FastAPI's answer to a body it cannot decode (bytes that are not UTF-8 under a JSON type)
_UNREADABLE_BODY = "There was an error parsing the body"


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 400 and detail == _UNREADABLE_BODY:
        # the same answer as any other malformed JSON
        msg = "body: the JSON does not parse (it is not UTF-8 text)"
        return problem(422, "the request does not validate", request_id=_rid(request),
                       error=msg, problems=[msg])
    return problem(
        exc.status_code,
        detail,
        request_id=_rid(request),
        headers=dict(exc.headers) if exc.headers else None,
        error=detail,
    )


def install_problem_handlers(api: FastAPI) -> None:
    """Answer every error of ``api`` as problem+json (denials keep decision/reasons/audit_index)."""
    api.add_exception_handler(AccessDenied, _denied)
    api.add_exception_handler(IdrsError, _error)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(StarletteHTTPException, _http)
    # the database's own errors, wrapped by SQLAlchemy or straight from the driver (the hot
    # paths talk to it directly)
    from idrs.context import unavailable_errors

    for unavailable in unavailable_errors():
        api.add_exception_handler(unavailable, _unavailable)
    api.add_exception_handler(OverflowError, _out_of_range)
