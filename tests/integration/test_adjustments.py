"""Adjustments through THE service on SQLite and PostgreSQL: each rule with its reason code,
two-person integrity, history and reversal, no lost update (32 writers), crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from idrs.adjustments import history, service
from idrs.adjustments.apply import VersionConflict
from idrs.adjustments.rules import Thresholds
from idrs.errors import AccessDenied, Conflict, NotFound, ValidationFailed
from idrs.masterfile.models import Taxpayer
from tests.integration import access_fixtures as af
from tests.integration import adjust_world as w
from tests.integration import factories as f

CARTER = w.CARTER
T = w.T


@pytest.fixture
def world(app, tmp_path):
    return app, w.build(app, tmp_path)


def adj(
    app, token, tin=CARTER, command="ADJ54", case="C-1", reason="correcting the math", **fields
):
    return service.request(
        app,
        token=token,
        tin=tin,
        command=command,
        case=case,
        reason=reason,
        interface="test",
        **fields,
    )


def codes(exc_info) -> list[str]:
    return exc_info.value.codes


# ----------------------------------------------------------------------------- the basics


def test_small_abatement_applies_at_once_with_one_entry(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    before = w.counts(app)
    res = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="250.00")
    assert res.status == "applied" and res.version == 2
    assert w.balance(app, CARTER, 2023) == "-250.00"
    after = w.counts(app)
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)  # one request, txn, entry
    e = w.entry(app, res.audit_index)
    assert e["type"] == "access:adjustment:decide" and e["outcome"] == "applied"
    assert e["object"]["taxpayer"] == app.keyring.pseudonym("900123456")
    assert e["detail"]["basis"] == "case:C-1" and e["detail"]["new_version"] == 2
    raw = json.dumps(e)
    assert "900123456" not in raw and "Carter" not in raw and "correcting" not in raw


def test_the_thresholds_are_the_settings_of_the_app(world):
    """IDRS_ADJ_ABATEMENT_CENTS reaches the service through ``app.settings``."""
    app, tok = world
    app.settings = app.settings.model_copy(update={"adj_abatement_cents": 20_000})
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    res = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="250.00")
    assert res.status == "pending_approval"
    assert res.requires == ["TWO_PERSON_REQUIRED", "ABATEMENT_THRESHOLD"]


def test_no_prior_research_is_refused(world):
    app, tok = world
    before = w.counts(app)
    with pytest.raises(AccessDenied) as exc:
        adj(app, tok["EX1"], tax_year=2023, tc="291", amount="25")
    assert codes(exc) == ["PREREQUISITE_RESEARCH"]
    assert w.counts(app) == (before[0], before[1], before[2] + 1)  # only the denial entry
    assert w.entry(app, exc.value.audit_index)["outcome"] == "deny"


def test_prerequisite_is_per_year_command_and_session(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2022)
    w.look(app, tok["EX1"], "ENMOD")
    with pytest.raises(AccessDenied) as exc:  # TXMOD of another year; ENMOD is not TXMOD
        adj(app, tok["EX1"], tax_year=2023, tc="291", amount="25")
    assert codes(exc) == ["PREREQUISITE_RESEARCH"]
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    new = w.new_session(app, "EX1")  # research in one session does not count in another
    with pytest.raises(AccessDenied) as exc:
        adj(app, new, tax_year=2023, tc="291", amount="25")
    assert codes(exc) == ["PREREQUISITE_RESEARCH"]


def test_enreq_needs_enmod_and_posts_history(world):
    app, tok = world
    new_addr = {"street": "77 Pine Rd", "city": "Akron", "state": "OH", "zip": "44301"}
    with pytest.raises(AccessDenied) as exc:
        adj(app, tok["EX1"], command="ENREQ", address=new_addr)
    assert codes(exc) == ["PREREQUISITE_RESEARCH"]
    w.look(app, tok["EX1"], "ENMOD")
    res = adj(
        app, tok["EX1"], command="ENREQ", address=new_addr, name={"first": "Ann", "last": "Baker"}
    )
    assert res.status == "applied"
    ans = w.look(app, tok["EX1"], "ENMOD")
    assert ans.data["address_history"][0]["street"] in ("77 Pine Rd", None)
    with Session(app.engine) as s:
        tp = (
            s.query(Taxpayer).filter(Taxpayer.tin_index == app.keyring.tin_index("900123456")).one()
        )
        assert (tp.last_name, tp.name_control) == ("Baker", "BAKE")
        before = history.ENMOD_AS_OF(s, app.keyring, tp, as_of=app.clock.now() - timedelta(days=1))
        now = history.ENMOD_AS_OF(s, app.keyring, tp, as_of=app.clock.now())
    assert before["name"]["last"].value == "Carter"
    assert before["address_history"][0]["street"].value == "12 Elm St"
    assert now["name"]["last"].value == "Baker"
    assert now["address_history"][0]["street"].value == "77 Pine Rd"
    assert [n["last"].value for n in now["name_history"]] == ["Baker", "Carter"]
    with app.engine.connect() as conn:
        enc = conn.execute(text("SELECT payload, payload_enc FROM adjustment_request")).one()
    assert "Pine" not in enc[0] and b"Pine" not in bytes(enc[1])


# ----------------------------------------------------------------------------- same rules as research


def test_conflicted_account_is_refused_even_with_a_case(world):
    app, tok = world
    with pytest.raises(AccessDenied) as exc:
        adj(
            app,
            tok["EX1"],
            tin=T["SPOUSE"],
            command="ENREQ",
            case="C-2",
            name={"first": "Sam", "last": "Spouse"},
        )
    assert "CONFLICT_SPOUSE" in codes(exc) and "PREREQUISITE_RESEARCH" in codes(exc)


def test_no_case_and_not_in_profile(world):
    app, tok = world
    with pytest.raises(AccessDenied) as exc:
        adj(
            app,
            tok["EX1"],
            tin=T["UNRELATED"],
            case=None,
            command="ENREQ",
            name={"first": "U", "last": "Nrelated"},
        )
    assert "NO_BUSINESS_NEED" in codes(exc)
    with pytest.raises(AccessDenied) as exc:  # a manager's profile has no ENREQ
        adj(app, tok["MG1"], command="ENREQ", name={"first": "A", "last": "B"})
    assert "NOT_IN_PROFILE" in codes(exc)


def test_unauthenticated_is_recorded(world):
    app, _ = world
    with pytest.raises(AccessDenied) as exc:
        adj(app, "not-a-token", tax_year=2023, tc="291", amount="1")
    assert codes(exc) == ["AUTH_REQUIRED"]
    assert w.entry(app, exc.value.audit_index)["actor"] == "anonymous"


# ----------------------------------------------------------------------------- two-person


def test_large_abatement_waits_self_approval_refused_manager_applies(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    res = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="1000.00")
    assert res.status == "pending_approval"
    assert res.requires == ["TWO_PERSON_REQUIRED", "ABATEMENT_THRESHOLD"]
    assert w.balance(app, CARTER, 2023) == "0.00"
    with pytest.raises(AccessDenied) as exc:
        service.approve(app, token=tok["EX1"], adjustment_id=res.adjustment_id, interface="test")
    assert codes(exc) == ["APPROVAL_AUTHORITY_REQUIRED", "SELF_APPROVAL"]
    listed = service.pending(app, token=tok["MG1"], interface="test")["adjustments"]
    assert [i["adjustment_id"] for i in listed] == [res.adjustment_id]
    assert listed[0]["amount"] == "1000.00" and listed[0]["requester"] == "EX1"
    done = service.approve(app, token=tok["MG1"], adjustment_id=res.adjustment_id, interface="test")
    assert done.status == "applied"
    assert w.balance(app, CARTER, 2023) == "-1000.00"
    e = w.entry(app, done.audit_index)
    assert (e["actor"], e["outcome"], e["object"]["action"]) == ("MG1", "applied", "approve")
    with pytest.raises(Conflict, match="already applied"):
        service.reject(app, token=tok["MG1"], adjustment_id=res.adjustment_id, interface="test")
    assert service.pending(app, token=tok["MG1"], interface="test")["adjustments"] == []


def test_manager_cannot_approve_own_request(world):
    app, tok = world
    f.open_case(app, "MG1", CARTER, "C-9")
    w.look(app, tok["MG1"], "TXMOD", year=2023, case="C-9")
    res = adj(app, tok["MG1"], case="C-9", tax_year=2023, tc="290", amount="10000")
    assert res.requires == ["TWO_PERSON_REQUIRED", "INCREASE_THRESHOLD"]
    with pytest.raises(AccessDenied) as exc:
        service.approve(app, token=tok["MG1"], adjustment_id=res.adjustment_id, interface="test")
    assert codes(exc) == ["SELF_APPROVAL"]


def test_approver_conflicted_with_taxpayer_or_requester(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    res = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="5000")
    with pytest.raises(AccessDenied) as exc:  # MG3 is Ann Carter's spouse
        service.approve(app, token=tok["MG3"], adjustment_id=res.adjustment_id, interface="test")
    assert "CONFLICT_SPOUSE" in codes(exc)
    with pytest.raises(AccessDenied) as exc:  # MG2 is the requester EX1's spouse
        service.approve(app, token=tok["MG2"], adjustment_id=res.adjustment_id, interface="test")
    assert "CONFLICT_SPOUSE" in codes(exc)
    assert any("requester" in r.message for r in exc.value.reasons)
    assert w.balance(app, CARTER, 2023) == "0.00"
    assert (
        service.reject(
            app, token=tok["MG1"], adjustment_id=res.adjustment_id, interface="test"
        ).status
        == "rejected"
    )
    with pytest.raises(Conflict):
        service.approve(app, token=tok["MG1"], adjustment_id=res.adjustment_id, interface="test")
    assert w.balance(app, CARTER, 2023) == "0.00"


def test_hold_release_and_971(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    with pytest.raises(ValidationFailed, match="has none"):
        adj(app, tok["EX1"], command="REQ77", tax_year=2023, tc="571")
    assert adj(app, tok["EX1"], command="REQ77", tax_year=2023, tc="570").status == "applied"
    rel = adj(app, tok["EX1"], command="REQ77", tax_year=2023, tc="571")
    assert rel.requires == ["TWO_PERSON_REQUIRED", "HOLD_RELEASE"]
    assert (
        service.approve(
            app, token=tok["MG1"], adjustment_id=rel.adjustment_id, interface="test"
        ).status
        == "applied"
    )
    w.look(app, tok["EX1"], "TXMOD", year=2023)  # the module changed (approved): look again
    assert (
        adj(app, tok["EX1"], command="REQ77", tax_year=2023, tc="971", action_code="010").status
        == "applied"
    )
    d = w.look(app, tok["EX1"], "TXMOD", year=2023).data
    assert [t["tc"] for t in d["transactions"]][-3:] == ["570", "571", "971"]
    assert d["status"] == "settled"


def test_high_profile_and_employee_accounts_wait(world):
    app, tok = world
    w.look(app, tok["EX2"], "ENMOD", tin=T["CELEB"], case="C-3")
    r = adj(
        app,
        tok["EX2"],
        tin=T["CELEB"],
        case="C-3",
        command="ENREQ",
        name={"first": "Celeb", "last": "Renamed"},
    )
    assert r.requires == ["TWO_PERSON_REQUIRED", "HIGH_PROFILE_ACCOUNT"]
    w.look(app, tok["EX2"], "ENMOD", tin=T["UNRELATED"], case="C-4")
    r = adj(
        app,
        tok["EX2"],
        tin=T["UNRELATED"],
        case="C-4",
        command="ENREQ",
        name={"first": "Oth", "last": "Employee"},
    )
    assert r.requires == ["TWO_PERSON_REQUIRED", "EMPLOYEE_ACCOUNT"]
    with pytest.raises(AccessDenied) as exc:  # MG1 lacks sensitive_accounts: cannot approve
        service.approve(app, token=tok["MG1"], adjustment_id=r.adjustment_id - 1, interface="test")
    assert "SENSITIVE_ACCOUNT" in codes(exc)


def test_address_change_near_a_pending_refund_waits(world):
    app, tok = world
    with Session(app.engine) as s, s.begin():
        ann = (
            s.query(Taxpayer).filter(Taxpayer.tin_index == app.keyring.tin_index("900123456")).one()
        )
        f.tax_return(app, s, ann, 2025, refund=120_000, routing="800000006", account="99")
        f.module(s, ann, 2025, [("150", "2026-02-15", 10_000)])
    w.look(app, tok["EX1"], "ENMOD")
    addr = {"street": "1 Mailbox Ln", "city": "Akron", "state": "OH", "zip": "44301"}
    r = adj(app, tok["EX1"], command="ENREQ", address=addr)
    assert r.requires == ["TWO_PERSON_REQUIRED", "ADDRESS_NEAR_REFUND"]
    assert (
        adj(app, tok["EX1"], command="ENREQ", name={"first": "Ann", "last": "Carter-Lee"}).status
        == "applied"
    )


def test_pending_request_expires(world):
    app, tok = world
    service.configure(app, Thresholds(pending_hours=1))
    try:
        w.look(app, tok["EX1"], "TXMOD", year=2023)
        r = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="2000")
        app.clock.advance(minutes=61)
        with pytest.raises(Conflict, match="expired"):
            service.approve(app, token=tok["MG1"], adjustment_id=r.adjustment_id, interface="test")
        assert (
            service.listing(app, token=tok["MG1"], status="expired", interface="test")[
                "adjustments"
            ][0]["adjustment_id"]
            == r.adjustment_id
        )
        assert w.balance(app, CARTER, 2023) == "0.00"
    finally:
        service.configure(app, Thresholds())


# ----------------------------------------------------------------------------- bad input


BAD = [
    {"tax_year": 2023, "tc": "291", "amount": "10.005"},
    {"tax_year": 2023, "tc": "291", "amount": 0},
    {"tax_year": 2023, "tc": "290", "amount": -10},
    {"tax_year": 2023, "tc": "999", "amount": 10},
    {"tax_year": 2023, "tc": "291", "amount": 10, "date": "2026-03-03"},
    {"command": "REQ77", "tax_year": 2023, "tc": "971", "action_code": "777"},
    {"command": "ENREQ", "name": {"first": "Ann", "last": ""}},
]


def test_bad_input_stores_and_records_nothing(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    w.look(app, tok["EX1"], "ENMOD")
    before = w.counts(app)
    for fields in BAD:
        with pytest.raises(ValidationFailed):
            adj(app, tok["EX1"], **fields)
        assert w.counts(app) == before, fields


def test_year_without_module_stores_nothing(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2019)
    before = w.counts(app)
    with pytest.raises(ValidationFailed, match="no tax module for 2019"):
        adj(app, tok["EX1"], tax_year=2019, tc="290", amount="5")
    after = w.counts(app)
    assert after[:2] == before[:2] and after[2] == before[2] + 1  # the call is recorded
    with pytest.raises(NotFound):
        service.approve(app, token=tok["MG1"], adjustment_id=999, interface="test")


# ----------------------------------------------------------------------------- history, reversal, versions


def test_txmod_as_of_and_reversal(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    t0 = app.clock.now()
    app.clock.advance(hours=1)
    r = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="300")
    app.clock.advance(hours=1)
    t1 = app.clock.now()
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    app.clock.advance(hours=1)
    back = service.reverse(
        app,
        token=tok["EX1"],
        adjustment_id=r.adjustment_id,
        case="C-1",
        reason="posted to the wrong module",
        interface="test",
    )
    assert back.status == "applied"
    assert w.balance(app, CARTER, 2023) == "0.00"
    with Session(app.engine) as s:
        ann = (
            s.query(Taxpayer).filter(Taxpayer.tin_index == app.keyring.tin_index("900123456")).one()
        )
        before = history.TXMOD_AS_OF(s, app.keyring, ann, year=2023, as_of=t0)
        mid = history.TXMOD_AS_OF(s, app.keyring, ann, year=2023, as_of=t1)
        now = history.TXMOD_AS_OF(s, app.keyring, ann, year=2023, as_of=app.clock.now())
    assert before["balance"].value == "0.00" and len(before["transactions"]) == 3
    assert mid["balance"].value == "-300.00"
    assert mid["transactions"][-1]["posted_by"].value == "EX1"
    assert mid["transactions"][-1]["case"].value == "C-1"
    assert now["balance"].value == "0.00" and len(now["transactions"]) == 5
    assert now["transactions"][-1]["tc"].value == "290"
    assert now["transactions"][-1]["reverses"].value == mid["transactions"][-1]["id"].value
    with pytest.raises(Conflict, match="already reversed"):
        service.reverse(
            app,
            token=tok["EX1"],
            adjustment_id=r.adjustment_id,
            case="C-1",
            reason="again",
            interface="test",
        )


def test_stale_base_version_is_a_conflict(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    assert adj(app, tok["EX2"], case="C-5", tax_year=2023, tc="290", amount="10").version == 2
    before = w.counts(app)
    with pytest.raises(VersionConflict) as exc:  # EX1 saw version 1
        adj(app, tok["EX1"], tax_year=2023, tc="291", amount="10")
    assert exc.value.status_code == 409
    assert w.entry(app, exc.value.audit_index)["outcome"] == "conflict"
    assert w.counts(app)[:2] == before[:2]
    assert adj(app, tok["EX1"], tax_year=2023, tc="291", amount="10", base_version=2).version == 3
    assert w.balance(app, CARTER, 2023) == "0.00"


# ----------------------------------------------------------------------------- the HTTP API


def test_api_request_approve_list(world):
    from idrs.api.app import create_app

    app, tok = world
    client = TestClient(create_app(app))
    h = {"Authorization": f"Bearer {tok['EX1']}"}
    r = client.post(
        "/api/v1/accounts/900-12-3456/adjustments",
        headers=h,
        json={
            "command": "ADJ54",
            "case": "C-1",
            "reason": "x",
            "tax_year": 2023,
            "tc": "291",
            "amount": 10,
        },
    )
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "PREREQUISITE_RESEARCH"
    assert (
        client.get("/api/v1/accounts/900123456/TXMOD?year=2023&case=C-1", headers=h).status_code
        == 200
    )
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    body = {
        "command": "ADJ54",
        "case": "C-1",
        "reason": "x",
        "tax_year": 2023,
        "tc": "291",
        "amount": 1500,
    }
    r = client.post("/api/v1/accounts/900123456/adjustments", headers=h, json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "pending_approval" and "TWO_PERSON_REQUIRED" in out["requires"]
    bad = client.post(
        "/api/v1/accounts/900123456/adjustments", headers=h, json={**body, "amount": 1.234}
    )
    assert bad.status_code == 422
    r = client.post(f"/api/v1/adjustments/{out['adjustment_id']}/approve", headers=h)
    assert r.status_code == 403 and "SELF_APPROVAL" in {x["code"] for x in r.json()["reasons"]}
    hm = {"Authorization": f"Bearer {tok['MG1']}"}
    r = client.get("/api/v1/adjustments?status=pending", headers=hm)
    assert r.status_code == 200 and len(r.json()["adjustments"]) == 1
    r = client.post(f"/api/v1/adjustments/{out['adjustment_id']}/approve", headers=hm)
    assert r.status_code == 200 and r.json()["status"] == "applied"
    r = client.post(f"/api/v1/adjustments/{out['adjustment_id']}/reject", headers=hm)
    assert r.status_code == 409


# ----------------------------------------------------------------------------- concurrency


def test_32_concurrent_writers_lose_no_update(world):
    """32 threads, each its own examiner session, each adjusting the same module repeatedly.

    Every writer is based on the version it saw; exactly one change per version wins, the
    others get a clear conflict; the final balance is the sum of the accepted changes.
    """
    app, tok = world
    writers = 32
    tokens = []
    for i in range(writers):
        seid = f"W{i:02d}"
        af.add_employee(app, seid, f"900-41-{i + 1:04d}", "examiner", "HQ")
        f.open_case(app, seid, CARTER, f"K-{i}")
        tokens.append(w.new_session(app, seid))
    for i, t in enumerate(tokens):
        w.look(app, t, "TXMOD", year=2023, case=f"K-{i}")
    accepted: list[int] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def writer(i: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                cents = (i + 1) * 100 + round_
                base = w.module_version(app, CARTER, 2023) if round_ else None
                try:
                    adj(
                        app,
                        tokens[i],
                        case=f"K-{i}",
                        tax_year=2023,
                        tc="290",
                        amount=f"{cents / 100:.2f}",
                        base_version=base,
                    )
                    with lock:
                        accepted.append(cents)
                except VersionConflict:
                    with lock:
                        conflicts.append(cents)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert accepted and conflicts
    assert len(accepted) + len(conflicts) == writers * 3
    total = sum(accepted)
    assert w.balance(app, CARTER, 2023) == f"{total // 100}.{total % 100:02d}"
    assert w.module_version(app, CARTER, 2023) == 1 + len(accepted)
    with app.engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM adjustment_request WHERE status = 'applied'")
        ).scalar_one()
    assert n == len(accepted)
    assert w.log_consistent(app)


# ----------------------------------------------------------------------------- crash safety

CHILD = r"""
import sys, json
from datetime import UTC, datetime
from pathlib import Path
sys.path.insert(0, {root!r})
from idrs.clock import FakeClock
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.adjustments import service
home = Path({home!r})
app = App(Settings(database_url={url!r}, home=home), make_engine({url!r}), Keyring.load(home),
          FakeClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC)))
