"""Issue 13.2: a self-report never makes an alert go away (SQLite and PostgreSQL).

The suspect (EX1) opens a phone contact on Ann Carter themselves and looks once: a pretext
contact without follow-up, an alert. Then EX1 tries every way a self-report used to lower it:

- reports the (allowed) entry over the API: the alert keeps its score and stays open, and
  the next detection runs (all, and from the start again) leave it open with the same score;
- another employee (EX2) reports EX1's entry, over the API and the CLI: refused, and the
  attempt is recorded (``access:research:self-report`` with outcome ``deny``);
- the analyst sees the report beside the alert, in the API's JSON and on the alert page;
- the alert is closed only by the analyst with a reason: a dismissal without one is refused
  on the API, the page and the CLI, and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from idrs import research
from idrs.access import service as access
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.cli.people import write_token
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import service, triage
from idrs.detection.models import Alert, DetectionBasis, DetectionCursor, DetectionEmployeeDay
from idrs.detection.simulator import _start_session
from idrs.people import service as people
from idrs.people.models import Employee
from idrs.web.security import SESSION_COOKIE, session_csrf
from tests.integration import factories as f
from tests.integration.audit_helpers import all_leaves
from tests.integration.cli_helpers import run_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"


def _token(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


def _alert(app: App, seid: str) -> dict[str, Any]:
    with session_scope(app.engine) as s:
        rows = list(s.scalars(select(Alert).where(Alert.seid == seid)))
        assert len(rows) == 1, [(a.alert_id, a.state) for a in rows]
        return triage.alert_dict(rows[0]).as_dict()


@pytest.fixture
def world(app: App) -> App:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "PRIV"):
        people.create_unit(app, unit, actor=OP)
    for seid, roles, unit in (
        # a walk-in role: only they may declare a contact without an intake record (13.5)
        ("EX1", "csr", "U1"),
        ("EX2", "examiner", "U1"),
        ("PA1", "privacy_analyst", "PRIV"),
    ):
        people.create_employee(
            app,
            seid=seid,
            name=f"Person {seid}",
            tin=None,
            roles=roles,
            unit=unit,
            unax_attested_at=app.clock.now(),
            actor=OP,
        )
    return app


def _pretext_look(app: App) -> int:
    """EX1 opens a phone contact on Ann Carter and looks once; the entry's index."""
    access.open_contact(
        app,
        seid="EX1",
        tin=f.CARTER,
        contact_id="K-1",
        channel="phone",
        actor=Actor("EX1", "api"),
    )
    r = research.run(
        app, token=_token(app, "EX1"), command="ENMOD", tin=f.CARTER, contact="K-1", interface="api"
    )
    return int(r.audit_index)  # type: ignore[arg-type]


