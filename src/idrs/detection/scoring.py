"""Scoring an employee-day from its signals, and naming what it most looks like. Pure.

A signal counts once per (signal, taxpayer): looking at a cousin's entity and then their
modules is one ``same_surname``, not two. The score is the sum; an alert is raised at
:data:`THRESHOLD`. A single refused typo (1.0), a walk-in visit (0.5), or a look at someone
in one's own ZIP (0.3) never reaches it alone; any refused relationship (4.0) always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idrs.detection.signals import RELATIONSHIP_CODES, Signal

THRESHOLD = 3.0

#: the most specific signal present names the alert's category (a violation type)
CATEGORY_ORDER: tuple[tuple[str, str], ...] = (
    ("refused_conflict", ""),  # resolved by the codes
    ("adjust_then_address", "refund_diversion"),
    ("adjust_then_bank", "refund_diversion"),
    ("adjust_just_under", "split_adjustment"),
    ("adjust_weak_tie", "adjustment_tie"),
    ("coworker_account", "coworker"),
    ("target_employee", "coworker"),
    ("many_employees", "news_spike"),
    ("refused_sensitive", "celebrity"),
    ("high_profile", "celebrity"),
    ("same_street", "neighbour"),
    ("same_surname", "undeclared_relative"),
    ("past_address", "undeclared_relative"),
    ("contact_sweep", "contact_sweep"),
    ("sequence", "bulk_harvest"),
    ("volume", "bulk_harvest"),
    ("sweep", "sweep"),
    ("name_search_no_followup", "sweep"),
    ("repeated_refusals", "repeated_refusals"),
    ("after_hours", "after_hours"),
    ("contact_without_call", "pretext_contact"),
    ("basis_refused", "pretext_contact"),
    ("self_assigned_case", "pretext_contact"),
    ("rate_limited", "bulk_harvest"),
    ("refused_no_need", "repeated_refusals"),
    ("no_followup", "pretext_contact"),
    ("declared_contacts", "pretext_contact"),
)


@dataclass
class Scored:
    seid: str
    day: str
    score: float
    category: str
    signals: list[Signal]
    audit_indexes: list[int]
    taxpayers: list[str] = field(default_factory=list)
    self_reported: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"seid": self.seid, "day": self.day, "score": round(self.score, 2),
                "category": self.category, "signals": [s.as_dict() for s in self.signals],
                "audit_indexes": self.audit_indexes}


def dedupe(signals: list[Signal]) -> list[Signal]:
    """Keep the strongest signal per (name, taxpayer); order by weight."""
    best: dict[tuple[str, str | None], Signal] = {}
    for s in signals:
        key = (s.name, s.taxpayer)
        if key not in best or s.weight > best[key].weight:
            best[key] = s
    return sorted(best.values(), key=lambda s: (-s.weight, s.name))


def category_of(signals: list[Signal]) -> str:
    names = {s.name for s in signals if s.weight > 0}
    for name, cat in CATEGORY_ORDER:
        if name in names:
            if name == "refused_conflict":
                codes = [c for s in signals if s.name == name for c in s.evidence.get("codes", [])]
                order = ("CONFLICT_SELF", "CONFLICT_SPOUSE", "CONFLICT_HOUSEHOLD", "CONFLICT_RELATIVE")
                for c in order:
                    if c in codes:
                        return RELATIONSHIP_CODES[c]
                return "relative"
            return cat
    return "other"


def score_day(seid: str, day: str, signals: list[Signal], indexes: list[int],
              *, self_reported: bool = False) -> Scored:
    kept = dedupe(signals)
    total = sum(s.weight for s in kept)
    taxpayers = sorted({s.taxpayer for s in kept if s.taxpayer})
    return Scored(seid, day, total, category_of(kept), kept, sorted(set(indexes)), taxpayers,
                  self_reported or any(s.name == "self_reported" for s in kept))
