"""Roles → command-code profiles, bounded by the unit ceiling (pure)."""

from __future__ import annotations

import pytest

from idrs.errors import IdrsError
from idrs.people.roles import (
    ALL_ROLES,
    codes_of_roles,
    join,
    parse_codes,
    parse_roles,
    profile_for,
)
from idrs.vocabulary import ALL_CODES, RESEARCH_CODES, Role

WATCHERS = ["auditor", "privacy_analyst", "security_admin", "privacy_officer", "authorizing_official"]


@pytest.mark.parametrize("role", WATCHERS)
def test_oversight_roles_have_no_taxpayer_codes(role):
    assert profile_for([role], ALL_CODES) == frozenset()


def test_every_role_named_in_the_domain_exists():
    assert {"csr", "examiner", "manager", "security_admin", "privacy_analyst", "auditor",
            "privacy_officer", "authorizing_official"} == ALL_ROLES


@pytest.mark.parametrize(
    ("roles", "ceiling", "expected"),
    [
        (["examiner"], ALL_CODES, set(RESEARCH_CODES) | {"ENREQ", "ADJ54", "REQ77"}),
        (["examiner"], {"ENMOD", "IMFOL"}, {"ENMOD", "IMFOL"}),
        (["csr"], ALL_CODES, {"ENMOD", "IMFOL", "TXMOD", "INOLE", "NAMES", "ENREQ", "REQ77"}),
        (["csr", "auditor"], ALL_CODES, {"ENMOD", "IMFOL", "TXMOD", "INOLE", "NAMES", "ENREQ", "REQ77"}),
        (["manager"], ALL_CODES, {"ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "IRPTR", "ADJ54"}),
        (["csr", "manager"], {"RTVUE", "NAMES", "ADJ54"}, {"RTVUE", "NAMES", "ADJ54"}),
        (["csr"], set(), set()),
    ],
)
def test_profile_is_union_of_roles_within_the_ceiling(roles, ceiling, expected):
    assert profile_for(roles, ceiling) == frozenset(expected)


def test_manager_has_no_name_search():
    assert "NAMES" not in codes_of_roles([Role.MANAGER])


def test_parse_roles():
    assert parse_roles("Examiner, csr") == {Role.EXAMINER, Role.CSR}
    with pytest.raises(IdrsError, match="unknown role wizard; valid roles: auditor"):
        parse_roles("csr,wizard")
    with pytest.raises(IdrsError, match="at least one role"):
        parse_roles(" , ")


def test_parse_codes_and_join():
    assert parse_codes("enmod,IMFOL") == {"ENMOD", "IMFOL"}
    with pytest.raises(IdrsError, match="unknown command code FOO"):
        parse_codes("ENMOD,FOO")
    assert join({"TXMOD", "ENMOD"}) == "ENMOD,TXMOD"
