"""Weekly reports, certification, detection runs, the taxpayer's accounting and the §7431(e)
notice over HTTP, and their pages (SQLite and PostgreSQL).

A unit U1 with a manager and an examiner who looked up their own account (refused:
CONFLICT_SELF) and, on a case, a taxpayer's (allowed); the examiner's alert is referred and
investigated; a proposed adverse action issues the taxpayer's notice, which is listed and
downloaded (the notice route itself only retries). Refusals by role, pagination, bad
input → a clear 4xx and nothing changed.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idrs import research
from idrs.api import middleware
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.store import raw
from idrs.db import session_scope
from idrs.detection.models import Alert, TaxpayerNotice, WeeklyReport
from idrs.errors import AccessDenied
from idrs.identifiers import normalize_tin
from idrs.people import auth, totp
from idrs.people import service as people
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"
EX_TIN = "900-40-0201"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
WEEK = "2026-03-02"  # the Monday of the fake clock's week
#: seid → (roles, unit)
STAFF = {
    "MG1": ("manager", "U1"),
    "EX1": ("examiner", "U1"),
    "CS1": ("csr", "U1"),
    "MG2": ("manager", "U2"),
    "PA1": ("privacy_analyst", "PRIV"),
    "PO1": ("privacy_officer", "PRIV"),
    "AU1": ("auditor", "PRIV"),
    "SI1": ("security_admin", "PRIV"),
}


class World:
    def __init__(self, app) -> None:
        self.app = app
        self.creds: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, str] = {}

    def code(self, seid: str) -> str:
        self.app.clock.advance(seconds=30)
        return totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())

    def h(self, seid: str) -> dict[str, str]:
        if seid not in self.tokens:
            self.tokens[seid] = auth.sign_in(
                self.app, seid, self.creds[seid]["password"], self.code(seid), "api"
            ).token
        return {"Authorization": f"Bearer {self.tokens[seid]}"}


@pytest.fixture
def w(app) -> World:
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "U2", "PRIV"):
        people.create_unit(app, unit, actor=OP)
    world = World(app)
    for n, (seid, (roles, unit)) in enumerate(STAFF.items()):
        world.creds[seid] = people.create_employee(
            app,
            unax_attested_at=app.clock.now(),
            seid=seid,
            name=f"Person {seid}",
            tin=EX_TIN if seid == "EX1" else f"900-40-03{n:02d}",
            roles=roles,
            unit=unit,
            actor=OP,
        )
    return world


@pytest.fixture
def client(w):
    api = create_app(w.app)
    middleware.install(api)
    middleware.install_problem_handlers(api)
    return TestClient(api)


def _research(w: World, tin: str, case: str | None = None, seid: str = "EX1") -> int:
    token = w.h(seid)["Authorization"].split()[1]
    try:
        return research.run(
            w.app, token=token, command="ENMOD", tin=tin, case=case, interface="api"
        ).audit_index
    except AccessDenied as exc:
        assert exc.audit_index is not None
        return exc.audit_index


def _types(app) -> list[str]:
    with raw(app.engine) as db:
        rows = db.execute("SELECT leaf_input FROM audit_entry ORDER BY idx").fetchall()
    return [json.loads(bytes(r[0]))["type"] for r in rows]


def _count(app, model) -> int:
    with session_scope(app.engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_weekly_report_certified_by_the_units_manager(w, client):
    _research(w, EX_TIN)  # own account: refused, CONFLICT_SELF
    url = "/api/v1/reports/weekly"
    assert client.get(url, params={"unit": "U1"}).status_code == 401
    assert client.get(url, params={"unit": "U1"}, headers=w.h("CS1")).status_code == 403
    r = client.get(url, params={"unit": "U1"}, headers=w.h("MG2"))  # another unit's manager
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"
    assert _count(w.app, WeeklyReport) == 0
    r = client.get(url, params={"unit": "U1"}, headers=w.h("MG1"))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["week_start"] == WEEK and rep["certified_by"] is None
    own = rep["report"]["conflict_refusals"]["own"]
    assert [i["seid"] for i in own] == ["EX1"] and "CONFLICT_SELF" in own[0]["reasons"]
    assert client.get(url, params={"unit": "U1", "week": "2026-03-05"}, headers=w.h("PA1")).json()[
        "week_start"
    ] == WEEK
    r = client.get(url, params={"unit": "NOPE"}, headers=w.h("PA1"))
    assert r.status_code == 404
    r = client.get(url, params={"unit": "U1", "week": "2099-01-05"}, headers=w.h("PA1"))
    assert r.status_code == 400 and "has not begun" in r.json()["error"]
    r = client.get(url, params={"unit": "U1", "week": "not-a-date"}, headers=w.h("PA1"))
    assert r.status_code == 422 and "week" in r.text

    rate = "/api/v1/reports/certification-rate"
    assert client.get(rate, headers=w.h("MG1")).status_code == 403
    before = client.get(rate, headers=w.h("AU1")).json()
    assert before["reports"] == 1 and before["rate"] == 0.0 and before["total"] == 1
    assert before["not_certified"] == [{"unit": "U1", "week_start": WEEK, "managers": ["MG1"]}]

    cert = f"/api/v1/reports/weekly/U1/{WEEK}/certification"
    assert client.post(cert).status_code == 401
    assert client.post(cert, headers=w.h("EX1")).status_code == 403  # not a manager
    r = client.post(cert, headers=w.h("MG2"))  # a manager, of another unit
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"
    assert client.post("/api/v1/reports/weekly/U1/2026-02-23/certification",
                       headers=w.h("MG1")).status_code == 404
    assert client.post("/api/v1/reports/weekly/U1/someday/certification",
                       headers=w.h("MG1")).status_code == 422
    assert client.get(rate, headers=w.h("AU1")).json()["certified"] == 0  # nothing changed
    r = client.post(cert, headers=w.h("MG1"))
    assert r.status_code == 200 and r.json()["certified_by"] == "MG1"
    assert "detect:report:certify" in _types(w.app)
    assert client.post(cert, headers=w.h("MG1")).status_code == 409
    after = client.get(rate, headers=w.h("PO1")).json()
    assert after["rate"] == 1.0 and after["not_certified"] == [] and after["next_offset"] is None

    _research(w, EX_TIN)  # a later refusal does not change a certified report
    frozen = client.get(url, params={"unit": "U1"}, headers=w.h("MG1")).json()
    assert frozen["certified_by"] == "MG1" and len(frozen["report"]["conflict_refusals"]["own"]) == 1

    hist = "/api/v1/reports/weekly/history"
    mine = client.get(hist, headers=w.h("MG1")).json()
    assert [(r["unit"], r["certified_by"]) for r in mine["reports"]] == [("U1", "MG1")]
    assert client.get(hist, headers=w.h("MG2")).json()["total"] == 0
    assert client.get(hist, params={"unit": "U1"}, headers=w.h("MG2")).status_code == 403
    client.get(url, params={"unit": "U2"}, headers=w.h("PA1"))
    everyone = client.get(hist, params={"limit": 1}, headers=w.h("AU1")).json()
    assert everyone["total"] == 2 and len(everyone["reports"]) == 1 and everyone["next_offset"] == 1


def _referred_alert(w: World, client: TestClient) -> str:
    """EX1 opened the Carters' account on a case; an analyst refers an alert citing it."""
    f.open_case(w.app, "EX1", f.CARTER, "C-9")
    idx = _research(w, f.CARTER, case="C-9")
    pseud = w.app.keyring.pseudonym(normalize_tin(f.CARTER))
    now = w.app.clock.now()
    with session_scope(w.app.engine) as s:
        s.add(Alert(alert_id="A700001", seid="EX1", unit="U1", day=now.date(), score=9.0,
                    category="curiosity", signals="[]", audit_indexes=json.dumps([idx]),
                    taxpayers=json.dumps([pseud]), state="open", created_at=now,
                    updated_at=now))
    return "A700001"


