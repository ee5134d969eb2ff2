"""The grants CLI in-process (``idrs.cli.main``) on SQLite and PostgreSQL, with the real clock."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pyotp
import pytest

import idrs.cli.grants  # noqa: F401 - registers the commands (the lead adds it to _register)
from idrs.audit.checkpoint import ensure_signing_key
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.people import passwords
from idrs.people import service as people
from tests.integration.cli_helpers import run_cli as _run
from tests.integration.cli_helpers import sign_in_for_cli as _sign_in
from tests.integration.grants_world import CHEAP_HASHER


def test_grant_lifecycle_through_the_cli(db_url, home, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(passwords, "_HASHER", CHEAP_HASHER)
    monkeypatch.setenv("IDRS_HOME", str(home))
    monkeypatch.setenv("IDRS_DATABASE_URL", db_url)
    a = App(
        settings=Settings(database_url=db_url, home=home),
        engine=make_engine(db_url),
        keyring=Keyring.load(home),
    )
    ensure_signing_key(home, a.settings.audit_origin)
    creds = {}
    for seid, roles, tin, kind in [
        ("PO001", "privacy_officer", "900-44-0001", "employee"),
        ("AO001", "authorizing_official", "900-44-0002", "employee"),
        ("SA001", "security_admin", "900-44-0003", "employee"),
        ("DT001", "examiner", "900-44-0004", "contractor"),
    ]:
        creds[seid] = people.create_employee(
            a, unax_attested_at=a.clock.now(), seid=seid, name=seid, tin=tin, roles=roles, kind=kind
        )
    text = tmp_path / "agreement.txt"
    text.write_text("I will protect return information.\n")
    db = ("--db", db_url)
    code, out, err = _run(
        capsys, *db, "agreement", "add", "--title", "NDA", "--file", str(text), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sha256"] == hashlib.sha256(text.read_bytes()).hexdigest()
    assert _run(capsys, *db, "clearance", "verify", "--seid", "DT001", "--by", "SA001")[0] == 0
    assert _run(capsys, *db, "training", "attest", "--seid", "DT001")[0] == 0
    today = datetime.now(UTC).date().isoformat()
    base = [
        "grant",
        "request",
        "--principal",
        "DT001",
        "--purpose",
        "data migration",
        "--basis",
        "IRC 6103(n); contract 00-1",
        "--commands",
        "ENMOD,IMFOL",
        "--classes",
        "identity,return",
        "--population",
        "anonymized",
        "--start",
        today,
    ]
    code, out, err = _run(capsys, *db, *base, "--days", "200", "--json")
    assert code == 1 and "--renewal-of" in err and len(err.strip().splitlines()) == 1
    code, out, err = _run(capsys, *db, *base, "--commands", "ENMOD,NOPE", "--json")
    assert code == 1 and "NOPE" in err
    code, out, err = _run(capsys, *db, *base, "--json")
    assert code == 0, err
    req = json.loads(out)
    assert req["status"] == "pending_approval"
    gid = str(req["grant_id"])
    for seid in ("PO001", "AO001"):
        _sign_in(a, seid)
        otp = pyotp.TOTP(creds[seid]["totp_secret"]).now()
        code, out, err = _run(capsys, *db, "grant", "approve", gid, "--otp", otp, "--json")
        assert code == 0, err
    assert json.loads(out)["status"] == "approved"
    code, out, err = _run(capsys, *db, "grant", "show", gid, "--json")
    shown = json.loads(out)
    assert shown["status"] == "active" and shown["population"] == "anonymized"
    assert shown["prerequisites"]["clearance_verified"] is True
    assert shown["prerequisites"]["agreement_signed"] is False
    code, out, err = _run(capsys, *db, "grant", "list", "--json")
    assert [g["grant_id"] for g in json.loads(out)["grants"]] == [int(gid)]
    report = tmp_path / "report.json"
    code, out, err = _run(
        capsys, *db, "oversight", "report", "--grant", gid, "--format", "json", "--out", str(report)
    )
    assert code == 0, err
    rep = json.loads(report.read_text())
    assert {"potential", "actual", "checkpoint"} <= set(rep)
    assert rep["potential"][0]["seid"] == "DT001"
    assert rep["potential"][0]["grants"][0]["population"] == "anonymized"
    html = tmp_path / "report.html"
    assert (
        _run(
            capsys,
            *db,
            "oversight",
            "report",
            "--seids",
            "DT001,PO001",
            "--format",
            "html",
            "--out",
            str(html),
        )[0]
        == 0
    )
    assert "<html" in html.read_text() and "Potential access" in html.read_text()
    code, out, err = _run(
        capsys,
        *db,
        "export",
        "destroy",
        "X-0000000000000000",
        "--method",
        "shredded",
        "--witness",
        "SA001",
    )
    assert code == 1 and "no export" in err
    a.engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_settings():
    from idrs.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
