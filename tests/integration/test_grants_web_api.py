"""Grants, agreements, training and clearance over HTTP and in the pages (SQLite and PostgreSQL).

The API: lists paged and scoped to what the caller may see, renewals, ending a grant,
agreement versions and their signatures, training and clearance records; who may do what;
bad input is a clear 4xx and changes nothing. The pages: a sponsor requests a grant, the
principal signs the agreement and attests training with one-time codes, an approver
approves; a wrong code keeps the session; forms need their CSRF field.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from idrs.api import middleware
from idrs.api.app import create_app
from idrs.audit.store import raw
from idrs.grants import service
from tests.integration import factories as f
from tests.integration.grants_world import World, make_world

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def w(app, monkeypatch) -> World:
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    return make_world(app, monkeypatch)


@pytest.fixture
def api(w):
    a = create_app(w.app)
    middleware.install(a)
    middleware.install_problem_handlers(a)
    return a


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _last_entry(app) -> dict:
    with raw(app.engine) as db:
        row = db.one("SELECT leaf_input FROM audit_entry ORDER BY idx DESC LIMIT 1")
    return json.loads(bytes(row[0]))


def _entry_types(app) -> list[str]:
    with raw(app.engine) as db:
        rows = db.execute("SELECT leaf_input FROM audit_entry ORDER BY idx").fetchall()
    return [json.loads(bytes(r[0]))["type"] for r in rows]


def _grant_count(w: World) -> int:
    return len(service.list_grants(w.app))


GRANT_BODY = {
    "principal": "DT001",
    "purpose": "modernization support",
    "basis": "IRC 6103(h)(1)",
    "commands": ["ENMOD"],
    "classes": ["identity"],
    "population": "cases",
    "days": 30,
}


# -- the API -----------------------------------------------------------------------------------


def test_grant_list_is_paged_and_scoped_to_the_caller(w, api):
    client = TestClient(api)
    for _ in range(3):
        w.request()
    po, ex, dt = w.token("PO001"), w.token("EX001"), w.token("DT001")
    r = client.post(
        "/api/v1/grants",
        json={**GRANT_BODY, "start": w.app.clock.now().date().isoformat()},
        headers=_h(ex),
    )
    assert r.status_code == 201, r.text
    mine = r.json()["grant_id"]

    assert client.get("/api/v1/grants").status_code == 401
    first = client.get("/api/v1/grants", params={"limit": 2}, headers=_h(po)).json()
    assert first["total"] == 4 and len(first["grants"]) == 2 and first["next_offset"] == 2
    assert first["grants"][0]["grant_id"] == mine  # newest first
    rest = client.get("/api/v1/grants", params={"limit": 2, "offset": 2}, headers=_h(po)).json()
    assert len(rest["grants"]) == 2 and rest["next_offset"] is None
    assert {g["grant_id"] for g in first["grants"] + rest["grants"]} == {
        g["grant_id"] for g in service.list_grants(w.app)
    }
    r = client.get("/api/v1/grants", params={"limit": 0}, headers=_h(po))
    assert r.status_code == 422 and "limit" in r.text
    r = client.get("/api/v1/grants", params={"state": "bogus"}, headers=_h(po))
    assert r.status_code == 422 and "state" in r.json()["error"]
    pending = client.get("/api/v1/grants", params={"state": "pending_approval"}, headers=_h(po))
    assert pending.json()["total"] == 4

    # an examiner sees only what they requested; the principal sees their grants
    own = client.get("/api/v1/grants", headers=_h(ex)).json()
    assert [g["grant_id"] for g in own["grants"]] == [mine] and own["total"] == 1
    assert client.get("/api/v1/grants", headers=_h(dt)).json()["total"] == 4
    other = next(g["grant_id"] for g in rest["grants"])
    r = client.get(f"/api/v1/grants/{other}", headers=_h(ex))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"
    assert r.json()["audit_index"] is not None
    assert _last_entry(w.app)["type"] == "access:route:deny"
    assert client.get(f"/api/v1/grants/{mine}", headers=_h(ex)).status_code == 200


def test_end_and_renew_a_grant(w, api):
    client = TestClient(api)
    gid = w.request()
    w.approve_both(gid)
    po, ex, dt = w.token("PO001"), w.token("EX001"), w.token("DT001")
    assert client.post(f"/api/v1/grants/{gid}/end", json={"reason": "x"}).status_code == 401
    r = client.post(f"/api/v1/grants/{gid}/end", json={"reason": "over"}, headers=_h(ex))
    assert r.status_code == 403
    r = client.post(f"/api/v1/grants/{gid}/end", json={"reason": ""}, headers=_h(po))
    assert r.status_code == 422 and "reason" in r.text
    r = client.post(f"/api/v1/grants/{gid}/end", json={"why": "over"}, headers=_h(po))
    assert r.status_code == 422  # unknown field
    assert service.show_grant(w.app, gid)["status"] == "approved"  # nothing changed
    r = client.post(f"/api/v1/grants/{gid}/end", json={"reason": "detail over"}, headers=_h(po))
    assert r.status_code == 200 and r.json()["status"] == "ended"
    r = client.post(f"/api/v1/grants/{gid}/renewals", json={}, headers=_h(dt))
    assert r.status_code == 409 and "ended" in r.json()["error"]

    g2 = w.request()
    w.approve_both(g2)
    before = _grant_count(w)
    r = client.post(f"/api/v1/grants/{g2}/renewals", json={"days": 500}, headers=_h(dt))
    assert r.status_code == 422 and "renewal" in r.json()["error"]
    r = client.post(f"/api/v1/grants/{g2}/renewals", json={}, headers=_h(ex))
    assert r.status_code == 403  # neither principal, requester nor staff
    assert _grant_count(w) == before
    r = client.post(f"/api/v1/grants/{g2}/renewals", json={"days": 60}, headers=_h(dt))
    assert r.status_code == 201, r.text
    renewal = r.json()
    shown = service.show_grant(w.app, g2)
    assert renewal["status"] == "pending_approval" and renewal["start"] == shown["end"]
    assert renewal["term_days"] == 60
    again = service.show_grant(w.app, renewal["grant_id"])
    assert again["renewal_of"] == g2 and again["commands"] == shown["commands"]
    w.approve_both(renewal["grant_id"])
    r = client.post(f"/api/v1/grants/{renewal['grant_id']}/renewals", json={}, headers=_h(dt))
    assert r.status_code == 422 and "renewable once" in r.json()["error"]


def test_agreement_versions_and_signatures(w, api):
    client = TestClient(api)
    po, ex, dt, ao = (w.token(s) for s in ("PO001", "EX001", "DT001", "AO001"))
    listed = client.get("/api/v1/agreements", headers=_h(ex)).json()
    assert listed["total"] == 1 and listed["agreements"][0]["version"] == 1
    title = listed["agreements"][0]["title"]

    r = client.post("/api/v1/agreements", json={"title": title, "text": "v2"}, headers=_h(ex))
    assert r.status_code == 403 and _last_entry(w.app)["type"] == "access:route:deny"
    r = client.post("/api/v1/agreements", json={"title": title, "text": ""}, headers=_h(po))
    assert r.status_code == 422
    r = client.post("/api/v1/agreements", json={"title": title, "text": "   "}, headers=_h(po))
    assert r.status_code == 422 and "empty" in r.json()["error"]
    assert client.get("/api/v1/agreements", headers=_h(po)).json()["total"] == 1

    r = client.post(
        "/api/v1/agreements",
        json={"title": title, "text": "I keep return information confidential. (v2)\n"},
        headers=_h(po),
    )
    assert r.status_code == 201 and r.json()["version"] == 2
    v2 = r.json()["agreement_id"]
    assert client.get("/api/v1/agreements", headers=_h(dt)).json()["total"] == 2
    current = client.get("/api/v1/agreements", params={"current": True}, headers=_h(dt)).json()
    assert [a["agreement_id"] for a in current["agreements"]] == [v2]

    old = client.get(f"/api/v1/agreements/{w.agreement_id}", headers=_h(dt)).json()
    assert old["current"] is False and "authorized" in old["text"]
    r = client.post(
        f"/api/v1/agreements/{w.agreement_id}/signatures",
        json={"otp": w.otp("DT001")},
        headers=_h(dt),
    )
    assert r.status_code == 409 and "not the current" in r.json()["error"]
    r = client.post(
        f"/api/v1/agreements/{v2}/signatures", json={"otp": w.otp("DT001")}, headers=_h(dt)
    )
    assert r.status_code == 201
    mine = client.get(f"/api/v1/agreements/{v2}", headers=_h(dt)).json()
    assert mine["signed_by_you"] is True and mine["signatures"] == 1
    assert client.get(f"/api/v1/agreements/{v2}/signatures", headers=_h(dt)).status_code == 403
    sigs = client.get(f"/api/v1/agreements/{v2}/signatures", headers=_h(ao)).json()
    assert [s["seid"] for s in sigs["signatures"]] == ["DT001"] and sigs["total"] == 1
    assert client.get("/api/v1/agreements/999", headers=_h(dt)).status_code == 404


def test_training_and_clearance_records(w, api):
    client = TestClient(api)
    dt, sa, ex = w.token("DT001"), w.token("SA001"), w.token("EX001")
    own = client.get("/api/v1/training/attestations", headers=_h(dt)).json()
    assert own["seid"] == "DT001" and own["current"] is False and own["attestations"] == []
    r = client.get("/api/v1/training/attestations", params={"seid": "EX001"}, headers=_h(dt))
    assert r.status_code == 403
    r = client.post("/api/v1/training/records", json={"seid": "DT001"}, headers=_h(ex))
    assert r.status_code == 403
    r = client.post("/api/v1/training/records", json={"seid": "NOBODY"}, headers=_h(sa))
    assert r.status_code == 404
    r = client.post("/api/v1/training/records", json={"seid": "DT001"}, headers=_h(sa))
    assert r.status_code == 201, r.text
    seen = client.get("/api/v1/training/attestations", params={"seid": "dt001"}, headers=_h(sa))
    body = seen.json()
    assert body["current"] is True and len(body["attestations"]) == 1
    assert body["attestations"][0]["with_code"] is False and body["valid_until"]

    # a wrong code: 403 (401 would say the session is gone; it is not, it keeps working)
    r = client.post("/api/v1/training/attestations", json={"otp": "000000"}, headers=_h(dt))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "AUTH_FAILED"
    assert len(client.get("/api/v1/training/attestations", headers=_h(dt)).json()["attestations"]) == 1

    r = client.post("/api/v1/clearances", json={"seid": "DT001"}, headers=_h(ex))
    assert r.status_code == 403
    r = client.post("/api/v1/clearances", json={"seid": "SA001"}, headers=_h(sa))
    assert r.status_code == 422 and "own clearance" in r.json()["error"]
    r = client.post("/api/v1/clearances", json={"seid": "DT001", "note": "DOE Q"}, headers=_h(sa))
    assert r.status_code == 201 and r.json()["verified_by"] == "SA001"
    mine = client.get("/api/v1/clearances", headers=_h(dt)).json()
    assert mine["total"] == 1 and mine["clearances"][0]["note"] == "DOE Q"
    assert client.get("/api/v1/clearances", params={"seid": "DT001"}, headers=_h(ex)).status_code == 403


def test_export_register_entry_and_outstanding_alerts(w, api):
    client = TestClient(api)
    ex, dt, ao, po = (w.token(s) for s in ("EX001", "DT001", "AO001", "PO001"))
    f.open_case(w.app, "EX001", f.CARTER, "C-1")
    r = client.post(
        "/api/v1/exports",
        json={"command": "ENMOD", "tins": [f.CARTER], "format": "csv", "case": "C-1"},
        headers=_h(ex),
    )
    assert r.status_code == 201, r.text
    eid = r.json()["export_id"]
    shown = client.get(f"/api/v1/exports/{eid}", headers=_h(ex)).json()
    assert shown["holder"] == "EX001" and shown["taxpayers"] == 1
    assert f.CARTER not in json.dumps(shown) and f.CARTER.replace("-", "") not in json.dumps(shown)
    assert client.get(f"/api/v1/exports/{eid}", headers=_h(dt)).status_code == 403
    assert client.get(f"/api/v1/exports/{eid}", headers=_h(ao)).status_code == 200
    assert client.get("/api/v1/exports/..%2F..%2Fetc%2Fpasswd", headers=_h(ao)).status_code == 404

    assert client.post("/api/v1/grants/outstanding-alerts", headers=_h(ex)).status_code == 403
    r = client.post("/api/v1/grants/outstanding-alerts", headers=_h(po))
    assert r.status_code == 200 and r.json()["alerts"] == [] and r.json()["total"] == 0


# -- the pages -------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:300]
    return m.group(1)


def _browser(api, w: World, seid: str) -> TestClient:
    c = TestClient(api)
    page = c.get("/signin")
    r = c.post(
        "/signin",
        data={
            "csrf": _csrf(page.text),
            "seid": seid,
            "password": w.creds[seid]["password"],
            "otp": w.otp(seid),
            "next": "/grants",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return c


def test_grant_requested_signed_attested_and_approved_in_the_pages(w, api):
    sponsor = _browser(api, w, "EX001")
    form = sponsor.get("/grants/new")
    assert form.status_code == 200 and 'for="n-principal"' in form.text
    token = _csrf(form.text)
    fields = {
        "principal": "DT001",
        "purpose": "<script>alert(1)</script> data migration",
        "basis": "IRC 6103(n)",
        "commands": ["ENMOD", "IMFOL"],
        "classes": ["identity", "return"],
        "population": "cases",
        "start": w.app.clock.now().date().isoformat(),
        "agreement": "",
    }
    before = _grant_count(w)
    r = sponsor.post("/grants/new", data={**fields, "days": "30"})  # no CSRF field
    assert r.status_code == 403 and _grant_count(w) == before
    r = sponsor.post("/grants/new", data={"csrf": token, **fields, "days": "500"})
    assert r.status_code == 422 and "renewal" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert(1)" not in r.text
    assert _grant_count(w) == before
    r = sponsor.post(
        "/grants/new", data={"csrf": token, **fields, "days": "30"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    gid = int(r.headers["location"].split("/")[2].split("?")[0])
    g = service.show_grant(w.app, gid)
    assert g["commands"] == ["ENMOD", "IMFOL"] and g["classes"] == ["identity", "return"]
    assert g["requested_by"] == "EX001" and g["status"] == "pending_approval"
    listing = sponsor.get("/grants")
    assert f"Grant {gid}" in listing.text

    # the principal reads and signs the agreement, then attests training, with fresh codes
    principal = _browser(api, w, "DT001")
    shown = principal.get(f"/grants/{gid}")
    assert "read and sign the agreement" in shown.text
    page = principal.get(f"/agreements/{w.agreement_id}")
    assert "authorized" in page.text and "sign version 1" in page.text
    token = _csrf(page.text)
    r = principal.post(f"/agreements/{w.agreement_id}/sign", data={"csrf": token, "otp": "000000"})
    assert r.status_code == 403 and "not accepted" in r.text
    assert principal.get("/training").status_code == 200  # still signed in
    r = principal.post(
        f"/agreements/{w.agreement_id}/sign", data={"csrf": token, "otp": w.otp("DT001")}
    )
    assert r.status_code == 200 and "You signed this version" in r.text
    r = principal.post("/training/attest", data={"csrf": token, "otp": w.otp("DT001")})
    assert r.status_code == 200 and "current" in r.text and "NOT current" not in r.text
    prereq = service.show_grant(w.app, gid)["prerequisites"]
    assert prereq["agreement_signed"] and prereq["training_current"]
    # nobody but the authors adds an agreement version; the refusal is recorded
    r = principal.post("/agreements", data={"csrf": token, "title": "X", "text": "Y"})
    assert r.status_code == 403 and "NOT_IN_PROFILE" in r.text
    assert _last_entry(w.app)["type"] == "access:route:deny"

    # an approver approves in the page (a wrong code first: refused, still signed in)
    officer = _browser(api, w, "PO001")
    token = _csrf(officer.get(f"/grants/{gid}").text)
    r = officer.post(f"/grants/{gid}/approve", data={"csrf": token, "otp": "000000"})
    assert r.status_code == 403 and "not accepted" in r.text
    r = officer.post(f"/grants/{gid}/approve", data={"csrf": token, "otp": w.otp("PO001")})
    assert r.status_code == 200 and "Recorded" in r.text
    assert [a["seid"] for a in service.show_grant(w.app, gid)["approvals"]] == ["PO001"]
    # the sponsor may not approve (the service refuses and records it)
    token = _csrf(sponsor.get(f"/grants/{gid}").text)
    r = sponsor.post(f"/grants/{gid}/approve", data={"csrf": token, "otp": w.otp("EX001")})
    assert r.status_code == 403
    assert "grants:grant:approve" in _entry_types(w.app)


def test_training_page_staff_records_and_renewal_in_the_page(w, api):
    gid = w.request()
    w.approve_both(gid)
    admin = _browser(api, w, "SA001")
    page = admin.get("/training", params={"seid": "DT001"})
    assert page.status_code == 200 and "NOT current" in page.text
    token = _csrf(page.text)
    r = admin.post("/training/record", data={"csrf": token, "seid": "DT001", "what": "clearance",
                                             "note": "<b>Q</b> clearance"})
    assert r.status_code == 200 and "&lt;b&gt;Q&lt;/b&gt; clearance" in r.text
    r = admin.post("/training/record", data={"csrf": token, "seid": "DT001", "what": "nonsense"})
    assert r.status_code == 422
    examiner = _browser(api, w, "EX001")
    assert examiner.get("/training", params={"seid": "DT001"}).status_code == 403
    token = _csrf(examiner.get("/training").text)
    r = examiner.post("/training/record", data={"csrf": token, "seid": "DT001", "what": "training"})
    assert r.status_code == 403

    principal = _browser(api, w, "DT001")
    page = principal.get(f"/grants/{gid}")
    assert "Request renewal" in page.text
    token = _csrf(page.text)
    before = _grant_count(w)
    r = principal.post(f"/grants/{gid}/renew", data={"csrf": token, "days": "900"})
    assert r.status_code == 422 and _grant_count(w) == before
    r = principal.post(f"/grants/{gid}/renew", data={"csrf": token, "days": "60"})
    assert r.status_code == 200 and "renews" in r.text and _grant_count(w) == before + 1