def test_notice_produced_listed_and_downloaded(w, client):
    aid = _referred_alert(w, client)
    notice = f"/api/v1/alerts/{aid}/notice"
    assert client.post(notice).status_code == 401
    assert client.post(notice, headers=w.h("EX1")).status_code == 403
    r = client.post(notice, headers=w.h("PA1"))  # not referred yet: no notice is due
    assert r.status_code == 400 and "no notice is due" in r.json()["error"]
    assert _count(w.app, TaxpayerNotice) == 0
    assert client.post(f"/api/v1/alerts/{aid}/assign", headers=w.h("PA1")).status_code == 200
    r = client.post(f"/api/v1/alerts/{aid}/refer", json={"note": "to TIGTA"}, headers=w.h("PA1"))
    assert r.status_code == 200 and r.json()["state"] == "referred"
    # issue 16.4: a referral is not the statute's trigger (it was, before): still none due
    r = client.post(notice, headers=w.h("PO1"))
    assert r.status_code == 400 and "no notice is due" in r.json()["error"]
    assert _count(w.app, TaxpayerNotice) == 0

    # the investigation records a proposed adverse action: the notice is issued then
    case = f"/api/v1/investigations/INV-{aid}"
    assert client.post(f"{case}/open", json={"reason": "taken"},
                       headers=w.h("SI1")).status_code == 200
    assert client.post(f"{case}/outcomes", json={"outcome": "substantiated", "reason": "pretext"},
                       headers=w.h("SI1")).status_code == 201
    r = client.post(f"{case}/outcomes", json={"outcome": "adverse_action_proposed",
                                              "reason": "suspension proposed"},
                    headers=w.h("SI1"))
    assert r.status_code == 201, r.text
    sent = r.json()["notices"]["sent"]
    assert len(sent) == 1 and sent[0]["taxpayer"] == w.app.keyring.pseudonym(normalize_tin(f.CARTER))
    nid = sent[0]["notice_id"]
    assert "taxpayer:notice:send" in _types(w.app) and _count(w.app, TaxpayerNotice) == 1
    r = client.post(notice, headers=w.h("PA1"))
    assert r.status_code == 409 and _count(w.app, TaxpayerNotice) == 1

    assert client.get("/api/v1/notices", headers=w.h("AU1")).status_code == 403
    listed = client.get("/api/v1/notices", headers=w.h("PA1")).json()
    assert listed["total"] == 1 and listed["notices"][0]["notice_id"] == nid
    assert f.CARTER not in json.dumps(listed)
    assert client.get("/api/v1/notices", params={"alert": "A1"}, headers=w.h("PA1")).json()[
        "total"
    ] == 0

    pdf = client.get(f"/api/v1/notices/{nid}/pdf", headers=w.h("PA1"))
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="notice-{nid}.pdf"'
    html = client.get(f"/api/v1/notices/{nid}/html", headers=w.h("PO1"))
    assert html.status_code == 200 and "7431" in html.text and "civil action" in html.text
    assert "Carter" in html.text  # the letter is addressed to the taxpayer
    assert _types(w.app).count("taxpayer:notice:read") == 2
    assert client.get(f"/api/v1/notices/{nid}/pdf", headers=w.h("AU1")).status_code == 403
    assert client.get("/api/v1/notices/999/pdf", headers=w.h("PA1")).status_code == 404
    assert client.get(f"/api/v1/notices/{nid}/exe", headers=w.h("PA1")).status_code == 422
    r = client.get("/api/v1/notices/..%2F..%2Fetc%2Fpasswd/pdf", headers=w.h("PA1"))
    assert r.status_code in (404, 422)


