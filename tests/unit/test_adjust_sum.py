"""The amount thresholds on sums (issue 13.1), pure: rules.threshold_reasons."""

from __future__ import annotations

from datetime import date

from idrs.adjustments import rules
from idrs.adjustments.rules import AccountFacts, Earlier, Thresholds, Trigger

TODAY = date(2026, 3, 2)
T = Thresholds()


def abatement(cents: int) -> rules.Change:
    return rules.Change("ADJ54", "r", TODAY, 2023, "291", cents)


def test_each_change_alone_below_the_sum_at_the_threshold():
    facts = AccountFacts(module_id=7, earlier=(Earlier(1, 7, 99_999, "applied"),))
    assert rules.two_person_triggers(abatement(99_999), AccountFacts(module_id=7), T, TODAY) == []
    assert rules.two_person_triggers(abatement(1), facts, T, TODAY) == [Trigger.ABATEMENT_THRESHOLD]
    (reason,) = rules.threshold_reasons(abatement(1), facts, T)
    assert reason["scope"] == "module" and reason["with"] == [1]
    assert reason["total_cents"] == 100_000 and reason["threshold_cents"] == 100_000
    assert "adjustment 1" in reason["message"] and "$1,000.00" in reason["message"]


def test_other_modules_of_the_taxpayer_count_and_pending_ones_are_said():
    facts = AccountFacts(
        module_id=7,
        earlier=(Earlier(1, 7, 30_000, "applied"), Earlier(2, 8, 50_000, "pending_approval")),
    )
    (reason,) = rules.threshold_reasons(abatement(20_000), facts, T)
    assert reason["scope"] == "taxpayer" and reason["with"] == [1, 2]
    assert "1 of them pending" in reason["message"]


def test_below_the_sum_and_other_kinds():
    facts = AccountFacts(module_id=7, earlier=(Earlier(1, 7, 50_000, "applied"),))
    assert rules.threshold_reasons(abatement(49_999), facts, T) == []
    # ``earlier`` holds the changes of the change's own kind (the service selects them)
    increase = rules.Change("ADJ54", "r", TODAY, 2023, "290", 50_000)
    (reason,) = rules.threshold_reasons(increase, facts, Thresholds(increase_cents=100_000))
    assert reason["code"] == "INCREASE_THRESHOLD"
    hold = rules.Change("REQ77", "r", TODAY, 2023, "570")
    assert rules.threshold_reasons(hold, facts, T) == []


def test_a_reversal_is_judged_by_its_effect():
    """Reversing a TC 290 abates: it meets the abatement threshold, not the increase one."""
    facts = AccountFacts(module_id=7, earlier=(Earlier(1, 7, 60_000, "applied"),))
    back = rules.Change("ADJ54", "r", TODAY, 2023, "290", 60_000)
    (reason,) = rules.threshold_reasons(back, facts, T, reversal=True)
    assert reason["code"] == "ABATEMENT_THRESHOLD"
