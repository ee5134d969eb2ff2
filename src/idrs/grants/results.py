"""Typed results of the grants service's changes (issue 12, point 5).

Each is a frozen dataclass; ``as_dict()`` gives the keys in the order the interfaces have
always shown them (the API's JSON, the CLI's ``--json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Result:
    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GrantApproved(_Result):
    """One approval recorded; ``status`` is ``approved`` once the rule's roles are all in."""

    grant_id: int
    status: str
    role: str
    approvals: list[str]
    audit_index: int


@dataclass(frozen=True)
class GrantClosed(_Result):
    """A grant revoked or ended early."""

    grant_id: int
    status: str
    audit_index: int


@dataclass(frozen=True)
class ClearanceVerified(_Result):
    seid: str
    verified_by: str
    verified_at: str
    audit_index: int


@dataclass(frozen=True)
class TrainingAttested(_Result):
    """A UNAX attestation recorded (by the employee with a code, or by the operator)."""

    seid: str
    attested_at: str
    valid_until: str
    audit_index: int


@dataclass(frozen=True)
class AgreementSigned(_Result):
    signature_id: int
    agreement_id: int
    sha256: str
    signed_at: str
    audit_index: int


@dataclass(frozen=True)
class Reidentified(_Result):
    """The taxpayer behind one pseudonym of an anonymized grant (security staff; recorded)."""

    grant_id: int
    pseudonym: str
    tin: str
    taxpayer: str
    tax_year: int
    audit_index: int


@dataclass(frozen=True)
class KeyRotated(_Result):
    grant_id: int
    key_version: int
    audit_index: int


@dataclass(frozen=True)
class ExportDestroyed(_Result):
    """An export certified destroyed by its holder, with a witness."""

    export_id: str
    status: str
    holder: str
    witness: str
    method: str
    destroyed_at: str
    audit_index: int


@dataclass(frozen=True)
class StatisticsBudget(_Result):
    """A statistics grant's privacy budget: ε and δ in all, spent, and ε left."""

    grant_id: int
    epsilon: float
    delta: float | None
    epsilon_spent: float
    delta_spent: float
    budget_left: float


@dataclass(frozen=True)
class GrantRequested(_Result):
    """A grant (or a renewal) requested: pending approval, its term."""

    grant_id: int
    status: str
    principal: str
    start: str
    term_days: int
    end: str
    audit_index: int


@dataclass(frozen=True)
class AgreementAdded(_Result):
    """A new agreement version, the one current version of its title from now on."""

    agreement_id: int
    sha256: str
    title: str
    version: int
    audit_index: int


@dataclass(frozen=True)
class OutstandingAlert(_Result):
    """An "exports outstanding" alert raised for a grant that is over."""

    grant_id: int
    seid: str
    exports: list[str]
    audit_index: int
