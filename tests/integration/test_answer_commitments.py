"""Answer commitments (issue 14.1/14.2): every allowed answer is committed in its entry, and
an opening reproduces it from history, catches a history edit, and checks independently."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import date
from types import SimpleNamespace

import pytest
import rfc8785
from fastapi.testclient import TestClient
from sqlalchemy import text

from idrs import research
from idrs.audit import commitment
from idrs.db import session_scope
from idrs.errors import AccessDenied, NotFound
from idrs.masterfile.models import TaxModule, Transaction
from idrs.oversight import opening
from tests.integration import factories as f
from tests.integration.audit_helpers import prepare
from tests.integration.cli_helpers import run_cli, sign_in_for_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture
from tests.integration.grants_world import OPERATOR as OPERATOR_
from tests.integration.test_research import _entry, _sign_in

SECADMIN = SimpleNamespace(seid="SA001", active=True, role_set=frozenset({"security_admin"}))
EXAMINER = SimpleNamespace(seid="EX001", active=True, role_set=frozenset({"examiner"}))

#: every research command code, with what it needs
CALLS = [
    ("ENMOD", {}),
    ("IMFOL", {}),
    ("TXMOD", {"year": 2023}),
    ("RTVUE", {"year": 2023}),
    ("INOLE", {}),
    ("IRPTR", {}),
    ("TXMOD", {"year": 2023, "as_of": date(2025, 12, 31)}),
    ("ENMOD", {"as_of": date(2025, 12, 31)}),
]


@pytest.fixture
def world(app):
    prepare(app)
    f.carter_household(app)
    token = _sign_in(app, "EX001", "examiner", "900-40-0001")
    f.open_case(app, "EX001", f.CARTER, "C-1")
    return app, token


def _run(app, token, command, **kw):
    return research.run(
        app, token=token, command=command, tin=f.CARTER, case="C-1", interface="test", **kw
    )


def _names(app, token):
    return research.run(
        app,
        token=token,
        command="NAMES",
        tin=None,
        name="carter",
        reason="caller on the phone",
        interface="test",
    )


def _hand_digest(salt: bytes, doc: dict) -> str:
    return hashlib.sha256(salt + rfc8785.dumps(doc)).hexdigest()


def _salt(app, idx: int) -> bytes:
    with app.engine.connect() as conn:
        row = conn.execute(
            text("SELECT salt_enc, recipe_enc FROM audit_answer WHERE idx = :i"), {"i": idx}
        ).one()
    return commitment.stored(app.keyring, bytes(row[0]), bytes(row[1]))[0]


def test_every_kind_of_research_answer_is_committed_and_opens(world):
    app, token = world
    answers = [_run(app, token, cmd, **kw) for cmd, kw in CALLS] + [_names(app, token)]
    salts = set()
    for ans in answers:
        entry = _entry(app, ans.audit_index)
        salt = _salt(app, ans.audit_index)
        salts.add(salt)
        assert len(salt) == 32
        # the leaf commits to exactly the document that left, recomputed by hand
        assert entry["object"]["answer"] == _hand_digest(salt, ans.document())
        assert "salt" not in json.dumps(entry)
        doc = opening.open_answer(app, SECADMIN, ans.audit_index)
        assert doc["matches"] is True, (ans.command, doc["answer"], ans.document())
        assert doc["answer"] == ans.document()
        assert opening.check_opening(json.loads(json.dumps(doc)))["ok"]
        opened = _entry(app, doc["audit_index"])
        assert opened["type"] == "audit:answer:open" and opened["actor"] == "SA001"
        assert opened["object"] == {"opened": ans.audit_index, "matches": True}
    assert len(salts) == len(answers)  # a fresh salt per answer


def test_a_denied_call_commits_no_answer(world):
    app, _ = world
    other = _sign_in(app, "EX002", "examiner", "900-40-0002")
    with pytest.raises(AccessDenied) as denied:
        _run(app, other, "ENMOD")  # no case: refused
    assert "answer" not in _entry(app, denied.value.audit_index)["object"]
    with pytest.raises(opening.NoCommitment):
        opening.open_answer(app, SECADMIN, denied.value.audit_index)


def _edit_amount(app) -> None:
    """An attacker with the database rewrites a posted amount (no service, raw SQL)."""
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE txn SET amount_cents = amount_cents + 100000 WHERE tc = '150'"))


def _edit_address(app) -> None:
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE address_record SET street = '99 Forged Rd', city = 'Elsewhere'"))


@pytest.mark.parametrize(
    ("command", "kw", "edit"),
    [
        ("TXMOD", {"year": 2023}, _edit_amount),
        ("IMFOL", {}, _edit_amount),
        ("TXMOD", {"year": 2023, "as_of": date(2025, 12, 31)}, _edit_amount),
        ("ENMOD", {}, _edit_address),
        ("NAMES", {}, _edit_address),
    ],
)
def test_an_edit_of_history_is_caught_by_the_opening(world, command, kw, edit):
    app, token = world
    ans = _names(app, token) if command == "NAMES" else _run(app, token, command, **kw)
    assert opening.open_answer(app, SECADMIN, ans.audit_index)["matches"] is True
    edit(app)
    doc = opening.open_answer(app, SECADMIN, ans.audit_index)
    assert doc["matches"] is False
    assert _entry(app, doc["audit_index"])["object"]["matches"] is False
    with pytest.raises(opening.OpeningInvalid, match="not the commitment"):
        opening.check_opening(doc)


def test_a_later_posting_does_not_disturb_an_opening(world):
    """History only grows: what was posted after the answer is left out when reproducing it."""
    app, token = world
    ans = _run(app, token, "TXMOD", year=2023)
    app.clock.advance(seconds=60)
    with session_scope(app.engine) as s:
        mod = s.query(TaxModule).filter(TaxModule.tax_year == 2023).first()
        s.add(
            Transaction(
                module_id=mod.id,
                tc="290",
                txn_date=date(2026, 3, 4),
                amount_cents=5000,
                source="import",
                posted_at=app.clock.now(),
            )
        )
    assert _run(app, token, "TXMOD", year=2023).data != ans.data  # the account did change
    assert opening.open_answer(app, SECADMIN, ans.audit_index)["matches"] is True


def test_only_security_staff_open_and_a_refusal_is_recorded(world):
    app, token = world
    ans = _run(app, token, "ENMOD")
    for who in (EXAMINER, None, SimpleNamespace(**{**vars(SECADMIN), "active": False})):
        with pytest.raises(AccessDenied) as denied:
            opening.open_answer(app, who, ans.audit_index)
        refused = _entry(app, denied.value.audit_index)
        assert refused["type"] == "audit:answer:open" and refused["outcome"] == "denied"
        assert refused["reasons"] == ["NOT_IN_PROFILE"]


def test_check_opening_fails_on_a_changed_salt_answer_leaf_or_proof(world):
    app, token = world
    ans = _run(app, token, "RTVUE", year=2023)
    doc = json.loads(json.dumps(opening.open_answer(app, SECADMIN, ans.audit_index)))
    assert opening.check_opening(doc)["ok"]

    bad = copy.deepcopy(doc)
    salt = bytearray(base64.b64decode(bad["salt"]))
    salt[0] ^= 1
    bad["salt"] = base64.b64encode(bytes(salt)).decode()
    with pytest.raises(opening.OpeningInvalid, match="not the commitment"):
        opening.check_opening(bad)

    bad = copy.deepcopy(doc)
    bad["answer"]["data"]["tax_year"] = 2022
    with pytest.raises(opening.OpeningInvalid, match="not the commitment"):
        opening.check_opening(bad)

    # a forged leaf claiming another commitment is not in the signed log
    bad = copy.deepcopy(doc)
    leaf = json.loads(base64.b64decode(bad["leaf_input"]))
    other = commitment.commit(bad["answer"], {})
    leaf["object"]["answer"] = other.hex
    bad["leaf_input"] = base64.b64encode(json.dumps(leaf).encode()).decode()
    bad["commitment"], bad["salt"] = other.hex, base64.b64encode(other.salt).decode()
    with pytest.raises(opening.OpeningInvalid, match="not in the signed log"):
        opening.check_opening(bad)

    bad = copy.deepcopy(doc)
    bad["proof"] = bad["proof"][:-1]
    with pytest.raises(opening.OpeningInvalid):
        opening.check_opening(bad)

    with pytest.raises(opening.OpeningInvalid, match="not an opening"):
        opening.check_opening({"index": 1})


def test_no_answer_leaves_when_its_salt_cannot_be_stored(world):
    """Fail closed: the salt row is written in the entry's commit; if it cannot be, the
    rendered answer is dropped and the call is refused AUDIT_UNAVAILABLE."""
    app, token = world
    with app.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_answer"))
    with pytest.raises(AccessDenied) as denied:
        _run(app, token, "ENMOD")
    assert denied.value.codes == ["AUDIT_UNAVAILABLE"]


def test_the_http_body_without_its_index_hashes_to_the_commitment(world):
    from idrs.api.app import create_app

    app, token = world
    with TestClient(create_app(app)) as c:
        for path, params in (
            (f"/api/v1/accounts/{f.CARTER}/RTVUE", {"case": "C-1", "year": 2023}),
            ("/api/v1/names", {"name": "Carter", "reason": "caller on the phone"}),
        ):
            r = c.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            body = r.json()
            idx = body.pop("audit_index")
            entry = _entry(app, idx)
            assert entry["object"]["answer"] == _hand_digest(_salt(app, idx), body)


def test_cli_open_and_check_opening(world, tmp_path, monkeypatch, capsys):
    app, _ = world
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    from idrs.config import get_settings
    from idrs.people import service

    service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="EX009",
        name="E",
        tin="900-40-0009",
        roles="examiner",
    )
    service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="SA009",
        name="S",
        tin="900-40-0010",
        roles="security_admin",
    )
    f.open_case(app, "EX009", f.CARTER, "C-9")
    try:
        sign_in_for_cli(app, "EX009")
        code, out, err = run_cli(
            capsys, "research", "TXMOD", f.CARTER, "--year", "2023", "--case", "C-9", "--json"
        )
        assert code == 0, err
        shown = json.loads(out)
        idx = shown.pop("audit_index")
        assert _entry(app, idx)["object"]["answer"] == _hand_digest(_salt(app, idx), shown)
        code, _, err = run_cli(capsys, "audit", "open", str(idx))
        assert code == 1 and "NOT_IN_PROFILE" in err  # an examiner may not open

        sign_in_for_cli(app, "SA009")
        code, out, err = run_cli(capsys, "audit", "open", str(idx), "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["matches"] is True and doc["answer"] == shown
        assert {"index", "answer", "salt", "commitment", "matches"} <= set(doc)
        path = tmp_path / "opening.json"
        path.write_text(out)
        code, out, err = run_cli(capsys, "audit", "check-opening", str(path))
        assert code == 0 and "opening verifies" in out, err

        doc["answer"]["data"]["balance"] = "12345.67"
        path.write_text(json.dumps(doc))
        code, _, err = run_cli(capsys, "audit", "check-opening", str(path))
        assert code == 1 and "not the commitment" in err

        _edit_amount(app)
        code, out, err = run_cli(capsys, "audit", "open", str(idx))
        assert code == 1 and "altered" in err
        code, _, err = run_cli(capsys, "audit", "open", "999999")
        assert code == 1 and "no audit entry" in err
    finally:
        get_settings.cache_clear()


def test_an_open_entry_without_its_salt_row_says_so(world):
    app, token = world
    ans = _run(app, token, "ENMOD")
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_answer WHERE idx = :i"), {"i": ans.audit_index})
    with pytest.raises(opening.OpeningInvalid, match="salt is gone"):
        opening.open_answer(app, SECADMIN, ans.audit_index)


# -- exports and anonymized records: both are research answers, committed one by one ------


@pytest.fixture
def gw(app, monkeypatch):
    from tests.integration.grants_world import make_world

    prepare(app)
    w = make_world(app, monkeypatch)
    for seid in ("EX001", "DT001"):
        w.train(seid)
    f.open_case(app, "EX001", f.CARTER, "C-1")
    return w


def test_an_export_commits_and_opens_each_taxpayers_answer(gw):
    from idrs.grants import exports

    out = exports.create_export(
        gw.app,
        token=gw.token("EX001"),
        command="IMFOL",
        tins=[f.CARTER],
        fmt="csv",
        case="C-1",
        interface="test",
    )
    assert out.export_id
    with gw.app.engine.connect() as conn:
        idx = conn.execute(text("SELECT MAX(idx) FROM audit_answer")).scalar_one()
    entry = _entry(gw.app, idx)
    assert entry["type"] == "access:research:decide" and entry["object"]["command"] == "IMFOL"
    doc = opening.open_answer(gw.app, SECADMIN, idx)
    assert doc["matches"] is True
    _edit_amount(gw.app)
    assert opening.open_answer(gw.app, SECADMIN, idx)["matches"] is False


def test_an_anonymized_principals_research_is_refused_and_nothing_is_committed(gw):
    """Issue 15.1 replaced anonymized research by TIN: an anonymized principal names no
    taxpayer, so research refuses them (recorded) and no answer exists to commit."""
    from idrs.errors import AccessDenied
    from idrs.grants import anonymized
    from idrs.grants import service as grants

    gid = gw.request(start=gw.app.clock.now().date(), population="anonymized")
    gw.approve_both(gid)
    grants.sign_agreement(
        gw.app, gw.emp("DT001"), agreement_id=gw.agreement_id, otp=gw.otp("DT001")
    )
    grants.verify_clearance(gw.app, seid="DT001", by="SA001", actor=OPERATOR_)
    with gw.app.engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM audit_answer")).scalar_one()
    with pytest.raises(AccessDenied) as exc:
        research.run(
            gw.app, token=gw.token("DT001"), command="ENMOD", tin=f.CARTER, interface="test"
        )
    assert exc.value.codes == [anonymized.NO_IDENTIFIER]
    entry = _entry(gw.app, exc.value.audit_index)
    assert entry["outcome"] == "deny" and "answer" not in entry["object"]
    with gw.app.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_answer")).scalar_one() == before


# -- adjustments' results -------------------------------------------------------------------


@pytest.fixture
def aw(app, tmp_path):
    from tests.integration import adjust_world

    prepare(app)
    return app, adjust_world.build(app, tmp_path)


def _adjust(app, token, amount):
    from idrs.adjustments import service as adjustments

    return adjustments.request(
        app,
        token=token,
        tin=f.CARTER,
        command="ADJ54",
        case="C-1",
        reason="correcting the math",
        interface="test",
        tax_year=2023,
        tc="291",
        amount=amount,
    )


def test_adjustment_results_are_committed_open_and_catch_an_edit(aw):
    from idrs.adjustments import service as adjustments
    from tests.integration import adjust_world

    app, tok = aw
    adjust_world.look(app, tok["EX1"], "TXMOD", year=2023)
    applied = _adjust(app, tok["EX1"], "250.00")
    pending = _adjust(app, tok["EX1"], "1000.00")
    assert (applied.status, pending.status) == ("applied", "pending_approval")
    approved = adjustments.approve(
        app, token=tok["MG1"], adjustment_id=pending.adjustment_id, interface="test"
    )
    for res in (applied, pending, approved):
        entry = _entry(app, res.audit_index)
        doc = res.as_dict()
        assert doc.pop("audit_index") == res.audit_index
        assert entry["object"]["answer"] == _hand_digest(_salt(app, res.audit_index), doc)
        opened = opening.open_answer(app, SECADMIN, res.audit_index)
        assert opened["matches"] is True and opened["answer"] == doc
        assert opening.check_opening(json.loads(json.dumps(opened)))["ok"]
    with app.engine.begin() as conn:  # the version the requester was told, rewritten
        conn.execute(text("UPDATE adjustment_request SET applied_version = applied_version + 5"))
    for res in (applied, approved):
        assert opening.open_answer(app, SECADMIN, res.audit_index)["matches"] is False


def test_a_page_commits_the_answer_it_renders(app):
    """The web page renders the very document committed in its entry."""
    from idrs.api import middleware
    from idrs.api.app import create_app
    from idrs.people import service
    from tests.integration.test_web import _csrf, _sign_in

    prepare(app)
    f.carter_household(app)
    creds = service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="EX300",
        name="E",
        tin="900-42-0003",
        roles="examiner",
    )
    f.open_case(app, "EX300", f.CARTER, "C-31")
    api = create_app(app)
    middleware.install(api)
    with TestClient(api) as client:
        _sign_in(client, app, creds)
        token = _csrf(client.get("/research").text)
        r = client.post(
            "/research", data={"csrf": token, "line": f"TXMOD {f.CARTER} 2023 case=C-31"}
        )
        assert r.status_code == 200, r.text
    with app.engine.connect() as conn:
        idx = conn.execute(text("SELECT MAX(idx) FROM audit_answer")).scalar_one()
    entry = _entry(app, idx)
    assert entry["origin"]["interface"] == "web" and entry["object"]["command"] == "TXMOD"
    doc = opening.open_answer(app, SECADMIN, idx)
    assert doc["matches"] is True
    assert doc["answer"]["data"]["balance"] in r.text  # what the page showed is what was committed


# -- anonymized records: listings, samples and single records are answers too ---------------


@pytest.fixture
def anon(app, monkeypatch):
    from idrs.grants import service as grants
    from idrs.masterfile import seed
    from tests.integration.grants_world import make_world

    prepare(app)
    w = make_world(app, monkeypatch)
    seed.seed(app, taxpayers=300, employees=0, seed=7)
    grants.sign_agreement(w.app, w.emp("DT001"), agreement_id=w.agreement_id, otp=w.otp("DT001"))
    grants.verify_clearance(w.app, seid="DT001", by="SA001", actor=OPERATOR_)
    w.train("DT001")
    gid = w.request(population=None, kind="anonymized", k=5, start=app.clock.now().date())
    w.approve_both(gid)
    return w


def test_anonymized_records_are_committed_open_and_catch_an_edit(anon):
    from idrs.audit.events import Actor
    from idrs.grants import anonymized

    app = anon.app
    who, actor = anon.emp("DT001"), Actor("DT001", "api")
    listed = anonymized.list_records(app, who, filters={}, limit=40, actor=actor)
    sample = anonymized.list_records(app, who, filters={}, limit=10, sample=True, actor=actor)
    year = listed["records"][0]["tax_year"]
    filtered = anonymized.list_records(app, who, filters={"tax_year": year}, actor=actor)
    assert listed["records"] and sample["records"] and filtered["records"]
    with app.engine.connect() as conn:
        before = conn.execute(text("SELECT MAX(idx) FROM audit_answer")).scalar_one()
    one = anonymized.show_record(app, who, listed["records"][0]["pseudonym"], actor=actor)
    with app.engine.connect() as conn:
        shown_idx = conn.execute(text("SELECT MAX(idx) FROM audit_answer")).scalar_one()
    assert shown_idx > before

    opened = {}
    for idx, doc in [(a["audit_index"], {k: v for k, v in a.items() if k != "audit_index"})
                     for a in (listed, sample, filtered)] + [(shown_idx, one)]:
        entry = _entry(app, idx)
        assert entry["object"]["answer"] == _hand_digest(_salt(app, idx), doc)
        got = opening.open_answer(app, SECADMIN, idx)
        assert got["matches"] is True and got["answer"] == doc
        assert opening.check_opening(json.loads(json.dumps(got)))["ok"]
        opened[idx] = doc

    # a pseudonym that releases nothing commits nothing (the 404 is the same for all)
    with pytest.raises(NotFound):
        anonymized.show_record(app, who, "not-a-pseudonym", actor=actor)
    with app.engine.connect() as conn:
        assert conn.execute(text("SELECT MAX(idx) FROM audit_answer")).scalar_one() == shown_idx

    # returns received after the answers change the population, not the openings
    from idrs.masterfile.models import TaxReturn

    app.clock.advance(seconds=60)
    with session_scope(app.engine) as s:
        for tid in range(1, 60):
            s.add(TaxReturn(taxpayer_id=tid, tax_year=2010, filing_status="S",
                            agi_cents=4_000_000, total_tax_cents=300_000,
                            received_at=app.clock.now()))
    assert anonymized.list_records(app, who, filters={}, limit=40, actor=actor)["matched"] != (
        listed["matched"]
    )
    for idx in opened:
        assert opening.open_answer(app, SECADMIN, idx)["matches"] is True, idx

    # history rewritten under the released records: every opening now fails to match
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE tax_return SET agi_cents = agi_cents + 500000000"))
    for idx in opened:
        assert opening.open_answer(app, SECADMIN, idx)["matches"] is False, idx
