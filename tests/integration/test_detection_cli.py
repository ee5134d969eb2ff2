"""The detection commands from the command line, in-process (``idrs.cli.main``, IDRS_HOME)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from idrs.config import get_settings
from idrs.context import App
from tests.integration.cli_helpers import run_cli


@pytest.fixture
def cli_env(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    yield
    get_settings.cache_clear()


def test_detect_cli_contract_and_bad_input(
    app: App, tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "detect", "run", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["alerts"] == [] and doc["summary"]["entries_read"] >= 0

    code, _, err = run_cli(capsys, "detect", "run", "--since", "2999-01-01T00:00:00+00:00")
    assert code == 1 and "future" in err and "Traceback" not in err

    bad = tmp_path / "truth.json"
    bad.write_text(
        json.dumps({"violations": [{"type": "self", "seid": "E1", "audit_indexes": [5]}]})
    )
    code, _, err = run_cli(capsys, "detect", "evaluate", "--truth", str(bad), "--json")
    assert code == 1 and "does not match" in err


def test_simulate_a_profile_then_evaluate_a_violation_free_month(
    app: App, tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17.2: an honest profile run, and the false alerts per 1,000 employee-days."""
    truth = tmp_path / "truth.json"
    code, _, err = run_cli(capsys, "simulate", "--profile", "nope", "--days", "1", "--employees", "5",
                           "--truth-out", str(truth))
    assert code == 1 and "--profile: one of" in err and not truth.exists()
    code, out, err = run_cli(capsys, "simulate", "--profile", "intake", "--per-type", "0", "--days", "1",
                             "--employees", "5", "--truth-out", str(truth), "--json")
    assert code == 0, err
    assert json.loads(out)["profile"] == "intake" and json.loads(truth.read_text())["violations"] == []
    code, _, err = run_cli(capsys, "detect", "run")
    assert code == 0, err
    code, out, err = run_cli(capsys, "detect", "evaluate", "--truth", str(truth))
    assert code == 0, err
    # zero false alerts over 5 employee-days shows nothing: the 95% upper bound is 599.1
    assert ("violation-free month: 0.0 false alerts per 1,000 employee-days, 95% upper bound "
            "599.146 over 5 employee-days (goal <= 1: not shown)") in " ".join(out.split()), out
    code, out, err = run_cli(capsys, "detect", "evaluate", "--truth", str(truth), "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["false_alerts_upper_95_per_1000_employee_days"] == 599.146 and got["goal"] == "not shown"
