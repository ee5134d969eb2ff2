"""Incremental detection gives the alerts a full run gives, on SQLite and PostgreSQL.

One simulated log (browsing injected at a high rate) is analysed twice: in several runs that
each continue from the cursor, split at arbitrary entries (mid-day, mid-contact), and in one
run over the same entries after the detection state is cleared. The open alerts must be the
same, signal for signal. Also: the per-access prefilter (an upper bound computed in DuckDB)
changes nothing, and a run over nothing new changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from idrs import research
from idrs.access import service as access
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.audit.store import raw
from idrs.clock import FakeClock
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import score, service, triage
from idrs.detection.models import Alert, DetectionBasis, DetectionCursor, DetectionEmployeeDay
from idrs.detection.simulator import _start_session, simulate
from idrs.errors import AccessDenied, IdrsError
from idrs.masterfile.models import Taxpayer
from idrs.people.models import Employee
from tests.conftest import BACKENDS, Frozen

START = datetime(2026, 3, 2, tzinfo=UTC)


def _open_alerts(app: App) -> list[tuple[Any, ...]]:
    """The open alerts, without their ids: (seid, day, score, category, signals, indexes)."""
    with session_scope(app.engine) as s:
        return sorted((a.seid, a.day.isoformat(), a.score, a.category, a.signals, a.audit_indexes,
                       a.taxpayers, bool(a.self_reported))
                      for a in s.scalars(select(Alert).where(Alert.state == "open")))


def _forget(app: App) -> None:
    """Clear what detection learned (alerts, bases, volumes, cursor): a fresh start."""
    with session_scope(app.engine) as s:
        for model in (Alert, DetectionBasis, DetectionEmployeeDay, DetectionCursor):
            s.execute(delete(model))


def _size(app: App) -> int:
    with raw(app.engine) as db:
        return int(db.size())


@pytest.fixture(scope="module")
def simulated_logs(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Frozen]]:
    """The simulated log, built once per backend for the module (each test changes a copy)."""
    built: dict[str, Frozen] = {}
    yield built
    for frozen in built.values():
        frozen.drop()


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, simulated_logs: dict[str, Frozen],
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[App]:
    """This module's App: a copy of the simulated log (browsing injected at a high rate)."""
    backend = request.param
    if backend not in simulated_logs:
        with Frozen.build(backend, tmp_path_factory.mktemp(f"log-{backend}"), request) as (frozen, a):
            ensure_signing_key(a.settings.home, a.settings.audit_origin)
            simulate(a, days=3, employees=12, seed=3, violation_rate=0.35,
                     truth_out=frozen.root / "truth.json", start=START)
        simulated_logs[backend] = frozen
    with simulated_logs[backend].copy(tmp_path) as a:
        yield a


@pytest.fixture
def simulated(app: App) -> int:
    """The size of the simulated log."""
    return _size(app)