token = {token!r}
i = 0
while True:
    i += 1
    r = service.request(app, token=token, tin="900-12-3456", command="ADJ54", case="C-1",
                        reason="stream", interface="test", tax_year=2023, tc="290",
                        amount="%d.%02d" % (i // 100, i % 100))
    print(json.dumps({{"i": i, "id": r.adjustment_id, "idx": r.audit_index}}), flush=True)
"""


def test_kill_9_during_a_stream_keeps_every_acknowledged_change(world, tmp_path):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    script = tmp_path / "child.py"
    script.write_text(
        CHILD.format(
            root=str(Path(__file__).resolve().parents[2]),
            home=str(app.settings.home),
            url=app.settings.database_url,
            token=tok["EX1"],
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    acked = []
    assert proc.stdout is not None
    while len(acked) < 25:  # however slow the machine: pytest-timeout guards a hang
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(json.loads(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    assert len(acked) >= 25, err[-3000:]
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.id, a.amount_cents, a.request_audit_index, p.txn_id, x.amount_cents"
                " FROM adjustment_request a LEFT JOIN adjustment_posting p ON p.adjustment_id = a.id"
                " LEFT JOIN txn x ON x.id = p.txn_id WHERE a.reason = 'stream'"
            )
        ).all()
        entries = conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one()
        version = conn.execute(text("SELECT max(version) FROM tax_module")).scalar_one()
    by_id = {r[0]: r for r in rows}
    for a in acked:  # every acknowledged change is present, with its posting and entry
        row = by_id[a["id"]]
        assert row[1] == a["i"] and row[3] is not None and row[4] == a["i"]
        assert row[2] == a["idx"] and a["idx"] < entries
    for r in rows:  # none half-applied: each stored request has its transaction and entry
        assert r[3] is not None and r[2] is not None and r[2] < entries
    assert len(rows) in (len(acked), len(acked) + 1)
    assert version == 1 + len(rows)
    total = sum(r[1] for r in rows)
    assert w.balance(app, CARTER, 2023) == f"{total // 100}.{total % 100:02d}"
    assert w.log_consistent(app)  # the audit log's tree is intact after the crash


# ----------------------------------------------------------------------------- the CLI


def test_cli_adjust_request_pending_and_refusal(world, monkeypatch, capsys):
    import idrs.cli.adjust  # noqa: F401 - registers `idrs adjust`
    from idrs.cli import main
    from idrs.cli.people import write_token
    from idrs.clock import SystemClock
    from idrs.config import get_settings

    app, _ = world
    app.clock = SystemClock()  # the CLI runs on the system clock: sessions made for now
    tok = w.new_session(app, "EX1")
    w.look(app, tok, "TXMOD", year=2023)
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    get_settings.cache_clear()
    write_token(app.settings.home, tok)
    try:
        main(
            [
                "adjust",
                "request",
                "ADJ54",
                "900-12-3456",
                "--case",
                "C-1",
                "--reason",
                "fix",
                "--year",
                "2023",
                "--tc",
                "291",
                "--amount",
                "5.00",
                "--json",
            ]
        )
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "applied" and out["version"] == 2
        with pytest.raises(SystemExit) as exc:  # no TXMOD of 2022 in this session
            main(
                [
                    "adjust",
                    "request",
                    "ADJ54",
                    "900123456",
                    "--case",
                    "C-1",
                    "--reason",
                    "x",
                    "--year",
                    "2022",
                    "--tc",
                    "290",
                    "--amount",
                    "1",
                ]
            )
        assert exc.value.code == 1
        assert "PREREQUISITE_RESEARCH" in capsys.readouterr().err
        with pytest.raises(SystemExit) as exc:  # bad amount: exit 1, nothing stored
            main(
                [
                    "adjust",
                    "request",
                    "ADJ54",
                    "900123456",
                    "--case",
                    "C-1",
                    "--reason",
                    "x",
                    "--year",
                    "2023",
                    "--tc",
                    "290",
                    "--amount",
                    "1.234",
                ]
            )
        assert exc.value.code == 1 and "two decimals" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    assert w.balance(app, CARTER, 2023) == "-5.00"


def test_entity_change_reversed_restores_the_earlier_address_and_name(world):
    app, tok = world
    w.look(app, tok["EX1"], "ENMOD")
    new = {"street": "9 Birch Ct", "city": "Kent", "state": "OH", "zip": "44240"}
    r = adj(app, tok["EX1"], command="ENREQ", address=new, name={"first": "Ann", "last": "Dunn"})
    w.look(app, tok["EX1"], "ENMOD")
    back = service.reverse(
        app,
        token=tok["EX1"],
        adjustment_id=r.adjustment_id,
        case="C-1",
        reason="wrong taxpayer",
        interface="test",
    )
    assert back.status == "applied"
    with Session(app.engine) as s:
        ann = (
            s.query(Taxpayer).filter(Taxpayer.tin_index == app.keyring.tin_index("900123456")).one()
        )
        now = history.ENMOD_AS_OF(s, app.keyring, ann, as_of=app.clock.now())
    assert now["name"]["last"].value == "Carter"
    assert [a["street"].value for a in now["address_history"]][:3] == [
        "12 Elm St",
        "9 Birch Ct",
        "12 Elm St",
    ]
    assert [n["last"].value for n in now["name_history"]] == ["Carter", "Dunn", "Carter"]


def test_reversal_of_a_large_abatement_waits_and_applies_on_approval(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    big = adj(app, tok["EX1"], tax_year=2023, tc="291", amount="20000")
    service.approve(app, token=tok["MG1"], adjustment_id=big.adjustment_id, interface="test")
    assert w.balance(app, CARTER, 2023) == "-20000.00"
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    back = service.reverse(
        app,
        token=tok["EX1"],
        adjustment_id=big.adjustment_id,
        case="C-1",
        reason="abated in error",
        interface="test",
    )
    assert back.requires == ["TWO_PERSON_REQUIRED", "INCREASE_THRESHOLD"]
    assert w.balance(app, CARTER, 2023) == "-20000.00"
    done = service.approve(
        app, token=tok["MG1"], adjustment_id=back.adjustment_id, interface="test"
    )
    assert done.status == "applied" and w.balance(app, CARTER, 2023) == "0.00"
