"""Hand-written SQL on the session's own DBAPI connection, for the hot paths of access.

The decision and the conflict index run many tiny indexed queries; going straight to the
driver (same connection, same transaction as the SQLAlchemy session) removes most of the
per-statement overhead. SQL is written once with ``:name`` parameters and ``{name}`` list
placeholders (expanded per call) and works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=512)
def _render(sql: str, dialect: str, lists: tuple[tuple[str, int], ...]) -> str:
    for name, n in lists:
        marks = ", ".join(f":{name}_{i}" for i in range(max(n, 1)))
        sql = sql.replace("{" + name + "}", marks)
    if dialect == "postgresql":
        sql = _PARAM.sub(r"%(\1)s", sql)
    return sql


def fetch(
    conn: Session | Connection,
    sql: str,
    params: dict[str, Any] | None = None,
    lists: dict[str, Sequence[Any]] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` with ``params`` (scalars) and ``lists`` (expanded ``{name}`` lists).

    An empty list expands to one NULL, which matches nothing.
    """
    return _run(conn, sql, params, lists, rows=True)


def execute(
    conn: Session | Connection,
    sql: str,
    params: dict[str, Any] | None = None,
    lists: dict[str, Sequence[Any]] | None = None,
) -> None:
    """Run a statement that returns no rows (DELETE, UPDATE) like :func:`fetch`."""
    _run(conn, sql, params, lists, rows=False)


def _run(
    conn: Session | Connection,
    sql: str,
    params: dict[str, Any] | None,
    lists: dict[str, Sequence[Any]] | None,
    *,
    rows: bool,
) -> list[tuple[Any, ...]]:
    c = conn.connection() if isinstance(conn, Session) else conn
    dialect = c.dialect.name
    p: dict[str, Any] = dict(params or {})
    shape: list[tuple[str, int]] = []
    for name, values in (lists or {}).items():
        vals = list(values)
        shape.append((name, len(vals)))
        if not vals:
            p[f"{name}_0"] = None
        for i, v in enumerate(vals):
            p[f"{name}_{i}"] = v
    if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - only the two we support
        res = c.execute(text(_render(sql, "generic", tuple(shape))), p)
        return [tuple(r) for r in res] if rows else []
    if dialect == "sqlite":
        for k, v in p.items():
            if isinstance(v, date):
                p[k] = v.isoformat()
    raw = c.connection.driver_connection
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_render(sql, dialect, tuple(shape)), p)
        return list(cur.fetchall()) if rows else []
    finally:
        cur.close()


def execute_many(conn: Session | Connection, sql: str, rows: Sequence[dict[str, Any]]) -> None:
    """Run ``sql`` (``:name`` parameters) once per row on the driver connection."""
    if not rows:
        return
    c = conn.connection() if isinstance(conn, Session) else conn
    dialect = c.dialect.name
    if dialect not in ("sqlite", "postgresql"):  # pragma: no cover
        c.execute(text(sql), list(rows))
        return
    raw = c.connection.driver_connection
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        cur.executemany(_render(sql, dialect, ()), list(rows))
    finally:
        cur.close()

