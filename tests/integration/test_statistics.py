"""Differentially private statistics under a statistics grant (issue 15.2), SQLite and
PostgreSQL: the grant kind and its budget, queries answered through OpenDP with their
accuracy, budgets spent atomically (two concurrent queries cannot overspend) and refused with
BUDGET_EXHAUSTED once gone, non-public group keys behind OpenDP's threshold, every query in
the audit log with its ε and its answer committed (and opened), bad input refused writing
nothing, no TIN accepted, the oversight report's plain words.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.audit.models import AuditEntry
from idrs.db import session_scope
from idrs.errors import AccessDenied, ValidationFailed
from idrs.grants import service, statistics
from idrs.grants.models import DpSpend, Grant
from idrs.masterfile import seed
from idrs.oversight import opening
from tests.integration.grants_world import OPERATOR, World, make_world
from tests.integration.test_anonymized_records import _ready

ANALYST = Actor("DT001", "api")
COUNT_BY_STATE = {"group_by": ["state"], "aggregate": "count"}


def stats_grant(w: World, seid: str = "DT001", epsilon: float = 1.0, **kw: Any) -> int:
    gid = w.request(principal=seid, population=None, kind="statistics", epsilon=epsilon,
                    commands=None, classes=None, start=w.app.clock.now().date(), **kw)
    w.approve_both(gid)
    return gid


@pytest.fixture
def world(app, monkeypatch):
    w = make_world(app, monkeypatch)
    seed.seed(app, taxpayers=300, employees=0, seed=11)
    _ready(w, "DT001")
    return w


def _entries(app, kind: str = "grants:statistics:query") -> list[dict[str, Any]]:
    with session_scope(app.engine) as s:
        leaves = [bytes(e.leaf_input).decode() for e in s.scalars(select(AuditEntry))]
    return [e for e in (json.loads(x) for x in leaves) if e.get("type") == kind]


def test_the_statistics_kind_and_its_budget(world):
    w = world
    with pytest.raises(ValidationFailed, match="epsilon: required"):
        w.request(kind="statistics", population=None, commands=None, classes=None)
    with pytest.raises(ValidationFailed, match="epsilon: from"):
        w.request(kind="statistics", population=None, commands=None, classes=None, epsilon=50)
    with pytest.raises(ValidationFailed, match="commands: a statistics grant runs no command"):
        w.request(kind="statistics", population=None, epsilon=1.0)
    with pytest.raises(ValidationFailed, match="epsilon: only for a statistics grant"):
        w.request(epsilon=1.0)
    with pytest.raises(ValidationFailed, match="delta: only for a statistics grant"):
        w.request(delta=1e-6)
    gid = stats_grant(w, epsilon=1.0)
    g = service.show_grant(w.app, gid)
    assert (g["kind"], g["population"], g["commands"], g["classes"]) == (
        "statistics", "statistics", [], [])
    assert (g["epsilon"], g["delta"], g["epsilon_spent"], g["budget_left"]) == (
        1.0, statistics.rules.DEFAULT_DELTA, 0.0, 1.0)
    assert g["access"] == "could count, with ε = 1 in all (δ = 1e-06), never see a record"


def test_a_count_by_state_spends_and_is_recorded_and_committed(world):
    w = world
    gid = stats_grant(w, epsilon=1.0)
    out = statistics.run(w.app, w.emp("DT001"), {**COUNT_BY_STATE, "epsilon": 0.25},
                         actor=ANALYST)
    assert out["grant_id"] == gid
    assert out["epsilon_spent"] == 0.25 and out["budget_left"] == pytest.approx(0.75)
    assert out["delta_spent"] == 0.0  # public keys: no threshold, no δ
    states = [r["state"] for r in out["rows"]]
    assert states == sorted(statistics.PUBLIC_KEYS["state"])  # every public key, even empty
    for r in out["rows"]:
        assert r["low"] <= r["value"] <= r["high"]
    acc = out["accuracy"]
    assert acc["confidence"] == 0.95 and acc["aggregates"][0]["accuracy"] > 0
    assert acc["aggregates"][0]["distribution"]  # OpenDP's own summary
    # recorded with the ε spent, the answer committed; the opening shows it matches
    [entry] = _entries(w.app)
    assert entry["outcome"] == "success"
    assert entry["detail"]["epsilon_spent"] == 0.25
    assert entry["object"]["grant_id"] == gid and isinstance(entry["object"]["answer"], str)
    ensure_signing_key(w.app.settings.home)
    sa = "SA001"
    opened = opening.open_answer(w.app, w.emp(sa), out["audit_index"])
    assert opened["matches"] is True
    assert opened["answer"]["rows"] == out["rows"]
    with session_scope(w.app.engine) as s:
        spends = s.scalars(select(DpSpend)).all()
        assert [(x.grant_id, x.epsilon) for x in spends] == [(gid, 0.25)]
        assert s.get(Grant, gid).dp_epsilon_spent == pytest.approx(0.25)


def test_the_budget_runs_out_and_is_refused(world):
    w = world
    gid = stats_grant(w, epsilon=0.3)
    who = w.emp("DT001")
    statistics.run(w.app, who, {**COUNT_BY_STATE, "epsilon": 0.2}, actor=ANALYST)
    with pytest.raises(AccessDenied) as e:
        statistics.run(w.app, who, {**COUNT_BY_STATE, "epsilon": 0.2}, actor=ANALYST)
    assert e.value.codes == [statistics.BUDGET_EXHAUSTED]
    assert e.value.audit_index is not None
    out = statistics.run(w.app, who, {**COUNT_BY_STATE, "epsilon": 0.1}, actor=ANALYST)
    assert out["budget_left"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(AccessDenied, match=statistics.BUDGET_EXHAUSTED):
        statistics.run(w.app, who, {**COUNT_BY_STATE, "epsilon": 0.001}, actor=ANALYST)
    with session_scope(w.app.engine) as s:
        assert s.get(Grant, gid).dp_epsilon_spent == pytest.approx(0.3)
    outcomes = [(e["outcome"], e.get("reasons")) for e in _entries(w.app)]
    assert outcomes.count(("denied", [statistics.BUDGET_EXHAUSTED])) == 2


def test_two_concurrent_queries_cannot_overspend(world, monkeypatch):
    """Both pass the early check with 0.15 left and 0.1 asked; only one reservation wins."""
    w = world
    gid = stats_grant(w, epsilon=0.15)
    who = w.emp("DT001")
    arrived = threading.Barrier(2, timeout=60)
    real = statistics.spend

    def spend_together(*a: Any, **kw: Any) -> bool:
        arrived.wait()  # both queries hold a prepared measurement and now reserve at once
        return real(*a, **kw)

    monkeypatch.setattr(statistics, "spend", spend_together)
    results: list[Any] = []

    def one() -> None:
        try:
            results.append(statistics.run(w.app, who, {**COUNT_BY_STATE, "epsilon": 0.1},
                                          actor=ANALYST))
        except AccessDenied as exc:
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    denied = [r for r in results if isinstance(r, AccessDenied)]
    assert len(denied) == 1 and denied[0].codes == [statistics.BUDGET_EXHAUSTED]
    with session_scope(w.app.engine) as s:
        assert s.get(Grant, gid).dp_epsilon_spent == pytest.approx(0.1)
        assert s.scalar(select(func.count()).select_from(DpSpend)) == 1


def test_non_public_keys_go_through_the_threshold_and_spend_delta(world):
    w = world
    stats_grant(w, epsilon=2.0)
    out = statistics.run(w.app, w.emp("DT001"),
                         {"group_by": ["zip3"], "aggregate": "count", "epsilon": 0.5},
                         actor=ANALYST)
    threshold = out["accuracy"]["threshold"]
    assert threshold is not None and threshold > 1
    assert out["delta_spent"] == statistics.QUERY_DELTA
    # 300 taxpayers spread over hundreds of ZIP3s: no rare ZIP3 is disclosed
    frame = statistics.master_frame(w.app.engine)
    sizes = dict(frame.group_by("zip3").len().iter_rows())
    for r in out["rows"]:
        assert r["value"] >= threshold
    assert len(out["rows"]) < len([z for z in sizes if z])
    assert "not released" in out["accuracy"]["meaning"]


def test_mean_and_sum_with_bounds_filters_and_intervals(world):
    w = world
    stats_grant(w, epsilon=3.0)
    who = w.emp("DT001")
    mean = statistics.run(w.app, who, {"group_by": ["filing_status"], "aggregate": "mean",
                                       "column": "agi", "bounds": [0, 300000], "epsilon": 1.0},
                          actor=ANALYST)
    for r in mean["rows"]:
        if r["value"] is not None:
            assert 0 <= r["low"] <= r["value"] <= r["high"] <= 300000
    assert "union bound" in mean["accuracy"]["meaning"]
    total = statistics.run(w.app, who, {"aggregate": "sum", "column": "refund",
                                        "bounds": [0, 20000],
                                        "filters": {"refund": {"min": 1}}, "epsilon": 0.5},
                           actor=ANALYST)
    [row] = total["rows"]
    assert row["low"] < row["high"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"group_by": ["tin"], "aggregate": "count"}, "group_by"),
        ({"group_by": ["city"], "aggregate": "count"}, "group_by"),
        ({"aggregate": "median"}, "aggregate"),
        ({"aggregate": "sum", "column": "agi"}, "bounds"),
        ({"aggregate": "mean", "column": "name", "bounds": [0, 1]}, "column"),
        ({"aggregate": "sum", "column": "agi", "bounds": [5, 1]}, "bounds"),
        ({"aggregate": "count", "column": "agi"}, "column"),
        ({"aggregate": "count", "epsilon": 5}, "epsilon"),
        ({"aggregate": "count", "filters": {"street": "Main"}}, "filters.street"),
        ({"aggregate": "count", "filters": {"state": "ZZ"}}, "filters.state"),
        ({"aggregate": "count", "surprise": 1}, "surprise"),
    ],
)
def test_bad_queries_are_refused_naming_the_field_and_spend_nothing(world, body, field):
    w = world
    gid = stats_grant(w)
    with pytest.raises(ValidationFailed) as e:
        statistics.run(w.app, w.emp("DT001"), body, actor=ANALYST)
    assert any(p.startswith(field) for p in e.value.problems), e.value.problems
    with session_scope(w.app.engine) as s:
        assert s.get(Grant, gid).dp_epsilon_spent == 0
    assert _entries(w.app) == []


def test_no_grant_no_statistics_and_an_anonymized_grant_is_not_enough(world):
    w = world
    with pytest.raises(AccessDenied) as e:
        statistics.run(w.app, w.emp("DT001"), COUNT_BY_STATE, actor=ANALYST)
    assert e.value.codes == [statistics.NO_STATISTICS_GRANT]


def test_over_the_api_and_no_tin_from_a_statistics_principal(world):
    w = world
    stats_grant(w, epsilon=0.5)
    api = create_app(w.app)
    with TestClient(api) as client:
        h = {"Authorization": f"Bearer {w.token('DT001')}"}
        r = client.post("/api/v1/statistics", json={**COUNT_BY_STATE, "epsilon": 0.3},
                        headers=h)
        assert r.status_code == 200, r.text
        assert {"rows", "epsilon_spent", "budget_left", "accuracy"} <= set(r.json())
        r = client.post("/api/v1/statistics", json={**COUNT_BY_STATE, "epsilon": 0.3},
                        headers=h)
        assert r.status_code == 403 and statistics.BUDGET_EXHAUSTED in r.text
        r = client.post("/api/v1/statistics", json={"aggregate": "avg"}, headers=h)
        assert r.status_code in (400, 422) and "aggregate" in r.text
        b = client.get("/api/v1/statistics/budget", headers=h)
        assert b.status_code == 200 and b.json()["budget_left"] == pytest.approx(0.2)
        # a statistics principal names no taxpayer, anywhere
        from tests.integration import factories as f

        r = client.get(f"/api/v1/accounts/{f.CARTER}/ENMOD", headers=h)
        assert r.status_code == 403


def test_the_oversight_report_says_it_in_plain_words(world, tmp_path):
    w = world
    gid = stats_grant(w, epsilon=1.0)
    statistics.run(w.app, w.emp("DT001"), {**COUNT_BY_STATE, "epsilon": 0.25}, actor=ANALYST)
    from idrs.oversight import report

    ensure_signing_key(w.app.settings.home)
    rep = report.build(w.app, grant_id=gid, actor=OPERATOR)
    [p] = rep["potential"]
    assert "could count, with ε = 1 in all" in p["access"][0]
    assert "never see a record" in p["access"][0]
    [g] = p["grants"]
    assert g["epsilon"] == 1.0 and g["epsilon_spent"] == pytest.approx(0.25)


def test_the_cli_mirrors_the_api(world, capsys, monkeypatch):
    import idrs.cli.grants as cli_grants
    from idrs.cli.people import write_token
    from tests.integration.cli_helpers import run_cli

    w = world
    stats_grant(w, epsilon=0.5)
    monkeypatch.setattr(cli_grants, "open_app", lambda: w.app)
    write_token(w.app.settings.home, w.token("DT001"))
    code, out, err = run_cli(capsys, "statistics", "run", "--aggregate", "mean", "--group-by",
                             "filing_status", "--column", "agi", "--bounds", "0,300000",
                             "--filter", "state=OH,CA", "--filter", "agi.min=1",
                             "--epsilon", "0.3", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["epsilon_spent"] == 0.3 and doc["query"]["filters"] == {
        "agi": {"min": 1}, "state": ["CA", "OH"]}
    code, out, err = run_cli(capsys, "statistics", "budget", "--json")
    assert code == 0 and json.loads(out)["budget_left"] == pytest.approx(0.2)
    code, out, err = run_cli(capsys, "statistics", "run", "--aggregate", "count",
                             "--epsilon", "0.3")
    assert code == 1 and statistics.BUDGET_EXHAUSTED in err
    code, out, err = run_cli(capsys, "statistics", "run", "--aggregate", "sum", "--column",
                             "agi", "--bounds", "ten,20")
    assert code == 1 and "--bounds" in err
