"""idrs import on PostgreSQL writes with COPY in ONE transaction: same rows as SQLite's
inserts, and a bad line after batches already copied still leaves nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select

from idrs import migrate
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import ValidationFailed
from idrs.masterfile import models as m
from idrs.masterfile.importer import import_file
from idrs.masterfile.seed import export_jsonl
from tests.conftest import START, _drop_pg, _fresh_pg
from tests.integration.test_seed import plaintext_dump

pytestmark = pytest.mark.postgres

N = 2500  # more than two of the writer's batches (1000)
EXACT = {"taxpayer", "tax_return", "tax_module", "business"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keys") / "home"
    Keyring.create(home)
    return home


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("import") / "people.jsonl"
    export_jsonl(path, taxpayers=N, seed_value=5)
    return path


def _app(url: str, home: Path) -> App:
    return App(
        settings=Settings(database_url=url, home=home),
        engine=make_engine(url),
        keyring=Keyring.load(home),
        clock=FakeClock(START),
    )


@pytest.fixture
def pg(pg_template: str, keys: Path) -> Iterator[App]:
    name, url = _fresh_pg(pg_template)
    app = _app(url, keys)
    yield app
    app.engine.dispose()
    _drop_pg(name)


def _comparable(app: App) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rows in plaintext_dump(app).items():
        out[name] = rows if name in EXACT else sorted((r[1:] for r in rows), key=repr)
    return out


class _Spy:
    """COPY statements psycopg ran, and INSERT statements that went through SQLAlchemy."""

    def __init__(self, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copies: list[str] = []
        self.inserts: list[str] = []
        real = psycopg.Cursor.copy

        def copy(cur: Any, statement: Any, *a: Any, **k: Any) -> Any:
            self.copies.append(str(statement))
            return real(cur, statement, *a, **k)

        monkeypatch.setattr(psycopg.Cursor, "copy", copy)

        @event.listens_for(app.engine, "before_cursor_execute")
        def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO TAXPAYER"):
                self.inserts.append(statement)


def test_copy_import_stores_the_rows_sqlite_inserts(pg, jsonl, keys, tmp_path, monkeypatch):
    spy = _Spy(pg, monkeypatch)
    result = import_file(pg, jsonl, "os:tester")
    assert result.lines == N
    assert any(c.startswith("COPY taxpayer ") for c in spy.copies)
    assert any(c.startswith("COPY txn ") for c in spy.copies)
    assert spy.inserts == []
    url = f"sqlite:///{tmp_path / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    lite = _app(url, keys)
    assert import_file(lite, jsonl, "os:tester").stats == result.stats
    got, expected = _comparable(pg), _comparable(lite)
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in expected.items()}
    for table in expected:
        assert got[table] == expected[table], table


def test_bad_last_line_after_copied_batches_stores_nothing(pg, jsonl, tmp_path, monkeypatch):
    lines = jsonl.read_text().splitlines()
    bad = json.loads(lines[-1])
    bad["returns"][0]["agi"] = 1.001
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([*lines[:-1], json.dumps(bad)]) + "\n")
    spy = _Spy(pg, monkeypatch)
    with pytest.raises(ValidationFailed) as caught:
        import_file(pg, path, "os:tester")
    assert caught.value.problems == [f"line {N}: returns[0].agi: at most two decimals"]
    assert sum(c.startswith("COPY taxpayer ") for c in spy.copies) >= 2  # batches were copied
    with pg.engine.connect() as conn:
        for model in (m.Taxpayer, m.TaxReturn, m.Transaction, m.Business, m.TaxModule):
            assert conn.execute(select(func.count()).select_from(model)).scalar_one() == 0
