"""The grants HTTP API: status codes, bad input, who may do what (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from idrs.api.app import create_app
from idrs.grants import exports
from tests.integration import factories as f
from tests.integration.grants_world import World, make_world


@pytest.fixture
def w(app, monkeypatch) -> World:
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    return make_world(app, monkeypatch)


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_grant_api(w):
    client = TestClient(create_app(w.app))
    po, po2, ao, ex = (w.token(s) for s in ("PO001", "PO002", "AO001", "EX001"))
    body = {
        "principal": "DT001",
        "purpose": "migration",
        "basis": "IRC 6103(n)",
        "commands": ["ENMOD"],
        "classes": ["identity"],
        "population": "anonymized",
        "start": w.app.clock.now().date().isoformat(),
        "days": 30,
    }
    assert client.post("/api/v1/grants", json=body).status_code == 401
    r = client.post("/api/v1/grants", json={**body, "days": 500}, headers=_h(ex))
    assert r.status_code == 422 and "renewal" in r.json()["error"]
    r = client.post("/api/v1/grants", json=body, headers=_h(ex))
    assert r.status_code == 201, r.text
    gid = r.json()["grant_id"]
    assert r.json()["status"] == "pending_approval"
    assert client.get("/api/v1/grants/999", headers=_h(ex)).status_code == 404
    # a wrong code: refused (403, not 401: the session is fine) and recorded, nothing approved
    r = client.post(f"/api/v1/grants/{gid}/approvals", json={"otp": "123456"}, headers=_h(po))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "AUTH_FAILED"
    assert r.json()["decision"] == "deny" and r.json()["audit_index"] is not None
    assert "WWW-Authenticate" not in r.headers
    assert client.get(f"/api/v1/grants/{gid}", headers=_h(po)).json()["approvals"] == []
    r = client.post(f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("EX001")}, headers=_h(ex))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"
    # the role is checked before the grant is looked up: no 404 tells a stranger what exists
    for path, body in (("approvals", {"otp": "123456"}), ("revocation", {"reason": "x"}),
                       ("end", {"reason": "x"})):
        r = client.post(f"/api/v1/grants/999/{path}", json=body, headers=_h(ex))
        assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE", path
        r = client.post(f"/api/v1/grants/999/{path}", json=body, headers=_h(po))
        assert r.status_code == 404, (path, r.text)
    r = client.post(f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("PO001")}, headers=_h(po))
    assert r.status_code == 200 and r.json()["status"] == "pending_approval"
    r = client.post(
        f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("PO002")}, headers=_h(po2)
    )
    assert r.status_code == 409  # a second approval by the same role
    r = client.post(f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("AO001")}, headers=_h(ao))
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = client.post(f"/api/v1/grants/{gid}/revocation", json={"reason": "x"}, headers=_h(ex))
    assert r.status_code == 403
    r = client.post(f"/api/v1/grants/{gid}/revocation", json={"reason": "done"}, headers=_h(ao))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert client.get(f"/api/v1/grants/{gid}", headers=_h(ex)).json()["status"] == "revoked"


def test_agreement_training_export_api(w):
    client = TestClient(create_app(w.app))
    dt, ex, sa = w.token("DT001"), w.token("EX001"), w.token("SA001")
    r = client.post(
        "/api/v1/agreements/999/signatures", json={"otp": w.otp("DT001")}, headers=_h(dt)
    )
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/agreements/{w.agreement_id}/signatures",
        json={"otp": w.otp("DT001")},
        headers=_h(dt),
    )
    assert r.status_code == 201 and len(r.json()["sha256"]) == 64
    r = client.post(
        f"/api/v1/agreements/{w.agreement_id}/signatures", json={"otp": "000000"}, headers=_h(ex)
    )
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "AUTH_FAILED"
    r = client.post("/api/v1/training/attestations", json={"otp": w.otp("EX001")}, headers=_h(ex))
    assert r.status_code == 201, r.text
    f.open_case(w.app, "EX001", f.CARTER, "C-1")
    # without a session, bad input is still 401 (authenticated before the input is read)
    for body in ({"command": "ENMOD", "tins": [f.CARTER], "format": "xlsx"},
                 {"command": "NOPE", "tins": ["not a tin"]}, {}):
        r = client.post("/api/v1/exports", json=body)
        assert r.status_code == 401 and r.json()["reasons"][0]["code"] == "AUTH_REQUIRED", body
    r = client.post("/api/v1/exports", json={"command": "NOPE", "tins": [f.CARTER]},
                    headers=_h(ex))
    assert r.status_code == 422 and "command" in r.json()["error"]
    r = client.post(
        "/api/v1/exports",
        json={"command": "ENMOD", "tins": [f.CARTER], "format": "pdf", "case": "C-1"},
        headers=_h(ex),
    )
    assert r.status_code == 201, r.text
    eid = r.json()["export_id"]
    assert r.headers["X-Idrs-Export-Id"] == eid
    assert exports.read_watermark(base64.b64decode(r.json()["content"])) == eid
    r = client.post(
        "/api/v1/exports/X-0000000000000000/destruction",
        json={"method": "shredded", "witness_seid": "SA001"},
        headers=_h(ex),
    )
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/exports/{eid}/destruction",
        json={"method": "shredded", "witness_seid": "PO001"},
        headers=_h(sa),
    )
    assert r.status_code == 403  # only the holder certifies
    r = client.post(
        f"/api/v1/exports/{eid}/destruction",
        json={"method": "shredded", "witness_seid": "SA001"},
        headers=_h(ex),
    )
    assert r.status_code == 200 and r.json()["status"] == "destroyed"
