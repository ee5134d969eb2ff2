"""Output trees, masking forms, money and module status (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from idrs.masterfile.commands import COMMANDS, module_status, money
from idrs.masterfile.models import Transaction
from idrs.masterfile.screens import ALL_CLASSES, F, Sensitivity, classes_in, render

S = Sensitivity

TREE = {
    "tin": F("900-12-3456", S.IDENTITY, "tin"),
    "name": {"last": F("Carter", S.IDENTITY)},
    "refund": {"routing": F("800000006", S.BANKING, "account"),
               "account": F("000123456789", S.BANKING, "account")},
    "phone": F("937-555-0100", S.ADDRESS, "stars"),
    "dependents": [{"tin": F("900-12-3459", S.ADOPTION, "tin"), "adoption_pending": F(True, S.ADOPTION)}],
    "agi": F("58000.00", S.RETURN),
    "title": "plain",
}


def test_everything_visible():
    data, masked = render(TREE, ALL_CLASSES)
    assert masked == []
    assert data["tin"] == "900-12-3456" and data["refund"]["account"] == "000123456789"
    assert data["title"] == "plain"


def test_masks_take_their_forms_and_are_listed():
    data, masked = render(TREE, frozenset({S.RETURN}))
    assert data["tin"] == "***-**-3456"
    assert data["name"]["last"] is None
    assert data["refund"] == {"routing": "****0006", "account": "****6789"}
    assert data["phone"] == "****"
    assert data["dependents"][0] == {"tin": "***-**-3459", "adoption_pending": None}
    assert data["agi"] == "58000.00"
    assert set(masked) == {"tin", "name.last", "refund.routing", "refund.account", "phone",
                           "dependents[0].tin", "dependents[0].adoption_pending"}


def test_adoption_hidden_without_the_adoption_class():
    visible = ALL_CLASSES - {S.ADOPTION}
    data, masked = render(TREE, visible)
    assert masked == ["dependents[0].tin", "dependents[0].adoption_pending"]
    assert data["tin"] == "900-12-3456"


def test_classes_in():
    assert classes_in(TREE) == set(ALL_CLASSES) - {S.OTHER}


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (410000, "4100.00"),
                                             (-12345, "-123.45"), (None, None)])
def test_money(cents, text):
    assert money(cents) == text


def _t(tc, cents=0):
    return Transaction(tc=tc, amount_cents=cents, txn_date=date(2024, 1, 1))


@pytest.mark.parametrize(
    ("tcs", "balance", "status"),
    [
        (["150"], 100, "balance_due"),
        (["150", "806"], -100, "credit"),
        (["150", "806", "846"], 0, "settled"),
        (["150", "420"], 100, "examination"),
        (["150", "420", "421"], 100, "balance_due"),
        (["150", "570"], 0, "hold"),
        (["150", "570", "571"], 0, "settled"),
    ],
)
def test_module_status(tcs, balance, status):
    assert module_status([_t(tc) for tc in tcs], balance) == status


def test_the_seven_research_codes():
    assert list(COMMANDS) == ["ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "NAMES", "IRPTR"]