def test_accounting_detection_run_and_oversight_report(w, client):
    f.open_case(w.app, "EX1", f.CARTER, "C-9")
    _research(w, f.CARTER, case="C-9")
    _research(w, f.CARTER, case="C-9")
    _research(w, f.CARTER, seid="CS1")  # no case, no contact: refused
    url = f"/api/v1/taxpayers/{f.CARTER}/accesses"
    assert client.get(url, headers=w.h("MG1")).status_code == 403
    r = client.get(url, params={"limit": 1}, headers=w.h("AU1"))
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 2 and len(body["openings"]) == 1 and body["next_offset"] == 1
    assert body["refused_attempts"] == 1 and body["openings"][0]["unit"] == "U1"
    assert "EX1" not in json.dumps(body)
    r = client.get("/api/v1/taxpayers/12345/accesses", headers=w.h("AU1"))
    assert r.status_code == 422 and "tin" in r.json()["error"]

    runs = "/api/v1/detection/runs"
    assert client.post(runs, json={}, headers=w.h("MG1")).status_code == 403
    r = client.post(runs, json={"since": "2099-01-01T00:00:00+00:00"}, headers=w.h("PA1"))
    assert r.status_code == 400 and "future" in r.json()["error"]
    r = client.post(runs, json={}, headers=w.h("PA1"))
    assert r.status_code == 200 and r.json()["summary"]["entries_read"] > 0
    assert {"alerts", "total", "next_offset"} <= set(r.json())
    assert "detect:run:complete" in _types(w.app)

    rep = "/api/v1/oversight/report"
    assert client.get(rep, params={"seids": "EX1"}, headers=w.h("MG1")).status_code == 403
    assert client.get(rep, params={"seids": "EX1", "format": "exe"},
                      headers=w.h("AU1")).status_code == 422
    r = client.get(rep, params={"seids": "EX1", "format": "json"}, headers=w.h("AU1"))
    assert r.status_code == 200 and r.json()["scope"]["seids"] == ["EX1"]
    assert "oversight:report:generate" in _types(w.app)


