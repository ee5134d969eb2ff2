"""TOTP codes: drift window, replay refusal (pure; no clock but the one passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from idrs.people import totp

NOW = datetime(2026, 3, 2, 14, 0, 10, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_current_code_gives_its_step():
    assert totp.check_code(SECRET, totp.code_at(SECRET, NOW), NOW, 0) == totp.step_of(NOW)


@pytest.mark.parametrize("shift", [-30, 30])
def test_one_step_of_drift_is_accepted(shift):
    code = totp.code_at(SECRET, NOW + timedelta(seconds=shift))
    assert totp.check_code(SECRET, code, NOW, 0) == totp.step_of(NOW) + shift // 30


@pytest.mark.parametrize("shift", [-90, 90])
def test_codes_outside_the_window_are_refused(shift):
    with pytest.raises(totp.BadCode):
        totp.check_code(SECRET, totp.code_at(SECRET, NOW + timedelta(seconds=shift)), NOW, 0)


def test_a_used_step_cannot_be_replayed_nor_an_older_one():
    step = totp.check_code(SECRET, totp.code_at(SECRET, NOW), NOW, 0)
    with pytest.raises(totp.BadCode):
        totp.check_code(SECRET, totp.code_at(SECRET, NOW), NOW, step)
    with pytest.raises(totp.BadCode):
        totp.check_code(SECRET, totp.code_at(SECRET, NOW - timedelta(seconds=30)), NOW, step)
    later = NOW + timedelta(seconds=30)
    assert totp.check_code(SECRET, totp.code_at(SECRET, later), later, step) == step + 1


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", None])
def test_malformed_codes_are_refused(bad):
    with pytest.raises(totp.BadCode):
        totp.check_code(SECRET, bad, NOW, 0)
