"""The import format: strict validation, one 'line N: field: reason' per problem."""

from __future__ import annotations

import copy
import json

import pytest

from idrs.masterfile.schema import LineInvalid, parse_line

EXAMPLE = {
    "tin": "900-12-3456",
    "name": {"first": "Ann", "middle": "B", "last": "Carter", "suffix": ""},
    "date_of_birth": "1980-02-01",
    "address": {"street": "12 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
    "phone": "937-555-0100",
    "markers": ["high_profile"],
    "returns": [
        {"tax_year": 2023, "filing_status": "MFJ", "spouse_tin": "900-12-3457",
         "address": {"street": "12 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
         "dependents": [{"tin": "900-12-3458", "relationship": "son",
                         "name": {"first": "Cal", "last": "Carter"}, "adoption_pending": False}],
         "w2": [{"employer_ein": "00-1234567", "employer_name": "Acme Corp", "wages": 61000.00,
                 "withholding": 7100.00}],
         "k1": [{"entity_ein": "00-7654321", "entity_name": "Carter & Diaz LLP", "share_pct": 50.0}],
         "schedule_c": [{"business_name": "Ann Carter Design", "ein": "00-2222222"}],
         "agi": 58000.00, "total_tax": 4100.00, "preparer_ptin": "P00000001",
         "refund": {"amount": 3000.00,
                    "direct_deposit": {"routing": "800000006", "account": "000123456789"}}}
    ],
    "transactions": [{"tax_year": 2023, "tc": "150", "date": "2024-04-15", "amount": 4100.00}],
}


def parse(rec, synthetic=True, lineno=3):
    return parse_line(json.dumps(rec), lineno, synthetic)


def problems(rec, synthetic=True):
    with pytest.raises(LineInvalid) as info:
        parse(rec, synthetic)
    return info.value.problems


def with_change(path, value):
    rec = copy.deepcopy(EXAMPLE)
    target = rec
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return rec


DELETE = object()


def test_contract_example_is_valid_and_canonical():
    rec = parse(EXAMPLE)
    assert rec.tin == "900123456"
    ret = rec.returns[0]
    assert ret.spouse_tin == "900123457"
    assert ret.w2[0].employer_ein == "001234567"
    assert ret.w2[0].wages == 6_100_000  # cents
    assert ret.agi == 5_800_000
    assert ret.refund.amount == 300_000
    assert ret.refund.direct_deposit.routing == "800000006"
    assert rec.transactions[0].amount == 410_000
    assert rec.transactions[0].date.isoformat() == "2024-04-15"
    assert rec.years == {2023}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("tin",), "90012345", "line 3: tin: not a TIN"),
        (("tin",), 900123456, "line 3: tin: must be a string"),
        (("tin",), "123-45-6789", "line 3: tin: outside the synthetic range"),
        (("tin",), "900-50-0001", "line 3: tin: outside the synthetic range"),
        (("nickname",), "Annie", "line 3: nickname: unknown field"),
        (("name", "first"), "", "line 3: name.first:"),
        (("name", "title"), "Dr", "line 3: name.title: unknown field"),
        (("date_of_birth",), "1980-02-30", "line 3: date_of_birth:"),
        (("date_of_birth",), "02/01/1980", "line 3: date_of_birth:"),
        (("address", "state"), "XX", "line 3: address.state: not a US state"),
        (("address", "zip"), "4540", "line 3: address.zip: must be NNNNN"),
        (("address",), DELETE, "line 3: address: required"),
        (("phone",), "555-CALL", "line 3: phone: must be NNN-NNN-NNNN"),
        (("markers",), ["vip"], "line 3: markers[0]:"),
        (("returns", 0, "filing_status"), "JOINT", "line 3: returns[0].filing_status:"),
        (("returns", 0, "spouse_tin"), DELETE, "line 3: returns[0].spouse_tin: required for MFJ"),
        (("returns", 0, "agi"), 58000.001, "line 3: returns[0].agi: at most two decimals"),
        (("returns", 0, "agi"), "58000.00", "line 3: returns[0].agi: must be a number"),
        (("returns", 0, "agi"), True, "line 3: returns[0].agi: must be a number"),
        (("returns", 0, "total_tax"), -1, "line 3: returns[0].total_tax: must not be negative"),
        (("returns", 0, "tax_year"), 1800, "line 3: returns[0].tax_year:"),
        (("returns", 0, "preparer_ptin"), "12345678", "line 3: returns[0].preparer_ptin:"),
        (("returns", 0, "dependents", 0, "relationship"), "cousin",
         "line 3: returns[0].dependents[0].relationship:"),
        (("returns", 0, "dependents", 0, "adoption_pending"), "no",
         "line 3: returns[0].dependents[0].adoption_pending:"),
        (("returns", 0, "w2", 0, "employer_ein"), "12-3456789",
         "line 3: returns[0].w2[0].employer_ein: outside the synthetic range"),
        (("returns", 0, "w2", 0, "employer_ein"), "1234", "line 3: returns[0].w2[0].employer_ein: not an EIN"),
        (("returns", 0, "k1", 0, "share_pct"), 150, "line 3: returns[0].k1[0].share_pct:"),
        (("returns", 0, "refund", "direct_deposit", "routing"), "800000007",
         "line 3: returns[0].refund.direct_deposit.routing: routing number fails the ABA checksum"),
        (("returns", 0, "refund", "direct_deposit", "routing"), "011000015",
         "line 3: returns[0].refund.direct_deposit.routing: outside the synthetic range"),
        (("returns", 0, "refund", "direct_deposit", "account"), "12-34",
         "line 3: returns[0].refund.direct_deposit.account:"),
        (("transactions", 0, "tc"), "999", "line 3: transactions[0].tc: unknown transaction code"),
        (("transactions", 0, "amount"), 1.5e-3, "line 3: transactions[0].amount: at most two decimals"),
    ],
)
def test_bad_field_is_reported_with_its_path(path, value, expected):
    found = problems(with_change(path, value))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_of_a_line_is_reported():
    rec = with_change(("tin",), "bad")
    rec["returns"][0]["agi"] = 1.005
    rec["extra"] = 1
    found = problems(rec)
    assert len(found) == 3
    assert all(p.startswith("line 3: ") for p in found)


