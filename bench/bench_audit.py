"""Audit log (issue 4): durable appends, proof latency, verification rate, storage per entry.

* Appends: 8 threads in one process call ``idrs.audit.log.append`` (the group-commit path
  every service uses: each call returns only after its transaction committed), on SQLite
  (WAL, synchronous=NORMAL as configured by idrs.db) and PostgreSQL (synchronous_commit on).
* The big log for proofs and verification is built through a documented bulk path: leaves,
  their hashes and every interior node are computed in Python with the same RFC 6962 code and
  inserted in large transactions straight into the same tables (no group commit, SQLite
  journal off during the build only). It is the same schema and the same bytes the append
  path would produce, just faster to make.
* Proof latency: the service functions behind the HTTP endpoints (a fresh read transaction,
  the size, the O(log n) node reads), median and p99 of 2,000 random requests.
* ``verify``: :func:`idrs.audit.verify.verify_log` over the whole big log (every leaf hashed,
  every stored node compared, every checkpoint checked), compared with raw
  ``hashlib.sha256(0x00 || leaf)`` over the same leaves in memory, measured in the same run.
* Storage beyond the leaf: (database pages of the three audit tables - leaf bytes) / entries.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine, text

from bench import figure as _fig
from idrs import migrate
from idrs.audit import log, merkle, service
from idrs.audit.checkpoint import Checkpoint, ensure_signing_key, load_signer
from idrs.audit.events import EventType, make_event
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.verify import verify_log
from idrs.db import make_engine

TITLE = "Audit log: appends, proofs, verification, storage (issue 4)"
PG_ADMIN = os.environ.get("IDRS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WORK = Path(os.environ.get("IDRS_BENCH_TMP", "/tmp"))
CHUNK = 1 << 16


# ------------------------------------------------------------------ appends


def _sample_event(i: int) -> dict[str, Any]:
    return make_event(
        EventType.ACCESS_RESEARCH_DECIDE,
        time=datetime.now(UTC),
        actor=f"E{i % 5000:05d}",
        outcome="allowed",
        interface="api",
        address="10.1.2.3",
        obj={"command": "TXMOD", "taxpayer": hashlib.sha256(str(i).encode()).hexdigest()[:32]},
        reasons=[],
        policy="2026.1",
    )


def _appends(url: str, writers: int, per_writer: int) -> tuple[float, int]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    events = [_sample_event(i) for i in range(per_writer)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for ev in events:
                log.append(engine, ev)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar_one()
    engine.dispose()
    return writers * per_writer / elapsed, int(n)


def _pg_db() -> tuple[str, str]:
    name = f"idrs_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _pg_drop(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ------------------------------------------------------------------ bulk build


def _leaf(i: int) -> bytes:
    # canonical JSON (sorted keys, no spaces) of a typical research decision, with its index
    return (
        b'{"actor":"E%05d","index":%d,"object":{"command":"TXMOD","taxpayer":"%032x"},'
        b'"origin":{"address":"10.1.2.3","interface":"api"},"outcome":"allowed","policy":"2026.1",'
        b'"reasons":[],"time":"2026-03-02T14:%02d:%02d.%06d+00:00","type":"access:research:decide","v":1}'
        % (
            i % 5000,
            i,
            (i * 2654435761) & ((1 << 128) - 1),
            (i // 60_000_000) % 60,
            (i // 1_000_000) % 60,
            i % 1_000_000,
        )
    )


def _bulk_build(path: Path, size: int, home: Path, origin: str) -> dict[str, float]:
    """Fill a migrated SQLite file with ``size`` entries, all nodes, and checkpoints every 1M."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    signer = load_signer(home)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    sha = hashlib.sha256
    stack: list[tuple[int, bytes]] = []
    leaf_bytes = 0
    ckpt_id = 0
    t_build = time.perf_counter()
    every = 1_000_000 if size >= 1_000_000 else max(1, size // 4)
    for base in range(0, size, CHUNK):
        n = min(CHUNK, size - base)
        leaves = [_leaf(i) for i in range(base, base + n)]
        leaf_bytes += sum(map(len, leaves))
        hashes = [sha(b"\x00" + x).digest() for x in leaves]
        levels = [hashes]
        lv = hashes
        while len(lv) > 1:
            lv = [sha(b"\x01" + lv[i] + lv[i + 1]).digest() for i in range(0, len(lv) - 1, 2)]
            levels.append(lv)
        nodes = [
            (node_key(lvl, (base >> lvl) + k), h)
            for lvl in range(MIN_STORED_LEVEL, len(levels))
            for k, h in enumerate(levels[lvl])
        ]
        if n == CHUNK:
            level = CHUNK.bit_length() - 1
            h, idx = levels[level][0], base >> level
            while stack and stack[-1][0] == level:
                h = merkle.node_hash(stack.pop()[1], h)
                idx >>= 1
                level += 1
                nodes.append((node_key(level, idx), h))
            stack.append((level, h))
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (?, ?, ?)",
            zip(range(base, base + n), leaves, hashes, strict=True),
        )
        con.executemany("INSERT INTO audit_node (id, hash) VALUES (?, ?)", nodes)
        end = base + n
        if end % every == 0 or end == size:
            # a checkpoint (signed like any other) at every million entries and at the end
            plan = merkle.root_plan(end)
            have: dict[merkle.Node, bytes] = {}
            for lvl, i in plan:
                if lvl == 0:
                    row = con.execute(
                        "SELECT leaf_hash FROM audit_entry WHERE idx = ?", (i,)
                    ).fetchone()
                else:
                    row = con.execute(
                        "SELECT hash FROM audit_node WHERE id = ?", (node_key(lvl, i),)
                    ).fetchone()
                have[(lvl, i)] = row[0]
            root = merkle.fold([have[x] for x in plan])
            ckpt_id += 1
            con.execute(
                "INSERT INTO audit_checkpoint (id, tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    ckpt_id,
                    end,
                    root,
                    signer.sign(Checkpoint(origin, end, root).text()),
                    "2026-03-02 14:00:00",
                ),
            )
        con.execute("COMMIT")
    con.close()
    return {"build_s": time.perf_counter() - t_build, "leaf_bytes": leaf_bytes}


