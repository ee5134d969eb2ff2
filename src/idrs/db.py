"""Engines and sessions. SQLite (WAL, foreign keys on) embedded; PostgreSQL via psycopg 3.

SQLite WAL checkpoints run in the background: a daemon thread per engine copies committed
frames from the WAL back into the database file every ``CHECKPOINT_SECONDS`` (a PASSIVE
checkpoint: it waits for no reader and no writer), so that no request pays for a
checkpoint and its two fsyncs. SQLite's own automatic checkpoint (run by whichever commit
crosses ``AUTOCHECKPOINT_PAGES``) stays on as the safety net. Durability is unchanged: a
transaction is durable (against a process crash, ``synchronous=NORMAL``) once its frames are
in the WAL, whoever checkpoints them later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session

from idrs.errors import ConfigurationError, ReplicaBehind

log = logging.getLogger(__name__)

#: how often the background checkpointer looks at the WAL (and checkpoints it if it grew)
CHECKPOINT_SECONDS = 0.2
#: SQLite's own automatic checkpoint, in the committing connection: the safety net (~40 MB)
AUTOCHECKPOINT_PAGES = 10_000
#: a WAL left larger than this by a burst is truncated back when it restarts
JOURNAL_SIZE_LIMIT = 64 * 2**20

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def unavailable_errors() -> tuple[type[Exception], ...]:
    """The errors of a database that cannot be reached or whose lock was not had in time, as
    SQLAlchemy wraps them and as the drivers raise them on the hot paths that talk to them
    directly (the HTTP layer answers them 503). psycopg is imported here, not at start-up."""
    import psycopg

    return (OperationalError, sqlite3.OperationalError, psycopg.OperationalError)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _lock_timeout(seconds: float | None) -> float:
    """The configured wait for another process's lock (``IDRS_DB_LOCK_TIMEOUT``)."""
    if seconds is not None:
        return seconds
    from idrs.config import get_settings

    return float(get_settings().db_lock_timeout)


def _sqlite_pragmas(lock_ms: int) -> Callable[[Any, Any], None]:
    """The connect hook that sets every SQLite connection's pragmas."""

    def apply(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # NORMAL in WAL mode: a committed transaction survives a process crash (kill -9);
        # docs/security.md explains why power loss is out of scope on this deployment.
        cur.execute("PRAGMA synchronous=NORMAL")
        # a lock held by another process is waited for this long, then the statement fails
        # (research answers AUDIT_UNAVAILABLE): a short wait, not a stalled request
        cur.execute(f"PRAGMA busy_timeout={lock_ms}")
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        cur.close()

    return apply


class _Checkpointer:
    """The background WAL checkpointer of one SQLite engine (see the module docstring).

    Lives while its engine does (a weak reference; the thread ends within
    ``CHECKPOINT_SECONDS`` of the engine being disposed of or collected) and while the
    database file exists. Never raises: a failed checkpoint is retried next round, and the
    automatic checkpoint still bounds the WAL.
    """

    def __init__(self, engine: Engine, path: str) -> None:
        self.engine = weakref.ref(engine)
        self.path = path
        self.wal = path + "-wal"
        self.thread = threading.Thread(target=self._run, name="idrs-wal-checkpoint", daemon=True)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        seen: tuple[int, int] | None = None
        inode = -1
        try:
            while self._alive():
                time.sleep(CHECKPOINT_SECONDS)
                try:
                    st = os.stat(self.wal)
                    ino = os.stat(self.path).st_ino
                except FileNotFoundError:
                    continue
                if (st.st_mtime_ns, st.st_size) == seen:
                    continue  # nothing committed since the last checkpoint
                try:
                    if conn is not None and ino != inode:  # the file was replaced: reopen
                        conn.close()
                        conn = None
                    if conn is None:
                        inode = ino
                        conn = sqlite3.connect(
                            self.path, timeout=1, isolation_level=None, check_same_thread=False
                        )
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    seen = (st.st_mtime_ns, st.st_size)
                except sqlite3.Error:  # busy, or the file went away: try again next round
                    log.debug("background WAL checkpoint failed", exc_info=True)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def _alive(self) -> bool:
        """While the engine exists, has connections (not disposed of) and the file exists."""
        engine = self.engine()
        if engine is None or not os.path.exists(self.path):
            return False
        pool: Any = engine.pool
        try:
            return bool(pool.checkedout() or pool.checkedin())
        except AttributeError:  # a pool that does not count: keep going while the engine lives
            return True


#: per engine, weakly: a collected engine's entry goes with it (never found by a new engine)
_checkpointers: weakref.WeakKeyDictionary[Engine, _Checkpointer] = weakref.WeakKeyDictionary()
_checkpointers_lock = threading.Lock()


def _forget_checkpointers_after_fork() -> None:
    global _checkpointers_lock
    _checkpointers.clear()  # the threads did not survive the fork; start anew on next connect
    _checkpointers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_checkpointers_after_fork)


def _start_checkpointer(engine: Engine) -> None:
    """On each new connection: make sure this engine's checkpointer runs (file databases)."""
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with _checkpointers_lock:
        cp = _checkpointers.get(engine)
        if cp is not None and cp.thread.is_alive():
            return
        cp = _checkpointers[engine] = _Checkpointer(engine, os.path.abspath(path))
        cp.thread.start()


