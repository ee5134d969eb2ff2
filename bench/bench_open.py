"""Opening an answer commitment (issue 14.2): ``idrs audit open`` at 1M taxpayers, 10M entries.

Target: opening one commitment takes under 1 s with 1,000,000 taxpayers and 10,000,000
audit entries, and its cost does not grow with the log (index lookups, never a scan).

Set-up (not timed): the shared 1M-taxpayer SQLite database of
``bench_masterfile.ensure_million`` is copied (with its IDRS_HOME: the copy signs its own
checkpoints) to /tmp/idrs-bench-open; at quick scale, bench_research's own 20,000-taxpayer
population. An examiner with open cases makes real research answers (ENMOD, IMFOL, INOLE:
``research.run``, committed like any answer) on a small log. Their openings are timed; then
the log is grown in bulk to the target size with synthetic research entries (leaf hashes,
every stored Merkle node, then one checkpoint signed by ``audit.log.sign_checkpoint``, which
checks every new leaf and the consistency proof from the previous checkpoint before it
signs); the same answers, now deep inside the big log, are opened again, and so are new
answers made at its end.

What one opening does (``oversight.opening.open_answer``, all timed, wall clock): record the
opening in the audit log (a durable commit), read the entry and its encrypted salt and recipe
by index, reproduce the answer from the master file bounded by the entry's time, hash it,
sign a fresh checkpoint, and compute the inclusion proof.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import figure

TITLE = "Answer commitments: opening one (idrs audit open) at 1M taxpayers and 10M entries"
TARGET_S = 1.0
SIZES = {"full": 10_000_000, "quick": 200_000}
COMMANDS = ("ENMOD", "IMFOL", "INOLE")
PER_COMMAND = {"full": 5, "quick": 3}
CHUNK = 65_536
OWN = Path("/tmp/idrs-bench-open")


def _copy(url: str, home: Path, scale: str) -> tuple[str, Path]:
    """A private copy of the population's database and home (sqlite3 online backup)."""
    folder = OWN / scale
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    src = sqlite3.connect(url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(folder / "idrs.db")
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copytree(home, folder / "home")
    return f"sqlite:///{folder / 'idrs.db'}", folder / "home"


def _app(url: str, home: Path) -> Any:
    from idrs.audit import log
    from idrs.audit.checkpoint import ensure_signing_key
    from idrs.clock import SystemClock
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    settings = Settings(database_url=url, home=home, daily_limit_default=10_000_000)
    ensure_signing_key(home, name=settings.audit_origin)
    app = App(
        settings=settings, engine=make_engine(url), keyring=Keyring.load(home), clock=SystemClock()
    )
    log.configure(app.engine, settings)
    return app


def _security_admin(app: Any) -> Any:
    import secrets

    from sqlalchemy import select

    from idrs.db import session_scope
    from idrs.people import service
    from idrs.people.models import Employee

    seid = "BO" + secrets.token_hex(3).upper()
    service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid=seid,
        name="Bench Opener",
        tin="999-49-9991",
        roles="security_admin",
        actor="bench",
    )
    with session_scope(app.engine) as s:
        emp = s.scalar(select(Employee).where(Employee.seid == seid))
        s.expunge(emp)
    return emp


def _answers(app: Any, token: str, tins: list[str], per_command: int, skip: int) -> list[int]:
    """Real research answers (each committed in its entry); their entry indexes."""
    from bench.bench_research import bench_case
    from idrs import research
    from idrs.people import auth

    emp_id = int(auth.authenticate(app, token).id)
    out = []
    for c, command in enumerate(COMMANDS):
        for k in range(per_command):
            n = skip + c * per_command + k
            ans = research.run(
                app,
                token=token,
                command=command,
                tin=tins[n],
                case=bench_case(emp_id, n),
                interface="bench",
            )
            out.append(ans.audit_index)
    return out


def _open_all(app: Any, opener: Any, indexes: list[int]) -> list[float]:
    """Wall seconds of each opening; every one must match its commitment."""
    from idrs.oversight import opening

    opening.open_answer(app, opener, indexes[0])  # warm the caches and the imports
    times = []
    for idx in indexes:
        t0 = time.perf_counter()
        doc = opening.open_answer(app, opener, idx)
        times.append(time.perf_counter() - t0)
        assert doc["matches"] is True, (idx, doc["answer"])
        assert doc["index"] == idx and doc["proof"]
    return times


def _leaf(i: int, when: str) -> bytes:
    # canonical JSON (sorted keys, no spaces) of an allowed research decision, with its index
    return (
        b'{"actor":"E%05d","index":%d,"object":{"command":"TXMOD","taxpayer":"%032x"},'
        b'"origin":{"address":"10.1.2.3","interface":"api"},"outcome":"allowed","policy":"2026.1",'
        b'"reasons":[],"time":"%s","type":"access:research:decide","v":1}'
        % (i % 5000, i, (i * 2654435761) & ((1 << 128) - 1), when.encode())
    )


