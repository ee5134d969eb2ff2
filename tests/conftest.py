"""Fixtures shared by every test: a fresh database on SQLite AND PostgreSQL, keys, a fake clock.

PostgreSQL: one migrated template database per test session; each test gets its own
database created from it (fast) and dropped afterwards.

:class:`Frozen`: a world that is expensive to build (a simulated log, a seeded master file)
built once per module and backend, then copied for each test that changes it (SQLite: the
file, through SQLite's backup API; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``; the home
directory with its keys: copied too). Each test still starts from the same state as if it had
built the world itself, and may change its copy as it likes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from idrs import migrate
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine

PG_ADMIN = os.environ.get("IDRS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday afternoon


def _pg_admin():
    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"idrs_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(f"{PG_BASE}/{name}")
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    _dropper.wait()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _fresh_pg(template: str) -> tuple[str, str]:
    name = f"idrs_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return name, f"{PG_BASE}/{name}"


def _drop_now(name: str) -> None:
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class _Dropper:
    """Drops the tests' PostgreSQL databases off the tests' path, several at a time.

    Every DROP DATABASE waits for a checkpoint of the whole cluster (PostgreSQL forces one),
    0.3-2 s each: dropped one by one in each test's teardown, they took minutes of the suite.
    Dropped together, concurrently, they share a checkpoint or two. A test's teardown only
    queues its database (a fresh uuid name: nothing reuses it); the queue is emptied at the
    end of the session (:func:`pg_template`'s teardown), which reports any drop that failed.
    """

    MAX_PARALLEL = 8

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._busy = False
        self._failed: list[str] = []
        self._thread: threading.Thread | None = None

    def drop(self, name: str) -> None:
        with self._cond:
            self._pending.append(name)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="drop-test-dbs", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending, self._busy = self._pending, [], True
            with ThreadPoolExecutor(min(self.MAX_PARALLEL, len(batch))) as pool:
                for name, fut in [(n, pool.submit(_drop_now, n)) for n in batch]:
                    if fut.exception() is not None:
                        self._failed.append(f"{name}: {fut.exception()}")
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait(self) -> None:
        """Return once every queued database is dropped; raise if a drop failed."""
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()
        failed, self._failed = self._failed, []
        if failed:
            raise RuntimeError("test databases not dropped: " + "; ".join(failed))


_dropper = _Dropper()


def _drop_pg(name: str) -> None:
    """Drop a test database (queued: see :class:`_Dropper`)."""
    _dropper.drop(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'idrs.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    template = request.getfixturevalue("pg_template")
    name, url = _fresh_pg(template)
    yield url
    _drop_pg(name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    Keyring.create(h)
    return h


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(db_url: str, home: Path, clock: FakeClock) -> Iterator[App]:
    """The application context on a fresh database, with a fake clock."""
    settings = Settings(database_url=db_url, home=home)
    engine = make_engine(db_url)
    yield App(settings=settings, engine=engine, keyring=Keyring.load(home), clock=clock)
    from idrs.audit import log

    log.forget(engine)  # no tail signature pending on a database about to be dropped
    engine.dispose()


class Frozen:
    """A built world (database and home) kept unchanged and copied for each test.

    ``Frozen.build(backend, root, request)`` yields an :class:`App` on an empty migrated
    database (a fresh home, a FakeClock at START) to build the world with; once the block
    ends the world is frozen: its pending tail checkpoint signed (as at a process's exit), its
    engine disposed, the clock's time kept. :meth:`copy` gives a test its own App on a copy,
    with a FakeClock at the time the building left it. :meth:`drop` removes the original.
    """

    def __init__(self, backend: str, root: Path, request: pytest.FixtureRequest) -> None:
        self.backend, self.root = backend, root
        self.home = root / "home"
        Keyring.create(self.home)
        if backend == "sqlite":
            self.name = str(root / "world.db")
            self.url = f"sqlite:///{self.name}"
            engine = make_engine(self.url)
            migrate.upgrade(engine)
            engine.dispose()
        else:
            self.name, self.url = _fresh_pg(request.getfixturevalue("pg_template"))
        self.now = START

    @classmethod
    @contextlib.contextmanager
    def build(cls, backend: str, root: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Frozen, App]]:
        frozen = cls(backend, root, request)
        a = App(settings=Settings(database_url=frozen.url, home=frozen.home),
                engine=make_engine(frozen.url), keyring=Keyring.load(frozen.home),
                clock=FakeClock(START))
        from idrs.audit import log

        try:
            yield frozen, a
            log.flush_unsigned()
            frozen.now = a.clock.now()
        except BaseException:
            log.forget(a.engine)
            a.engine.dispose()
            frozen.drop()
            raise
        log.forget(a.engine)
        a.engine.dispose()

    @contextlib.contextmanager
    def copy(self, tmp_path: Path) -> Iterator[App]:
        """A copy of the world for one test (dropped afterwards)."""
        home = tmp_path / "home"
        shutil.copytree(self.home, home)
        name = None
        if self.backend == "sqlite":
            path = tmp_path / "idrs.db"
            src, dst = sqlite3.connect(self.name), sqlite3.connect(path)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            url = f"sqlite:///{path}"
        else:
            name, url = _fresh_pg(self.name)
        a = App(settings=Settings(database_url=url, home=home), engine=make_engine(url),
                keyring=Keyring.load(home), clock=FakeClock(self.now))
        try:
            yield a
        finally:
            from idrs.audit import log

            log.forget(a.engine)
            a.engine.dispose()
            if name is not None:
                _drop_pg(name)

    def drop(self) -> None:
        if self.backend == "postgres":
            _drop_pg(self.name)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile``: the longest files first (tests/schedule.py)."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from tests import schedule

    return schedule.make_scheduler(config, log)
