"""The hardening middleware and the problem+json helpers, on a tiny in-memory app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from idrs.api import middleware
from idrs.errors import AccessDenied, IdrsError, Reason


def _client(**kw) -> TestClient:
    api = FastAPI()

    @api.get("/ping")
    def ping(request: Request) -> dict[str, str]:
        return {"rid": request.state.request_id}

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    @api.get("/deny")
    def deny() -> None:
        raise AccessDenied([Reason("NO_BUSINESS_NEED", "no case")], 7)

    @api.get("/bad")
    def bad() -> None:
        raise IdrsError("bad input")

    middleware.install(api, **kw)
    middleware.install(api, **kw)  # idempotent
    middleware.install_problem_handlers(api)
    return TestClient(api, raise_server_exceptions=False)


def test_security_headers_and_request_id():
    c = _client()
    r = c.get("/ping")
    assert r.status_code == 200
    h = r.headers
    assert h["x-request-id"] == r.json()["rid"] and len(h["x-request-id"]) == 32
    assert "script-src 'self'" in h["content-security-policy"]
    assert "unsafe-inline" not in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in h  # plain HTTP: no HSTS


def test_hsts_only_over_tls_and_client_request_id_kept_when_safe():
    c = TestClient(_client().app, base_url="https://testserver")
    r = c.get("/ping", headers={"X-Request-ID": "abc-12345678"})
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert r.headers["x-request-id"] == "abc-12345678"
    r = c.get("/ping", headers={"X-Request-ID": "bad id\r\nx"})
    assert r.headers["x-request-id"] != "bad id\r\nx"


def test_body_limit_by_length_and_by_stream():
    c = _client(max_body=100)
    assert c.post("/echo", content=b"x" * 100).json() == {"n": 100}
    r = c.post("/echo", content=b"x" * 101)
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413 and r.headers["x-request-id"]

    def chunks():
        for _ in range(5):
            yield b"y" * 40

    r = c.post("/echo", content=chunks())
    assert r.status_code == 413


def test_problem_json_keeps_the_contract_keys():
    c = _client()
    r = c.get("/deny")
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["decision"] == "deny" and body["audit_index"] == 7
    assert body["reasons"] == [{"code": "NO_BUSINESS_NEED", "message": "no case"}]
    assert body["status"] == 403 and body["request_id"] == r.headers["x-request-id"]
    r = c.get("/bad")
    assert r.status_code == 400 and r.json()["error"] == "bad input"
    r = c.get("/nowhere")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
