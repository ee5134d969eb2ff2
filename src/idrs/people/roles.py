"""Roles and command-code profiles. Pure: no database.

An employee's profile is the union of the command codes their roles grant, intersected with
the ceiling profile of their unit (docs/domain.md: a profile never exceeds the unit's ceiling).
Roles that exist to watch the system (auditor, privacy analyst, security administrator,
privacy officer, authorizing official) grant no taxpayer command codes at all: reading the
audit log or approving grants never requires opening an account.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from idrs.errors import IdrsError


class Role(StrEnum):
    AUDITOR = "auditor"
    AUTHORIZING_OFFICIAL = "authorizing_official"
    CSR = "csr"
    EXAMINER = "examiner"
    MANAGER = "manager"
    PRIVACY_ANALYST = "privacy_analyst"
    PRIVACY_OFFICER = "privacy_officer"
    SECURITY_ADMIN = "security_admin"


#: Research command codes, in the order the documentation lists them.
RESEARCH_CODES: tuple[str, ...] = ("ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "NAMES", "IRPTR")
#: Adjustment command codes (the adjustments package implements them).
ADJUSTMENT_CODES: tuple[str, ...] = ("ENREQ", "ADJ54", "REQ77")
ALL_CODES: frozenset[str] = frozenset(RESEARCH_CODES + ADJUSTMENT_CODES)

_NONE: frozenset[str] = frozenset()

#: What each role may do. Why these sets: a CSR answers calls about one account (entity,
#: balance, modules, cross-references, name search to find the caller) and fixes addresses;
#: an examiner works whole cases (every research code and adjustments); a manager reviews
#: cases and approves adjustments but does not search by name (a browsing channel).
ROLE_CODES: dict[Role, frozenset[str]] = {
    Role.CSR: frozenset({"ENMOD", "IMFOL", "TXMOD", "INOLE", "NAMES", "ENREQ", "REQ77"}),
    Role.EXAMINER: frozenset(RESEARCH_CODES) | frozenset(ADJUSTMENT_CODES),
    Role.MANAGER: frozenset({"ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "IRPTR", "ADJ54"}),
    Role.SECURITY_ADMIN: _NONE,
    Role.PRIVACY_ANALYST: _NONE,
    Role.AUDITOR: _NONE,
    Role.PRIVACY_OFFICER: _NONE,
    Role.AUTHORIZING_OFFICIAL: _NONE,
}

ALL_ROLES: frozenset[str] = frozenset(r.value for r in Role)


def parse_roles(raw: str | Iterable[str]) -> frozenset[Role]:
    """Roles from ``"csr,examiner"`` or an iterable; IdrsError naming the valid roles otherwise."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = [str(r).strip().lower() for r in items if str(r).strip()]
    if not names:
        raise IdrsError("at least one role is required; valid roles: " + ", ".join(sorted(ALL_ROLES)))
    unknown = sorted(set(names) - ALL_ROLES)
    if unknown:
        raise IdrsError(
            f"unknown role {', '.join(unknown)}; valid roles: " + ", ".join(sorted(ALL_ROLES))
        )
    return frozenset(Role(n) for n in names)


def parse_codes(raw: str | Iterable[str]) -> frozenset[str]:
    """Command codes from ``"ENMOD,IMFOL"`` or an iterable; IdrsError for an unknown code."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    codes = {str(c).strip().upper() for c in items if str(c).strip()}
    unknown = sorted(codes - ALL_CODES)
    if unknown:
        raise IdrsError(
            f"unknown command code {', '.join(unknown)}; valid codes: " + ", ".join(sorted(ALL_CODES))
        )
    return frozenset(codes)


def codes_of_roles(roles: Iterable[Role | str]) -> frozenset[str]:
    """The union of the command codes the roles grant (before the unit ceiling)."""
    out: set[str] = set()
    for role in roles:
        out |= ROLE_CODES[Role(role)]
    return frozenset(out)


def profile_for(roles: Iterable[Role | str], ceiling: Iterable[str]) -> frozenset[str]:
    """The command-code profile: what the roles grant, bounded by the unit's ceiling."""
    return codes_of_roles(roles) & frozenset(ceiling)


def join(values: Iterable[str]) -> str:
    """The stored form of a set of roles or codes: sorted, comma-separated."""
    return ",".join(sorted(str(v) for v in values))
