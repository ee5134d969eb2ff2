"""No free text carries a taxpayer into the log; identifiers take ASCII digits only; every
audit entry names a real actor and its origin address (issue 13.4 and 13.10), on SQLite and
PostgreSQL, through the API, the pages and the command line.

The attack: a TIN (dashed, plain, spaced), an EIN and a bank account number typed where a
case id, a contact id, a reason, a purpose or a note is expected. Each is refused with a
clear error naming the field (4xx over HTTP, exit 1 on the command line) and nothing is
written: the log keeps its size and no entry holds the digits.
"""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from fastapi.testclient import TestClient

from idrs import research
from idrs.access import policy
from idrs.access.service import assign_case
from idrs.api import middleware
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import LOCAL_ORIGIN, Actor, EventType, make_event
from idrs.audit.store import raw
from idrs.db import session_scope
from idrs.detection import triage
from idrs.detection.models import Alert
from idrs.errors import AccessDenied, IdrsError, ValidationFailed
from idrs.grants import service as grants
from idrs.identifiers import check_case_id, normalize_tin, screen_text
from idrs.masterfile.importer import import_file
from idrs.people import auth, totp
from idrs.people import service as people
from tests.integration import factories as f
from tests.integration.cli_helpers import run_cli, sign_in_for_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: what an employee might type: a TIN three ways, an EIN, a bank account number
ATTACKS = ("123-45-6789", "123456789", "123 45 6789", "98-7654321", "000444555666777")
#: seid → (roles, unit, own TIN)
STAFF = {
    "MG1": ("manager", "U1", "900-40-0301"),
    "EX1": ("examiner", "U1", "900-40-0302"),
    "PA1": ("privacy_analyst", "PRIV", "900-40-0303"),
    "AU1": ("auditor", "PRIV", "900-40-0304"),
}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


class World:
    def __init__(self, app) -> None:
        self.app = app
        self.creds: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, str] = {}

    def code(self, seid: str) -> str:
        self.app.clock.advance(seconds=30)
        return totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())

    def token(self, seid: str) -> str:
        if seid not in self.tokens:
            self.tokens[seid] = auth.sign_in(
                self.app, seid, self.creds[seid]["password"], self.code(seid), "api", "192.0.2.1"
            ).token
        return self.tokens[seid]

    def h(self, seid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(seid)}"}

    def leaves(self) -> list[bytes]:
        with raw(self.app.engine) as db:
            rows = db.execute("SELECT leaf_input FROM audit_entry ORDER BY idx").fetchall()
        return [bytes(r[0]) for r in rows]

    def size(self) -> int:
        with raw(self.app.engine) as db:
            return db.size()


@pytest.fixture
def w(app) -> World:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "PRIV"):
        people.create_unit(app, unit, actor=OP)
    world = World(app)
    for seid, (roles, unit, tin) in STAFF.items():
        world.creds[seid] = people.create_employee(
            app,
            unax_attested_at=app.clock.now(),
            seid=seid,
            name=f"Person {seid}",
            tin=tin,
            roles=roles,
            unit=unit,
            actor=OP,
        )
    f.open_case(app, "EX1", f.CARTER, "C-9")
    return world


@pytest.fixture
def client(w):
    api = create_app(w.app)
    middleware.install(api)
    middleware.install_problem_handlers(api)
    with TestClient(api) as c:
        yield c


def _alert(w: World, idx: int) -> str:
    now = w.app.clock.now()
    pseud = w.app.keyring.pseudonym(normalize_tin(f.CARTER))
    with session_scope(w.app.engine) as s:
        s.add(
            Alert(
                alert_id="A700001",
                seid="EX1",
                unit="U1",
                day=now.date(),
                score=9.0,
                category="curiosity",
                signals="[]",
                audit_indexes=json.dumps([idx]),
                taxpayers=json.dumps([pseud]),
                state="open",
                created_at=now,
                updated_at=now,
            )
        )
    return "A700001"


