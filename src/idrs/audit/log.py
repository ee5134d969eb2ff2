"""Appending to the audit log, and signing checkpoints.

Callers: every service that records an event calls :func:`append`. It returns only after
the entry is committed; failure raises AuditUnavailable, which every caller turns into a
denial (fail closed: no entry, no data).

Group commit: concurrent callers in one process share one transaction. Each caller queues
its entry; whoever holds the commit lock takes every queued entry, appends them under the
log's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory lock: one total order
across processes), commits, then wakes the callers with their indexes. A caller never
returns before the transaction holding its entry has committed.

Each append reads the O(log n) right-edge nodes and writes the leaf plus the O(1)
amortized (at most log n) interior nodes it completes.

A caller may hand :func:`append` a few writes of its own (``also``: SQL with ``:name``
parameters) that belong with the entry, e.g. the research service's daily-ceiling counter
and research trail. They run in the batch's transaction right after the entries and commit
with them: one commit per request instead of two. If they cannot be written, the entry is
still committed on its own (a decision is never left unrecorded) and the caller gets
:class:`AlsoFailed` carrying the entry's index.

A change and its entry in one transaction (the unit of work): :func:`unit_of_work` (a
connection of its own; the caller writes its change, then :meth:`UnitOfWork.commit` appends
the entry and commits both) and :func:`record_in` (the entry written last in an ORM
session's transaction). Both write through :func:`append_in`, the same code as the group
commit's batches (lock, checkpoint floor, Merkle nodes) inside the caller's transaction: if
the entry cannot be written, the change is rolled back with it. There is no other appender.

Checkpoints: after a commit, if ``checkpoint_every_entries`` entries or
``checkpoint_every_seconds`` seconds have passed since the last checkpoint, a new one is
signed (see :func:`sign_checkpoint`). Otherwise, if the commit left entries past the newest
checkpoint, the process's tail signer (one daemon thread, :class:`_TailSigner`) signs one
within ``checkpoint_max_unsigned_seconds`` of that commit, whether or not anything is
appended after it: no entry stays unsigned (deletable unnoticed) for longer. What is still
pending is signed when the process exits (``atexit``, and the server's lifespan end).
Several processes never produce conflicting checkpoints: each signature is made under the
log's write lock, numbered after the newest stored one, and skipped when nothing is new.
Auto-signing needs to know IDRS_HOME: it uses the settings registered with
:func:`configure`, or the process settings when the engine is the process's configured
database and the signing key exists.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, load_signer, read_witness, write_witness
from idrs.audit.events import Actor, AuditEvent, canonical, make_event
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.store import PG_LOCK_KEY, Raw, raw
from idrs.errors import IdrsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from idrs.context import App

log = logging.getLogger(__name__)


class AuditUnavailable(IdrsError):
    status_code = 503


class AlsoFailed(AuditUnavailable):
    """The entry IS committed (at ``index``) but the caller's ``also`` writes are not."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


#: A caller's own write committed with its entry: SQL with ``:name`` parameters, and them.
Write = tuple[str, dict[str, Any]]


class _EntryIndex:
    """A parameter value replaced by the index its entry gets (known only inside the batch)."""

    def __repr__(self) -> str:
        return "<the entry's index>"


#: Use as a ``Write`` parameter value to store the entry's own index (e.g. an answer's salt).
ENTRY_INDEX = _EntryIndex()


def _bind(params: dict[str, Any], index: int) -> dict[str, Any]:
    return {k: index if v is ENTRY_INDEX else v for k, v in params.items()}


class AuditIntegrityError(IdrsError):
    """The stored log is not consistent with its last signed checkpoint: refuse to sign."""

    status_code = 500


@dataclass
class CheckpointPolicy:
    home: Path
    origin: str
    every_entries: int
    every_seconds: float
    max_unsigned_seconds: float = 1.0


#: per engine, weakly: a collected engine's policy goes with it (never found by a new engine)
_policies: weakref.WeakKeyDictionary[Engine, CheckpointPolicy | None] = weakref.WeakKeyDictionary()


def configure(engine: Engine, settings: Any) -> None:
    """Register where this engine's checkpoints are signed (IDRS_HOME, origin, N, T)."""
    _policies[engine] = CheckpointPolicy(
        home=Path(settings.home),
        origin=settings.audit_origin,
        every_entries=settings.checkpoint_every_entries,
        every_seconds=settings.checkpoint_every_seconds,
        max_unsigned_seconds=settings.checkpoint_max_unsigned_seconds,
    )


