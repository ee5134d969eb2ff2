"""HTTP rate limits on sign-in and research: token buckets kept in the process.

What is limited (the rates are settings, ``COUNT/SECONDS`` or ``off``; see idrs.config):

- sign-in, ``POST /api/v1/sessions`` and the web form ``POST /signin``: per client address
  (``IDRS_SIGNIN_RATE``, default 60 a minute) and per SEID named in the body
  (``IDRS_SIGNIN_SEID_RATE``, default 10 a minute). A brute force meets these long before
  anything else; the account lockout (``IDRS_LOCKOUT_THRESHOLD``) still counts the failures
  that get through. The first refusal of a streak is recorded in the audit log as
  ``auth:signin:failure`` with reason ``RATE_LIMITED`` (detail ``why: throttled``, ``limit:
  address|seid``); the refusals that follow in the same streak are not, so a flood cannot
  fill the log.
- research, ``GET /api/v1/accounts/{tin}/{command}``, ``GET /api/v1/names`` and the web
  prompt ``POST /research``: per sign-in session (the bearer token or the session cookie;
  per client address for calls without one), ``IDRS_RESEARCH_RATE`` (default 600 a minute:
  a burst of 600, then 10 a second). The load benchmark sets ``IDRS_RESEARCH_RATE=off``.

A refused request is answered before any handler runs (nothing read, nothing written but the
one trip entry): 429 ``application/problem+json`` with ``Retry-After`` (whole seconds) and the
denial's contract keys ``decision``, ``reasons`` (``RATE_LIMITED``) and ``audit_index``
(the trip entry, or null); the web pages get a short HTML page instead. This is separate from
the daily ceiling of distinct taxpayers per employee (``idrs.access.ratelimit``), which is an
access decision (403, recorded with every research call).

Buckets live in the memory of one process (one per ``create_app``); with several server
processes each has its own, so the effective limit is the rate times the process count.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio

from idrs.config import parse_rate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/v1"
SESSION_COOKIE = "idrs_session"  # idrs.web.security.SESSION_COOKIE
#: Largest sign-in body read to find the SEID (the form and the JSON are far smaller).
MAX_SIGNIN_BODY = 16 * 1024
RATE_LIMITED = "RATE_LIMITED"
#: the settings' rate strings, parsed once each (they are read on every limited request)
_rate = functools.lru_cache(maxsize=64)(parse_rate)


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    tripped: bool = False


@dataclass(frozen=True)
class Verdict:
    """``wait`` seconds until the next request would be allowed (0: allowed now);
    ``first_trip``: this refusal starts a streak (the one to record)."""

    wait: float
    first_trip: bool = False

    @property
    def allowed(self) -> bool:
        return self.wait <= 0


class Limiter:
    """Token buckets by key: ``capacity`` requests, refilled evenly over ``period`` seconds.

    Thread-safe; memory is bounded by ``max_keys`` (full buckets, which carry no state, are
    dropped first).
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str], capacity: int, period: float) -> Verdict:
        rate = capacity / period
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._prune(now, rate)
                bucket = self._buckets[key] = _Bucket(float(capacity), now)
            else:
                bucket.tokens = min(float(capacity), bucket.tokens + (now - bucket.stamp) * rate)
                bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.tripped = False
                return Verdict(0.0)
            first = not bucket.tripped
            bucket.tripped = True
            return Verdict((1.0 - bucket.tokens) / rate, first_trip=first)

    def _prune(self, now: float, rate: float) -> None:
        def full(b: _Bucket) -> bool:
            return not b.tripped and now - b.stamp > 3600

        keep = {k: b for k, b in self._buckets.items() if not full(b)}
        if len(keep) >= self._max_keys:  # still full: start over rather than grow
            keep = {}
        self._buckets = keep

    def __len__(self) -> int:
        return len(self._buckets)


# -- which requests are limited ----------------------------------------------------------


def classify(method: str, path: str) -> tuple[str, str] | None:
    """(kind, interface) of a limited request: ("signin"|"research", "api"|"web"), or None."""
    if method == "POST":
        if path == f"{API_PREFIX}/sessions":
            return "signin", "api"
        if path == "/signin":
            return "signin", "web"
        if path == "/research":
            return "research", "web"
        return None
    if method in ("GET", "HEAD"):
        if path == f"{API_PREFIX}/names":
            return "research", "api"
        if path.startswith(f"{API_PREFIX}/accounts/"):
            parts = path[len(API_PREFIX) + 1 :].split("/")
            if len(parts) == 3 and all(parts):  # accounts/{tin}/{command}
                return "research", "api"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def _session_key(scope: Scope) -> str | None:
    """A digest of the request's session token (bearer or cookie), never the token."""
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return _digest(token.strip())
    cookies = _header(scope, b"cookie")
    if cookies:
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return _digest(value)
    return None


