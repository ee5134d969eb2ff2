"""The simulator shared among worker processes (SQLite and PostgreSQL).

Each worker owns a share of the units and the workers meet every simulated hour: the log then
holds the work of every unit, its timestamps never run more than an hour behind its order, and
a worker that fails stops the run with a clear error.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from idrs.audit.store import raw
from idrs.context import App
from idrs.detection import simulator
from idrs.errors import IdrsError

START = datetime(2026, 3, 2, tzinfo=UTC)


def _entries(app: App) -> list[dict]:
    with raw(app.engine) as db:
        rows = db.execute("SELECT idx, leaf_input FROM audit_entry ORDER BY idx").fetchall()
    return [json.loads(bytes(leaf)) for _, leaf in rows]


def test_two_workers_simulate_every_unit_in_hour_order(app: App, tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    out = simulator.simulate(app, days=1, employees=40, seed=3, violation_rate=0.2,
                             truth_out=truth, start=START, workers=2)
    assert out["workers"] == 2
    data = json.loads(truth.read_text())
    assert data["workers"] == 2 and data["days_completed"] == 1
    assert data["employee_days"] == 40  # one weekday, forty employees, each counted once
    entries = _entries(app)
    research = [e for e in entries if e.get("type") == "access:research:decide"]
    assert len(research) == out["accesses"]
    # both workers' units worked: research by employees of the first and of the last unit
    actors = {e["actor"] for e in research}
    assert {"E00001", "E00040"} <= actors or (any(a <= "E00020" for a in actors)
                                              and any(a > "E00020" for a in actors))
    # timestamps stay within an hour of the log's order
    times = [datetime.fromisoformat(e["time"]) for e in entries if e.get("time")]
    latest = times[0]
    for t in times:
        assert t >= latest - timedelta(hours=1)
        latest = max(latest, t)
    # every violation cites entries of its own employee
    by_idx = dict(enumerate(entries))
    for v in data["violations"]:
        for i in v["audit_indexes"]:
            e = by_idx[i]
            assert v["seid"] in {e.get("actor"), e.get("object", {}).get("seid")}


class _Worker1LosesItsDatabase(simulator.Simulator):
    """Worker 1 fails on its first day (the workers receive this class pickled, by name)."""

    def _plan_day(self, day0: datetime) -> None:
        if self.worker == 1:
            raise RuntimeError("worker 1 lost its database")
        super()._plan_day(day0)


class _Worker0HangsWorker1Fails(simulator.Simulator):
    """Worker 0 neither finishes nor notices the aborted barrier (as one holding a lock
    would); worker 1 fails."""

    def _plan_day(self, day0: datetime) -> None:
        if self.worker == 1:
            raise RuntimeError("worker 1 lost its database")
        if self.worker == 0:
            time.sleep(3600)
        super()._plan_day(day0)


def test_a_failing_worker_stops_the_run(app: App, tmp_path: Path) -> None:
    with pytest.raises(IdrsError, match="worker 1: RuntimeError: worker 1 lost its database"):
        simulator.simulate(app, days=1, employees=40, seed=3, violation_rate=0.0,
                           truth_out=tmp_path / "t.json", start=START, workers=2,
                           simulator_class=_Worker1LosesItsDatabase)


def test_a_worker_stuck_after_another_failed_is_stopped(app: App, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck worker is stopped once the grace after a failure has passed; the run reports
    both instead of waiting for ever."""
    monkeypatch.setattr(simulator, "_STOP_GRACE", 1.0)  # read by the parent, not the workers
    with pytest.raises(IdrsError, match=r"worker 0: stopped.*worker 1: RuntimeError"):
        simulator.simulate(app, days=1, employees=40, seed=3, violation_rate=0.0,
                           truth_out=tmp_path / "t.json", start=START, workers=2,
                           simulator_class=_Worker0HangsWorker1Fails)


#: a lock of the caller's process that the workers' code takes (as a logging handler's, a
#: connection pool's or a cache's would be)
_GATE = threading.Lock()


class _TakesTheGate(simulator.Simulator):
    def _plan_day(self, day0: datetime) -> None:
        with _GATE:
            super()._plan_day(day0)


@pytest.mark.timeout(150)
def test_workers_are_never_forked_from_a_threaded_caller(app: App, tmp_path: Path) -> None:
    """A lock held by another thread of the caller at the moment of a fork stays held in a
    forked child for ever (the CI once hung here for five minutes). The workers come from a
    fresh server process, so a lock another thread of the caller holds throughout the run
    does not stop them."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _GATE:
            held.set()
            release.wait(120)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert held.wait(5)
    try:
        out = simulator.simulate(app, days=1, employees=40, seed=4, violation_rate=0.0,
                                 truth_out=tmp_path / "t.json", start=START, workers=2,
                                 simulator_class=_TakesTheGate)
    finally:
        release.set()
        t.join(5)
    assert out["workers"] == 2 and out["employee_days"] == 40


def test_workers_out_of_range_is_refused(app: App, tmp_path: Path) -> None:
    with pytest.raises(IdrsError, match="--workers"):
        simulator.simulate(app, days=1, employees=10, truth_out=tmp_path / "t.json",
                           start=START, workers=0)
    assert not (tmp_path / "t.json").exists()
