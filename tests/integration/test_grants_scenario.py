"""The seed scenario of issue 6, end to end through the HTTP API and research.run.

An outside engineer detailed for 120 days: approval not yet given on a Sunday night →
GRANT_PENDING_APPROVAL; approved, agreement unsigned → AGREEMENT_NOT_SIGNED; signed →
allowed within scope (population all: no case), refused outside it (OUT_OF_SCOPE); an export
under the grant; day 121 → GRANT_EXPIRED and "exports outstanding"; the export certified
destroyed; the oversight report generated. Time comes from the injected FakeClock.

Needs the grant facts and policies wired into the decision point (see the grants report).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

from fastapi.testclient import TestClient

from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.grants import exports, service
from idrs.oversight import render, report
from tests.integration import factories as f
from tests.integration.grants_world import OPERATOR, make_world

SUNDAY_NIGHT = datetime(2026, 3, 8, 22, 30, tzinfo=UTC)
MONDAY = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
DAY_121 = datetime(2026, 7, 6, 9, 0, tzinfo=UTC)  # 2026-03-08 + 120 days
IDENTITY = ["900-12-3456", "900123456", "Carter", "12 Elm St", "Dayton", "45402", "1980-02-01"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _codes(r) -> list[str]:
    assert r.status_code == 403, r.text
    return [x["code"] for x in r.json()["reasons"]]


def test_the_seed_scenario(app, monkeypatch):
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    w = make_world(app, monkeypatch)
    client = TestClient(create_app(app))
    app.clock.set(SUNDAY_NIGHT)
    w.train("DT001")
    service.verify_clearance(app, seid="DT001", by="SA001", actor=OPERATOR)
    gid = w.request(
        start=date(2026, 3, 8),
        days=120,
        commands="ENMOD,IMFOL",
        classes="identity,return",
        population="all",
    )
    dt = w.token("DT001")
    enmod = f"/api/v1/accounts/{f.CARTER}/ENMOD"

    # Sunday night: not yet approved
    assert "GRANT_PENDING_APPROVAL" in _codes(client.get(enmod, headers=_bearer(dt)))

    # Monday: two approvals from two roles, each with a re-entered one-time code
    app.clock.set(MONDAY)
    po, ao = w.token("PO001"), w.token("AO001")
    r = client.post(
        f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("PO001")}, headers=_bearer(po)
    )
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text
    r = client.post(
        f"/api/v1/grants/{gid}/approvals", json={"otp": w.otp("AO001")}, headers=_bearer(ao)
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert client.get(f"/api/v1/grants/{gid}", headers=_bearer(dt)).json()["status"] == "active"

    # approved, agreement unsigned
    codes = _codes(client.get(enmod, headers=_bearer(dt)))
    assert "AGREEMENT_NOT_SIGNED" in codes and "GRANT_PENDING_APPROVAL" not in codes

    r = client.post(
        f"/api/v1/agreements/{w.agreement_id}/signatures",
        json={"otp": w.otp("DT001")},
        headers=_bearer(dt),
    )
    assert r.status_code == 201, r.text

    # signed: allowed within scope (no case needed: population all), refused outside it
    r = client.get(enmod, headers=_bearer(dt))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["filing_status_history"][0]["filing_status"] == "MFJ"
    codes = _codes(
        client.get(f"/api/v1/accounts/{f.CARTER}/RTVUE", params={"year": 2023}, headers=_bearer(dt))
    )
    assert "OUT_OF_SCOPE" in codes

    r = client.post(
        "/api/v1/exports",
        json={"command": "IMFOL", "tins": [f.CARTER], "format": "csv"},
        headers=_bearer(dt),
    )
    assert r.status_code == 201, r.text
    export_id = r.json()["export_id"]
    assert r.json()["grant_id"] == gid
    assert exports.read_watermark(base64.b64decode(r.json()["content"])) == export_id

    # day 121
    app.clock.set(DAY_121)
    assert "GRANT_EXPIRED" in _codes(client.get(enmod, headers=_bearer(dt)))
    shown = client.get(f"/api/v1/grants/{gid}", headers=_bearer(dt)).json()
    assert shown["status"] == "expired" and shown["exports_outstanding"] is True

    r = client.post(
        f"/api/v1/exports/{export_id}/destruction",
        json={"method": "cross-cut shredded", "witness_seid": "SA001"},
        headers=_bearer(dt),
    )
    assert r.status_code == 200 and r.json()["status"] == "destroyed", r.text
    assert service.show_grant(app, gid)["exports_outstanding"] is False

    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    pot = rep["potential"][0]
    assert pot["seid"] == "DT001" and pot["kind"] == "detailee"
    assert [a["role"] for a in pot["grants"][0]["approvals"]] == [
        "privacy_officer",
        "authorizing_official",
    ]
    act = rep["actual"]["principals"][0]
    assert act["accesses_by_command"].get("ENMOD") == 1
    for code in ("GRANT_PENDING_APPROVAL", "AGREEMENT_NOT_SIGNED", "OUT_OF_SCOPE", "GRANT_EXPIRED"):
        assert act["denials_by_reason"].get(code, 0) >= 1, code
    assert rep["actual"]["exports"][0]["destroyed"] is True
    for fmt in ("json", "html", "csv"):
        blob = render.render(rep, fmt)
        assert not any(i.encode() in blob for i in IDENTITY), fmt
    assert render.render(rep, "pdf").startswith(b"%PDF")
    assert json.loads(render.render(rep, "json"))["checkpoint"]["tree_size"] > 0