def _seid_of(body: bytes, interface: str) -> str | None:
    """The SEID a sign-in body names (JSON for the API, a form for the web), normalized."""
    raw: Any = None
    try:
        if interface == "api":
            data = json.loads(body)
            raw = data.get("seid") if isinstance(data, dict) else None
        else:
            values = parse_qs(body.decode("utf-8"), max_num_fields=50).get("seid") or [""]
            raw = values[0]
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip().upper()[:16]


async def _read_body(receive: Receive) -> tuple[bytes, list[Message], bool]:
    """Read the request body (up to MAX_SIGNIN_BODY); the messages read, to replay them."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages, False
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, messages, True
        if len(body) > MAX_SIGNIN_BODY:
            return body, messages, False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _record_trip(app: Any, seid: str | None, interface: str, address: str | None,
                 limit: str, spec: str) -> int | None:
    """One ``auth:signin:failure`` entry (reason RATE_LIMITED) for the first refusal of a
    streak; its index, or None when the log cannot be written (the refusal stands)."""
    from idrs.audit.events import EventType
    from idrs.people import service

    actor = "invalid"
    if seid:
        with contextlib.suppress(Exception):
            actor = service.normalize_seid(seid)
    try:
        return service.record(
            app, EventType.AUTH_SIGNIN_FAILURE, actor=actor, interface=interface,
            address=address, outcome="failure", obj={"seid": actor},
            reasons=[RATE_LIMITED], detail={"why": "throttled", "limit": limit, "rate": spec},
        )
    except Exception:  # an unrecorded refusal is still a refusal
        return None


class ThrottleMiddleware:
    """The pure-ASGI middleware ``idrs.api.middleware.install`` adds (inside the hardening
    one, so refusals carry the request id and the security headers)."""

    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limiter = Limiter(clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = (
            classify(scope.get("method", ""), scope.get("path", ""))
            if scope["type"] == "http"
            else None
        )
        ctx = getattr(getattr(scope.get("app"), "state", None), "app", None)
        if kind is None or ctx is None:
            await self.app(scope, receive, send)
            return
        what, interface = kind
        settings = ctx.settings
        client = scope.get("client")
        address = client[0] if client else None
        addr_key = address or "unknown"
        if what == "research":
            rate = _rate(settings.research_rate)
            if rate is not None:
                session = _session_key(scope)
                key = ("research-session", session) if session else ("research-address", addr_key)
                verdict = self.limiter.take(key, *rate)
                if not verdict.allowed:
                    await self._refuse(scope, send, interface, verdict.wait, None,
                                       "too many research requests in this session")
                    return
            await self.app(scope, receive, send)
            return
        # sign-in: per address, then per SEID (the body is read once and replayed)
        addr_rate = _rate(settings.signin_rate)
        if addr_rate is not None:
            verdict = self.limiter.take(("signin-address", addr_key), *addr_rate)
            if not verdict.allowed:
                await self._refuse_signin(scope, send, ctx, interface, verdict, None, address,
                                          "address", settings.signin_rate)
                return
        seid_rate = _rate(settings.signin_seid_rate)
        if seid_rate is not None:
            body, messages, complete = await _read_body(receive)
            receive = _replay(messages, receive)
            seid = _seid_of(body, interface) if complete else None
            if seid is not None:
                verdict = self.limiter.take(("signin-seid", seid), *seid_rate)
                if not verdict.allowed:
                    await self._refuse_signin(scope, send, ctx, interface, verdict, seid,
                                              address, "seid", settings.signin_seid_rate)
                    return
        await self.app(scope, receive, send)

    async def _refuse_signin(self, scope: Scope, send: Send, ctx: Any, interface: str,
                             verdict: Verdict, seid: str | None, address: str | None,
                             limit: str, spec: str) -> None:
        index = None
        if verdict.first_trip:
            index = await anyio.to_thread.run_sync(
                functools.partial(_record_trip, ctx, seid, interface, address, limit, spec)
            )
        what = "this address" if limit == "address" else "this account"
        await self._refuse(scope, send, interface, verdict.wait, index,
                           f"too many sign-in attempts from {what}")

    @staticmethod
    async def _refuse(scope: Scope, send: Send, interface: str, wait: float,
                      audit_index: int | None, message: str) -> None:
        retry = max(1, math.ceil(wait))
        text = f"{message}; try again in {retry} s"
        rid = scope.get("state", {}).get("request_id")
        if interface == "api":
            body = json.dumps({
                "type": "about:blank", "title": "Too Many Requests", "status": 429,
                "detail": text, "request_id": rid, "decision": "deny",
                "reasons": [{"code": RATE_LIMITED, "message": text}],
                "audit_index": audit_index, "error": text, "retry_after": retry,
            }).encode()
            ctype = b"application/problem+json"
        else:
            body = (
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<title>Too many requests - idrs</title>"
                "<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main>"
                f"<h1>Too many requests</h1><p>{text} (RATE_LIMITED).</p>"
                "<p><a href=\"/signin\">Back</a></p></main></body></html>"
            ).encode()
            ctype = b"text/html; charset=utf-8"
        await send({
            "type": "http.response.start", "status": 429,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(retry).encode())],
        })
        await send({"type": "http.response.body", "body": body})
