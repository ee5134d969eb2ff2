"""Disclosures to other agencies under § 6103(i)(2), record by record (issue 16.2, 16.3, 16.5).

Done when: a request file modelled on the 2025 case (many records without an address, or
with placeholders) is refused exactly on those records, with the reason, and the rest are
answered within the statute's scope ("address confirmed: yes", never an address); each
record's decision is proven against the root committed in the batch's one audit entry by an
independent verifier written here from RFC 6962 alone (hashlib only).

And the attempts to get around it: no rank, a cap split across batches by the same official,
the address of someone else, an ambiguous name, a person principal on the endpoint, an
agreement expired or revoked.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from idrs.api.app import create_app
from idrs.audit.models import AuditEntry
from idrs.config import get_settings
from idrs.db import session_scope
from idrs.disclosure import service as disclosure
from idrs.disclosure.models import DisclosureAgreement, DisclosureBatch, DisclosureDecision
from idrs.people import service, systems, totp
from tests.integration import factories as f
from tests.integration.cli_helpers import run_cli, sign_in_for_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

AGENCY = "Department of Homeland Security"
RANK = "special agent in charge"
PEOPLE = [(f"900-60-{1000 + i:04d}", f"Pat{chr(65 + i)}", f"Doe{chr(65 + i)}",
           {"street": f"{100 + i} Oak Avenue", "city": "Columbus", "state": "OH", "zip": "43215"})
          for i in range(12)]
SMITH_HOME = {"street": "7 Pine Rd", "city": "Akron", "state": "OH", "zip": "44308"}
PLACEHOLDERS = [
    {"street": "Failed to Provide", "city": "Failed to Provide", "state": "TX", "zip": "75201"},
    {"street": "Unknown Address", "city": "Houston", "state": "TX", "zip": "77002"},
    {"street": "NA NA", "city": "NA", "state": "NA", "zip": "00000"},
    {"street": "Don't Care 12345", "city": "Dallas", "state": "TX", "zip": "75201"},
    {"street": "100 Oak Avenue", "city": "Columbus", "state": "OH", "zip": "00000"},
    {"street": "", "city": "", "state": "", "zip": ""},
]


def _entries(app) -> list[dict[str, Any]]:
    with session_scope(app.engine) as s:
        return [json.loads(bytes(x)) for x in
                s.scalars(select(AuditEntry.leaf_input).order_by(AuditEntry.idx))]


def _size(app) -> int:
    with session_scope(app.engine) as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


@pytest.fixture
def world(app):
    with session_scope(app.engine) as s:
        for tin, first, last, addr in PEOPLE:
            f.taxpayer(app, s, tin, first, last, address=addr)
        f.taxpayer(app, s, "900-61-0001", "John", "Smith", address=SMITH_HOME)
        f.taxpayer(app, s, "900-61-0002", "John", "Smith", address=SMITH_HOME)
    f.carter_household(app)
    creds = {}
    for seid, role in (("PO1", "privacy_officer"), ("EX1", "examiner"), ("AU1", "auditor")):
        creds[seid] = service.create_employee(
            app, unax_attested_at=app.clock.now(), seid=seid, name=seid,
            tin=f"900-47-{7100 + len(creds):04d}", roles=role)
    ice = systems.add_system(app, name="dhs-ice", kind="agency_system", agency=AGENCY,
                             actor="os:test")
    state = systems.add_system(app, name="state-dor", kind="agency_system", agency="State DOR",
                               actor="os:test")
    feed = systems.add_system(app, name="telephony", kind="contact_feed", actor="os:test")
    agreement = disclosure.add_agreement(
        app, system="dhs-ice", basis="6103i2", agency=AGENCY, federal=True, ranks=[RANK],
        cap_official=40, cap_investigation=40, window_days=30, start=None, days=365,
        actor="os:test")
    disclosure.add_agreement(
        app, system="state-dor", basis="6103i2", agency="State DOR", federal=False,
        ranks=[RANK], cap_official=20, cap_investigation=20, window_days=30, start=None,
        days=365, actor="os:test")
    api = create_app(app)
    with TestClient(api, follow_redirects=False) as client:
        tokens = {}
        for seid, c in creds.items():
            r = client.post("/api/v1/sessions", json={
                "seid": seid, "password": c["password"],
                "otp": totp.code_at(c["totp_secret"], app.clock.now())})
            assert r.status_code == 201, r.text
            tokens[seid] = r.json()["token"]
        for name, c in (("ice", ice), ("state", state), ("feed", feed)):
            r = client.post("/api/v1/system-sessions",
                            json={"system": c["system"], "secret": c["secret"]})
            assert r.status_code == 201, r.text
            tokens[name] = r.json()["token"]
        yield {"app": app, "client": client, "tokens": tokens, "ice": ice,
               "agreement": agreement}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _request(**kw: str) -> dict[str, str]:
    return {"signatory": "R. Alvarez", "signatory_rank": RANK, "agency": AGENCY,
            "proceeding": "INV-2025-0001", "official": "Agent K. Moss", **kw}


def _rec(tin: str | None, first: str, last: str, address: dict[str, str] | None,
         **kw: str) -> dict[str, Any]:
    r: dict[str, Any] = {"first_name": first, "last_name": last, **kw}
    if tin:
        r["tin"] = tin
    if address is not None:
        r["address"] = address
    return r


def _post(w, records, token="ice", request=None, basis="6103i2"):
    return w["client"].post("/api/v1/disclosures", headers=_h(w["tokens"][token]), json={
        "basis": basis, "request": request or _request(), "records": records})


# -- an independent RFC 6962 verifier (hashlib only) ----------------------------------------


def _rfc6962_root_from_path(leaf_input: bytes, index: int, size: int,
                            path: list[bytes]) -> bytes:
    """RFC 6962 section 2.1.1: recompute the root from a leaf and its audit path by the
    recursive definition of PATH (the largest power of two k < n splits D[0:n])."""
    def sha(b: bytes) -> bytes:
        return hashlib.sha256(b).digest()

    def walk(m: int, n: int, proof: list[bytes], leaf: bytes) -> bytes:
        if n == 1:
            assert not proof, "proof too long"
            return leaf
        k = 1
        while k * 2 < n:
            k *= 2
        *rest, last = proof
        if m < k:  # PATH(m, D[0:n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            return sha(b"\x01" + walk(m, k, rest, leaf) + last)
        return sha(b"\x01" + last + walk(m - k, n - k, rest, leaf))

    return walk(index, size, list(path), sha(b"\x00" + leaf_input))


# -- the 2025 case, replayed ----------------------------------------------------------------


def test_2025_replay_refuses_exactly_the_records_without_an_address(world):
    app = world["app"]
    good = [_rec(tin, first, last, addr) for tin, first, last, addr in PEOPLE]
    by_name = [_rec(None, first, last, addr) for _tin, first, last, addr in PEOPLE[:3]]
    missing = [_rec(tin, first, last, None) for tin, first, last, _ in PEOPLE[:4]]
    placeholder = [_rec(tin, first, last, PLACEHOLDERS[i % len(PLACEHOLDERS)])
                   for i, (tin, first, last, _a) in enumerate(PEOPLE[:len(PLACEHOLDERS)])]
    records = good + missing + by_name + placeholder
    expect_refused = set(range(len(good) + 1, len(good) + len(missing) + 1)) | set(
        range(len(records) - len(placeholder) + 1, len(records) + 1))
    before = _size(app)
    r = _post(world, records)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "decided" and len(out["decisions"]) == len(records)
    refused = {d["line"] for d in out["decisions"] if d["outcome"] == "refused"}
    assert refused == expect_refused
    for d in out["decisions"]:
        if d["line"] in expect_refused:
            assert d["reasons"] == ["ADDRESS_MISSING"], d  # placeholders count as missing
            assert d["answer"] == {}
        else:
            assert d["outcome"] == "disclosed" and d["reasons"] == []
            # within the statute's scope: a yes, never an address of the master file's
            assert d["answer"] == {"address_confirmed": True}
    # ONE audit entry for the whole batch, committing the root; nothing plaintext in it
    new = _entries(app)[before:]
    decide = [e for e in new if e["type"] == "disclosure:batch:decide"]
    assert len(decide) == 1 and decide[0]["object"]["root"] == out["root"]
    assert decide[0]["actor"] == "system:dhs-ice" and out["audit_index"] == before + len(new) - 1
    text = json.dumps(new)
    for tin, first, last, addr in PEOPLE:
        assert tin not in text and tin.replace("-", "") not in text and last not in text
        assert addr["street"] not in text
    # the requester reads the same decisions back, and only its own batches
    again = world["client"].get(f"/api/v1/disclosures/{out['batch_id']}",
                                headers=_h(world["tokens"]["ice"]))
    assert again.status_code == 200
    assert [d["outcome"] for d in again.json()["decisions"]] == \
        [d["outcome"] for d in out["decisions"]]
    other = world["client"].get(f"/api/v1/disclosures/{out['batch_id']}",
                                headers=_h(world["tokens"]["state"]))
    assert other.status_code == 404


def test_each_decision_verifies_against_the_committed_root(world, cli):
    app = world["app"]
    records = [_rec(tin, a, b, addr) for tin, a, b, addr in PEOPLE[:5]] + [
        _rec(PEOPLE[5][0], PEOPLE[5][1], PEOPLE[5][2], None)]
    out = _post(world, records).json()
    entry = _entries(app)[out["audit_index"]]
    assert entry["type"] == "disclosure:batch:decide"
    for line in range(1, len(records) + 1):
        p = world["client"].get(f"/api/v1/disclosures/{out['batch_id']}/records/{line}/proof",
                                headers=_h(world["tokens"]["ice"])).json()
        doc = p["document"].encode()
        assert hashlib.sha256(b"\x00" + doc).hexdigest() == p["leaf_hash"]
        root = _rfc6962_root_from_path(doc, p["leaf_index"], p["tree_size"],
                                       [bytes.fromhex(x) for x in p["proof"]])
        assert root.hex() == p["root"] == entry["object"]["root"]
        d = json.loads(doc)
        assert d["line"] == line and d["outcome"] == out["decisions"][line - 1]["outcome"]
    # a changed decision no longer verifies
    forged = json.loads(doc)
    forged["outcome"] = "disclosed"
    bad = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    assert _rfc6962_root_from_path(bad, p["leaf_index"], p["tree_size"],
                                   [bytes.fromhex(x) for x in p["proof"]]).hex() != p["root"]
    # the CLI (an auditor signed in) gives the same proof
    sign_in_for_cli(app, "AU1")
    code, text, err = cli("disclosure", "proof", out["batch_id"], "2")
    assert code == 0, err
    assert json.loads(text)["root"] == entry["object"]["root"]


# -- attempts to get around it --------------------------------------------------------------


def test_a_request_without_the_required_rank_or_signatory_is_refused(world):
    records = [_rec(tin, a, b, addr) for tin, a, b, addr in PEOPLE[:2]]
    out = _post(world, records, request=_request(signatory_rank="analyst")).json()
    assert {d["outcome"] for d in out["decisions"]} == {"refused"}
    assert all(d["reasons"] == ["SIGNATORY_RANK"] for d in out["decisions"])
    out = _post(world, records, request=_request(signatory="", signatory_rank="")).json()
    assert all(d["reasons"] == ["SIGNATORY_MISSING"] for d in out["decisions"])
    # no proceeding and no official: each record names neither
    req = _request(proceeding="", official="")
    out = _post(world, records, request=req).json()
    assert all(d["reasons"] == ["PROCEEDING_MISSING", "OFFICIAL_MISSING"]
               for d in out["decisions"])


def test_a_cap_split_across_batches_is_held_for_the_officer(world):
    app = world["app"]
    tin, a, b, addr = PEOPLE[0]
    first = [_rec(tin, a, b, addr)] * 25
    r = _post(world, first)
    assert r.status_code == 201 and r.json()["status"] == "decided"
    # the same official, spelled differently, 20 more within the window: 45 > 40
    second = [_rec(tin, a, b, addr, official="agent  k. MOSS", proceeding=f"INV-{i}")
              for i in range(20)]
    before = _size(app)
    r = _post(world, second)
    assert r.status_code == 202, r.text
    held = r.json()
    assert held["status"] == "held" and held["decisions"] == [] and held["root"] is None
    over = [o for o in held["counts"]["officials"] if o["over"]]
    assert over == [{"name": "AGENT K. MOSS", "batch": 20, "window": 45, "cap": 40,
                     "over": True}]
    hold = _entries(app)[before:]
    assert [e["type"] for e in hold] == ["disclosure:batch:hold"]
    assert "MOSS" not in json.dumps(hold)  # counts only in the log
    # nothing is readable until decided
    r = world["client"].get(f"/api/v1/disclosures/{held['batch_id']}/records/1/proof",
                            headers=_h(world["tokens"]["ice"]))
    assert r.status_code == 409
    # the queue shows it with its counts; an examiner may neither see nor approve
    q = world["client"].get("/api/v1/disclosure-queue", headers=_h(world["tokens"]["PO1"]))
    assert q.status_code == 200
    assert [b["batch_id"] for b in q.json()["held"]] == [held["batch_id"]]
    url = f"/api/v1/disclosure-batches/{held['batch_id']}/approve"
    assert world["client"].post(url, headers=_h(world["tokens"]["EX1"])).status_code == 403
    assert world["client"].post(url, headers=_h(world["tokens"]["ice"])).status_code in (401, 403)
    # the officer approves: decided record by record, one entry with the root
    r = world["client"].post(url, headers=_h(world["tokens"]["PO1"]))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "decided" and done["disclosed"] == 20
    e = _entries(app)[done["audit_index"]]
    assert e["type"] == "disclosure:batch:decide" and e["detail"]["approved"]["by"] == "PO1"
    assert world["client"].post(url, headers=_h(world["tokens"]["PO1"])).status_code == 409
    # a third batch by the same official is held again; rejected: all CAP_NOT_APPROVED
    r = _post(world, [_rec(tin, a, b, addr)])
    assert r.status_code == 202
    bid = r.json()["batch_id"]
    r = world["client"].post(f"/api/v1/disclosure-batches/{bid}/reject",
                             headers=_h(world["tokens"]["PO1"]))
    assert r.status_code == 200 and r.json()["decisions"][0]["reasons"] == ["CAP_NOT_APPROVED"]
    mine = world["client"].get("/api/v1/disclosures", headers=_h(world["tokens"]["ice"])).json()
    assert {b["status"] for b in mine["batches"]} == {"decided", "rejected"}


def test_the_address_of_someone_else_is_not_confirmed(world):
    (tin, a, b, _addr), (_t2, _a2, _b2, other) = PEOPLE[0], PEOPLE[1]
    out = _post(world, [
        _rec(tin, a, b, other),  # the right person, another person's address
        _rec(f.CARTER_SPOUSE, "Ann", "Carter", f.ELM),  # Ben's TIN under Ann's name
        _rec("900-99-9999", "Nobody", "Here", other),  # no such TIN
        _rec(tin, a, b, {**_addr, "street": "100 OAK AVE."}),  # the same address, respelled
    ]).json()
    assert [d["reasons"] for d in out["decisions"]] == [
        ["ADDRESS_NOT_ON_FILE"], ["NAME_MISMATCH"], ["TAXPAYER_NOT_FOUND"], []]


def test_an_ambiguous_name_match_is_refused_not_guessed(world):
    out = _post(world, [
        _rec(None, "John", "Smith", SMITH_HOME),  # two John Smiths live there
        _rec(None, "Ann", "Carter", f.ELM),  # one Ann Carter at Elm St: matched by name+address
        _rec(None, "John", "Smith", None),  # a name alone matches nothing
    ]).json()
    assert out["decisions"][0]["reasons"] == ["AMBIGUOUS_MATCH"]
    assert out["decisions"][1]["outcome"] == "disclosed"
    assert out["decisions"][2]["reasons"] == ["ADDRESS_MISSING"]


def test_a_person_principal_or_another_kind_of_system_is_refused(world):
    app = world["app"]
    records = [_rec(tin, a, b, addr) for tin, a, b, addr in PEOPLE[:1]]
    before = _size(app)
    r = _post(world, records, token="EX1")
    assert r.status_code == 403 and "WRONG_PRINCIPAL" in r.text
    r = _post(world, records, token="PO1")
    assert r.status_code == 403
    r = _post(world, records, token="feed")
    assert r.status_code == 403
    types = [e["type"] for e in _entries(app)[before:]]
    assert types == ["auth:system:deny"] * 3
    with session_scope(app.engine) as s:
        assert s.scalar(select(func.count()).select_from(DisclosureBatch)) == 0


def test_an_expired_revoked_missing_or_non_federal_agreement_refuses_everything(world):
    app = world["app"]
    records = [_rec(tin, a, b, addr) for tin, a, b, addr in PEOPLE[:2]]
    out = _post(world, records, token="state",
                request=_request(agency="State DOR")).json()
    assert all(d["reasons"] == ["REQUESTER_NOT_FEDERAL"] for d in out["decisions"])
    # the request names another agency than the agreement's
    out = _post(world, records, request=_request(agency="Some Other Agency")).json()
    assert all(d["reasons"] == ["AGENCY_NOT_NAMED"] for d in out["decisions"])
    # the latest agreement governs: one whose term is over
    old = disclosure.add_agreement(
        app, system="dhs-ice", basis="6103i2", agency=AGENCY, federal=True, ranks=[RANK],
        cap_official=40, cap_investigation=40, window_days=30,
        start=app.clock.now().date() - timedelta(days=400), days=30, actor="os:test")
    out = _post(world, records).json()
    assert all(d["reasons"] == ["AGREEMENT_EXPIRED"] for d in out["decisions"])
    soon = disclosure.add_agreement(
        app, system="dhs-ice", basis="6103i2", agency=AGENCY, federal=True, ranks=[RANK],
        cap_official=40, cap_investigation=40, window_days=30,
        start=app.clock.now().date() + timedelta(days=3), days=30, actor="os:test")
    out = _post(world, records).json()
    assert all(d["reasons"] == ["AGREEMENT_NOT_STARTED"] for d in out["decisions"])
    disclosure.revoke_agreement(app, agreement_id=soon["agreement_id"], actor="os:test")
    out = _post(world, records).json()
    assert all(d["reasons"] == ["AGREEMENT_REVOKED"] for d in out["decisions"])
    assert old["state"] == "expired"
    # a system with no agreement at all for the basis
    with session_scope(app.engine) as s:
        s.execute(delete(DisclosureDecision))
        s.execute(delete(DisclosureBatch))
        s.execute(delete(DisclosureAgreement))
    out = _post(world, records).json()
    assert all(d["reasons"] == ["NO_AGREEMENT"] for d in out["decisions"]), out["decisions"]


def test_bad_input_is_refused_with_the_line_and_writes_nothing(world):
    app = world["app"]
    before = _size(app)
    for records, problem in (
        ([], "records"),
        ([{"first_name": 5}], "line 1: first_name"),
        ([{"first_name": "A", "last_name": "B"}, "x"], "line 2"),
        ([{"first_name": "A", "ssn": "1"}], "line 1: ssn"),
        ([{"first_name": "A", "address": "12 Main"}], "line 1: address"),
    ):
        r = _post(world, records)
        assert r.status_code == 422, r.text
        assert problem in r.text
    r = _post(world, [{"first_name": "A"}], basis="6103x")
    assert r.status_code == 422 and "basis" in r.text
    assert _size(app) == before
    with session_scope(app.engine) as s:
        assert s.scalar(select(func.count()).select_from(DisclosureBatch)) == 0


# -- the accounting of disclosures and the oversight report ---------------------------------


def test_the_taxpayer_accounting_lists_each_disclosure(world):
    tin, a, b, addr = PEOPLE[0]
    _post(world, [_rec(tin, a, b, addr), _rec(PEOPLE[1][0], PEOPLE[1][1], PEOPLE[1][2], None)])
    r = world["client"].get(f"/api/v1/taxpayers/{tin}/accesses",
                            headers=_h(world["tokens"]["PO1"]))
    assert r.status_code == 200, r.text
    (d,) = r.json()["disclosures"]
    assert d["agency"] == AGENCY and d["basis"] == "6103i2"
    assert d["statute"] == "26 U.S.C. § 6103(i)(2)" and d["date"] == "2026-03-02"
    r = world["client"].get(f"/api/v1/taxpayers/{PEOPLE[1][0]}/accesses",
                            headers=_h(world["tokens"]["PO1"]))
    assert r.json()["disclosures"] == []  # refused: nothing was disclosed


def test_the_oversight_report_of_an_agency_system(world):
    from idrs.audit.checkpoint import ensure_signing_key
    from idrs.audit.events import Actor
    from idrs.oversight import render, report

    ensure_signing_key(world["app"].settings.home, world["app"].settings.audit_origin)
    tin, a, b, addr = PEOPLE[0]
    _post(world, [_rec(tin, a, b, addr), _rec(tin, a, b, None)])
    rep = report.build(world["app"], system="dhs-ice", actor=Actor("PO1", "api"))
    (sysrep,) = rep["systems"]
    assert sysrep["potential"]["bases_in_force"] == ["6103i2"]
    assert sysrep["potential"]["scope"] == {"6103i2": ["address_confirmed"]}
    assert sysrep["potential"]["taxpayers_reachable"] == rep["population"]["taxpayers"]
    act = sysrep["actual"]
    assert (act["records"], act["disclosed"], act["refused"]) == (2, 1, 1)
    assert act["refusals_by_reason"] == {"ADDRESS_MISSING": 1}
    assert act["distinct_taxpayers_disclosed"] == 1
    html = render.render(rep, "html").decode()
    assert "Disclosures of agency system dhs-ice" in html and "ADDRESS_MISSING" in html
    assert "disclosures,dhs-ice,disclosed,,1" in render.render(rep, "csv").decode()


# -- the CLI --------------------------------------------------------------------------------


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


def test_the_cli_submits_as_the_system_and_the_officer_approves(world, cli, tmp_path):
    app = world["app"]
    secret = tmp_path / "secret"
    secret.write_text(world["ice"]["secret"])
    tin, a, b, addr = PEOPLE[0]
    body = {"request": _request(), "records": [_rec(tin, a, b, addr), _rec(tin, a, b, None)]}
    file = tmp_path / "request.json"
    file.write_text(json.dumps(body))
    code, out, err = cli("disclosure", "submit", str(file), "--basis", "6103i2", "--system",
                         "dhs-ice", "--secret-file", str(secret))
    assert code == 0, err
    res = json.loads(out)
    assert [d["outcome"] for d in res["decisions"]] == ["disclosed", "refused"]
    # a wrong secret: refused, nothing submitted
    secret.write_text("wrong")
    code, _out, err = cli("disclosure", "submit", str(file), "--basis", "6103i2", "--system",
                          "dhs-ice", "--secret-file", str(secret))
    assert code != 0
    # held over the cap, approved from the command line by the signed-in officer
    body["records"] = [_rec(tin, a, b, addr)] * 45
    file.write_text(json.dumps(body))
    secret.write_text(world["ice"]["secret"])
    code, out, err = cli("disclosure", "submit", str(file), "--basis", "6103i2", "--system",
                         "dhs-ice", "--secret-file", str(secret))
    held = json.loads(out)
    assert held["status"] == "held"
    sign_in_for_cli(app, "EX1")
    code, _out, err = cli("disclosure", "approve", held["batch_id"])
    assert code != 0
    sign_in_for_cli(app, "PO1")
    code, out, err = cli("disclosure", "queue", "--json")
    assert code == 0 and json.loads(out)["held"][0]["batch_id"] == held["batch_id"]
    code, out, err = cli("disclosure", "approve", held["batch_id"])
    assert code == 0, err
    assert json.loads(out)["disclosed"] == 45
    code, out, err = cli("disclosure", "agreement", "list", "--json")
    assert code == 0 and json.loads(out)[0]["state"] == "active"
    code, out, err = cli("taxpayer", "accesses", "--tin", tin, "--json")
    assert code == 0 and len(json.loads(out)["disclosures"]) == 46


# -- the pages ------------------------------------------------------------------------------


def test_the_pages_show_the_queue_the_batch_and_the_accounting(world):
    from idrs.web.security import SESSION_COOKIE, session_csrf

    app, client = world["app"], world["client"]
    tin, a, b, addr = PEOPLE[0]
    _post(world, [_rec(tin, a, b, addr)] * 30)
    held = _post(world, [_rec(tin, a, b, addr), _rec(tin, a, b, PLACEHOLDERS[0])] * 10).json()
    assert held["status"] == "held"
    # an examiner is refused the queue
    client.cookies.set(SESSION_COOKIE, world["tokens"]["EX1"])
    assert client.get("/disclosures").status_code == 403
    token = world["tokens"]["PO1"]
    client.cookies.set(SESSION_COOKIE, token)
    page = client.get("/disclosures")
    assert page.status_code == 200
    assert held["batch_id"] in page.text and "AGENT K. MOSS" in page.text
    r = client.post(f"/disclosures/{held['batch_id']}/approve",
                    data={"csrf": session_csrf(app, token)})
    assert r.status_code == 303
    page = client.get(f"/disclosures/{held['batch_id']}")
    assert page.status_code == 200 and "ADDRESS_MISSING" in page.text
    assert "address confirmed" in page.text
    page = client.get("/disclosures?system=dhs-ice&status=decided")
    assert page.status_code == 200 and held["batch_id"] in page.text
    r = client.post("/taxpayers", data={"tin": tin, "csrf": session_csrf(app, token)})
    assert r.status_code == 200 and "26 U.S.C. § 6103(i)(2)" in r.text and AGENCY in r.text
    client.cookies.clear()
