"""Raw access to the audit tables (DBAPI, both SQLite and PostgreSQL), used by the audit package only.

Audit appends bypass the ORM: they run thousands of times a second and must take the
log's write lock *first* (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped
advisory lock), so that every process sees one total, gap-free order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from idrs.audit.merkle import Node, node_hash
from idrs.audit.models import LEVEL_SHIFT, MIN_STORED_LEVEL, node_key

#: PostgreSQL advisory lock key of the audit log ("idrsaudt").
PG_LOCK_KEY = 0x6964727361756474
_PG_NODES = (
    "SELECT 0, idx, leaf_hash FROM audit_entry WHERE idx = ANY(%s::bigint[])"
    " UNION ALL SELECT 1, id, hash FROM audit_node WHERE id = ANY(%s::bigint[])"
)
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _pg_named(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql)


class Raw:
    """One pooled DBAPI connection with ``?`` placeholders on both databases."""

    def __init__(self, engine: Engine, conn: Any = None) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.sqlite = engine.dialect.name == "sqlite"
        self.conn: Any = engine.raw_connection() if conn is None else conn

    @classmethod
    def lent(cls, engine: Engine, driver_conn: Any) -> Raw:
        """A Raw over a DBAPI connection someone else owns (never closed through it)."""
        return cls(engine, driver_conn)

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def named(self, sql: str) -> str:
        """SQL written with ``:name`` parameters, in this driver's style (run with a dict)."""
        return _pg_named(sql) if self.pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._q(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        cur = self.conn.cursor()
        cur.executemany(self._q(sql), list(rows))
        cur.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.execute(sql, params)
        row = cur.fetchone()
        cur.close()
        return row

    def begin_locked(self) -> None:
        """Start a transaction holding the audit log's write lock (waits for other writers)."""
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.execute("SELECT pg_advisory_xact_lock(?)", (PG_LOCK_KEY,)).close()

    def begin_write(self) -> None:
        """Start a plain write transaction (no log lock: for writes outside the log)."""
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        """Start a read transaction with one consistent snapshot."""
        if self.sqlite:
            self.conn.execute("BEGIN")
        else:
            self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").close()

    def commit(self) -> None:
        self.conn.commit() if self.pg else self.conn.execute("COMMIT")

    def rollback(self) -> None:
        try:
            if self.pg:
                self.conn.rollback()
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001, S110 - the connection is being discarded anyway
            pass

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ tree reads

    def size(self) -> int:
        row = self.one("SELECT idx FROM audit_entry ORDER BY idx DESC LIMIT 1")
        return 0 if row is None else int(row[0]) + 1

    def nodes(self, wanted: Iterable[Node]) -> dict[Node, bytes]:
        """Fetch perfect-subtree hashes: level 0 from ``audit_entry.leaf_hash``, levels below
        MIN_STORED_LEVEL recomputed from those, the rest from ``audit_node``. A missing stored
        row is absent from the result (KeyError if a recomputed node lacks a leaf)."""
        wanted = set(wanted)
        out: dict[Node, bytes] = {}
        derived = [(lvl, i) for lvl, i in wanted if 0 < lvl < MIN_STORED_LEVEL]
        if (
            derived
        ):  # recomputed from the leaf hashes below them (MIN_STORED_LEVEL is 2: one hash each)
            below = self.nodes((0, (i << lvl) + k) for lvl, i in derived for k in range(1 << lvl))
            for lvl, i in derived:
                level = [below[(0, (i << lvl) + k)] for k in range(1 << lvl)]
                while len(level) > 1:
                    level = [node_hash(level[j], level[j + 1]) for j in range(0, len(level), 2)]
                out[(lvl, i)] = level[0]
        leaves = sorted(i for lvl, i in wanted if lvl == 0)
        inner = sorted(node_key(lvl, i) for lvl, i in wanted if lvl >= MIN_STORED_LEVEL)
        mask = (1 << LEVEL_SHIFT) - 1
        if self.pg and (leaves or inner):
            # one round trip, one prepared statement whatever the number of nodes
            cur = self.conn.cursor()
            cur.execute(_PG_NODES, (leaves, inner), prepare=True)
            for kind, key, h in cur.fetchall():
                if kind == 0:
                    out[(0, int(key))] = bytes(h)
                else:
                    out[(int(key) >> LEVEL_SHIFT, int(key) & mask)] = bytes(h)
            cur.close()
            return out
        if leaves:
            marks = ",".join("?" * len(leaves))
            sql = f"SELECT idx, leaf_hash FROM audit_entry WHERE idx IN ({marks})"  # noqa: S608
            cur = self.execute(sql, leaves)
            for idx, h in cur.fetchall():
                out[(0, int(idx))] = bytes(h)
            cur.close()
        if inner:
            marks = ",".join("?" * len(inner))
            cur = self.execute(f"SELECT id, hash FROM audit_node WHERE id IN ({marks})", inner)  # noqa: S608
            for key, h in cur.fetchall():
                out[(int(key) >> LEVEL_SHIFT, int(key) & mask)] = bytes(h)
            cur.close()
        return out

    def latest_checkpoint(self) -> tuple[int, int, bytes, str] | None:
        row = self.one(
            "SELECT id, tree_size, root_hash, note FROM audit_checkpoint ORDER BY id DESC LIMIT 1"
        )
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]), str(row[3]))


@contextmanager
def raw(engine: Engine) -> Iterator[Raw]:
    r = Raw(engine)
    try:
        yield r
    except BaseException:
        r.rollback()
        raise
    finally:
        r.close()
