"""Done-when check through the real interface: GET /api/v1/accounts/{tin}/{command} with a
signed-in employee created by people.service, on the conflict population (both databases)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from idrs.access import service
from idrs.api.app import create_app
from idrs.audit.events import Actor
from idrs.people import auth, totp
from idrs.people import service as people
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

from . import access_fixtures as af

OP = Actor("os:test")


@pytest.fixture
def client(app, tmp_path):
    af.build(app, tmp_path)
    # EMP's spouse is hired: everything EMP's returns reveal now blocks the spouse too
    creds = people.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="WEB01",
        name="Web One",
        tin=af.T["SPOUSE"],
        roles="examiner",
    )
    service.refresh_employee(app, "WEB01")
    token, _, _ = auth.sign_in(
        app, "WEB01", creds["password"], totp.code_at(creds["totp_secret"], app.clock.now()), "test"
    )
    c = TestClient(create_app(app))
    c.headers["Authorization"] = f"Bearer {token}"
    return c


def test_accounts_endpoint_refuses_conflicts_with_a_case_and_allows_unrelated(app, client):
    for i, who in enumerate(["EMP", "CHILD", "INLAW", "UNRELATED", "SURNAME"]):
        service.assign_case(app, seid="WEB01", tin=af.T[who], case_id=f"W-{i}", actor=OP)
    r = client.get(f"/api/v1/accounts/{af.T['EMP']}/ENMOD", params={"case": "W-0"})
    assert r.status_code == 403
    assert {x["code"] for x in r.json()["reasons"]} == {
        "CONFLICT_SPOUSE",
        "CONFLICT_HOUSEHOLD",
        "PROTECTED_EMPLOYEE_ACCOUNT",
    }
    assert isinstance(r.json()["audit_index"], int)
    r = client.get(f"/api/v1/accounts/{af.T['CHILD']}/ENMOD", params={"case": "W-1"})
    assert [x["code"] for x in r.json()["reasons"]] == ["CONFLICT_RELATIVE"]  # stepchild
    r = client.get(f"/api/v1/accounts/{af.T['INLAW']}/ENMOD", params={"case": "W-2"})
    assert [x["code"] for x in r.json()["reasons"]] == ["CONFLICT_RELATIVE"]  # own parent
    for case_id, who in (("W-3", "UNRELATED"), ("W-4", "SURNAME")):
        r = client.get(f"/api/v1/accounts/{af.T[who]}/ENMOD", params={"case": case_id})
        assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/accounts/{af.T['NEIGHBOR']}/ENMOD")
    assert r.status_code == 403 and [x["code"] for x in r.json()["reasons"]] == ["NO_BUSINESS_NEED"]
