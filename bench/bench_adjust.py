"""Applied adjustments per second through THE service function (adjustments.service.request).

Every call goes the whole path: validate, authenticate, facts + Cedar decision, the
prerequisite-research check (trail), the account lookup, then ONE transaction holding the
version bump, the transaction posting, the request row, the posting row and the audit entry
(Merkle leaf and nodes). The employee has an open case and a prior TXMOD (trail) on each
taxpayer; each change is a $10 TC 290 (below every two-person threshold), sequential, one
thread; the p99 is of the per-call latency.

Full scale on SQLite: a copy of the 1,000,000-taxpayer database of the research benchmark
(/tmp/idrs-bench-research) when it exists, with this module's tables added and a tax module
for each measured taxpayer; otherwise (and on PostgreSQL, where no 1M database is built
yet) a bulk-inserted population of QUICK_N taxpayers; the size used is in each figure's note.
"""

from __future__ import annotations

import secrets
import sqlite3
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

TITLE = "Adjustments: applied ADJ54 per second through the service function"
QUICK_N = 20_000
CALLS = {"full": 4000, "quick": 600}
WARMUP = 100
DISTINCT = 100
THREADS = 4
#: 1M-taxpayer databases other benchmarks build, with their key homes (the first present wins):
#: bench_masterfile.ensure_million's seeded world, then bench_research's own bulk population
MILLIONS = (
    (Path("/tmp/idrs-bench-1m/idrs.db"), Path("/tmp/idrs-bench-1m/home")),
    (
        Path("/tmp/idrs-bench-research/research-1000000.db"),
        Path("/tmp/idrs-bench-research/research-1000000-home"),
    ),
)
OWN = Path("/tmp/idrs-bench-adjust")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _tin(i: int) -> str:
    return f"{900 + i % 100:03d}{(i // 100) % 50:02d}{1 + i // 5000:04d}"


def _populate(engine: Any, ring: Any, n: int) -> None:
    from idrs.masterfile.models import Taxpayer

    with engine.connect() as conn:
        have = conn.execute(select(func.count(Taxpayer.id))).scalar_one()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for start in range(have, n, 10_000):
        rows = [{"id": i + 1, "tin_index": ring.tin_index(_tin(i)),
                 "tin_enc": ring.encrypt(_tin(i), "taxpayer.tin"), "first_name": "Ann",
                 "middle_name": "", "last_name": f"Name{i % 5000}", "suffix": "",
                 "name_control": "NAME", "created_at": now, "updated_at": now}
                for i in range(start, min(n, start + 10_000))]
        with engine.begin() as conn:
            conn.execute(insert(Taxpayer), rows)


def _database(db: str, scale: str) -> tuple[str, Path, str]:
    """(url, home, size note) of a migrated database with taxpayers."""
    import idrs.models
    from idrs import migrate
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    OWN.mkdir(parents=True, exist_ok=True)
    million = _million() if db == "sqlite" and scale == "full" else None
    if million is not None:
        source, million_home = million
        target = OWN / "adjust-1m.db"
        Path(str(target) + "-wal").unlink(missing_ok=True)
        # a consistent copy (SQLite's online backup: the WAL folded in, no torn pages even if
        # another benchmark is writing the source right now)
        src = sqlite3.connect(source)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        url = f"sqlite:///{target}"
        engine = make_engine(url)
        idrs.models.Base.metadata.create_all(engine)  # this module's tables, if the copy lacks them
        engine.dispose()
        return url, million_home, f"1,000,000 taxpayers (copy of {source})"
    home = OWN / f"home-{db}"
    if not (home / "keyring.json").exists() and not home.exists():
        Keyring.create(home)
    if db == "sqlite":
        path = OWN / f"adjust-{QUICK_N}.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        name = f"idrs_bench_adjust_{secrets.token_hex(3)}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    migrate.upgrade(engine)
    _populate(engine, Keyring.load(home), QUICK_N)
    engine.dispose()
    return url, home, f"{QUICK_N:,} taxpayers"


def _million() -> tuple[Path, Path] | None:
    """A finished 1M database and its key home, if another benchmark has built one."""
    for db, home in MILLIONS:
        done = db.parent / "seed-figures.json"
        if db.exists() and (home / "keyring.json").exists() and (
            done.exists() or "research" in db.name
        ):
            return db, home
    return None


