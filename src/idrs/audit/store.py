"""Raw access to the audit tables (DBAPI, both SQLite and PostgreSQL), used by the audit package only.

Audit appends bypass the ORM: they run thousands of times a second and must take the
log's write lock *first* (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped
advisory lock), so that every process sees one total, gap-free order.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class AppendLock:
    """The audit log's write lock between processes on one SQLite file, taken before
    ``BEGIN IMMEDIATE`` (SQLite's own lock still guards the data; this one only decides who
    tries next).

    Without it, an appender that finds another process's write lock held is put to sleep by
    SQLite's busy handler for 1, 2, 5, 10, ... up to 100 ms between tries, while the holder
    commits and takes the lock again at once: measured with two server processes, one
    appender now and then waited through the whole ladder (228 ms) for a lock that was free
    most of that time. Here a waiter polls an ``flock`` on a sidecar file
    (``DATABASE-append.lock``) every 50 µs to 1 ms, so it gets the lock within a fraction
    of a millisecond of its release. Threads of one process queue on a mutex first (an
    ``flock`` is held by the open file, not the thread). It never waits longer than the
    database's own lock wait (``PRAGMA busy_timeout``, from ``IDRS_DB_LOCK_TIMEOUT``), and
    then fails like SQLite does ("database is locked"), so the caller refuses with
    AUDIT_UNAVAILABLE as before. Where the sidecar cannot be opened (a read-only directory,
    a platform without ``flock``) it does nothing and SQLite's busy handler decides alone.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        # a descriptor inherited through fork() shares its lock with the parent: open anew
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            self._fd = None
        self._pid = os.getpid()
        return self._fd

    def acquire(self, wait_seconds: Callable[[], float]) -> None:
        """Take the lock; ``wait_seconds()`` (called only if it is busy) bounds the wait."""
        if not self._mutex.acquire(blocking=False) and not self._mutex.acquire(
            timeout=float(wait_seconds())
        ):
            raise sqlite3.OperationalError("database is locked")
        try:
            if self._depth == 0:
                fd = self._file()
                if fd is not None and not _flock(fd, blocking=False):
                    deadline = time.monotonic() + float(wait_seconds())
                    pause = 0.00005
                    while not _flock(fd, blocking=False):
                        if time.monotonic() >= deadline:
                            raise sqlite3.OperationalError("database is locked")
                        time.sleep(pause)
                        pause = min(pause * 2, 0.001)
            self._depth += 1
        except BaseException:
            self._mutex.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            _unlock(self._fd)
        self._mutex.release()


def _flock(fd: int, *, blocking: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


_APPEND_LOCKS: dict[str, AppendLock] = {}
#: absolute database names already resolved (realpath stats every component of the path:
#: not on every append)
_BY_NAME: dict[str, AppendLock] = {}
_APPEND_LOCKS_GUARD = threading.Lock()


def append_lock(engine: Engine) -> AppendLock | None:
    """The :class:`AppendLock` of ``engine``'s SQLite file (one per file and process), or
    None: PostgreSQL (its advisory lock queues waiters itself), an in-memory database, or a
    platform without ``flock``."""
    if engine.dialect.name != "sqlite":
        return None
    name = engine.url.database or ""
    if not name or name == ":memory:" or name.startswith("file:") or os.name != "posix":
        return None
    lock = _BY_NAME.get(name)
    if lock is not None:
        return lock
    path = os.path.realpath(name) + "-append.lock"
    with _APPEND_LOCKS_GUARD:
        lock = _APPEND_LOCKS.setdefault(path, AppendLock(path))
        if os.path.isabs(name):  # a relative name may mean another file after a chdir
            _BY_NAME[name] = lock
    return lock


class Raw:
    """One pooled DBAPI connection with ``?`` placeholders on both databases."""

    def __init__(self, engine: Engine, conn: Any = None) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.sqlite = engine.dialect.name == "sqlite"
        self.conn: Any = engine.raw_connection() if conn is None else conn
        self._engine = engine
        self._held: AppendLock | None = None

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
            lock = append_lock(self._engine)  # only a locked transaction needs it
            if lock is not None and self._held is None:
                lock.acquire(self._busy_timeout)
                self._held = lock
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._release()
                raise
        else:
            self.execute("SELECT pg_advisory_xact_lock(?)", (PG_LOCK_KEY,)).close()

    def _busy_timeout(self) -> float:
        """This connection's wait for a lock (``PRAGMA busy_timeout``), in seconds."""
        return int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

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
        try:
            self.conn.commit() if self.pg else self.conn.execute("COMMIT")
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            if self.pg:
                self.conn.rollback()
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001, S110 - the connection is being discarded anyway
            pass
        finally:
            self._release()

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self._release()

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
