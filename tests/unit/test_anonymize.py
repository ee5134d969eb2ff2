"""The anonymized view: identity removed, structure kept, pseudonyms stable (pure)."""

from __future__ import annotations

import hashlib
import hmac

from idrs.grants.anonymize import anonymize
from idrs.masterfile.screens import ALL_CLASSES, F, Sensitivity, render

S = Sensitivity
KEY = b"k" * 32


def pseudonym(tin: str) -> str:
    return "tp_" + hmac.new(KEY, tin.encode(), hashlib.sha256).hexdigest()[:24]


TIN, SPOUSE, CHILD = "900-12-3456", "900-12-3457", "900-12-3458"
IDENTITY = {"900-12-3456", "900123456", "3456", "Ann", "Carter", "CART", "12 Elm St", "Dayton",
            "45402", "1980-02-01", "937-555-0100", "800000006", "000123456789", "Ben",
            "900-12-3457", "Cal", "900-12-3458", "00-2222222", "Ann Carter Design",
            "Ann B Carter", "P00000001"}


def _address() -> dict:
    return {"street": F("12 Elm St", S.ADDRESS), "city": F("Dayton", S.ADDRESS),
            "state": F("OH", S.ADDRESS), "zip": F("45402", S.ADDRESS)}


def entity() -> dict:
    return {
        "tin": F(TIN, S.IDENTITY, "tin"),
        "name": {"first": F("Ann", S.IDENTITY), "middle": F("B", S.IDENTITY),
                 "last": F("Carter", S.IDENTITY), "suffix": F("", S.IDENTITY)},
        "name_control": F("CART", S.IDENTITY),
        "date_of_birth": F("1980-02-01", S.IDENTITY),
        "phone": F("937-555-0100", S.ADDRESS, "stars"),
        "address_history": [{**_address(), "source": F("entity", S.OTHER),
                             "valid_from": F("2020-01-01", S.ADDRESS)}],
        "markers": [F("identity_theft", S.OTHER)],
    }


def return_view() -> dict:
    return {
        "tin": F(TIN, S.IDENTITY, "tin"), "name_control": F("CART", S.IDENTITY),
        "tax_year": F(2023, S.RETURN), "filing_status": F("MFJ", S.RETURN),
        "spouse_tin": F(SPOUSE, S.IDENTITY, "tin"), "address": _address(),
        "dependents": [{"tin": F(CHILD, S.IDENTITY, "tin"), "first_name": F("Cal", S.IDENTITY),
                        "last_name": F("Carter", S.IDENTITY), "relationship": F("son", S.RETURN),
                        "adoption_pending": F(False, S.ADOPTION)}],
        "w2": [{"employer_ein": F("00-1234567", S.RETURN), "employer_name": F("Acme", S.RETURN),
                "wages": F("61000.00", S.RETURN)}],
        "schedule_c": [{"business_name": F("Ann Carter Design", S.RETURN),
                        "ein": F("00-2222222", S.RETURN)}],
        "agi": F("58000.00", S.RETURN), "preparer_ptin": F("P00000001", S.RETURN),
        "refund": {"amount": F("3000.00", S.RETURN), "direct_deposit": {
            "routing": F("800000006", S.BANKING, "account"),
            "account": F("000123456789", S.BANKING, "account")}},
    }


def names_view() -> dict:
    return {"matches": [{"tin": F(TIN, S.IDENTITY, "tin"), "name": F("Ann B Carter", S.IDENTITY),
                         "city": F("Dayton", S.ADDRESS), "state": F("OH", S.ADDRESS),
                         "zip": F("45402", S.ADDRESS)}]}


def _leaves(data):
    if isinstance(data, dict):
        for v in data.values():
            yield from _leaves(v)
    elif isinstance(data, list):
        for v in data:
            yield from _leaves(v)
    else:
        yield data


def _plain(tree):
    data, masked = render(anonymize(tree, pseudonym), frozenset(ALL_CLASSES))
    assert masked == []
    return data


def test_no_field_of_an_anonymized_answer_matches_the_identity():
    for tree in (entity(), return_view(), names_view()):
        for value in _leaves(_plain(tree)):
            if value is None or isinstance(value, bool):
                continue
            text = str(value)
            assert text not in IDENTITY, text
            assert not any(ident in text for ident in IDENTITY if len(ident) >= 4), text


def test_same_structure_with_generalized_values():
    e = _plain(entity())
    assert set(e) == set(render(entity(), frozenset(ALL_CLASSES))[0])
    assert e["tin"] == pseudonym("900123456")
    assert e["name"] == {"first": None, "middle": None, "last": None, "suffix": None}
    assert e["date_of_birth"] == "1980"
    assert e["phone"] is None
    assert e["address_history"][0] | {} == {"street": None, "city": None, "state": "OH",
                                            "zip": "454", "source": "entity",
                                            "valid_from": "2020-01-01"}
    assert e["markers"] == ["identity_theft"]
    r = _plain(return_view())
    assert r["spouse_tin"] == pseudonym("900123457")
    assert r["dependents"][0]["tin"] == pseudonym("900123458")
    assert r["dependents"][0]["relationship"] == "son"
    assert r["refund"]["direct_deposit"] == {"routing": None, "account": None}
    assert r["refund"]["amount"] == "3000.00" and r["agi"] == "58000.00"
    assert r["w2"][0]["wages"] == "61000.00" and r["w2"][0]["employer_ein"] is None


def test_pseudonyms_are_stable_and_keyed():
    a = _plain(entity())["tin"]
    assert a == _plain(names_view())["matches"][0]["tin"]  # same taxpayer, same pseudonym
    other = anonymize(entity(), lambda t: "tp_" + hashlib.sha256(t.encode()).hexdigest()[:24])
    assert render(other, frozenset(ALL_CLASSES))[0]["tin"] != a  # depends on the key


def test_input_tree_is_not_changed_and_bad_tins_are_dropped():
    tree = entity()
    anonymize(tree, pseudonym)
    assert tree["tin"].value == TIN
    odd = {"tin": F("not-a-tin", S.IDENTITY, "tin"), "spouse_tin": F(None, S.IDENTITY, "tin")}
    assert render(anonymize(odd, pseudonym), frozenset(ALL_CLASSES))[0] == {
        "tin": None, "spouse_tin": None}
