"""Investigations of referred alerts, to their end, and the §7431(e) notice on the statute's
triggers only (issue 16.4), on SQLite and PostgreSQL.

A unit U1 with an examiner (EX1) who opened the Carters' account on a case; the alert desk
(PA1) refers an alert citing it; security staff in SEC investigate (SI1, SI2). Around them,
the people who must not move a case: the subject, an investigator of the subject's own unit
(SIU), the analyst who referred it even when they also hold an investigator's role (PX1), an
investigator who is themselves the subject (SI2's own case), anyone without the role.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idrs import research
from idrs.api import middleware
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.store import raw
from idrs.db import session_scope
from idrs.detection import investigations, reports, taxpayer, triage
from idrs.detection.models import Alert, Investigation, InvestigationStep, TaxpayerNotice
from idrs.detection.results import CaseTriggerStep
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, ValidationFailed
from idrs.identifiers import normalize_tin
from idrs.people import auth, totp
from idrs.people import service as people
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: seid → (roles, unit)
STAFF = {
    "EX1": ("examiner", "U1"),
    "MG1": ("manager", "U1"),
    "PA1": ("privacy_analyst", "PRIV"),
    "PO1": ("privacy_officer", "PRIV"),
    "SI1": ("security_admin", "SEC"),
    "SI2": ("security_admin", "SEC"),
    "SIU": ("security_admin", "U1"),
    "PX1": ("privacy_analyst,security_admin", "PRIV"),
}


class World:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.creds: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, str] = {}

    def h(self, seid: str) -> dict[str, str]:
        if seid not in self.tokens:
            self.app.clock.advance(seconds=30)
            code = totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())
            self.tokens[seid] = auth.sign_in(
                self.app, seid, self.creds[seid]["password"], code, "api"
            ).token
        return {"Authorization": f"Bearer {self.tokens[seid]}"}

    def web(self, seid: str) -> tuple[TestClient, str]:
        """A browser signed in as ``seid`` and its form token."""
        api = create_app(self.app)
        middleware.install(api)
        c = TestClient(api, follow_redirects=False)
        page = c.get("/signin")
        self.app.clock.advance(seconds=30)
        r = c.post("/signin", data={
            "csrf": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
            "seid": seid, "password": self.creds[seid]["password"],
            "otp": totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now()),
            "next": "/investigations"})
        assert r.status_code == 303, r.text
        token = CSRF.search(c.get("/research").text).group(1)  # type: ignore[union-attr]
        return c, token


@pytest.fixture
def w(app: Any) -> World:
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "PRIV", "SEC"):
        people.create_unit(app, unit, actor=OP)
    world = World(app)
    for n, (seid, (roles, unit)) in enumerate(STAFF.items()):
        world.creds[seid] = people.create_employee(
            app, unax_attested_at=app.clock.now(), seid=seid, name=f"Person {seid}",
            tin=f"900-41-03{n:02d}", roles=roles.split(","), unit=unit, actor=OP,
        )
    return world


@pytest.fixture
def client(w: World) -> TestClient:
    api = create_app(w.app)
    middleware.install(api)
    middleware.install_problem_handlers(api)
    return TestClient(api)


def _alert(w: World, alert_id: str, subject: str = "EX1", unit: str = "U1",
           inspected: bool = True) -> str:
    """An alert about ``subject`` citing an allowed inspection of the Carters' account."""
    indexes: list[int] = []
    if inspected:
        f.open_case(w.app, "EX1", f.CARTER, f"C-{alert_id[1:]}")
        token = w.h("EX1")["Authorization"].split()[1]
        indexes = [research.run(w.app, token=token, command="ENMOD", tin=f.CARTER,
                                case=f"C-{alert_id[1:]}", interface="api").audit_index]
    pseud = w.app.keyring.pseudonym(normalize_tin(f.CARTER))
    now = w.app.clock.now()
    with session_scope(w.app.engine) as s:
        s.add(Alert(alert_id=alert_id, seid=subject, unit=unit, day=now.date(), score=9.0,
                    category="curiosity", signals="[]", audit_indexes=json.dumps(indexes),
                    taxpayers=json.dumps([pseud] if inspected else []), state="open",
                    created_at=now, updated_at=now))
    return alert_id