def _policy(engine: Engine) -> CheckpointPolicy | None:
    if engine not in _policies:
        from idrs.audit.checkpoint import has_signing_key
        from idrs.config import get_settings

        s = get_settings()
        same = engine.url.render_as_string(hide_password=False) == s.database_url
        if same and not has_signing_key(s.home):
            return None  # not initialized yet: ask again next time (idrs init creates the key)
        _policies[engine] = (
            CheckpointPolicy(
                s.home,
                s.audit_origin,
                s.checkpoint_every_entries,
                s.checkpoint_every_seconds,
                s.checkpoint_max_unsigned_seconds,
            )
            if same and has_signing_key(s.home)
            else None
        )
    return _policies[engine]


# ---------------------------------------------------------------- the batch itself


def leaf_bytes(entry: dict[str, Any], index: int) -> bytes:
    """The leaf input of ``entry`` stored at ``index``: the entry with its own ``index`` added.

    Binding the index into the leaf lets verification name a reordered or shifted entry exactly.
    """
    return canonical({**entry, "index": index})


@dataclass
class _Edge:
    """The appender's cached right edge: valid only while the stored size still equals ``size``."""

    size: int = -1
    nodes: dict[merkle.Node, bytes] | None = None
    #: PostgreSQL without the guard function (a database not migrated to 0012): no
    #: one-round-trip path for it
    unguarded: bool = False


_PG_INSERT_ENTRIES = (
    "INSERT INTO audit_entry (idx, leaf_input, leaf_hash) "
    "SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[])"
)
_PG_INSERT_NODES = (
    "INSERT INTO audit_node (id, hash) SELECT * FROM unnest(%s::bigint[], %s::bytea[])"
)


def _leaves_from(
    entries: list[dict[str, Any]], size: int
) -> tuple[list[int | Exception], list[bytes]]:
    """The leaf inputs of ``entries`` numbered from ``size`` (an unserializable one fails alone)."""
    results: list[int | Exception] = []
    leaves: list[bytes] = []
    for e in entries:
        try:
            leaves.append(leaf_bytes(e, size + len(leaves)))
            results.append(size + len(leaves) - 1)
        except (TypeError, ValueError) as exc:
            results.append(exc)
    return results, leaves


def _caller_writes(
    also: list[list[Write]] | None, results: list[int | Exception]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (sql, _bind(params, r))
        for ws, r in zip(also or [], results, strict=False)
        if ws and not isinstance(r, Exception)
        for sql, params in ws
    ]


#: PostgreSQL: the guard run under the lock on the one-round-trip path (migration 0012).
_PG_EXPECT = "SELECT idrs_audit_expect(%s)"


def _append_batch_pg_cached(
    db: Raw, entries: list[dict[str, Any]], edge: _Edge, also: list[list[Write]] | None
) -> list[int | Exception] | None:
    """PostgreSQL, one round trip per batch: lock, guard, inserts, caller writes, commit.

    Uses the right edge this appender cached after its last batch. Every statement is sent
    in one pipeline; the guard ``idrs_audit_expect(size)`` runs after the lock is granted and
    raises unless the stored log ends exactly at ``size`` and no signed checkpoint covers
    more (the same checks :func:`_append_batch` makes by reading). On any failure nothing
    was committed: returns None for the caller to take the reading path (which re-reads the
    size under the lock, and reports a real integrity error or a caller's bad write itself).
    """
    size = edge.size
    assert edge.nodes is not None
    results, leaves = _leaves_from(entries, size)
    if not leaves:
        return results
    hashes = [merkle.leaf_hash(li) for li in leaves]
    made = merkle.append_nodes(size, hashes, edge.nodes.__getitem__)
    inner = [(node_key(lvl, i), h) for (lvl, i), h in made if lvl >= MIN_STORED_LEVEL]
    writes = _caller_writes(also, results)
    import psycopg

    failed: psycopg.Error | None = None
    with db.conn.pipeline() as pipe:
        cur = db.conn.cursor()
        try:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,), prepare=True)
            cur.execute(_PG_EXPECT, (size,), prepare=True)
            cur.execute(
                _PG_INSERT_ENTRIES,
                (list(range(size, size + len(leaves))), leaves, hashes),
                prepare=True,
            )
            if inner:
                cur.execute(
                    _PG_INSERT_NODES, ([k for k, _ in inner], [h for _, h in inner]), prepare=True
                )
            for sql, params in writes:
                cur.execute(db.named(sql), params)
            db.conn.commit()
        except psycopg.Error as exc:
            failed = exc
            with contextlib.suppress(psycopg.Error):
                pipe.sync()  # settle the aborted pipeline here (no warning at its exit)
    cur.close()
    if failed is not None:
        # Only errors the server raised before COMMIT ran (the pipeline then skips the rest
        # and nothing is committed) may be retried on the reading path: the guard's refusal,
        # a database without the guard, a caller's refused write. Anything else (a broken
        # connection, maybe during COMMIT) is raised: re-appending could duplicate entries.
        if isinstance(failed, psycopg.errors.UndefinedFunction):
            edge.unguarded = True
        elif not (
            isinstance(failed, psycopg.errors.SerializationFailure) or _statement_error(failed)
        ):
            raise failed
        db.rollback()
        return None
    new_size = size + len(leaves)
    all_nodes = {**edge.nodes, **dict(made)}
    edge.size, edge.nodes = new_size, {n: all_nodes[n] for n in merkle.right_edge(new_size)}
    return results