# -- the pages -----------------------------------------------------------------------------------


def _browser(client: TestClient, w: World, seid: str) -> TestClient:
    page = client.get("/signin")
    r = client.post(
        "/signin",
        data={
            "csrf": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
            "seid": seid,
            "password": w.creds[seid]["password"],
            "otp": w.code(seid),
            "next": "/research",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


def _fresh(w: World) -> TestClient:
    api = create_app(w.app)
    middleware.install(api)
    return TestClient(api)


def test_report_pages(w):
    _research(w, EX_TIN)
    manager = _browser(_fresh(w), w, "MG1")
    page = manager.get("/reports/weekly")
    assert page.status_code == 200 and "not certified" in page.text and "own account" in page.text
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    assert manager.get("/reports/weekly", params={"unit": "U2"}).status_code == 403
    r = manager.post("/reports/weekly/certify", data={"unit": "U1", "week": WEEK})  # no CSRF
    assert r.status_code == 403
    r = manager.post("/reports/weekly/certify", data={"csrf": token, "unit": "U1", "week": WEEK})
    assert r.status_code == 200 and "Certified and recorded" in r.text and "by MG1" in r.text
    assert manager.get("/reports/certification-rate").status_code == 403

    auditor = _browser(_fresh(w), w, "AU1")
    r = auditor.get("/reports/certification-rate")
    assert r.status_code == 200 and "<strong>1</strong> of <strong>1</strong>" in r.text
    assert auditor.get("/reports/weekly", params={"week": "bad"}).status_code == 422
    token = CSRF.search(auditor.get("/taxpayers").text).group(1)  # type: ignore[union-attr]
    r = auditor.post("/taxpayers", data={"csrf": token, "tin": "<script>"})
    assert r.status_code == 422 and "<script>" not in r.text
    assert auditor.get("/notices").status_code == 403

    analyst = _browser(_fresh(w), w, "PA1")
    page = analyst.get("/notices")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    r = analyst.post("/notices", data={"csrf": token, "alert": "A404404"})
    assert r.status_code == 404 and "no alert" in r.text
    assert _count(w.app, TaxpayerNotice) == 0
