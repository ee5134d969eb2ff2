"""Security administration through the CLI in-process (``idrs.cli.main``), SQLite and PostgreSQL.

The commands act as the security administrator signed in with ``idrs login`` (the session
token under IDRS_HOME); the real clock runs.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idrs.audit.checkpoint import ensure_signing_key
from idrs.cli.people import token_path
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.people import passwords
from idrs.people import service as people
from idrs.people.models import Employee
from tests.integration.cli_helpers import run_cli as _run
from tests.integration.cli_helpers import sign_in_for_cli as _sign_in


def _profile(a: App, seid: str) -> tuple[str, str]:
    with a.engine.connect() as conn:
        row = conn.execute(select(Employee.roles, Employee.profile).where(Employee.seid == seid))
        return tuple(row.one())  # type: ignore[return-value]


@pytest.fixture
def a(db_url, home, monkeypatch) -> App:
    passwords.use_weak_hashing_for_tests_only()
    monkeypatch.setenv("IDRS_HOME", str(home))
    monkeypatch.setenv("IDRS_DATABASE_URL", db_url)
    app = App(
        settings=Settings(database_url=db_url, home=home),
        engine=make_engine(db_url),
        keyring=Keyring.load(home),
    )
    ensure_signing_key(home, app.settings.audit_origin)
    people.create_unit(
        app, "WIAM", "Accounts management", ceiling="ENMOD,IMFOL,TXMOD,INOLE,NAMES,ENREQ,REQ77"
    )
    people.create_unit(app, "SBEX", "Examination")
    for seid, tin, roles, unit in [
        ("SA2", "900-42-0001", "security_admin", "WIAM"),
        ("SA3", "900-42-0002", "security_admin", "WIAM"),
        ("CS1", "900-42-0003", "csr", "WIAM"),
        ("EX1", "900-42-0004", "examiner", "SBEX"),
    ]:
        people.create_employee(
            app, seid=seid, name=f"Person {seid}", tin=tin, roles=roles, unit=unit
        )
    yield app
    app.engine.dispose()


def test_administration_through_the_cli(a, capsys):
    code, _, err = _run(capsys, "employee", "list")
    assert code == 1 and "AUTH_REQUIRED" in err  # nobody signed in here
    _sign_in(a, "CS1")
    code, _, err = _run(capsys, "unit", "list")
    assert code == 1 and "NOT_IN_PROFILE" in err

    _sign_in(a, "SA2")
    code, out, err = _run(capsys, "unit", "list", "--json")
    assert code == 0, err
    units = {u["code"]: u for u in json.loads(out)["units"]}
    assert units["WIAM"]["administered"] and not units["SBEX"]["administered"]
    code, out, _ = _run(capsys, "employee", "list", "--json")
    rows = json.loads(out)["employees"]
    assert [e["seid"] for e in rows] == ["CS1", "SA2", "SA3"]
    assert "900-42-0003" not in out and "tin" not in rows[0]
    code, out, _ = _run(capsys, "employee", "list")  # the table
    assert code == 0 and "CS1" in out and "SA3" in out
    code, _, err = _run(capsys, "employee", "list", "--unit", "SBEX")
    assert code == 1 and "OUT_OF_SCOPE" in err

    before = _profile(a, "CS1")
    code, _, err = _run(
        capsys, "employee", "set-profile", "--seid", "CS1", "--codes", "ENMOD,ADJ54"
    )
    assert code == 1 and "CEILING_EXCEEDED" in err and "ADJ54" in err
    code, _, err = _run(capsys, "employee", "set-profile", "--seid", "CS1", "--codes", "ENMOD,FOO")
    assert code == 1 and "codes: unknown command code FOO" in err
    code, _, err = _run(capsys, "employee", "set-profile", "--seid", "SA2", "--codes", "")
    assert code == 1 and "SELF_ADMINISTRATION" in err
    code, _, err = _run(capsys, "employee", "set-profile", "--codes", "ENMOD")
    assert code == 2  # usage: --seid is required
    assert _profile(a, "CS1") == before

    code, out, err = _run(
        capsys,
        "employee",
        "set-profile",
        "--seid",
        "CS1",
        "--roles",
        "csr,manager",
        "--note",
        "acting lead",
        "--json",
    )
    assert code == 0, err
    change = json.loads(out)
    assert change["status"] == "pending" and change["restricted"] == ["role:manager"]
    cid = str(change["change_id"])
    code, _, err = _run(capsys, "employee", "confirm-change", cid)
    assert code == 1 and "SELF_APPROVAL" in err
    assert _profile(a, "CS1") == before

    _sign_in(a, "SA3")
    code, out, _ = _run(capsys, "employee", "changes", "--json")
    assert [c["change_id"] for c in json.loads(out)["changes"]] == [int(cid)]
    code, out, err = _run(capsys, "employee", "confirm-change", cid, "--note", "ok")
    assert code == 0, err
    assert f"change {cid} for CS1: confirmed" in out
    assert _profile(a, "CS1")[0] == "csr,manager"
    code, _, err = _run(capsys, "employee", "reject-change", cid)
    assert code == 1 and "not pending" in err

    code, out, err = _run(
        capsys, "unit", "set-ceiling", "--code", "WIAM", "--ceiling", "ENMOD,IMFOL", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["trimmed"]["CS1"] == ["ENREQ", "INOLE", "NAMES", "REQ77", "TXMOD"]
    code, out, err = _run(capsys, "employee", "deactivate", "--seid", "CS1")
    assert code == 0 and "CS1 deactivated" in out
    code, out, err = _run(capsys, "employee", "show", "--seid", "CS1", "--json")
    shown = json.loads(out)
    assert shown["active"] is False and [c["status"] for c in shown["changes"]] == ["confirmed"]
    code, out, _ = _run(capsys, "employee", "reactivate", "--seid", "CS1", "--json")
    assert code == 0 and json.loads(out)["active"] is True
    token_path(a.settings.home).unlink()


def test_research_codes_for_an_auditor_wait_for_a_second_admin_in_the_cli(a, capsys):
    """Issue 13.10 through `idrs employee set-profile`: an auditor given research codes
    waits for a second administrator; the requester's own confirmation is refused."""
    people.create_employee(a, seid="AU1", name="Person AU1", tin=None, roles="auditor", unit="WIAM")
    _sign_in(a, "SA2")
    code, out, err = _run(
        capsys, "employee", "set-profile", "--seid", "AU1", "--codes", "ENMOD,NAMES", "--json"
    )
    assert code == 0, err
    change = json.loads(out)
    assert change["status"] == "pending" and change["restricted"] == ["code:ENMOD", "code:NAMES"]
    cid = str(change["change_id"])
    code, _, err = _run(capsys, "employee", "confirm-change", cid)
    assert code == 1 and "SELF_APPROVAL" in err
    assert _profile(a, "AU1") == ("auditor", "")
    _sign_in(a, "SA3")
    code, _, err = _run(capsys, "employee", "confirm-change", cid)
    assert code == 0, err
    assert _profile(a, "AU1") == ("auditor", "ENMOD,NAMES")
