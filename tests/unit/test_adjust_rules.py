"""The pure adjustment rules: validation of every field, and every two-person trigger."""

from __future__ import annotations

from datetime import date

import pytest

from idrs.adjustments import rules
from idrs.adjustments.rules import AccountFacts, Thresholds, Trigger

TODAY = date(2026, 3, 2)
T = Thresholds()


def v(command: str, **fields):
    return rules.validate(command, {"reason": "r", **fields}, today=TODAY)


@pytest.mark.parametrize(("raw", "cents"), [
    ("500", 50_000), (500, 50_000), ("0.01", 1), (12.5, 1_250), ("1000.00", 100_000),
    ("1.50", 150),
])
def test_amounts_accepted(raw, cents):
    assert rules.parse_amount(raw) == cents


@pytest.mark.parametrize(("raw", "why"), [
    ("1.005", "two decimals"), (0.001, "two decimals"), (0, "positive"), ("-5", "positive"),
    ("abc", "not a number"), (None, "required"), (True, "required"), ("NaN", "not a number"),
    ("2000000000", "too large"), ("1e30", "too large"), ("Infinity", "not a number"),
])
def test_amounts_refused(raw, why):
    with pytest.raises(ValueError, match=why):
        rules.parse_amount(raw)


def test_adj54_valid():
    c = v("adj54", tax_year=2023, tc="291", amount="250.00")
    assert (c.command, c.tc, c.amount_cents, c.tax_year, c.effective_date) == (
        "ADJ54", "291", 25_000, 2023, TODAY)


@pytest.mark.parametrize(("command", "fields", "problem"), [
    ("ADJ55", {}, "unknown adjustment command"),
    ("ADJ54", {"tax_year": 2023, "tc": "999", "amount": 1}, "tc: 999 is not valid"),
    ("ADJ54", {"tax_year": 2023, "tc": "570", "amount": 1}, "tc: 570 is not valid for ADJ54"),
    ("ADJ54", {"tax_year": 2023, "tc": "290", "amount": "1.001"}, "at most two decimals"),
    ("ADJ54", {"tax_year": 2023, "tc": "290", "amount": 0}, "must be positive"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": -3}, "must be positive"),
    ("ADJ54", {"tc": "291", "amount": 3}, "tax_year: required"),
    ("ADJ54", {"tax_year": 2027, "tc": "291", "amount": 3}, "not a past or current"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 3, "date": "2026-03-03"}, "future"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 3, "date": "03/01/2026"}, "YYYY-MM-DD"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 3, "bogus": 1}, "bogus: unknown field"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 3, "action_code": "010"}, "only with REQ77"),
    ("REQ77", {"tax_year": 2023, "tc": "971"}, "action_code: missing"),
    ("REQ77", {"tax_year": 2023, "tc": "971", "action_code": "999"}, "999 is not a known"),
    ("REQ77", {"tax_year": 2023, "tc": "570", "action_code": "010"}, "only with TC 971"),
    ("REQ77", {"tax_year": 2023, "tc": "570", "amount": 5}, "REQ77 posts no amount"),
    ("REQ77", {"tax_year": 2023, "tc": "291"}, "tc: 291 is not valid for REQ77"),
    ("ENREQ", {}, "needs an address and/or a name"),
    ("ENREQ", {"name": {"first": "Ann", "last": "  "}}, "name.last: must not be empty"),
    ("ENREQ", {"name": {"first": "", "last": "Carter"}}, "name.first: must not be empty"),
    ("ENREQ", {"name": {"first": "A", "last": "123"}}, "must contain a letter"),
    ("ENREQ", {"name": {"first": "A", "last": "B", "nick": "x"}}, "name.nick: unknown field"),
    ("ENREQ", {"address": {"street": "1 A St", "city": "X", "state": "ZZ", "zip": "45402"}},
     "not a US state"),
    ("ENREQ", {"address": {"street": "1 A St", "city": "X", "state": "OH", "zip": "4540"}},
     "NNNNN"),
    ("ENREQ", {"address": "12 Elm St"}, "must be an object"),
    ("ENREQ", {"name": {"first": "A", "last": "B"}, "tc": "290"}, "tc: not used by ENREQ"),
    ("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 3, "base_version": -1}, "base_version"),
])
def test_bad_requests(command, fields, problem):
    with pytest.raises(ValueError, match=problem):
        v(command, **fields)


