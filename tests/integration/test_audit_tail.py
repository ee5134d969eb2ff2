"""No unsigned tail, and naming the entry behind recomputed hashes.

An entry past the newest checkpoint is covered by no signature: an attacker with write access
to the database could delete it and nothing would notice. The tail signer signs a checkpoint
within IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS of any commit, idle or not, and at process exit;
``audit verify`` says how many entries are still past the newest checkpoint.

An attacker who changes an entry inside a signed range and recomputes its leaf hash and every
Merkle node above it leaves only the signed roots objecting; verification still names the
exact entry (the leaf hashes kept with each checkpoint, authenticated by its root).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from idrs.audit import log, service
from idrs.audit.models import node_key
from idrs.context import App
from idrs.errors import AccessDenied
from tests import ready

from .audit_helpers import drop_triggers, entry, prepare, rebuild_nodes

#: generous cap on waiting for the signer (the bound is 1 s; a loaded machine is slow)
WAIT_CAP = 120.0


def _latest_size(app: App) -> int:
    with app.engine.connect() as conn:
        row = conn.execute(
            text("SELECT tree_size FROM audit_checkpoint ORDER BY id DESC LIMIT 1")
        ).first()
    return 0 if row is None else int(row[0])


def _wait_for(cond: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + WAIT_CAP
    while not cond():
        if time.monotonic() > give_up:
            pytest.fail(f"not within {WAIT_CAP} s: {what}")
        time.sleep(0.05)


def _with_bound(app: App, seconds: float) -> App:
    app.settings = app.settings.model_copy(update={"checkpoint_max_unsigned_seconds": seconds})
    prepare(app)
    return app


def run(app: App, sql: str, **params: object) -> None:
    with app.engine.begin() as conn:
        conn.execute(text(sql), params)


# ---------------------------------------------------------------- the tail gets signed


def test_an_idle_log_signs_its_newest_entry_within_the_bound(app: App) -> None:
    prepare(app)  # the default bound (1 s)
    service.checkpoint_now(app)
    with pytest.raises(AccessDenied) as denied:  # a refused read, recorded through the service
        service.entries(app, None, 0, 1)
    idx = denied.value.audit_index
    assert idx is not None and _latest_size(app) <= idx
    # nothing else is appended: the server is idle, yet a checkpoint comes to cover the entry
    _wait_for(lambda: _latest_size(app) > idx, f"a checkpoint covering entry {idx}")
    assert service.verify(app, "os:test")["ok"]


def test_a_burst_then_idle_is_covered_in_full(app: App) -> None:
    prepare(app)
    for i in range(30):
        log.append(app.engine, entry(app, i))
    _wait_for(lambda: _latest_size(app) == 30, "a checkpoint covering all 30 entries")


def test_the_server_signs_its_tail_when_it_stops(app: App) -> None:
    from idrs.api import audit as audit_api
    from idrs.api.app import create_app

    _with_bound(app, 3600)  # the thread will not fire in this test: only shutdown signs
    web = create_app(app)
    examiner = SimpleNamespace(seid="EX001", active=True, role_set=frozenset({"examiner"}))
    web.dependency_overrides[audit_api._current_employee] = lambda: examiner
    with TestClient(web) as c:
        r = c.get("/api/v1/audit/entries", params={"start": 0, "end": 1})
        assert r.status_code == 403
        idx = r.json()["audit_index"]
        assert _latest_size(app) <= idx
    assert _latest_size(app) > idx  # signed on the way out


@pytest.mark.slow
def test_an_idle_idrs_serve_signs_within_the_bound(app: App) -> None:
    """The real server (``idrs serve``, its own process): one recorded request, then nothing."""
    import socket

    import httpx

    prepare(app)
    service.checkpoint_now(app)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "IDRS_DATABASE_URL": app.engine.url.render_as_string(hide_password=False),
        "IDRS_HOME": str(app.settings.home),
    }
    env.pop("IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS", None)  # the default bound
    proc = subprocess.Popen(
        [sys.executable, "-m", "idrs", "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        ready.until(lambda: ready.answering(f"{base}/api/v1/audit/checkpoint"), proc)
        _wait_for(lambda: _latest_size(app) == service.tree_size(app), "start-up entries signed")
        before = service.tree_size(app)
        r = httpx.post(
            f"{base}/api/v1/sessions",
            json={"seid": "ZZ999", "password": "not-the-password", "otp": "000000"},
            timeout=30,
        )
        assert r.status_code == 401, r.text
        _wait_for(lambda: service.tree_size(app) > before, "the refusal recorded")
        size = service.tree_size(app)
        # the server stays idle: a checkpoint still comes to cover the refusal
        _wait_for(lambda: _latest_size(app) >= size, f"a checkpoint covering {size} entries")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_one_shot_command_signs_its_own_entry_before_it_exits(app: App) -> None:
    prepare(app)
    service.checkpoint_now(app)
    env = {
        **os.environ,
        "IDRS_HOME": str(app.settings.home),
        "IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS": "3600",  # only the exit can sign it in time
    }
    env.pop("IDRS_DATABASE_URL", None)
    url = app.engine.url.render_as_string(hide_password=False)
    r = subprocess.run(
        [sys.executable, "-m", "idrs", "--db", url, "audit", "verify", "--json"],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["entries_past_checkpoint"] == 0
    assert _latest_size(app) == out["audit_index"] + 1  # its own record, signed at exit


# ---------------------------------------------------------------- verify reports the tail


def test_verify_reports_entries_past_the_newest_checkpoint(app: App, capsys) -> None:  # noqa: ANN001
    _with_bound(app, 3600)
    for i in range(3):
        log.append(app.engine, entry(app, i))
    service.checkpoint_now(app)
    for i in range(3, 8):
        log.append(app.engine, entry(app, i))
    result = service.verify(app, "os:test")
    assert result["ok"] and result["entries_past_checkpoint"] == 5, result

    from idrs.cli.audit import verify_cmd

    os.environ["IDRS_DATABASE_URL"] = app.engine.url.render_as_string(hide_password=False)
    os.environ["IDRS_HOME"] = str(app.settings.home)
    os.environ["IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS"] = "3600"
    from idrs.config import get_settings

    get_settings.cache_clear()
    try:
        verify_cmd(as_json=False)
        # the first verify's own record is past the checkpoint too
        assert "6 entries past the newest checkpoint" in capsys.readouterr().out
        verify_cmd(as_json=True)
        assert json.loads(capsys.readouterr().out)["entries_past_checkpoint"] == 7
    finally:
        log.flush_unsigned()  # the command's engine: sign now, while its database exists
        for k in ("IDRS_DATABASE_URL", "IDRS_HOME", "IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS"):
            os.environ.pop(k, None)
        get_settings.cache_clear()


def test_deleting_the_newest_entries_of_an_idle_log_is_caught(app: App) -> None:
    prepare(app)  # the default bound
    for i in range(12):
        log.append(app.engine, entry(app, i))
    _wait_for(lambda: _latest_size(app) == 12, "a checkpoint covering the newest entries")
    drop_triggers(app)
    # the attacker removes the newest entries and the Merkle nodes only they completed
    run(app, "DELETE FROM audit_entry WHERE idx >= 9")
    run(app, "DELETE FROM audit_node WHERE id = :k", k=node_key(2, 2))
    result = service.verify(app, "os:test")
    assert not result["ok"]
    assert result["first_bad_index"] == 9, result
    assert "missing" in result["first_problem"]


# ---------------------------------------------------------------- recomputed hashes: exact entry


def _build(app: App) -> None:
    _with_bound(app, 3600)  # checkpoints exactly at 8, 25 and 40
    for i in range(40):
        log.append(app.engine, entry(app, i))
        if i + 1 in (8, 25, 40):
            service.checkpoint_now(app)


def _forge(app: App, at: int, *, nodes: bool = True) -> None:
    """Change entry ``at`` and recompute its leaf hash and (``nodes``) every stored node."""
    e = entry(app, at)
    e["outcome"] = "denied"
    leaf = log.leaf_bytes(e, at)
    run(
        app,
        "UPDATE audit_entry SET leaf_input = :v, leaf_hash = :h WHERE idx = :i",
        v=leaf,
        h=hashlib.sha256(b"\x00" + leaf).digest(),
        i=at,
    )
    if not nodes:
        return
    rebuild_nodes(app)


@pytest.mark.parametrize("at", [0, 7, 8, 13, 24, 25, 39])
def test_recomputed_hashes_inside_a_signed_range_name_the_exact_entry(app: App, at: int) -> None:
    # ranges signed: 0..7 (#1), 8..24 (#2), 25..39 (#3): first and last of each, and inside
    _build(app)
    drop_triggers(app)
    _forge(app, at)
    for chunk in (4, 4096):
        result = service.verify(app, "os:test", chunk=chunk)
        assert not result["ok"]
        assert result["first_bad_index"] == at, result
        assert f"entry {at} no longer matches" in result["first_problem"], result


def test_with_the_copies_destroyed_the_stored_nodes_still_narrow_it(app: App) -> None:
    # the attacker also wipes the leaf hashes kept with the checkpoints but leaves the
    # stored nodes: bisecting them from the signed root narrows the change to entries 12..15
    _build(app)
    drop_triggers(app)
    _forge(app, 13, nodes=False)
    run(app, "UPDATE audit_checkpoint SET leaf_hashes = NULL")
    result = service.verify(app, "os:test")
    assert not result["ok"] and result["first_bad_index"] == 12, result


def test_with_copies_altered_to_match_verify_says_so(app: App) -> None:
    _build(app)
    drop_triggers(app)
    _forge(app, 13)
    with app.engine.begin() as conn:
        blob = bytes(
            conn.execute(text("SELECT leaf_hashes FROM audit_checkpoint WHERE id = 2")).scalar_one()
        )
        leaf = conn.execute(text("SELECT leaf_hash FROM audit_entry WHERE idx = 13")).scalar_one()
        k = 13 - 8
        blob = blob[: 32 * k] + bytes(leaf) + blob[32 * (k + 1) :]
        conn.execute(text("UPDATE audit_checkpoint SET leaf_hashes = :b WHERE id = 2"), {"b": blob})
    result = service.verify(app, "os:test")
    assert not result["ok"]
    reasons = " ".join(p["reason"] for p in result["problems"])
    assert "leaf hashes kept with the checkpoints" in reasons, result
    # the range is still named: the change lies after checkpoint #1 (size 8)
    assert result["first_bad_index"] == 8, result


def test_several_processes_leave_no_unsigned_tail_and_no_conflicting_checkpoint(
    app: App,
) -> None:
    # three processes, each with its own tail signer, append at once and exit: their
    # checkpoints form one increasing sequence, and the last covers every entry
    from .test_audit_processes import _child

    prepare(app)
    procs = [_child(app, 20, 2) for _ in range(3)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with app.engine.connect() as conn:
        ckpts = conn.execute(text("SELECT id, tree_size FROM audit_checkpoint ORDER BY id")).all()
    assert [c[0] for c in ckpts] == list(range(1, len(ckpts) + 1))
    sizes = [c[1] for c in ckpts]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[-1] == 120  # nothing left unsigned when the last process exited
    result = service.verify(app, "os:test")
    assert result["ok"] and result["entries_past_checkpoint"] == 0, result
