"""idrs import --workers N on PostgreSQL (issue 18.1): worker processes validate the lines
and build COPY-ready rows; the writing process COPYs them in ONE transaction.

- the data stored equal what one process stores (ids aside: a worker takes its block's ids
  from the sequences, so they are unique but not in file order across blocks), on a first
  import and on a re-import of the same file (blocks of known TINs go the serial way);
- a bad line in the middle, after blocks were already COPYed, leaves the database exactly as
  it was: the same rows, and the log grown by the one failure entry (counts only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from idrs.audit.models import AuditEntry
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import ValidationFailed
from idrs.masterfile import importer
from idrs.masterfile.importer import import_file
from idrs.masterfile.seed import export_jsonl
from idrs.masterfile.store import MasterFileWriter, aad
from idrs.people import service as people
from tests.conftest import START, _drop_pg, _fresh_pg

pytestmark = pytest.mark.postgres

N = 1500
BLOCK = 200  # several blocks a worker, several in flight
TABLES = (
    "taxpayer",
    "taxpayer_marker",
    "address_record",
    "business",
    "tax_return",
    "dependent",
    "w2",
    "k1",
    "schedule_c",
    "tax_module",
    "txn",
    "information_return",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keys") / "home"
    Keyring.create(home)
    return home


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("import") / "people.jsonl"
    export_jsonl(path, taxpayers=N, seed_value=7)
    return path


@pytest.fixture
def pgs(pg_template: str, keys: Path) -> Iterator[list[App]]:
    """Two fresh PostgreSQL databases with the same keys."""
    made: list[tuple[str, App]] = []
    for _ in range(2):
        name, url = _fresh_pg(pg_template)
        app = App(
            settings=Settings(database_url=url, home=keys),
            engine=make_engine(url),
            keyring=Keyring.load(keys),
            clock=FakeClock(START),
        )
        made.append((name, app))
    yield [a for _, a in made]
    from idrs.audit import log

    for name, app in made:
        log.forget(app.engine)
        app.engine.dispose()
        _drop_pg(name)


def _canonical(app: App) -> dict[str, list[str]]:
    """Every master-file row, decrypted, its own id dropped and every parent id replaced by
    the parent's natural key (TIN index, TIN index and year): comparable across id orders."""
    ring = app.keyring
    out: dict[str, list[str]] = {}
    with app.engine.connect() as conn:
        tins = {i: bytes(t) for i, t in conn.execute(text("SELECT id, tin_index FROM taxpayer"))}
        rets = {
            i: (tins[t], y)
            for i, t, y in conn.execute(text("SELECT id, taxpayer_id, tax_year FROM tax_return"))
        }
        mods = {
            i: (tins[t], y)
            for i, t, y in conn.execute(text("SELECT id, taxpayer_id, tax_year FROM tax_module"))
        }
        parents = {"taxpayer_id": tins, "return_id": rets, "module_id": mods}
        for table in TABLES:
            res = conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - our names
            cols = list(res.keys())
            rows = []
            for row in res:
                values: list[Any] = []
                for col, v in zip(cols, row, strict=True):
                    if col == "id":
                        continue
                    if col in parents and v is not None:
                        v = parents[col][v]
                    elif col.endswith("_enc") and v is not None:
                        v = ring.decrypt(bytes(v), aad(table, col))
                    elif isinstance(v, memoryview):
                        v = bytes(v)
                    values.append(v)
                rows.append(repr(tuple(values)))
            out[table] = sorted(rows)
    return out


def _conflicts(app: App) -> list[tuple[Any, ...]]:
    """The conflict index (its evidence names return ids, which differ: left out)."""
    with app.engine.connect() as conn:
        return sorted(
            (e, bytes(t), c)
            for e, t, c in conn.execute(
                text("SELECT employee_id, tin_index, code FROM access_conflict")
            )
        )


def _counts(app: App) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
            for t in (*TABLES, "access_conflict")
        }


def _entries(app: App) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        leaves = conn.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx)).scalars()
        return [json.loads(leaf) for leaf in leaves]