def _refer(w: World, alert_id: str, analyst: str = "PA1") -> str:
    triage.assign(w.app, alert_id=alert_id, analyst=analyst)
    return str(triage.refer(w.app, alert_id=alert_id, analyst=analyst, note="to TIGTA")["case_id"])


def _entries(app: Any) -> list[dict[str, Any]]:
    with raw(app.engine) as db:
        rows = db.execute("SELECT leaf_input FROM audit_entry ORDER BY idx").fetchall()
    return [json.loads(bytes(r[0])) for r in rows]


def _count(app: Any, model: Any) -> int:
    with session_scope(app.engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _state(app: Any, case_id: str) -> tuple[str, str | None, list[str]]:
    with session_scope(app.engine) as s:
        inv = s.scalar(select(Investigation).where(Investigation.case_id == case_id))
        assert inv is not None
        steps = list(s.scalars(select(InvestigationStep.step).where(
            InvestigationStep.case_id == case_id).order_by(InvestigationStep.id)))
        return inv.state, inv.finding, steps


def test_referral_opens_a_case_and_the_notice_waits_for_the_statute(w: World,
                                                                   tmp_path: Path) -> None:
    app = w.app
    aid = _alert(w, "A700001")
    case = _refer(w, aid)
    assert case == "INV-A700001" and _state(app, case) == ("referred", None, [])
    refer_entry = next(e for e in _entries(app) if e["type"] == "detect:alert:refer")
    assert refer_entry["detail"]["case_id"] == case

    # a referral is no trigger: no notice, by any path
    with pytest.raises(IdrsError, match="no notice is due"):
        taxpayer.notice(app, alert_id=aid, out_dir=tmp_path / "n", actor=OP)
    assert _count(app, TaxpayerNotice) == 0

    # nothing moves before the case is opened
    with pytest.raises(Conflict, match="needs an opened investigation"):
        investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                      investigator="SI1", reason="looked")
    opened = investigations.open_case(app, case_id=case.lower(), investigator="SI1",
                                      reason="taken from the referral queue")
    assert opened["state"] == "opened" and opened["by"] == "SI1"
    with pytest.raises(Conflict, match="already recorded"):
        investigations.open_case(app, case_id=case, investigator="SI1", reason="again")

    # out of order, unknown, without a reason, with a TIN in it: refused, nothing written
    before = _count(app, InvestigationStep)
    with pytest.raises(Conflict, match="substantiated finding"):
        investigations.record_outcome(app, case_id=case, outcome="adverse_action_proposed",
                                      investigator="SI1", reason="too early")
    with pytest.raises(Conflict, match="substantiated finding or a resignation"):
        investigations.record_outcome(app, case_id=case, outcome="criminal_charge",
                                      investigator="SI1", reason="too early")
    with pytest.raises(ValidationFailed, match="outcome: one of"):
        investigations.record_outcome(app, case_id=case, outcome="fired",
                                      investigator="SI1", reason="x")
    with pytest.raises(ValidationFailed, match="reason"):
        investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                      investigator="SI1", reason="  ")
    with pytest.raises(ValidationFailed, match="reason"):
        investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                      investigator="SI1", reason=f"taxpayer {f.CARTER}")
    with pytest.raises(Conflict, match="close needs"):
        investigations.close(app, case_id=case, investigator="SI1", reason="done")
    with pytest.raises(NotFound):
        investigations.open_case(app, case_id="INV-A999999", investigator="SI1", reason="x")
    assert _count(app, InvestigationStep) == before
    assert f.CARTER not in json.dumps(_entries(app))

    done = investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                         investigator="SI1", reason="the case was a pretext")
    assert done["finding"] == "substantiated" and "notices" not in done
    assert _count(app, TaxpayerNotice) == 0  # a finding is no trigger either
    with pytest.raises(Conflict, match="already substantiated"):
        investigations.record_outcome(app, case_id=case, outcome="unsubstantiated",
                                      investigator="SI1", reason="changed my mind")

    # the trigger: a proposed adverse action issues the notice, once per taxpayer
    proposed = investigations.record_outcome(
        app, case_id=case, outcome="adverse-action-proposed", investigator="SI1",
        reason="removal proposed by the manager")
    sent = proposed["notices"]["sent"]
    pseud = app.keyring.pseudonym(normalize_tin(f.CARTER))
    assert [n["taxpayer"] for n in sent] == [pseud] and sent[0]["trigger"] == "adverse_action_proposed"
    with session_scope(app.engine) as s:
        notice = s.scalars(select(TaxpayerNotice)).one()
        assert notice.trigger == "adverse_action_proposed"
        assert "disciplinary or adverse action" in notice.html and "7431" in notice.html
    send = [e for e in _entries(app) if e["type"] == "taxpayer:notice:send"]
    assert len(send) == 1 and send[0]["detail"]["trigger"] == "adverse_action_proposed"

    # a second trigger finds it sent: exactly once
    charged = investigations.record_outcome(app, case_id=case, outcome="criminal_charge",
                                            investigator="SI1", reason="information filed")
    assert charged["notices"]["sent"] == [] and "already sent" in charged["notices"]["why_none"]
    with pytest.raises(Conflict):
        taxpayer.notice(app, alert_id=aid, out_dir=tmp_path / "n", actor=OP)
    assert _count(app, TaxpayerNotice) == 1
    with pytest.raises(Conflict, match="already recorded"):
        investigations.record_outcome(app, case_id=case, outcome="criminal_charge",
                                      investigator="SI1", reason="twice")

    closed = investigations.close(app, case_id=case, investigator="SI1", reason="action taken")
    assert closed["state"] == "closed"
    assert _state(app, case) == ("closed", "substantiated",
                                 ["open", "substantiated", "adverse_action_proposed",
                                  "criminal_charge", "close"])
    # each step is an audit entry naming the actor, the step and the reason
    steps = [e for e in _entries(app) if e["type"].startswith("detect:investigation:")
             and e["outcome"] == "success" and e["type"] != "detect:investigation:show"]
    assert [(e["actor"], e["detail"]["step"]) for e in steps] == [
        ("SI1", "open"), ("SI1", "substantiated"), ("SI1", "adverse_action_proposed"),
        ("SI1", "criminal_charge"), ("SI1", "close")]
    assert all(e["object"]["case_id"] == case and e["detail"]["reason"] for e in steps)

    assert triage.show(app, aid, analyst="PA1")["case_id"] == case
    shown = investigations.show(app, case_id=case, investigator="SI1")
    assert shown["next"] == [] and len(shown["notices"]) == 1
    assert [r["case_id"] for r in investigations.list_cases(app, investigator="SI1")] == [case]


