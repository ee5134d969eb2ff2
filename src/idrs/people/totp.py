"""TOTP second factor (RFC 6238 via pyotp): 30-second steps, ±1 step for clock drift.

A code is accepted only for a time step later than the last one the employee used, so a code
cannot be replayed within its window (nor an older one after a newer one was used).
Callers: people.auth. Records nothing.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
DRIFT_STEPS = 1


class BadCode(Exception):
    """The code is wrong, too old, or already used (internal: sign-in says AUTH_FAILED)."""


def new_secret() -> str:
    return pyotp.random_base32()


def step_of(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator app shows at ``when`` (tests, the demo's helper command)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).at(when)


def check_code(secret: str, code: str, now: datetime, last_step: int) -> int:
    """Return the time step ``code`` belongs to; BadCode if wrong or not newer than last_step."""
    code = (code or "").strip()
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        raise BadCode
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = step_of(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if step <= last_step:
                raise BadCode  # replay: this window (or a later one) was already used
            return step
    raise BadCode


def provisioning_uri(secret: str, seid: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=seid, issuer_name="idrs")