def test_problems_never_echo_the_identifier():
    found = problems(with_change(("tin",), "123-45-6789"))
    assert not any("6789" in p for p in found)


def test_synthetic_ranges_only_when_asked():
    rec = with_change(("tin",), "123-45-6789")
    rec["returns"][0]["w2"][0]["employer_ein"] = "12-3456789"
    rec["returns"][0]["refund"]["direct_deposit"]["routing"] = "011000015"
    assert parse(rec, synthetic=False).tin == "123456789"


def test_spouse_rules():
    single = with_change(("returns", 0, "filing_status"), "S")
    assert any("not allowed for filing status S" in p for p in problems(single))
    single["returns"][0].pop("spouse_tin")
    assert parse(single).returns[0].spouse_tin is None
    own = with_change(("returns", 0, "spouse_tin"), "900-12-3456")
    assert any("own TIN" in p for p in problems(own))


def test_duplicate_years_and_dependents_rejected():
    rec = copy.deepcopy(EXAMPLE)
    rec["returns"].append(copy.deepcopy(rec["returns"][0]))
    assert any("returns[1].tax_year: year listed twice" in p for p in problems(rec))
    rec = copy.deepcopy(EXAMPLE)
    rec["returns"][0]["dependents"].append(copy.deepcopy(rec["returns"][0]["dependents"][0]))
    assert any("listed twice" in p for p in problems(rec))


@pytest.mark.parametrize(("amount", "cents"), [(0, 0), (7, 700), (0.07, 7), (19.99, 1999),
                                               (-12.5, -1250), (1e2, 10000), (12345678901.23, 1234567890123)])
def test_money_to_cents(amount, cents):
    rec = with_change(("transactions", 0, "amount"), amount)
    assert parse(rec).transactions[0].amount == cents


def test_not_json_and_not_an_object():
    with pytest.raises(LineInvalid) as info:
        parse_line("{nope", 9, True)
    assert info.value.problems == ["line 9: json: invalid JSON"]
    with pytest.raises(LineInvalid) as info:
        parse_line("[1, 2]", 10, True)
    assert info.value.problems[0].startswith("line 10: ")


def test_optional_extensions():
    rec = copy.deepcopy(EXAMPLE)
    rec["transactions"].append({"tax_year": 2023, "tc": "971", "date": "2024-05-01", "amount": 0,
                                "action_code": "522"})
    rec["information_returns"] = [{"tax_year": 2023, "form": "1099-INT", "payer_ein": "00-1111111",
                                   "payer_name": "First Bank", "amount": 12.34}]
    out = parse(rec)
    assert out.transactions[1].action_code == "522"
    assert out.information_returns[0].amount == 1234
    rec["transactions"][1]["tc"] = "150"
    assert any("action_code: only on TC 971" in p for p in problems(rec))
