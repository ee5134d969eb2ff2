"""HTTP rate limits on sign-in and research: ``limits`` moving windows behind FastAPI
dependencies.

What is limited (the rates are settings, ``COUNT/SECONDS`` or ``off``; see idrs.config):
at most COUNT requests in any SECONDS (``limits``' moving window, SECONDS rounded up to whole
seconds).

- sign-in, ``POST /api/v1/sessions`` and the web form ``POST /signin``
  (:func:`signin_limits`): per client address (``IDRS_SIGNIN_RATE``, default 60 a minute),
  then per SEID named in the body (``IDRS_SIGNIN_SEID_RATE``, default 10 a minute; the body
  FastAPI already read, never read again). Every SEID string is limited alike, whether or
  not such an employee exists.
- research, ``GET /api/v1/accounts/{tin}/{command}``, ``GET /api/v1/names`` (the
  dependency :func:`research_admit`, and :func:`research_refused` called by the route) and
  the web prompt ``POST /research`` (:func:`research_limits`, the two together), in this
  order:

  1. per client address, BEFORE the token is looked at: an address whose research calls
     were refused for want of a live session (no token, an unknown or expired one) more
     than ``IDRS_UNAUTHENTICATED_RATE`` times (default 10 a minute) is refused outright, so
     a flood of made-up tokens cannot fill the audit log (each unauthenticated research
     call is otherwise recorded by ``idrs.research.run``);
  2. per sign-in session (a digest of the bearer token or the session cookie; per client
     address for calls without one), ``IDRS_RESEARCH_RATE`` (default 600 a minute). The
     load benchmark sets ``IDRS_RESEARCH_RATE=off``.

A refused request is answered before its handler runs (nothing read, nothing written but
what is recorded below): 429 ``application/problem+json`` with ``Retry-After`` (whole
seconds until the window has room) and the denial's contract keys ``decision``, ``reasons``
(``RATE_LIMITED``) and ``audit_index``; the web pages get a short HTML page instead.

What is recorded: refusals come in bursts (one limit, one key: an address, a SEID, a
session). The first refusal of a burst is recorded at once (sign-in: ``auth:signin:failure``
with reason RATE_LIMITED, as every failed sign-in is; research:
``access:research:throttle``), and its index is the answer's ``audit_index``. The refusals
that follow are only counted; when the burst is over (a request under that limit was let
through, or a whole window passed without a refusal) ONE ``system:throttle:burst`` entry
records how many were refused and the first and last time. So a flood costs the log at most
two entries per burst, never one per request.

Counts live in ``IDRS_THROTTLE_STORAGE`` (a ``limits`` storage URI): ``memory://`` (the
default) is per process, so with several server processes each has its own windows and the
effective limit is the rate times the process count; ``redis://HOST:6379`` (or
``memcached://``) shares them between processes and hosts. Bursts are tracked per process.

This is separate from the daily ceiling of distinct taxpayers per employee
(``idrs.access.ratelimit``), which is an access decision (403, recorded with every call).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from idrs.audit import log as audit_log
from idrs.audit.events import EventType, make_event
from idrs.config import parse_rate
from idrs.context import App
from idrs.crypto import sha256_hex
from idrs.errors import AccessDenied

logger = logging.getLogger(__name__)

RATE_LIMITED = "RATE_LIMITED"
SESSION_COOKIE = "idrs_session"  # idrs.web.security.SESSION_COOKIE
UNAUTHENTICATED = frozenset({"AUTH_REQUIRED", "AUTH_FAILED", "SESSION_EXPIRED"})
#: how often ended bursts are looked for (and their summaries recorded)
FLUSH_SECONDS = 1.0
#: open bursts kept at most (a flood from ever new keys cannot grow memory without bound)
MAX_BURSTS = 10_000


@functools.lru_cache(maxsize=64)
def rate_item(spec: str) -> RateLimitItem | None:
    """The ``limits`` item of a rate setting (``COUNT/SECONDS``), or None for ``off``."""
    parsed = parse_rate(spec)
    if parsed is None:
        return None
    count, seconds = parsed
    return RateLimitItemPerSecond(count, max(1, math.ceil(seconds)))


@dataclass
class Burst:
    """Consecutive refusals under one limit for one key, as the audit log describes them."""

    limit: str
    key: str
    spec: str
    interface: str
    address: str | None
    actor: str
    first: datetime
    last: datetime
    refused: int = 1
    #: monotonic time from which the burst is over (moved on by every refusal)
    over_at: float = 0.0


class Throttle:
    """One application's limits (a moving-window limiter over one storage) and its open
    bursts. Thread-safe."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._bursts: dict[tuple[str, str], Burst] = {}
        self._lock = threading.Lock()

    def wait(self, limit: str, key: str, spec: str, *, consume: bool = True) -> float:
        """Seconds until a request under ``limit`` for ``key`` is allowed; 0.0 when it is
        allowed now (and then counted, unless ``consume`` is False)."""
        item = rate_item(spec)
        if item is None:
            return 0.0
        allowed = (
            self.limiter.hit(item, limit, key) if consume else self.limiter.test(item, limit, key)
        )
        if allowed:
            if self._bursts:
                self._let_through(limit, key)
            return 0.0
        reset = self.limiter.get_window_stats(item, limit, key).reset_time
        return max(1.0, reset - time.time())

    def count(self, limit: str, key: str, spec: str) -> None:
        """Count one request under ``limit`` without deciding anything by it."""
        item = rate_item(spec)
        if item is not None:
            self.limiter.hit(item, limit, key)

    def refused(self, burst: Burst) -> bool:
        """Note one refusal; True when it starts a burst (the refusal to record)."""
        item = rate_item(burst.spec)
        window = float(item.get_expiry()) if item is not None else 60.0
        with self._lock:
            open_ = self._bursts.get((burst.limit, burst.key))
            if open_ is not None:
                open_.refused += 1
                open_.last = burst.last
                open_.over_at = time.monotonic() + window
                return False
            if len(self._bursts) >= MAX_BURSTS:
                return True  # recorded alone, not tracked: memory stays bounded
            burst.over_at = time.monotonic() + window
            self._bursts[(burst.limit, burst.key)] = burst
            return True

    def _let_through(self, limit: str, key: str) -> None:
        with self._lock:
            open_ = self._bursts.get((limit, key))
            if open_ is not None:
                open_.over_at = 0.0

    def ended(self, *, everything: bool = False) -> list[Burst]:
        """Take the bursts that are over (all of them with ``everything``) and had more than
        their first refusal: the ones that need a summary."""
        now = time.monotonic()
        with self._lock:
            done = [k for k, b in self._bursts.items() if everything or b.over_at <= now]
            taken = [self._bursts.pop(k) for k in done]
        return [b for b in taken if b.refused > 1]


