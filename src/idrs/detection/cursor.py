"""The detection cursor and the audit log as detection reads it: the next entry a run
starts from, the log's size, an entry's time and the first entry at a time.

Callers: :mod:`idrs.detection.runner`, :mod:`idrs.detection.reports`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.models import DetectionCursor


def next_index(app: App) -> int:
    with session_scope(app.engine) as s:
        c = s.get(DetectionCursor, 1)
        return c.next_index if c else 0


def log_size(app: App) -> int:
    with raw(app.engine) as db:
        return int(db.size())


def time_of(db: Any, idx: int) -> datetime:
    row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (idx,))
    return as_utc(datetime.fromisoformat(json.loads(bytes(row[0]))["time"]))


def first_index_at(app: App, since: datetime, size: int) -> int:
    """The first entry whose time is >= ``since`` (binary search; entries are in time order)."""
    lo, hi = 0, size
    with raw(app.read_engine) as db:
        while lo < hi:
            mid = (lo + hi) // 2
            if time_of(db, mid) < since:
                lo = mid + 1
            else:
                hi = mid
    return lo


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)

