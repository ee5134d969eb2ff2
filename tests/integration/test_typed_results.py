"""The typed results of detection and adjustments answer every interface as the dicts they
replaced did (issue 12.5): the same keys in the same order and the same values, through the
service, the API and the CLI's ``--json`` (whose ``json.dumps`` would turn a record it was
handed into a string without failing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from idrs.adjustments import service as adjustments
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.store import raw
from idrs.clock import SystemClock
from idrs.config import get_settings
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import service as detection
from idrs.detection import triage
from idrs.detection.models import Alert, DetectionBasis, DetectionCursor, DetectionEmployeeDay
from idrs.detection.simulator import _start_session, simulate
from idrs.people.models import Employee
from tests.integration import adjust_world as w
from tests.integration.cli_helpers import run_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse: quick passwords
from tests.integration.test_investigations import OP, STAFF, World
from tests.integration.test_investigations import _alert as inv_alert

START = datetime(2026, 3, 2, tzinfo=UTC)
#: the keys of each alert a run answers, in the order the interfaces have always shown them
ALERT_KEYS = ["alert_id", "seid", "score", "category", "day", "signals", "audit_indexes", "why",
              "state"]
SUMMARY_KEYS = ["from_index", "to_index", "entries_read", "context_from_index", "context_entries",
                "recomputed_from_day", "context_capped", "new_bases", "accesses",
                "explained_case", "explained_contact", "explained_walk_in",
                "explained_unit_workflow", "explained_collaboration", "name_searches",
                "unexplained", "refused", "alerts", "alerts_withdrawn"]
LISTED_KEYS = ["adjustment_id", "command", "kind", "status", "taxpayer", "tax_year", "tc",
               "amount", "action_code", "requester", "case", "requires", "requested_at",
               "expires_at", "changes", "reasons", "reverses", "own"]


@pytest.fixture
def cli_env(app: App, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _token(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


def _last_entry(app: App) -> dict:  # type: ignore[type-arg]
    with raw(app.engine) as db:
        size = int(db.size())
    return triage.read_entry(app, size - 1)[0]


def test_a_detection_run_answers_the_same_json_in_the_api_and_the_cli(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    simulate(app, days=2, employees=12, seed=5, violation_rate=0.4,
             truth_out=tmp_path / "truth.json", start=START)
    # PA001 is the simulated agency's privacy analyst
    runs: list[detection.DetectionRun] = []
    real = detection.run

    def kept(*args, **kwargs):  # type: ignore[no-untyped-def]
        runs.append(real(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(detection, "run", kept)

    client = TestClient(create_app(app))
    r = client.post("/api/v1/detection/runs", json={}, params={"limit": 1000},
                    headers={"Authorization": f"Bearer {_token(app, 'PA001')}"})
    assert r.status_code == 200, r.text
    (result,) = runs
    doc = result.as_dict()
    assert result.alerts and all(list(a) == ALERT_KEYS for a in doc["alerts"])
    assert list(doc) == ["alerts", "summary"] and list(doc["summary"]) == SUMMARY_KEYS
    assert all(isinstance(a.score, float) and isinstance(a.day, str) for a in result.alerts)
    body = r.json()
    assert list(body) == ["alerts", "limit", "offset", "total", "next_offset", "summary"]
    assert json.dumps(body["alerts"]) == json.dumps(doc["alerts"])
    assert json.dumps(body["summary"]) == json.dumps(doc["summary"])
    # the summary is the detail of the run's own entry (still built from the dict; an entry
    # keeps its keys sorted), value for value
    detail = _last_entry(app)["detail"]
    assert {k: v for k, v in detail.items() if k != "withdrawn"} == doc["summary"]

    # the CLI, on a fresh start (the same alerts again): one line, the record as plain JSON
    with session_scope(app.engine) as s:
        for model in (Alert, DetectionBasis, DetectionEmployeeDay, DetectionCursor):
            s.execute(delete(model))
    code, out, err = run_cli(capsys, "detect", "run", "--json")
    assert code == 0, err
    again = runs[-1].as_dict()
    assert out == json.dumps(again) + "\n"
    assert again["alerts"] and all(list(a) == ALERT_KEYS for a in again["alerts"])
    assert list(again["summary"]) == SUMMARY_KEYS


def test_the_approvers_list_answers_the_same_json_in_the_api_and_the_cli(
    app: App, tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    import idrs.cli.adjust  # noqa: F401 - registers `idrs adjust`
    from idrs.cli.people import write_token

    w.build(app, tmp_path)
    app.clock = SystemClock()  # the CLI runs on the system clock: sessions and requests for now
    ex1, mg1 = w.new_session(app, "EX1"), w.new_session(app, "MG1")
    w.look(app, ex1, "TXMOD", year=2023)
    res = adjustments.request(app, token=ex1, tin=w.CARTER, command="ADJ54", case="C-1",
                              reason="correcting the math", interface="test", tax_year=2023,
                              tc="291", amount="1000.00")
    assert res.status == "pending_approval"

    listed = adjustments.pending(app, token=mg1, interface="test")
    doc = listed.as_dict()
    assert list(doc) == ["adjustments", "audit_index"]
    (item,) = doc["adjustments"]
    assert list(item) == LISTED_KEYS
    assert (item["adjustment_id"], item["amount"], item["requester"], item["own"]) == (
        res.adjustment_id, "1000.00", "EX1", False)
    assert isinstance(item["requested_at"], str) and isinstance(item["expires_at"], str)
    assert listed.adjustments[0].requires == ["TWO_PERSON_REQUIRED", "ABATEMENT_THRESHOLD"]

    client = TestClient(create_app(app))
    r = client.get("/api/v1/adjustments", params={"status": "pending"},
                   headers={"Authorization": f"Bearer {mg1}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["adjustments", "limit", "offset", "total", "next_offset",
                          "audit_index"]
    assert json.dumps(body["adjustments"]) == json.dumps(doc["adjustments"])
    assert body["audit_index"] > doc["audit_index"]  # each listing is recorded

    write_token(app.settings.home, mg1)
    code, out, err = run_cli(capsys, "adjust", "pending", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert list(shown) == ["adjustments", "audit_index"]
    assert out == json.dumps({"adjustments": doc["adjustments"],
                              "audit_index": shown["audit_index"]}) + "\n"


# -- the alert queue and the investigations (triage, investigations) ----------------------------

#: the keys of an alert as the queue lists it, then those ``show`` adds
ALERT_VIEW_KEYS = ["alert_id", "seid", "unit", "day", "score", "category", "signals",
                   "audit_indexes", "taxpayers", "state", "assignee", "self_reported",
                   "close_reason", "why"]
ALERT_DETAIL_KEYS = [*ALERT_VIEW_KEYS, "actions", "self_reports", "case_id"]
STEP_KEYS = ["alert_id", "action", "by", "state", "audit_index"]
CASE_KEYS = ["case_id", "alert_id", "subject", "unit", "state", "finding", "investigator",
             "referred_by", "referred_at", "opened_at", "closed_at"]
CASE_STEP_KEYS = ["case_id", "alert_id", "step", "by", "state", "finding", "audit_index"]


def _keep(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list:  # type: ignore[type-arg]
    """Every result ``module.name`` returns from now on (the interfaces call it there)."""
    kept: list = []  # type: ignore[type-arg]
    real = getattr(module, name)

    def keeping(*args, **kwargs):  # type: ignore[no-untyped-def]
        kept.append(real(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(module, name, keeping)
    return kept


@pytest.fixture
def investigations_world(app: App) -> World:
    """The staff of test_investigations (its fixture, under a name this module has free)."""
    from idrs.people import service as people
    from tests.integration import factories as f

    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5})
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "PRIV", "SEC"):
        people.create_unit(app, unit, actor=OP)
    world = World(app)
    for n, (seid, (roles, unit)) in enumerate(STAFF.items()):
        world.creds[seid] = people.create_employee(
            app, unax_attested_at=app.clock.now(), seid=seid, name=f"Person {seid}",
            tin=f"900-41-03{n:02d}", roles=roles.split(","), unit=unit, actor=OP)
    return world


def test_the_alert_queue_and_the_investigations_answer_the_same_json_in_the_api_and_the_cli(
    investigations_world: World, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from idrs.api import middleware
    from idrs.detection import investigations
    from idrs.detection import results as r
    from tests.integration.cli_helpers import sign_in_for_cli

    w = investigations_world
    app = w.app
    api = create_app(app)
    middleware.install(api)
    middleware.install_problem_handlers(api)
    client = TestClient(api)
    aid = inv_alert(w, "A800001")
    pa1, si1 = w.h("PA1"), w.h("SI1")
    listed = _keep(monkeypatch, triage, "list_alerts")
    shown = _keep(monkeypatch, triage, "show")
    steps = {name: _keep(monkeypatch, triage, name)
             for name in ("assign", "review", "refer", "self_report")}

    # the queue: each alert an AlertView, the page of the API its records as plain JSON
    body = client.get("/api/v1/alerts", headers=pa1).json()
    (rows,) = listed
    assert [type(a) for a in rows] == [r.AlertView] and list(rows[0]) == ALERT_VIEW_KEYS
    assert isinstance(rows[0].score, float) and isinstance(rows[0].taxpayers, list)
    assert json.dumps(body["alerts"]) == json.dumps([a.as_dict() for a in rows])

    # a self-report of the subject's own entry, then the triage steps
    idx = rows[0].audit_indexes[0]
    res = client.post("/api/v1/self-reports", json={"audit_index": idx, "reason": "wrong TIN"},
                      headers=w.h("EX1"))
    assert res.status_code == 201, res.text
    (reported,) = steps["self_report"]
    assert isinstance(reported, r.SelfReported)
    assert json.dumps(res.json()) == json.dumps(reported.as_dict())
    assert list(reported) == ["seid", "audit_index", "recorded_as"]
    for action, payload in (("assign", None), ("review", {"note": "looked"})):
        res = client.post(f"/api/v1/alerts/{aid}/{action}", json=payload, headers=pa1)
        assert res.status_code == 200, res.text
        (step,) = steps[action]
        assert type(step) is r.AlertStepDone and list(step) == STEP_KEYS
        # a review leaves the state (null); case_id and package are not set on these steps
        assert json.dumps(res.json()) == json.dumps(step.as_dict())
    assert steps["review"][0].state is None

    res = client.get(f"/api/v1/alerts/{aid}", headers=pa1)
    (detail,) = shown
    assert isinstance(detail, r.AlertDetail) and list(detail) == ALERT_DETAIL_KEYS
    assert [type(a) for a in detail.actions] == [r.TriageAction, r.TriageAction]
    assert [type(s) for s in detail.self_reports] == [r.AlertSelfReport]
    assert json.dumps(res.json()) == json.dumps(detail.as_dict())

    res = client.post(f"/api/v1/alerts/{aid}/refer", json={"note": "to TIGTA"}, headers=pa1)
    (referred,) = steps["refer"]
    assert isinstance(referred, r.AlertReferred)
    assert list(referred) == [*STEP_KEYS, "case_id", "package"]
    assert list(referred.package) == ["alert", "triage", "self_reports", "checkpoint", "entries",
                                      "referred_by"]
    assert list(referred.package["alert"]) == ALERT_VIEW_KEYS  # stored as plain JSON
    assert json.dumps(res.json()) == json.dumps(referred.as_dict())
    case = referred.case_id

    # the investigation: open and the outcomes over the API, the list and the case too
    cases = _keep(monkeypatch, investigations, "list_cases")
    case_shown = _keep(monkeypatch, investigations, "show")
    taken = {name: _keep(monkeypatch, investigations, name)
             for name in ("open_case", "record_outcome", "close")}
    body = client.get("/api/v1/investigations", headers=si1).json()
    (rows2,) = cases
    assert [type(c) for c in rows2] == [r.CaseRow] and list(rows2[0]) == [*CASE_KEYS, "outcomes"]
    assert json.dumps(body["investigations"]) == json.dumps([c.as_dict() for c in rows2])
    res = client.post(f"/api/v1/investigations/{case}/open", json={"reason": "taken"},
                      headers=si1)
    (opened,) = taken["open_case"]
    assert type(opened) is r.CaseStepDone and list(opened) == CASE_STEP_KEYS
    # the route's model names ``notices`` (null when the step issued none), as it always did
    assert json.dumps(res.json()) == json.dumps({**opened.as_dict(), "notices": None})
    for outcome in ("substantiated", "criminal_charge"):
        res = client.post(f"/api/v1/investigations/{case}/outcomes",
                          json={"outcome": outcome, "reason": "found"}, headers=si1)
        assert res.status_code == 201, res.text
    plain, charged = taken["record_outcome"]
    assert type(plain) is r.CaseStepDone
    assert isinstance(charged, r.CaseTriggerStep) and list(charged) == [*CASE_STEP_KEYS, "notices"]
    assert isinstance(charged.notices, r.TriggeredNotices) and len(charged.notices.sent) == 1
    assert [type(n) for n in charged.notices.sent] == [r.NoticeSent]
    assert list(charged.notices.sent[0]) == ["notice_id", "alert_id", "taxpayer", "dates",
                                             "trigger", "audit_index"]
    assert res.json() == charged.as_dict()
    assert json.dumps(res.json()["notices"]) == json.dumps(charged.notices.as_dict())

    # the notices sent and the taxpayer's accounting
    from idrs.detection import notices, taxpayer
    from tests.integration import factories as f

    notice_rows = _keep(monkeypatch, notices, "list_notices")
    accountings = _keep(monkeypatch, taxpayer, "accesses")
    body = client.get("/api/v1/notices", headers=w.h("PO1")).json()
    (rows3,) = notice_rows
    assert [type(n) for n in rows3] == [r.NoticeListed]
    assert list(rows3[0]) == ["notice_id", "alert_id", "taxpayer", "trigger", "sent_at",
                              "audit_index"]
    assert json.dumps(body["notices"]) == json.dumps([n.as_dict() for n in rows3])
    body = client.get(f"/api/v1/taxpayers/{f.CARTER}/accesses", headers=w.h("PO1")).json()
    (acct,) = accountings
    assert isinstance(acct, r.TaxpayerAccounting)
    assert list(acct) == ["taxpayer", "openings", "refused_attempts", "disclosures"]
    assert acct.openings and [type(o) for o in acct.openings] == [r.Opening] * len(acct.openings)
    assert list(acct.openings[0]) == ["date", "unit", "purpose", "command"]
    plain = acct.as_dict()
    assert json.dumps(body["openings"]) == json.dumps(plain["openings"])
    assert (body["taxpayer"], body["refused_attempts"], body["disclosures"]) == (
        plain["taxpayer"], plain["refused_attempts"], plain["disclosures"])
    res = client.get(f"/api/v1/investigations/{case}", headers=si1)
    (cd,) = case_shown
    assert isinstance(cd, r.CaseDetail)
    assert list(cd) == [*CASE_KEYS, "steps", "outcomes", "next", "notices"]
    assert [type(s) for s in cd.steps] == [r.CaseStep] * 3
    assert [type(n) for n in cd.notices] == [r.CaseNotice]
    # the route's model orders the keys itself (the row's, then steps, next, notices)
    assert res.json() == cd.as_dict()

    # the unit's weekly report: built, certified, then answered as stored (frozen)
    from idrs.detection import reports, weekly

    built = _keep(monkeypatch, reports, "weekly")
    certified = _keep(monkeypatch, reports, "certify")
    history = _keep(monkeypatch, weekly, "list_reports")
    rates = _keep(monkeypatch, reports, "certification_rate")
    mg1, week = w.h("MG1"), app.clock.now().date()
    report_keys = ["unit", "week_start", "report", "certified_by", "certified_at"]
    res = client.get("/api/v1/reports/weekly", params={"unit": "U1"}, headers=mg1)
    assert res.status_code == 200, res.text
    (rep,) = built
    assert isinstance(rep, r.WeeklyReportRecorded) and list(rep) == [*report_keys, "audit_index"]
    assert json.dumps(res.json()) == json.dumps(rep.as_dict())
    monday = rep.week_start
    res = client.post(f"/api/v1/reports/weekly/U1/{monday}/certification", headers=mg1)
    assert res.status_code == 200, res.text
    (cert,) = certified
    assert isinstance(cert, r.WeeklyReportRecorded) and cert.certified_by == "MG1"
    assert json.dumps(res.json()) == json.dumps(cert.as_dict())
    res = client.get("/api/v1/reports/weekly", params={"unit": "U1", "week": str(week)},
                     headers=mg1)
    frozen = built[-1]
    assert type(frozen) is r.WeeklyReportView and list(frozen) == report_keys  # not recorded
    assert json.dumps(res.json()) == json.dumps(frozen.as_dict())
    body = client.get("/api/v1/reports/weekly/history", headers=mg1).json()
    assert [type(x) for x in history[-1]] == [r.ReportListed]
    assert list(history[-1][0]) == ["unit", "week_start", "created_at", "conflict_refusals",
                                    "open_alerts", "outcomes_this_week", "certified_by",
                                    "certified_at"]
    assert json.dumps(body["reports"]) == json.dumps([x.as_dict() for x in history[-1]])
    body = client.get("/api/v1/reports/certification-rate", headers=w.h("PO1")).json()
    (rate,) = rates
    assert isinstance(rate, r.CertificationRate)
    assert list(rate) == ["reports", "certified", "rate", "not_certified"]
    assert (body["reports"], body["certified"], body["rate"]) == (1, 1, 1.0) == (
        rate.reports, rate.certified, rate.rate)
    assert body["not_certified"] == rate.as_dict()["not_certified"] == []

    # the CLI's --json: each record as plain JSON, in its own order
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        sign_in_for_cli(app, "PA1")
        code, out, err = run_cli(capsys, "alerts", "list", "--json")
        assert code == 0, err
        assert out == json.dumps({"alerts": [a.as_dict() for a in listed[-1]]}) + "\n"
        code, out, err = run_cli(capsys, "alerts", "show", "--alert", aid, "--json")
        assert code == 0, err
        assert out == json.dumps(shown[-1].as_dict()) + "\n"
        sign_in_for_cli(app, "SI1")
        code, out, err = run_cli(capsys, "investigations", "list", "--json")
        assert code == 0, err
        assert out == json.dumps({"investigations": [c.as_dict() for c in cases[-1]]}) + "\n"
        code, out, err = run_cli(capsys, "investigations", "close", "--case", case,
                                 "--reason", "charged", "--json")
        assert code == 0, err
        assert out == json.dumps(taken["close"][-1].as_dict()) + "\n"
        assert json.loads(out)["state"] == "closed" and "notices" not in json.loads(out)
        code, out, err = run_cli(capsys, "investigations", "show", "--case", case, "--json")
        assert code == 0, err
        assert out == json.dumps(case_shown[-1].as_dict()) + "\n"
        assert list(json.loads(out)) == [*CASE_KEYS, "steps", "outcomes", "next", "notices"]
        code, out, err = run_cli(capsys, "taxpayer", "accesses", "--tin", f.CARTER, "--json")
        assert code == 0, err
        assert out == json.dumps(accountings[-1].as_dict()) + "\n"
        code, out, err = run_cli(capsys, "reports", "certification-rate", "--json")
        assert code == 0, err
        assert out == json.dumps(rates[-1].as_dict()) + "\n"
        code, out, err = run_cli(capsys, "reports", "weekly", "--unit", "U1", "--week",
                                 monday, "--json")
        assert code == 0, err
        assert type(built[-1]) is r.WeeklyReportView  # certified: as stored
        assert out == json.dumps(built[-1].as_dict()) + "\n"
    finally:
        get_settings.cache_clear()


def test_cases_contacts_and_relationships_answer_the_same_json_in_the_api_and_the_cli(
    investigations_world: World, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from idrs.access import results as r
    from idrs.access import service as access
    from idrs.api import middleware
    from idrs.audit.events import Actor
    from tests.integration import factories as f

    w = investigations_world
    app = w.app
    api = create_app(app)
    middleware.install(api)
    middleware.install_problem_handlers(api)
    client = TestClient(api)
    changed = {name: _keep(monkeypatch, access, name)
               for name in ("assign_case", "close_case", "record_inbound", "close_contact",
                            "declare_relationship")}
    mg1 = w.h("MG1")

    res = client.post("/api/v1/cases", json={"seid": "EX1", "tin": f.CARTER, "case_id": "C-90"},
                      headers=mg1)
    assert res.status_code == 201, res.text
    (assigned,) = changed["assign_case"]
    assert type(assigned) is r.CaseChanged and assigned.status == "open"
    assert list(assigned) == ["case_id", "seid", "status", "audit_index"]
    assert json.dumps(res.json()) == json.dumps(assigned.as_dict())
    res = client.post("/api/v1/cases/C-90/close", headers=mg1)
    (closed,) = changed["close_case"]
    assert type(closed) is r.CaseChanged and closed.status == "closed"
    # the route's model names contact_id too; a case's close leaves it out, as before
    assert json.dumps(res.json()) == json.dumps(closed.as_dict())

    opened = access.record_inbound(app, seid="EX1", tin=f.CARTER, contact_id="K-90",
                                   actor=Actor("system:acd", "api"))
    assert type(opened) is r.ContactOpened
    assert list(opened) == ["contact_id", "seid", "channel", "origin", "status", "audit_index"]
    res = client.post("/api/v1/contacts/K-90/close", headers=w.h("EX1"))
    assert res.status_code == 200, res.text
    (done,) = changed["close_contact"]
    assert type(done) is r.ContactClosed
    assert list(done) == ["contact_id", "seid", "status", "audit_index"]
    assert json.dumps(res.json()) == json.dumps(done.as_dict())

    # the CLI's --json (an operator's commands)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        code, out, err = run_cli(capsys, "case", "assign", "--seid", "EX1", "--tin", f.CARTER,
                                 "--case-id", "C-91", "--json")
        assert code == 0, err
        assert out == json.dumps(changed["assign_case"][-1].as_dict()) + "\n"
        code, out, err = run_cli(capsys, "relationship", "declare", "--seid", "EX1", "--tin",
                                 f.CARTER, "--kind", "friend", "--json")
        assert code == 0, err
        (declared,) = changed["declare_relationship"]
        assert type(declared) is r.RelationshipDeclared
        assert out == json.dumps(declared.as_dict()) + "\n"
        assert list(json.loads(out)) == ["seid", "kind", "audit_index"]
    finally:
        get_settings.cache_clear()