# -- what is recorded ----------------------------------------------------------------------


def _append(app: App, entry: dict[str, Any]) -> int | None:
    """Append one entry; None when the log cannot be written (the refusal stands)."""
    try:
        return audit_log.append(app.engine, entry)
    except Exception:  # noqa: BLE001 - an unrecorded refusal is still a refusal
        logger.warning("a throttled request could not be recorded", exc_info=True)
        return None


def record_first(app: App, burst: Burst) -> int | None:
    """The entry of a burst's first refusal (sign-in: auth:signin:failure RATE_LIMITED;
    research: access:research:throttle); its index."""
    detail = {"why": "throttled", "limit": burst.limit.split("-", 1)[-1], "rate": burst.spec}
    signin = burst.limit.startswith("signin")
    entry = make_event(
        EventType.AUTH_SIGNIN_FAILURE if signin else EventType.ACCESS_RESEARCH_THROTTLE,
        time=app.clock.now(),
        actor=burst.actor,
        outcome="failure" if signin else "deny",
        interface=burst.interface,
        address=burst.address,
        obj={"seid": burst.actor} if signin else _research_object(burst),
        reasons=[RATE_LIMITED],
        detail=detail,
    )
    return _append(app, entry)


def record_summary(app: App, burst: Burst) -> int | None:
    """The one ``system:throttle:burst`` entry of a burst that refused more than once."""
    entry = make_event(
        EventType.SYSTEM_THROTTLE_BURST,
        time=app.clock.now(),
        actor=burst.actor,
        outcome="deny",
        interface=burst.interface,
        address=burst.address,
        obj={"seid": burst.actor} if burst.limit == "signin-seid" else _research_object(burst),
        reasons=[RATE_LIMITED],
        detail={
            "limit": burst.limit,
            "rate": burst.spec,
            "refused": burst.refused,
            "first": burst.first.isoformat(timespec="microseconds"),
            "last": burst.last.isoformat(timespec="microseconds"),
        },
    )
    return _append(app, entry)


