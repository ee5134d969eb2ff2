"""The shapes the decision point trades in: facts in (PIP), a verdict out (PDP).

The research and adjustment services call ``access.facts.gather`` then
``access.policy.decide``; the verdict's obligations drive masking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from idrs.errors import Reason
from idrs.masterfile.screens import Sensitivity


@dataclass(frozen=True)
class Obligations:
    """What the answer must honour: the classes shown in clear, anonymization, counting."""

    visible: frozenset[Sensitivity]
    anonymize: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reasons: list[Reason]
    obligations: Obligations
    policy_version: str
    #: the basis that made the access lawful (``case:ID``, ``contact:ID``), for the audit entry
    basis: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]
