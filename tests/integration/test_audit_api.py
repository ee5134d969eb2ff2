"""The audit endpoints, checked the way an independent overseer would: only RFC 6962/9162 and
C2SP knowledge (the from-scratch verifiers live in tests/unit), over HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from idrs.api import audit as audit_api
from idrs.audit import log, service
from idrs.audit.checkpoint import load_signer
from idrs.context import App
from tests.unit.test_checkpoint import independent_open_checkpoint
from tests.unit.test_merkle import ref_mth, ref_path, ref_subproof

from .audit_helpers import entry, prepare

AUDITOR = SimpleNamespace(seid="AU001", active=True, role_set=frozenset({"auditor"}))
EXAMINER = SimpleNamespace(seid="EX001", active=True, role_set=frozenset({"examiner"}))


@pytest.fixture
def client(app: App) -> Iterator[tuple[TestClient, dict]]:
    """The real API (``idrs.api.app.create_app``); only sign-in is stubbed (people/ tests it)."""
    from idrs.api.app import create_app

    web = create_app(app)
    who: dict = {"employee": AUDITOR}
    web.dependency_overrides[audit_api._current_employee] = lambda: who["employee"]
    with TestClient(web) as c:
        yield c, who


def test_independent_checker_over_http(app: App, client: tuple[TestClient, dict]) -> None:
    c, _ = client
    prepare(app)
    n0 = service.tree_size(app)  # create_app records the policy version it runs with
    for i in range(11):
        log.append(app.engine, entry(app, i))
    old = service.checkpoint_now(app)
    for i in range(11, 23):
        log.append(app.engine, entry(app, i))
    service.checkpoint_now(app)
    vkey = load_signer(app.settings.home).vkey()

    r = c.get("/api/v1/audit/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    origin, size, root = independent_open_checkpoint(r.text, vkey)
    assert (origin, size) == (app.settings.audit_origin, n0 + 23)

    r = c.get("/api/v1/audit/entries", params={"start": 0, "end": size})
    assert r.status_code == 200
    rows = r.json()["entries"]
    assert [e["index"] for e in rows] == list(range(size))
    leaves = [base64.b64decode(e["leaf_input"]) for e in rows]
    assert ref_mth(leaves) == root
    assert all(b"900-00-0001" not in x and b"900000001" not in x for x in leaves)

    for i in (0, 7, n0 + 22):
        r = c.get("/api/v1/audit/proofs/inclusion", params={"index": i, "tree_size": size})
        assert r.status_code == 200
        body = r.json()
        assert body["index"] == i and body["tree_size"] == size
        assert [bytes.fromhex(h) for h in body["hashes"]] == ref_path(i, leaves)

    _, old_size, old_root = independent_open_checkpoint(old, vkey)
    assert ref_mth(leaves[:old_size]) == old_root
    r = c.get("/api/v1/audit/proofs/consistency", params={"first": old_size, "second": size})
    assert r.status_code == 200
    assert [bytes.fromhex(h) for h in r.json()["hashes"]] == ref_subproof(old_size, leaves, True)


def test_bad_requests_get_clear_4xx(app: App, client: tuple[TestClient, dict]) -> None:
    c, who = client
    prepare(app)
    assert c.get("/api/v1/audit/checkpoint").status_code == 404
    n0 = service.tree_size(app)  # create_app records the policy version it runs with
    for i in range(5):
        log.append(app.engine, entry(app, i))
    n = n0 + 5
    cases = [
        ("/api/v1/audit/proofs/inclusion", {"index": 2, "tree_size": n + 4}, 404),
        ("/api/v1/audit/proofs/inclusion", {"index": n, "tree_size": n}, 404),
        ("/api/v1/audit/proofs/inclusion", {"index": -1, "tree_size": n}, 422),
        ("/api/v1/audit/proofs/inclusion", {"index": "x", "tree_size": n}, 422),
        ("/api/v1/audit/proofs/consistency", {"first": 4, "second": 2}, 422),
        ("/api/v1/audit/proofs/consistency", {"first": 1, "second": n + 1}, 404),
        ("/api/v1/audit/entries", {"start": 0, "end": 99}, 404),
        ("/api/v1/audit/entries", {"start": 3, "end": 1}, 422),
    ]
    for path, params, status in cases:
        r = c.get(path, params=params)
        assert r.status_code == status, (path, params, r.text)
        assert r.json()
    assert service.tree_size(app) == n  # refused reads change nothing
    who["employee"] = EXAMINER
    r = c.get("/api/v1/audit/entries", params={"start": 0, "end": 2})
    assert r.status_code == 403
    body = r.json()
    assert body["decision"] == "deny" and body["audit_index"] == n
    assert service.tree_size(app) == n + 1  # the refusal itself was recorded
    web = c.app
    del web.dependency_overrides[audit_api._current_employee]  # nobody signed in: 401
    r = c.get("/api/v1/audit/entries", params={"start": 0, "end": 2})
    assert r.status_code == 401