def _refused(r, field: str) -> None:
    assert r.status_code == 422, (field, r.status_code, r.text)
    body = r.json()
    assert any(p.startswith(f"{field}:") for p in body["problems"]), (field, body)
    assert "TIN" in body["error"]
    for attack in ATTACKS:
        assert attack not in r.text and _digits(attack) not in r.text  # never echoed


def _nothing_written(w: World, size: int) -> None:
    assert w.size() == size
    for leaf in w.leaves():
        text = leaf.decode()
        for attack in ATTACKS:
            assert attack not in text and _digits(attack) not in text


# -- (A) free text -----------------------------------------------------------------------------


def test_the_screen_and_the_id_format():
    for attack in (*ATTACKS, "1 2 3 4 5 6 7 8 9", "١٢٣٤٥٦٧٨٩", "acct 4471", "SSN: 6789"):
        with pytest.raises(ValidationFailed) as exc:
            screen_text(f"caller gave {attack} on the phone", "reason")
        assert exc.value.problems[0].startswith("reason: ") and attack not in str(exc.value)
    for fine in ("mistyped the TIN", "years 2021 2022", "refund of $1,234.56 on 2024-01-05"):
        assert screen_text(fine, "reason") == fine
    assert check_case_id(" c-1042 ", "case") == "C-1042"
    for ok in ("C-1", "K-12345678", "DEMO-1", "CS1"):
        assert check_case_id(ok, "case") == ok
    for bad in ("Smith", "JOHN SMITH", "C-123456789", "C 1", "C-1.2", "CASEX-1", "Ｃ-1", "C-١"):
        with pytest.raises(ValidationFailed) as exc:
            check_case_id(bad, "case")
        assert exc.value.problems[0].startswith("case: ")


def test_identifiers_typed_as_free_text_are_refused_over_the_api(w, client):
    idx = research.run(
        w.app, token=w.token("EX1"), command="ENMOD", tin=f.CARTER, case="C-9", interface="api"
    ).audit_index
    aid = _alert(w, idx)
    assert client.post(f"/api/v1/alerts/{aid}/assign", headers=w.h("PA1")).status_code == 200
    w.h("MG1")
    size = w.size()
    account = f"/api/v1/accounts/{f.CARTER}/ENMOD"
    for attack in ATTACKS:
        _refused(client.get(account, params={"case": attack}, headers=w.h("EX1")), "case")
        _refused(client.get(account, params={"contact": attack}, headers=w.h("EX1")), "contact")
        _refused(
            client.get(
                account, params={"case": "C-9", "reason": f"for {attack}"}, headers=w.h("EX1")
            ),
            "reason",
        )
        _refused(
            client.get(
                "/api/v1/names", params={"name": "CARTER", "reason": attack}, headers=w.h("EX1")
            ),
            "reason",
        )
        _refused(
            client.post(
                "/api/v1/cases",
                json={"seid": "EX1", "tin": f.CARTER, "case_id": attack},
                headers=w.h("MG1"),
            ),
            "case_id",
        )
        _refused(
            client.post(
                "/api/v1/contacts", json={"tin": f.CARTER, "contact_id": attack}, headers=w.h("EX1")
            ),
            "contact_id",
        )
        _refused(
            client.post(f"/api/v1/cases/{attack.replace(' ', '')}/close", headers=w.h("MG1")),
            "case_id",
        )
        _refused(
            client.post(
                f"/api/v1/accounts/{f.CARTER}/adjustments",
                json={
                    "command": "ADJ54",
                    "case": attack,
                    "reason": "x",
                    "tax_year": 2023,
                    "tc": "291",
                    "amount": 1,
                },
                headers=w.h("EX1"),
            ),
            "case",
        )
        _refused(
            client.post(
                f"/api/v1/accounts/{f.CARTER}/adjustments",
                json={
                    "command": "ADJ54",
                    "case": "C-9",
                    "reason": attack,
                    "tax_year": 2023,
                    "tc": "291",
                    "amount": 1,
                },
                headers=w.h("EX1"),
            ),
            "reason",
        )
        _refused(
            client.post(
                "/api/v1/self-reports",
                json={"audit_index": idx, "reason": f"typed {attack}"},
                headers=w.h("EX1"),
            ),
            "reason",
        )
        _refused(
            client.post(f"/api/v1/alerts/{aid}/review", json={"note": attack}, headers=w.h("PA1")),
            "note",
        )
        _refused(
            client.post(
                f"/api/v1/alerts/{aid}/dismiss", json={"reason": attack}, headers=w.h("PA1")
            ),
            "reason",
        )
        _refused(
            client.post(f"/api/v1/alerts/{aid}/refer", json={"note": attack}, headers=w.h("PA1")),
            "note",
        )
    _nothing_written(w, size)
    # the same calls with clean text go through (the screen is not a blanket refusal)
    r = client.get(account, params={"case": "c-9", "reason": "caller asked"}, headers=w.h("EX1"))
    assert r.status_code == 200, r.text


