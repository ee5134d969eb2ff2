"""The daily ceiling of distinct taxpayers per employee (RATE_LIMITED).

Counted in ``access_counter`` (employee, UTC day, taxpayer): ``note_access`` is called by the
research service after an ALLOWED decision (and for each NAMES match revealed); the facts
read the count. Re-opening a taxpayer already counted today never counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idrs.access.models import AccessCounter
from idrs.config import Settings
from idrs.vocabulary import Role

#: per-role ceilings relative to the configured default (the highest of the roles wins)
ROLE_FACTORS: dict[str, float] = {Role.CSR: 1.0, Role.EXAMINER: 1.0, Role.MANAGER: 1.0}


_CACHE: dict[tuple[int, str, frozenset[str]], int] = {}


def limit_for(roles: Iterable[str], settings: Settings) -> int:
    """The daily ceiling for an employee with ``roles`` (``settings.daily_limit_default``
    scaled per role; a ``daily_limits`` mapping in settings, if present, wins)."""
    extra = (
        getattr(settings, "daily_limits", None)
        if "daily_limits" in type(settings).model_fields
        else None
    )
    key = (settings.daily_limit_default, repr(extra), frozenset(roles))
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 1024:
            _CACHE.clear()
        hit = _CACHE[key] = _limit(key[2], settings)
    return hit


def _limit(roles: frozenset[str], settings: Settings) -> int:
    has = "daily_limits" in type(settings).model_fields
    overrides: dict[str, int] = (getattr(settings, "daily_limits", None) if has else None) or {}
    base = settings.daily_limit_default
    values = [overrides.get(r, int(base * ROLE_FACTORS.get(r, 1.0))) for r in roles]
    return max(values) if values else base


def counter_writes(
    dialect: str, employee_id: int, day: date, tin_indexes: Iterable[bytes]
) -> list[tuple[str, dict[str, Any]]]:
    """:func:`note_access` as writes for the audit append's transaction (``log.append(also=)``).

    The research service counts an allowed access in the same transaction as its audit
    entry: the count and the entry commit together. Idempotent (ON CONFLICT DO NOTHING,
    SQLite and PostgreSQL alike).
    """
    tins = list(dict.fromkeys(tin_indexes))
    if not tins:
        return []
    params: dict[str, Any] = {
        "e": employee_id,
        "d": day if dialect == "postgresql" else day.isoformat(),
    }
    marks = []
    for i, t in enumerate(tins):
        params[f"t{i}"] = t
        marks.append(f"(:e, :d, :t{i})")
    sql = (
        "INSERT INTO access_counter (employee_id, day, tin_index) VALUES "  # noqa: S608 - marks only
        + ", ".join(marks)
        + " ON CONFLICT DO NOTHING"
    )
    return [(sql, params)]


def note_access(
    session: Session, employee_id: int, day: date, tin_indexes: Iterable[bytes]
) -> None:
    """Count the taxpayers opened by ``employee_id`` on ``day`` (idempotent; caller commits)."""
    rows = [{"employee_id": employee_id, "day": day, "tin_index": t} for t in set(tin_indexes)]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(AccessCounter).values(rows).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(AccessCounter).values(rows).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        existing = set(
            session.execute(
                select(AccessCounter.tin_index).where(
                    AccessCounter.employee_id == employee_id, AccessCounter.day == day
                )
            ).scalars()
        )
        for r in rows:
            if r["tin_index"] not in existing:
                session.add(AccessCounter(**r))
        return
    session.execute(stmt)
