"""What the adjustment service answers (its typed results at the boundary).

The approvers' list is a :class:`idrs.results.Record`: it reads as the dict it replaced, in
the same key order, so the API, the pages and the CLI answer the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idrs.results import Record


@dataclass(frozen=True, slots=True)
class AdjustmentResult:
    """The answer to a request, approval, rejection or reversal."""

    adjustment_id: int
    status: str
    audit_index: int
    requires: list[str] = field(default_factory=list)
    version: int | None = None
    #: why an amount threshold applies: code, scope, totals, the earlier adjustment ids
    #: (``with``) and a message (``rules.threshold_reasons``)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.document(), "audit_index": self.audit_index}

    def document(self) -> dict[str, Any]:
        """The answer as committed in its entry (issue 14.1): the HTTP body (``None`` left
        out) and the CLI's ``--json`` without ``audit_index``."""
        out: dict[str, Any] = {"adjustment_id": self.adjustment_id, "status": self.status}
        if self.requires:
            out["requires"] = self.requires
        if self.reasons:
            out["reasons"] = self.reasons
        if self.version is not None:
            out["version"] = self.version
        return out


@dataclass(frozen=True, slots=True)
class ListedAdjustment(Record):
    """One request in the approvers' list: no taxpayer identity, only the pseudonym."""

    adjustment_id: int
    command: str
    #: change or reversal
    kind: str
    status: str
    #: the taxpayer's audit pseudonym
    taxpayer: str
    tax_year: int | None
    tc: str | None
    #: dollars as text ("1000.00"), None for an entity change
    amount: str | None
    action_code: str | None
    requester: str
    case: str | None
    requires: list[str]
    requested_at: str | None
    expires_at: str | None
    #: the entity fields an ENREQ changes (names only)
    changes: list[str]
    #: the amount thresholds met, as the request's answer gave them
    reasons: list[dict[str, Any]]
    #: the adjustment a reversal undoes
    reverses: int | None
    #: the approver's own request (they may not decide it)
    own: bool


@dataclass(frozen=True, slots=True)
class AdjustmentListing(Record):
    """The approvers' list and the index of the entry that recorded it."""

    adjustments: list[ListedAdjustment]
    audit_index: int
