"""Whole-log verification (issue 18): ``idrs audit verify`` serial, with N worker processes, and
raw ``hashlib`` over the same leaves, side by side in one run.

The log is built by the bulk path of :mod:`bench.bench_audit` (same schema and bytes as the
append path) on SQLite. Each pass is the full check (every leaf against its stored hash,
every stored node, every checkpoint root): :func:`idrs.audit.verify.verify_log` (serial)
and :func:`idrs.audit.parallel.verify_log_parallel` (the leaf range cut into complete
power-of-two subtrees, hashed in worker processes that read their block straight from the
database, the subtree roots combined in the parent). The raw baseline is
``hashlib.sha256(0x00 || leaf)`` over the same leaves read from the same database, in one
process, only the hashing timed (:func:`idrs.audit.parallel.hashlib_rate`, what
``idrs audit verify --compare-hashlib`` prints), measured right after the verifications so
that all see the same machine load. The Parquet export of the same log is timed as well.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import create_engine

from bench import bench_audit
from bench.bench_audit import WORK, _fig
from idrs.audit import parallel
from idrs.audit.checkpoint import ensure_signing_key, load_signer
from idrs.audit.parquet import write_parquet_export
from idrs.audit.verify import verify_log
from idrs.db import make_engine

ROUNDS = 3
TITLE = "Audit log: whole-log verification, serial vs worker processes vs raw hashlib (issue 18)"


def _spin(n: int) -> float:
    x, sha = b"a" * 300, hashlib.sha256
    t0 = time.perf_counter()
    for _ in range(n):
        sha(x).digest()
    return time.perf_counter() - t0


def _parallelism(workers: int, n: int = 400_000) -> float:
    """How many cores this run actually gets: ``workers`` processes of pure hashing against one
    (``workers`` on an idle machine, less while other work runs)."""
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        pool.map(_spin, [1000] * workers)  # started
        one = pool.apply(_spin, (n,))
        t0 = time.perf_counter()
        pool.map(_spin, [n] * workers)
        many = time.perf_counter() - t0
    return workers * one / many


def run(scale: str) -> list[dict[str, Any]]:
    full = scale == "full"
    size = 1_000_000 if full else 50_000
    workers = parallel.default_workers()
    figures: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="idrs-bench-verify-", dir=WORK))
    try:
        home = tmp / "home"
        origin = "idrs.example/audit-log"
        ensure_signing_key(home, name=origin)
        path = tmp / "log.db"
        # migrate through a plain engine: idrs.db's engine keeps a WAL checkpointer connection
        # open, which would stop the bulk build from switching the journal off
        with mock.patch.object(bench_audit, "make_engine", create_engine):
            bench_audit._bulk_build(path, size, home, origin)  # noqa: SLF001
        engine = make_engine(f"sqlite:///{path}")
        verifier = load_signer(home).verifier()

        load_before = os.getloadavg()[0]
        # interleaved rounds, best of ROUNDS for each (the machine is shared: other work comes
        # and goes); the first parallel round also starts the forkserver, as a CLI run does
        serial_s = par_s = first_par_s = float("inf")
        serial_cpu = par_cpu = 0.0
        for _ in range(ROUNDS):
            t0, c0 = time.perf_counter(), time.process_time()
            serial = verify_log(engine, verifier)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            if took < serial_s:
                serial_s, serial_cpu = took, cpu
            stats: dict[str, Any] = {}
            t0, c0 = time.perf_counter(), time.process_time()
            par = parallel.verify_log_parallel(
                engine, verifier, workers=workers, min_entries=0, stats=stats
            )
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            if first_par_s == float("inf"):
                first_par_s = took
            if not (serial.ok and par.ok and serial.size == par.size == size and stats["parallel"]):
                raise RuntimeError(f"bench log does not verify: {serial.as_dict()} {par.as_dict()}")
            if took < par_s:
                par_s, par_cpu = took, cpu + stats["worker_cpu_seconds"]
                par_stats = stats
        stats = par_stats
        raw_rate = parallel.hashlib_rate(engine, size)
        cores = _parallelism(workers)
        load = max(load_before, os.getloadavg()[0])
        serial_rate, par_rate = size / serial_s, size / par_s
        busy = f"load average {load:.1f} on {os.cpu_count()} cores (the machine is shared)"
        figures += [
            _fig(
                f"audit verify, serial, {size:,} entries",
                round(serial_rate),
                "entries/s",
                "-",
                None,
                f"best of {ROUNDS}: {serial_s:.1f} s wall, {serial_cpu:.1f} CPU s ({size / serial_cpu:,.0f} entries "
                f"per CPU second); every leaf, node and {serial.checkpoints} checkpoints; {busy}",
            ),
            _fig(
                f"audit verify --workers {workers}, {size:,} entries",
                round(par_rate),
                "entries/s",
                ">= 300000",
                par_rate >= 300_000,
                f"best of {ROUNDS}: {par_s:.1f} s wall including starting the workers, "
                f"{par_rate / serial_rate:.2f}x serial (first round, starting the forkserver too: "
                f"{size / first_par_s:,.0f} entries/s); "
                f"{stats['blocks']} subtrees of {stats['block_size']:,}; "
                f"{par_cpu:.1f} CPU s in workers and parent ({size / par_cpu:,.0f} entries per CPU "
                f"second); {busy}",
            ),
            _fig(
                f"cores this run got: {workers} processes of pure hashing vs one",
                round(cores, 2),
                "x",
                "-",
                None,
                f"{workers} on an idle machine; the ceiling of any speed-up from workers here",
            ),
            _fig(
                "raw hashlib.sha256(0x00||leaf) over the same leaves, one process",
                round(raw_rate),
                "entries/s",
                "-",
                None,
                "hashing only (reads not timed), measured right after the verifications",
            ),
            _fig(
                "serial verify / raw hashlib",
                round(serial_rate / raw_rate, 3),
                "ratio",
                "-",
                None,
            ),
            _fig(
                f"verify with {workers} workers / raw hashlib",
                round(par_rate / raw_rate, 3),
                "ratio",
                "-",
                None,
                "above 1 only when the workers get more free cores than the one-process baseline",
            ),
        ]
        out = tmp / "parquet"
        note = (home / "checkpoint").read_text() if (home / "checkpoint").exists() else None
        if note is None:
            with engine.connect() as conn:
                note = conn.exec_driver_sql(
                    "SELECT note FROM audit_checkpoint ORDER BY id DESC LIMIT 1"
                ).scalar_one()
        t0 = time.perf_counter()
        summary = write_parquet_export(engine, out, note, load_signer(home).vkey())
        pq_s = time.perf_counter() - t0
        pq_bytes = sum(p.stat().st_size for p in out.rglob("*.parquet"))
        figures.append(
            _fig(
                f"audit export --format parquet, {size:,} entries",
                round(size / pq_s),
                "entries/s",
                "-",
                None,
                f"{pq_s:.1f} s, {summary['files']} files, {pq_bytes / size:.0f} bytes/entry (zstd)",
            )
        )
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
