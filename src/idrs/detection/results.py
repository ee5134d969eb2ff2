"""What a detection run answers (:func:`idrs.detection.service.run`): the alerts it raised
or changed and the summary of what it read, as typed records (:class:`idrs.results.Record`:
they read as the dicts the run returned before, in the same key order, so every interface
answers the same)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idrs.results import Record


@dataclass(frozen=True, slots=True)
class RaisedAlert(Record):
    """An alert a run raised or changed, as the interfaces show it."""

    alert_id: str
    seid: str
    score: float
    category: str
    #: the employee-day, ISO 8601
    day: str
    #: name, weight, evidence and taxpayer pseudonym of each signal
    signals: list[dict[str, Any]]
    audit_indexes: list[int]
    #: one sentence per signal, then what was ruled out (:func:`idrs.detection.explain.why`)
    why: list[str]
    state: str


@dataclass(frozen=True, slots=True)
class RunSummary(Record):
    """What a run read, explained and changed (also the detail of its audit entry)."""

    from_index: int
    to_index: int
    entries_read: int
    context_from_index: int
    context_entries: int
    #: the first day recomputed (ISO 8601); None when nothing new was read
    recomputed_from_day: str | None
    context_capped: bool
    new_bases: int
    accesses: int
    explained_case: int
    explained_contact: int
    explained_walk_in: int
    explained_unit_workflow: int
    explained_collaboration: int
    name_searches: int
    unexplained: int
    refused: int
    alerts: int
    alerts_withdrawn: int


@dataclass(frozen=True, slots=True)
class DetectionRun(Record):
    """The answer of one run: the alerts raised or changed, and the summary."""

    alerts: list[RaisedAlert]
    summary: RunSummary
