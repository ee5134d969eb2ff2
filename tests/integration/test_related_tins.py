"""Issue 13.10: INOLE and RTVUE never show a TIN the viewer's own decision would refuse.

EX1 (examiner) has a case on Ann Carter and may research her. Her husband Ben is EX1's own
conflict (a relationship EX1 declared), so EX1 may never open Ben's account. Ann's answers
name Ben: RTVUE's ``spouse_tin``, INOLE's two spouse links (her joint return and his own
separate one). Each must come back withheld (null, not even the last four digits), listed
in ``withheld`` without a reason code, in the API's JSON, the CLI and the research page;
her son's TIN (no conflict) still shows. A co-worker's spouse who is an employee in another
unit is withheld the same way (the decision refuses another employee's account).
(SQLite and PostgreSQL.)
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from idrs.access import service as access
from idrs.api.app import create_app
from idrs.audit.events import Actor
from idrs.cli.people import write_token
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.simulator import _start_session
from idrs.people import service as people
from idrs.people.models import Employee
from idrs.web.security import SESSION_COOKIE, session_csrf
from tests.integration import factories as f
from tests.integration.cli_helpers import run_cli
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"
#: Ben's TIN in every spelling an answer could carry it (clear, digits, last four)
BEN = (f.CARTER_SPOUSE, f.CARTER_SPOUSE.replace("-", ""), "***-**-3457")


def _token(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


@pytest.fixture
def world(app: App) -> App:
    f.carter_household(app)
    for unit in ("U1", "U2"):
        people.create_unit(app, unit, actor=OP)
    people.create_employee(
        app,
        seid="EX1",
        name="Person EX1",
        tin=None,
        roles="examiner",
        unit="U1",
        unax_attested_at=app.clock.now(),
        actor=OP,
    )
    f.open_case(app, "EX1", f.CARTER, "C-31")
    return app


def _cli(app: App, capsys, seid: str, *args: str) -> tuple[int, str, str]:
    write_token(app.settings.home, _token(app, seid))
    monkey = pytest.MonkeyPatch()
    monkey.setattr(App, "open", classmethod(lambda cls, *a, **k: app))
    try:
        return run_cli(capsys, *args)
    finally:
        monkey.undo()


def _api(app: App, client: TestClient, seid: str, command: str, year: int | None = None) -> dict:
    params: dict = {"case": "C-31"}
    if year:
        params["year"] = year
    r = client.get(
        f"/api/v1/accounts/{f.CARTER}/{command}",
        params=params,
        headers={"Authorization": f"Bearer {_token(app, seid)}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _page(app: App, api, seid: str, line: str) -> str:
    web = TestClient(api, follow_redirects=False)
    token = _token(app, seid)
    web.cookies.set(SESSION_COOKIE, token)
    r = web.post("/research", data={"csrf": session_csrf(app, token), "line": line})
    assert r.status_code == 200, r.text
    return r.text


def _absent(text: str, where: str) -> None:
    for spelling in BEN:
        assert spelling not in text, f"{where} shows the conflicted spouse's TIN ({spelling})"


def test_a_conflicted_spouse_tin_is_withheld_from_inole_and_rtvue(world: App, capsys) -> None:
    app = world
    api = create_app(app)
    client = TestClient(api)
    # before the conflict: Ben's TIN shows (the answers do carry it)
    rtvue = _api(app, client, "EX1", "RTVUE", 2023)
    assert rtvue["data"]["spouse_tin"] == f.CARTER_SPOUSE and not rtvue.get("withheld")

    access.declare_relationship(
        app, seid="EX1", tin=f.CARTER_SPOUSE, kind="relative", actor=Actor(OP)
    )
    # the API's JSON
    rtvue = _api(app, client, "EX1", "RTVUE", 2023)
    _absent(json.dumps(rtvue), "RTVUE (API)")
    assert rtvue["data"]["spouse_tin"] is None and rtvue["withheld"] == ["spouse_tin"]
    assert rtvue["data"]["dependents"][0]["tin"] == f.CARTER_CHILD  # no conflict: shown
    assert rtvue["data"]["filing_status"] == "MFJ"  # the return itself is unchanged
    inole = _api(app, client, "EX1", "INOLE")
    _absent(json.dumps(inole), "INOLE (API)")
    assert inole["withheld"] == ["spouses[0].tin", "spouses[1].tin"]
    assert [s["tin"] for s in inole["data"]["spouses"]] == [None, None]
    assert inole["data"]["dependents"][0]["tin"] == f.CARTER_CHILD
    assert inole["data"]["tin"] == f.CARTER  # the subject's own TIN is never withheld
    # no reason is given: no code, nothing that says which rule hid it
    text = json.dumps(inole)
    assert not re.search(r"CONFLICT_|PROTECTED_|SENSITIVE_", text)

    # the CLI (JSON and tables)
    code, out, err = _cli(
        app,
        capsys,
        "EX1",
        "research",
        "RTVUE",
        f.CARTER,
        "--year",
        "2023",
        "--case",
        "C-31",
        "--json",
    )
    assert code == 0, err
    _absent(out, "RTVUE (CLI JSON)")
    assert json.loads(out)["withheld"] == ["spouse_tin"]
    code, out, err = _cli(app, capsys, "EX1", "research", "INOLE", f.CARTER, "--case", "C-31")
    assert code == 0, err
    _absent(out, "INOLE (CLI)")
    assert "withheld" in out and "spouses[0].tin" in out

    # the research page
    page = _page(app, api, "EX1", f"RTVUE {f.CARTER} 2023 case=C-31")
    _absent(page, "RTVUE (page)")
    assert "Withheld" in page and "spouse_tin" in page
    page = _page(app, api, "EX1", f"INOLE {f.CARTER} case=C-31")
    _absent(page, "INOLE (page)")
    assert "spouses[0].tin" in page and f.CARTER_CHILD in page


def test_an_employee_spouse_in_another_unit_is_withheld_too(world: App) -> None:
    """Ben works for the agency (unit U2): EX1 has no employee_accounts authority, so the
    decision would refuse Ben's account and Ann's answers withhold his TIN."""
    app = world
    people.create_employee(
        app,
        seid="EX9",
        name="Ben Carter",
        tin=f.CARTER_SPOUSE,
        roles="examiner",
        unit="U2",
        unax_attested_at=app.clock.now(),
        actor=OP,
    )
    client = TestClient(create_app(app))
    rtvue = _api(app, client, "EX1", "RTVUE", 2023)
    _absent(json.dumps(rtvue), "RTVUE (API)")
    assert rtvue["withheld"] == ["spouse_tin"]
    inole = _api(app, client, "EX1", "INOLE")
    _absent(json.dumps(inole), "INOLE (API)")
