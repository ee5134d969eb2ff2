"""Time as a dependency: the system clock in production, a settable fake in tests.

Time in tests comes from an injected clock, never from a setting a production user could change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock for tests only: starts at ``start`` and moves only when told."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> None:
        self._now += timedelta(**kwargs)

    def set(self, when: datetime) -> None:
        self._now = when


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything in idrs is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