def _prepare(url: str, home: Path) -> tuple[Any, str, list[tuple[str, str]]]:
    """App, a session token of a fresh examiner, and (TIN, case) pairs with a TXMOD on trail."""
    from idrs.access.models import CaseAssignment
    from idrs.adjustments import trail
    from idrs.clock import SystemClock
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring, random_token, sha256_hex
    from idrs.db import make_engine, session_scope
    from idrs.identifiers import format_tin
    from idrs.masterfile.models import Marker, TaxModule, Taxpayer
    from idrs.people.models import Employee, SignInSession, Unit

    settings = Settings(database_url=url, home=home, daily_limit_default=10_000_000)
    app = App(settings=settings, engine=make_engine(url), keyring=Keyring.load(home),
              clock=SystemClock())
    seid = "BA" + secrets.token_hex(3).upper()
    token = random_token(32)
    now = app.clock.now()
    with session_scope(app.engine) as s:
        unit = s.scalar(select(Unit).where(Unit.code == "BENCH"))
        if unit is None:
            unit = Unit(code="BENCH", name="bench", ceiling="ADJ54,TXMOD")
            s.add(unit)
            s.flush()
        emp = Employee(seid=seid, name="Bench", unit_id=unit.id, roles="examiner",
                       profile="ADJ54,ENMOD,ENREQ,REQ77,TXMOD", authorities="", created_at=now,
                       training_attested_at=now,  # UNAX training current (grants rule)
                       tin_index=app.keyring.tin_index("999499990"))
        s.add(emp)
        s.flush()
        s.add(SignInSession(token_hash=sha256_hex(token), employee_id=emp.id, created_at=now,
                            last_seen_at=now, expires_at=now + timedelta(hours=8),
                            interface="bench"))
        total = s.execute(select(func.max(Taxpayer.id))).scalar_one()
        step = max(1, total // (DISTINCT * 3))
        rows = s.execute(select(Taxpayer.id, Taxpayer.tin_index, Taxpayer.tin_enc)
                         .where(Taxpayer.id.in_(list(range(1, total + 1, step))),
                                Taxpayer.id.not_in(select(Marker.taxpayer_id)))
                         .limit(DISTINCT)).all()
        pairs = []
        for n, (tid, idx, enc) in enumerate(rows):
            case = f"BA-{emp.id:05d}{n:03d}"  # the documented id format: at most 8 digits
            s.add(CaseAssignment(case_id=case, employee_id=emp.id, tin_index=idx, opened_at=now))
            if s.scalar(select(TaxModule.id).where(TaxModule.taxpayer_id == tid,
                                                   TaxModule.tax_year == 2023)) is None:
                s.add(TaxModule(taxpayer_id=tid, tax_year=2023, version=1))
            pairs.append((format_tin(app.keyring.decrypt(enc, "taxpayer.tin")), case))
        emp_id = emp.id
    try:
        from idrs.access.service import refresh_employee

        refresh_employee(app, seid)
    except ImportError:
        pass
    for tin, _case in pairs:
        trail.note(app, token=token, employee_id=emp_id, tin=tin, command="TXMOD", year=2023)
    return app, token, pairs


def _measure(app: Any, token: str, pairs: list[tuple[str, str]], calls: int) -> list[float]:
    from idrs.adjustments import service

    samples = []
    for k in range(calls + WARMUP):
        tin, case = pairs[k % len(pairs)]
        t0 = time.perf_counter()
        res = service.request(app, token=token, tin=tin, command="ADJ54", case=case,
                              reason="bench", interface="bench", tax_year=2023, tc="290",
                              amount="10.00", date=date.today().isoformat())
        dt = time.perf_counter() - t0
        assert res.status == "applied"
        if k >= WARMUP:
            samples.append(dt * 1000)
    return samples


def _threaded(app: Any, token: str, pairs: list[tuple[str, str]], calls: int,
              threads: int) -> float:
    """Applied adjustments/s with ``threads`` clients on disjoint taxpayers (one session)."""
    import threading

    chunks = [pairs[i::threads] for i in range(threads)]
    per = calls // threads
    t0 = time.perf_counter()
    workers = [threading.Thread(target=_measure, args=(app, token, c, per - WARMUP))
               for c in chunks]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - t0)


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _figures(db: str, samples: list[float], note: str, cpu_ms: float,
             threaded: float) -> list[dict[str, Any]]:
    samples.sort()
    total_s = sum(samples) / 1000
    rate = len(samples) / total_s
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return [
        {"what": f"applied adjustments/s ({db}, one client)", "value": round(rate), "unit": "/s",
         "target": ">= 500", "met": rate >= 500,
         "note": f"{note}; {len(samples)} calls; median {statistics.median(samples):.2f} ms;"
                 f" {cpu_ms:.2f} ms CPU of this process per call; load average {_load()}"},
        {"what": f"applied adjustments/s ({db}, {THREADS} clients)", "value": round(threaded),
         "unit": "/s", "target": ">= 500", "met": threaded >= 500, "note": note},
        {"what": f"adjustment p99 latency ({db}, one client)", "value": round(p99, 2),
         "unit": "ms", "target": "< 20", "met": p99 < 20, "note": note},
    ]


def run(scale: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for db in ("sqlite", "postgresql"):
        url, home, note = _database(db, scale)
        app, token, pairs = _prepare(url, home)
        c0 = time.process_time()
        samples = _measure(app, token, pairs, CALLS[scale])
        cpu_ms = (time.process_time() - c0) * 1000 / (CALLS[scale] + WARMUP)
        threaded = _threaded(app, token, pairs, CALLS[scale], THREADS)
        app.engine.dispose()
        out.extend(_figures(db, samples, note, cpu_ms, threaded))
    return out