def _append_batch(
    db: Raw,
    entries: list[dict[str, Any]],
    edge: _Edge,
    floor: int = 0,
    also: list[list[Write]] | None = None,
    *,
    in_tx: bool = False,
) -> list[int | Exception]:
    """Append ``entries`` in one transaction under the log's write lock.

    Returns, per entry, its index or the exception that kept it out (an unserializable entry
    fails alone). ``also[i]`` are entry i's caller writes, run in the same transaction after
    the entries (skipped for an entry that failed alone). Raises on database failure (nothing
    of the batch is then stored), and AuditIntegrityError if the log is shorter than its
    latest signed checkpoint: a truncated log is never silently refilled; the system fails
    closed instead.

    On PostgreSQL with a cached right edge the whole batch is one round trip
    (:func:`_append_batch_pg_cached`); otherwise (first batch, another process appended
    meanwhile, a refused write) the lock and the size read share one round trip and the
    inserts and the commit a second one.

    ``in_tx`` (the unit of work, :func:`append_in`): the caller's transaction is open on
    ``db`` and holds the caller's own writes. The same lock, the same floor check, the same
    tree; but nothing is begun, rolled back or committed here (the caller commits or rolls
    back everything), and the cached one-round-trip path (which retries by rolling back) is
    not taken.
    """
    if in_tx:
        pass
    elif db.pg and edge.size >= 0 and edge.nodes is not None and not edge.unguarded:
        done = _append_batch_pg_cached(db, entries, edge, also)
        if done is not None:
            return done
        edge.size, edge.nodes = -1, None  # re-read under the lock below
    sql_size = (
        "SELECT (SELECT idx FROM audit_entry ORDER BY idx DESC LIMIT 1),"
        " (SELECT tree_size FROM audit_checkpoint ORDER BY id DESC LIMIT 1)"
    )
    if db.pg:
        # the lock, then the read (its own statement: its snapshot is taken once the lock is
        # granted), in one round trip
        with db.conn.pipeline():
            cur = db.conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,), prepare=True)
            cur.execute(sql_size, prepare=True)
        row = cur.fetchone()
        cur.close()
    else:
        if not in_tx:  # a unit of work on SQLite holds the write lock since BEGIN IMMEDIATE
            db.begin_locked()
        row = db.one(sql_size)
    size = 0 if row[0] is None else int(row[0]) + 1
    floor = 0 if row[1] is None else int(row[1])
    if size < floor:
        if not in_tx:
            db.rollback()
        raise AuditIntegrityError(
            f"the log has {size} entries but a signed checkpoint covers {floor}"
        )
    results, leaves = _leaves_from(entries, size)
    if not leaves:
        if not in_tx:
            db.rollback()
        return results
    hashes = [merkle.leaf_hash(li) for li in leaves]
    known = (
        edge.nodes
        if edge.size == size and edge.nodes is not None
        else db.nodes(merkle.right_edge(size))
    )
    made = merkle.append_nodes(size, hashes, known.__getitem__)
    idxs = list(range(size, size + len(leaves)))
    inner = [(node_key(lvl, i), h) for (lvl, i), h in made if lvl >= MIN_STORED_LEVEL]
    writes = _caller_writes(also, results)
    if db.pg:
        # the inserts, the callers' writes and the commit in one round trip (pipeline mode)
        with db.conn.pipeline():
            cur = db.conn.cursor()
            cur.execute(_PG_INSERT_ENTRIES, (idxs, leaves, hashes), prepare=True)
            if inner:
                cur.execute(
                    _PG_INSERT_NODES, ([k for k, _ in inner], [h for _, h in inner]), prepare=True
                )
            for sql, params in writes:
                cur.execute(db.named(sql), params)
            if not in_tx:
                db.conn.commit()
        cur.close()
    else:
        db.executemany(
            "INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (?, ?, ?)",
            zip(idxs, leaves, hashes, strict=True),
        )
        if inner:
            db.executemany("INSERT INTO audit_node (id, hash) VALUES (?, ?)", inner)
        if writes:
            cur = db.conn.cursor()
            try:
                for sql, params in writes:
                    cur.execute(sql, params)
            finally:
                cur.close()
        if not in_tx:
            db.commit()
    new_size = size + len(leaves)
    all_nodes = {**known, **dict(made)}
    edge.size, edge.nodes = new_size, {n: all_nodes[n] for n in merkle.right_edge(new_size)}
    return results