def _begin(conn) -> None:  # type: ignore[no-untyped-def]
    write = conn.get_execution_options().get("idrs_write", False)
    # straight to the driver: the full statement machinery would cost more than the BEGIN
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str, *, lock_timeout: float | None = None) -> Engine:
    """A new engine for ``url``; SQLite gets its pragmas on every connection.

    ``lock_timeout``: seconds a statement waits for a lock another process holds (SQLite's
    busy timeout, PostgreSQL's ``lock_timeout``), default ``IDRS_DB_LOCK_TIMEOUT``.
    """
    wait = _lock_timeout(lock_timeout)
    if url.startswith("sqlite"):
        # LIFO: the connection returned last is handed out next, so a thread keeps reusing the
        # connection whose SQLite page cache is warm (a FIFO pool rotates through every idle
        # connection, and each then reloads the pages another connection's commit invalidated).
        engine = create_engine(
            url, connect_args={"timeout": wait, "check_same_thread": False}, pool_use_lifo=True
        )
        event.listen(engine, "connect", _sqlite_pragmas(max(1, round(wait * 1000))))
        ref = weakref.ref(engine)

        @event.listens_for(engine, "connect")
        def _checkpoints(_dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            eng = ref()
            if eng is not None:
                _start_checkpointer(eng)
        # Let SQLAlchemy issue BEGIN itself so that transactions are real (pysqlite quirk).
        # A unit of work that writes (session_scope) takes the write lock up front: a deferred
        # transaction that read first cannot wait for the lock later (WAL answers "database
        # is locked" at once when another process committed in between).
        event.listen(engine, "begin", _begin)

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

        return engine
    options = f"-c lock_timeout={max(1, round(wait * 1000))}"
    return create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args={"options": options}
    )


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """The shared engine for ``url`` (one pool per process)."""
    return make_engine(url)


def make_read_engine(url: str, *, lock_timeout: float | None = None) -> Engine:
    """An engine for a streaming replica (``IDRS_REPLICA_URL``): PostgreSQL only, and every
    transaction on it read-only (``default_transaction_read_only``), so that a write sent to
    it by mistake fails at the database instead of being tried on a standby."""
    if not url.startswith("postgresql"):
        raise ConfigurationError("IDRS_REPLICA_URL: a replica is a PostgreSQL standby "
                                 f"(postgresql+psycopg://...), not {url.split(':', 1)[0]!r}")
    wait = _lock_timeout(lock_timeout)
    options = f"-c lock_timeout={max(1, round(wait * 1000))} -c default_transaction_read_only=on"
    return create_engine(
        url, pool_size=5, max_overflow=10, pool_pre_ping=True, connect_args={"options": options}
    )


@lru_cache(maxsize=4)
def read_engine_for(url: str) -> Engine:
    """The shared read-only engine of the replica ``url`` (one pool per process)."""
    return make_read_engine(url)


def _one(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params or {}).one()


def replica_caught_up(primary: Engine, replica: Engine, timeout: float) -> str:
    """Wait until ``replica`` has replayed the primary's WAL up to where it is now; return
    that position (an LSN). What was committed on the primary before the call is then
    visible on the replica.

    Refuses (ConfigurationError, never a silent read of something else) a replica that is
    not a standby of this very primary (another cluster, another database, a promoted
    standby), and one that has not caught up, or could not be reached, within ``timeout``
    seconds (ReplicaBehind). A database just created on the primary may not exist on the
    replica yet: connecting is retried within the same wait.
    """
    if primary.dialect.name != "postgresql":
        raise ConfigurationError("IDRS_REPLICA_URL is set but the primary is not PostgreSQL")
    ident = "SELECT system_identifier::text, current_database() FROM pg_control_system()"
    try:
        p_id, p_db = _one(primary, ident)
        lsn = str(_one(primary, "SELECT pg_current_wal_lsn()::text")[0])
    except OperationalError as exc:
        raise ConfigurationError(f"database unreachable: {_first_line(exc)}") from None
    deadline = time.monotonic() + timeout
    pause = 0.01
    where = "unreachable"
    while True:
        try:
            r_id, r_db = _one(replica, ident)
            if (r_id, r_db) != (p_id, p_db):
                raise ConfigurationError(
                    f"IDRS_REPLICA_URL is not a replica of IDRS_DATABASE_URL (system {r_id}, "
                    f"database {r_db!r}; the primary is system {p_id}, database {p_db!r})")
            standby, replayed, done = _one(
                replica, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                "coalesce(pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn), false)", {"lsn": lsn})
            if not standby:
                raise ConfigurationError("IDRS_REPLICA_URL names a server that is not a standby "
                                         "(promoted?): reads would miss the primary's writes")
            if done:
                return lsn
            where = f"it is at {replayed}"
        except OperationalError as exc:
            where = f"unreachable: {_first_line(exc)}"
        if time.monotonic() >= deadline:
            raise ReplicaBehind(
                f"the replica has not replayed the primary's WAL up to {lsn} within {timeout:g} s "
                f"({where}); see pg_stat_replication on the primary")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


def check_reachable(engine: Engine) -> None:
    """Raise ConfigurationError with a one-line message when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigurationError(f"database unreachable ({engine.url.render_as_string()}): {reason}") from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception.

    On SQLite it begins IMMEDIATE (it holds the write lock from its first statement), so that
    several processes writing at once wait for each other instead of failing.
    """
    bind = engine.execution_options(idrs_write=True) if is_sqlite(engine) else engine
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def db_datetime(dialect: str, value: datetime) -> Any:
    """A datetime parameter for hand-written SQL, as the database stores it: on SQLite the
    naive UTC text SQLAlchemy's DateTime writes, elsewhere the UTC value itself (a naive value
    is taken as UTC, as everywhere in idrs)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if dialect == "sqlite":
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
