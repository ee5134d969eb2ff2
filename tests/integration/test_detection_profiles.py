"""Issue 17: each work profile, honest and with its hidden violations, through the real path.

For every profile of :mod:`idrs.detection.profiles` (small: 3 days, 10 employees, SQLite): the
honest variant raises no alert, and the variant with violations has each of them found (a
relative with a rare surname under a case someone else assigned or an intake contact, a
neighbour under an intake contact, a sweep of accounts under contacts) and no alert about
honest work. The alert says why in words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idrs import migrate
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.detection import evaluate, profiles, service
from idrs.detection.simulator import DEFAULT_START
from idrs.errors import IdrsError

DAYS, EMPLOYEES = 3, 10
PARAMS = {"new_employee": {"start_day": 1}}


def _app(d: Path) -> App:
    d.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{d / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    Keyring.create(d / "home")
    return App(settings=Settings(database_url=url, home=d / "home"), engine=engine,
               keyring=Keyring.load(d / "home"), clock=FakeClock(DEFAULT_START))


def _run(d: Path, profile: str, violations: bool) -> tuple[dict, list[dict], dict]:
    app = _app(d)
    try:
        # mixed: three units of five (routed, intake, bulk_assign)
        n = 15 if profile == profiles.MIXED else EMPLOYEES
        profiles.run_profile(app, profile, days=DAYS, employees=n, seed=3,
                             violations=violations, per_type=1, truth_out=d / "truth.json",
                             params=PARAMS.get(profile))
        alerts = service.run(app)["alerts"]
        quality = evaluate.evaluate(app, d / "truth.json")
    finally:
        app.engine.dispose()
    return json.loads((d / "truth.json").read_text()), alerts, quality


@pytest.mark.parametrize("profile", (*profiles.PROFILES, profiles.MIXED))
def test_profile_honest_raises_nothing_and_hidden_violations_are_found(profile: str, tmp_path: Path) -> None:
    truth, alerts, quality = _run(tmp_path / "honest", profile, violations=False)
    assert truth["violations"] == [] and truth["employee_days"] > 0
    assert alerts == [], [(a["category"], [s["name"] for s in a["signals"]]) for a in alerts]
    assert quality["false_alerts_per_1000_employee_days"] == 0.0

    truth, alerts, quality = _run(tmp_path / "violations", profile, violations=True)
    kinds = {v["type"] for v in truth["violations"]}
    assert kinds == set(profiles.HIDDEN_TYPES), kinds
    missed = [v for v in truth["violations"] if not any(
        a["seid"] == v["seid"] and set(a["audit_indexes"]) & set(v["audit_indexes"]) for a in alerts)]
    assert missed == [], missed
    assert quality["overall"]["precision"] == 1.0, quality["by_type"]
    for t in profiles.HIDDEN_TYPES:
        assert quality["by_type"][t]["recall"] == 1.0, (t, quality["by_type"][t])
    # every alert says why in words
    for a in alerts:
        assert any(s["evidence"].get("why") for s in a["signals"]), a


def test_profile_parameters_are_checked(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        with pytest.raises(IdrsError, match="unknown profile"):
            profiles.run_profile(app, "nope", days=1, employees=5, truth_out=tmp_path / "t.json")
        with pytest.raises(IdrsError, match="unknown parameter 'pace'"):
            profiles.run_profile(app, "batch", days=1, employees=5, truth_out=tmp_path / "t.json",
                                 params={"pace": 2})
        assert not (tmp_path / "t.json").exists()
    finally:
        app.engine.dispose()
