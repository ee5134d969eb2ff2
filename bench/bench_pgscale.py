"""PostgreSQL as the production store (issue 18.1), side by side with SQLite in the same run.

* Durable audit appends: 8 threads calling ``idrs.audit.log.append`` (group commit; on
  PostgreSQL one round trip per batch: lock, guard, inserts and commit in one pipeline,
  synchronous_commit=on), exactly as ``bench_audit`` does, on a fresh database of each kind.
  The note gives the mean batch size, the batches per second and, for PostgreSQL, the
  latency of a bare synchronous commit measured in the same run (one INSERT + COMMIT,
  sequential): with 8 writers each waiting for its own durable commit, the ceiling is about
  8 entries per commit latency.
* Adjustments: ``bench_adjust``'s path (one client, then 4 threads) on both databases, with
  ``QUICK_N`` taxpayers each.
* Bulk loads: ``idrs seed`` (in process: ``masterfile.seed.seed``) and ``idrs import`` of a
  JSON Lines file written by ``export_jsonl``, same sizes on both databases; on PostgreSQL
  the seed once serially and once with 2 worker processes (``seed --workers 2``: each
  generates and COPYs its block); the import once in this process and once with 2 worker
  processes (SQLite: they validate; PostgreSQL: they validate, encrypt and encode the rows
  for COPY, this process sends one COPY a table a block). PostgreSQL loads with COPY.

The machine these figures come from is shared (2 cores, several agents running test suites
and benchmarks at once): the load average at each measurement is in its note.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import bench_adjust as _adj
from bench import bench_audit as _aud
from bench import figure as _fig

TITLE = "PostgreSQL at scale beside SQLite: appends, adjustments, bulk loads (issue 18.1)"
WORK = Path(os.environ.get("IDRS_BENCH_TMP", "/tmp"))
SIZES = {
    "full": {"per_writer": 1500, "adjust": 600, "seed": 30_000, "import": 12_000},
    "quick": {"per_writer": 300, "adjust": 300, "seed": 5_000, "import": 6_000},
}


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


# ------------------------------------------------------------------ appends


def _appends(url: str, writers: int, per_writer: int) -> dict[str, float]:
    from idrs import migrate
    from idrs.audit import log
    from idrs.db import make_engine

    engine = make_engine(url)
    migrate.upgrade(engine)
    events = [_aud._sample_event(i) for i in range(per_writer)]
    errors: list[BaseException] = []
    batches: list[int] = []
    orig = log._append_batch

    def counted(db: Any, entries: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
        batches.append(len(entries))
        return orig(db, entries, *a, **k)

    def work() -> None:
        try:
            for ev in events:
                log.append(engine, ev)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    log._append_batch = counted  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=work) for _ in range(writers)]
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        log._append_batch = orig  # type: ignore[assignment]
    if errors:
        raise errors[0]
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar_one()
        gaps = conn.execute(text("SELECT MAX(idx) + 1 - COUNT(*) FROM audit_entry")).scalar_one()
    log.forget(engine)
    engine.dispose()
    if int(n) != writers * per_writer or int(gaps) != 0:
        raise RuntimeError(f"{n} entries, {gaps} gaps: the log is not gap-free")
    return {
        "rate": writers * per_writer / elapsed,
        "entries": int(n),
        "batch": sum(batches) / max(1, len(batches)),
        "batches_s": len(batches) / elapsed,
        "cpu_us": cpu / (writers * per_writer) * 1e6,
    }


def _bare_commit_ms(url: str, n: int = 300) -> float:
    """Median latency of one INSERT + synchronous COMMIT on PostgreSQL (the fsync floor)."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE bench_commit (a int)")
        conn.commit()
        xs = []
        for i in range(n):
            t0 = time.perf_counter()
            conn.execute("INSERT INTO bench_commit VALUES (%s)", (i,))
            conn.commit()
            xs.append(time.perf_counter() - t0)
    xs.sort()
    return xs[len(xs) // 2] * 1e3


def _append_figures(tmp: Path, per: int) -> list[dict[str, Any]]:
    out = []
    sq = _appends(f"sqlite:///{tmp / 'appends.db'}", 8, per)
    load_sq = _load()
    name, url = _aud._pg_db()
    try:
        pg = _appends(url, 8, per)
        load_pg = _load()
        bare = _bare_commit_ms(url)
    finally:
        _aud._pg_drop(name)
    for what, r, load, extra in (
        ("SQLite", sq, load_sq, "WAL, synchronous=NORMAL"),
        (
            "PostgreSQL",
            pg,
            load_pg,
            f"synchronous_commit=on; a bare INSERT+COMMIT took {bare:.2f} ms (median) in this"
            f" run, so 8 writers top out near {8000 / bare:,.0f}/s",
        ),
    ):
        out.append(
            _fig(
                f"durable appends, {what}, 8 concurrent writers (group commit)",
                round(r["rate"]),
                "entries/s",
                ">= 5000",
                r["rate"] >= 5000,
                f"{r['entries']} entries, gap-free; mean batch {r['batch']:.1f} entries,"
                f" {r['batches_s']:.0f} commits/s; {r['cpu_us']:.0f} µs of this process's CPU"
                f" per entry (all threads); {extra}; {load}",
            )
        )
    return out


# ------------------------------------------------------------------ adjustments


def _adjust_figures(calls: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for db in ("sqlite", "postgresql"):
        url, home, note = _adj._database(db, "quick")
        app, token, pairs = _adj._prepare(url, home)
        samples = _adj._measure(app, token, pairs, calls)
        rate = len(samples) / (sum(samples) / 1000)
        threaded = _adj._threaded(app, token, pairs, calls, _adj.THREADS)
        from idrs.audit import log

        log.forget(app.engine)
        app.engine.dispose()
        if db == "postgresql":
            _aud._pg_drop(url.rsplit("/", 1)[1])
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        out.append(
            _fig(
                f"applied adjustments/s ({db}, one client)",
                round(rate),
                "/s",
                ">= 500",
                rate >= 500,
                f"{note}; {len(samples)} calls; p99 {p99:.1f} ms; {_load()}",
            )
        )
        out.append(
            _fig(
                f"applied adjustments/s ({db}, {_adj.THREADS} clients)",
                round(threaded),
                "/s",
                ">= 500",
                threaded >= 500,
                f"{note}; {_load()}",
            )
        )
    return out


# ------------------------------------------------------------------ bulk loads


def _app(url: str, home: Path) -> Any:
    from idrs import migrate
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    engine = make_engine(url)
    migrate.upgrade(engine)
    Keyring.create(home)
    return App(
        settings=Settings(database_url=url, home=home), engine=engine, keyring=Keyring.load(home)
    )


def _database(kind: str, tmp: Path, tag: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{tag}.db'}", None
    name, url = _aud._pg_db()
    return url, name


def _db_bytes(engine: Any, url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        wal = Path(str(path) + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def _bulk_figures(tmp: Path, n_seed: int, n_import: int) -> list[dict[str, Any]]:
    from idrs.audit import log
    from idrs.masterfile.importer import import_file
    from idrs.masterfile.seed import export_jsonl, seed

    out: list[dict[str, Any]] = []
    src = tmp / "taxpayers.jsonl"
    export_jsonl(src, taxpayers=n_import, seed_value=11)
    size_mib = src.stat().st_size / 2**20
    seed_target = 600.0 * n_seed / 1_000_000
    for kind in ("sqlite", "postgresql"):
        per_tp = 0.0
        for seed_workers in (1,) if kind == "sqlite" else (1, 2):
            url, name = _database(kind, tmp, f"seed-{seed_workers}")
            try:
                app = _app(url, tmp / f"home-seed-{kind}-{seed_workers}")
                base = _db_bytes(app.engine, url)
                t0, c0 = time.perf_counter(), time.process_time()
                seed(app, taxpayers=n_seed, employees=5, workers=seed_workers)
                s, cpu = time.perf_counter() - t0, time.process_time() - c0
                if seed_workers == 1:
                    per_tp = (_db_bytes(app.engine, url) - base) / n_seed
                log.forget(app.engine)
                app.engine.dispose()
            finally:
                if name:
                    _aud._pg_drop(name)
            how = "executemany" if kind == "sqlite" else "COPY"
            if seed_workers > 1:
                how += f", {seed_workers} worker processes generating and writing (seed --workers)"
            out.append(
                _fig(
                    f"seed {n_seed:,} taxpayers ({kind}, {seed_workers} process"
                    f"{'es' if seed_workers > 1 else ''})",
                    round(s, 1),
                    "s",
                    f"<= {seed_target:.0f} s (10 min per million)",
                    s <= seed_target,
                    f"{n_seed / s:,.0f} taxpayers/s; {cpu:.1f} s CPU in the calling process"
                    f" ({n_seed / cpu:,.0f}/s of CPU); 1M at this rate:"
                    f" {1e6 / (n_seed / s) / 60:.1f} min; {how}; {_load()}",
                )
            )
        out.append(
            _fig(
                f"database size per seeded taxpayer ({kind})",
                round(per_tp),
                "bytes",
                "-",
                None,
                f"growth of {'pg_database_size' if kind == 'postgresql' else 'the file'} over"
                f" {n_seed:,} taxpayers with 3 tax years each (returns, transactions, addresses,"
                " indexes)",
            )
        )
        for workers in (1, 2):
            url, name = _database(kind, tmp, f"import-{workers}")
            try:
                app = _app(url, tmp / f"home-import-{kind}-{workers}")
                t0, c0 = time.perf_counter(), time.process_time()
                result = import_file(app, src, "os:bench", workers=workers)
                s, cpu = time.perf_counter() - t0, time.process_time() - c0
                log.forget(app.engine)
                app.engine.dispose()
            finally:
                if name:
                    _aud._pg_drop(name)
            rate = result.lines / s
            if workers == 1:
                how = "1 process"
            elif kind == "sqlite":
                how = f"{workers} validating processes"
            else:
                how = f"{workers} worker processes building COPY-ready rows"
            out.append(
                _fig(
                    f"import {n_import:,} taxpayers ({kind}, {how})",
                    round(rate),
                    "taxpayers/s",
                    ">= 2000",
                    rate >= 2000,
                    f"{s:.1f} s wall, {cpu:.1f} s CPU in the writing process; {size_mib:.0f} MiB"
                    f" file, one transaction; {_load()}",
                )
            )
    return out


def run(scale: str) -> list[dict[str, Any]]:
    sizes = SIZES[scale]
    tmp = Path(tempfile.mkdtemp(prefix="idrs-bench-pgscale-", dir=WORK))
    own = _adj.OWN
    _adj.OWN = tmp / "adjust"  # this run's own files, not bench_adjust's shared folder
    try:
        figures = _append_figures(tmp, sizes["per_writer"])
        figures += _adjust_figures(sizes["adjust"])
        figures += _bulk_figures(tmp, sizes["seed"], sizes["import"])
    finally:
        _adj.OWN = own
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
