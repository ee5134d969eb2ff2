"""One slow request never stalls the others (SQLite and PostgreSQL).

Another process holds the database's write lock; a research call then waits for it (at most
``IDRS_DB_LOCK_TIMEOUT`` seconds) in the research worker pool, while the public checkpoint
is answered at once; the research call then refuses with 503 AUDIT_UNAVAILABLE, never 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from idrs.api.app import create_app
from idrs.audit import service as audit_service
from idrs.audit.checkpoint import ensure_signing_key
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.people import service, totp
from tests import aio
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

ROOT = Path(__file__).resolve().parents[2]
#: long enough that the research call is surely still waiting when one in-process GET of
#: the checkpoint has been answered; short enough for the test to see it give up
LOCK_WAIT = 3.0


@contextlib.contextmanager
def _held_lock(url: str) -> Iterator[None]:
    """Another process holds the write lock while the block runs (readiness: it says so)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.lock_holder", url],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def _app(db_url: str, home: Path, clock) -> App:
    settings = Settings(database_url=db_url, home=home, db_lock_timeout=LOCK_WAIT)
    engine = make_engine(db_url, lock_timeout=LOCK_WAIT)
    return App(settings=settings, engine=engine, keyring=Keyring.load(home), clock=clock)


async def _scenario(app: App) -> tuple[int, bool, httpx.Response]:
    api = create_app(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://idrs") as c:
        creds = service.create_employee(app, unax_attested_at=app.clock.now(), seid="EX901",
                                        name="EX901", tin="900-48-0901", roles="examiner")
        f.open_case(app, "EX901", f.CARTER, "C-9")
        otp = totp.code_at(creds["totp_secret"], app.clock.now())
        body = {"seid": "EX901", "password": creds["password"], "otp": otp}
        token = (await c.post("/api/v1/sessions", json=body)).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/api/v1/accounts/{f.CARTER}/ENMOD"
        with _held_lock(str(app.engine.url.render_as_string(hide_password=False))):
            research = asyncio.create_task(c.get(url, params={"case": "C-9"}, headers=headers))
            pool = None
            while pool is None or pool.borrowed_tokens == 0:  # the call is in its worker
                assert not research.done(), research.result().text
                await asyncio.sleep(0.01)
                pool = getattr(api.state, "research_pools", {}).get(asyncio.get_running_loop())
            checkpoint = await c.get("/api/v1/audit/checkpoint")
            pending = not research.done()
            answer = await research
    return checkpoint.status_code, pending, answer


def test_the_checkpoint_answers_while_research_waits_on_a_locked_database(db_url, home, clock):
    app = _app(db_url, home, clock)
    try:
        f.carter_household(app)
        ensure_signing_key(app.settings.home, name=app.settings.audit_origin)
        audit_service.checkpoint_now(app)
        status, pending, answer = aio.run(lambda: _scenario(app))
        assert status == 200
        assert pending  # answered while the research call was still waiting for the lock
        assert answer.status_code == 503, answer.text
        assert [r["code"] for r in answer.json()["reasons"]] == ["AUDIT_UNAVAILABLE"]
        assert answer.headers["content-type"].startswith("application/problem+json")
    finally:
        app.engine.dispose()


def test_a_locked_database_answers_503_naming_only_the_request(db_url, home, clock):
    """Sign-out on a database another process keeps locked: the answer is 503 with the
    request id, never the driver's text (statements, lock names) nor a 500."""
    from fastapi.testclient import TestClient

    from idrs.api.middleware import UNAVAILABLE
    from idrs.people import auth

    app = _app(db_url, home, clock)
    try:
        ensure_signing_key(app.settings.home, name=app.settings.audit_origin)
        creds = service.create_employee(app, unax_attested_at=app.clock.now(), seid="EX902",
                                        name="EX902", tin="900-48-0902", roles="examiner")
        token = auth.sign_in(app, "EX902", creds["password"],
                             totp.code_at(creds["totp_secret"], app.clock.now()), "test").token
        with TestClient(create_app(app)) as c, _held_lock(
            str(app.engine.url.render_as_string(hide_password=False))
        ):
            r = c.delete("/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["detail"] == body["error"] == UNAVAILABLE and body["request_id"]
        for leak in ("Error", "locked", "lock", "UPDATE", "SELECT", "INSERT", "sqlite", "psycopg"):
            assert leak not in r.text.replace(UNAVAILABLE, "")
    finally:
        app.engine.dispose()