def _also_alone(db: Raw, batch: list[_Slot], results: list[int | Exception]) -> list[_Slot]:
    """Each caller's writes in a transaction of its own; the slots whose writes failed."""
    failed = []
    for s, r in zip(batch, results, strict=True):
        if not s.also or isinstance(r, Exception):
            continue
        try:
            db.begin_write()
            cur = db.conn.cursor()
            for sql, params in s.also:
                cur.execute(db.named(sql), _bind(params, r))
            cur.close()
            db.commit()
        except Exception:  # noqa: BLE001 - reported to that caller alone
            db.rollback()
            failed.append(s)
    return failed


class _Slot:
    __slots__ = ("entry", "also", "result", "done", "wake")

    def __init__(self, entry: dict[str, Any], also: list[Write] | None = None) -> None:
        self.entry = entry
        self.also = also
        self.result: int | BaseException = -1
        self.done = False
        self.wake = threading.Event()


#: How long a new batch leader waits for more callers before taking the queue (only while
#: batches have had more than one entry, i.e. under concurrency).
GATHER_SECONDS = 0.0002


class GroupAppender:
    """Leader/follower group commit for one engine (see module docstring).

    Holds one database connection of its own (no pool checkout per batch) and the right
    edge of the tree it last wrote (re-read whenever another process appended meanwhile).
    """

    MAX_BATCH = 5000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[_Slot] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._signing = threading.Lock()
        self._leading = False
        self._last_batch = 0
        self._db: Raw | None = None
        self._edge = _Edge()
        self._last_ckpt_size: int | None = None
        self._last_ckpt_time = 0.0
        #: PostgreSQL: the log size from which to make sure partitions lie ahead again
        #: (None: not known yet; 0: audit_entry is not partitioned)
        self._partition_check: int | None = None

    def _drop(self, db: Raw | None) -> None:
        """After a failed batch: roll back; a connection of our own is dropped (a lent one
        is its owner's to keep or discard)."""
        self._edge = _Edge()
        if db is None:
            return
        db.rollback()
        if db is self._db:
            with contextlib.suppress(Exception):  # a broken connection is dropped either way
                db.close()
            self._db = None

    def _connection(self, via: Any) -> Raw:
        if via is not None:
            return Raw.lent(self.engine, via)
        if self._db is None:
            self._db = Raw(self.engine)
        return self._db

    def _run(self, batch: list[_Slot], via: Any = None) -> int | None:
        """Commit one batch (caller holds the commit lock); return the new size, or None on failure.

        ``via``: the leader's own idle DBAPI connection, used for this batch instead of the
        appender's (SQLite keeps that connection's page cache valid across its own commit, so
        the leader's next reads need not reload it).
        """
        failed_also: list[_Slot] = []
        entries = [s.entry for s in batch]
        db: Raw | None = None
        try:
            db = self._connection(via)
            try:
                also = [s.also or [] for s in batch]
                results = _append_batch(db, entries, self._edge, also=also)
            except Exception as exc:
                if not any(s.also for s in batch) or not _statement_error(exc):
                    raise
                # A caller's own write was refused (nothing of the batch is stored): the
                # entries go in alone, each caller's writes then in a transaction of its own.
                self._drop(db)
                db = self._connection(via)
                results = _append_batch(db, entries, self._edge)
                failed_also = _also_alone(db, batch, results)
        except Exception as exc:  # noqa: BLE001 - every waiter must learn of the failure
            self._drop(db)
            for s in batch:
                s.result, s.done = exc, True
                s.wake.set()
            return None
        for s, r in zip(batch, results, strict=True):
            if any(s is f for f in failed_also) and isinstance(r, int):
                s.result = AlsoFailed("audit entry recorded; the writes with it were not", r)
            else:
                s.result = r
            s.done = True
            s.wake.set()
        return self._edge.size

    def append(
        self, entry: dict[str, Any], also: list[Write] | None = None, via: Any = None
    ) -> int:
        """Queue ``entry``; lead a batch if no one is leading, else wait to be committed or handed the lead."""
        slot = _Slot(entry, also)
        with self._queue_lock:
            self._queue.append(slot)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            slot.wake.wait()
        size_after = None
        if not slot.done:  # we lead: commit everything queued (our own entry included)
            if self._last_batch > 1:
                # concurrent callers: let those just woken by the previous batch queue up again
                time.sleep(GATHER_SECONDS)
            with self._commit_lock:
                with self._queue_lock:
                    batch = self._queue[: self.MAX_BATCH]
                    del self._queue[: self.MAX_BATCH]
                self._last_batch = len(batch)
                size_after = self._run(batch, via)
                with self._queue_lock:
                    if self._queue:  # hand the lead to the oldest waiter
                        self._queue[0].wake.set()
                    else:
                        self._leading = False
        if size_after is not None:
            self._maybe_checkpoint(size_after)
        if isinstance(slot.result, AlsoFailed):
            raise slot.result
        if isinstance(slot.result, BaseException):
            exc = slot.result
            raise AuditUnavailable(f"audit log unavailable: {type(exc).__name__}: {exc}") from None
        return slot.result

    def append_many(self, entries: list[dict[str, Any]]) -> int:
        slots = [_Slot(e) for e in entries]
        with self._commit_lock:
            size_after = self._run(slots)
        if size_after is not None:
            self._maybe_checkpoint(size_after)
        for s in slots:
            if isinstance(s.result, BaseException):
                raise AuditUnavailable(
                    f"audit log unavailable: {type(s.result).__name__}: {s.result}"
                )
        first = slots[0].result if slots else -1
        assert isinstance(first, int)
        return first

    def _maybe_partition(self, size: int) -> None:
        """Keep empty partitions ready past the log's end (off the commit path; PostgreSQL)."""
        check = self._partition_check
        if check == 0 or (check is not None and size < check):
            return
        try:
            from idrs.audit.partitions import ensure_partitions

            self._partition_check = ensure_partitions(self.engine, size)
        except Exception:  # noqa: BLE001 - the entry is committed; retried after the next commit
            log.exception("audit partitions could not be created ahead of the log")

    def _maybe_checkpoint(self, size: int) -> None:
        if self.engine.dialect.name == "postgresql":
            self._maybe_partition(size)
        policy = _policy(self.engine)
        if policy is None:
            return
        now = time.monotonic()
        try:
            if self._last_ckpt_size is None:
                with raw(self.engine) as db:
                    last = db.latest_checkpoint()
                self._last_ckpt_size = last[1] if last else 0
                self._last_ckpt_time = now
        except Exception:  # noqa: BLE001 - the entry is committed; the tail signer retries
            log.exception("audit checkpoint state unreadable")
            _tail.schedule(self, now + policy.max_unsigned_seconds)
            return
        due = size - self._last_ckpt_size >= policy.every_entries or (
            size > self._last_ckpt_size and now - self._last_ckpt_time >= policy.every_seconds
        )
        if due and self._signing.acquire(blocking=False):
            try:
                note = sign_checkpoint(self.engine, policy.home, policy.origin, min_new=1)
                self._last_ckpt_time = now
                if note is not None:
                    self._last_ckpt_size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
                else:
                    self._last_ckpt_size = size
            except Exception:  # noqa: BLE001 - the entry is committed; the tail signer retries
                log.exception("audit checkpoint signing failed")
            finally:
                self._signing.release()
        if size > self._last_ckpt_size:
            # entries this commit left unsigned: a checkpoint covers them within the bound
            _tail.schedule(self, now + policy.max_unsigned_seconds)

    def sign_tail(self) -> bool:
        """Sign a checkpoint if entries lie past the newest one (the tail signer's call).

        Returns False if signing failed (the caller may retry); True when signed or nothing
        was left to sign (another thread or process signed it meanwhile).
        """
        from idrs.audit.checkpoint import has_signing_key

        policy = _policy(self.engine)
        if policy is None or not has_signing_key(policy.home):
            return True  # nothing to sign with before `idrs init` creates the key
        with self._signing:
            try:
                note = sign_checkpoint(self.engine, policy.home, policy.origin, min_new=1)
            except AuditIntegrityError:
                # fails closed: nothing is signed over a log that no longer extends its last
                # checkpoint (`idrs audit verify` names the damage); retrying cannot help
                log.exception("audit tail checkpoint refused")
                return True
            except Exception as exc:  # noqa: BLE001 - reported; retried by the tail signer
                log.warning(
                    "audit tail checkpoint signing failed: %s: %s",
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                )
                return False
            if note is not None:
                self._last_ckpt_size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
                self._last_ckpt_time = time.monotonic()
        return True


