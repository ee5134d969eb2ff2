"""Fixtures shared by every test: a fresh database on SQLite AND PostgreSQL, keys, a fake clock.

PostgreSQL: one migrated template database per test session; each test gets its own
database created from it (fast) and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_pg(template: str) -> tuple[str, str]:
    name = f"idrs_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return name, f"{PG_BASE}/{name}"


def _drop_pg(name: str) -> None:
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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