def _research_object(burst: Burst) -> dict[str, Any]:
    # a session is named by the first 16 hex digits of its token's SHA-256, the digest the
    # signin_session table keys it by: an auditor can find the employee, nobody the token
    return {"session": burst.key[:16]} if burst.limit == "research-session" else {}


def flush(app: App, throttle: Throttle, *, everything: bool = False) -> int:
    """Record the summaries of the bursts that are over; how many were recorded."""
    bursts = throttle.ended(everything=everything)
    for burst in bursts:
        record_summary(app, burst)
    return len(bursts)


# -- the dependencies ------------------------------------------------------------------------


class Throttled(Exception):
    """A request refused by a limit (answered 429 by :func:`answer`)."""

    def __init__(self, wait: float, message: str, audit_index: int | None) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(wait))
        self.message = message
        self.audit_index = audit_index


def _context(request: Request) -> tuple[App, Throttle]:
    state = request.app.state
    return state.app, state.throttle


def _interface(request: Request) -> str:
    return "api" if request.url.path.startswith("/api/") else "web"


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _refuse(request: Request, burst: Burst, wait: float, message: str) -> None:
    """Note the refusal, record it if it starts a burst, and raise Throttled."""
    app, throttle = _context(request)
    index = None
    if throttle.refused(burst):
        index = await anyio.to_thread.run_sync(record_first, app, burst)
    raise Throttled(wait, message, index)


def _burst(request: Request, limit: str, key: str, spec: str, actor: str) -> Burst:
    app = request.app.state.app
    now = app.clock.now()
    return Burst(limit, key, spec, _interface(request), _address(request), actor, now, now)


async def _seid_of(request: Request) -> str | None:
    """The SEID a sign-in body names (JSON for the API, a form for the web), normalized.
    The body is the one FastAPI (or the page) already read: Starlette keeps it."""
    try:
        body = await request.body()
        if _interface(request) == "api":
            data = json.loads(body)
            raw = data.get("seid") if isinstance(data, dict) else None
        else:
            raw = (parse_qs(body.decode("utf-8"), max_num_fields=50).get("seid") or [""])[0]
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip().upper()[:16]


def _safe_actor(seid: str | None) -> str:
    from idrs.people.service import normalize_seid

    try:
        return normalize_seid(seid or "")
    except Exception:  # noqa: BLE001 - any SEID that does not parse is named alike
        return "invalid"


async def signin_limits(request: Request) -> None:
    """Dependency of the sign-in routes (API and web): per address, then per SEID."""
    app, throttle = _context(request)
    settings = app.settings
    address = _address(request) or "unknown"
    wait = throttle.wait("signin-address", address, settings.signin_rate)
    if wait:
        seid = await _seid_of(request)
        burst = _burst(request, "signin-address", address, settings.signin_rate, _safe_actor(seid))
        await _refuse(request, burst, wait, "too many sign-in attempts from this address")
    seid = await _seid_of(request)
    if seid is None:
        return
    wait = throttle.wait("signin-seid", seid, settings.signin_seid_rate)
    if wait:
        burst = _burst(request, "signin-seid", seid, settings.signin_seid_rate, _safe_actor(seid))
        await _refuse(request, burst, wait, "too many sign-in attempts for this account")