class _TailSigner:
    """Signs each appender's unsigned tail by its deadline: one daemon thread per process.

    ``schedule(appender, deadline)`` keeps the earliest deadline per appender; the thread
    sleeps until the nearest one and calls :meth:`GroupAppender.sign_tail`. A failed
    signature is retried (every bound, ``RETRIES`` times); a later commit schedules anew.
    """

    RETRIES = 5

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, GroupAppender, int]] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, ap: GroupAppender, deadline: float, tries: int = 0) -> None:
        with self._cond:
            known = self._due.get(id(ap))
            if known is not None and known[1] is ap and known[0] <= deadline:
                return
            self._due[id(ap)] = (deadline, ap, tries)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="idrs-audit-tail-signer", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _next(self) -> tuple[GroupAppender, int]:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                key, (deadline, ap, tries) = min(self._due.items(), key=lambda kv: kv[1][0])
                delay = deadline - time.monotonic()
                if delay <= 0:
                    del self._due[key]
                    return ap, tries
                self._cond.wait(delay)

    def _run(self) -> None:
        while True:
            ap, tries = self._next()
            if not ap.sign_tail() and tries < self.RETRIES:
                policy = _policy(ap.engine)
                bound = policy.max_unsigned_seconds if policy else 1.0
                self.schedule(ap, time.monotonic() + bound, tries + 1)

    def discard(self, ap: GroupAppender) -> None:
        with self._cond:
            known = self._due.get(id(ap))
            if known is not None and known[1] is ap:
                del self._due[id(ap)]

    def flush(self) -> None:
        """Sign every pending tail now (process exit, server shutdown)."""
        with self._cond:
            pending = [ap for _, ap, _ in self._due.values()]
            self._due.clear()
        for ap in pending:
            ap.sign_tail()


