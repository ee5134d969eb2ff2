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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import world as world_mod

CHROMIUM = os.environ.get("IDRS_CHROMIUM", "/usr/bin/chromium")
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


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start in time")


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
        _wait(url + "/signin", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

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
        if seid in self.pages:
            return self.pages[seid]
        ctx = self.browser.new_context(
            base_url=self.base_url,  # type: ignore[attr-defined]
            viewport={"width": 1280, "height": 900},
        )
        ctx.set_default_timeout(10_000)
        page = ctx.new_page()
        page.goto("/signin")
        page.get_by_label("SEID").fill(seid)
        page.get_by_label("Password").fill(self.world.creds[seid]["password"])
        page.get_by_label("One-time code").fill(self.world.code(seid))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/research")
        self.pages[seid] = page
        return page


@pytest.fixture(scope="session")
def desk(browser: object, base_url: str, world: world_mod.World) -> Desk:
    return Desk(browser, base_url, world)


def shot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
