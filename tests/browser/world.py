"""A small world for the browser tests, built through the real services.

Two households imported from JSON Lines (the import format), employees created by
``people.service``, a case assigned by ``access.service``, a pending adjustment requested by
an examiner after the prerequisite research, a pending grant, and an alert produced by the
detection run over refused look-ups.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from idrs import migrate, research
from idrs.access.service import Actor as AccessActor
from idrs.access.service import assign_case
from idrs.adjustments import service as adjustments
from idrs.adjustments import trail
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import AccessDenied
from idrs.grants import service as grants
from idrs.masterfile.importer import import_file
from idrs.people import auth, passwords, totp
from idrs.people import service as people

OPERATOR = "os:browser-tests"
CASE_TIN = "950-10-0001"
SPOUSE_TIN = "950-10-0002"
OTHER_TIN = "950-11-0001"


def _household(tin: str, spouse: str, last: str, street: str, n: int) -> list[dict[str, Any]]:
    addr = {"street": street, "city": "Dayton", "state": "OH", "zip": "45402"}
    ret = {
        "tax_year": 2023,
        "filing_status": "MFJ",
        "spouse_tin": spouse,
        "address": addr,
        "dependents": [],
        "w2": [
            {
                "employer_ein": "00-1234567",
                "employer_name": "Acme Corp",
                "wages": 61000.0,
                "withholding": 7100.0,
            }
        ],
        "k1": [],
        "schedule_c": [],
        "agi": 58000.0,
        "total_tax": 4100.0,
        "preparer_ptin": "P00000001",
        "refund": {
            "amount": 3000.0,
            "direct_deposit": {"routing": "800000006", "account": f"00012345678{n}"},
        },
    }
    return [
        {
            "tin": tin,
            "name": {"first": "Ann", "middle": "B", "last": last, "suffix": ""},
            "date_of_birth": "1980-02-01",
            "address": addr,
            "phone": "937-555-0100",
            "markers": [],
            "returns": [ret],
            "transactions": [
                {"tax_year": 2023, "tc": "150", "date": "2024-04-15", "amount": 4100.0},
                {"tax_year": 2023, "tc": "806", "date": "2024-04-15", "amount": 7100.0},
            ],
        },
        {
            "tin": spouse,
            "name": {"first": "Ben", "middle": "", "last": last, "suffix": ""},
            "date_of_birth": "1979-03-04",
            "address": addr,
            "phone": "937-555-0101",
            "markers": [],
            "returns": [],
            "transactions": [],
        },
    ]


#: seid → (name, own TIN, roles, unit)
PEOPLE = {
    "EXB01": ("Erin Examiner", "999-49-0101", "examiner", "FIELD"),
    "EXB02": ("Eli Examiner", "999-49-0102", "examiner", "FIELD"),
    "MGB01": ("Mia Manager", "999-49-0103", "manager", "FIELD"),
    "PAB01": ("Pat Analyst", "999-49-0104", "privacy_analyst", "PRIVACY"),
    "POB01": ("Paz Officer", "999-49-0105", "privacy_officer", "PRIVACY"),
    "AOB01": ("Abe Official", "999-49-0106", "authorizing_official", "PRIVACY"),
    "AUB01": ("Ari Auditor", "999-49-0107", "auditor", "PRIVACY"),
    "DTB01": ("Dee Detailee", "999-49-0108", "examiner", "FIELD"),
    "EXB03": ("Evan Examiner", "999-49-0109", "examiner", "FIELD"),
    "SAB01": ("Sam Admin", "999-49-0110", "security_admin", "PRIVACY"),
    "LKB01": ("Lee Locked", "999-49-0111", "csr", "FIELD"),
}
#: security administration (tests/browser/test_admin.py): two administrators of FIELD and a
#: service representative whose profile they change
PEOPLE.update({
    "SAB02": ("Sue Admin", "999-49-0112", "security_admin", "FIELD"),
    "SAB03": ("Sid Admin", "999-49-0113", "security_admin", "FIELD"),
    "CSB01": ("Cal Clerk", "999-49-0114", "csr", "FIELD"),
})


@dataclass
class World:
    app: App
    db_url: str
    home: Path
    creds: dict[str, dict[str, str]] = field(default_factory=dict)
    adjustment_id: int = 0
    grant_id: int = 0
    alert_id: str = ""

    def code(self, seid: str, ahead: int = 0) -> str:
        """The one-time code of ``seid`` ``ahead`` 30-second steps from now."""
        when = self.app.clock.now() + timedelta(seconds=30 * ahead)
        return totp.code_at(self.creds[seid]["totp_secret"], when)


def build(tmp: Path) -> World:
    passwords.use_weak_hashing_for_tests_only()
    home = tmp / "home"
    db_url = f"sqlite:///{tmp / 'idrs.db'}"
    settings = Settings(database_url=db_url, home=home)
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    keyring = Keyring.create(home)
    ensure_signing_key(home, settings.audit_origin)
    app = App(settings=settings, engine=engine, keyring=keyring)
    w = World(app, db_url, home)
    records = _household(CASE_TIN, SPOUSE_TIN, "Carter", "12 Elm St", 1) + _household(
        OTHER_TIN, "950-11-0002", "Diaz", "40 Oak Ave", 2
    )
    src = tmp / "people.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    import_file(app, src, actor=OPERATOR)
    for unit in ("FIELD", "PRIVACY"):
        people.create_unit(app, unit, actor=OPERATOR)
    for seid, (name, tin, roles, unit) in PEOPLE.items():
        w.creds[seid] = people.create_employee(
            app,
            unax_attested_at=app.clock.now(),
            seid=seid,
            name=name,
            tin=tin,
            roles=roles,
            unit=unit,
            actor=OPERATOR,
        )
    _contractor(w)
    assign_case(app, seid="EXB01", tin=CASE_TIN, case_id="BR-1", actor=AccessActor(OPERATOR))
    assign_case(app, seid="EXB02", tin=CASE_TIN, case_id="BR-2", actor=AccessActor(OPERATOR))
    assign_case(app, seid="EXB03", tin=CASE_TIN, case_id="BR-3", actor=AccessActor(OPERATOR))
    _lock(w, "LKB01")
    _pending_adjustment(w)
    _pending_grant(w)
    _alert(w)
    _analyst(w)
    return w


#: the analyst's page (tests/browser/test_analysis.py): a detailee holding an approved
#: statistics grant (ε = 1.0 in all) and an anonymized grant, prerequisites in order
ANALYST = ("ANB01", "Ada Analyst", "999-49-0121", "Bureau of Statistics")


def _analyst(w: World) -> None:
    from sqlalchemy import select

    from idrs.grants.models import Agreement
    from idrs.people.models import Employee

    seid, name, tin, org = ANALYST
    w.creds[seid] = people.create_employee(
        w.app, seid=seid, name=name, tin=tin, roles="examiner", unit="FIELD",
        kind="detailee", home_org=org, unax_attested_at=w.app.clock.now(), actor=OPERATOR,
    )
    op = grants.Actor(OPERATOR)
    # two approvers of their own, who never sign in through the browser (their one-time
    # codes are spent here, not raced with a sign-in)
    for who, role in (("POB09", "privacy_officer"), ("AOB09", "authorizing_official")):
        w.creds[who] = people.create_employee(
            w.app, seid=who, name=f"Approver {who}", tin=None, roles=role, unit="PRIVACY",
            unax_attested_at=w.app.clock.now(), actor=OPERATOR,
        )

    def emp(who: str) -> Employee:
        with w.app.engine.connect() as conn:
            from sqlalchemy.orm import Session

            with Session(bind=conn) as s:
                e = s.scalar(select(Employee).where(Employee.seid == who))
                assert e is not None
                s.expunge(e)
                return e

    with w.app.engine.connect() as conn:
        agreement = conn.execute(select(Agreement.id).where(Agreement.current)).scalar_one()
    # codes of the previous time step: the browser signs these people in with later ones
    grants.sign_agreement(w.app, emp(seid), agreement_id=agreement, otp=w.code(seid, ahead=-1))
    grants.verify_clearance(w.app, seid=seid, by="SAB01", actor=op)
    grants.record_training(w.app, seid=seid, actor=op)
    for kind, extra in (("statistics", {"epsilon": 1.0}), ("anonymized", {"k": 2})):
        gid = int(grants.request_grant(
            w.app, principal=seid, purpose=f"{kind} for the modernization study",
            basis="IRC 6103(h)(1)", commands=None if kind == "statistics" else "ENMOD",
            classes=None if kind == "statistics" else "identity", kind=kind,
            start=w.app.clock.now().date(), days=90, actor=op, **extra,
        ).grant_id)
        for approver in ("POB09", "AOB09"):
            grants.approve_grant(w.app, emp(approver), grant_id=gid,
                                 otp=w.code(approver, ahead=-1 if kind == "statistics" else 0))


#: outside access (tests/browser/test_grants_reports.py): a contractor in FIELD, registered by
#: the security administrator, with no agreement signed and no UNAX training yet
CONTRACTOR = ("CTB01", "Cory Contractor", "999-49-0120", "Acme Consulting")


def _contractor(w: World) -> None:
    seid, name, tin, org = CONTRACTOR
    w.creds[seid] = people.create_employee(
        w.app, seid=seid, name=name, tin=tin, roles="examiner", unit="FIELD",
        kind="contractor", home_org=org, actor=OPERATOR,
    )


def _lock(w: World, seid: str) -> None:
    """Wrong passwords until the account locks (the lockout threshold)."""
    for _ in range(w.app.settings.lockout_threshold):
        with contextlib.suppress(AccessDenied):
            auth.sign_in(w.app, seid, "wrong password", "000000", "api")


def is_locked(w: World, seid: str) -> bool:
    from sqlalchemy import select

    from idrs.people.models import Employee

    with w.app.engine.connect() as conn:
        return (
            conn.execute(select(Employee.locked_at).where(Employee.seid == seid)).scalar()
            is not None
        )


def _pending_adjustment(w: World) -> None:
    """EXB02 researches TXMOD 2023 on the case, then asks for a $1,500 abatement (two-person)."""
    token = auth.sign_in(w.app, "EXB02", w.creds["EXB02"]["password"], w.code("EXB02"), "api").token
    research.run(
        w.app, token=token, command="TXMOD", tin=CASE_TIN, year=2023, case="BR-2", interface="api"
    )
    emp = auth.authenticate(w.app, token, interface="api")
    # Until research.run notes the research trail itself (the lead wires it), note it here
    # exactly as tests/integration/adjust_world.look does; noting twice is harmless.
    trail.note(w.app, token=token, employee_id=emp.id, tin=CASE_TIN, command="TXMOD", year=2023)
    res = adjustments.request(
        w.app,
        token=token,
        tin=CASE_TIN,
        command="ADJ54",
        case="BR-2",
        reason="penalty abated for reasonable cause",
        interface="api",
        tax_year=2023,
        tc="291",
        amount="1500.00",
    )
    assert res.status == "pending_approval", res
    w.adjustment_id = res.adjustment_id


def _pending_grant(w: World) -> None:
    op = Actor(OPERATOR)
    grants.add_agreement(
        w.app,
        title="Confidentiality agreement",
        text="I will keep taxpayer information confidential.",
        actor=op,
    )
    out = grants.request_grant(
        w.app,
        principal="DTB01",
        purpose="modernization engineering support",
        basis="IRC 6103(h)(1)",
        commands="ENMOD,IMFOL",
        classes="identity,return",
        population="all",
        # a week ahead, not tomorrow: a run that sets the world up before midnight UTC and
        # approves after it found the grant already active (CI at 00:05 UTC failed so)
        start=w.app.clock.now().date() + timedelta(days=7),
        days=90,
        actor=op,
    )
    w.grant_id = int(out.grant_id)


def _alert(w: World) -> None:
    """DTB01 looks up their own account, a co-worker's and strangers' without need: refused."""
    from idrs.detection import service as detection

    token = auth.sign_in(w.app, "DTB01", w.creds["DTB01"]["password"], w.code("DTB01"), "api").token
    for tin in ("999-49-0108", "999-49-0101", OTHER_TIN, OTHER_TIN, OTHER_TIN, SPOUSE_TIN):
        with contextlib.suppress(AccessDenied):
            research.run(w.app, token=token, command="ENMOD", tin=tin, interface="api")
    detection.run(w.app)
    from idrs.detection import triage

    alerts = triage.list_alerts(w.app, analyst="PAB01")
    assert alerts, "the detection run raised no alert for the browser tests"
    w.alert_id = alerts[0]["alert_id"]
