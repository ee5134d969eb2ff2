"""Need to know comes from the agency's records, and every attempt leaves a trace (issue 13.5,
13.9), on both databases, through the API, the CLI and the pages.

- A contact rests on an inbound record the contact feed (a machine principal with its own
  credentials) recorded; an employee declares one only in a walk-in role, marked declared,
  and detection treats it as self-opened; nobody assigns a case to themselves.
- The feed's credentials are not an employee's and the other way round.
- Opening a contact, assigning a case, asking for the accounting: a TIN that does not exist
  and one the caller has no right to are answered alike, and every attempt is recorded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idrs.access import service as access
from idrs.api.app import create_app
from idrs.audit.events import Actor
from idrs.audit.models import AuditEntry
from idrs.config import get_settings
from idrs.db import session_scope
from idrs.people import service, systems, totp
from idrs.web.security import SESSION_COOKIE, session_csrf
from tests.integration import factories as f
from tests.integration.cli_helpers import run_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

NOBODY = "900-88-7777"  # well-formed, synthetic, not in the master file
UNITS = {"CSR1": "U1", "EX1": "U1", "MGR1": "U1", "MGR2": "U2", "PA1": "U2"}
ROLES = {
    "CSR1": "csr",
    "EX1": "examiner",
    "MGR1": "manager",
    "MGR2": "manager",
    "PA1": "privacy_analyst",
}


def _entries(app) -> list[dict[str, Any]]:
    with session_scope(app.engine) as s:
        return [
            json.loads(bytes(x))
            for x in s.scalars(select(AuditEntry.leaf_input).order_by(AuditEntry.idx))
        ]


def _entry(app, index: int) -> dict[str, Any]:
    with session_scope(app.engine) as s:
        leaf = s.scalar(select(AuditEntry.leaf_input).where(AuditEntry.idx == index))
    assert leaf is not None, f"no audit entry {index}"
    return json.loads(bytes(leaf))


def _size(app) -> int:
    with session_scope(app.engine) as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


@pytest.fixture
def world(app):
    f.carter_household(app)
    for code in ("U1", "U2"):
        service.create_unit(app, code)
    creds = {}
    for n, (seid, role) in enumerate(ROLES.items()):
        creds[seid] = service.create_employee(
            app,
            unax_attested_at=app.clock.now(),
            seid=seid,
            name=seid,
            tin=f"900-47-{7000 + n:04d}",
            roles=role,
            unit=UNITS[seid],
        )
    feed = systems.add_system(app, name="telephony", kind="contact_feed", actor="os:test")
    other = systems.add_system(
        app, name="state-dor", kind="agency_system", agency="State DOR", actor="os:test"
    )
    api = create_app(app)
    with TestClient(api, follow_redirects=False) as client:
        tokens = {}
        for seid, c in creds.items():
            r = client.post(
                "/api/v1/sessions",
                json={
                    "seid": seid,
                    "password": c["password"],
                    "otp": totp.code_at(c["totp_secret"], app.clock.now()),
                },
            )
            assert r.status_code == 201, r.text
            tokens[seid] = r.json()["token"]
        yield {
            "app": app,
            "client": client,
            "tokens": tokens,
            "creds": creds,
            "feed": feed,
            "other": other,
        }


@pytest.fixture
def cli(world, monkeypatch, capsys):
    app = world["app"]
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    get_settings.cache_clear()

    def call(*args: str) -> tuple[int, str, str]:
        return run_cli(capsys, *args)

    yield call
    get_settings.cache_clear()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _system_token(w, creds) -> str:
    r = w["client"].post(
        "/api/v1/system-sessions", json={"system": creds["system"], "secret": creds["secret"]}
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _inbound(w, token: str, *, seid: str, tin: str, cid: str, channel: str = "call"):
    return w["client"].post(
        "/api/v1/contacts/inbound",
        headers=_h(token),
        json={"channel": channel, "tin": tin, "seid": seid, "contact_id": cid},
    )


def _research(w, seid: str, tin: str, **params: str):
    return w["client"].get(
        f"/api/v1/accounts/{tin}/ENMOD", headers=_h(w["tokens"][seid]), params=params
    )


# -- 13.5: contacts from the feed, declared contacts, no self-assignment ---------------------


def test_the_feed_records_a_call_and_the_employee_works_on_it(world):
    app = world["app"]
    feed = _system_token(world, world["feed"])
    r = _inbound(world, feed, seid="EX1", tin=f.CARTER, cid="TEL-1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["origin"] == "inbound" and body["channel"] == "phone" and body["seid"] == "EX1"
    e = _entry(app, body["audit_index"])
    assert e["type"] == "admin:contact:open" and e["actor"] == "system:telephony"
    assert e["object"]["origin"] == "inbound" and "declared" not in e["object"]
    assert f.CARTER.replace("-", "") not in json.dumps(e)
    assert _research(world, "EX1", f.CARTER, contact="TEL-1").status_code == 200
    # the feed signed in and recorded under its own name
    assert any(
        x["type"] == "auth:system:success" and x["actor"] == "system:telephony"
        for x in _entries(app)
    )


def test_an_employee_outside_the_walk_in_roles_cannot_declare_a_contact(world):
    app, client = world["app"], world["client"]
    r = client.post(
        "/api/v1/contacts",
        headers=_h(world["tokens"]["EX1"]),
        json={"tin": f.CARTER, "contact_id": "MINE-1", "channel": "phone"},
    )
    assert r.status_code == 403, r.text
    assert [x["code"] for x in r.json()["reasons"]] == ["NO_INBOUND_RECORD"]
    e = _entry(app, r.json()["audit_index"])
    assert e["type"] == "access:basis:deny" and e["actor"] == "EX1"
    assert e["object"]["operation"] == "contact:open" and e["reasons"] == ["NO_INBOUND_RECORD"]
    # no contact exists: research under it is refused
    assert _research(world, "EX1", f.CARTER, contact="MINE-1").status_code == 403
    # a manager cannot declare one for them either
    r = client.post(
        "/api/v1/contacts",
        headers=_h(world["tokens"]["MGR1"]),
        json={"tin": f.CARTER, "contact_id": "MINE-2", "seid": "EX1"},
    )
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NO_INBOUND_RECORD"
    assert _entry(app, r.json()["audit_index"])["actor"] == "MGR1"


def test_the_cli_declares_only_for_walk_in_roles(world, cli):
    app = world["app"]
    before = _size(app)
    code, _, err = cli(
        "contact", "open", "--seid", "EX1", "--tin", f.CARTER, "--contact-id", "CLI-1"
    )
    assert code == 1 and "NO_INBOUND_RECORD" in err
    refused = _entries(app)[before:]
    assert [x["type"] for x in refused] == ["access:basis:deny"]
    code, out, err = cli(
        "contact",
        "open",
        "--seid",
        "CSR1",
        "--tin",
        f.CARTER,
        "--contact-id",
        "CLI-2",
        "--channel",
        "visit",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["origin"] == "declared"


def test_a_walk_in_contact_is_declared_and_detection_counts_it_as_self_opened(world):
    from idrs.detection import logscan

    app, client = world["app"], world["client"]
    # the CSR's manager types it: it is still the CSR's own declaration
    r = client.post(
        "/api/v1/contacts",
        headers=_h(world["tokens"]["MGR1"]),
        json={"tin": f.CARTER, "contact_id": "WALK-1", "channel": "visit", "seid": "CSR1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["origin"] == "declared"
    e = _entry(app, r.json()["audit_index"])
    assert e["object"]["declared"] is True and e["actor"] == "MGR1"
    assert _research(world, "CSR1", f.CARTER, contact="WALK-1").status_code == 200
    con = logscan.connect()
    logscan.load(app, con, 0, _size(app))
    (opened_by,) = con.execute(
        "SELECT actor FROM ev WHERE type = 'admin:contact:open' AND contact_id = 'WALK-1'"
    ).fetchone()
    assert opened_by == "CSR1"  # judged as a self-opened contact (self_opened_visit)
    # the page shows it as declared
    client.cookies.set(SESSION_COOKIE, world["tokens"]["CSR1"])
    page = client.get("/cases")
    client.cookies.clear()
    assert page.status_code == 200 and "declared (no intake record)" in page.text


def test_a_manager_cannot_assign_a_case_to_themselves(world):
    app, client = world["app"], world["client"]
    r = client.post(
        "/api/v1/cases",
        headers=_h(world["tokens"]["MGR1"]),
        json={"tin": f.CARTER, "case_id": "SELF-1", "seid": "MGR1"},
    )
    assert r.status_code == 403, r.text
    assert [x["code"] for x in r.json()["reasons"]] == ["SELF_ASSIGNMENT"]
    e = _entry(app, r.json()["audit_index"])
    assert e["type"] == "access:basis:deny" and e["reasons"] == ["SELF_ASSIGNMENT"]
    assert _research(world, "MGR1", f.CARTER, case="SELF-1").status_code == 403
    # the service refuses it whoever calls
    with pytest.raises(access.AccessDenied) as exc:
        access.assign_case(
            app, seid="mgr1", tin=f.CARTER, case_id="SELF-2", actor=Actor("MGR1", "web")
        )
    assert exc.value.codes == ["SELF_ASSIGNMENT"] and exc.value.audit_index is not None
    # assigning to a member of the unit still works
    r = client.post(
        "/api/v1/cases",
        headers=_h(world["tokens"]["MGR1"]),
        json={"tin": f.CARTER, "case_id": "OK-1", "seid": "EX1"},
    )
    assert r.status_code == 201, r.text


def test_feed_and_employee_credentials_do_not_cross(world):
    app, client, tokens = world["app"], world["client"], world["tokens"]
    feed = _system_token(world, world["feed"])
    # the feed's token is no employee session
    r = client.post(
        "/api/v1/contacts", headers=_h(feed), json={"tin": f.CARTER, "contact_id": "X-1"}
    )
    assert r.status_code == 401
    assert client.get(f"/api/v1/accounts/{f.CARTER}/ENMOD", headers=_h(feed)).status_code == 401
    # nor is its secret a password
    r = client.post(
        "/api/v1/sessions",
        json={"seid": "telephon", "password": world["feed"]["secret"], "otp": "123456"},
    )
    assert r.status_code == 401
    # an employee's password is no system secret
    c = world["creds"]["EX1"]
    r = client.post("/api/v1/system-sessions", json={"system": "EX1", "secret": c["password"]})
    assert r.status_code == 401
    r = client.post(
        "/api/v1/system-sessions", json={"system": "telephony", "secret": c["password"]}
    )
    assert r.status_code == 401
    assert [x["type"] for x in _entries(app)[-2:]] == ["auth:system:failure"] * 2
    # an employee cannot call the feed route: refused and recorded
    r = _inbound(world, tokens["EX1"], seid="EX1", tin=f.CARTER, cid="FAKE-1")
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "WRONG_PRINCIPAL"
    e = _entry(app, r.json()["audit_index"])
    assert e["type"] == "auth:system:deny" and e["actor"] == "EX1"
    # nor can a machine of another kind
    other = _system_token(world, world["other"])
    r = _inbound(world, other, seid="EX1", tin=f.CARTER, cid="FAKE-2")
    assert r.status_code == 403
    assert _entry(app, r.json()["audit_index"])["actor"] == "system:state-dor"
    # a bad token: 401
    assert _inbound(world, "nope", seid="EX1", tin=f.CARTER, cid="FAKE-3").status_code == 401
    assert _research(world, "EX1", f.CARTER, contact="FAKE-1").status_code == 403


def test_rotating_the_feed_secret_stops_the_old_secret_and_tokens(world):
    app = world["app"]
    feed = _system_token(world, world["feed"])
    new = systems.rotate_secret(app, name="telephony", actor="os:test")
    assert new["secret"] != world["feed"]["secret"]
    assert _inbound(world, feed, seid="EX1", tin=f.CARTER, cid="R-1").status_code == 401
    r = world["client"].post(
        "/api/v1/system-sessions", json={"system": "telephony", "secret": world["feed"]["secret"]}
    )
    assert r.status_code == 401
    fresh = _system_token(world, {"system": "telephony", "secret": new["secret"]})
    assert _inbound(world, fresh, seid="EX1", tin=f.CARTER, cid="R-2").status_code == 201
    rows = systems.list_systems(app)
    assert {r["system"] for r in rows} == {"telephony", "state-dor"}
    assert "secret" not in json.dumps(rows)


def test_system_cli_prints_credentials_once(world, cli):
    app = world["app"]
    code, out, err = cli("system", "add", "--name", "mailroom", "--kind", "contact_feed")
    assert code == 0, err
    creds = json.loads(out)
    assert creds["system"] == "mailroom" and creds["kind"] == "contact_feed" and creds["secret"]
    assert creds["secret"] not in json.dumps(_entries(app))
    code, out, err = cli(
        "system", "add", "--name", "irs-x", "--kind", "agency_system", "--agency", "Another Agency"
    )
    assert code == 0 and json.loads(out)["agency"] == "Another Agency", err
    assert cli("system", "add", "--name", "mailroom")[0] == 1
    assert cli("system", "add", "--name", "no-agency", "--kind", "agency_system")[0] == 1
    # the documented form for another agency's system: --agency without --kind
    code, out, err = cli("system", "add", "--name", "dhs-hsi", "--agency", "DHS")
    assert code == 0 and json.loads(out)["kind"] == "agency_system", err
    code, out, _ = cli("system", "rotate", "--name", "mailroom")
    assert code == 0 and json.loads(out)["secret"] != creds["secret"]
    code, out, _ = cli("system", "list", "--json")
    assert code == 0 and "secret" not in out


# -- 13.9: no free existence probe ------------------------------------------------------------


def _shape(r) -> tuple[int, list[str], list[str]]:
    body = r.json()
    return r.status_code, sorted(body), [x["code"] for x in body.get("reasons", [])]


@pytest.mark.parametrize(
    ("who", "path", "body"),
    [
        ("EX1", "/api/v1/contacts", {"contact_id": "P-1"}),  # not a walk-in role
        ("MGR2", "/api/v1/contacts", {"contact_id": "P-2", "seid": "CSR1"}),  # another unit
        ("CSR1", "/api/v1/cases", {"case_id": "P-3", "seid": "EX1"}),  # not a manager
        ("MGR2", "/api/v1/cases", {"case_id": "P-4", "seid": "EX1"}),  # another unit
        ("MGR1", "/api/v1/cases", {"case_id": "P-5", "seid": "MGR1"}),  # themselves
    ],
)
def test_a_stranger_gets_the_same_answer_whether_or_not_the_tin_exists(world, who, path, body):
    app, client = world["app"], world["client"]
    answers = []
    for tin in (NOBODY, f.CARTER):
        before = _size(app)
        r = client.post(path, headers=_h(world["tokens"][who]), json={**body, "tin": tin})
        answers.append(_shape(r))
        assert r.status_code == 403, r.text
        e = _entry(app, r.json()["audit_index"])
        assert r.json()["audit_index"] >= before and e["actor"] == who
        assert e["type"] == "access:basis:deny" and e["outcome"] == "deny"
        assert tin.replace("-", "") not in json.dumps(e) and tin not in r.text
    assert answers[0] == answers[1]


def test_the_accounting_answers_a_stranger_alike_and_records_every_attempt(world):
    app, client = world["app"], world["client"]
    answers = []
    for tin in (NOBODY, f.CARTER):
        r = client.get(f"/api/v1/taxpayers/{tin}/accesses", headers=_h(world["tokens"]["EX1"]))
        answers.append(_shape(r))
        assert r.status_code == 403 and r.json()["audit_index"] is not None
    assert answers[0] == answers[1]
    # the web page alike
    token = world["tokens"]["EX1"]
    pages = []
    for tin in (NOBODY, f.CARTER):
        client.cookies.set(SESSION_COOKIE, token)
        before = _size(app)
        r = client.post("/taxpayers", data={"tin": tin, "csrf": session_csrf(app, token)})
        pages.append(r.status_code)
        assert _size(app) == before + 1
    client.cookies.clear()
    assert pages[0] == pages[1] == 403


def test_an_entitled_caller_on_a_tin_that_does_not_exist_is_recorded(world):
    """Those who may act learn the TIN is not on file (404), and the attempt is recorded."""
    app, client, tokens = world["app"], world["client"], world["tokens"]
    feed = _system_token(world, world["feed"])
    calls = [
        (
            "CSR1",
            lambda: client.post(
                "/api/v1/contacts",
                headers=_h(tokens["CSR1"]),
                json={"tin": NOBODY, "contact_id": "N-1"},
            ),
        ),
        (
            "MGR1",
            lambda: client.post(
                "/api/v1/cases",
                headers=_h(tokens["MGR1"]),
                json={"tin": NOBODY, "case_id": "N-2", "seid": "EX1"},
            ),
        ),
        (
            "PA1",
            lambda: client.get(f"/api/v1/taxpayers/{NOBODY}/accesses", headers=_h(tokens["PA1"])),
        ),
        ("system:telephony", lambda: _inbound(world, feed, seid="EX1", tin=NOBODY, cid="N-3")),
    ]
    for actor, call in calls:
        before = _size(app)
        r = call()
        assert r.status_code == 404, r.text
        assert NOBODY not in r.text
        new = _entries(app)[before:]
        assert [(x["actor"], x["outcome"]) for x in new] == [(actor, "not_found")], new
        assert new[0]["object"]["taxpayer"]  # the pseudonym: the probe is visible per taxpayer
        assert NOBODY.replace("-", "") not in json.dumps(new)


def test_the_cli_records_attempts_on_a_tin_that_does_not_exist(world, cli):
    app = world["app"]
    for argv in (
        ["case", "assign", "--seid", "EX1", "--tin", NOBODY, "--case-id", "CN-1"],
        ["contact", "open", "--seid", "CSR1", "--tin", NOBODY, "--contact-id", "CN-2"],
        ["taxpayer", "accesses", "--tin", NOBODY],
    ):
        before = _size(app)
        code, _, err = cli(*argv)
        assert code == 1, (argv, err)
        new = _entries(app)[before:]
        assert [x["outcome"] for x in new] == ["not_found"], (argv, new)
