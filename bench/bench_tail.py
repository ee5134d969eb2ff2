"""No unsigned tail (issue 13): how long an idle log's newest entry waits for a checkpoint,
and what naming an entry behind recomputed hashes costs ``audit verify``.

* Wait for a checkpoint: one entry appended through ``idrs.audit.log.append`` on an idle
  SQLite log with the default bound (``IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS`` = 1 s), then
  the time until a stored checkpoint covers it; the median and maximum of several rounds.
* Verify: a log built with ``append_many`` and a checkpoint every 1,000 entries; one entry in
  the middle is changed, its leaf hash and every stored node recomputed (what a careful
  attacker with the database does). ``verify_log`` is timed on the intact log and on the
  tampered one, which must name that exact entry; the difference is the cost of naming it.
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text

from bench import figure as _fig
from idrs import migrate
from idrs.audit import log, merkle
from idrs.audit.checkpoint import ensure_signing_key, load_signer
from idrs.audit.events import EventType, make_event
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.verify import verify_log
from idrs.db import make_engine

TITLE = "Audit log: no unsigned tail, naming a recomputed entry (issue 13)"
ORIGIN = "idrs.example/audit-log"


def _event(i: int) -> dict[str, Any]:
    return make_event(
        EventType.ACCESS_RESEARCH_DECIDE,
        time=datetime.now(UTC),
        actor=f"E{i % 5000:05d}",
        outcome="allowed",
        interface="api",
        obj={"command": "TXMOD", "taxpayer": hashlib.sha256(str(i).encode()).hexdigest()[:32]},
    )


def _settings(url: str, home: Path, bound: float) -> Any:
    return SimpleNamespace(
        home=home,
        audit_origin=ORIGIN,
        checkpoint_every_entries=1000,
        checkpoint_every_seconds=3600,
        checkpoint_max_unsigned_seconds=bound,
        database_url=url,
    )


def _latest(engine: Any) -> int:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT tree_size FROM audit_checkpoint ORDER BY id DESC LIMIT 1")
        ).first()
    return 0 if row is None else int(row[0])


def _idle_waits(tmp: Path, home: Path, rounds: int) -> list[float]:
    url = f"sqlite:///{tmp / 'idle.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    log.configure(engine, _settings(url, home, 1.0))
    waits = []
    try:
        for i in range(rounds):
            idx = log.append(engine, _event(i))
            t0 = time.perf_counter()
            while _latest(engine) <= idx:
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("no checkpoint within 30 s")
                time.sleep(0.005)
            waits.append(time.perf_counter() - t0)
    finally:
        log.forget(engine)
        engine.dispose()
    return waits


def _tampered_verify(tmp: Path, home: Path, size: int) -> tuple[float, float, int, int]:
    url = f"sqlite:///{tmp / 'verify.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    log.configure(engine, _settings(url, home, 3600))
    for base in range(0, size, 1000):
        log.append_many(engine, [_event(i) for i in range(base, base + 1000)])
        log.sign_checkpoint(engine, home, ORIGIN)
    verifier = load_signer(home).verifier()
    t0 = time.perf_counter()
    intact = verify_log(engine, verifier)
    intact_s = time.perf_counter() - t0
    if not intact.ok:
        raise RuntimeError(f"bench log does not verify: {intact.as_dict()}")
    at = size // 2 + 123
    with engine.begin() as conn:
        for (name,) in conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).all():
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        e = _event(at)
        e["outcome"] = "denied"
        leaf = log.leaf_bytes(e, at)
        conn.execute(
            text("UPDATE audit_entry SET leaf_input = :v, leaf_hash = :h WHERE idx = :i"),
            {"v": leaf, "h": merkle.leaf_hash(leaf), "i": at},
        )
        hashes = [
            bytes(r[0])
            for r in conn.execute(text("SELECT leaf_hash FROM audit_entry ORDER BY idx"))
        ]
        made = merkle.append_nodes(0, hashes, lambda n: b"")
        conn.execute(text("DELETE FROM audit_node"))
        conn.execute(
            text("INSERT INTO audit_node (id, hash) VALUES (:k, :h)"),
            [{"k": node_key(lv, i), "h": h} for (lv, i), h in made if lv >= MIN_STORED_LEVEL],
        )
    t0 = time.perf_counter()
    report = verify_log(engine, verifier)
    tampered_s = time.perf_counter() - t0
    log.forget(engine)
    engine.dispose()
    named = report.first_bad.index if report.first_bad else -1
    return intact_s, tampered_s, at, named if named is not None else -1


def run(scale: str) -> list[dict[str, Any]]:
    full = scale == "full"
    figures: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="idrs-bench-tail-"))
    try:
        home = tmp / "home"
        ensure_signing_key(home, name=ORIGIN)
        waits = _idle_waits(tmp, home, 10 if full else 4)
        figures.append(
            _fig(
                "idle log: newest entry to a checkpoint covering it, median",
                round(statistics.median(waits), 3),
                "s",
                "<= 1.5",
                statistics.median(waits) <= 1.5,
                f"bound 1 s (IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS); {len(waits)} rounds, SQLite",
            )
        )
        figures.append(
            _fig(
                "idle log: newest entry to a checkpoint covering it, max",
                round(max(waits), 3),
                "s",
                "-",
                None,
                "signing starts at the bound; the rest is the signature and its commit",
            )
        )
        size = 200_000 if full else 10_000
        intact_s, tampered_s, at, named = _tampered_verify(tmp, home, size)
        figures.append(
            _fig(
                f"verify naming an entry behind recomputed hashes, {size:,} entries",
                round(tampered_s, 2),
                "s",
                "exact entry",
                named == at,
                f"entry {at} changed, leaf hash and all nodes recomputed; named {named}; "
                f"intact log {intact_s:.2f} s; a checkpoint every 1,000 entries",
            )
        )
        figures.append(
            _fig(
                "extra time to name it (tampered - intact verify)",
                round(tampered_s - intact_s, 3),
                "s",
                "-",
                None,
                "naming it reads only the entries between the last matching and the first "
                "failing checkpoint; most of the rest is the index-claim check of every chunk "
                "a failing checkpoint ends in. Storage: 32 bytes/entry of leaf-hash copies",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