def _raw_hash_seconds(size: int) -> float:
    """Time of raw ``hashlib.sha256(0x00 || leaf)`` over the same leaves (generation not timed)."""
    sha = hashlib.sha256
    total = 0.0
    for base in range(0, size, CHUNK):
        leaves = [_leaf(i) for i in range(base, min(size, base + CHUNK))]
        t0 = time.perf_counter()
        for x in leaves:
            sha(b"\x00" + x).digest()
        total += time.perf_counter() - t0
    return total


def _sqlite_audit_bytes(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('audit_entry','audit_node','audit_checkpoint')"
        ).fetchone()
        total = int(rows[0])
    except (
        sqlite3.OperationalError
    ):  # dbstat not compiled in: the whole file (nothing else is in it)
        total = path.stat().st_size
    con.close()
    return total


def _proof_latency(app: Any, size: int, requests: int) -> tuple[list[float], list[float]]:
    rng = random.Random(4)
    inc, con = [], []
    for _ in range(requests):
        i = rng.randrange(size)
        t0 = time.perf_counter()
        service.inclusion_proof(app, i, size)
        inc.append(time.perf_counter() - t0)
        first = rng.randrange(1, size)
        t0 = time.perf_counter()
        service.consistency_proof(app, first, size)
        con.append(time.perf_counter() - t0)
    return inc, con


def _ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3, 3)


