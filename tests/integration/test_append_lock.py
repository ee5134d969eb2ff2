"""The audit log's append lock between processes on one SQLite file (``audit.store.AppendLock``).

It only decides which appender tries SQLite's write lock next; these tests hold it against
what a hostile or broken process could do with it: keep it forever (the log refuses with
AUDIT_UNAVAILABLE within the configured lock wait, never hangs), take it and die (the kernel
frees it), and, with the lock working, several processes still keep one gap-free order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from idrs import migrate
from idrs.audit import log
from idrs.audit.events import EventType, make_event
from idrs.audit.log import AuditUnavailable
from idrs.audit.store import AppendLock, Raw, append_lock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine

from .audit_helpers import prepare

ROOT = Path(__file__).resolve().parents[2]
#: the database's lock wait in these tests (IDRS_DB_LOCK_TIMEOUT)
WAIT = 1.0

_HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
if sys.argv[2] == "die":
    os._exit(9)
sys.stdin.read()
"""


def _entry(app: App, n: int) -> dict[str, object]:
    return make_event(
        EventType.AUDIT_ENTRIES_READ, time=app.clock.now(), actor="os:test", outcome="success",
        interface="cli", address=None, obj={"n": n}, detail={},
    )


def _holder(path: str, mode: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, path, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database (the lock exists on SQLite only: PostgreSQL's advisory
    lock queues its waiters itself)."""
    url = f"sqlite:///{tmp_path / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def lapp(sqlite_url: str, home: Path, clock: object) -> Iterator[App]:
    """The application on that database, with a short lock wait, its signing key ready."""
    settings = Settings(database_url=sqlite_url, home=home, db_lock_timeout=WAIT)
    engine = make_engine(sqlite_url, lock_timeout=WAIT)
    app = App(settings=settings, engine=engine, keyring=Keyring.load(home), clock=clock)  # type: ignore[arg-type]
    prepare(app)
    yield app
    log.forget(engine)
    engine.dispose()


def test_the_lock_is_a_sidecar_of_the_sqlite_file_and_none_elsewhere(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    try:
        lock = append_lock(engine)
        assert lock is not None
        assert lock.path == os.path.realpath(tmp_path / "idrs.db") + "-append.lock"
        assert append_lock(engine) is lock  # one per file and process
    finally:
        engine.dispose()
    memory = create_engine("sqlite://")
    try:
        assert append_lock(memory) is None
    finally:
        memory.dispose()


def _size(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one())


def test_a_process_keeping_the_lock_forever_gets_audit_unavailable_not_a_hang(lapp):
    """An appender in another process that takes the lock and never lets go (a hostile or
    hung process) holds the log up for the configured lock wait, then appends refuse."""
    app = lapp
    before = _size(app)
    lock = append_lock(app.engine)
    assert lock is not None
    child = _holder(lock.path, "hold")
    try:
        t0 = time.monotonic()
        with pytest.raises(AuditUnavailable):
            log.append(app.engine, _entry(app, 1))
        waited = time.monotonic() - t0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert waited >= WAIT * 0.9  # it waited for the lock, as long as it may ...
    assert waited < WAIT * 20  # ... and then gave up (never an endless wait)
    assert _size(app) == before  # nothing was written
    # the holder gone, the same process appends again at once
    index = log.append(app.engine, _entry(app, 2))
    assert index == before and _size(app) == before + 1


def test_a_holder_that_dies_frees_the_lock(lapp):
    app = lapp
    lock = append_lock(app.engine)
    assert lock is not None
    child = _holder(lock.path, "die")
    child.wait()
    assert child.returncode == 9
    index = log.append(app.engine, _entry(app, 1))
    assert _size(app) == index + 1


def test_every_way_out_of_a_locked_transaction_releases_the_lock(lapp):
    """commit, rollback, close, and a failed BEGIN: a lock left held would stop every other
    process's appends until this one exits."""
    app = lapp
    lock = append_lock(app.engine)
    assert lock is not None

    def free_elsewhere() -> bool:
        probe = subprocess.run(
            [sys.executable, "-c",
             "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", lock.path],
            capture_output=True,
        )
        return probe.returncode == 0

    for end in ("commit", "rollback", "close"):
        db = Raw(app.engine)
        db.begin_locked()
        assert not free_elsewhere(), end
        getattr(db, end)()
        assert free_elsewhere(), end
        if end != "close":
            db.close()
    # SQLite's own lock held by another connection: BEGIN IMMEDIATE fails, lock released
    other = Raw(app.engine)
    other.conn.execute("BEGIN EXCLUSIVE")
    db = Raw(app.engine)
    with pytest.raises(Exception, match="locked"):
        db.begin_locked()
    assert free_elsewhere()
    other.rollback()
    other.close()
    db.close()


def test_threads_of_one_process_queue_and_reenter(tmp_path):
    lock = AppendLock(str(tmp_path / "x-append.lock"))
    lock.acquire(lambda: 1.0)
    lock.acquire(lambda: 1.0)  # the same thread again (a nested locked transaction)
    lock.release()
    import threading

    got: list[float] = []

    def other() -> None:
        t0 = time.monotonic()
        try:
            lock.acquire(lambda: 0.2)
        except Exception:  # noqa: BLE001 - what we want to see
            got.append(-(time.monotonic() - t0))
        else:
            got.append(time.monotonic() - t0)
            lock.release()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert got and got[0] < 0  # still held by this thread: the other gave up ...
    assert -got[0] >= 0.15  # ... after its wait
    lock.release()
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert got[1] >= 0  # released: the other thread got it


def test_several_processes_keep_one_gap_free_order_with_the_lock(lapp):
    """The same guarantee as test_audit_processes, on SQLite with the lock in play."""
    app = lapp
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.audit_child", app.settings.database_url,
             str(app.settings.home), "10", "4"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    acked: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        acked += [int(x) for x in out.split()]
    assert sorted(acked) == list(range(120))
    with app.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT idx FROM audit_entry ORDER BY idx"))]
    assert stored == list(range(120))