def test_a_self_report_never_lowers_dismisses_or_withdraws_an_alert(world: App, capsys) -> None:
    app = world
    idx = _pretext_look(app)
    service.run(app)
    before = _alert(app, "EX1")
    assert before["state"] == "open" and before["score"] >= 3.0 and idx in before["audit_indexes"]
    api = create_app(app)
    client = TestClient(api)
    ex1 = {"Authorization": f"Bearer {_token(app, 'EX1')}"}
    ex2 = {"Authorization": f"Bearer {_token(app, 'EX2')}"}
    pa1 = {"Authorization": f"Bearer {_token(app, 'PA1')}"}

    # someone else's entry: refused over the API, and the attempt is recorded
    r = client.post(
        "/api/v1/self-reports", headers=ex2, json={"audit_index": idx, "reason": "mine"}
    )
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NO_BUSINESS_NEED"
    # ... and over the CLI (the session saved where `idrs login` saves it)
    write_token(app.settings.home, _token(app, "EX2"))
    monkey = pytest.MonkeyPatch()
    monkey.setattr(App, "open", classmethod(lambda cls, *a, **k: app))
    try:
        code, _, err = run_cli(capsys, "self-report", "--audit-index", str(idx), "--reason", "mine")
    finally:
        monkey.undo()
    assert code == 1 and "NO_BUSINESS_NEED" in err
    refused = [
        e for e in map(json.loads, all_leaves(app)) if e["type"] == "access:research:self-report"
    ]
    assert [(e["actor"], e["outcome"], e["object"]["audit_index"]) for e in refused] == [
        ("EX2", "deny", idx),
        ("EX2", "deny", idx),
    ]
    assert _alert(app, "EX1")["self_reported"] is False

    # the suspect reports the allowed entry: recorded, the alert untouched but flagged
    r = client.post(
        "/api/v1/self-reports",
        headers=ex1,
        json={"audit_index": idx, "reason": "opened the wrong contact"},
    )
    assert r.status_code == 201, r.text
    now = _alert(app, "EX1")
    assert (now["state"], now["score"], now["signals"]) == (
        "open",
        before["score"],
        before["signals"],
    )
    assert now["self_reported"] is True

    # the next run, and a run from scratch over the whole log, keep it open at its score
    again = service.run(app)
    assert again["summary"]["alerts_withdrawn"] == 0
    after = _alert(app, "EX1")
    assert after["alert_id"] == before["alert_id"]
    assert (after["state"], after["score"]) == ("open", before["score"])
    assert "self_reported" in {s["name"] for s in after["signals"]}  # a marker of weight 0
    with session_scope(app.engine) as s:
        for model in (Alert, DetectionBasis, DetectionEmployeeDay, DetectionCursor):
            s.execute(delete(model))
    service.run(app)
    fresh = _alert(app, "EX1")
    assert (fresh["state"], fresh["score"]) == ("open", before["score"])
    aid = fresh["alert_id"]

    # the analyst sees the report beside the alert: API JSON and the page
    shown = client.get(f"/api/v1/alerts/{aid}", headers=pa1).json()
    assert shown["self_reported"] is True and shown["score"] == before["score"]
    assert [(r["audit_index"], r["seid"], r["reason"]) for r in shown["self_reports"]] == [
        (idx, "EX1", "opened the wrong contact")
    ]
    web = TestClient(api, follow_redirects=False)
    token = _token(app, "PA1")
    web.cookies.set(SESSION_COOKIE, token)
    csrf = session_csrf(app, token)
    page = web.get(f"/alerts/{aid}")
    assert page.status_code == 200
    assert "Self-reported by the employee" in page.text and "opened the wrong contact" in page.text

    # only the analyst closes it, and only with a reason: API, page and CLI refuse without one
    assert client.post(f"/api/v1/alerts/{aid}/assign", headers=pa1).status_code == 200
    r = client.post(f"/api/v1/alerts/{aid}/dismiss", headers=pa1, json={"reason": "   "})
    assert r.status_code == 422
    r = client.post(f"/api/v1/alerts/{aid}/dismiss", headers=pa1, json={})
    assert r.status_code == 422
    r = web.post(f"/alerts/{aid}/dismiss", data={"csrf": csrf, "note": "  "})
    assert r.status_code == 422
    write_token(app.settings.home, _token(app, "PA1"))
    monkey = pytest.MonkeyPatch()
    monkey.setattr(App, "open", classmethod(lambda cls, *a, **k: app))
    try:
        code, _, err = run_cli(capsys, "alerts", "dismiss", "--alert", aid, "--reason", " ")
    finally:
        monkey.undo()
    assert code == 1 and "reason" in err
    assert _alert(app, "EX1")["state"] == "assigned"
    # the employee cannot close it either (not an analyst)
    r = client.post(f"/api/v1/alerts/{aid}/dismiss", headers=ex1, json={"reason": "was a typo"})
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/alerts/{aid}/dismiss",
        headers=pa1,
        json={"reason": "contact confirmed by the intake log"},
    )
    assert r.status_code == 200
    closed = _alert(app, "EX1")
    assert (
        closed["state"] == "dismissed"
        and closed["close_reason"] == "contact confirmed by the intake log"
    )
    assert json.loads(json.dumps(closed))["score"] == before["score"]


def test_a_self_reported_refusal_still_counts_towards_repeated_refusals(world: App) -> None:
    """Three refusals on one account in a day are an alert; reporting them all changes
    nothing (they used to be left out of ``repeated_refusals`` and of the employee's score)."""
    app = world
    people.create_employee(
        app,
        seid="EX3",
        name="Person EX3",
        tin=None,
        roles="examiner",
        unit="U1",
        unax_attested_at=app.clock.now(),
        actor=OP,
    )
    token = _token(app, "EX3")
    indexes = []
    for _ in range(3):
        with pytest.raises(Exception) as refused:  # no case, no contact: NO_BUSINESS_NEED
            research.run(app, token=token, command="ENMOD", tin=f.CARTER_SPOUSE, interface="api")
        indexes.append(refused.value.audit_index)  # type: ignore[attr-defined]
        app.clock.advance(minutes=5)  # type: ignore[attr-defined]
    for i in indexes:
        triage.self_report(app, token=token, audit_index=i, reason="mistyped TIN")
    service.run(app)
    alert = _alert(app, "EX3")
    names = {s["name"] for s in alert["signals"]}
    assert {"repeated_refusals", "refused_no_need", "self_reported"} <= names
    assert alert["state"] == "open" and alert["score"] >= 3.0
