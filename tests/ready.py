"""Wait for a slow set-up on a condition, never on a guessed duration.

A server or a child process on a loaded machine may take a second or a minute to be ready;
a deadline in the test turns load into failures. These helpers wait for as long as the
process lives and the condition is false; pytest-timeout (pyproject) is the only cap, a
guard against a real hang rather than a margin.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any


def _exited(proc: subprocess.Popen[Any], what: str) -> RuntimeError:
    err = proc.stderr.read() if proc.stderr else b""
    text = err.decode(errors="replace") if isinstance(err, bytes) else str(err or "")
    return RuntimeError(f"{what} exited with {proc.returncode}: {text[-800:]}")


def until(ready: Callable[[], bool], proc: subprocess.Popen[Any] | None = None,
          what: str = "the process", pause: float = 0.05) -> None:
    """Return once ``ready()`` is true; raise at once if ``proc`` exits before that."""
    while not ready():
        if proc is not None and proc.poll() is not None:
            if ready():
                return
            raise _exited(proc, what)
        time.sleep(pause)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
            return bool(r.status == 200)
    except OSError:
        return False


def serving(proc: subprocess.Popen[Any], port: int, what: str = "idrs serve") -> None:
    """Wait until ``proc`` accepts connections on ``port``."""
    until(lambda: listening(port), proc, what, pause=0.1)