def test_who_may_move_a_case(w: World) -> None:
    app = w.app
    case = _refer(w, _alert(w, "A700001"))

    def refused(seid: str, step: str = "open") -> list[str]:
        with pytest.raises(AccessDenied) as exc:
            if step == "open":
                investigations.open_case(app, case_id=case, investigator=seid, reason="mine")
            else:
                investigations.record_outcome(app, case_id=case, outcome=step,
                                              investigator=seid, reason="mine")
        assert exc.value.audit_index is not None  # the attempt is recorded
        return exc.value.codes

    assert refused("EX1") == ["NOT_IN_PROFILE"]  # the subject (no investigator's role)
    assert refused("PA1") == ["NOT_IN_PROFILE"]  # the alert desk does not investigate
    assert refused("MG1") == ["NOT_IN_PROFILE"]
    assert refused("SIU") == ["CONFLICT_COWORKER"]  # an investigator of the subject's unit
    assert refused("NOBODY") == ["NOT_IN_PROFILE"]
    assert _state(app, case) == ("referred", None, [])
    denials = [e for e in _entries(app) if e["type"] == "detect:investigation:open"
               and e["outcome"] == "deny"]
    assert [e["actor"] for e in denials] == ["EX1", "PA1", "MG1", "SIU", "NOBODY"]
    assert all(e["reasons"] for e in denials)

    investigations.open_case(app, case_id=case, investigator="SI1", reason="taken")
    assert refused("SI2", "substantiated") == ["NOT_IN_PROFILE"]  # not the investigator
    assert refused("EX1", "unsubstantiated") == ["NOT_IN_PROFILE"]  # the subject
    assert _state(app, case) == ("opened", None, ["open"])
    # the cases listed are only those one may work
    assert investigations.list_cases(app, investigator="SIU") == []
    with pytest.raises(AccessDenied):
        investigations.list_cases(app, investigator="EX1")
    with pytest.raises(AccessDenied):  # the role is checked before the case is looked up
        investigations.show(app, case_id="INV-NOPE", investigator="PA1")
    with pytest.raises(AccessDenied) as exc:
        investigations.show(app, case_id=case, investigator="SIU")
    assert exc.value.codes == ["CONFLICT_COWORKER"]

    # an investigator never moves a case about themselves
    own = _refer(w, _alert(w, "A700002", subject="SI2", unit="SEC", inspected=False))
    with pytest.raises(AccessDenied) as exc:
        investigations.open_case(app, case_id=own, investigator="SI2", reason="I will look")
    assert exc.value.codes == ["SELF_APPROVAL"]
    assert own not in [c["case_id"] for c in investigations.list_cases(app, investigator="SI2")]
    # SI1 shares SI2's unit: refused too; SIU (another unit) may take it
    with pytest.raises(AccessDenied) as exc:
        investigations.open_case(app, case_id=own, investigator="SI1", reason="colleague")
    assert exc.value.codes == ["CONFLICT_COWORKER"]
    investigations.open_case(app, case_id=own, investigator="SIU", reason="another unit")
    # the subject cannot move the case even now (nor end it)
    with pytest.raises(AccessDenied) as exc:
        investigations.record_outcome(app, case_id=own, outcome="unsubstantiated",
                                      investigator="SI2", reason="nothing here")
    assert exc.value.codes == ["SELF_APPROVAL"]

    # the analyst who referred never investigates, even holding the role
    third = _refer(w, _alert(w, "A700003", inspected=False), analyst="PX1")
    with pytest.raises(AccessDenied) as exc:
        investigations.open_case(app, case_id=third, investigator="PX1", reason="my referral")
    assert exc.value.codes == ["SELF_APPROVAL"]