_tail = _TailSigner()


def flush_unsigned() -> None:
    """Sign a checkpoint over every entry this process appended that none covers yet."""
    _tail.flush()


atexit.register(flush_unsigned)  # a one-shot command leaves no unsigned tail behind


#: per engine. Keyed by the engine itself (never by ``id(engine)``, which a new engine may
#: get once an old one is collected). The appender holds its engine (a pending tail
#: signature needs it), so an entry lives until :func:`forget`.
_appenders: weakref.WeakKeyDictionary[Engine, GroupAppender] = weakref.WeakKeyDictionary()
_appenders_lock = threading.Lock()


def _forget_after_fork() -> None:
    # a forked child must not share its parent's connections, locks or queued callers
    global _appenders_lock, _tail
    _appenders.clear()
    _appenders_lock = threading.Lock()
    _tail = _TailSigner()


os.register_at_fork(after_in_child=_forget_after_fork)


def appender_for(engine: Engine) -> GroupAppender:
    with _appenders_lock:
        ap = _appenders.get(engine)
        if ap is None:
            ap = _appenders[engine] = GroupAppender(engine)
        return ap


def forget(engine: Engine) -> None:
    """Drop ``engine``'s appender, its connection and any pending tail signature (before the
    engine's database goes away: test teardown)."""
    with _appenders_lock:
        ap = _appenders.pop(engine, None)
        if ap is None:
            return
    _tail.discard(ap)
    with ap._commit_lock, ap._signing:
        if ap._db is not None:
            with contextlib.suppress(Exception):
                ap._db.close()
            ap._db = None


def append(
    engine: Engine, entry: dict[str, Any], also: list[Write] | None = None, via: Any = None
) -> int:
    """Append one entry, commit it durably, and return its index (AuditUnavailable on failure).

    ``also``: the caller's own writes (``(sql, params)``, ``:name`` parameters) committed in
    the same transaction as the entry. If only they fail, the entry is committed anyway and
    :class:`AlsoFailed` (an AuditUnavailable) is raised with its index.

    ``via``: the caller's own DBAPI connection (idle: no open transaction), lent for the
    call. If this caller leads the batch, the batch is written on it (one connection for the
    request's reads and its commit). Nothing else changes: the same lock, the same order.
    """
    return appender_for(engine).append(entry, also, via)


def record(
    app: App,
    event: AuditEvent,
    actor: Actor,
    obj: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    *,
    outcome: str = "success",
    reasons: list[str] | None = None,
    policy: str | None = None,
    also: list[Write] | None = None,
) -> int:
    """Record what ``actor`` did: one entry, committed durably (with ``also``, the caller's
    own writes, in the same transaction) before this returns its index. AuditUnavailable
    when it cannot be written: the action it records must then not happen."""
    return append(app.engine, _event_of(app, event, actor, obj, detail, outcome, reasons,
                                        policy), also)


def _event_of(
    app: App,
    event: AuditEvent,
    actor: Actor,
    obj: dict[str, Any] | None,
    detail: dict[str, Any] | None,
    outcome: str,
    reasons: list[str] | None,
    policy: str | None = None,
) -> dict[str, Any]:
    """The entry :func:`record` and :func:`record_in` write: ``actor`` doing ``event`` now."""
    return make_event(
        event, time=app.clock.now(), actor=actor.seid, outcome=outcome,
        interface=actor.interface, address=actor.address, obj=obj, reasons=reasons,
        policy=policy, detail=detail)


def _unavailable(exc: Exception) -> AuditUnavailable:
    """The refusal of a unit of work whose entry could not be written (nothing stands)."""
    return AuditUnavailable(
        f"audit log unavailable, nothing was written: {type(exc).__name__}: {exc}"
    )


# ---------------------------------------------------------------- the unit of work


