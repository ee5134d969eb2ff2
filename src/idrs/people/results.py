"""Typed results of the security administrator's changes (issue 12, point 5).

Frozen dataclasses; ``as_dict()`` gives the keys in the order the API's JSON and the CLI's
``--json`` have always shown them.
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
class CeilingSet(_Result):
    """A unit's new ceiling; ``trimmed``: the codes each member's profile lost to it."""

    code: str
    ceiling: list[str]
    before: list[str]
    trimmed: dict[str, list[str]]
    audit_index: int


@dataclass(frozen=True)
class ActiveSet(_Result):
    """An employee deactivated (their live sessions ended) or reactivated."""

    seid: str
    active: bool
    sessions_ended: int
    audit_index: int


@dataclass(frozen=True)
class Unlocked(_Result):
    seid: str
    locked: bool
