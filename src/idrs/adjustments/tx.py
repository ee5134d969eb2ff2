"""SQL helpers over the adjustment's transaction (``?`` placeholders on both databases).

The transaction itself, and the audit entry committed with the change, belong to the audit
package's unit of work (:func:`idrs.audit.log.unit_of_work`): one appender for every write,
with its checkpoint-floor check. Nothing here touches the audit log.

Callers: the modules of the adjustment service (``adjustments.apply`` among them) only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import psycopg

from idrs.db import db_datetime

#: What a duplicate insert raises (a concurrent first change of an entity).
INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


class Tx:
    """SQL on the open transaction of a unit of work (``conn``: its DBAPI connection)."""

    def __init__(self, conn: Any, pg: bool) -> None:
        self.pg = pg
        self.conn: Any = conn

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def p(self, value: Any) -> Any:
        """A datetime/date parameter as each database stores it (SQLAlchemy's SQLite format)."""
        if self.pg or not isinstance(value, date):
            return value
        if isinstance(value, datetime):
            return db_datetime("sqlite", value)
        if isinstance(value, date):
            return value.isoformat()
        return value

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(sql), tuple(params))
            return int(cur.rowcount)
        finally:
            cur.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(sql), tuple(params))
            return cur.fetchone()
        finally:
            cur.close()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._q(sql), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def insert(self, table: str, values: dict[str, Any]) -> int:
        """INSERT one row; return its ``id``."""
        cols = ", ".join(values)
        marks = ", ".join("?" * len(values))
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"  # noqa: S608 - names are ours
        params = tuple(self.p(v) for v in values.values())
        cur = self.conn.cursor()
        try:
            if self.pg:
                cur.execute(self._q(sql) + " RETURNING id", params)
                return int(cur.fetchone()[0])
            cur.execute(sql, params)
            return int(cur.lastrowid)
        finally:
            cur.close()
