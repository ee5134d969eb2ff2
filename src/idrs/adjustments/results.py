"""What the adjustment service answers (its typed results at the boundary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
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
