"""The fixed words of idrs: employee roles and command codes. Pure: imports nothing of idrs.

Every layer names them: the master file runs the research codes, people grants codes by role,
access decides on both, grants scope them, the interfaces list them. They live here, below all
of those, so that each imports them without a cycle (``config`` too: the default approving
roles of a grant are a setting). What a role *may do* (its codes, the groups of roles that may
open a page or a report) is policy and lives in ``people/roles.py``.

Both are ``StrEnum``: a member *is* its string (``Role.CSR == "csr"``, ``f"{Role.CSR}"`` is
``csr``), so stored values, audit entries, JSON and pages read exactly as the plain strings did.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """An employee's role (stored comma-separated in ``employee.roles``)."""

    AUDITOR = "auditor"
    AUTHORIZING_OFFICIAL = "authorizing_official"
    CSR = "csr"
    EXAMINER = "examiner"
    MANAGER = "manager"
    PRIVACY_ANALYST = "privacy_analyst"
    PRIVACY_OFFICER = "privacy_officer"
    SECURITY_ADMIN = "security_admin"


class CommandCode(StrEnum):
    """A command code: the Cedar action of an access decision and the key of the audit entry."""

    # research (masterfile/commands.py runs them)
    ENMOD = "ENMOD"
    IMFOL = "IMFOL"
    TXMOD = "TXMOD"
    RTVUE = "RTVUE"
    INOLE = "INOLE"
    NAMES = "NAMES"
    IRPTR = "IRPTR"
    # adjustments (adjustments/ runs them)
    ENREQ = "ENREQ"
    ADJ54 = "ADJ54"
    REQ77 = "REQ77"


#: Research command codes, in the order the documentation lists them.
RESEARCH_CODES: tuple[CommandCode, ...] = (
    CommandCode.ENMOD, CommandCode.IMFOL, CommandCode.TXMOD, CommandCode.RTVUE,
    CommandCode.INOLE, CommandCode.NAMES, CommandCode.IRPTR,
)
#: Adjustment command codes, in the order the documentation lists them.
ADJUSTMENT_CODES: tuple[CommandCode, ...] = (CommandCode.ENREQ, CommandCode.ADJ54, CommandCode.REQ77)
ALL_CODES: frozenset[CommandCode] = frozenset(CommandCode)
