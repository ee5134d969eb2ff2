"""Every setting is a field of config.Settings, read from its IDRS_* variable and checked.

The adjustment and grant settings were separate BaseSettings classes; their variables
(IDRS_ADJ_*, IDRS_GRANT_*), defaults and bounds are the same on config.Settings.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from idrs.adjustments.rules import Thresholds
from idrs.config import Settings
from idrs.grants import rules

ENV = {
    "IDRS_ADJ_ABATEMENT_CENTS": ("adj_abatement_cents", "5000", 5000),
    "IDRS_ADJ_INCREASE_CENTS": ("adj_increase_cents", "7000", 7000),
    "IDRS_ADJ_REFUND_WINDOW_DAYS": ("adj_refund_window_days", "0", 0),
    "IDRS_ADJ_PENDING_HOURS": ("adj_pending_hours", "2", 2),
    "IDRS_GRANT_APPROVAL_ROLES": ("grant_approval_roles", "privacy_officer", "privacy_officer"),
    "IDRS_GRANT_MAX_DAYS": ("grant_max_days", "30", 30),
    "IDRS_GRANT_RENEWAL_MAX_DAYS": ("grant_renewal_max_days", "60", 60),
    "IDRS_GRANT_TRAINING_VALID_DAYS": ("grant_training_valid_days", "90", 90),
}
DEFAULTS = {
    "adj_abatement_cents": 100_000, "adj_increase_cents": 1_000_000,
    "adj_refund_window_days": 60, "adj_pending_hours": 72,
    "grant_approval_roles": "privacy_officer,authorizing_official",
    "grant_max_days": 120, "grant_renewal_max_days": 240, "grant_training_valid_days": 365,
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert {k: getattr(s, k) for k in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize("var", sorted(ENV))
def test_each_variable_sets_its_field(clean_env: pytest.MonkeyPatch, var: str) -> None:
    field, raw, value = ENV[var]
    clean_env.setenv(var, raw)
    assert getattr(Settings(), field) == value


@pytest.mark.parametrize(("var", "raw"), [
    ("IDRS_ADJ_ABATEMENT_CENTS", "-1"), ("IDRS_ADJ_INCREASE_CENTS", "-1"),
    ("IDRS_ADJ_REFUND_WINDOW_DAYS", "-1"), ("IDRS_ADJ_PENDING_HOURS", "0"),
    ("IDRS_GRANT_MAX_DAYS", "0"), ("IDRS_GRANT_RENEWAL_MAX_DAYS", "0"),
    ("IDRS_GRANT_TRAINING_VALID_DAYS", "0"), ("IDRS_ADJ_PENDING_HOURS", "soon"),
])
def test_out_of_bounds_is_refused_naming_the_field(clean_env: pytest.MonkeyPatch, var: str,
                                                   raw: str) -> None:
    clean_env.setenv(var, raw)
    with pytest.raises(ValidationError, match=ENV[var][0]):
        Settings()


def test_the_rules_read_the_settings(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IDRS_ADJ_PENDING_HOURS", "2")
    clean_env.setenv("IDRS_GRANT_APPROVAL_ROLES", " privacy_officer , privacy_officer ")
    s = Settings()
    assert Thresholds.from_settings(s) == Thresholds(pending_hours=2)
    assert rules.ApprovalRule.from_settings(s).roles == ("privacy_officer",)
