"""Every kind of tampering, done directly in the database after dropping the triggers, is caught.

The attacker here has write access to the database (file or owner role) but not to the
signing key under IDRS_HOME. Verification runs with a small chunk size as well, so that
the chunked streaming path crosses chunk boundaries in these small logs.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from idrs.audit import log, service
from idrs.audit.checkpoint import Checkpoint, ensure_signing_key, load_signer
from idrs.audit.models import node_key
from idrs.context import App

from .audit_helpers import drop_triggers, entry, prepare, rebuild_nodes

N = 40


def build(app: App) -> None:
    # checkpoints exactly at 8, 25 and 40 (no tail checkpoint in between on a slow machine)
    app.settings = app.settings.model_copy(update={"checkpoint_max_unsigned_seconds": 3600})
    prepare(app)
    for i in range(N):
        log.append(app.engine, entry(app, i))
        if i + 1 in (8, 25):
            service.checkpoint_now(app)
    service.checkpoint_now(app)  # size 40


def run(app: App, sql: str, **params: object) -> None:
    with app.engine.begin() as conn:
        conn.execute(text(sql), params)


def forged_leaf(app: App, n: int) -> bytes:
    """A plausible fake: right format, right index, different content."""
    e = entry(app, n)
    e["outcome"] = "denied"
    e["index"] = n
    return json.dumps(e, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("chunk", [4, 4096])
def test_intact_log_verifies(app: App, chunk: int) -> None:
    build(app)
    result = service.verify(app, "os:test", chunk=chunk)
    assert result["ok"], result
    assert result["entries"] == N and result["checkpoints"] == 3
    assert result["audit_index"] == N  # the verification itself was recorded


def altered(app: App) -> int:
    run(app, "UPDATE audit_entry SET leaf_input = :v WHERE idx = 13", v=forged_leaf(app, 13))
    return 13


def altered_with_hashes(app: App) -> int:
    # a careful attacker also rewrites the stored leaf hash and every node above it
    leaf = forged_leaf(app, 13)
    run(
        app,
        "UPDATE audit_entry SET leaf_input = :v, leaf_hash = :h WHERE idx = 13",
        v=leaf,
        h=hashlib.sha256(b"\x00" + leaf).digest(),
    )
    return 13


def deleted_middle(app: App) -> int:
    run(app, "DELETE FROM audit_entry WHERE idx = 21")
    return 21


def deleted_tail(app: App) -> int:
    run(app, "DELETE FROM audit_entry WHERE idx >= 37")
    return 37


def inserted(app: App) -> int:
    # shift entries 30.. up by one and insert a fabricated entry at 30
    with app.engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT idx, leaf_input, leaf_hash FROM audit_entry WHERE idx >= 30 ORDER BY idx DESC"
            )
        ).all()
        for idx, li, lh in rows:
            conn.execute(text("DELETE FROM audit_entry WHERE idx = :i"), {"i": idx})
            conn.execute(
                text("INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (:i, :l, :h)"),
                {"i": idx + 1, "l": li, "h": lh},
            )
        leaf = forged_leaf(app, 30)
        conn.execute(
            text("INSERT INTO audit_entry (idx, leaf_input, leaf_hash) VALUES (30, :l, :h)"),
            {"l": leaf, "h": hashlib.sha256(b"\x00" + leaf).digest()},
        )
    return 30


def reordered(app: App) -> int:
    with app.engine.begin() as conn:
        a = conn.execute(text("SELECT leaf_input, leaf_hash FROM audit_entry WHERE idx = 5")).one()
        b = conn.execute(text("SELECT leaf_input, leaf_hash FROM audit_entry WHERE idx = 6")).one()
        conn.execute(
            text("UPDATE audit_entry SET leaf_input = :l, leaf_hash = :h WHERE idx = 5"),
            {"l": b[0], "h": b[1]},
        )
        conn.execute(
            text("UPDATE audit_entry SET leaf_input = :l, leaf_hash = :h WHERE idx = 6"),
            {"l": a[0], "h": a[1]},
        )
    return 5


def node_altered(app: App) -> int:
    run(app, "UPDATE audit_node SET hash = :h WHERE id = :k", h=b"\x00" * 32, k=node_key(2, 3))
    return 12


TAMPERS = [
    altered,
    altered_with_hashes,
    deleted_middle,
    deleted_tail,
    inserted,
    reordered,
    node_altered,
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_entry_tampering_is_caught_with_first_bad_index(app: App, tamper) -> None:  # noqa: ANN001
    build(app)
    drop_triggers(app)
    expected = tamper(app)
    for chunk in (4, 4096):
        result = service.verify(app, "os:test", chunk=chunk)
        assert not result["ok"]
        # altered_with_hashes: the leaf and its stored hash were rewritten consistently; the
        # leaf hashes kept with checkpoint #2 still name entry 13
        assert result["first_bad_index"] == expected, result
        assert result["first_problem"]


def test_forged_checkpoint_is_caught(app: App) -> None:
    build(app)
    drop_triggers(app)
    other = app.settings.home / "attacker"
    ensure_signing_key(other, name=app.settings.audit_origin)
    fake_root = hashlib.sha256(b"whatever").digest()
    note = load_signer(other).sign(Checkpoint(app.settings.audit_origin, 40, fake_root).text())
    run(
        app,
        "UPDATE audit_checkpoint SET note = :n, root_hash = :r WHERE id = 3",
        n=note,
        r=fake_root,
    )
    result = service.verify(app, "os:test")
    assert not result["ok"]
    assert "forged" in result["first_problem"] and result["first_bad_index"] == 40
    with pytest.raises(log.AuditIntegrityError):  # nothing is signed on top of a forged checkpoint
        service.checkpoint_now(app)


def test_rolled_back_checkpoint_and_log_are_caught(app: App) -> None:
    # the attacker removes the newest checkpoint and every entry and node it alone covered:
    # the database is self-consistent at size 25, but not with the checkpoint kept in IDRS_HOME
    build(app)
    drop_triggers(app)
    run(app, "DELETE FROM audit_checkpoint WHERE id = 3")
    run(app, "DELETE FROM audit_entry WHERE idx >= 25")
    with app.engine.begin() as conn:
        for (key,) in conn.execute(text("SELECT id FROM audit_node")).all():
            level, index = key >> 48, key & ((1 << 48) - 1)
            if (index + 1) << level > 25:
                conn.execute(text("DELETE FROM audit_node WHERE id = :k"), {"k": key})
    result = service.verify(app, "os:test")
    assert not result["ok"]
    assert result["first_bad_index"] == 25, result
    reasons = " ".join(p["reason"] for p in result["problems"])
    assert "rolled back" in reasons and "IDRS_HOME" in reasons


def test_rolled_back_checkpoint_order_is_caught(app: App) -> None:
    build(app)
    drop_triggers(app)
    with app.engine.begin() as conn:
        first = conn.execute(
            text("SELECT tree_size, root_hash, note FROM audit_checkpoint WHERE id = 1")
        ).one()
        conn.execute(
            text(
                "UPDATE audit_checkpoint SET tree_size = :s, root_hash = :r, note = :n WHERE id = 3"
            ),
            {"s": first[0], "r": first[1], "n": first[2]},
        )
    result = service.verify(app, "os:test")
    assert not result["ok"]
    assert any("rolled back" in p["reason"] for p in result["problems"]), result


def test_deleted_checkpoint_is_caught(app: App) -> None:
    build(app)
    drop_triggers(app)
    run(app, "DELETE FROM audit_checkpoint WHERE id = 2")
    result = service.verify(app, "os:test")
    assert not result["ok"]
    assert "missing" in result["first_problem"]


def test_signing_refuses_a_log_that_no_longer_extends_the_last_checkpoint(app: App) -> None:
    build(app)
    drop_triggers(app)
    altered_with_hashes(app)
    # rewrite the whole node cache consistently with the forged leaf: only the checkpoints still object
    rebuild_nodes(app)
    log.append(app.engine, entry(app, 100))
    with pytest.raises(log.AuditIntegrityError):
        service.checkpoint_now(app)
    result = service.verify(app, "os:test")
    # checkpoint #1 (size 8) still matches; the copies kept with #2 name the changed entry
    assert not result["ok"] and result["first_bad_index"] == 13, result