def test_resignation_criminal_charge_and_unsubstantiated(w: World) -> None:
    app = w.app
    # resignation before completion: no action can be proposed; a charge still notifies
    case = _refer(w, _alert(w, "A700001"))
    investigations.open_case(app, case_id=case, investigator="SI1", reason="taken")
    investigations.record_outcome(app, case_id=case, outcome="resigned", investigator="SI1",
                                  reason="resigned before the interview")
    assert _count(app, TaxpayerNotice) == 0  # a resignation is no trigger
    with pytest.raises(Conflict, match="substantiated finding"):
        investigations.record_outcome(app, case_id=case, outcome="adverse_action_proposed",
                                      investigator="SI1", reason="too late")
    investigations.close(app, case_id=case, investigator="SI1", reason="subject left")
    charged = investigations.record_outcome(app, case_id=case, outcome="criminal_charge",
                                            investigator="SI1", reason="indicted later")
    assert len(charged["notices"]["sent"]) == 1 and charged["state"] == "closed"
    with session_scope(app.engine) as s:
        html = s.scalars(select(TaxpayerNotice.html)).one()
    assert "criminally charged" in html

    # unsubstantiated: closes the case, nothing more may be recorded, no notice
    other = _refer(w, _alert(w, "A700002"))
    investigations.open_case(app, case_id=other, investigator="SI1", reason="taken")
    done = investigations.record_outcome(app, case_id=other, outcome="unsubstantiated",
                                         investigator="SI1", reason="the case was real")
    assert done["state"] == "closed" and "notices" not in done
    for outcome in ("substantiated", "criminal_charge", "resigned"):
        with pytest.raises(Conflict):
            investigations.record_outcome(app, case_id=other, outcome=outcome,
                                          investigator="SI1", reason="after the end")
    assert _count(app, TaxpayerNotice) == 1

    # a trigger on an alert that cites no allowed inspection: recorded, no notice due
    third = _refer(w, _alert(w, "A700003", inspected=False))
    investigations.open_case(app, case_id=third, investigator="SI1", reason="taken")
    investigations.record_outcome(app, case_id=third, outcome="substantiated",
                                  investigator="SI1", reason="refused attempts only")
    r = investigations.record_outcome(app, case_id=third, outcome="adverse_action_proposed",
                                      investigator="SI1", reason="reprimand proposed")
    assert r["notices"]["sent"] == [] and "no allowed inspection" in r["notices"]["why_none"]

    # the weekly report of U1 counts the outcomes (no names)
    rep = reports.weekly(app, unit="U1", week=app.clock.now().date(), actor=OP)
    stats = rep["report"]["investigations"]
    assert stats["week"]["outcomes"] == {"unsubstantiated": 1, "substantiated": 1,
                                         "adverse_action_proposed": 1, "criminal_charge": 1,
                                         "resigned": 1}
    assert stats["week"]["notices_sent"] == 1
    assert stats["to_date"]["cases"] == {"referred": 0, "opened": 1, "closed": 2}
    assert "SI1" not in json.dumps(stats)
    # another unit's report counts none of them
    assert reports.weekly(app, unit="SEC", week=app.clock.now().date(), actor=OP)[
        "report"]["investigations"]["to_date"]["outcomes"]["resigned"] == 0