def test_grant_texts_are_screened(w):
    size = w.size()
    for attack in ATTACKS:
        for field in ("purpose", "basis"):
            texts = {"purpose": "support", "basis": "detail agreement", field: f"re {attack}"}
            with pytest.raises(ValidationFailed) as exc:
                grants.request_grant(
                    w.app,
                    principal="AU1",
                    commands="ENMOD",
                    classes="entity",
                    population="all",
                    start=date(2026, 3, 2),
                    days=30,
                    actor=Actor(OP),
                    **texts,
                )
            assert exc.value.problems[0].startswith(f"{field}:")
        with pytest.raises(ValidationFailed) as exc:
            grants.add_agreement(w.app, title=f"NDA {attack}", text="t", actor=Actor(OP))
        assert exc.value.problems[0].startswith("title:")
    _nothing_written(w, size)


def _web(client, w: World, seid: str) -> str:
    page = client.get("/signin")
    r = client.post(
        "/signin",
        data={
            "csrf": CSRF.search(page.text).group(1),
            "seid": seid,
            "password": w.creds[seid]["password"],
            "otp": w.code(seid),
            "next": "/research",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return CSRF.search(client.get("/research").text).group(1)


def test_identifiers_typed_as_free_text_are_refused_on_the_pages(w, client):
    idx = research.run(
        w.app, token=w.token("EX1"), command="ENMOD", tin=f.CARTER, case="C-9", interface="api"
    ).audit_index
    aid = _alert(w, idx)
    triage.assign(w.app, alert_id=aid, analyst="PA1")
    api = client.app
    with TestClient(api) as analyst:
        _web(analyst, w, "PA1")
        alert_csrf = CSRF.search(analyst.get(f"/alerts/{aid}").text).group(1)
    csrf = _web(client, w, "EX1")
    size = w.size()
    with TestClient(api, cookies=analyst.cookies) as analyst:
        for attack in ATTACKS:
            for action in ("review", "dismiss", "refer"):
                r = analyst.post(
                    f"/alerts/{aid}/{action}", data={"csrf": alert_csrf, "note": f"re {attack}"}
                )
                assert r.status_code == 422, (action, r.status_code, r.text[:300])
                assert "looks like a TIN" in r.text
    for attack in ATTACKS:
        for line in (
            f"ENMOD {f.CARTER} case={attack.replace(' ', '')}",
            f"ENMOD {f.CARTER} contact={attack.replace(' ', '')}",
            f'ENMOD {f.CARTER} case=C-9 reason="account {attack}"',
        ):
            r = client.post("/research", data={"csrf": csrf, "line": line})
            assert r.status_code == 422, (line, r.status_code)
            assert "looks like a TIN" in r.text
    _nothing_written(w, size)


def test_identifiers_typed_as_free_text_are_refused_on_the_command_line(w, capsys, monkeypatch):
    monkeypatch.setenv("IDRS_HOME", str(w.app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", w.app.settings.database_url)
    sign_in_for_cli(w.app, "EX1")
    policy.record_version(w.app)  # the operator commands record a policy version first seen
    size = w.size()
    for attack in ATTACKS:
        for opt in ("--case", "--contact", "--reason"):
            code, out, err = run_cli(capsys, "research", "ENMOD", f.CARTER, opt, attack)
            assert code == 1 and err.startswith("error: ") and opt[2:] in err, (opt, err)
            assert attack not in err and attack not in out
        code, _, err = run_cli(
            capsys, "case", "assign", "--seid", "EX1", "--tin", f.CARTER, "--case-id", attack
        )
        assert code == 1 and "case_id" in err, err
    _nothing_written(w, size)


# -- (B) ASCII digits only ------------------------------------------------------------------


ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_a_tin_in_other_digits_is_refused_on_import_and_in_research(w, client, tmp_path):
    # "9" then Arabic-Indic digits: \d took it, the synthetic check passed (int() reads them)
    # and the spouse's blind index matched nobody, so no conflict was derived
    spouse = "9" + "00-12-3457"[1:].translate(ARABIC)
    line = {
        "tin": "900-12-4000",
        "name": {"first": "Dana", "middle": "", "last": "Mills", "suffix": ""},
        "date_of_birth": "1981-01-01",
        "address": {"street": "1 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
        "returns": [
            {
                "tax_year": 2023,
                "filing_status": "MFJ",
                "spouse_tin": spouse,
                "agi": 50000,
                "total_tax": 5000,
            }
        ],
    }
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    size = w.size()
    with pytest.raises(ValidationFailed) as exc:
        import_file(w.app, path, actor=OP)
    assert any(p.startswith("line 1: returns[0].spouse_tin") for p in exc.value.problems), (
        exc.value.problems
    )
    assert w.size() == size + 1  # only the refused run itself (data:import:run failure)
    other = f.CARTER.translate(ARABIC)
    w.h("EX1")
    size = w.size()
    r = client.get(f"/api/v1/accounts/{other}/ENMOD", params={"case": "C-9"}, headers=w.h("EX1"))
    assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    with pytest.raises(IdrsError):
        research.run(
            w.app, token=w.token("EX1"), command="ENMOD", tin=other, case="C-9", interface="api"
        )
    assert w.size() == size  # refused as bad input: nothing decided, nothing recorded


# -- (C) every entry has an actor and an origin ------------------------------------------------


def test_every_entry_names_an_actor_and_an_origin_address(w, client, capsys, monkeypatch):
    # research allowed and refused, a case through the API, the taxpayer's accounting, an
    # alert worked and referred, a self-report, a detection run, a CLI command, an expiry
    idx = research.run(
        w.app,
        token=w.token("EX1"),
        command="ENMOD",
        tin=f.CARTER,
        case="C-9",
        interface="api",
        address="192.0.2.9",
    ).audit_index
    with pytest.raises(AccessDenied):
        research.run(
            w.app,
            token=w.token("EX1"),
            command="ENMOD",
            tin="900-40-0302",
            interface="api",
            address="192.0.2.9",
        )
    assert (
        client.post(
            "/api/v1/cases",
            json={"seid": "EX1", "tin": f.CARTER, "case_id": "C-10"},
            headers=w.h("MG1"),
        ).status_code
        == 201
    )
    r = client.get(f"/api/v1/taxpayers/{f.CARTER}/accesses", headers=w.h("AU1"))
    assert r.status_code == 200, r.text
    aid = _alert(w, idx)
    for step in ("assign", "refer"):
        r = client.post(
            f"/api/v1/alerts/{aid}/{step}",
            json={"note": "to TIGTA"} if step == "refer" else None,
            headers=w.h("PA1"),
        )
        assert r.status_code == 200, r.text
    r = client.post(
        "/api/v1/self-reports", json={"audit_index": idx, "reason": "mistyped"}, headers=w.h("EX1")
    )
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/detection/runs", json={}, headers=w.h("PA1")).status_code == 200
    monkeypatch.setenv("IDRS_HOME", str(w.app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", w.app.settings.database_url)
    code, _, err = run_cli(
        capsys, "case", "assign", "--seid", "EX1", "--tin", f.CARTER, "--case-id", "C-11"
    )
    assert code == 0, err
    assign_case(w.app, seid="EX1", tin=f.CARTER, case_id="C-12", actor=Actor(OP))
    # idle expiry: the refused research is the session's employee's, not "anonymous"
    w.app.clock.advance(minutes=w.app.settings.session_idle_minutes + 1)
    r = client.get(f"/api/v1/accounts/{f.CARTER}/ENMOD", params={"case": "C-9"}, headers=w.h("EX1"))
    assert r.status_code == 401 and r.json()["reasons"][0]["code"] == "SESSION_EXPIRED"

    entries = [json.loads(leaf) for leaf in w.leaves()]
    for e in entries:
        assert isinstance(e["actor"], str) and e["actor"].strip(), e
        assert isinstance(e["origin"]["address"], str) and e["origin"]["address"].strip(), e
    by_type: dict[str, list[dict]] = {}
    for e in entries:
        by_type.setdefault(e["type"], []).append(e)
    for t in (
        "taxpayer:accesses:read",
        "detect:alert:assign",
        "detect:alert:refer",
        "detect:run:complete",
        "admin:case:assign",
    ):
        assert t in by_type, sorted(by_type)
        assert by_type[t][0]["origin"]["interface"] == "api"
    assert by_type["taxpayer:accesses:read"][0]["origin"]["address"] == "testclient"
    assert by_type["detect:alert:refer"][0]["origin"]["address"] == "testclient"
    assert by_type["access:research:self-report"][0]["origin"]["address"] == "testclient"
    cli_case = [e for e in by_type["admin:case:assign"] if e["object"]["case_id"] == "C-11"]
    assert cli_case[0]["origin"] == {"interface": "cli", "address": LOCAL_ORIGIN}
    last = entries[-1]
    assert last["type"] == "access:research:decide" and last["reasons"] == ["SESSION_EXPIRED"]
    assert last["actor"] == "EX1" and last["origin"]["address"] == "testclient"


def test_an_entry_without_an_actor_is_never_written(w):
    size = w.size()
    for nobody in ("", "  ", None):
        with pytest.raises(ValueError, match="actor"):
            make_event(
                EventType.AUDIT_LOG_VERIFY,
                time=w.app.clock.now(),
                actor=nobody,
                outcome="success",
                interface="cli",
            )
    assert w.size() == size


def test_research_after_idle_expiry_is_recorded_under_the_employee(w):
    token = w.token("EX1")
    w.app.clock.advance(minutes=w.app.settings.session_idle_minutes + 1)
    with pytest.raises(AccessDenied) as exc:
        research.run(w.app, token=token, command="ENMOD", tin=f.CARTER, case="C-9", interface="cli")
    assert exc.value.codes == ["SESSION_EXPIRED"]
    entry = json.loads(w.leaves()[exc.value.audit_index])
    assert entry["actor"] == "EX1" and entry["origin"]["address"] == LOCAL_ORIGIN
    # the session is ended now: a second try is recorded under the employee too
    with pytest.raises(AccessDenied) as exc:
        research.run(w.app, token=token, command="ENMOD", tin=f.CARTER, case="C-9", interface="cli")
    assert json.loads(w.leaves()[exc.value.audit_index])["actor"] == "EX1"
    with pytest.raises(AccessDenied) as exc:  # a token that names nobody stays anonymous
        research.run(w.app, token="not-a-token", command="ENMOD", tin=f.CARTER, interface="cli")
    assert json.loads(w.leaves()[exc.value.audit_index])["actor"] == "anonymous"
