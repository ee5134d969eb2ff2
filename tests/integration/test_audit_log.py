"""The audit log on SQLite and PostgreSQL: appends, order, proofs, checkpoints, bad input."""

from __future__ import annotations

import base64
import threading
import time

import pytest
from sqlalchemy import text

from idrs.audit import log, merkle, service
from idrs.audit.checkpoint import Checkpoint, ensure_signing_key, load_signer, open_checkpoint
from idrs.audit.events import EventType, canonical, make_event
from idrs.context import App
from idrs.errors import NotFound

from .audit_helpers import all_leaves, entry, prepare


def test_append_returns_gap_free_indexes_and_stores_canonical_leaf(app: App) -> None:
    prepare(app)
    idx = [log.append(app.engine, entry(app, i)) for i in range(5)]
    assert idx == [0, 1, 2, 3, 4]
    leaves = all_leaves(app)
    assert leaves[3] == canonical({**entry(app, 3), "index": 3}) == log.leaf_bytes(entry(app, 3), 3)
    assert b" " not in leaves[3] and leaves[3].startswith(b'{"actor"')
    assert b"900-00-0001" not in b"".join(leaves) and b"900000001" not in b"".join(leaves)


def test_proofs_verify_against_signed_checkpoints(app: App) -> None:
    prepare(app)
    verifier = load_signer(app.settings.home).verifier()
    checkpoints: list[Checkpoint] = []
    for n in range(37):
        log.append(app.engine, entry(app, n))
        if n in (0, 5, 16, 36):
            checkpoints.append(open_checkpoint(service.checkpoint_now(app), verifier))
    leaves = all_leaves(app)
    assert [c.size for c in checkpoints] == [1, 6, 17, 37]
    for c in checkpoints:
        assert c.root == merkle.root_of(leaves[: c.size])
        for i in range(c.size):
            p = service.inclusion_proof(app, i, c.size)
            assert p["index"] == i and p["tree_size"] == c.size
            merkle.verify_inclusion(
                i,
                c.size,
                merkle.leaf_hash(leaves[i]),
                [bytes.fromhex(h) for h in p["hashes"]],
                c.root,
            )
    for a in checkpoints:
        for b in checkpoints:
            if a.size <= b.size:
                p = service.consistency_proof(app, a.size, b.size)
                merkle.verify_consistency(
                    a.size, b.size, [bytes.fromhex(h) for h in p["hashes"]], a.root, b.root
                )
    latest = service.latest_checkpoint(app)
    assert open_checkpoint(latest, verifier).size == 37


def test_bad_proof_requests_are_clear_4xx_and_change_nothing(app: App) -> None:
    prepare(app)
    for i in range(4):
        log.append(app.engine, entry(app, i))
    cases = [
        (lambda: service.inclusion_proof(app, 0, 5), 404),
        (lambda: service.inclusion_proof(app, 4, 4), 404),
        (lambda: service.inclusion_proof(app, -1, 4), 400),
        (lambda: service.consistency_proof(app, 3, 2), 422),
        (lambda: service.consistency_proof(app, 1, 9), 404),
        (lambda: service.consistency_proof(app, -1, 2), 400),
    ]
    for call, status in cases:
        with pytest.raises(Exception) as err:
            call()
        assert getattr(err.value, "status_code", None) == status, err.value
    assert service.tree_size(app) == 4


def test_no_checkpoint_yet_is_404(app: App) -> None:
    prepare(app)
    with pytest.raises(NotFound):
        service.latest_checkpoint(app)


def test_concurrent_threads_share_one_gap_free_order(app: App) -> None:
    prepare(app)
    got: list[int] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(40):
            idx = log.append(app.engine, entry(app, w * 1000 + i))
            with lock:
                got.append(idx)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(320))
    leaves = all_leaves(app)
    assert sorted(int(__import__("json").loads(x)["actor"][1:]) for x in leaves) == sorted(
        w * 1000 + i for w in range(8) for i in range(40)
    )
    assert service.verify(app, "os:test")["ok"]


def test_automatic_checkpoints_every_n_entries(app: App) -> None:
    settings = app.settings.model_copy(
        update={
            "checkpoint_every_entries": 10,
            "checkpoint_every_seconds": 3600,
            "checkpoint_max_unsigned_seconds": 3600,
        }
    )
    app = App(settings=settings, engine=app.engine, keyring=app.keyring, clock=app.clock)
    prepare(app)
    for i in range(25):
        log.append(app.engine, entry(app, i))
    with app.engine.connect() as conn:
        sizes = [
            r[0] for r in conn.execute(text("SELECT tree_size FROM audit_checkpoint ORDER BY id"))
        ]
    assert sizes == [10, 20]
    assert service.verify(app, "os:test")["ok"]