def test_investigations_over_http_and_the_notice_route(w: World, client: TestClient) -> None:
    app = w.app
    aid = _alert(w, "A700001")
    notice = f"/api/v1/alerts/{aid}/notice"
    assert client.post(f"/api/v1/alerts/{aid}/assign", headers=w.h("PA1")).status_code == 200
    r = client.post(f"/api/v1/alerts/{aid}/refer", json={"note": "to TIGTA"}, headers=w.h("PA1"))
    assert r.status_code == 200 and r.json()["case_id"] == "INV-A700001"
    case = "/api/v1/investigations/INV-A700001"
    r = client.post(notice, headers=w.h("PO1"))  # referred, but no trigger: none is due
    assert r.status_code == 400 and "no notice is due" in r.json()["error"]

    assert client.get("/api/v1/investigations").status_code == 401
    assert client.get("/api/v1/investigations", headers=w.h("PA1")).status_code == 403
    r = client.post(f"{case}/open", json={"reason": "mine"}, headers=w.h("EX1"))
    assert r.status_code == 403  # the subject
    r = client.post(f"{case}/open", json={"reason": "mine"}, headers=w.h("SIU"))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "CONFLICT_COWORKER"
    r = client.post(f"{case}/open", json={"reason": "x", "extra": 1}, headers=w.h("SI1"))
    assert r.status_code == 422
    r = client.post(f"{case}/open", json={"reason": ""}, headers=w.h("SI1"))
    assert r.status_code == 422
    listed = client.get("/api/v1/investigations", params={"state": "referred"},
                        headers=w.h("SI1")).json()
    assert listed["total"] == 1 and listed["investigations"][0]["subject"] == "EX1"
    assert client.get("/api/v1/investigations", params={"state": "nope"},
                      headers=w.h("SI1")).status_code == 422
    assert client.get("/api/v1/investigations/INV-NOPE", headers=w.h("SI1")).status_code == 404

    r = client.post(f"{case}/open", json={"reason": "taken"}, headers=w.h("SI1"))
    assert r.status_code == 200 and r.json()["state"] == "opened"
    out = f"{case}/outcomes"
    r = client.post(out, json={"outcome": "fired", "reason": "x"}, headers=w.h("SI1"))
    assert r.status_code == 422
    r = client.post(out, json={"outcome": "criminal_charge", "reason": "x"}, headers=w.h("SI1"))
    assert r.status_code == 409
    r = client.post(out, json={"outcome": "substantiated", "reason": "x"}, headers=w.h("SI2"))
    assert r.status_code == 403  # not the investigator of the case
    r = client.post(out, json={"outcome": "substantiated", "reason": "pretext"},
                    headers=w.h("SI1"))
    assert r.status_code == 201 and r.json()["finding"] == "substantiated"
    r = client.post(out, json={"outcome": "criminal_charge", "reason": "information filed"},
                    headers=w.h("SI1"))
    assert r.status_code == 201, r.text
    sent = r.json()["notices"]["sent"]
    assert len(sent) == 1 and sent[0]["trigger"] == "criminal_charge"
    assert client.post(notice, headers=w.h("PO1")).status_code == 409  # exactly once
    html = client.get(f"/api/v1/notices/{sent[0]['notice_id']}/html", headers=w.h("PA1"))
    assert html.status_code == 200 and "criminally charged" in html.text
    listed_notices = client.get("/api/v1/notices", headers=w.h("PA1")).json()["notices"]
    assert listed_notices[0]["trigger"] == "criminal_charge"

    shown = client.get(case, headers=w.h("SI1")).json()
    assert [s["step"] for s in shown["steps"]] == ["open", "substantiated", "criminal_charge"]
    assert "close" in shown["next"] and "adverse_action_proposed" in shown["next"]
    r = client.post(f"{case}/close", json={"reason": "done"}, headers=w.h("SI1"))
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert _count(app, TaxpayerNotice) == 1


