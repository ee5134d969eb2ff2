"""The command line end to end with --db and IDRS_HOME.

In-process through ``idrs.cli.main`` (the console script's own entry point: same argument
folding, same one-line errors and exit codes) wherever a process of its own adds nothing;
``python -m idrs`` runs in a subprocess once, for what only a real process shows.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest

from idrs.access.service import assign_case
from idrs.audit.events import Actor
from idrs.config import Settings, get_settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from tests.integration import factories as f
from tests.integration.cli_helpers import run_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - argon2 made cheap here

Idrs = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def idrs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Idrs]:
    """``idrs --db DB ARGS`` with IDRS_HOME=home, in this process."""

    def run(home: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("IDRS_HOME", str(home))
        monkeypatch.setenv("IDRS_DATABASE_URL", "sqlite:///must-be-overridden-by-db")
        monkeypatch.setenv("COLUMNS", "200")
        code, out, err = run_cli(capsys, "--db", db, *args)
        return subprocess.CompletedProcess(["idrs", *args], code, out, err)

    yield run
    get_settings.cache_clear()


def idrs_process(home: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m idrs --db DB ARGS`` in a process of its own."""
    env = {**os.environ, "IDRS_HOME": str(home), "COLUMNS": "200"}
    env.pop("IDRS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "idrs", "--db", db, *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_init_employee_login_research(db_url, tmp_path, idrs):
    home = tmp_path / "clihome"
    r = idrs(home, db_url, "init")
    assert r.returncode == 0, r.stderr
    admin = json.loads(r.stdout)
    assert set(admin) == {"seid", "password", "totp_secret"}
    assert idrs(home, db_url, "init").stdout.strip() == ""  # credentials are printed once
    assert stat.S_IMODE(home.stat().st_mode) == 0o700

    r = idrs(
        home,
        db_url,
        "employee",
        "add",
        "--seid",
        "EX300",
        "--name",
        "Eve X",
        "--tin",
        "900-43-0001",
        "--roles",
        "examiner",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    creds = json.loads(r.stdout)
    assert set(creds) == {"seid", "password", "totp_secret"} and creds["seid"] == "EX300"

    engine = make_engine(db_url)
    a = App(
        settings=Settings(database_url=db_url, home=home), engine=engine, keyring=Keyring.load(home)
    )
    f.carter_household(a)
    assign_case(a, seid="EX300", tin=f.CARTER, case_id="C-300", actor=Actor("os:test"))
    engine.dispose()

    code = pyotp.TOTP(creds["totp_secret"]).now()
    r = idrs(
        home, db_url, "login", "--seid", "EX300", "--password", creds["password"], "--otp", code
    )
    assert r.returncode == 0, r.stderr
    token_file = home / "session.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    # UNAX training applies to every employee: none recorded yet, so the research is refused.
    line = _one_line_error(idrs(home, db_url, "research", "ENMOD", f.CARTER, "--case", "C-300"))
    assert "TRAINING_NOT_CURRENT" in line
    r = idrs(home, db_url, "training", "attest", "--seid", "EX300")  # the learning system's record
    assert r.returncode == 0, r.stderr

    r = idrs(home, db_url, "research", "ENMOD", f.CARTER, "--case", "C-300", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"command", "data", "masked", "withheld", "audit_index"}
    assert (
        doc["command"] == "ENMOD"
        and doc["data"]["filing_status_history"][0]["filing_status"] == "MFJ"
    )

    line = _one_line_error(idrs(home, db_url, "research", "ENMOD", "900-12-34", "--case", "C-300"))
    assert "not a TIN" in line
    # A refusal: reason codes on stderr, exit 1.
    line = _one_line_error(idrs(home, db_url, "research", "ENMOD", f.CARTER_SPOUSE))
    assert "refused" in line and "audit index" in line

    r = idrs(home, db_url, "logout")
    assert r.returncode == 0 and not token_file.exists()
    line = _one_line_error(idrs(home, db_url, "research", "ENMOD", f.CARTER, "--case", "C-300"))
    assert "AUTH_REQUIRED" in line


def test_unreachable_database_is_one_line(tmp_path, idrs):
    home = tmp_path / "h"
    Keyring.create(home)
    dead = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    line = _one_line_error(
        idrs(home, dead, "employee", "add", "--seid", "X1", "--name", "X", "--tin",
             "900-43-0002", "--roles", "csr")
    )  # fmt: skip
    assert "database unreachable" in line


def test_the_console_entry_point_in_a_process_of_its_own(tmp_path):
    """What only a real process shows: the module entry point, its exit status, a clean stderr."""
    home = tmp_path / "h"
    Keyring.create(home)
    r = idrs_process(home, "postgresql+psycopg://postgres@127.0.0.1:9/nowhere", "init")
    assert "database unreachable" in _one_line_error(r)
    r = idrs_process(home, "sqlite:///unused.db", "no-such-command")
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_failed_login_and_missing_key_file_are_one_line(tmp_path, idrs):
    home = tmp_path / "h"
    db = f"sqlite:///{tmp_path / 'k.db'}"
    assert idrs(home, db, "init").returncode == 0
    line = _one_line_error(
        idrs(home, db, "login", "--seid", "NOPE1", "--password", "x", "--otp", "123456")
    )
    assert "AUTH_FAILED" in line
    (home / "index.key").unlink()
    line = _one_line_error(idrs(home, db, "research", "ENMOD", f.CARTER))
    assert "key file missing" in line and "index.key" in line


def test_research_table_output_and_names_usage(tmp_path):
    """Rich tables through the CLI's renderer (in-process: no database needed)."""
    from rich.console import Console

    from idrs.cli import research as cli_research

    buf = Console(record=True, width=200)
    old = cli_research.console
    cli_research.console = buf
    try:
        cli_research.show(
            "ENMOD",
            {
                "tin": "900-12-3456",
                "name": {"first": "Ann", "last": "Carter"},
                "filing_status_history": [{"tax_year": 2023, "filing_status": "MFJ"}],
                "markers": [],
            },
        )
    finally:
        cli_research.console = old
    text = buf.export_text()
    assert "900-12-3456" in text and "first: Ann, last: Carter" in text
    assert "filing_status_history" in text and "MFJ" in text and "(none)" in text


def test_demo_sets_up_a_world_whose_printed_sign_in_works(tmp_path, idrs):
    """`idrs demo` (as `make demo` runs it, without serving): credentials 0600, a case for
    the examiner, a signed checkpoint, and the printed research command answers."""
    home = tmp_path / "demohome"
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    r = idrs(home, db, "demo", "--no-serve", "--taxpayers", "300")
    assert r.returncode == 0, r.stderr
    creds_file = home / "demo-credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    people = {p["seid"]: p for p in json.loads(creds_file.read_text())}
    assert {"DEMOEX1", "DEMOMG1", "DEMOAU1", "DT100", "PO100", "AO100"} <= set(people)
    ex = people["DEMOEX1"]
    research_line = next(x for x in r.stdout.splitlines() if " research ENMOD " in x)
    tin, case = research_line.split()[-3], research_line.split()[-1]
    assert case == ex["case"]["case_id"]
    code = pyotp.TOTP(ex["totp_secret"]).now()
    r = idrs(home, db, "login", "--seid", "DEMOEX1", "--password", ex["password"], "--otp", code)
    assert r.returncode == 0, r.stderr
    r = idrs(home, db, "research", "ENMOD", tin, "--case", case, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["command"] == "ENMOD"
    r = idrs(home, db, "audit", "verify")
    assert r.returncode == 0 and "intact" in r.stdout + r.stderr
