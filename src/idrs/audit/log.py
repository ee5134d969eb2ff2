"""Appending to the audit log. Each append commits in its own transaction before returning.

Callers: every service that records an event. Failure to append raises AuditUnavailable,
which every caller turns into a denial (fail closed: no entry, no data).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from idrs.audit.events import canonical
from idrs.audit.models import AuditEntry
from idrs.errors import IdrsError


class AuditUnavailable(IdrsError):
    status_code = 503


def append(engine: Engine, entry: dict[str, Any]) -> int:
    """Append one entry, commit it durably, and return its index."""
    leaf = canonical(entry)
    try:
        with engine.begin() as conn:
            nxt = conn.execute(select(func.coalesce(func.max(AuditEntry.idx) + 1, 0))).scalar_one()
            conn.execute(insert(AuditEntry).values(idx=nxt, leaf_input=leaf))
        return int(nxt)
    except SQLAlchemyError as exc:
        raise AuditUnavailable(f"audit log unavailable: {type(exc).__name__}") from None
