"""One write transaction on a raw DBAPI connection, and the audit append inside it.

Why raw: an adjustment, its postings and its audit entry must commit together or not at all,
and the audit log needs its write lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL the
transaction-scoped advisory lock ``idrs.audit.store.PG_LOCK_KEY``) so that the log keeps one
gap-free order across processes. :func:`append_audit` does exactly what
``idrs.audit.log._append_batch`` does, but on the caller's open transaction; on PostgreSQL
the advisory lock is taken last (just before commit) so the log is blocked only briefly.

Callers: ``adjustments.service`` only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.events import canonical
from idrs.audit.log import leaf_bytes
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.store import PG_LOCK_KEY, Raw
from idrs.db import db_datetime

#: What a duplicate insert raises (a concurrent first change of an entity).
INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


class Tx:
    """A raw connection in one transaction, ``?`` placeholders on both databases."""

    def __init__(self, engine: Engine) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.conn: Any = engine.raw_connection()
        self._open = False

    def begin(self) -> None:
        """SQLite: take the write lock first (no lock upgrade later, no SQLITE_BUSY_SNAPSHOT)."""
        if not self.pg:
            self.conn.execute("BEGIN IMMEDIATE")
        self._open = True

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

    def commit(self) -> None:
        if self.pg:
            self.conn.commit()
        else:
            self.conn.execute("COMMIT")
        self._open = False

    def rollback(self) -> None:
        try:
            if self.pg:
                self.conn.rollback()
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001, S110 - the connection is returned to the pool anyway
            pass
        self._open = False

    def close(self) -> None:
        if self._open:
            self.rollback()
        self.conn.close()


def _as_raw(tx: Tx) -> Raw:
    """The audit store's reader over OUR connection (same transaction, same storage layout)."""
    db = Raw.__new__(Raw)
    db.pg, db.sqlite, db.conn = tx.pg, not tx.pg, tx.conn
    return db


@dataclass
class AuditSlot:
    """The next index of the log, reserved under its write lock inside a transaction."""

    index: int
    edge: dict[merkle.Node, bytes]


def reserve_audit(tx: Tx) -> AuditSlot:
    """Take the log's write lock inside ``tx`` and learn the next index (and the right edge).

    PostgreSQL: the advisory lock is transaction-scoped (held to commit or rollback);
    SQLite: the write lock is already held since ``BEGIN IMMEDIATE``. Nothing is written:
    a transaction that rolls back after reserving leaves no gap.
    """
    last = "SELECT idx FROM audit_entry ORDER BY idx DESC LIMIT 1"
    if tx.pg:
        # its own statement: a statement's snapshot is taken before the lock is granted, so
        # reading the size in the same statement would see a stale log (duplicate index);
        # both statements still go in one round trip (pipeline mode)
        with tx.conn.pipeline():
            cur = tx.conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,), prepare=True)
            cur.execute(last, prepare=True)
        row = cur.fetchone()
        cur.close()
    else:
        row = tx.one(last)
    size = 0 if row is None else int(row[0]) + 1
    return AuditSlot(size, _as_raw(tx).nodes(merkle.right_edge(size)))


def write_audit(tx: Tx, slot: AuditSlot, entry: dict[str, Any],
                index_update: tuple[str, int] | None = None,
                also: Sequence[tuple[str, Sequence[Any]]] = ()) -> int:
    """Write ``entry`` at the reserved index: the leaf and the Merkle nodes it completes, in
    the audit store's layout (levels below ``MIN_STORED_LEVEL`` are not stored), then the
    statements ``also`` (``?`` placeholders) in the same transaction.

    PostgreSQL: one statement, which also stores the index on the adjustment row when
    ``index_update`` = (column, adjustment id) is given, sent with ``also`` in one round trip.
    """
    leaf = leaf_bytes(entry, slot.index)
    h = merkle.leaf_hash(leaf)
    made = merkle.append_nodes(slot.index, [h], slot.edge.__getitem__)
    inner = [(node_key(lvl, i), nh) for (lvl, i), nh in made if lvl >= MIN_STORED_LEVEL]
    if tx.pg:
        parts = ["e AS (INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (?, ?, ?))"]
        params: list[Any] = [slot.index, leaf, h]
        if inner:
            parts.append("n AS (INSERT INTO audit_node (id, hash) SELECT * FROM"
                         " unnest(?::bigint[], ?::bytea[]))")
            params += [[k for k, _ in inner], [v for _, v in inner]]
        if index_update is not None:
            column, adj_id = index_update
            if column not in ("request_audit_index", "decision_audit_index"):
                raise ValueError(column)
            tail = f"UPDATE adjustment_request SET {column} = ? WHERE id = ?"  # noqa: S608
            params += [slot.index, adj_id]
        else:
            tail = "SELECT 1"
        with tx.conn.pipeline():
            cur = tx.conn.cursor()
            cur.execute(tx._q("WITH " + ", ".join(parts) + " " + tail), params)
            for sql, ps in also:
                cur.execute(tx._q(sql), tuple(ps))
        cur.close()
        return slot.index
    tx.execute("INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (?, ?, ?)",
               (slot.index, leaf, h))
    for key, nh in inner:
        tx.execute("INSERT INTO audit_node (id, hash) VALUES (?, ?)", (key, nh))
    for sql, ps in also:
        tx.execute(sql, ps)
    return slot.index


def append_audit(tx: Tx, entry: dict[str, Any]) -> int:
    """Append ``entry`` to the audit log inside ``tx`` (committed with it); return its index."""
    canonical(entry)  # TypeError/ValueError before touching the log
    return write_audit(tx, reserve_audit(tx), entry)


def after_commit_checkpoint(engine: Engine, size_after: int) -> None:
    """Let the audit appender sign a checkpoint if one is due (best effort, never raises)."""
    try:
        from idrs.audit import log

        log.appender_for(engine)._maybe_checkpoint(size_after)
    except Exception:  # noqa: BLE001, S110 - the entry is committed; signing is retried later
        pass
