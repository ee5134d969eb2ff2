"""Grant states from the clock, scope, the approval rule, term checks (pure, tables)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from idrs.config import Settings
from idrs.errors import IdrsError, ValidationFailed
from idrs.grants import rules
from idrs.grants.facts import GrantFacts, cedar_context, visible_classes
from idrs.masterfile.screens import Sensitivity

START = date(2026, 3, 8)  # a Sunday
T0 = datetime(2026, 3, 8, tzinfo=UTC)


@pytest.mark.parametrize(("status", "now", "state"), [
    ("pending_approval", T0 - timedelta(days=1), "pending_approval"),
    ("pending_approval", T0 + timedelta(hours=23, minutes=30), "pending_approval"),
    ("approved", T0 - timedelta(seconds=1), "approved"),
    ("approved", T0, "active"),
    ("approved", T0 + timedelta(days=119, hours=23, minutes=59), "active"),
    ("approved", T0 + timedelta(days=120), "expired"),  # day 121
    ("pending_approval", T0 + timedelta(days=120), "expired"),
    ("revoked", T0 + timedelta(days=3), "revoked"),
    ("revoked", T0 + timedelta(days=300), "revoked"),
    ("ended", T0 + timedelta(days=3), "ended"),
])
def test_state_of(status, now, state):
    assert rules.state_of(status, START, 120, now) == state


@pytest.mark.parametrize(("state", "code"), [
    ("pending_approval", "GRANT_PENDING_APPROVAL"), ("approved", "GRANT_NOT_STARTED"),
    ("expired", "GRANT_EXPIRED"), ("ended", "GRANT_EXPIRED"), ("revoked", "GRANT_REVOKED"),
])
def test_state_reasons(state, code):
    gf = GrantFacts(True, state, frozenset(), frozenset(), "all", False, None, True, True, True,
                    outside=True)
    assert gf.reason == code


def test_inside_employee_without_grant_has_no_grant_reason():
    gf = GrantFacts(False, "none", frozenset(), frozenset(), "none", False, None, False, True,
                    False, outside=False)
    assert gf.reason is None
    assert GrantFacts(False, "none", frozenset(), frozenset(), "none", False, None, False, True,
                      False, outside=True).reason == "NO_GRANT"


@pytest.mark.parametrize(("cmd", "cmds", "classes", "pop", "changes", "expected"), [
    ("ENMOD", {"ENMOD"}, {"identity"}, "all", False, (True, True)),
    ("ENMOD", {"ENMOD"}, {"return"}, "all", False, (True, False)),
    ("RTVUE", {"ENMOD"}, {"return"}, "all", False, (False, True)),
    ("ADJ54", {"ADJ54"}, {"return"}, "all", False, (False, True)),
    ("ADJ54", {"ADJ54"}, {"return"}, "all", True, (True, True)),
    ("ADJ54", {"ADJ54"}, {"return"}, "anonymized", True, (False, True)),
    ("NAMES", {"NAMES"}, {"identity"}, "anonymized", False, (False, True)),
    ("NAMES", {"NAMES"}, {"identity"}, "cases", False, (True, True)),
])
def test_in_scope(cmd, cmds, classes, pop, changes, expected):
    assert rules.in_scope(cmd, cmds, classes, pop, changes) == expected


def test_training_window():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    assert rules.training_current(now - timedelta(days=364), now)
    assert not rules.training_current(now - timedelta(days=365), now)
    assert not rules.training_current(None, now)


def test_term_checks():
    s = Settings()
    assert rules.check_term(START, None, None, False, s) == 120
    assert rules.check_term(START, None, START + timedelta(days=30), False, s) == 30
    assert rules.check_term(START, 200, None, True, s) == 200
    for days, end, renewal in [(121, None, False), (0, None, False), (None, START, False),
                               (None, START - timedelta(days=1), False), (241, None, True),
                               (10, START + timedelta(days=11), False)]:
        with pytest.raises(ValidationFailed):
            rules.check_term(START, days, end, renewal, s)


def test_parse_commands_and_classes():
    assert rules.parse_commands("imfol, ENMOD,ENMOD") == ["ENMOD", "IMFOL"]
    assert rules.parse_classes("Return,identity") == ["identity", "return"]
    for bad in ("", "ENMOD,FOO"):
        with pytest.raises(ValidationFailed):
            rules.parse_commands(bad)
    with pytest.raises(ValidationFailed):
        rules.parse_classes("identity,secret")


def test_approval_rule_from_settings_fails_closed():
    assert rules.ApprovalRule.from_settings(Settings()) == rules.DEFAULT_RULE
    assert rules.DEFAULT_RULE.roles == ("privacy_officer", "authorizing_official")
    with pytest.raises(IdrsError):
        rules.ApprovalRule.from_settings(Settings(grant_approval_roles=" , "))


def _gf(**kw):
    base = dict(has_grant=True, state="active", commands=frozenset({"ENMOD"}),
                classes=frozenset({"identity"}), population="all", allow_changes=False,
                daily_limit=5, agreement_signed=True, training_current=True,
                clearance_verified=True, outside=True, grant_id=1, command_in_scope=True,
                class_in_scope=True)
    base.update(kw)
    return GrantFacts(**base)


def test_cedar_context_and_masking_classes():
    ctx = cedar_context(_gf())
    assert ctx["grant_covers"] and ctx["grant_widens"] and not ctx["grant_daily_exceeded"]
    assert cedar_context(_gf(), rate_count=5)["grant_daily_exceeded"]
    assert not cedar_context(_gf(), rate_count=5, seen_today=True)["grant_daily_exceeded"]
    assert not cedar_context(_gf(population="cases"))["grant_widens"]
    assert not cedar_context(_gf(state="expired"))["grant_covers"]
    role = frozenset({Sensitivity.RETURN})
    assert visible_classes(_gf(), role) == frozenset({Sensitivity.IDENTITY})
    assert visible_classes(_gf(outside=False), role) == {Sensitivity.IDENTITY, Sensitivity.RETURN}
    assert visible_classes(_gf(state="revoked"), role) == role
