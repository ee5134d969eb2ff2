"""Detection end to end on SQLite and PostgreSQL: a small simulation through the real service
path, detection and its measured quality, the alert queue's rules, referral proofs,
self-reports, the weekly report and its certification, the taxpayer's accounting and notice.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from idrs import research
from idrs.audit import merkle
from idrs.audit.checkpoint import ensure_signing_key
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import evaluate, investigations, notices, reports, service, taxpayer, triage
from idrs.detection.models import Alert, DetectionTaxpayerKey
from idrs.detection.simulator import _start_session, simulate
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound
from idrs.masterfile.models import Taxpayer
from idrs.people import service as people
from idrs.people.models import Employee

START = datetime(2026, 3, 2, tzinfo=UTC)


def _alerts(app: App) -> list[Alert]:
    with session_scope(app.engine) as s:
        rows = list(s.scalars(select(Alert).order_by(Alert.id)))
        s.expunge_all()
        return rows


def _tin_of(app: App, pseudonym: str) -> str:
    with session_scope(app.engine) as s:
        tid = s.scalar(
            select(DetectionTaxpayerKey.taxpayer_id).where(
                DetectionTaxpayerKey.pseudonym == pseudonym
            )
        )
        tp = s.get(Taxpayer, tid)
        return app.keyring.decrypt(tp.tin_enc, "taxpayer.tin")  # type: ignore[union-attr]


def _token(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


def test_simulate_detect_evaluate_and_investigate(app: App, tmp_path: Path) -> None:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    truth = tmp_path / "truth.json"
    out = simulate(
        app, days=2, employees=12, seed=5, violation_rate=0.4, truth_out=truth, start=START
    )
    assert out["accesses"] > 150 and out["violations"] >= 4
    data = json.loads(truth.read_text())
    assert all(v["audit_indexes"] for v in data["violations"])

    # --- detection and its measured quality
    result = service.run(app)
    alerts = result["alerts"]
    assert alerts and {"alert_id", "seid", "score", "signals", "audit_indexes"} <= set(alerts[0])
    assert result["summary"]["explained_case"] > 0 and result["summary"]["explained_contact"] > 0
    quality = evaluate.evaluate(app, truth)
    assert quality["overall"]["recall"] >= 0.8, quality["by_type"]
    assert quality["overall"]["precision"] >= 0.8, quality["by_type"]

    # incremental: the next run reads only what was appended since (its own summary entry)
    again = service.run(app)
    assert again["summary"]["entries_read"] == 1 and again["alerts"] == []

    # bad input: --since in the future, a truth file that does not match the log
    with pytest.raises(IdrsError, match="future"):
        service.run(app, since=app.clock.now() + timedelta(days=1))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"violations": [{"type": "self", "seid": "E00002", "audit_indexes": [10**9]}]})
    )
    with pytest.raises(IdrsError, match="does not match"):
        evaluate.evaluate(app, bad)

    _investigate(app, tmp_path)
    _self_report(app)
    _weekly(app)


def _investigate(app: App, tmp_path: Path) -> None:
    rows = _alerts(app)
    # an alert with an allowed inspection (a notice will be due), else any
    target = next((a for a in rows if '"contact_without_call"' in a.signals), rows[0])
    with pytest.raises(NotFound):
        triage.assign(app, alert_id="A999999", analyst="PA001")
    with pytest.raises(AccessDenied):  # not an analyst
        triage.assign(app, alert_id=target.alert_id, analyst="E00002")
    # an analyst in the subject's own unit may not work the alert
    people.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="PAU",
        name="Unit Analyst",
        tin=None,
        roles=["privacy_analyst"],
        unit=target.unit,
    )
    with pytest.raises(AccessDenied) as denied:
        triage.assign(app, alert_id=target.alert_id, analyst="PAU")
    assert denied.value.codes == ["CONFLICT_COWORKER"]
    assert all(a["unit"] != target.unit for a in triage.list_alerts(app, analyst="PAU"))

    step = triage.assign(app, alert_id=target.alert_id, analyst="PA001")
    assert step["state"] == "assigned" and step["audit_index"] >= 0
    with pytest.raises(Conflict):
        triage.assign(app, alert_id=target.alert_id, analyst="PA002")
    with pytest.raises(AccessDenied):  # assigned to someone else
        triage.dismiss(app, alert_id=target.alert_id, analyst="PA002", reason="x")
    triage.review(app, alert_id=target.alert_id, analyst="PA001", note="looked at the entries")
    ref = triage.refer(app, alert_id=target.alert_id, analyst="PA001", note="to TIGTA")
    package = ref["package"]
    assert len(package["entries"]) == len(json.loads(target.audit_indexes))
    assert triage.verify_package(package) == len(package["entries"])
    tampered = json.loads(json.dumps(package))
    leaf = json.loads(base64.b64decode(tampered["entries"][0]["leaf_input"]))
    leaf["actor"] = "E99999"
    tampered["entries"][0]["leaf_input"] = base64.b64encode(
        json.dumps(leaf, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    with pytest.raises(merkle.ProofError):
        triage.verify_package(tampered)
    with pytest.raises(Conflict, match="already referred"):
        triage.dismiss(app, alert_id=target.alert_id, analyst="PA001", reason="late")
    shown = triage.show(app, target.alert_id, analyst="PA001")
    assert [a["action"] for a in shown["actions"]] == ["assign", "review", "refer"]

    # an analyst never works an alert about themselves
    with session_scope(app.engine) as s:
        s.add(
            Alert(
                alert_id="A900001",
                seid="PA001",
                unit="PRIV",
                day=date(2026, 3, 2),
                score=5.0,
                category="self",
                signals="[]",
                audit_indexes="[]",
                taxpayers="[]",
                state="open",
                created_at=app.clock.now(),
                updated_at=app.clock.now(),
            )
        )
    with pytest.raises(AccessDenied) as own:
        triage.assign(app, alert_id="A900001", analyst="PA001")
    assert own.value.codes == ["SELF_APPROVAL"]

    # the taxpayer's side: accounting without identities, then the notice
    pseud = json.loads(target.taxpayers)[0]
    acct = taxpayer.accesses(app, tin=_tin_of(app, pseud), actor="os:test")
    text = json.dumps(acct.as_dict())
    assert acct["taxpayer"] == pseud and "E0" not in text and "seid" not in text
    assert all({"date", "unit", "purpose"} <= set(o) for o in acct["openings"])
    # issue 16.4: the referral is no longer the notice's trigger (it was before); the
    # investigation's proposed adverse action is, and issues the notice itself
    with pytest.raises(IdrsError, match="no notice is due"):
        taxpayer.notice(app, alert_id=target.alert_id, out_dir=tmp_path / "n", actor="os:test")
    people.create_unit(app, "SECX", actor="os:test")
    people.create_employee(app, unax_attested_at=app.clock.now(), seid="SIX",
                           name="Investigator", tin=None, roles=["security_admin"], unit="SECX")
    case = ref["case_id"]
    investigations.open_case(app, case_id=case, investigator="SIX", reason="taken")
    investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                  investigator="SIX", reason="no business need")
    done = investigations.record_outcome(app, case_id=case, outcome="adverse_action_proposed",
                                         investigator="SIX", reason="suspension proposed")
    if '"contact_without_call"' in target.signals:
        sent = done["notices"]["sent"]
        assert sent
        pdf = notices.document(app, notice_id=sent[0]["notice_id"], fmt="pdf", actor="os:test")
        assert pdf[0][:4] == b"%PDF"
        html = notices.document(app, notice_id=sent[0]["notice_id"], fmt="html",
                                actor="os:test")[0].decode()
        assert "7431" in html and "unauthorized" in html and "civil action" in html
        with pytest.raises(Conflict):
            taxpayer.notice(app, alert_id=target.alert_id, out_dir=tmp_path / "n", actor="os:test")
    open_one = next(a for a in _alerts(app) if a.state == "open" and a.seid != "PA001")
    with pytest.raises(IdrsError, match="no notice is due"):
        taxpayer.notice(app, alert_id=open_one.alert_id, out_dir=tmp_path / "m", actor="os:test")


def _self_report(app: App) -> None:
    token = _token(app, "E00002")
    with session_scope(app.engine) as s:
        tin = app.keyring.decrypt(s.scalars(select(Taxpayer.tin_enc)).first(), "taxpayer.tin")
    with pytest.raises(AccessDenied) as exc:
        research.run(app, token=token, command="ENMOD", tin=tin, interface="api")
    idx = exc.value.audit_index
    assert idx is not None
    done = triage.self_report(app, token=token, audit_index=idx, reason="mistyped TIN")
    assert done["seid"] == "E00002"
    with pytest.raises(Conflict):
        triage.self_report(app, token=token, audit_index=idx, reason="again")
    other = _token(app, "E00003")
    with pytest.raises(AccessDenied):  # not their own entry
        triage.self_report(app, token=other, audit_index=idx, reason="not mine")
    result = service.run(app)
    mine = [a for a in result["alerts"] if idx in a["audit_indexes"]]
    assert not mine  # a lone, self-reported typo raises no alert
    app.clock.advance(days=2)  # type: ignore[attr-defined]
    token = _token(app, "E00002")
    with pytest.raises(AccessDenied) as late:
        research.run(app, token=token, command="ENMOD", tin=tin, interface="api")
    app.clock.advance(days=1, minutes=1)  # type: ignore[attr-defined]
    token = _token(app, "E00002")
    with pytest.raises(IdrsError, match="within a day"):
        triage.self_report(app, token=token, audit_index=late.value.audit_index, reason="too late")


def _weekly(app: App) -> None:
    rep = reports.weekly(app, unit="U01", week=date(2026, 3, 4), actor="os:test")
    assert rep["week_start"] == "2026-03-02" and rep["certified_by"] is None
    groups = rep["report"]["conflict_refusals"]
    assert set(groups) == {"own", "spouse", "employee", "other_conflict"}
    with pytest.raises(AccessDenied):
        reports.certify(app, unit="U01", week=date(2026, 3, 2), manager="E00002")
    before = reports.certification_rate(app)
    assert before["rate"] == 0.0 and before["not_certified"][0]["managers"] == ["E00001"]
    done = reports.certify(app, unit="U01", week=date(2026, 3, 2), manager="E00001")
    assert done["certified_by"] == "E00001"
    with pytest.raises(Conflict):
        reports.certify(app, unit="U01", week=date(2026, 3, 2), manager="E00001")
    assert reports.certification_rate(app)["rate"] == 1.0
    frozen = reports.weekly(app, unit="U01", week=date(2026, 3, 2), actor="os:test")
    assert frozen["certified_by"] == "E00001"
