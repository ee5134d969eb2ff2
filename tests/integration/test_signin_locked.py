"""A locked account answers exactly like a wrong password, through the API, the web sign-in
page and ``idrs login`` alike (SQLite and PostgreSQL): the same status, the same body, the
same work (one password-hash verification), so a stranger cannot learn which SEIDs exist
or are locked. Only the audit entry says ACCOUNT_LOCKED.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.models import AuditEntry
from idrs.clock import SystemClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import AccessDenied
from idrs.people import auth, passwords, service, totp
from tests.integration.cli_helpers import run_cli

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ALERT = re.compile(r'<div class="refusal" role="alert">.*?</div>', re.S)


@pytest.fixture
def world(db_url, home, monkeypatch) -> Iterator[dict[str, Any]]:
    passwords.use_weak_hashing_for_tests_only()
    monkeypatch.setenv("IDRS_HOME", str(home))
    monkeypatch.setenv("IDRS_DATABASE_URL", db_url)
    # the real clock: the CLI, in this process, reads it too
    app = App(settings=Settings(database_url=db_url, home=home), engine=make_engine(db_url),
              keyring=Keyring.load(home), clock=SystemClock())
    ensure_signing_key(home, app.settings.audit_origin)
    people = {
        seid: service.create_employee(app, unax_attested_at=app.clock.now(), seid=seid,
                                      name=seid, tin=f"900-47-{n:04d}", roles="examiner")
        for n, seid in enumerate(["LOCKED1", "OPEN1"], start=1)
    }
    for i in range(app.settings.lockout_threshold):
        with pytest.raises(AccessDenied):
            auth.sign_in(app, "LOCKED1", f"wrong-{i}", "000000", "test")
    yield {"app": app, "people": people}
    app.engine.dispose()


def _attempts(w: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(SEID, password) of each kind of refused attempt; the locked one has the RIGHT one."""
    return {
        "locked": ("LOCKED1", w["people"]["LOCKED1"]["password"]),
        "wrong password": ("OPEN1", "not-the-password"),
        "no such SEID": ("NOSUCH1", "whatever-1"),
    }


def _code(w: dict[str, Any], seid: str) -> str:
    creds = w["people"].get(seid) or w["people"]["OPEN1"]
    return totp.code_at(creds["totp_secret"], w["app"].clock.now())


def _last_reasons(app: App) -> list[str]:
    with app.engine.connect() as conn:
        leaf = conn.execute(
            select(AuditEntry.leaf_input).order_by(AuditEntry.idx.desc()).limit(1)
        ).scalar_one()
    return json.loads(bytes(leaf))["reasons"]  # type: ignore[no-any-return]


def test_the_api_answers_a_locked_account_like_a_wrong_password(world, monkeypatch):
    verifications: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002
            verifications.append(str(password))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_HASHER", Counting(time_cost=1, memory_cost=1024,
                                                        parallelism=1))
    answers = {}
    with TestClient(create_app(world["app"])) as c:
        for kind, (seid, password) in _attempts(world).items():
            verifications.clear()
            r = c.post("/api/v1/sessions",
                       json={"seid": seid, "password": password, "otp": _code(world, seid)})
            body = r.json()
            body.pop("request_id")
            answers[kind] = (r.status_code, body, len(verifications))
            if kind == "locked":
                assert _last_reasons(world["app"]) == ["ACCOUNT_LOCKED"]  # the log knows
    assert answers["locked"] == answers["wrong password"] == answers["no such SEID"]
    assert answers["locked"][0] == 401 and answers["locked"][2] == 1


def test_the_web_page_answers_a_locked_account_like_a_wrong_password(world):
    pages = {}
    with TestClient(create_app(world["app"])) as c:
        for kind, (seid, password) in _attempts(world).items():
            csrf = CSRF.search(c.get("/signin").text)
            assert csrf
            r = c.post("/signin", data={"csrf": csrf.group(1), "seid": seid,
                                        "password": password, "otp": _code(world, seid)})
            alert = ALERT.search(r.text)
            assert alert, r.text[:500]
            pages[kind] = (r.status_code, alert.group(0))
    assert pages["locked"] == pages["wrong password"] == pages["no such SEID"]
    assert pages["locked"][0] == 401 and "ACCOUNT_LOCKED" not in pages["locked"][1]


def test_idrs_login_answers_a_locked_account_like_a_wrong_password(world, capsys):
    outputs = {}
    for kind, (seid, password) in _attempts(world).items():
        code, out, err = run_cli(capsys, "login", "--seid", seid, "--password", password,
                                 "--otp", _code(world, seid))
        outputs[kind] = (code, out, err)
    assert outputs["locked"] == outputs["wrong password"] == outputs["no such SEID"]
    assert outputs["locked"][0] == 1 and "AUTH_FAILED" in outputs["locked"][2]
