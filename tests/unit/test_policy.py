"""The decision point on facts alone: a table row for every reason code, schema validation,
broken policy files refused with file and line, deny by default, every reason returned."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cedarpy
import pytest

from idrs.access import policy
from idrs.access.facts import Facts
from idrs.access.masking import classes_for
from idrs.errors import ConfigurationError
from idrs.grants.facts import GrantFacts
from idrs.masterfile.screens import Sensitivity as S
from idrs.vocabulary import ALL_CODES

EXAMINER = frozenset({"ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "NAMES", "IRPTR", "ADJ54"})

# A request that is allowed: an examiner with an open case on an unrelated taxpayer.
OK = Facts(
    employee_id=1,
    seid="E1",
    roles=frozenset({"examiner"}),
    profile=EXAMINER,
    command="ENMOD",
    tin="900101234",
    open_cases=("C1",),
    taxpayer_exists=True,
    unit_id=1,
    rate_limit=200,
    # an employee (not outside), no grant, UNAX training current
    grant=GrantFacts(
        has_grant=False, state="none", commands=frozenset(), classes=frozenset(),
        population="none", allow_changes=False, daily_limit=None, agreement_signed=False,
        training_current=True, clearance_verified=False,
    ),
)
UNTRAINED = replace(OK.grant, training_current=False)

TABLE: list[tuple[str, dict, set[str]]] = [
    ("allowed with a case", {}, set()),
    ("allowed with a contact", {"open_cases": (), "open_contacts": ("K1",)}, set()),
    ("UNAX training not current", {"grant": UNTRAINED}, {"TRAINING_NOT_CURRENT"}),
    ("no grant facts at all (fail closed)", {"grant": None}, {"TRAINING_NOT_CURRENT"}),
    ("named case that is theirs", {"case": "C1"}, set()),
    (
        "command not in profile",
        {"command": "IRPTR", "profile": frozenset({"ENMOD"})},
        {"NOT_IN_PROFILE"},
    ),
    (
        "auditor has no profile",
        {"roles": frozenset({"auditor"}), "profile": frozenset()},
        {"NOT_IN_PROFILE"},
    ),
    ("unknown command", {"command": "XXXXX"}, {"NOT_IN_PROFILE"}),
    ("no case, no contact", {"open_cases": ()}, {"NO_BUSINESS_NEED"}),
    ("named case not theirs/open", {"case": "C9"}, {"NO_BUSINESS_NEED"}),
    ("named contact not theirs/open", {"contact": "K9"}, {"NO_BUSINESS_NEED"}),
    (
        "NAMES without reason",
        {"command": "NAMES", "tin": None, "open_cases": ()},
        {"NO_BUSINESS_NEED"},
    ),
    ("NAMES blank reason", {"command": "NAMES", "tin": None, "reason": "  "}, {"NO_BUSINESS_NEED"}),
    (
        "NAMES with reason",
        {"command": "NAMES", "tin": None, "open_cases": (), "reason": "caller lost TIN"},
        set(),
    ),
    *[
        (code, {"conflicts": frozenset({code})}, {code})
        for code in (
            "CONFLICT_SELF",
            "CONFLICT_SPOUSE",
            "CONFLICT_RELATIVE",
            "CONFLICT_HOUSEHOLD",
            "CONFLICT_FINANCIAL",
            "CONFLICT_BUSINESS",
            "CONFLICT_DECLARED",
        )
    ],
    (
        "co-worker",
        {"target_is_employee": True, "target_same_unit": True},
        {"CONFLICT_COWORKER", "PROTECTED_EMPLOYEE_ACCOUNT"},
    ),
    (
        "co-worker even with the authority",
        {
            "target_is_employee": True,
            "target_same_unit": True,
            "authorities": frozenset({"employee_accounts"}),
        },
        {"CONFLICT_COWORKER", "PROTECTED_EMPLOYEE_ACCOUNT"},
    ),
    ("employee of another unit", {"target_is_employee": True}, {"PROTECTED_EMPLOYEE_ACCOUNT"}),
    (
        "employee of another unit, authority",
        {"target_is_employee": True, "authorities": frozenset({"employee_accounts"})},
        set(),
    ),
    ("high profile", {"high_profile": True}, {"SENSITIVE_ACCOUNT"}),
    (
        "high profile, authority",
        {"high_profile": True, "authorities": frozenset({"sensitive_accounts"})},
        set(),
    ),
    ("rate limited", {"rate_exceeded": True}, {"RATE_LIMITED"}),
    (
        "every reason at once",
        {
            "open_cases": (),
            "conflicts": frozenset({"CONFLICT_SPOUSE", "CONFLICT_FINANCIAL"}),
            "high_profile": True,
            "rate_exceeded": True,
            "profile": frozenset(),
        },
        {
            "NOT_IN_PROFILE",
            "NO_BUSINESS_NEED",
            "CONFLICT_SPOUSE",
            "CONFLICT_FINANCIAL",
            "SENSITIVE_ACCOUNT",
            "RATE_LIMITED",
        },
    ),
    (
        "a case never overrides a conflict",
        {"case": "C1", "conflicts": frozenset({"CONFLICT_SELF"})},
        {"CONFLICT_SELF"},
    ),
]


@pytest.mark.parametrize(("label", "change", "codes"), TABLE, ids=[t[0] for t in TABLE])
def test_every_reason_code_from_facts(label: str, change: dict, codes: set[str]) -> None:
    verdict = policy.decide(replace(OK, **change))
    assert set(verdict.codes) == codes
    assert verdict.allowed is (not codes)
    assert verdict.policy_version == policy.policy_version()
    if codes:
        assert verdict.obligations.visible == frozenset()
        assert all(r.message for r in verdict.reasons)
    else:
        assert verdict.basis is not None


@pytest.mark.parametrize(("label", "change", "codes"), TABLE, ids=[t[0] for t in TABLE])
def test_memo_and_cedar_agree(label: str, change: dict, codes: set[str]) -> None:
    facts = replace(OK, **change)
    if facts.command not in ALL_CODES:
        return
    cached = policy.evaluate(facts)
    fresh = policy.evaluate_uncached(facts)
    assert cached[0] == fresh[0] and sorted(cached[1]) == sorted(fresh[1])


def test_messages_reveal_nothing_of_the_third_party() -> None:
    verdict = policy.decide(replace(OK, conflicts=frozenset({"CONFLICT_RELATIVE"})))
    (reason,) = verdict.reasons
    assert "900" not in reason.message and "return" in reason.message
    assert "linked to this account" in reason.message


def test_basis_names_the_case_or_contact_used() -> None:
    assert policy.decide(OK).basis == "case:C1"
    assert policy.decide(replace(OK, open_cases=(), open_contacts=("K7",))).basis == "contact:K7"


def test_the_shipped_policies_validate_against_the_schema() -> None:
    loaded = policy.load()
    schema = cedarpy.Schema.from_str((policy.POLICY_DIR / policy.SCHEMA_FILE).read_text())
    for info in loaded.policies.values():
        result = cedarpy.validate_policies(info.text, schema)
        assert result.validation_passed, (info.policy_id, result.errors)
    assert {p.reason for p in loaded.policies.values() if p.effect == "forbid"} >= {
        "NOT_IN_PROFILE",
        "NO_BUSINESS_NEED",
        "CONFLICT_SELF",
        "CONFLICT_SPOUSE",
        "CONFLICT_RELATIVE",
        "CONFLICT_HOUSEHOLD",
        "CONFLICT_FINANCIAL",
        "CONFLICT_BUSINESS",
        "CONFLICT_DECLARED",
        "CONFLICT_COWORKER",
        "PROTECTED_EMPLOYEE_ACCOUNT",
        "SENSITIVE_ACCOUNT",
        "RATE_LIMITED",
    }
    assert [p for p in loaded.policies.values() if p.effect == "permit"]
    assert loaded.memoizable
    assert len(loaded.version) == 64


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    shutil.copytree(policy.POLICY_DIR, d)
    return d


def test_a_policy_that_does_not_parse_refuses_to_load_naming_file_and_line(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "60_extra.cedar").write_text(
        '// a broken rule\n\n@reason("RATE_LIMITED")\nforbid (principal, action, resource)\n'
        "when { context.rate_exceeded && };\n"
    )
    with pytest.raises(ConfigurationError, match=r"60_extra\.cedar:3 does not parse"):
        policy.load(d)


def test_a_policy_that_fails_validation_refuses_to_load(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "50_rate.cedar").read_text()
    (d / "50_rate.cedar").write_text(
        text + '\n@reason("X")\nforbid (principal, action, resource)'
        " when { context.no_such_fact };\n"
    )
    with pytest.raises(ConfigurationError, match=r"50_rate\.cedar:\d+ fails schema validation"):
        policy.load(d)


def test_a_forbid_without_a_reason_is_refused(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "70_x.cedar").write_text(
        "forbid (principal, action, resource) when { context.high_profile };\n"
    )
    with pytest.raises(ConfigurationError, match=r"70_x\.cedar:1: a forbid policy needs"):
        policy.load(d)


def test_no_permit_means_refusal_to_start(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    for f in d.glob("*.cedar"):  # every file holding a permit (the base one, the grants one)
        if "\npermit (" in "\n" + f.read_text():
            f.unlink()
    assert (d / "00_permit.cedar").exists() is False
    with pytest.raises(ConfigurationError, match="no permit policy"):
        policy.load(d)


def test_the_policy_version_is_a_hash_of_the_files(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    before = policy.load(d).version
    with (d / "50_rate.cedar").open("a") as fh:
        fh.write("\n// a comment changes the version too\n")
    assert policy.load(d).version != before


def test_split_statements_tracks_lines_strings_and_comments() -> None:
    text = '// c; ;\n@id("a;b")\npermit (principal, action, resource);\n\n\nforbid (p, a, r);'
    assert [line for line, _ in policy.split_statements(text)] == [2, 6]


MASKING = [
    ({"csr"}, set(), {S.IDENTITY, S.ADDRESS, S.RETURN, S.OTHER}),
    ({"examiner"}, set(), {S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.OTHER}),
    ({"examiner"}, {"adoption"}, {S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.OTHER, S.ADOPTION}),
    ({"csr"}, {"adoption"}, {S.IDENTITY, S.ADDRESS, S.RETURN, S.OTHER, S.ADOPTION}),
    ({"auditor"}, {"adoption"}, set()),
    ({"csr", "manager"}, set(), {S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.OTHER}),
]


@pytest.mark.parametrize(("roles", "auths", "visible"), MASKING)
def test_masking_classes_by_role_and_authority(roles: set, auths: set, visible: set) -> None:
    assert classes_for(roles, auths) == frozenset(visible)