def run(scale: str) -> list[dict[str, Any]]:
    full = scale == "full"
    figures: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="idrs-bench-audit-", dir=WORK))
    try:
        home = tmp / "home"
        ensure_signing_key(home, name="idrs.example/audit-log")

        # --- durable appends, 8 writers
        per = 3000 if full else 300
        rate, n = _appends(f"sqlite:///{tmp / 'appends.db'}", 8, per)
        figures.append(
            _fig(
                "durable appends, SQLite, 8 concurrent writers (group commit)",
                round(rate),
                "entries/s",
                ">= 5000",
                rate >= 5000,
                f"{n} entries; WAL, synchronous=NORMAL (survives kill -9)",
            )
        )
        name, url = _pg_db()
        try:
            rate, n = _appends(url, 8, per)
        finally:
            _pg_drop(name)
        figures.append(
            _fig(
                "durable appends, PostgreSQL, 8 concurrent writers (group commit)",
                round(rate),
                "entries/s",
                ">= 5000",
                rate >= 5000,
                f"{n} entries; synchronous_commit=on",
            )
        )

        # --- storage on PostgreSQL (append path, real tables)
        name, url = _pg_db()
        try:
            engine = make_engine(url)
            migrate.upgrade(engine)
            pg_n = 100_000 if full else 5_000
            for base in range(0, pg_n, 5000):
                log.append_many(engine, [_sample_event(i) for i in range(base, base + 5000)])
            with engine.connect() as conn:
                total = conn.execute(
                    text(
                        "SELECT pg_total_relation_size('audit_entry') + pg_total_relation_size('audit_node')"
                    )
                ).scalar_one()
                leaf = conn.execute(
                    text("SELECT SUM(octet_length(leaf_input)) FROM audit_entry")
                ).scalar_one()
            engine.dispose()
        finally:
            _pg_drop(name)
        pg_per = (int(total) - int(leaf)) / pg_n
        figures.append(
            _fig(
                "storage beyond the leaf, PostgreSQL",
                round(pg_per, 1),
                "bytes/entry",
                "<= 200",
                pg_per <= 200,
                f"{pg_n:,} entries; heap + indexes of audit_entry and audit_node",
            )
        )

        # --- the big log
        size = 10_000_000 if full else 50_000
        path = tmp / "big.db"
        built = _bulk_build(path, size, home, "idrs.example/audit-log")
        figures.append(
            _fig(
                f"bulk build of the {size:,}-entry log (bench set-up)",
                round(built["build_s"], 1),
                "s",
                "-",
                None,
                "leaves + all nodes + a checkpoint per million, journal off",
            )
        )
        audit_bytes = _sqlite_audit_bytes(path)
        per_entry = (audit_bytes - built["leaf_bytes"]) / size
        figures.append(
            _fig(
                "storage beyond the leaf, SQLite",
                round(per_entry, 1),
                "bytes/entry",
                "<= 200",
                per_entry <= 200,
                f"{size:,} entries, mean leaf {built['leaf_bytes'] / size:.0f} bytes",
            )
        )

        engine = make_engine(f"sqlite:///{path}")
        app = SimpleNamespace(engine=engine, settings=SimpleNamespace(home=home))
        inc, con = _proof_latency(app, size, 2000 if full else 300)
        for what, xs in (("inclusion", inc), ("consistency", con)):
            figures.append(
                _fig(
                    f"{what} proof at {size:,} entries, median",
                    _ms(xs, 0.5),
                    "ms",
                    "< 5",
                    _ms(xs, 0.5) < 5,
                    f"service call behind GET /audit/proofs/{what} on SQLite, {len(xs)} random requests",
                )
            )
            figures.append(
                _fig(
                    f"{what} proof at {size:,} entries, p99",
                    _ms(xs, 0.99),
                    "ms",
                    "-",
                    None,
                    "tail dominated by scheduling on a shared, loaded machine",
                )
            )

        verifier = load_signer(home).verifier()
        t0 = time.perf_counter()
        report = verify_log(engine, verifier)
        elapsed = time.perf_counter() - t0
        engine.dispose()
        if not report.ok:
            raise RuntimeError(f"bench log does not verify: {report.as_dict()}")
        raw_s = _raw_hash_seconds(size)  # right after verify, so both see the same machine load
        verify_rate = size / elapsed
        raw_rate = size / raw_s
        figures.append(
            _fig(
                f"audit verify over {size:,} entries",
                round(verify_rate),
                "entries/s",
                ">= 300000",
                verify_rate >= 300_000,
                f"{elapsed:.1f} s; every leaf, node and {report.checkpoints} checkpoints",
            )
        )
        figures.append(
            _fig(
                "verify rate / raw hashlib.sha256 over the same leaves",
                round(verify_rate / raw_rate, 3),
                "ratio",
                "-",
                None,
                f"raw sha256(0x00||leaf): {raw_rate:,.0f} leaves/s in this run",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
