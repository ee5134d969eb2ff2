"""The recorded origin is the real one: proxy headers count only from proxies the operator
named (``idrs serve --forwarded-allow-ips``), on SQLite and PostgreSQL.

The application is wrapped exactly as ``idrs serve`` has uvicorn wrap it (``uvicorn.Config``
with the options of ``idrs.cli.setup.uvicorn_options``), and called with a chosen peer
address; every check reads what the audit log recorded and what the per-address sign-in
limit did.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from idrs.api.app import create_app
from idrs.audit import service as audit_service
from idrs.audit.models import AuditEntry
from idrs.cli.setup import uvicorn_options
from tests import aio
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

SPOOFED = "203.0.113.77"
BAD_SIGNIN = {"seid": "NOONE1", "password": "x", "otp": "000000"}


def _served(app: Any, forwarded_allow_ips: str | None) -> Any:
    """The ASGI application uvicorn would run for ``idrs serve [--forwarded-allow-ips]``."""
    options = uvicorn_options("127.0.0.1", 0, forwarded_allow_ips=forwarded_allow_ips)
    config = uvicorn.Config(create_app(app), **options)
    config.load()
    return config.loaded_app


def _sign_in_as(asgi: Any, peer: str, forwarded: str | None) -> int:
    """One failed sign-in from ``peer`` with ``X-Forwarded-For: forwarded``; its status."""

    async def go() -> int:
        transport = httpx.ASGITransport(app=asgi, client=(peer, 40000))
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://idrs") as c:
            r = await c.post("/api/v1/sessions", json=BAD_SIGNIN, headers=headers)
            return r.status_code

    return aio.run(go)


def _last_origin(app: Any) -> str | None:
    with app.engine.connect() as conn:
        leaf = conn.execute(
            select(AuditEntry.leaf_input).order_by(AuditEntry.idx.desc()).limit(1)
        ).scalar_one()
    return json.loads(bytes(leaf))["origin"]["address"]  # type: ignore[no-any-return]


def test_a_spoofed_forwarded_for_from_loopback_is_ignored_by_default(app):
    app.settings = app.settings.model_copy(update={"signin_rate": "2/60"})
    asgi = _served(app, None)
    assert _sign_in_as(asgi, "127.0.0.1", SPOOFED) == 401
    assert _last_origin(app) == "127.0.0.1"  # the peer, not the header
    # a new made-up origin each time does not reset the per-address limit: it is the peer's
    assert _sign_in_as(asgi, "127.0.0.1", "203.0.113.78") == 401
    size = audit_service.tree_size(app)
    assert _sign_in_as(asgi, "127.0.0.1", "203.0.113.79") == 429
    assert audit_service.tree_size(app) == size + 1  # the burst's first refusal
    assert _last_origin(app) == "127.0.0.1"


def test_a_named_proxy_is_believed_and_no_other_peer(app):
    app.settings = app.settings.model_copy(update={"signin_rate": "2/60"})
    asgi = _served(app, "10.0.0.2")
    assert _sign_in_as(asgi, "10.0.0.2", SPOOFED) == 401
    assert _last_origin(app) == SPOOFED  # the client the named proxy forwarded
    assert _sign_in_as(asgi, "10.0.0.3", "198.51.100.9") == 401  # not a named proxy
    assert _last_origin(app) == "10.0.0.3"
    # behind the proxy each client has its own per-address limit
    assert _sign_in_as(asgi, "10.0.0.2", SPOOFED) == 401
    assert _sign_in_as(asgi, "10.0.0.2", SPOOFED) == 429
    assert _sign_in_as(asgi, "10.0.0.2", "198.51.100.10") == 401
