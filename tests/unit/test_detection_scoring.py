"""Pure cores of detection: signals, scoring, and the precision/recall arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from idrs.detection import evaluate, scoring
from idrs.detection.signals import (
    WEIGHTS,
    Access,
    EmployeeFacts,
    Signal,
    TaxpayerFacts,
    access_signals,
    after_hours,
    surname_weight,
    volume_signal,
)

MON_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EMP = EmployeeFacts("E00001", "U01", frozenset({"csr"}), "Carter", "ELM ST|DAYTON|OH", "45402",
                    "12 ELM ST|DAYTON|OH|45402")


def tp(last: str = "Diaz", street: str = "OAK ST|DAYTON|OH", zip_code: str = "45409",
       household: str = "x", high: bool = False, employee: bool = False) -> TaxpayerFacts:
    return TaxpayerFacts(last, street, zip_code, household, high, employee)


def acc(**kw: object) -> Access:
    base = dict(idx=7, seid="E00001", t=MON_NOON, command="ENMOD", taxpayer="tp_a", outcome="allow",
                reasons=[], basis_kind="contact", basis_id="K1", basis_opened_by="E00001",
                basis_channel="phone", basis_open_index=6)
    base.update(kw)
    return Access(**base)  # type: ignore[arg-type]


def names(sigs: list[Signal]) -> set[str]:
    return {s.name for s in sigs}


def test_surname_weight_is_discounted_by_commonness() -> None:
    assert surname_weight(10, 100_000) == WEIGHTS["same_surname"]
    assert surname_weight(8_000, 100_000) == pytest.approx(WEIGHTS["same_surname"] * 0.05)
    assert surname_weight(8_000, 100_000) < surname_weight(400, 100_000)


@pytest.mark.parametrize(("when", "late"), [
    (datetime(2026, 3, 2, 6, 59, tzinfo=UTC), True),
    (datetime(2026, 3, 2, 7, 0, tzinfo=UTC), False),
    (datetime(2026, 3, 2, 18, 59, tzinfo=UTC), False),
    (datetime(2026, 3, 2, 19, 0, tzinfo=UTC), True),
    (datetime(2026, 3, 7, 12, 0, tzinfo=UTC), True),  # Saturday
])
def test_after_hours(when: datetime, late: bool) -> None:
    assert after_hours(when) is late


def test_refused_relationship_alone_raises_an_alert() -> None:
    sigs = access_signals(acc(outcome="deny", reasons=["CONFLICT_SPOUSE", "NO_BUSINESS_NEED"],
                              basis_kind=None), EMP, tp(), {}, 1000)
    assert names(sigs) == {"refused_conflict"}
    sc = scoring.score_day("E00001", "2026-03-02", sigs, [7])
    assert sc.score >= scoring.THRESHOLD and sc.category == "spouse"


def test_a_typo_alone_stays_below_the_threshold_and_a_self_report_lowers_nothing() -> None:
    sigs = access_signals(acc(outcome="deny", reasons=["NO_BUSINESS_NEED"], basis_kind=None),
                          EMP, tp(), {}, 1000)
    assert scoring.score_day("E00001", "d", sigs, [7]).score < scoring.THRESHOLD
    rep = access_signals(acc(outcome="deny", reasons=["NO_BUSINESS_NEED"], basis_kind=None,
                             self_reported=True), EMP, tp(), {}, 1000)
    assert "self_reported" in names(rep)  # a marker of weight 0 for the analyst (issue 13.2)
    assert sum(s.weight for s in rep) == sum(s.weight for s in sigs)
    assert scoring.score_day("E00001", "d", rep, [7]).self_reported


def test_pretext_contact_on_a_neighbour() -> None:
    sigs = access_signals(acc(), EMP, tp(street="ELM ST|DAYTON|OH", zip_code="45402"), {}, 1000)
    assert {"contact_without_call", "same_street"} <= names(sigs)
    assert scoring.score_day("E00001", "d", sigs, [7]).category == "neighbour"


def test_same_household_is_not_a_neighbour_and_a_walk_in_is_mild() -> None:
    sigs = access_signals(acc(basis_channel="visit"), EMP,
                          tp(street="ELM ST|DAYTON|OH", zip_code="45402",
                             household="12 ELM ST|DAYTON|OH|45402"), {}, 1000)
    assert names(sigs) == {"self_opened_visit"}
    assert scoring.score_day("E00001", "d", sigs, [7]).score < scoring.THRESHOLD


def test_common_surname_counts_little_rare_one_fully() -> None:
    common = access_signals(acc(basis_channel="visit"), EMP, tp(last="Carter"), {"CARTER": 500}, 1000)
    rare = access_signals(acc(basis_channel="visit"), EMP, tp(last="Carter"), {"CARTER": 2}, 1000)
    w = {s.name: s.weight for s in common}["same_surname"]
    assert w < 0.1 and {s.name: s.weight for s in rare}["same_surname"] == WEIGHTS["same_surname"]


def test_signals_count_once_per_taxpayer() -> None:
    a = Signal("same_surname", 3.0, {"audit_index": 1}, "tp_a")
    b = Signal("same_surname", 3.0, {"audit_index": 2}, "tp_a")
    c = Signal("same_surname", 3.0, {"audit_index": 3}, "tp_b")
    assert scoring.score_day("E1", "d", [a, b, c], [1, 2, 3]).score == 6.0


def test_volume_against_own_history_and_peers() -> None:
    assert volume_signal(31, [8, 9, 10, 11], 14.0) is not None
    assert volume_signal(30, [8, 9, 10, 11], 14.0) is None
    assert volume_signal(20, [8, 9, 10, 11], 14.0) is None
    assert volume_signal(60, [30, 35, 40], 50.0) is None


def test_score_alerts_precision_recall_and_per_type() -> None:
    truth = {"employee_days": 500, "violations": [
        {"type": "spouse", "seid": "E1", "audit_indexes": [10, 11]},
        {"type": "neighbour", "seid": "E2", "audit_indexes": [20]},
        {"type": "neighbour", "seid": "E3", "audit_indexes": [30]},
    ]}
    alerts = [
        {"alert_id": "A1", "seid": "E1", "score": 8.0, "category": "spouse", "indexes": {11}},
        {"alert_id": "A2", "seid": "E2", "score": 5.5, "category": "neighbour", "indexes": {20, 21}},
        {"alert_id": "A3", "seid": "E9", "score": 3.1, "category": "neighbour", "indexes": {30}},
    ]
    r = evaluate.score_alerts(truth, alerts)
    assert r["overall"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["overall"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["by_type"]["spouse"]["recall"] == 1.0
    assert r["by_type"]["neighbour"] == {**r["by_type"]["neighbour"], "recall": 0.5, "precision": 0.5}
    assert r["alerts_per_1000_employee_days"] == 6.0
    assert r["false_alerts_per_1000_employee_days"] == 2.0
    top = [p for p in r["curve"] if p["threshold"] == 8.0][0]
    assert top["precision"] == 1.0 and top["recall"] == pytest.approx(1 / 3)


def test_false_alert_rate_has_its_poisson_upper_bound_and_a_verdict() -> None:
    """Issue 17.2: a rate under the goal on too few employee-days is "not shown", not "met"."""
    from idrs.detection.evaluate import false_alert_rate, poisson_upper
    from idrs.errors import IdrsError

    assert poisson_upper(0) == pytest.approx(2.9957, abs=1e-4)  # -ln(0.05): the rule of three
    assert poisson_upper(3) == pytest.approx(7.7537, abs=1e-4)
    # zero false alerts over 902 employee-days: rate 0, but the bound is 3.3 per 1,000
    r = false_alert_rate(0, 902)
    assert r == {"false_alerts_per_1000_employee_days": 0.0,
                 "false_alerts_upper_95_per_1000_employee_days": 3.321, "goal": "not shown"}
    # 11,036 employee-days (the default month) with 10 false alerts: 0.906, bound 1.54
    r = false_alert_rate(10, 11036)
    assert r["false_alerts_per_1000_employee_days"] == 0.906 and r["goal"] == "not shown"
    assert r["false_alerts_upper_95_per_1000_employee_days"] == pytest.approx(1.537, abs=1e-3)
    assert false_alert_rate(0, 3000)["goal"] == "met"  # 2.9957 / 3000 < 1 per 1,000
    assert false_alert_rate(0, 2995)["goal"] == "not shown"
    assert false_alert_rate(12, 10000)["goal"] == "missed"
    assert false_alert_rate(0, 0)["goal"] is None
    with pytest.raises(IdrsError, match="negative"):
        poisson_upper(-1)
