"""``idrs audit verify --workers N``: the whole-log check of :mod:`idrs.audit.verify`, hashed in
N worker processes.

The leaf range ``[0, size)`` is cut into aligned blocks of ``2**k`` leaves: complete RFC 6962
subtrees (the last block is the right edge, itself the greedy decomposition of
:func:`merkle.range_nodes`). Each worker process opens its own database connection and, for
its block, reads the entries in chunks straight from the database and checks exactly what the
serial pass checks there: no gap, every leaf against its stored hash, every stored Merkle node
inside the block, and the part of every checkpoint root that falls inside it. It returns the
block's subtree root(s). The parent folds the block roots into the tree (checking the stored
nodes above the blocks and every checkpoint root), and checks the node count, the checkpoint
chain and the checkpoint kept in IDRS_HOME as the serial pass does.

The fast path only decides *intact or not*. If anything at all does not match, the serial
pass (:func:`idrs.audit.verify.verify_log`) runs over the log and its report is returned: the
same problems, first bad index and messages as without ``--workers``. Tampering is the rare
case; it pays one more (serial) pass.

An in-memory SQLite database cannot be opened by another process: it, and logs smaller than
``min_entries``, are verified serially.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.store import Raw, raw
from idrs.audit.verify import CHUNK, Report, _check_checkpoints, verify_log

#: Below this many entries, starting worker processes costs more than it saves.
MIN_ENTRIES = 1 << 16
#: Blocks per worker: enough that a slow worker does not hold up the others for long.
BLOCKS_PER_WORKER = 4
#: SQLite: how much of the database file a worker maps into memory (read-only scan)
MMAP_BYTES = 1 << 34
_sha = hashlib.sha256
log = logging.getLogger(__name__)


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class BlockResult:
    lo: int
    hi: int
    #: the block's perfect subtrees (level, hash), left to right: one for a whole block
    parts: list[tuple[int, bytes]] = field(default_factory=list)
    #: per checkpoint size in (lo, hi]: the subtree hashes of [lo, size), left to right
    targets: dict[int, list[bytes]] = field(default_factory=dict)
    #: why the block is not intact (None if it is)
    problem: str | None = None
    #: CPU seconds the worker spent on the block
    cpu: float = 0.0


def block_size(size: int, workers: int, chunk: int) -> int:
    """A power of two, a multiple of ``chunk``, giving each worker about BLOCKS_PER_WORKER blocks."""
    want = max(1, size // max(1, workers * BLOCKS_PER_WORKER))
    b = chunk
    while b * 2 <= want:
        b *= 2
    return b


def _url(engine: Engine) -> str | None:
    url = engine.url
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


_ENGINES: dict[str, Engine] = {}


def _hash_block(url: str, lo: int, hi: int, chunk: int, targets: list[int]) -> BlockResult:
    """Check entries [lo, hi) and the stored nodes inside them (runs in a worker process)."""
    engine = _ENGINES.get(url)
    if engine is None:  # one engine per worker process, reused for its next blocks
        from idrs.db import make_engine

        engine = _ENGINES[url] = make_engine(url)
    started = time.process_time()
    with raw(engine) as db:
        if db.sqlite:  # a read-only scan: map the file instead of copying pages into the cache
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}").close()
        db.begin_read()
        try:
            out = _check_block(db, lo, hi, chunk, targets)
        finally:
            db.rollback()
    out.cpu = time.process_time() - started
    return out


def _levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every complete level above ``hashes`` (as verify's, pairing without indexing)."""
    levels = [hashes]
    lv = hashes
    while len(lv) > 1:
        it = iter(lv)
        lv = [_sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        levels.append(lv)
    return levels


def _check_block(db: Raw, lo: int, hi: int, chunk: int, targets: list[int]) -> BlockResult:
    out = BlockResult(lo, hi)
    chunk_level = chunk.bit_length() - 1
    sql = (
        "SELECT idx, leaf_input, leaf_hash FROM audit_entry WHERE idx >= ? AND idx < ? ORDER BY idx"
    )
    if db.pg:
        cur = db.conn.cursor(name=f"idrs_audit_verify_{lo}")
        cur.itersize = chunk
        cur.execute(sql.replace("?", "%s"), (lo, hi))
    else:
        cur = db.execute(sql, (lo, hi))
    stack: list[tuple[int, bytes]] = []  # the block's compact range so far (levels decreasing)
    high: list[tuple[merkle.Node, bytes]] = []
    pending = sorted(t for t in targets if lo < t <= hi)
    base = lo
    try:
        while base < hi:
            rows = cur.fetchmany(min(chunk, hi - base))
            n = len(rows)
            if not n:
                out.problem = f"entries {base}..{hi - 1} are missing"
                return out
            idxs, leaves, stored = zip(*rows, strict=True)
            if idxs[0] != base or idxs[-1] != base + n - 1:  # idx is the key: no duplicates
                out.problem = f"a gap or disorder among entries {base}..{base + n - 1}"
                return out
            computed = [_sha(b"\x00" + x).digest() for x in leaves]
            if tuple(computed) != stored:
                out.problem = f"a leaf does not match its stored hash among {base}..{base + n - 1}"
                return out
            levels = _levels(computed)
            for lvl in range(MIN_STORED_LEVEL, len(levels)):
                first, cnt = base >> lvl, len(levels[lvl])
                c2 = db.execute(
                    "SELECT hash FROM audit_node WHERE id >= ? AND id < ? ORDER BY id",
                    (node_key(lvl, first), node_key(lvl, first + cnt)),
                )
                got = [bytes(x[0]) for x in c2.fetchall()]
                c2.close()
                if got != levels[lvl]:
                    out.problem = (
                        f"a stored node at level {lvl} differs among {base}..{base + n - 1}"
                    )
                    return out
            while pending and pending[0] <= base + n:
                s = pending.pop(0)
                out.targets[s] = [h for _, h in stack] + [
                    levels[lvl][i - (base >> lvl)] for lvl, i in merkle.range_nodes(base, s)
                ]
            if n == chunk and not base & (chunk - 1):
                h, lvl, idx = levels[chunk_level][0], chunk_level, base >> chunk_level
                while stack and stack[-1][0] == lvl:
                    h = merkle.node_hash(stack.pop()[1], h)
                    idx >>= 1
                    lvl += 1
                    high.append(((lvl, idx), h))
                stack.append((lvl, h))
            else:  # the right edge of the log: its complete subtrees, as range_nodes cuts them
                for lvl, i in merkle.range_nodes(base, base + n):
                    stack.append((lvl, levels[lvl][i - (base >> lvl)]))
            if len(high) >= 256 or (high and base + n >= hi):
                have = db.nodes([nd for nd, _ in high])
                if any(have.get(nd) != h for nd, h in high):
                    out.problem = f"a stored node above the chunks differs among {lo}..{hi - 1}"
                    return out
                high.clear()
            base += n
    finally:
        cur.close()
    out.parts = stack
    return out


def verify_log_parallel(
    engine: Engine,
    verifier: Verifier,
    witness: str | None = None,
    *,
    workers: int | None = None,
    chunk: int = CHUNK,
    min_entries: int = MIN_ENTRIES,
    stats: dict[str, Any] | None = None,
) -> Report:
    """The report :func:`verify_log` gives, computed in ``workers`` processes when intact.

    ``stats``, if given, receives how the run went: ``parallel`` (whether the workers decided
    it), ``blocks``, ``block_size`` and ``worker_cpu_seconds`` (for benchmarks).
    """
    stats = {} if stats is None else stats
    stats.update(parallel=False, blocks=0, block_size=0, worker_cpu_seconds=0.0)
    if chunk & (chunk - 1):
        raise ValueError("chunk must be a power of two")
    workers = workers or default_workers()
    url = _url(engine)
    started = time.perf_counter()
    with raw(engine) as db:
        db.begin_read()
        size = db.size()
        node_count = int(db.one("SELECT COUNT(*) FROM audit_node")[0])
        cur = db.execute("SELECT id, tree_size, root_hash, note FROM audit_checkpoint ORDER BY id")
        rows = [(int(a), int(b), bytes(c), str(d)) for a, b, c, d in cur.fetchall()]
        cur.close()
        db.rollback()
    if workers < 2 or url is None or size < max(1, min_entries):
        return verify_log(engine, verifier, witness, chunk)

    report = Report(size=size, checkpoints=len(rows))
    targets = _check_checkpoints(rows, verifier, report)
    report.latest_checkpoint_size = max((t.size for t in targets), default=None)
    report.past_checkpoint = max(0, size - (report.latest_checkpoint_size or 0))
    roots: dict[int, set[bytes]] = {}
    for t in targets:
        roots.setdefault(t.size, set()).add(t.root)
    intact = not report.problems
    if witness is not None:
        try:
            w = Checkpoint.parse(verifier.open(witness))
            roots.setdefault(w.size, set()).add(w.root)
            latest = report.latest_checkpoint_size
            intact = intact and latest is not None and w.size <= latest
        except CheckpointError:
            intact = False
    expected_nodes = sum(size >> lvl for lvl in range(MIN_STORED_LEVEL, size.bit_length() + 1))
    intact = intact and node_count == expected_nodes and all(s <= size for s in roots)
    intact = intact and roots.get(0, {merkle.EMPTY_ROOT}) == {merkle.EMPTY_ROOT}
    if intact:
        intact = _hash_in_workers(engine, url, size, workers, chunk, roots, stats)
    if not intact:
        return verify_log(engine, verifier, witness, chunk)
    stats["parallel"] = True
    report.seconds = time.perf_counter() - started
    return report


def _hash_in_workers(
    engine: Engine,
    url: str,
    size: int,
    workers: int,
    chunk: int,
    roots: dict[int, set[bytes]],
    stats: dict[str, Any],
) -> bool:
    bsize = block_size(size, workers, chunk)
    sizes = sorted(s for s in roots if s > 0)
    blocks = [(lo, min(size, lo + bsize)) for lo in range(0, size, bsize)]
    stats.update(blocks=len(blocks), block_size=bsize)
    # never fork this process (it may run threads): workers fork from a fresh, single-threaded
    # server that has imported this module once (and not the caller's __main__)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(max_workers=min(workers, len(blocks)), mp_context=ctx)
    try:
        futures = [
            pool.submit(_hash_block, url, lo, hi, chunk, [s for s in sizes if lo < s <= hi])
            for lo, hi in blocks
        ]
        stack: list[tuple[int, bytes]] = []  # the tree's compact range so far
        high: list[tuple[merkle.Node, bytes]] = []
        pos = 0
        for fut in futures:  # in order: block roots are folded left to right
            try:
                res = fut.result()
            except Exception:  # noqa: BLE001 - a worker that failed decides nothing: go serial
                log.warning("audit verify worker failed; verifying serially", exc_info=True)
                return False
            stats["worker_cpu_seconds"] += res.cpu
            if res.problem is not None:
                return False
            prefix = [h for _, h in stack]
            for s, parts in res.targets.items():
                if len(roots[s]) != 1 or merkle.fold(prefix + parts) not in roots[s]:
                    return False
            for lvl, h in res.parts:
                width, idx = 1 << lvl, pos >> lvl
                while stack and stack[-1][0] == lvl:  # each merge completes a stored node
                    h = merkle.node_hash(stack.pop()[1], h)
                    idx >>= 1
                    lvl += 1
                    high.append(((lvl, idx), h))
                stack.append((lvl, h))
                pos += width
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # blocks not started yet are dropped
    if high:
        with raw(engine) as db:
            stored = db.nodes([nd for nd, _ in high])
        if any(stored.get(nd) != h for nd, h in high):
            return False
    return pos == size


def hashlib_rate(engine: Engine, size: int, chunk: int = 1 << 14) -> float:
    """Raw ``hashlib.sha256(0x00 || leaf)`` over entries [0, size), in this process: leaves/s.

    Only the hashing is timed (the reads are not): the baseline ``audit verify`` compares with.
    """
    spent = 0.0
    done = 0
    sha = hashlib.sha256
    with raw(engine) as db:
        db.begin_read()
        if db.pg:
            cur = db.conn.cursor(name="idrs_audit_hashlib")
            cur.itersize = chunk
            cur.execute("SELECT leaf_input FROM audit_entry WHERE idx < %s ORDER BY idx", (size,))
        else:
            cur = db.execute(
                "SELECT leaf_input FROM audit_entry WHERE idx < ? ORDER BY idx", (size,)
            )
        while rows := cur.fetchmany(chunk):
            leaves = [bytes(r[0]) for r in rows]
            t0 = time.perf_counter()
            for x in leaves:
                sha(b"\x00" + x).digest()
            spent += time.perf_counter() - t0
            done += len(leaves)
        cur.close()
        db.rollback()
    return done / spent if spent > 0 else 0.0


def rates(report: Report, size: int, engine: Engine | None = None) -> dict[str, Any]:
    """entries/s of a finished verification, and the raw hashlib ratio when ``engine`` is given."""
    out: dict[str, Any] = {
        "entries_per_second": round(size / report.seconds) if report.seconds > 0 else None
    }
    if engine is not None:
        base = hashlib_rate(engine, size)
        out["hashlib_entries_per_second"] = round(base)
        eps = out["entries_per_second"]
        out["ratio_to_hashlib"] = float(f"{eps / base:.3g}") if base and eps else None
    return out