def test_workers_store_what_one_process_stores(pgs, jsonl, monkeypatch):
    one, many = pgs
    monkeypatch.setattr(importer, "BLOCK_LINES", BLOCK)
    copies: list[str] = []
    real = MasterFileWriter.copy_encoded

    def spy(self: MasterFileWriter, table: str, *a: Any) -> None:
        copies.append(table)
        real(self, table, *a)

    monkeypatch.setattr(MasterFileWriter, "copy_encoded", spy)
    tins = [json.loads(line)["tin"] for line in jsonl.read_text().splitlines()[9::700]]
    for app in pgs:  # employees among the people imported: conflicts derived at import
        for k, tin in enumerate(tins):
            people.create_employee(app, seid=f"EM{k:03d}", name=f"E{k}", tin=tin,
                                   roles="examiner", credentials=False)
    serial = import_file(one, jsonl, "os:tester", workers=1)
    assert copies == []  # one process: the serial writer, row by row
    parallel = import_file(many, jsonl, "os:tester", workers=2)
    assert copies.count("taxpayer") == -(-N // BLOCK)  # one COPY a table a block
    assert parallel.stats == serial.stats and parallel.lines == serial.lines == N
    first = _canonical(one)
    assert {t: len(r) for t, r in _canonical(many).items()} == {t: len(r) for t, r in first.items()}
    assert _canonical(many) == first
    assert _conflicts(many) == _conflicts(one) and _conflicts(one)
    # the same audit entry: counts only
    assert _entries(many)[-1]["detail"] == _entries(one)[-1]["detail"]
    assert _entries(many)[-1]["type"] == "data:import:run"

    # a re-import of the same file: every block names stored TINs (the serial way)
    copies.clear()
    again_one = import_file(one, jsonl, "os:tester", workers=1)
    again_many = import_file(many, jsonl, "os:tester", workers=2)
    assert copies == []
    assert again_many.stats == again_one.stats
    assert again_many.stats.taxpayers_updated == N
    assert _canonical(many) == _canonical(one)
    assert _conflicts(many) == _conflicts(one)


def test_bad_line_in_the_middle_leaves_the_database_as_it_was(pgs, jsonl, tmp_path, monkeypatch):
    app = pgs[0]
    monkeypatch.setattr(importer, "BLOCK_LINES", BLOCK)
    lines = jsonl.read_text().splitlines()
    import_file(app, _write(tmp_path / "head.jsonl", lines[:300]), "os:tester", workers=2)
    before, log_before = _counts(app), _entries(app)
    assert before["taxpayer"] > 0

    middle = 2 * N // 3  # after blocks already COPYed (and blocks of stored TINs rewritten)
    bad = json.loads(lines[middle - 1])
    bad["returns"][0]["agi"] = 1.001
    lines[middle - 1] = json.dumps(bad)
    copied: list[str] = []
    real = MasterFileWriter.copy_encoded

    def spy(self: MasterFileWriter, table: str, *a: Any) -> None:
        copied.append(table)
        real(self, table, *a)

    monkeypatch.setattr(MasterFileWriter, "copy_encoded", spy)
    with pytest.raises(ValidationFailed) as caught:
        import_file(app, _write(tmp_path / "bad.jsonl", lines), "os:tester", workers=2)
    assert caught.value.problems == [f"line {middle}: returns[0].agi: at most two decimals"]
    assert copied.count("taxpayer") >= 2  # blocks before the bad line were written
    assert _counts(app) == before
    log = _entries(app)
    assert log[: len(log_before)] == log_before and len(log) == len(log_before) + 1
    refused = log[-1]
    assert (refused["type"], refused["outcome"]) == ("data:import:run", "failure")
    assert refused["detail"] == {"lines": N, "bad_lines": 1}
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == len(log)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_default_workers_only_for_large_files_on_postgresql(pgs, jsonl, tmp_path, monkeypatch):
    from idrs.masterfile.importer import default_workers

    app = pgs[0]
    assert default_workers(app, jsonl) == 1  # a small file: one process
    assert default_workers(app, tmp_path / "missing.jsonl") == 1
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    assert 2 <= default_workers(app, jsonl) <= 4
    lite = App(
        settings=Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", home=app.settings.home),
        engine=make_engine(f"sqlite:///{tmp_path / 'x.db'}"),
        keyring=app.keyring,
    )
    assert default_workers(lite, jsonl) == 1


def test_a_failing_worker_stores_nothing_and_says_so(pgs, jsonl, tmp_path, monkeypatch):
    """A worker that cannot start (here: no keyring in IDRS_HOME) fails the whole import."""
    from idrs.errors import IdrsError

    app = pgs[0]
    monkeypatch.setattr(importer, "BLOCK_LINES", BLOCK)
    empty = tmp_path / "no-keys"
    empty.mkdir()
    broken = App(
        settings=Settings(database_url=app.settings.database_url, home=empty),
        engine=app.engine,
        keyring=app.keyring,
        clock=app.clock,
    )
    before = _counts(app)
    with pytest.raises(IdrsError, match=r"import worker failed .*nothing was stored"):
        import_file(broken, jsonl, "os:tester", workers=2)
    assert _counts(app) == before