def test_runs_in_increments_give_the_full_runs_alerts(app: App, simulated: int) -> None:
    end = simulated
    # split points: a third and two thirds of the way (mid-day), and a few entries before the end
    splits = [end // 3, (2 * end) // 3, end - 7, end]
    summaries = [service.run(app, to_index=k)["summary"] for k in splits]
    assert [s["to_index"] for s in summaries] == splits
    assert [s["from_index"] for s in summaries[1:]] == splits[:-1]
    # each continuation read its new entries plus the context of the days it recomputed
    assert all(s["context_entries"] > 0 and s["context_from_index"] < s["from_index"]
               for s in summaries[1:])
    stepwise = _open_alerts(app)
    assert len(stepwise) >= 5

    _forget(app)
    full = service.run(app, to_index=end)
    assert full["summary"]["entries_read"] == end and full["summary"]["context_entries"] == 0
    assert _open_alerts(app) == stepwise
    assert len(full["alerts"]) == len(stepwise)


def test_prefilter_changes_no_alert(app: App, simulated: int, monkeypatch: pytest.MonkeyPatch) -> None:
    service.run(app, to_index=simulated)
    with_bound = _open_alerts(app)
    _forget(app)
    monkeypatch.setattr(score, "PREFILTER", False)
    service.run(app, to_index=simulated)
    assert _open_alerts(app) == with_bound and with_bound


def test_a_run_over_nothing_new_changes_nothing(app: App, simulated: int) -> None:
    first = service.run(app)
    before = _open_alerts(app)
    assert first["alerts"] and first["summary"]["alerts_withdrawn"] == 0
    again = service.run(app)  # reads only the first run's own entry, recomputes the last day
    assert again["summary"]["entries_read"] == 1 and again["alerts"] == []
    assert again["summary"]["alerts_withdrawn"] == 0
    assert _open_alerts(app) == before
    with pytest.raises(IdrsError, match="to_index"):
        service.run(app, to_index=-1)


def test_an_open_alert_the_recomputed_day_does_not_support_is_withdrawn(app: App, simulated: int) -> None:
    """A stand-in for a provisional alert that later entries explain: an open alert on a day
    the next run recomputes, citing an entry it reads again, for an employee with no signal
    that day. The run withdraws it (dismissed, with the reason) and leaves the others be."""
    service.run(app)
    before = _open_alerts(app)
    day = (app.clock.now() - service.HORIZON).date()  # the first day the next run recomputes
    with session_scope(app.engine) as s:
        s.add(Alert(alert_id="A999998", seid="NOBODY", unit="", day=day, score=9.0,
                    category="other", signals="[]", audit_indexes=json.dumps([simulated - 1]),
                    taxpayers="[]", state="open", created_at=app.clock.now(),
                    updated_at=app.clock.now()))
    again = service.run(app)
    assert again["summary"]["recomputed_from_day"] <= day.isoformat()
    assert again["summary"]["alerts_withdrawn"] == 1 and again["alerts"] == []
    with session_scope(app.engine) as s:
        gone = s.scalar(select(Alert).where(Alert.alert_id == "A999998"))
        assert gone is not None and gone.state == "dismissed"
        assert gone.close_reason == service.WITHDRAWN
    assert _open_alerts(app) == before


def _session(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


def _look(app: App, seid: str, tin: str, command: str = "ENMOD", contact: str | None = None) -> str:
    try:
        research.run(app, token=_session(app, seid), command=command, tin=tin, contact=contact,
                     interface="api")
    except AccessDenied:
        return "deny"
    return "allow"


def _quick_look(app: App, seid: str, tins: list[str], prefix: str) -> tuple[str, str, int]:
    """The employee opens a phone contact themselves and looks once (a taxpayer they may
    look at: refused ones are skipped). Returns (tin, contact id, audit index)."""
    for n, tin in enumerate(tins):
        cid = f"{prefix}{n:04d}"
        access.open_contact(app, seid=seid, tin=tin, contact_id=cid, channel="phone",
                            actor=Actor(seid, "api"))
        try:
            r = research.run(app, token=_session(app, seid), command="ENMOD", tin=tin, contact=cid,
                             interface="api")
        except AccessDenied:
            assert isinstance(app.clock, FakeClock)
            app.clock.advance(minutes=1)
            continue
        return tin, cid, int(r.audit_index)
    pytest.fail("no taxpayer the employee may look at")


def test_signals_that_reach_past_a_run_boundary(app: App, simulated: int) -> None:
    """Runs that stop where a day's signals still depend on later entries, beyond the
    six-hour horizon: a contact the employee opened and looked at once (a quick look, without
    follow-up) and used again the next morning; a quick look self-reported the next morning
    (which keeps its alert);
    and, within the horizon, three employees on one account around midnight. Each later run
    recomputes the earlier day (withdrawing the alerts the day no longer supports); the open
    alerts equal a full run's."""
    clock = app.clock
    assert isinstance(clock, FakeClock)
    with session_scope(app.engine) as s:
        staff = list(s.scalars(select(Employee.seid).where(Employee.roles == "csr").order_by(Employee.seid)))[:3]
        tins = [app.keyring.decrypt(enc, "taxpayer.tin")
                for enc in s.scalars(select(Taxpayer.tin_enc).order_by(Taxpayer.id.desc()).limit(40))]
    assert len(staff) == 3
    x, y = staff[0], staff[1]

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)

    def alert_of(seid: str, day: date) -> tuple[Any, ...] | None:
        return next((a for a in _open_alerts(app) if a[0] == seid and a[1] == day.isoformat()), None)

    d1 = (clock.now() + timedelta(days=1)).date()
    d2, d3 = d1 + timedelta(days=1), d1 + timedelta(days=2)
    # day 1: a quick look on a contact the employee opened; provisional alert
    clock.set(at(d1, 17))
    tin, cid, _ = _quick_look(app, x, tins, "KX")
    service.run(app)
    quick = alert_of(x, d1)
    assert quick is not None and '"no_followup"' in quick[4]
    clock.set(at(d2, 7))  # a run early the next morning: nothing new
    assert service.run(app)["alerts"] == []
    # day 2, an hour later: the contact is used again, so it was no quick look after all
    clock.set(at(d2, 8))
    for cmd in ("ENMOD", "IMFOL", "ENMOD"):
        clock.advance(minutes=2)
        assert _look(app, x, tin, command=cmd, contact=cid) == "allow"
    reused = service.run(app)
    # beyond the horizon, but the contact used this morning was opened on day 1: day 1 is
    # recomputed, and a contact without a call alone stays below the threshold
    assert reused["summary"]["recomputed_from_day"] == d1.isoformat()
    assert reused["summary"]["alerts_withdrawn"] == 1 and alert_of(x, d1) is None
    # day 2, evening: another quick look, self-reported the next morning
    clock.set(at(d2, 17))
    _, _, idx = _quick_look(app, y, tins[::-1], "KY")
    service.run(app)
    assert alert_of(y, d2) is not None
    clock.set(at(d3, 7))
    service.run(app)
    clock.set(at(d3, 9))
    triage.self_report(app, token=_session(app, y), audit_index=idx, reason="mistyped TIN")
    held = alert_of(y, d2)
    reported = service.run(app)
    # day 2 is recomputed for the self-report, and so day 1 too: x's contact used on day 2
    # was opened then. The report never withdraws the alert nor lowers its score (issue
    # 13.2): it stays open, flagged self-reported
    assert reported["summary"]["recomputed_from_day"] == d1.isoformat()
    assert reported["summary"]["alerts_withdrawn"] == 0
    kept = alert_of(y, d2)
    assert held is not None and kept is not None and kept[2] == held[2] and kept[7] is True
    # three employees on one account around midnight, without a basis; a run after the
    # second, just past midnight, another after the third
    target = tins[len(tins) // 2]
    clock.set(at(d3, 23, 50))
    _look(app, staff[0], target)
    clock.advance(minutes=25)
    _look(app, staff[1], target)
    service.run(app)
    clock.advance(minutes=10)
    _look(app, staff[2], target)
    end = _size(app)
    last = service.run(app)
    # the first of the three looked before midnight, within the horizon: that day is recomputed
    assert last["summary"]["recomputed_from_day"] == d3.isoformat()
    crowd = alert_of(staff[0], d3)
    assert crowd is not None and '"many_employees"' in crowd[4]
    stepwise = _open_alerts(app)

    _forget(app)
    service.run(app, to_index=end)
    assert _open_alerts(app) == stepwise


def test_a_contact_reused_much_later_moves_the_recomputation_back_at_most_a_week(
        app: App, simulated: int) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    with session_scope(app.engine) as s:
        x = s.scalars(select(Employee.seid).where(Employee.roles == "csr").order_by(Employee.seid)).first()
        tins = [app.keyring.decrypt(enc, "taxpayer.tin")
                for enc in s.scalars(select(Taxpayer.tin_enc).order_by(Taxpayer.id.desc()).limit(40))]
    assert x is not None
    opened = (clock.now() + timedelta(days=1)).replace(hour=10, minute=0)
    clock.set(opened)
    tin, cid, _ = _quick_look(app, x, tins, "KL")
    service.run(app)
    clock.set(opened + timedelta(days=20))
    assert service.run(app)["summary"]["context_capped"] is False  # nothing reused
    clock.advance(hours=1)
    assert _look(app, x, tin, contact=cid) == "allow"
    clock.advance(hours=1)
    summary = service.run(app)["summary"]
    first_new = opened + timedelta(days=20)  # the previous run's own entry
    expected = (first_new - service.HORIZON).date() - timedelta(days=service.CONTEXT_MAX_DAYS)
    assert summary["context_capped"] is True
    assert summary["recomputed_from_day"] == expected.isoformat()


@pytest.fixture
def empty_app(db_url: str, home: Path, clock: FakeClock) -> Iterator[App]:
    """An App on an empty database, as every other module's ``app``."""
    from idrs.audit import log
    from idrs.config import Settings
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    a = App(settings=Settings(database_url=db_url, home=home), engine=make_engine(db_url),
            keyring=Keyring.load(home), clock=clock)
    yield a
    log.forget(a.engine)
    a.engine.dispose()


def test_a_log_whose_first_entries_are_later_than_the_rest_is_still_read(empty_app, tmp_path):
    """A simulated month recorded after a real ``idrs init`` (or a clock stepped back): the run
    starts from the earliest new entry, not from the first one."""
    app = empty_app
    from datetime import UTC, datetime

    from idrs.audit import log as audit_log
    from idrs.audit.events import EventType, make_event
    from idrs.detection import service as detection
    from idrs.detection.simulator import simulate

    audit_log.append(app.engine, make_event(
        EventType.SYSTEM_SCHEMA_INIT, time=datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
        actor="os:operator", outcome="success", interface="cli"))
    out = simulate(app, days=1, employees=12, seed=5, violation_rate=0.4,
                   truth_out=tmp_path / "truth.json", start=datetime(2026, 3, 2, tzinfo=UTC),
                   workers=1)
    summary = detection.run(app)["summary"]
    assert summary["accesses"] == out["accesses"]
    assert summary["alerts"] > 0 and summary["recomputed_from_day"] <= "2026-03-02"