def test_reason_is_required():
    with pytest.raises(ValueError, match="reason: must not be empty"):
        rules.validate("ADJ54", {"tax_year": 2023, "tc": "291", "amount": 1, "reason": " "},
                       today=TODAY)


def test_enreq_valid_normalizes_state_and_keeps_identity_out_of_public_payload():
    c = v("ENREQ", address={"street": "5 Oak Ave", "city": "Dayton", "state": "oh",
                            "zip": "45402"}, name={"first": "Ann", "last": "Baker"})
    assert c.address["state"] == "OH"
    assert c.name == {"first": "Ann", "middle": "", "last": "Baker", "suffix": ""}
    assert c.public_payload() == {"changes": ["address", "name"]}
    assert "Oak" not in str(c.public_payload())


def _t(change, acct=AccountFacts(), reversal=False):
    return rules.two_person_triggers(change, acct, T, TODAY, reversal=reversal)


@pytest.mark.parametrize(("tc", "amount", "expected"), [
    ("291", "999.99", []), ("291", "1000", [Trigger.ABATEMENT_THRESHOLD]),
    ("290", "9999.99", []), ("290", "10000", [Trigger.INCREASE_THRESHOLD]),
    ("290", "5000", []),
])
def test_amount_thresholds(tc, amount, expected):
    assert _t(v("ADJ54", tax_year=2023, tc=tc, amount=amount)) == expected


def test_thresholds_are_configurable():
    c = v("ADJ54", tax_year=2023, tc="291", amount="10")
    assert rules.two_person_triggers(c, AccountFacts(), Thresholds(abatement_cents=500), TODAY) == [
        Trigger.ABATEMENT_THRESHOLD]


def test_reversal_triggers_by_effect():
    # reversing a $20,000 abatement is a $20,000 increase; reversing a hold is a release
    assert _t(v("ADJ54", tax_year=2023, tc="291", amount="20000"), reversal=True) == [
        Trigger.INCREASE_THRESHOLD]
    assert _t(v("REQ77", tax_year=2023, tc="570"), reversal=True) == [Trigger.HOLD_RELEASE]
    assert _t(v("REQ77", tax_year=2023, tc="571"), reversal=True) == []


def test_hold_release_and_account_kinds():
    assert _t(v("REQ77", tax_year=2023, tc="571")) == [Trigger.HOLD_RELEASE]
    assert _t(v("REQ77", tax_year=2023, tc="570")) == []
    assert _t(v("REQ77", tax_year=2023, tc="971", action_code="010")) == []
    small = v("ADJ54", tax_year=2023, tc="291", amount="1")
    assert _t(small, AccountFacts(high_profile=True)) == [Trigger.HIGH_PROFILE_ACCOUNT]
    assert _t(small, AccountFacts(employee_account=True)) == [Trigger.EMPLOYEE_ACCOUNT]


@pytest.mark.parametrize(("facts", "expected"), [
    (AccountFacts(), False),
    (AccountFacts(unissued_refund=True), True),
    (AccountFacts(refund_issue_dates=(date(2026, 1, 2),)), True),  # 59 days ago
    (AccountFacts(refund_issue_dates=(date(2026, 1, 1),)), True),  # 60 days ago
    (AccountFacts(refund_issue_dates=(date(2025, 12, 31),)), False),  # 61 days ago
    (AccountFacts(refund_issue_dates=(date(2026, 4, 1),)), True),  # scheduled
])
def test_address_change_near_a_pending_refund(facts, expected):
    addr = v("ENREQ", address={"street": "1 A St", "city": "X", "state": "OH", "zip": "45402"})
    name = v("ENREQ", name={"first": "A", "last": "B"})
    assert (Trigger.ADDRESS_NEAR_REFUND in _t(addr, facts)) is expected
    assert Trigger.ADDRESS_NEAR_REFUND not in _t(name, facts)
