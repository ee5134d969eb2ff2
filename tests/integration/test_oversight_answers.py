"""The oversight report's answers (issue 14.4): every answer an outside principal received,
by entry index and commitment (never its content), the witnessed checkpoint covering them,
and the command that opens one for a court; and a chart with nothing to show says so."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from idrs import research
from idrs.audit import service as audit_service
from idrs.audit.checkpoint import ensure_signing_key, load_signer
from idrs.audit.models import AuditEntry
from idrs.errors import AccessDenied
from idrs.grants import exports, service
from idrs.oversight import opening, render, report
from tests.integration import factories as f
from tests.integration.grants_world import OPERATOR, World, make_world

from .witness_helpers import Served, SpecVerifier

SECADMIN = SimpleNamespace(seid="SA001", active=True, role_set=frozenset({"security_admin"}))
#: what must never appear in any form of the report: the Carters' identity and their answers
SECRET = ["900-12-3456", "900123456", "Carter", "CART", "12 Elm St", "Dayton", "45402", "MFJ"]


@pytest.fixture
def w(app, monkeypatch) -> World:
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    world = make_world(app, monkeypatch)
    world.train("DT001")
    service.verify_clearance(app, seid="DT001", by="SA001", actor=OPERATOR)
    return world


@pytest.fixture
def witnessed(w, tmp_path):
    """One witness (an inspector general) trusting this log, configured on it."""
    from idrs.audit import witness, witnesses

    from ..ready import until

    d = tmp_path / "oig"
    vkey = witness.init(d, "oig.example/w1", [load_signer(w.app.settings.home).vkey()])
    s = Served(d)
    s.vkey = vkey  # type: ignore[attr-defined]
    audit_service.add_witness(w.app, "oig.example/w1", s.url, vkey, "os:test")
    yield s
    until(lambda: witnesses.idle(w.app.engine))
    s.stop()


def _grant_with_access(w: World) -> tuple[int, str]:
    """DT001, a detailee from another department, under an approved grant, agreement signed."""
    gid = w.request(start=w.app.clock.now().date(), commands="ENMOD,IMFOL")
    w.approve_both(gid)
    service.sign_agreement(w.app, w.emp("DT001"), agreement_id=w.agreement_id, otp=w.otp("DT001"))
    return gid, w.token("DT001")


def _entries(app) -> list[dict[str, Any]]:
    with app.engine.connect() as c:
        rows = c.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx)).scalars().all()
    return [json.loads(bytes(r)) for r in rows]


def _pdf_text(page: str) -> tuple[str, int]:
    """The text WeasyPrint lays out on the PDF's pages, and how many images it places."""
    from weasyprint import HTML
    from weasyprint.formatting_structure import boxes

    texts: list[str] = []
    images = 0
    for p in HTML(string=page).render().pages:
        for box in p._page_box.descendants():
            if isinstance(box, boxes.TextBox):
                texts.append(box.text)
            elif isinstance(box, boxes.ReplacedBox):
                images += 1
    return " ".join(texts), images