def append_in(
    engine: Engine, conn: Any, entry: dict[str, Any], also: list[Write] | None = None
) -> int:
    """Write ``entry`` (and ``also``) inside the caller's OPEN transaction on ``conn`` (its
    DBAPI connection, holding the caller's own writes); return the entry's index.

    The one appender's code: the log's write lock (SQLite: held since the caller's
    ``BEGIN IMMEDIATE``; PostgreSQL: the transaction-scoped advisory lock, taken here, held
    to the caller's commit), the checkpoint floor (a log shorter than its last signed
    checkpoint raises :class:`AuditIntegrityError`), the same Merkle nodes. Nothing is
    committed here: on any exception the caller must roll back (its change does not stand
    without its entry); once it has committed, it calls :func:`committed`.
    Callers: :class:`UnitOfWork`, :func:`record_in`.
    """
    results = _append_batch(Raw.lent(engine, conn), [entry], _Edge(), also=[also or []],
                            in_tx=True)
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


def committed(engine: Engine, index: int) -> None:
    """The transaction holding entry ``index`` has committed: sign a checkpoint if one is
    due, else let the tail signer cover it within its bound (never raises)."""
    try:
        appender_for(engine)._maybe_checkpoint(index + 1)
    except Exception:  # noqa: BLE001 - the entry is committed; signing is retried later
        log.exception("audit checkpoint after a unit of work failed")


class UnitOfWork:
    """One write transaction on a connection of its own: the caller's domain writes on
    :attr:`conn`, then :meth:`commit` with their entry: both stand, or neither.

    Open it with :func:`unit_of_work`. On SQLite the write lock is taken first (``BEGIN
    IMMEDIATE``); on PostgreSQL the log's advisory lock only at :meth:`commit`, so the log is
    blocked for the few statements of the append, not for the whole change.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._db = Raw(engine)
        self.pg = self._db.pg
        #: the DBAPI connection of the transaction (``?`` placeholders on SQLite)
        self.conn: Any = self._db.conn
        self.index: int | None = None

    def commit(self, entry: dict[str, Any], also: list[Write] | None = None) -> int:
        """Append ``entry`` (and ``also``, ``:name`` parameters, :data:`ENTRY_INDEX` allowed)
        after the caller's writes and commit all of it; return the entry's index.

        AuditUnavailable if the entry cannot be written (database error, a log truncated
        below its last signed checkpoint, an unserializable entry): everything is rolled
        back, the change included.
        """
        try:
            idx = append_in(self.engine, self.conn, entry, also)
            self._db.commit()
        except Exception as exc:  # noqa: BLE001 - no entry, no change
            self._db.rollback()
            raise _unavailable(exc) from exc
        self.index = idx
        return idx


@contextlib.contextmanager
def unit_of_work(engine: Engine) -> Iterator[UnitOfWork]:
    """A :class:`UnitOfWork`; rolled back unless :meth:`UnitOfWork.commit` ran."""
    unit = UnitOfWork(engine)
    try:
        if not unit.pg:
            unit._db.begin_write()  # the write lock first: no upgrade later (WAL)
        yield unit
    finally:
        if unit.index is None:
            unit._db.rollback()
        unit._db.close()
    if unit.index is not None:
        committed(engine, unit.index)


def record_in(
    session: Session,
    app: App,
    event: AuditEvent,
    actor: Actor,
    obj: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
    *,
    outcome: str = "success",
    reasons: list[str] | None = None,
) -> int:
    """Record a change made in ``session`` in the session's own transaction: its pending
    changes are flushed, the entry is written after them, and both commit with the session
    (or neither). Returns the entry's index (valid once the session commits).

    AuditUnavailable when the entry cannot be written: the caller's session must then roll
    back (``session_scope`` does). PostgreSQL: the log's advisory lock is held from here to
    the session's commit, so call this as the session's last statement.
    """
    from sqlalchemy import event as sa_event

    entry = _event_of(app, event, actor, obj, detail, outcome, reasons)
    try:
        session.flush()
        idx = append_in(app.engine, session.connection().connection.driver_connection, entry)
    except Exception as exc:  # noqa: BLE001 - no entry, no change
        raise _unavailable(exc) from exc
    sa_event.listen(session, "after_commit", lambda _s: committed(app.engine, idx), once=True)
    return idx


def lock_first(session: Session) -> None:
    """Take the log's write lock now, before ``session`` writes any row (PostgreSQL: the
    transaction-scoped advisory lock :func:`append_in` takes again; on SQLite
    ``session_scope`` holds the write lock since ``BEGIN IMMEDIATE``).

    For a unit of work on rows that the group commit's ``also`` writes touch too (a sign-in
    session's last-seen time): both then take the log lock first and the row locks after
    it, so neither holds a row while waiting for the lock the other holds (no deadlock)."""
    from sqlalchemy import text

    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})


def _statement_error(exc: BaseException) -> bool:
    """A statement refused by the database (constraint, bad value), not a broken connection:
    nothing was committed, so the batch may be tried again without the callers' writes."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.IntegrityError | psycopg.DataError | psycopg.ProgrammingError)


