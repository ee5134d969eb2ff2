"""Per-engine state is kept by the engine object, never by ``id(engine)``.

CPython hands a collected object's address (its ``id``) to the next object made there, so a
registry keyed by ``id(engine)`` could give a new engine (another database) the state of a
collected one: its adjustment thresholds, its writer lock, its checkpoint policy or WAL
checkpointer, its audit appender. The attack is simulated by making every engine get the
same id in the module under test, and by collecting an engine and checking that its entry
went with it.
"""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from sqlalchemy import Engine, create_engine

from idrs import db
from idrs.adjustments import calls as adjust
from idrs.adjustments import rules
from idrs.audit import log
from idrs.config import Settings

STRICT = rules.Thresholds(abatement_cents=1, increase_cents=1)


def _same_id_for_every_object(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    """What a new engine at a collected engine's address looks like to ``id`` in ``module``."""
    monkeypatch.setattr(module, "id", lambda _obj: 4242, raising=False)


def _app(engine: Engine) -> SimpleNamespace:
    return SimpleNamespace(engine=engine, settings=Settings())


def _policy_settings(home: Path) -> SimpleNamespace:
    return SimpleNamespace(home=home, audit_origin="test", checkpoint_every_entries=10,
                           checkpoint_every_seconds=60.0, checkpoint_max_unsigned_seconds=1.0)


def test_a_new_engine_at_the_same_id_gets_no_adjustment_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _same_id_for_every_object(monkeypatch, adjust)
    old, new = create_engine("sqlite://"), create_engine("sqlite://")
    adjust.configure(_app(old), STRICT)  # type: ignore[arg-type]
    lock = adjust.sqlite_lock(_app(old))  # type: ignore[arg-type]
    assert adjust.thresholds_for(_app(old)) == STRICT  # type: ignore[arg-type]
    # the other database keeps its own settings' thresholds and its own writer lock
    assert adjust.thresholds_for(_app(new)) == rules.Thresholds.from_settings(Settings())  # type: ignore[arg-type]
    assert adjust.sqlite_lock(_app(new)) is not lock  # type: ignore[arg-type]


def test_a_new_engine_at_the_same_id_gets_no_audit_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _same_id_for_every_object(monkeypatch, log)
    old, new = create_engine("sqlite://"), create_engine("sqlite://")
    log.configure(old, _policy_settings(tmp_path))
    ap = log.appender_for(old)
    try:
        assert log._policy(old) is not None
        assert log._policy(new) is None  # not the process's database: no policy, no signing
        assert log.appender_for(new) is not ap
        assert log.appender_for(new).engine is new
    finally:
        log.forget(old)
        log.forget(new)


def test_a_new_engine_at_the_same_id_gets_its_own_wal_checkpointer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _same_id_for_every_object(monkeypatch, db)
    old = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    new = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    db._start_checkpointer(old)
    db._start_checkpointer(new)
    assert db._checkpointers[old].path.endswith("a.db")
    assert db._checkpointers[new].path.endswith("b.db")


def _register(registry: str, engine: Engine, home: Path) -> None:
    if registry == "thresholds":
        adjust.configure(_app(engine), STRICT)  # type: ignore[arg-type]
    elif registry == "lock":
        adjust.sqlite_lock(_app(engine))  # type: ignore[arg-type]
    elif registry == "policy":
        log.configure(engine, _policy_settings(home))
    else:
        db._start_checkpointer(engine)


@pytest.mark.parametrize("registry", ["thresholds", "lock", "policy", "checkpointer"])
def test_a_collected_engine_leaves_nothing_behind(registry: str, tmp_path: Path) -> None:
    """The registries are weak: an engine's entry goes with it (none left for a new engine
    at its address to find, and none keeping a dead database's state alive)."""
    table: dict[str, object] = {
        "thresholds": adjust._configured, "lock": adjust._LOCKS, "policy": log._policies,
        "checkpointer": db._checkpointers,
    }
    gc.collect()  # engines other tests left for the collector go first
    before = len(table[registry])  # type: ignore[arg-type]
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    _register(registry, engine, tmp_path)
    assert len(table[registry]) == before + 1  # type: ignore[arg-type]
    gone = weakref.ref(engine)
    del engine
    for _ in range(50):  # the checkpointer's thread may hold it for a moment (its liveness check)
        gc.collect()
        if gone() is None:
            break
        time.sleep(0.02)
    assert gone() is None
    assert len(table[registry]) == before  # type: ignore[arg-type]