def test_the_report_lists_every_answer_by_commitment_with_a_witnessed_checkpoint(w, witnessed):
    app = w.app
    gid, dt = _grant_with_access(w)
    given = [
        research.run(app, token=dt, command="ENMOD", tin=f.CARTER, interface="test"),
        research.run(app, token=dt, command="IMFOL", tin=f.CARTER, interface="test"),
    ]
    with pytest.raises(AccessDenied):  # out of the grant's scope: refused, no answer
        research.run(app, token=dt, command="RTVUE", tin=f.CARTER, year=2023, interface="test")
    exports.create_export(
        app, token=dt, command="IMFOL", tins=[f.CARTER], fmt="csv", interface="test"
    )
    # someone else's answer in the same period is not the principal's
    w.train("EX001")
    f.open_case(app, "EX001", f.CARTER, "C-1")
    research.run(app, token=w.token("EX001"), command="ENMOD", tin=f.CARTER, case="C-1",
                 interface="test")

    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    ans = rep["answers"]
    committed = [
        e for e in _entries(app)
        if e["actor"] == "DT001" and isinstance(e["object"].get("answer"), str)
    ]
    assert len(committed) == 3  # ENMOD, IMFOL, and the export's IMFOL answer
    assert {g.audit_index for g in given} < {e["index"] for e in committed}
    assert [(a["index"], a["commitment"], a["command"]) for a in ans["items"]] == [
        (e["index"], e["object"]["answer"], e["object"]["command"]) for e in committed
    ]
    assert ans["total"] == 3 and {a["seid"] for a in ans["items"]} == {"DT001"}
    for a in ans["items"]:
        assert a["open"] == f"idrs audit open {a['index']} --json > opening-{a['index']}.json"
    assert ans["check_command"] == "idrs audit check-opening opening-INDEX.json"

    # the checkpoint covers them, and the witness cosigned it (checked from the C2SP texts)
    ck = ans["checkpoint"]
    assert ck["tree_size"] > max(a["index"] for a in ans["items"])
    assert ck["witnesses"] == [{"name": "oig.example/w1", "vkey": witnessed.vkey,
                                "cosigned": True}]
    origin, size, root = SpecVerifier(
        load_signer(app.settings.home).vkey(), [witnessed.vkey], k=1
    ).verify(ck["note"])
    assert (origin, size, root.hex()) == (app.settings.audit_origin, ck["tree_size"],
                                          ck["root_hex"])

    # the listed command opens any one of them for a court, and the opening checks
    for a in ans["items"]:
        doc = opening.open_answer(app, SECADMIN, a["index"])
        assert doc["matches"] is True and doc["commitment"] == a["commitment"]
        assert opening.check_opening(json.loads(json.dumps(doc)))["ok"]

    # every form lists them without the content
    data = {fmt: render.render(rep, fmt) for fmt in ("json", "csv", "html")}
    for fmt, out in data.items():
        for a in ans["items"]:
            assert a["commitment"].encode() in out, fmt
        for secret in SECRET:
            assert secret.encode() not in out, (fmt, secret)
    rows = list(csv.reader(io.StringIO(data["csv"].decode())))
    assert [r[3:] for r in rows if r[0] == "answer"] == [
        [str(a["index"]), a["commitment"]] for a in ans["items"]
    ]
    assert ["witness", "", "cosigned", "oig.example/w1", "True"] in rows
    html = data["html"].decode()
    assert f"idrs audit open {ans['items'][0]['index']} --json" in html
    assert "cosigned" in html and "No witness is configured" not in html
    pdf = render.render(rep, "pdf")
    assert pdf.startswith(b"%PDF")
    text, images = _pdf_text(html)
    assert "Answers received" in text and images == 2

    # over HTTP the JSON form carries the same list (validated against its declared model)
    from fastapi.testclient import TestClient

    from idrs.api.app import create_app

    with TestClient(create_app(app)) as client:
        r = client.get("/api/v1/oversight/report", params={"grant": gid, "format": "json"},
                       headers={"Authorization": f"Bearer {w.token('PO001')}"})
    assert r.status_code == 200, r.text
    got = r.json()["answers"]
    assert [(a["index"], a["commitment"]) for a in got["items"]] == [
        (a["index"], a["commitment"]) for a in ans["items"]
    ]
    assert got["checkpoint"]["witnesses"][0]["cosigned"] is True
    assert all(a["commitment"][:16] in text.replace(" ", "") for a in ans["items"])
    assert not any(secret in text for secret in SECRET)


def test_a_principal_with_no_access_gets_words_not_empty_charts(w):
    app = w.app
    gid = w.request()  # pending approval: DT001 reaches nothing
    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    assert rep["actual"]["totals"]["allowed"] == 0 and rep["answers"]["total"] == 0
    assert render.charts(rep) == {"per_day": None, "classes": None}
    html = render.render(rep, "html").decode()
    assert "data:image/png" not in html
    assert "none in the period, so there is nothing to chart" in html
    assert "no allowed answer carried a data class in the period" in html
    assert "No answer was received in the period." in html
    assert "No witness is configured" in html  # and the report says its checkpoint is the operator's only
    assert rep["answers"]["checkpoint"]["witnesses"] == []
    assert render.render(rep, "pdf").startswith(b"%PDF")
    text, images = _pdf_text(html)
    assert images == 0 and "nothing to chart" in text


def test_denials_only_draw_the_days_chart_from_zero(w):
    """A principal refused every time has a days chart (denials) and no classes chart."""
    app = w.app
    gid = w.request(start=app.clock.now().date())  # not approved: every call refused
    dt = w.token("DT001")
    for _ in range(2):
        with pytest.raises(AccessDenied):
            research.run(app, token=dt, command="ENMOD", tin=f.CARTER, interface="test")
    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    drawn = render.charts(rep)
    assert drawn["per_day"] is not None and drawn["per_day"].startswith("data:image/png")
    assert drawn["classes"] is None
    assert rep["answers"]["items"] == []


def test_a_witness_that_is_down_is_named_not_cosigning(w, witnessed):
    app = w.app
    gid, dt = _grant_with_access(w)
    research.run(app, token=dt, command="ENMOD", tin=f.CARTER, interface="test")
    witnessed.stop()
    witnessed.stop = lambda: None  # type: ignore[method-assign]
    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    ck = rep["answers"]["checkpoint"]
    assert ck["cosignatures"] == 0 and ck["witnesses"][0]["cosigned"] is False
    assert "not cosigned" in render.render(rep, "html").decode()
    assert rep["answers"]["total"] == 1


def test_the_html_lists_at_most_max_listed_and_says_where_the_rest_are(w, monkeypatch):
    app = w.app
    gid, dt = _grant_with_access(w)
    for _ in range(3):
        research.run(app, token=dt, command="ENMOD", tin=f.CARTER, interface="test")
    rep = report.build(app, grant_id=gid, actor=OPERATOR)
    monkeypatch.setattr(render, "MAX_LISTED", 2)
    html = render.render(rep, "html").decode()
    assert "The first 2 of 3 answers are listed here" in html
    assert html.count("idrs audit open ") == 2 + 1  # two rows and the general command
    assert len(json.loads(render.render(rep, "json"))["answers"]["items"]) == 3
