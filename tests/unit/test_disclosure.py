"""Pure parts of the disclosure package: placeholder addresses, proofs from stored blocks,
and the basis policies (Cedar) over hand-made facts."""

from __future__ import annotations

import hashlib

import pytest

from idrs.audit import merkle
from idrs.disclosure import addresses, bases
from idrs.disclosure.service import BLOCK, _proof_from

GOOD = {"street": "12 Main St Apt 4", "city": "Dayton", "state": "OH", "zip": "45402-1234"}


@pytest.mark.parametrize("address", [
    {"street": "Failed to Provide", "city": "Failed to Provide", "state": "TX", "zip": "75201"},
    {"street": "Unknown Address", "city": "Dallas", "state": "TX", "zip": "75201"},
    {"street": "NA NA", "city": "NA", "state": "NA", "zip": ""},
    {"street": "Don't Care 12345", "city": "Houston", "state": "TX", "zip": "77002"},
    {**GOOD, "zip": "00000"},
    {**GOOD, "zip": "99999"},
    {**GOOD, "city": "Unknown"},
    {"street": "N/A", "city": "N/A", "state": "N/A", "zip": "N/A"},
])
def test_placeholders_are_no_address(address):
    assert addresses.status(address) == "placeholder"


def test_missing_incomplete_and_given():
    assert addresses.status(None) == "missing"
    assert addresses.status({}) == "missing"
    assert addresses.status({"street": "", "city": "", "state": "", "zip": ""}) == "missing"
    assert addresses.status({**GOOD, "city": ""}) == "incomplete"
    assert addresses.status({**GOOD, "street": "Main St"}) == "incomplete"
    assert addresses.status({**GOOD, "state": "ZZ"}) == "incomplete"
    assert addresses.status(GOOD) == "given"
    assert addresses.status({**GOOD, "street": "PO Box 77"}) == "given"
    # the master file's normalization decides sameness
    assert addresses.norm_key(GOOD) == addresses.norm_key(
        {"street": "12 MAIN STREET #4", "city": "dayton", "state": "oh", "zip": "45402"})


@pytest.mark.parametrize("size", [1, 2, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 37, 3 * BLOCK])
def test_a_proof_from_blocks_is_the_proof_from_every_leaf(size):
    leaves = [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(size)]
    cr = merkle.CompactRange()
    for h in leaves:
        cr.append(h)
    root = cr.root()
    blocks = [merkle.subtree_hash(leaves[i:i + BLOCK])
              for i in range(0, size - size % BLOCK, BLOCK)]
    for index in sorted({0, size // 2, size - 1, min(size - 1, BLOCK)}):
        wanted = {index // BLOCK, (size - 1) // BLOCK}
        some = {i: h for i, h in enumerate(leaves) if i // BLOCK in wanted}
        path = _proof_from(size, index, some, blocks)
        assert path == _proof_from(size, index, dict(enumerate(leaves)), [])
        merkle.verify_inclusion(index, size, leaves[index], path, root)


FACTS = {"agreement": "active", "agency_named": True, "federal": True, "signed": True,
         "rank_ok": True, "names_taxpayer": True, "address": "given", "proceeding_named": True,
         "official_named": True, "tin": "valid", "match": "exact", "address_on_file": True,
         "over_cap": False, "cap_approved": False}


def test_the_6103i2_policies_allow_only_a_complete_record():
    assert bases.decide("6103i2", FACTS) == (True, [])
    assert bases.decide("6103i2", {**FACTS, "address": "placeholder",
                                   "address_on_file": False}) == (False, ["ADDRESS_MISSING"])
    assert bases.decide("6103i2", {**FACTS, "match": "ambiguous"}) == (False, ["AMBIGUOUS_MATCH"])
    assert bases.decide("6103i2", {**FACTS, "over_cap": True}) == (False, ["CAP_NOT_APPROVED"])
    assert bases.decide("6103i2", {**FACTS, "over_cap": True, "cap_approved": True}) == (True, [])
    allowed, reasons = bases.decide("6103i2", {**FACTS, "signed": False, "federal": False,
                                               "official_named": False})
    assert not allowed and reasons == ["REQUESTER_NOT_FEDERAL", "SIGNATORY_MISSING",
                                       "OFFICIAL_MISSING"]
    # a missing fact is a denial, never an allow
    partial = dict(FACTS)
    del partial["address_on_file"]
    assert bases.decide("6103i2", partial)[0] is False
