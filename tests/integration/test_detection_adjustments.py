"""Detection's adjustment signals (issue 13.1): many changes just under a threshold, a
change on an account the employee has a weak tie to, a change followed by an address
change near a refund. Each raises an alert that says why; an honest single adjustment does
not. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

from idrs.adjustments import service
from idrs.db import session_scope
from idrs.detection import service as detect
from tests.integration import access_fixtures as af
from tests.integration import adjust_world as w
from tests.integration import factories as f

CARTER = w.CARTER


@pytest.fixture
def world(app, tmp_path):
    return app, w.build(app, tmp_path)


def adj(app, token, case="C-1", command="ADJ54", **fields):
    return service.request(
        app,
        token=token,
        tin=CARTER,
        command=command,
        case=case,
        reason="detection test",
        interface="test",
        **fields,
    )


def alerts_of(app, seid):
    out = detect.run(app)["alerts"]
    return [a for a in out if a["seid"] == seid]


def signal(alert, name):
    found = [s for s in alert["signals"] if s["name"] == name]
    assert found, alert["signals"]
    return found[0]


def test_an_honest_single_adjustment_raises_no_alert(world):
    app, tok = world
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    assert (
        adj(app, tok["EX2"], case="C-5", tax_year=2023, tc="291", amount="250").status == "applied"
    )
    assert alerts_of(app, "EX2") == []


def test_several_abatements_just_under_the_threshold_are_alerted(world):
    app, tok = world
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    w.look(app, tok["EX2"], "TXMOD", year=2022, case="C-5")
    made = [
        adj(app, tok["EX2"], case="C-5", tax_year=y, tc="291", amount="950")
        for y in (2023, 2022, 2023)
    ]
    assert made[0].status == "applied"  # the others wait (the sum), yet all three count here
    (alert,) = alerts_of(app, "EX2")
    sig = signal(alert, "adjust_just_under")
    assert sig["evidence"]["adjustments"] == [m.adjustment_id for m in made]
    assert "just under the $1,000.00 two-person threshold" in sig["evidence"]["why"]
    assert alert["category"] == "split_adjustment" and alert["score"] >= 3.0
    entries = {m.audit_index for m in made}
    assert entries <= set(alert["audit_indexes"])  # the alert cites the requests' entries


def test_two_abatements_just_under_are_not_enough(world):
    app, tok = world
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    w.look(app, tok["EX2"], "TXMOD", year=2022, case="C-5")
    adj(app, tok["EX2"], case="C-5", tax_year=2023, tc="291", amount="950")
    adj(app, tok["EX2"], case="C-5", tax_year=2022, tc="291", amount="950")
    assert alerts_of(app, "EX2") == []


def test_a_change_on_an_account_of_a_weak_tie_is_alerted(world):
    """NB1 lives on Ann Carter's street (not her household: no conflict refuses it)."""
    app, tok = world
    with session_scope(app.engine) as s:
        f.taxpayer(
            app,
            s,
            "900-43-0001",
            "Nia",
            "Brook",
            address={"street": "20 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
        )
    af.add_employee(app, "NB1", "900-43-0001", "examiner", "HQ")
    f.open_case(app, "NB1", CARTER, "N-1")
    token = w.new_session(app, "NB1")
    w.look(app, token, "TXMOD", year=2023, case="N-1")
    assert adj(app, token, case="N-1", tax_year=2023, tc="291", amount="100").status == "applied"
    (alert,) = alerts_of(app, "NB1")
    sig = signal(alert, "adjust_weak_tie")
    assert sig["evidence"]["ties"] == ["the same street"]
    assert "shares the same street with the employee" in sig["evidence"]["why"]
    assert alert["category"] == "adjustment_tie"


def test_an_abatement_then_an_address_change_near_a_refund_is_alerted(world):
    """EX2 abates (the module goes into credit: a refund is due), MG-free, then EX1 changes
    the address: a refund being redirected. Both employees are alerted."""
    app, tok = world
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    ab = adj(app, tok["EX2"], case="C-5", tax_year=2023, tc="291", amount="500")
    assert ab.status == "applied" and w.balance(app, CARTER, 2023) == "-500.00"
    app.clock.advance(days=3)
    w.look(app, tok["EX1"], "ENMOD")
    addr = {"street": "1 Mailbox Ln", "city": "Akron", "state": "OH", "zip": "44301"}
    moved = adj(app, tok["EX1"], command="ENREQ", address=addr)
    out = detect.run(app)["alerts"]
    for seid in ("EX1", "EX2"):
        (alert,) = [
            a
            for a in out
            if a["seid"] == seid and any(s["name"] == "adjust_then_address" for s in a["signals"])
        ]
        ev = signal(alert, "adjust_then_address")["evidence"]
        assert (ev["adjustment"], ev["address_change"]) == (ab.adjustment_id, moved.adjustment_id)
        assert "followed by an address change" in ev["why"] and "credit" in ev["refund"]
        assert alert["category"] == "refund_diversion"
    assert "Mailbox" not in json.dumps([a.as_dict() for a in out])  # no address in the alert


def test_an_address_change_alone_is_not_alerted_as_a_diversion(world):
    app, tok = world
    w.look(app, tok["EX2"], "ENMOD", case="C-5")
    addr = {"street": "1 Mailbox Ln", "city": "Akron", "state": "OH", "zip": "44301"}
    adj(app, tok["EX2"], case="C-5", command="ENREQ", address=addr)
    assert alerts_of(app, "EX2") == []


def test_an_abatement_then_a_refund_to_a_new_bank_account_is_alerted(world):
    from idrs.masterfile.models import Taxpayer

    app, tok = world
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    ab = adj(app, tok["EX2"], case="C-5", tax_year=2023, tc="291", amount="500")
    app.clock.advance(days=2)
    with session_scope(app.engine) as s:
        ann = (
            s.query(Taxpayer).filter(Taxpayer.tin_index == app.keyring.tin_index("900123456")).one()
        )
        ret = f.tax_return(app, s, ann, 2025, refund=90_000, routing="800000006", account="55501")
        ret.received_at = app.clock.now()
    (alert,) = alerts_of(app, "EX2")
    ev = signal(alert, "adjust_then_bank")["evidence"]
    assert ev["adjustment"] == ab.adjustment_id and ev["return_year"] == 2025
    assert "bank account none of the taxpayer's earlier returns used" in ev["why"]
    assert "55501" not in json.dumps(alert.as_dict())
    assert alert["category"] == "refund_diversion"
