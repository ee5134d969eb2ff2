"""idrs seed --workers N on PostgreSQL: the same rows as the serial load, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import IdrsError
from idrs.masterfile import models as m
from idrs.masterfile.seed import Generator, SeedPlan, generate, make_pools, seed
from idrs.masterfile.seed.parallel import KEYED
from idrs.masterfile.store import MasterFileWriter
from tests.conftest import START, _drop_pg, _fresh_pg
from tests.integration.test_seed import plaintext_dump

pytestmark = pytest.mark.postgres

N = 3000
SEED = 42
EMPLOYEES = 6
#: tables whose ids the seed assigns itself (must match too); the others' come from defaults
EXACT = {*KEYED, "business", "employee"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keys") / "home"
    Keyring.create(home)
    return home


def _app(url: str, home: Path) -> App:
    return App(
        settings=Settings(database_url=url, home=home),
        engine=make_engine(url),
        keyring=Keyring.load(home),
        clock=FakeClock(START),
    )


def _comparable(app: App) -> dict[str, Any]:
    """The decrypted rows; where the database numbers rows itself, without that id, sorted."""
    out: dict[str, Any] = {}
    for name, rows in plaintext_dump(app).items():
        out[name] = rows if name in EXACT else sorted((r[1:] for r in rows), key=repr)
    return out


@pytest.fixture(scope="module")
def databases(pg_template: str, keys: Path) -> Iterator[Any]:
    made: list[tuple[str, App]] = []

    def fresh() -> App:
        name, url = _fresh_pg(pg_template)
        app = _app(url, keys)
        made.append((name, app))
        return app

    yield fresh
    for name, app in made:
        app.engine.dispose()
        _drop_pg(name)


@pytest.fixture(scope="module")
def serial(databases: Any) -> tuple[dict[str, Any], Any]:
    app = databases()
    result = seed(app, taxpayers=N, employees=EMPLOYEES, seed=SEED, workers=1)
    return _comparable(app), result


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_seed_writes_the_serial_rows(databases, serial, workers, monkeypatch):
    expected, first = serial
    app = databases()

    def no_serial(*_: Any) -> None:
        raise AssertionError("the serial load ran")

    monkeypatch.setattr("idrs.masterfile.seed.load_population", no_serial)
    done: list[int] = []
    result = seed(
        app, taxpayers=N, employees=EMPLOYEES, seed=SEED, workers=workers, progress=done.append
    )
    got = _comparable(app)
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in expected.items()}
    for table in expected:
        assert got[table] == expected[table], table
    assert result.stats == first.stats
    assert [e["seid"] for e in result.employees] == [e["seid"] for e in first.employees]
    assert sum(done) == N
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Taxpayer)).scalar_one() == N


def test_a_failing_worker_leaves_nothing_written(databases):
    app = databases()
    # a taxpayer of the LAST block is already there: that worker refuses, the first one
    # (which may well have finished) must roll back too
    gen = Generator(SeedPlan(SEED, N, EMPLOYEES), make_pools(SEED))
    person = list(generate(gen))[N - 10]
    with app.engine.connect() as conn, conn.begin():
        writer = MasterFileWriter(app.keyring, conn, now=START, source="seed", actor="t")
        writer.add(person)  # type: ignore[arg-type]
        writer.flush()
    with app.engine.connect() as conn:
        businesses = conn.execute(select(func.count()).select_from(m.Business)).scalar_one()
    with pytest.raises(IdrsError) as caught:
        seed(app, taxpayers=N, employees=EMPLOYEES, seed=SEED, workers=2)
    message = str(caught.value)
    assert "seed worker 1 failed" in message and "already exist" in message
    assert "nothing written" in message
    assert person.tin not in message
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Taxpayer)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(m.Business)).scalar_one() == businesses
        assert conn.execute(select(func.count()).select_from(m.TaxReturn)).scalar_one() == len(
            person.returns
        )


def test_workers_need_postgresql(tmp_path, keys):
    from idrs import migrate

    url = f"sqlite:///{tmp_path / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = _app(url, keys)
    with pytest.raises(IdrsError, match="needs PostgreSQL"):
        seed(app, taxpayers=100, employees=0, seed=SEED, workers=2)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Taxpayer)).scalar_one() == 0


def test_default_is_serial_on_sqlite_and_under_four_cores(databases, tmp_path, keys, monkeypatch):
    from idrs.masterfile.seed import parallel

    pg = databases()
    url = f"sqlite:///{tmp_path / 'lite.db'}"
    lite = _app(url, keys)
    for cores, on_pg in ((1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 8)):
        monkeypatch.setattr(parallel.os, "cpu_count", lambda c=cores: c)
        assert parallel.default_workers(pg) == on_pg
        assert parallel.default_workers(lite) == 1