def test_investigator_pages(w: World) -> None:
    case = _refer(w, _alert(w, "A700001"))
    analyst, _ = w.web("PA1")
    assert analyst.get("/investigations").status_code == 403
    browser, token = w.web("SI1")
    page = browser.get("/investigations")
    assert page.status_code == 200 and case in page.text and "EX1" in page.text
    assert browser.get("/investigations", params={"state": "nope"}).status_code == 400
    page = browser.get(f"/investigations/{case}")
    assert page.status_code == 200 and "Open the investigation" in page.text
    r = browser.post(f"/investigations/{case}/open", data={"reason": "taken"})  # no CSRF
    assert r.status_code == 403
    r = browser.post(f"/investigations/{case}/open", data={"csrf": token, "reason": "taken"})
    assert r.status_code == 303
    page = browser.get(r.headers["location"])
    assert "Recorded: open" in page.text and "Record the outcome" in page.text
    r = browser.post(f"/investigations/{case}/outcome",
                     data={"csrf": token, "outcome": "substantiated", "reason": "pretext"})
    assert r.status_code == 303
    r = browser.post(f"/investigations/{case}/outcome",
                     data={"csrf": token, "outcome": "adverse_action_proposed",
                           "reason": "suspension proposed"})
    assert r.status_code == 303 and "sent=1" in r.headers["location"]
    page = browser.get(r.headers["location"])
    assert "1 notice(s) sent" in page.text and "adverse action proposed" in page.text
    r = browser.post(f"/investigations/{case}/outcome",
                     data={"csrf": token, "outcome": "<script>", "reason": "x"})
    assert r.status_code == 422 and "<script>" not in r.text
    r = browser.post(f"/investigations/{case}/frobnicate", data={"csrf": token, "reason": "x"})
    assert r.status_code == 404
    for seid in ("EX1", "SIU"):  # the subject; an investigator of the subject's unit
        other, other_token = w.web(seid)
        r = other.post(f"/investigations/{case}/outcome",
                       data={"csrf": other_token, "outcome": "unsubstantiated",
                             "reason": "nothing here"})
        assert r.status_code == 403, seid
        assert other.get(f"/investigations/{case}").status_code == 403
    assert _state(w.app, case) == ("opened", "substantiated",
                                   ["open", "substantiated", "adverse_action_proposed"])