def _session_key(request: Request) -> str | None:
    """The SHA-256 of the request's session token (bearer or cookie), never the token."""
    scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return sha256_hex(token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return sha256_hex(cookie) if cookie else None


async def research_admit(request: Request) -> None:
    """The research limits, checked before the call (see the module docstring): Throttled
    when the address has spent its unauthenticated calls (before the token is looked at) or
    the session (the address without one) calls faster than ``IDRS_RESEARCH_RATE``.

    A plain dependency of the API's research routes: with :func:`research_refused` called by
    the route when the call is refused for want of a live session, it does what
    :func:`research_limits` does without the cost of a generator dependency on the hot path.
    """
    app, throttle = _context(request)
    settings = app.settings
    address = _address(request) or "unknown"
    # 1. before the token is looked at: has this address spent its unauthenticated calls?
    wait = throttle.wait("unauthenticated", address, settings.unauthenticated_rate, consume=False)
    if wait:
        burst = _burst(request, "research-unauthenticated", address,
                       settings.unauthenticated_rate, "anonymous")
        await _refuse(request, burst, wait, "too many unauthenticated research calls from this "
                      "address")
    # 2. per session (per address without one)
    session = _session_key(request)
    limit, key = ("research-session", session) if session else ("research-address", address)
    wait = throttle.wait(limit, key, settings.research_rate)
    if wait:
        await _refuse(request, _burst(request, limit, key, settings.research_rate, "anonymous"),
                      wait, "too many research requests in this session")


def research_refused(request: Request, exc: AccessDenied) -> None:
    """Count a research call refused for want of a live session (no token, an unknown or
    expired one) against the caller's address (the unauthenticated limit)."""
    if exc.codes and set(exc.codes) <= UNAUTHENTICATED:
        app, throttle = _context(request)
        address = _address(request) or "unknown"
        throttle.count("unauthenticated", address, app.settings.unauthenticated_rate)


async def research_limits(request: Request) -> AsyncIterator[None]:
    """Dependency of the web research prompt: :func:`research_admit` before the call,
    :func:`research_refused` when it is refused for want of a live session."""
    await research_admit(request)
    try:
        yield
    except AccessDenied as exc:
        research_refused(request, exc)
        raise


# -- the answer, and the wiring ----------------------------------------------------------------


def answer(request: Request, exc: Exception) -> Response:
    """429 for a Throttled request: problem+json on the API, a short page on the web."""
    assert isinstance(exc, Throttled)
    retry = exc.retry_after
    text = f"{exc.message}; try again in {retry} s"
    headers = {"Retry-After": str(retry)}
    if _interface(request) == "api":
        body = {
            "type": "about:blank", "title": "Too Many Requests", "status": 429,
            "detail": text, "request_id": getattr(request.state, "request_id", None),
            "decision": "deny", "reasons": [{"code": RATE_LIMITED, "message": text}],
            "audit_index": exc.audit_index, "error": text, "retry_after": retry,
        }
        return JSONResponse(body, status_code=429, headers=headers,
                            media_type="application/problem+json")
    html = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Too many requests - idrs</title>"
        "<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main>"
        f"<h1>Too many requests</h1><p>{text} (RATE_LIMITED).</p>"
        "<p><a href=\"/signin\">Back</a></p></main></body></html>"
    )
    return HTMLResponse(html, status_code=429, headers=headers)


async def _flush_forever(app: App, throttle: Throttle) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        try:
            await anyio.to_thread.run_sync(functools.partial(flush, app, throttle))
        except Exception:  # noqa: BLE001 - a failed summary is retried with the next burst
            logger.warning("throttle summaries could not be recorded", exc_info=True)


def install(api: FastAPI) -> None:
    """Give ``api`` (create_app's, with ``api.state.app`` set) its throttle, the 429 answer,
    and a lifespan that records the summaries of ended bursts (every second, and all open
    ones at shutdown)."""
    app: App = api.state.app
    throttle = api.state.throttle = Throttle(app.settings.throttle_storage)
    api.add_exception_handler(Throttled, answer)
    previous: Callable[[Any], Any] = api.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        async with previous(asgi) as state:
            task = asyncio.get_running_loop().create_task(_flush_forever(app, throttle))
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await anyio.to_thread.run_sync(
                    functools.partial(flush, app, throttle, everything=True)
                )

    api.router.lifespan_context = lifespan