def append_many(engine: Engine, entries: list[dict[str, Any]]) -> int:
    """Append several entries in one transaction; return the first index (bulk imports, tests)."""
    return appender_for(engine).append_many(entries)


# ---------------------------------------------------------------- checkpoints


def _tree_root(db: Raw, size: int) -> bytes:
    plan = merkle.root_plan(size)
    nodes = db.nodes(plan)
    return merkle.fold([nodes[n] for n in plan])


def _proof(db: Raw, plan: list[list[merkle.Node]]) -> list[bytes]:
    nodes = db.nodes(merkle.plan_nodes(plan))
    return merkle.evaluate(plan, nodes)


def sign_checkpoint(engine: Engine, home: Path, origin: str, *, min_new: int = 0) -> str | None:
    """Sign a checkpoint of the whole current log and store it; return the signed note.

    Under the log's write lock: checks the entries added since the last checkpoint against
    their leaf hashes, computes the root from stored nodes, proves it consistent
    with the previous stored checkpoint (RFC 9162 proof, verified) and only then signs.
    Returns None when fewer than ``min_new`` entries were added since the last checkpoint.
    Raises AuditIntegrityError if the log no longer extends the last checkpoint.
    Callers: the appender (automatic), ``idrs audit checkpoint``, export.
    """
    signer = load_signer(home)
    with raw(engine) as db:
        db.begin_locked()
        size = db.size()
        last = db.latest_checkpoint()
        last_size = last[1] if last else 0
        if last is not None and size - last_size < min_new:
            db.rollback()
            return None
        if last is not None and size < last_size:
            raise AuditIntegrityError(
                f"log has {size} entries but checkpoint #{last[0]} covers {last_size}"
            )
        if last is not None:
            try:
                prev = Checkpoint.parse(signer.verifier().open(last[3]))
            except IdrsError as exc:
                raise AuditIntegrityError(f"checkpoint #{last[0]} does not verify: {exc}") from None
            if (prev.size, prev.root) != (last_size, last[2]):
                raise AuditIntegrityError(f"checkpoint #{last[0]} differs from its signed note")
        cur = db.execute(
            "SELECT idx, leaf_input, leaf_hash FROM audit_entry WHERE idx >= ? ORDER BY idx",
            (last_size,),
        )
        copy = bytearray()  # the leaf hashes this checkpoint newly covers (see verify)
        while rows := cur.fetchmany(4096):
            for idx, leaf, stored in rows:
                if merkle.leaf_hash(bytes(leaf)) != bytes(stored):
                    raise AuditIntegrityError(
                        f"entry {idx} does not match its leaf hash; not signing"
                    )
                copy += bytes(stored)
        cur.close()
        if len(copy) != 32 * (size - last_size):
            raise AuditIntegrityError(
                f"entries {last_size}..{size - 1} are not all present; not signing"
            )
        try:
            root = _tree_root(db, size)
            if last is not None:
                proof = _proof(db, merkle.consistency_plan(last_size, size))
                merkle.verify_consistency(last_size, size, proof, last[2], root)
        except (KeyError, merkle.ProofError) as exc:
            raise AuditIntegrityError(
                f"log is not consistent with checkpoint #{last[0] if last else 0}: {exc}"
            ) from None
        note = signer.sign(Checkpoint(origin, size, root).text())
        ckpt_id = (last[0] + 1) if last else 1
        db.execute(
            "INSERT INTO audit_checkpoint (id, tree_size, root_hash, note, created_at, leaf_hashes)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ckpt_id, size, root, note, _now_param(db), bytes(copy)),
        ).close()
        db.commit()
        _update_witness(home, note, size)
    from idrs.audit import witnesses

    witnesses.after_signing(engine, note)  # cosignatures are gathered off this path
    return note


def _now_param(db: Raw) -> Any:
    now = datetime.now(UTC)
    return now if db.pg else now.replace(tzinfo=None).isoformat(sep=" ")


#: one writer of the checkpoint file at a time in this process (read, compare, replace)
_witness_file_lock = threading.Lock()


def _update_witness(home: Path, note: str, size: int) -> None:
    """Keep the newest checkpoint in IDRS_HOME: a smaller one never replaces a larger one."""
    import fcntl

    with _witness_file_lock, open(Path(home) / ".audit-checkpoint.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # and one process at a time; released on close
        _replace_if_newer(home, note, size)


def _replace_if_newer(home: Path, note: str, size: int) -> None:
    old = read_witness(home)
    if old is not None:
        try:
            if Checkpoint.parse(old.split("\n\n")[0] + "\n").size > size:
                return
        except IdrsError:
            pass
    write_witness(home, note)


def latest_checkpoint_note(engine: Engine) -> str | None:
    with raw(engine) as db:
        last = db.latest_checkpoint()
    return last[3] if last else None
