"""``idrs audit verify --workers N``: the log hashed in worker processes gives the serial report.

Small chunks (4 entries) and a zero threshold make these small logs take the parallel path
with several blocks per worker, so block and chunk boundaries are crossed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from idrs.audit import log, parallel, service
from idrs.audit.checkpoint import load_signer, read_witness
from idrs.audit.models import node_key
from idrs.audit.verify import verify_log
from idrs.context import App

from .audit_helpers import drop_triggers, entry, prepare
from .test_audit_export import cli_env  # noqa: F401 - fixture
from .test_audit_tamper import TAMPERS, build, run


def _fill(app: App, n: int, checkpoints: tuple[int, ...] = ()) -> None:
    prepare(app)
    for i in range(n):
        log.append(app.engine, entry(app, i))
        if i + 1 in checkpoints:
            service.checkpoint_now(app)
    if n:
        service.checkpoint_now(app)


def _reports(app: App, workers: int = 2, chunk: int = 4) -> tuple[dict[str, Any], dict[str, Any]]:
    verifier = load_signer(app.settings.home).verifier()
    witness = read_witness(app.settings.home)
    serial = verify_log(app.engine, verifier, witness, chunk).as_dict()
    par = parallel.verify_log_parallel(
        app.engine, verifier, witness, workers=workers, chunk=chunk, min_entries=0
    ).as_dict()
    serial.pop("seconds")
    par.pop("seconds")
    return serial, par


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the serial passes the parallel verifier falls back to."""
    calls: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return verify_log(*args, **kwargs)

    monkeypatch.setattr(parallel, "verify_log", spy)
    return calls


@pytest.mark.parametrize("size", [0, 1, 2, 5, 8, 13, 37])
def test_parallel_equals_serial_on_intact_logs(app: App, size: int, fallbacks: list[int]) -> None:
    _fill(app, size, checkpoints=(1, 3, 4, 9, 16, 33))
    serial, par = _reports(app)
    assert par == serial and par["ok"], par
    assert par["entries"] == size
    # the parallel path decided it (no serial pass), except for the empty log
    assert fallbacks == ([1] if size == 0 else [])


@pytest.mark.parametrize("chunk", [2, 4, 8, 64])
def test_parallel_equals_serial_for_every_chunk_size(
    app: App, chunk: int, fallbacks: list[int]
) -> None:
    _fill(app, 45, checkpoints=(7, 16, 31, 32))
    serial, par = _reports(app, workers=3, chunk=chunk)
    assert par == serial and par["ok"] and par["entries"] == 45
    assert fallbacks == []


def high_node_altered(app: App) -> int:
    # a node above the blocks, checked by the parent: level 4 covers entries 16..31
    run(app, "UPDATE audit_node SET hash = :h WHERE id = :k", h=b"\x01" * 32, k=node_key(4, 1))
    return 16


def block_node_altered(app: App) -> int:
    # a node a worker folds from chunk roots: level 3 covers entries 24..31
    run(app, "UPDATE audit_node SET hash = :h WHERE id = :k", h=b"\x02" * 32, k=node_key(3, 3))
    return 24


def checkpoint_root_swapped(app: App) -> int:
    # a checkpoint re-signed by no one: the stored root of #2 replaced by #1's (signature fails)
    with app.engine.begin() as conn:
        root = conn.execute(text("SELECT root_hash FROM audit_checkpoint WHERE id = 1")).scalar()
        conn.execute(text("UPDATE audit_checkpoint SET root_hash = :r WHERE id = 2"), {"r": root})
    return 8


@pytest.mark.parametrize(
    "tamper",
    [*TAMPERS, high_node_altered, block_node_altered, checkpoint_root_swapped],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("chunk", [2, 4])
def test_tampering_gives_the_serial_report(
    app: App, tamper: Any, chunk: int, fallbacks: list[int]
) -> None:
    build(app)
    drop_triggers(app)
    tamper(app)
    serial, par = _reports(app, chunk=chunk)
    assert not par["ok"]
    assert par == serial  # the same first bad index, problems and messages
    assert fallbacks == [1]  # the parallel pass found it, then the serial pass named it


def test_service_reports_rates_and_the_hashlib_ratio(app: App) -> None:
    _fill(app, 20)
    out = service.verify(app, "os:test", workers=2, chunk=4, min_parallel=0, compare_hashlib=True)
    assert out["ok"] and out["workers"] == 2 and out["entries"] == 20
    assert out["entries_per_second"] > 0 and out["hashlib_entries_per_second"] > 0
    assert out["ratio_to_hashlib"] > 0


def test_cli_verify_with_workers(app: App, cli_env: dict[str, str]) -> None:  # noqa: F811
    from idrs.cli import app as cli

    _fill(app, 7)
    runner = CliRunner()
    res = runner.invoke(
        cli, ["audit", "verify", "--workers", "2", "--compare-hashlib"], env=cli_env
    )
    assert res.exit_code == 0, res.output
    assert "intact: 7 entries" in res.output and "entries/s with 2 worker(s)" in res.output
    assert "ratio" in res.output
    drop_triggers(app)
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE idx = 3"))
    res = runner.invoke(cli, ["audit", "verify", "--workers", "2", "--json"], env=cli_env)
    assert res.exit_code == 1
    assert json.loads(res.stdout)["first_bad_index"] == 3
    res = runner.invoke(cli, ["audit", "verify", "--workers", "0"], env=cli_env)
    assert res.exit_code == 2 and "--workers" in res.output


@pytest.mark.parametrize("at", [0, 13, 39])
def test_recomputed_hashes_are_caught_by_the_signed_roots_alone(
    app: App, at: int, fallbacks: list[int]
) -> None:
    # entry, leaf hash and every stored node rewritten consistently: only the checkpoint roots
    # (folded by the parent from the workers' subtree roots) object; the serial pass then
    # names the exact entry from the leaf hashes kept with the checkpoints
    from .test_audit_tail import _build, _forge

    _build(app)
    drop_triggers(app)
    _forge(app, at)
    serial, par = _reports(app)
    assert par == serial and not par["ok"]
    assert par["first_bad_index"] == at and f"entry {at} no longer matches" in par["first_problem"]
    assert fallbacks == [1]


def test_a_failing_worker_means_the_serial_pass_decides(
    app: App, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, fallbacks: list[int]
) -> None:
    # workers that cannot open the database (here: a path that does not exist) decide nothing
    _fill(app, 13)
    monkeypatch.setattr(parallel, "_url", lambda engine: f"sqlite:///{tmp_path}/missing/x.db")
    serial, par = _reports(app)
    assert par == serial and par["ok"]
    assert fallbacks == [1]