def _grow(url: str, home: Path, origin: str, target: int) -> dict[str, float]:
    """Append synthetic entries up to ``target`` (leaves, hashes, every stored node), then
    sign one checkpoint with the real signer (which re-checks all of it)."""
    from idrs.audit import log
    from idrs.audit.models import MIN_STORED_LEVEL, node_key
    from idrs.db import make_engine

    t0 = time.perf_counter()
    con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    size = int(con.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entry").fetchone()[0])
    if size >= target:
        con.close()
        return {"grown": 0, "seconds": 0.0}
    last = json.loads(
        con.execute("SELECT leaf_input FROM audit_entry WHERE idx = ?", (size - 1,)).fetchone()[0]
    )
    start = datetime.fromisoformat(last["time"])
    hashes = bytearray()
    for (h,) in con.execute("SELECT leaf_hash FROM audit_entry ORDER BY idx"):
        hashes += h
    sha = hashlib.sha256
    for base in range(size, target, CHUNK):
        n = min(CHUNK, target - base)
        # one microsecond apart, after the last real entry: the log stays in time order
        leaves = [
            _leaf(i, (start + timedelta(microseconds=i - size + 1)).isoformat())
            for i in range(base, base + n)
        ]
        hs = [sha(b"\x00" + x).digest() for x in leaves]
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (?, ?, ?)",
            zip(range(base, base + n), leaves, hs, strict=True),
        )
        con.execute("COMMIT")
        hashes += b"".join(hs)
    # every node of a complete subtree at the stored levels that the old log did not have
    level, lvl = bytes(hashes), 0
    del hashes
    while len(level) >= 64:
        count = len(level) // 64
        level = b"".join(
            sha(b"\x01" + level[64 * i : 64 * i + 64]).digest() for i in range(count)
        )
        lvl += 1
        if lvl < MIN_STORED_LEVEL:
            continue
        first = size >> lvl  # subtrees below this index were complete before: stored already
        rows = (
            (node_key(lvl, i), level[32 * i : 32 * i + 32]) for i in range(first, count)
        )
        con.execute("BEGIN")
        con.executemany("INSERT INTO audit_node (id, hash) VALUES (?, ?)", rows)
        con.execute("COMMIT")
    con.close()
    built = time.perf_counter() - t0
    engine = make_engine(url)
    t1 = time.perf_counter()
    note = log.sign_checkpoint(engine, home, origin)
    engine.dispose()
    assert note is not None
    return {"grown": target - size, "seconds": built, "sign_seconds": time.perf_counter() - t1}


def _size(app: Any) -> int:
    from idrs.audit.service import tree_size

    return int(tree_size(app))


def _taxpayers(app: Any) -> int:
    from sqlalchemy import func, select

    from idrs.masterfile.models import Taxpayer

    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count(Taxpayer.id))).scalar_one())


def _close(app: Any) -> None:
    from idrs.audit import log

    log.flush_unsigned()
    log.forget(app.engine)
    app.engine.dispose()


def run(scale: str) -> list[dict[str, Any]]:
    from bench import bench_research

    located = bench_research._locate_million() if scale == "full" else None
    if located is None:
        located = bench_research._build_own(bench_research.QUICK_N, bench_research.OWN_DIR)
        source = "bench_research's own population"
    else:
        source = "bench_masterfile.ensure_million, copied"
    url, home = _copy(*located, scale)
    target, per = SIZES[scale], PER_COMMAND[scale]

    app, token, tins = bench_research._prepare(url, home)
    _app_settings = _app(url, home)  # signing key and checkpoint policy of the copy
    _close(_app_settings)
    opener = _security_admin(app)
    old = _answers(app, token, tins, per, 0)
    small = _size(app)
    before = _open_all(app, opener, old)
    taxpayers = _taxpayers(app)
    _close(app)

    grown = _grow(url, home, app.settings.audit_origin, target)

    # a new examiner and session (the growth may outlast the first one's idle limit)
    app, token, tins = bench_research._prepare(url, home)
    big = _size(app)
    after_old = _open_all(app, opener, old)
    new = _answers(app, token, tins, per, 0)
    after_new = _open_all(app, opener, new)
    _close(app)

    load = os.getloadavg()[0]
    common = (
        f"{taxpayers:,} taxpayers ({source}), SQLite; {len(old)} answers ({', '.join(COMMANDS)});"
        f" load average {load:.1f} on {os.cpu_count()} cores (the machine is shared)"
    )
    out = []
    for what, times, size in (
        (f"opening, log of {small:,} entries", before, small),
        (f"opening the same answers, log grown to {big:,} entries", after_old, big),
        (f"opening new answers at the end of {big:,} entries", after_new, big),
    ):
        med, worst = statistics.median(times), max(times)
        at_target = size >= target
        out.append(
            figure(
                f"{what}, median",
                round(med * 1000, 1),
                "ms",
                f"< {TARGET_S * 1000:.0f} ms" if at_target else "-",
                med < TARGET_S if at_target else None,
                common if not out else "",
            )
        )
        out.append(
            figure(
                f"{what}, slowest of {len(times)}",
                round(worst * 1000, 1),
                "ms",
                f"< {TARGET_S * 1000:.0f} ms" if at_target else "-",
                worst < TARGET_S if at_target else None,
            )
        )
    out.append(
        figure(
            f"bulk growth of the log to {big:,} entries (bench set-up)",
            round(grown["seconds"] + grown.get("sign_seconds", 0.0), 1),
            "s",
            note=f"{grown['grown']:,} synthetic entries and their nodes in "
            f"{grown['seconds']:.0f} s; the checkpoint over them signed (every new leaf "
            f"re-hashed, consistency proof from the previous checkpoint) in "
            f"{grown.get('sign_seconds', 0.0):.0f} s",
        )
    )
    return out