def test_investigations_from_the_command_line(w: World, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from idrs.config import get_settings
    from tests.integration.cli_helpers import run_cli, sign_in_for_cli

    app = w.app
    case = _refer(w, _alert(w, "A700001"))
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    try:
        sign_in_for_cli(app, "EX1")  # the subject
        code, _, err = run_cli(capsys, "investigations", "open", "--case", case, "--reason", "x")
        assert code == 1 and "NOT_IN_PROFILE" in err and "Traceback" not in err
        sign_in_for_cli(app, "SIU")  # an investigator of the subject's unit
        code, _, err = run_cli(capsys, "investigations", "open", "--case", case, "--reason", "x")
        assert code == 1 and "CONFLICT_COWORKER" in err and "Traceback" not in err
        sign_in_for_cli(app, "SI1")
        code, out, err = run_cli(capsys, "investigations", "list", "--state", "referred", "--json")
        assert code == 0, err
        assert [c["case_id"] for c in json.loads(out)["investigations"]] == [case]
        code, _, err = run_cli(capsys, "investigations", "list", "--state", "nope")
        assert code == 1 and "state" in err
        code, out, err = run_cli(capsys, "investigations", "open", "--case", case,
                                 "--reason", "taken", "--json")
        assert code == 0 and json.loads(out)["state"] == "opened", err
        code, _, err = run_cli(capsys, "investigations", "outcome", "--case", case,
                               "--outcome", "fired", "--reason", "x")
        assert code == 1 and "outcome: one of" in err
        code, out, err = run_cli(capsys, "investigations", "outcome", "--case", case,
                                 "--outcome", "substantiated", "--reason", "pretext")
        assert code == 0 and "substantiated" in out, err
        code, out, err = run_cli(capsys, "investigations", "outcome", "--case", case,
                                 "--outcome", "criminal_charge", "--reason", "information filed")
        assert code == 0 and "notices sent: 1" in out, err
        code, _, err = run_cli(capsys, "taxpayer", "notice", "--alert", "A700001",
                               "--out", str(app.settings.home / "n"))
        assert code == 1 and "already sent" in err  # exactly once
        code, out, err = run_cli(capsys, "investigations", "close", "--case", case,
                                 "--reason", "charged", "--json")
        assert code == 0 and json.loads(out)["state"] == "closed", err
        code, out, err = run_cli(capsys, "investigations", "show", "--case", case, "--json")
        assert code == 0 and [s["step"] for s in json.loads(out)["steps"]] == [
            "open", "substantiated", "criminal_charge", "close"]
    finally:
        get_settings.cache_clear()
    assert _count(app, TaxpayerNotice) == 1


def test_migration_gives_alerts_referred_before_it_their_case(tmp_path: Path) -> None:
    """Revision 0010 on a database whose alerts were referred (and noticed) under 0009 (the revision before it)."""
    from alembic import command
    from sqlalchemy import text

    from idrs import migrate
    from idrs.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
    with engine.begin() as conn:
        for aid, state in (("A1", "referred"), ("A2", "open")):
            conn.execute(text(
                "INSERT INTO detection_alert (alert_id, seid, unit, day, score, category, "
                "signals, audit_indexes, taxpayers, state, assignee, self_reported, confirmed, "
                "created_at, updated_at) VALUES (:a, 'EX1', 'U1', '2026-03-02', 5, 'x', '[]', "
                "'[]', '[]', :s, 'PA1', 0, 0, '2026-03-02 10:00:00', '2026-03-02 11:00:00')"),
                {"a": aid, "s": state})
        conn.execute(text(
            "INSERT INTO detection_taxpayer_notice (alert_id, taxpayer, html, sent_at, "
            "audit_index) VALUES ('A1', 'p', '<p>', '2026-03-02 12:00:00', 7)"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT case_id, alert_id, subject, state, referred_by "
                                 "FROM detection_investigation")).all()
        trigger = conn.execute(text("SELECT trigger FROM detection_taxpayer_notice")).scalar()
    assert [tuple(r) for r in rows] == [("INV-A1", "A1", "EX1", "referred", "PA1")]
    assert trigger is None  # sent at referral, before the statute's trigger was recorded
    with engine.begin() as conn:  # and back down: the tables and the column go
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(detection_taxpayer_notice)"))}
    assert "detection_investigation" not in names and "trigger" not in columns
    engine.dispose()


def test_two_triggers_at_once_send_one_notice(w: World) -> None:
    """A proposed action and a charge recorded at the same moment: one notice, one entry."""
    import threading

    app = w.app
    case = _refer(w, _alert(w, "A700001"))
    investigations.open_case(app, case_id=case, investigator="SI1", reason="taken")
    investigations.record_outcome(app, case_id=case, outcome="substantiated",
                                  investigator="SI1", reason="pretext")
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def record(outcome: str) -> None:
        barrier.wait()
        try:
            results[outcome] = investigations.record_outcome(
                app, case_id=case, outcome=outcome, investigator="SI1", reason="at once")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[outcome] = exc

    threads = [threading.Thread(target=record, args=(o,))
               for o in ("adverse_action_proposed", "criminal_charge")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, CaseTriggerStep) for r in results.values()), results
    sent = [n for r in results.values() for n in r["notices"]["sent"]]
    assert len(sent) == 1
    assert _count(app, TaxpayerNotice) == 1
    assert [e["type"] for e in _entries(app)].count("taxpayer:notice:send") == 1
    assert _state(app, case)[2][-2:] in (["adverse_action_proposed", "criminal_charge"],
                                         ["criminal_charge", "adverse_action_proposed"])
