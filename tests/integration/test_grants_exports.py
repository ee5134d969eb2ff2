"""Exports (through research.run), destruction certificates, outstanding alerts, the oversight
report — with an inside examiner working a case (the path that needs no grant wiring)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.models import AuditEntry
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, NotFound, ValidationFailed
from idrs.grants import exports, service
from idrs.grants.models import Export
from idrs.oversight import render, report
from tests.integration import factories as f
from tests.integration.grants_world import OPERATOR, World, make_world

IDENTITY = [
    "900-12-3456",
    "900123456",
    "Carter",
    "12 Elm St",
    "Dayton",
    "45402",
    "1980-02-01",
    "937-555-0100",
    "000123456789",
    "800000006",
]


@pytest.fixture
def w(app, monkeypatch) -> World:
    world = make_world(app, monkeypatch)
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    for seid in ("EX001", "DT001"):
        world.train(seid)
    f.open_case(app, "EX001", f.CARTER, "C-1")
    return world


def _entries(app, kind: str) -> list[dict]:
    with app.engine.connect() as c:
        rows = c.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx)).scalars().all()
    return [e for e in (json.loads(bytes(r)) for r in rows) if e["type"] == kind]


def test_csv_export_goes_through_research_and_is_registered(w):
    token = w.token("EX001")
    before = len(_entries(w.app, "access:research:decide"))
    out = exports.create_export(
        w.app,
        token=token,
        command="ENMOD",
        tins=[f.CARTER],
        fmt="csv",
        case="C-1",
        interface="test",
    )
    assert len(_entries(w.app, "access:research:decide")) == before + 1  # decided + recorded
    text = out.content.decode()
    assert text.startswith("# CONFIDENTIAL") and out.export_id in text.splitlines()[0]
    rows = list(csv.reader(io.StringIO(text.split("\n", 1)[1])))
    assert rows[0][:3] == ["export_id", "command", "taxpayer"] and rows[1][0] == out.export_id
    assert exports.read_watermark(text.replace(out.export_id, "")) == out.export_id  # embedded
    with session_scope(w.app.engine) as s:
        view = exports.export_view(s, out.export_id)
    assert view["holder"] == "EX001" and view["taxpayers"] == 1 and not view["destroyed"]
    assert view["pseudonyms"] == [w.app.keyring.pseudonym("900123456")]
    assert view["counts"]["identity"] == 1
    entry = _entries(w.app, "grants:export:create")[-1]
    assert entry["object"]["export_id"] == out.export_id
    assert not any(x in json.dumps(entry) for x in IDENTITY)


def test_pdf_export_carries_visible_and_embedded_marks(w):
    out = exports.create_export(
        w.app,
        token=w.token("EX001"),
        command="IMFOL",
        tins=[f.CARTER],
        fmt="pdf",
        case="C-1",
        interface="test",
    )
    assert out.content.startswith(b"%PDF")
    assert exports.read_watermark(out.content) == out.export_id


def test_a_refused_taxpayer_refuses_the_whole_export(w):
    token = w.token("EX001")
    with pytest.raises(AccessDenied):  # no case on the spouse: NO_BUSINESS_NEED
        exports.create_export(
            w.app,
            token=token,
            command="ENMOD",
            tins=[f.CARTER, f.CARTER_SPOUSE],
            fmt="csv",
            interface="test",
        )
    with session_scope(w.app.engine) as s:
        assert s.scalar(select(func.count()).select_from(Export)) == 0
    with pytest.raises(ValidationFailed):
        exports.create_export(
            w.app, token=token, command="ENMOD", tins=[f.CARTER], fmt="xlsx", interface="test"
        )


def test_destruction_certificate(w):
    out = exports.create_export(
        w.app,
        token=w.token("EX001"),
        command="ENMOD",
        tins=[f.CARTER],
        fmt="csv",
        case="C-1",
        interface="test",
    )
    with pytest.raises(NotFound):
        exports.destroy_export(
            w.app,
            w.emp("EX001"),
            export_id="X-0000000000000000",
            method="shredded",
            witness_seid="SA001",
        )
    with pytest.raises(ValidationFailed):
        exports.destroy_export(
            w.app, w.emp("EX001"), export_id=out.export_id, method="shredded", witness_seid="EX001"
        )
    with pytest.raises(AccessDenied):  # not the holder
        exports.destroy_export(
            w.app, w.emp("SA001"), export_id=out.export_id, method="shredded", witness_seid="PO001"
        )
    res = exports.destroy_export(
        w.app, w.emp("EX001"), export_id=out.export_id, method="crypto-erase", witness_seid="SA001"
    )
    assert res.status == "destroyed" and res.witness == "SA001"
    with pytest.raises(Conflict):
        exports.destroy_export(
            w.app, w.emp("EX001"), export_id=out.export_id, method="again", witness_seid="SA001"
        )


def test_exports_outstanding_after_the_grant_ends(w):
    # an inside examiner with a grant of population cases: the export belongs to the grant
    gid = w.request(principal="EX001", start=w.app.clock.now().date(), days=10, population="cases")
    w.approve_both(gid)
    service.sign_agreement(w.app, w.emp("EX001"), agreement_id=w.agreement_id, otp=w.otp("EX001"))
    service.verify_clearance(w.app, seid="EX001", by="SA001", actor=OPERATOR)
    out = exports.create_export(
        w.app,
        token=w.token("EX001"),
        command="ENMOD",
        tins=[f.CARTER],
        fmt="csv",
        case="C-1",
        interface="test",
    )
    assert out.grant_id == gid
    assert service.show_grant(w.app, gid)["exports_outstanding"] is False  # still active
    w.app.clock.advance(days=11)
    shown = service.show_grant(w.app, gid)
    assert shown["status"] == "expired" and shown["exports_outstanding"] is True
    alerts = _entries(w.app, "grants:export:outstanding-alert")
    assert len(alerts) == 1 and alerts[0]["object"]["grant_id"] == gid
    service.list_grants(w.app)  # raised once only
    assert len(_entries(w.app, "grants:export:outstanding-alert")) == 1
    exports.destroy_export(
        w.app, w.emp("EX001"), export_id=out.export_id, method="shredded", witness_seid="SA001"
    )
    assert service.show_grant(w.app, gid)["exports_outstanding"] is False


def test_oversight_report_potential_actual_checkpoint(w, tmp_path):
    token = w.token("EX001")
    from idrs import research

    research.run(w.app, token=token, command="ENMOD", tin=f.CARTER, case="C-1", interface="t")
    with pytest.raises(AccessDenied):
        research.run(w.app, token=token, command="ENMOD", tin=f.CARTER_SPOUSE, interface="t")
    exports.create_export(
        w.app,
        token=token,
        command="IMFOL",
        tins=[f.CARTER],
        fmt="csv",
        case="C-1",
        interface="test",
    )
    rep = report.build(w.app, seids=["EX001"], actor=OPERATOR)
    assert {"potential", "actual", "checkpoint"} <= set(rep)
    pot = rep["potential"][0]
    assert pot["seid"] == "EX001" and pot["can_change"] is True
    enmod = next(c for c in pot["commands"] if c["command"] == "ENMOD")
    assert enmod["population"] == "cases" and enmod["taxpayers"] == 1
    act = rep["actual"]["principals"][0]
    assert act["accesses_by_command"] == {"ENMOD": 1, "IMFOL": 1}
    assert act["denials_by_reason"] == {"NO_BUSINESS_NEED": 1}
    assert act["distinct_taxpayers"] == 1
    assert rep["actual"]["exports"][0]["destroyed"] is False
    with w.app.engine.connect() as c:
        size = c.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    assert 0 < rep["checkpoint"]["tree_size"] <= size
    today = w.app.clock.now().date().isoformat()
    day = next(d for d in rep["actual"]["per_day"] if d["day"] == today)
    assert day == {"day": today, "accesses": 2, "denials": 1}
    for fmt in ("json", "csv", "html", "pdf"):
        data = render.render(rep, fmt)
        assert data
        if fmt != "pdf":
            assert not any(x.encode() in data for x in IDENTITY), fmt
            assert w.app.keyring.pseudonym("900123456").encode() not in data
    html = render.render(rep, "html").decode()
    assert html.count("data:image/png;base64,") == 2
    assert render.render(rep, "pdf").startswith(b"%PDF")


def test_report_scope_errors(w):
    with pytest.raises(ValidationFailed):
        report.build(w.app, actor=OPERATOR)
    with pytest.raises(ValidationFailed):
        report.build(w.app, seids=["EX001"], unit="HQ", actor=OPERATOR)
    with pytest.raises(NotFound):
        report.build(w.app, grant_id=999, actor=OPERATOR)
    with pytest.raises(ValidationFailed):
        report.build(
            w.app,
            seids=["EX001"],
            start=w.app.clock.now().date(),
            end=w.app.clock.now().date() - timedelta(days=1),
            actor=OPERATOR,
        )
    rep = report.build(w.app, unit="HQ", actor=OPERATOR)
    assert "DT001" in rep["scope"]["seids"] and "EX001" in rep["scope"]["seids"]