def test_automatic_checkpoint_after_t_seconds(app: App) -> None:
    settings = app.settings.model_copy(
        update={
            "checkpoint_every_entries": 1000,
            "checkpoint_every_seconds": 1,
            "checkpoint_max_unsigned_seconds": 3600,
        }
    )
    app = App(settings=settings, engine=app.engine, keyring=app.keyring, clock=app.clock)
    prepare(app)
    log.append(app.engine, entry(app, 0))
    log.append(app.engine, entry(app, 1))
    assert service.tree_size(app) == 2
    with pytest.raises(NotFound):
        service.latest_checkpoint(app)  # neither N entries nor T seconds yet
    time.sleep(1.1)
    log.append(app.engine, entry(app, 2))
    verifier = load_signer(app.settings.home).verifier()
    assert open_checkpoint(service.latest_checkpoint(app), verifier).size == 3


def test_append_failure_raises_audit_unavailable(app: App) -> None:
    prepare(app)
    with app.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_node"))
    for i in range(3):
        log.append(app.engine, entry(app, i))
    with pytest.raises(log.AuditUnavailable):
        # the fourth entry completes a stored (level-2) node, which needs the dropped table
        log.append(app.engine, entry(app, 3))
    assert service.tree_size(app) == 3  # nothing of the failed batch was stored


def test_triggers_refuse_update_and_delete(app: App) -> None:
    prepare(app)
    for i in range(4):
        log.append(app.engine, entry(app, i))
    service.checkpoint_now(app)
    for sql in (
        "UPDATE audit_entry SET leaf_input = leaf_input WHERE idx = 0",
        "DELETE FROM audit_entry WHERE idx = 1",
        "DELETE FROM audit_node",
        "UPDATE audit_checkpoint SET tree_size = 1",
        "DELETE FROM audit_checkpoint",
        "UPDATE audit_node SET hash = hash",
    ):
        with pytest.raises(Exception, match="append-only"), app.engine.begin() as conn:
            conn.execute(text(sql))
    assert service.tree_size(app) == 4


def test_entries_for_auditor_only_and_recorded(app: App) -> None:
    prepare(app)
    for i in range(6):
        log.append(app.engine, entry(app, i))

    class Emp:
        def __init__(self, roles: str) -> None:
            self.seid = "AB123"
            self.active = True
            self.role_set = frozenset(roles.split(","))

    from idrs.errors import AccessDenied

    with pytest.raises(AccessDenied) as denied:
        service.entries(app, Emp("examiner"), 0, 3)
    assert denied.value.audit_index == 6
    out = service.entries(app, Emp("auditor"), 0, 3)
    assert [e["index"] for e in out["entries"]] == [0, 1, 2]
    assert base64.b64decode(out["entries"][1]["leaf_input"]) == log.leaf_bytes(entry(app, 1), 1)
    leaves = all_leaves(app)
    assert len(leaves) == 8  # the refusal and the read were both recorded
    assert b'"outcome":"denied"' in leaves[6] and EventType.AUDIT_ENTRIES_READ.encode() in leaves[7]
    with pytest.raises(NotFound):
        service.entries(app, Emp("auditor"), 0, 99)


def test_signing_key_never_in_database(app: App) -> None:
    prepare(app)
    log.append(app.engine, entry(app, 0))
    service.checkpoint_now(app)
    key_line = (app.settings.home / "audit-signing.key").read_text().strip()
    seed_b64 = key_line.split("+", 4)[4]
    with app.engine.connect() as conn:
        for table in ("audit_entry", "audit_node", "audit_checkpoint"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert seed_b64.encode() not in raw
                    assert base64.b64decode(seed_b64)[1:] not in raw


def test_make_event_fields(app: App) -> None:
    e = make_event(
        EventType.AUDIT_LOG_VERIFY,
        time=app.clock.now(),
        actor="os:x",
        outcome="intact",
        interface="cli",
    )
    assert set(e) >= {"time", "actor", "type", "outcome", "origin", "object"}
    ensure_signing_key(app.settings.home)
