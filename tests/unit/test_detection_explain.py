"""Issue 17: the rarity of a surname on an explained access, and alerts in words."""

from __future__ import annotations

from idrs.detection import explain, relations


def test_a_rare_surname_weighs_fully_and_a_common_one_hardly() -> None:
    # 3 of 30,000 carry it, 2 of them the employee's family: 1 in 30,000 elsewhere
    assert relations.rare_surname_weight(3, 2, 30_000) == 3.0
    assert relations.rare_surname_weight(15, 0, 30_000) == 3.0  # 1 in 2,000: the limit
    assert 0.7 < relations.rare_surname_weight(30, 0, 30_000) < 0.8  # twice as common: a quarter
    assert relations.rare_surname_weight(600, 0, 30_000) < 0.01  # a town's common name
    assert relations.rare_surname_weight(1, 5, 0) == 0.0  # no population known: no weight


def test_p90_of_the_peer_group() -> None:
    assert relations._p90([]) == 0.0
    assert relations._p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 9.0
    assert relations._p90([4]) == 4.0


def test_an_alert_says_why_and_what_was_ruled_out() -> None:
    signals = [
        {"name": "same_surname", "weight": 3.0, "evidence": {
            "audit_index": 17, "explained_by": "case C-4 assigned by E00001",
            "why": "the account's taxpayer shares the employee's surname, which about 1 in "
                   "12,000 taxpayers carry"}},
        {"name": "after_hours", "weight": 1.5, "evidence": {"audit_index": 18, "time": "2026-03-03T22:10"}},
        {"name": "self_reported", "weight": 0.0, "evidence": {"audit_index": 18}},
    ]
    lines = explain.why(signals)
    assert lines[0].startswith("the account's taxpayer shares the employee's surname") and "(entry 17)" in lines[0]
    assert "outside working hours (2026-03-03T22:10) (entry 18)" in lines
    assert "the employee self-reported this access (shown, never a discount)" in lines
    ruled = lines[-1]
    assert ruled.startswith("ruled out: ")
    assert "case C-4 assigned by E00001 explains why the account could be opened, not the tie" in ruled
    assert "a case or a routed contact on this account (none found)" in ruled  # after_hours
    assert "chance" in ruled


def test_unknown_signals_and_missing_fields_still_read() -> None:
    assert explain.why([{"name": "volume", "weight": 2.0, "evidence": {}}])[0] == "volume"
    assert explain.why([{"name": "brand_new", "weight": 1.0, "evidence": {}}])[0] == "brand new"
