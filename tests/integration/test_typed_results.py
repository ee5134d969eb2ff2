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
