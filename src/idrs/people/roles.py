"""Roles and command-code profiles. Pure: no database.

An employee's profile is the union of the command codes their roles grant, intersected with
the ceiling profile of their unit (docs/domain.md: a profile never exceeds the unit's ceiling).
Roles that exist to watch the system (auditor, privacy analyst, security administrator,
privacy officer, authorizing official) grant no taxpayer command codes at all: reading the
audit log or approving grants never requires opening an account.

The words themselves (``Role``, ``CommandCode``) are in ``idrs/vocabulary.py``; this module
says what they mean: the codes each role grants and the named groups of roles that may do one
thing (review alerts, read the oversight report, approve adjustments, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

from idrs.errors import IdrsError
from idrs.vocabulary import ADJUSTMENT_CODES, ALL_CODES, RESEARCH_CODES, CommandCode, Role

_NONE: frozenset[CommandCode] = frozenset()
_C = CommandCode

#: What each role may do. Why these sets: a CSR answers calls about one account (entity,
#: balance, modules, cross-references, name search to find the caller) and fixes addresses;
#: an examiner works whole cases (every research code and adjustments); a manager reviews
#: cases and approves adjustments but does not search by name (a browsing channel).
ROLE_CODES: dict[Role, frozenset[CommandCode]] = {
    Role.CSR: frozenset({_C.ENMOD, _C.IMFOL, _C.TXMOD, _C.INOLE, _C.NAMES, _C.ENREQ, _C.REQ77}),
    Role.EXAMINER: frozenset(RESEARCH_CODES) | frozenset(ADJUSTMENT_CODES),
    Role.MANAGER: frozenset({_C.ENMOD, _C.IMFOL, _C.TXMOD, _C.RTVUE, _C.INOLE, _C.IRPTR, _C.ADJ54}),
    Role.SECURITY_ADMIN: _NONE,
    Role.PRIVACY_ANALYST: _NONE,
    Role.AUDITOR: _NONE,
    Role.PRIVACY_OFFICER: _NONE,
    Role.AUTHORIZING_OFFICIAL: _NONE,
}

ALL_ROLES: frozenset[Role] = frozenset(Role)

# ----------------------------------------------------------------------------------------
# The groups of roles that may do one thing. Each is defined here once; the services, the
# API routes (``x-authorization``), the pages and the navigation all name these.
# tests/unit/test_vocabulary.py pins each group's members.

#: Who manages the employees of their own unit: assigns and closes its cases, acts for its
#: employees, reads and certifies the unit's weekly security report.
UNIT_MANAGERS: frozenset[Role] = frozenset({Role.MANAGER})
#: Who takes walk-ins: the roles that may declare a taxpayer contact no intake system recorded
#: (a taxpayer at the counter). Everyone else's contacts come from the telephony or
#: correspondence feed; a declared contact is marked ``declared`` and detection counts its use.
WALK_IN_ROLES: frozenset[Role] = frozenset({Role.CSR})
#: Who approves another employee's adjustment (the second person of two-person integrity).
ADJUSTMENT_APPROVERS: frozenset[Role] = frozenset({Role.MANAGER})
#: Who may request an adjustment: the roles that grant an adjustment code.
ADJUSTMENT_REQUESTERS: frozenset[Role] = frozenset(
    r for r, codes in ROLE_CODES.items() if codes & frozenset(ADJUSTMENT_CODES)
)
#: Who administers employees (roles, profiles, authorities, unlocks, deactivation).
SECURITY_ADMINS: frozenset[Role] = frozenset({Role.SECURITY_ADMIN})
#: Adding any of these roles to a profile needs a second security administrator: they
#: approve other people's adjustments, grants or profiles (people/admin.py).
RESTRICTED_ROLES: frozenset[Role] = frozenset(
    {Role.AUTHORIZING_OFFICIAL, Role.MANAGER, Role.PRIVACY_OFFICER, Role.SECURITY_ADMIN}
)
#: The roles that watch the system (their roles grant no taxpayer command code): auditors,
#: privacy staff, security administrators, authorizing officials. Giving one of them a
#: research code (or one of these roles to someone holding research codes) is a restricted
#: addition that a second security administrator confirms (issue 13.10; people/admin.py):
#: the people who read the audit log, work the alerts or administer profiles must not quietly
#: become able to open accounts themselves.
WATCH_ROLES: frozenset[Role] = frozenset(r for r, codes in ROLE_CODES.items() if not codes)
#: Who may ask why an access was allowed or refused of anyone (explain, who-can, what-can).
ACCESS_EXPLAINERS: frozenset[Role] = frozenset(
    {Role.SECURITY_ADMIN, Role.PRIVACY_ANALYST, Role.PRIVACY_OFFICER}
)
#: Who reads and verifies the audit log.
AUDIT_READERS: frozenset[Role] = frozenset({Role.AUDITOR})
#: Who reviews detection alerts (the alert desk, triage).
ALERT_REVIEWERS: frozenset[Role] = frozenset({Role.PRIVACY_ANALYST})
#: Who investigates a referred alert and records its outcomes (the agency's security staff,
#: the liaison of the inspector general): never the subject, never in the subject's unit,
#: never the analyst who referred it (detection/investigations.py).
INVESTIGATORS: frozenset[Role] = frozenset({Role.SECURITY_ADMIN})
#: Who starts a detection run.
DETECTION_RUNNERS: frozenset[Role] = frozenset({Role.PRIVACY_ANALYST, Role.PRIVACY_OFFICER})
#: Who produces and reads the notices to taxpayers (§7431(e)).
NOTICE_STAFF: frozenset[Role] = frozenset({Role.PRIVACY_ANALYST, Role.PRIVACY_OFFICER})
#: Who reads the accounting of accesses to one taxpayer.
ACCOUNTING_READERS: frozenset[Role] = frozenset(
    {Role.PRIVACY_ANALYST, Role.AUDITOR, Role.PRIVACY_OFFICER}
)
#: Who oversees every unit's weekly security report and the certification rate.
WEEKLY_OVERSEERS: frozenset[Role] = frozenset(
    {Role.PRIVACY_OFFICER, Role.PRIVACY_ANALYST, Role.AUTHORIZING_OFFICIAL, Role.AUDITOR}
)
#: Who reads weekly security reports (overseers: any unit; a unit manager: their own unit).
WEEKLY_READERS: frozenset[Role] = WEEKLY_OVERSEERS | UNIT_MANAGERS
#: Who reads the oversight report (potential and actual access).
OVERSIGHT_READERS: frozenset[Role] = frozenset(
    {Role.PRIVACY_OFFICER, Role.AUTHORIZING_OFFICIAL, Role.AUDITOR}
)
#: Who keeps the register of outside access (approving roles and the unit security rep).
GRANT_STAFF: frozenset[Role] = frozenset(
    {Role.PRIVACY_OFFICER, Role.AUTHORIZING_OFFICIAL, Role.SECURITY_ADMIN}
)
#: Who may read anyone's grants, agreements, clearance and training records (no taxpayer data).
GRANT_RECORD_READERS: frozenset[Role] = GRANT_STAFF | {Role.AUDITOR}
#: Who may re-identify an anonymized grant's pseudonym (the security staff; recorded).
REIDENTIFIERS: frozenset[Role] = frozenset({Role.SECURITY_ADMIN})
#: Who adds confidentiality-agreement versions.
AGREEMENT_AUTHORS: frozenset[Role] = frozenset({Role.PRIVACY_OFFICER, Role.AUTHORIZING_OFFICIAL})
#: Who records a clearance verification or a training attestation for another person.
RECORD_KEEPERS: frozenset[Role] = frozenset(
    {Role.SECURITY_ADMIN, Role.PRIVACY_OFFICER, Role.AUTHORIZING_OFFICIAL}
)
#: Who approves or rejects a disclosure batch held over its caps (the disclosure officer).
DISCLOSURE_OFFICERS: frozenset[Role] = frozenset({Role.PRIVACY_OFFICER})
#: Who reads disclosure batches, their decisions and proofs, and the disclosure queue.
DISCLOSURE_READERS: frozenset[Role] = DISCLOSURE_OFFICERS | {Role.AUDITOR}
# Who approves a grant is a setting (``IDRS_GRANT_APPROVAL_ROLES``, grants.rules.ApprovalRule).


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


def parse_codes(raw: str | Iterable[str]) -> frozenset[CommandCode]:
    """Command codes from ``"ENMOD,IMFOL"`` or an iterable; IdrsError for an unknown code."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    codes = {str(c).strip().upper() for c in items if str(c).strip()}
    unknown = sorted(codes - ALL_CODES)
    if unknown:
        raise IdrsError(
            f"unknown command code {', '.join(unknown)}; valid codes: " + ", ".join(sorted(ALL_CODES))
        )
    return frozenset(CommandCode(c) for c in codes)


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
