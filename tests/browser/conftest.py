"""Browser tests: Playwright for Python driving Debian's Chromium against ``idrs`` on loopback.

One server for the whole session: a fresh SQLite database with a small world built through
the real services (tests/browser/world.py), served by uvicorn on a free loopback port in a
child process. Each employee signs in through the sign-in page once (their browser context
is then reused: a TOTP time step can serve only once). Screenshots go to
tests/browser/artifacts/ (ignored by git).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import ready
from tests.browser import world as world_mod

CHROMIUM = os.environ.get("IDRS_CHROMIUM", "/usr/bin/chromium")
#: how long Playwright waits for a condition (an element, a navigation, an assertion). A cap
#: against a hang, not a margin: every wait returns as soon as its condition holds, and a
#: loaded machine may need many seconds for what takes milliseconds on a quiet one.
TIMEOUT_MS = 90_000

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> world_mod.World:
    return world_mod.build(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def base_url(world: world_mod.World) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "IDRS_DATABASE_URL": world.db_url, "IDRS_HOME": str(world.home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.browser.serve_app", str(port)], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready.until(lambda: ready.answering(url + "/signin"), proc, "the test server")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Desk:
    """One browser context per employee, signed in through the page once."""

    def __init__(self, browser: object, base_url: str, world: world_mod.World) -> None:
        self.browser, self.base_url, self.world = browser, base_url, world
        self.pages: dict[str, object] = {}

    def sign_in(self, seid: str) -> object:
        """``seid``'s page on the research prompt, signed in (again, if the session lapsed).

        The server keeps real time, so on a slow run a session shared by several tests may
        pass its idle limit between them; it is then signed in afresh rather than failing.
        """
        page = self.pages.get(seid)
        if page is None:
            ctx = self.browser.new_context(  # type: ignore[attr-defined]
                base_url=self.base_url,
                viewport={"width": 1280, "height": 900},
            )
            ctx.set_default_timeout(TIMEOUT_MS)
            page = ctx.new_page()
            self.pages[seid] = page
        page.goto("/research")  # type: ignore[attr-defined]
        if "/signin" in page.url:  # type: ignore[attr-defined]
            self._enter(page, seid)
        return page

    def _enter(self, page: Any, seid: str) -> None:
        page.get_by_label("SEID").fill(seid)
        page.get_by_label("Password").fill(self.world.creds[seid]["password"])
        page.get_by_label("One-time code").fill(self.world.code(seid))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/research")


@pytest.fixture(scope="session")
def desk(browser: object, base_url: str, world: world_mod.World) -> Desk:
    return Desk(browser, base_url, world)


def shot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
