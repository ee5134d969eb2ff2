"""HTTP hardening of the real application (create_app), on SQLite and PostgreSQL.

Consistent errors (problem+json with the contract's keys, 404/405/413/415/422/500), a request
id on every answer, pagination of the list answers, and the rate limits on sign-in and
research (429 with Retry-After; a sign-in trip recorded once in the audit log).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from idrs.api import throttle
from idrs.api.app import create_app
from idrs.audit import service as audit_service
from idrs.audit.models import AuditEntry
from idrs.people import service, totp
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

PROBLEM = "application/problem+json"


@pytest.fixture
def world(app):
    f.carter_household(app)
    api = create_app(app)
    with TestClient(api, follow_redirects=False) as client:
        yield app, api, client


def _employee(app, seid: str, roles: str, n: int) -> dict[str, str]:
    return service.create_employee(
        app, unax_attested_at=app.clock.now(), seid=seid, name=seid, tin=f"900-48-{n:04d}",
        roles=roles,
    )


def _body(app, creds, **kw) -> dict[str, str]:
    body = {
        "seid": creds["seid"],
        "password": creds["password"],
        "otp": totp.code_at(creds["totp_secret"], app.clock.now()),
    }
    body.update(kw)
    return body


def _token(app, client, creds) -> str:
    r = client.post("/api/v1/sessions", json=_body(app, creds))
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _entry(app, idx: int) -> dict:
    with app.engine.connect() as conn:
        leaf = conn.execute(select(AuditEntry.leaf_input).where(AuditEntry.idx == idx)).scalar_one()
    return json.loads(bytes(leaf))


def _is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM, r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert body["request_id"] == r.headers["x-request-id"]
    return body


# -- consistent errors ----------------------------------------------------------------------


def test_unknown_route_and_wrong_method(world):
    _, _, c = world
    body = _is_problem(c.get("/api/v1/no-such-thing"), 404)
    assert body["error"]
    r = c.delete("/api/v1/audit/checkpoint")
    _is_problem(r, 405)
    assert "GET" in r.headers["allow"]
    _is_problem(c.put("/api/v1/sessions", json={}), 405)


def test_wrong_content_type_is_415_and_nothing_is_done(world):
    app, _, c = world
    size = audit_service.tree_size(app)
    r = c.post("/api/v1/sessions", data={"seid": "X", "password": "y", "otp": "1"})
    body = _is_problem(r, 415)
    assert "application/json" in body["error"] and "x-www-form-urlencoded" in body["error"]
    r = c.post(
        "/api/v1/sessions",
        content=b'{"seid": "X", "password": "y", "otp": "1"}',
        headers={"Content-Type": "text/plain"},
    )
    _is_problem(r, 415)
    assert audit_service.tree_size(app) == size  # no sign-in attempt was made or recorded


def test_malformed_json_and_invalid_fields_are_422_naming_the_field(world):
    _, _, c = world
    r = c.post(
        "/api/v1/sessions", content=b'{"seid": ', headers={"Content-Type": "application/json"}
    )
    body = _is_problem(r, 422)
    assert body["problems"][0].startswith("body: the JSON does not parse at character 9")
    body = _is_problem(c.post("/api/v1/sessions", json={"seid": "EX1", "password": "p"}), 422)
    assert "body.otp: Field required" in body["problems"]
    body = _is_problem(c.post("/api/v1/sessions", json={"seid": "", "password": "p", "otp": "1"}), 422)
    assert any(p.startswith("body.seid: ") for p in body["problems"])
    r = c.post(
        "/api/v1/sessions", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )
    body = _is_problem(r, 422)  # found by the fuzzer: bytes that are not UTF-8 (was a bare 400)
    assert body["problems"] == ["body: the JSON does not parse (it is not UTF-8 text)"]
    body = _is_problem(c.get("/api/v1/audit/proofs/inclusion", params={"index": "x", "tree_size": 1}), 422)
    assert any(p.startswith("query.index: ") for p in body["problems"])
    assert body["error"].startswith("query.index")


def test_oversize_body_is_413(world):
    app, _, c = world
    size = audit_service.tree_size(app)
    r = c.post(
        "/api/v1/sessions",
        content=b'{"seid": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    body = _is_problem(r, 413)
    assert "exceeds" in body["detail"]
    assert audit_service.tree_size(app) == size


def test_an_unexpected_failure_is_a_500_problem_that_reveals_nothing(world):
    _, api, _ = world

    def boom() -> None:
        raise RuntimeError("secret internals: 900-12-3456")

    api.add_api_route("/api/v1/test-boom", boom, openapi_extra={"x-authorization": "public"})
    with TestClient(api, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/test-boom")
    body = _is_problem(r, 500)
    assert body["detail"].startswith("the server failed")
    assert "900-12-3456" not in r.text and "secret" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_denials_keep_the_contract_keys_and_the_daily_ceiling_stays_403(world):
    app, _, c = world
    app.settings = app.settings.model_copy(update={"daily_limit_default": 1})
    token = _token(app, c, _employee(app, "EX300", "examiner", 300))
    f.open_case(app, "EX300", f.CARTER, "C-1")
    f.open_case(app, "EX300", f.CARTER_CHILD, "C-2")
    r = c.get("/api/v1/audit/entries", params={"start": 0, "end": 1})
    body = _is_problem(r, 401)
    assert body["decision"] == "deny" and r.headers["www-authenticate"] == "Bearer"
    assert {x["code"] for x in body["reasons"]} == {"AUTH_REQUIRED"}
    r = c.get(f"/api/v1/accounts/{f.CARTER}/ENMOD", params={"case": "C-1"}, headers=_bearer(token))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    r = c.get(
        f"/api/v1/accounts/{f.CARTER_CHILD}/ENMOD", params={"case": "C-2"}, headers=_bearer(token)
    )
    body = _is_problem(r, 403)
    assert body["decision"] == "deny" and [x["code"] for x in body["reasons"]] == ["RATE_LIMITED"]
    assert _entry(app, body["audit_index"])["reasons"] == ["RATE_LIMITED"]
    body = _is_problem(c.get(f"/api/v1/accounts/{f.CARTER}/BOGUS", headers=_bearer(token)), 400)
    assert "ENMOD" in body["error"]


def test_every_answer_has_a_request_id(world):
    app, _, c = world
    token = _token(app, c, _employee(app, "EX301", "examiner", 301))
    answers = [
        c.get("/api/v1/openapi.json"),
        c.get("/static/style.css"),
        c.get("/"),  # 303 to the sign-in page
        c.get("/signin"),
        c.get("/api/v1/audit/proofs/consistency", params={"first": 0, "second": 1}),
        c.delete("/api/v1/sessions/current", headers=_bearer(token)),  # 204
        c.get("/api/v1/names", params={"name": "carter"}),  # 401
        c.get("/nowhere"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 303, 200, 200, 204, 401, 404]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(len(i) == 32 for i in ids) and len(set(ids)) == len(ids)
    r = c.get("/api/v1/no", headers={"X-Request-ID": "trace-0001-abc"})
    assert r.headers["x-request-id"] == "trace-0001-abc" == r.json()["request_id"]


# -- pagination -----------------------------------------------------------------------------


def test_list_answers_are_paged(world):
    app, _, c = world
    for i in range(3):
        _employee(app, f"EX31{i}", "examiner", 310 + i)
        f.open_case(app, f"EX31{i}", f.CARTER, f"W-{i}")
    analyst = _token(app, c, _employee(app, "PA300", "privacy_analyst", 320))
    r = c.get("/api/v1/access/who-can", params={"tin": f.CARTER, "limit": 2}, headers=_bearer(analyst))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["seid"] for x in page["can"]] == ["EX310", "EX311"]
    assert (page["limit"], page["offset"], page["total"], page["next_offset"]) == (2, 0, 3, 2)
    r = c.get(
        "/api/v1/access/who-can",
        params={"tin": f.CARTER, "limit": 2, "offset": 2},
        headers=_bearer(analyst),
    )
    assert [x["seid"] for x in r.json()["can"]] == ["EX312"] and r.json()["next_offset"] is None
    body = _is_problem(
        c.get("/api/v1/access/who-can", params={"tin": f.CARTER, "limit": 0}, headers=_bearer(analyst)),
        422,
    )
    assert any(p.startswith("query.limit") for p in body["problems"])

    manager = _token(app, c, _employee(app, "MG300", "manager", 321))
    r = c.get("/api/v1/adjustments", params={"limit": 5}, headers=_bearer(manager))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["adjustments"] == [] and isinstance(out["audit_index"], int)
    assert (out["limit"], out["offset"], out["total"], out["next_offset"]) == (5, 0, 0, None)

    auditor = _token(app, c, _employee(app, "AU300", "auditor", 322))
    size = audit_service.tree_size(app)
    r = c.get("/api/v1/audit/entries", params={"start": 0, "end": 2}, headers=_bearer(auditor))
    out = r.json()
    assert [e["index"] for e in out["entries"]] == [0, 1]
    assert (out["start"], out["end"], out["tree_size"], out["next_start"]) == (0, 2, size, 2)
    now = size + 1  # the first read recorded itself
    r = c.get("/api/v1/audit/entries", params={"start": 2, "end": now}, headers=_bearer(auditor))
    assert r.json()["tree_size"] == now and len(r.json()["entries"]) == now - 2
    assert r.json()["next_start"] is None  # this read's own entry is not a next page


# -- rate limits ----------------------------------------------------------------------------


def _signin_entries(app, since: int) -> list[dict]:
    size = audit_service.tree_size(app)
    entries = [_entry(app, i) for i in range(since, size)]
    return [e for e in entries if e["type"] == "auth:signin:failure"]


def test_signin_is_limited_per_seid_and_the_trip_is_recorded_once(world):
    app, _, c = world
    app.settings = app.settings.model_copy(update={"signin_seid_rate": "3/60"})
    creds = _employee(app, "EX320", "examiner", 330)
    other = _employee(app, "EX321", "examiner", 331)
    start = audit_service.tree_size(app)
    for _ in range(3):
        assert c.post("/api/v1/sessions", json=_body(app, creds, password="wrong")).status_code == 401
    r = c.post("/api/v1/sessions", json=_body(app, creds))  # even the right password waits
    body = _is_problem(r, 429)
    # at most 3 in any 60 s: the window has room again when the first failure is 60 s old
    assert 50 <= int(r.headers["retry-after"]) <= 60 and body["retry_after"] == int(
        r.headers["retry-after"]
    )
    assert body["decision"] == "deny" and [x["code"] for x in body["reasons"]] == ["RATE_LIMITED"]
    trip = _entry(app, body["audit_index"])
    assert trip["type"] == "auth:signin:failure" and trip["reasons"] == ["RATE_LIMITED"]
    assert trip["actor"] == "EX320" and trip["detail"]["limit"] == "seid"
    assert trip["origin"]["interface"] == "api"
    r = c.post("/api/v1/sessions", json=_body(app, creds, seid=" ex320 "))  # same SEID, spelled loosely
    assert r.status_code == 429 and r.json()["audit_index"] is None  # a streak is recorded once
    assert len(_signin_entries(app, start)) == 4  # three failures, one trip
    assert c.post("/api/v1/sessions", json=_body(app, other)).status_code == 201  # others unaffected


def test_signin_is_limited_per_address_on_the_api_and_the_web(world):
    app, _, c = world
    app.settings = app.settings.model_copy(update={"signin_rate": "2/60"})
    for seid in ("NOONE1", "NOONE2"):
        r = c.post("/api/v1/sessions", json={"seid": seid, "password": "x", "otp": "000000"})
        assert r.status_code == 401
    body = _is_problem(
        c.post("/api/v1/sessions", json={"seid": "NOONE3", "password": "x", "otp": "000000"}), 429
    )
    assert _entry(app, body["audit_index"])["detail"]["limit"] == "address"
    r = c.post("/signin", data={"seid": "NOONE4", "password": "x", "otp": "0", "csrf": "x"})
    assert r.status_code == 429 and r.headers["content-type"].startswith("text/html")
    assert "RATE_LIMITED" in r.text and int(r.headers["retry-after"]) >= 1
    assert r.headers["x-request-id"] and r.headers["x-frame-options"] == "DENY"


def test_web_signin_is_limited_per_seid(world):
    app, _, c = world
    app.settings = app.settings.model_copy(update={"signin_seid_rate": "1/60"})
    form = {"seid": "ex330", "password": "x", "otp": "0", "csrf": "bad"}
    assert c.post("/signin", data=form).status_code == 403  # the CSRF check refuses it
    r = c.post("/signin", data={**form, "seid": "EX330"})
    assert r.status_code == 429 and 50 <= int(r.headers["retry-after"]) <= 60


def test_research_is_limited_per_session(world):
    app, _, c = world
    app.settings = app.settings.model_copy(update={"research_rate": "3/30"})
    a = _token(app, c, _employee(app, "EX340", "examiner", 340))
    b = _token(app, c, _employee(app, "EX341", "examiner", 341))
    f.open_case(app, "EX340", f.CARTER, "C-1")
    size = audit_service.tree_size(app)
    url = f"/api/v1/accounts/{f.CARTER}/ENMOD"
    assert [c.get(url, params={"case": "C-1"}, headers=_bearer(a)).status_code for _ in range(3)] == [200] * 3
    r = c.get(url, params={"case": "C-1"}, headers=_bearer(a))
    body = _is_problem(r, 429)
    assert 20 <= int(r.headers["retry-after"]) <= 30
    trip = _entry(app, body["audit_index"])  # the first refusal of the burst is recorded
    assert trip["type"] == "access:research:throttle" and trip["reasons"] == ["RATE_LIMITED"]
    assert trip["detail"]["limit"] == "session" and trip["object"]["session"]
    assert audit_service.tree_size(app) == size + 4  # the refused call read nothing
    assert c.get("/api/v1/names", params={"name": "x"}, headers=_bearer(a)).status_code == 429
    assert c.get(url, headers=_bearer(b)).status_code == 403  # another session: its own bucket
    c.cookies.set("idrs_session", a)  # the same session through the web prompt: the same bucket
    r = c.post("/research", data={"line": f"ENMOD {f.CARTER} case=C-1", "csrf": "x"})
    assert r.status_code == 429 and "RATE_LIMITED" in r.text
    c.cookies.clear()
    app.settings = app.settings.model_copy(update={"research_rate": "off"})
    assert c.get(url, params={"case": "C-1"}, headers=_bearer(a)).status_code == 200


def test_a_limit_holds_at_most_count_requests_in_any_window():
    t = throttle.Throttle()
    assert [t.wait("k", "1", "2/10") for _ in range(2)] == [0.0, 0.0]
    wait = t.wait("k", "1", "2/10")
    assert 9 <= wait <= 10  # the oldest of the two leaves the window in about 10 s
    assert t.wait("k", "2", "2/10") == 0.0  # another key has its own window
    assert t.wait("k", "1", "off") == 0.0
    assert t.wait("k", "3", "1/10", consume=False) == 0.0  # a test does not count
    assert t.wait("k", "3", "1/10") == 0.0 and t.wait("k", "3", "1/10") > 0


def test_a_burst_is_summarized_once_when_it_ends(world):
    app, api, _ = world
    t: throttle.Throttle = api.state.throttle
    now = app.clock.now()

    def refusal() -> throttle.Burst:
        return throttle.Burst("research-address", "203.0.113.9", "1/60", "api",
                              "203.0.113.9", "anonymous", now, now)

    assert t.refused(refusal()) is True  # the first refusal starts the burst: recorded
    assert [t.refused(refusal()) for _ in range(4)] == [False] * 4  # the rest are counted
    assert t.ended() == []  # not over yet: a whole window has not passed
    size = audit_service.tree_size(app)
    assert throttle.flush(app, t, everything=True) == 1
    entry = _entry(app, size)
    assert entry["type"] == "system:throttle:burst" and entry["detail"]["refused"] == 5
    assert entry["origin"]["address"] == "203.0.113.9" and entry["detail"]["limit"] == (
        "research-address"
    )
    assert throttle.flush(app, t, everything=True) == 0  # taken once


def test_rate_settings_are_validated():
    from idrs.config import Settings, parse_rate

    assert parse_rate("60/60") == (60, 60.0) and parse_rate("OFF") is None
    with pytest.raises(ValueError, match="research_rate"):
        Settings(research_rate="fast")
    with pytest.raises(ValueError, match="signin_rate"):
        Settings(signin_rate="0/60")


def test_made_up_tokens_from_one_address_cannot_flood_the_log(world):
    """700 research calls with random bearer tokens from one address: after the address's
    unauthenticated allowance (10 a minute) every call is refused before its token is looked
    at, and the whole flood costs the log a bounded handful of entries."""
    import secrets

    app, api, c = world
    size = audit_service.tree_size(app)
    url = f"/api/v1/accounts/{f.CARTER}/ENMOD"
    statuses = [
        c.get(url, headers=_bearer(secrets.token_urlsafe(32))).status_code for _ in range(700)
    ]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    grown = audit_service.tree_size(app) - size
    assert grown == 11  # ten recorded refusals, then one entry for the start of the burst
    assert throttle.flush(app, api.state.throttle, everything=True) == 1
    entries = [_entry(app, i) for i in range(size, size + grown + 1)]
    kinds = [e["type"] for e in entries]
    assert kinds == ["access:research:decide"] * 10 + [
        "access:research:throttle", "system:throttle:burst"
    ]
    assert entries[-1]["detail"]["refused"] == 690 and entries[-1]["detail"]["limit"] == (
        "research-unauthenticated"
    )
    assert all(e["origin"]["address"] == "testclient" for e in entries)
    # a signed-in employee elsewhere is not affected
    creds = _employee(app, "EX350", "examiner", 350)
    other = TestClient(api, client=("198.51.100.4", 5000))
    r = other.post("/api/v1/sessions", json=_body(app, creds))
    assert other.get(url, headers=_bearer(r.json()["token"])).status_code == 403
