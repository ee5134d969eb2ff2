"""Address normalization: spellings of one dwelling share norm_key; units fold into street_key."""

from __future__ import annotations

import pytest

from idrs.masterfile.addresses import keys, normalize, normalize_zip, split_street

SAME_DWELLING = [
    ("12 Elm Street, Apt. 4", "Dayton", "oh", "45402-1234"),
    ("12 ELM ST #4", "dayton ", "OH", "45402"),
    ("12 Elm St Unit 4", "Dayton", "OH", "454021234"),
    ("12 elm st. suite 4", "DAYTON", "Oh", "45402"),
    ("12 Elm Str Apartment 4", "Dayton", "OH", "45402"),
    ("12  Elm   St  # 4", "Dayton", "OH", "45402"),
]


@pytest.mark.parametrize("addr", SAME_DWELLING)
def test_spellings_of_one_dwelling_share_norm_key(addr):
    assert normalize(*addr).norm_key == "12 ELM ST #4|DAYTON|OH|45402"


@pytest.mark.parametrize("addr", SAME_DWELLING)
def test_street_key_drops_unit_and_zip(addr):
    assert normalize(*addr).street_key == "12 ELM ST|DAYTON|OH"


@pytest.mark.parametrize(
    ("street", "expected"),
    [
        ("100 North Main Avenue", ("100 N MAIN AVE", "")),
        ("100 N. Main Ave.", ("100 N MAIN AVE", "")),
        ("5 SW Park Boulevard", ("5 SW PARK BLVD", "")),
        ("5 Southwest Park Blvd", ("5 SW PARK BLVD", "")),
        ("77 First Street", ("77 1ST ST", "")),
        ("9 Oak Lane Apt 3B", ("9 OAK LN", "3B")),
        ("9 Oak Ln #3B", ("9 OAK LN", "3B")),
        ("400 Harbor Drive Ste 210", ("400 HARBOR DR", "210")),
        ("1 Court Road", ("1 CT RD", "")),
    ],
)
def test_split_street(street, expected):
    assert split_street(street) == expected


def test_different_units_are_different_dwellings_in_one_building():
    a = normalize("12 Elm St Apt 4", "Dayton", "OH", "45402")
    b = normalize("12 Elm St Apt 5", "Dayton", "OH", "45402")
    assert a.norm_key != b.norm_key
    assert a.street_key == b.street_key


def test_different_zip_or_city_differs():
    a = normalize("12 Elm St", "Dayton", "OH", "45402")
    assert normalize("12 Elm St", "Dayton", "OH", "45403").norm_key != a.norm_key
    assert normalize("12 Elm St", "Kettering", "OH", "45402").norm_key != a.norm_key
    assert normalize("14 Elm St", "Dayton", "OH", "45402").street_key != a.street_key


@pytest.mark.parametrize(("raw", "zip5"), [("45402", "45402"), ("45402-0001", "45402"),
                                           ("454020001", "45402"), (" 45402 ", "45402")])
def test_zip5(raw, zip5):
    assert normalize_zip(raw) == zip5


def test_keys_is_norm_and_street_key():
    assert keys("12 Elm St #4", "Dayton", "OH", "45402") == (
        "12 ELM ST #4|DAYTON|OH|45402", "12 ELM ST|DAYTON|OH")


def test_odd_input_never_raises():
    assert normalize("", "", "", "").norm_key == "|||"
    assert normalize("#", "x", "y", "abc").zip5 == "ABC"
