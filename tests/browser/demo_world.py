"""The demo of ``make demo`` for the browser tests: the real command, then the real server.

:func:`build` runs ``idrs demo --no-serve --taxpayers N`` (what ``make demo`` runs, minus the
serving, on a small population) into a fresh ``IDRS_HOME`` with a fresh SQLite database, and
reads the demo employees' credentials from ``IDRS_HOME/demo-credentials.json``;
:func:`serve` then starts ``idrs serve`` on a free loopback port. :func:`detect` is the
operator's ``idrs detect run`` on the same database. Nothing here touches the database
directly: everything the tests see comes from the demo command and the pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from idrs.people import totp
from tests import ready
from tests.browser.conftest import _free_port

IDRS = str(Path(sys.executable).parent / "idrs")  # the venv's console script, as make runs it
TAXPAYERS = 200


@dataclass
class Demo:
    root: Path
    env: dict[str, str]
    people: dict[str, dict[str, Any]]
    printed: str  # what ``idrs demo`` printed on stdout
    year: str = ""  # a tax year of the examiner's case taxpayer (read at the prompt)
    last_step: dict[str, int] = field(default_factory=dict)

    @property
    def examiner(self) -> dict[str, Any]:
        return self.people["DEMOEX1"]

    def code(self, seid: str) -> str:
        """A one-time code of ``seid`` not used before (a TOTP step serves once per person):
        the current step's, or the next one's when the current step was already used."""
        now = int(time.time()) // totp.STEP_SECONDS
        step = max(now, self.last_step.get(seid, -1) + 1)
        if step > now + totp.DRIFT_STEPS:
            time.sleep((step - totp.DRIFT_STEPS) * totp.STEP_SECONDS - time.time() + 0.5)
        self.last_step[seid] = step
        when = datetime.fromtimestamp(step * totp.STEP_SECONDS + 1, UTC)
        return totp.code_at(self.people[seid]["totp_secret"], when)

    def idrs(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own console script
            [IDRS, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )


def build(root: Path, taxpayers: int = TAXPAYERS) -> Demo:
    """``idrs demo --no-serve`` into ``root`` (IDRS_HOME ``root/home``, SQLite ``root/idrs.db``)."""
    env = {**os.environ, "IDRS_HOME": str(root / "home"),
           "IDRS_DATABASE_URL": f"sqlite:///{root / 'idrs.db'}"}
    demo = Demo(root, env, {}, "")
    out = demo.idrs("demo", "--no-serve", "--taxpayers", str(taxpayers))
    if out.returncode != 0:
        raise RuntimeError(f"idrs demo failed ({out.returncode}): {out.stderr[-2000:]}")
    demo.printed = out.stdout
    creds = root / "home" / "demo-credentials.json"
    assert creds.stat().st_mode & 0o077 == 0, "the credentials file must be private (0600)"
    demo.people = {p["seid"]: p for p in json.loads(creds.read_text())}
    return demo


@contextmanager
def serve(demo: Demo) -> Iterator[str]:
    """``idrs serve`` on a free loopback port for the duration; yields its base URL."""
    port = _free_port()
    log = (demo.root / "serve.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [IDRS, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=demo.root, env=demo.env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready.until(lambda: ready.answering(url + "/signin"), proc, "idrs serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def detect(demo: Demo) -> str:
    """The operator's detection run (``idrs detect run``) over the demo's audit log."""
    out = demo.idrs("detect", "run")
    if out.returncode != 0:
        raise RuntimeError(f"idrs detect run failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout
