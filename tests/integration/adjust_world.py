"""The population and helpers of the adjustment tests (and the crash-test child process).

Carter household (factories) + the conflict population (access_fixtures, imported), and:

- EX1: examiner whose own TIN is access_fixtures EMP (so SPOUSE is their spouse), case C-1 on
  Ann CARTER and C-2 on SPOUSE; EX2: examiner with the sensitive_accounts and
  employee_accounts authorities, case C-3 on CELEB, C-4 on UNRELATED (OTH, an employee of
  unit U9) and C-5 on CARTER.
- MG1: manager, unrelated to everyone. MG2: manager whose TIN is SPOUSE (conflicted with EX1,
  the requester). MG3: manager whose TIN is CARTER_SPOUSE (conflicted with Ann Carter).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from idrs import research
from idrs.adjustments import trail
from idrs.audit.models import AuditEntry
from idrs.context import App
from idrs.crypto import random_token, sha256_hex
from idrs.db import session_scope
from idrs.masterfile.commands import TXMOD
from idrs.masterfile.importer import import_file
from idrs.masterfile.models import TaxModule, Taxpayer, Transaction
from idrs.people import auth
from idrs.people.models import Employee, SignInSession
from tests.integration import access_fixtures as af
from tests.integration import factories as f

CARTER = f.CARTER
T = af.T
TOKENS: dict[str, str] = {}


def new_session(app: App, seid: str) -> str:
    """A live sign-in session for ``seid`` (inserted directly: sign-in itself is tested in
    test_signin; argon2 would cost half a second per employee here)."""
    token = random_token(32)
    now = app.clock.now()
    with session_scope(app.engine) as s:
        emp_id = s.scalar(select(Employee.id).where(Employee.seid == seid))
        s.add(
            SignInSession(
                token_hash=sha256_hex(token),
                employee_id=emp_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=1000),
                interface="test",
            )
        )
    return token


PEOPLE = {
    "EX1": (T["EMP"], "examiner", "HQ", ""),
    "EX2": ("900-40-0012", "examiner", "HQ", "employee_accounts,sensitive_accounts"),
    "MG1": ("900-40-0021", "manager", "HQ", ""),
    "MG2": (T["SPOUSE"], "manager", "HQ", ""),
    "MG3": (f.CARTER_SPOUSE, "manager", "HQ", ""),
    "OTH": (T["UNRELATED"], "csr", "U9", ""),
}


def build(app: App, tmp: Path) -> dict[str, str]:
    """The population and the people; returns SEID → session token."""
    # long sessions: the tests move the clock by hours
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    f.carter_household(app)
    import_file(app, af.write_jsonl(tmp / "population.jsonl", af.records()), actor="test")
    for seid, (tin, roles, unit, auth_) in PEOPLE.items():
        af.add_employee(app, seid, tin, roles, unit, authorities=auth_)
    f.open_case(app, "EX1", CARTER, "C-1")
    f.open_case(app, "EX1", T["SPOUSE"], "C-2")
    f.open_case(app, "EX2", T["CELEB"], "C-3")
    f.open_case(app, "EX2", T["UNRELATED"], "C-4")
    f.open_case(app, "EX2", CARTER, "C-5")
    return {seid: new_session(app, seid) for seid in PEOPLE}


def look(
    app: App,
    token: str,
    command: str,
    tin: str = CARTER,
    year: int | None = None,
    case: str = "C-1",
) -> Any:
    """Run a research command as the lead will wire it: the research, then the trail note."""
    emp = auth.authenticate(app, token, interface="test")
    before = _trail_rows(app, emp.id)
    ans = research.run(
        app, token=token, command=command, tin=tin, year=year, case=case, interface="test"
    )
    if _trail_rows(app, emp.id) == before:  # the research service does not record it yet
        trail.note(app, token=token, employee_id=emp.id, tin=tin, command=command, year=year)
    return ans


def _trail_rows(app: App, employee_id: int) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM research_trail WHERE employee_id = :e"),
                {"e": employee_id},
            ).scalar_one()
        )


def balance(app: App, tin: str, year: int) -> str:
    from sqlalchemy.orm import Session

    with Session(app.engine) as s:
        tp = s.scalar(
            select(Taxpayer).where(
                Taxpayer.tin_index == app.keyring.tin_index(tin.replace("-", ""))
            )
        )
        return str(TXMOD(s, app.keyring, tp, year=year)["balance"].value)


def module_version(app: App, tin: str, year: int) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(TaxModule.version)
                .join(Taxpayer, Taxpayer.id == TaxModule.taxpayer_id)
                .where(
                    Taxpayer.tin_index == app.keyring.tin_index(tin.replace("-", "")),
                    TaxModule.tax_year == year,
                )
            ).scalar_one()
        )


def counts(app: App) -> tuple[int, int, int]:
    """(adjustment requests, transactions, audit entries)."""
    with app.engine.connect() as conn:
        return (
            int(conn.execute(text("SELECT count(*) FROM adjustment_request")).scalar_one()),
            int(conn.execute(select(func.count()).select_from(Transaction)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()),
        )


def entry(app: App, idx: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        leaf = conn.execute(select(AuditEntry.leaf_input).where(AuditEntry.idx == idx)).scalar_one()
    return json.loads(bytes(leaf))


def log_consistent(app: App) -> bool:
    """The stored Merkle nodes fold to the root recomputed from every leaf (and indexes are gap-free)."""
    from idrs.audit import merkle
    from idrs.audit.store import raw

    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT idx, leaf_input FROM audit_entry ORDER BY idx")).all()
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    expected = merkle.root_of(bytes(r[1]) for r in rows)
    with raw(app.engine) as db:
        plan = merkle.root_plan(len(rows))
        nodes = db.nodes(plan)
    return merkle.fold([nodes[n] for n in plan]) == expected
