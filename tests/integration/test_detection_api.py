"""The detection routes over HTTP: the analyst's queue, self-reports, the taxpayer accounting."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from idrs.api.app import create_app
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.simulator import _start_session
from idrs.people import service as people
from idrs.people.models import Employee


def _token(app: App, seid: str) -> str:
    with session_scope(app.engine) as s:
        eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
    return _start_session(app, int(eid), seid)  # type: ignore[arg-type]


def test_detection_routes(app: App) -> None:
    people.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="PA001",
        name="Pat Analyst",
        tin=None,
        roles=["privacy_analyst"],
    )
    people.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="E00001",
        name="Sam Rep",
        tin=None,
        roles=["csr"],
    )
    client = TestClient(create_app(app))
    analyst = {"Authorization": f"Bearer {_token(app, 'PA001')}"}
    csr = {"Authorization": f"Bearer {_token(app, 'E00001')}"}

    assert client.get("/api/v1/alerts").status_code == 401
    r = client.get("/api/v1/alerts", headers=analyst)
    assert r.status_code == 200 and r.json()["alerts"] == [] and r.json()["total"] == 0
    assert client.post("/api/v1/alerts/A123456/assign", headers=analyst).status_code == 404
    assert client.get("/api/v1/alerts/A123456", headers=analyst).status_code == 404
    assert client.get("/api/v1/alerts", headers=csr).status_code == 403  # not an analyst
    # not an analyst: refused before the lookup, so an unknown alert is 403 too (no 404)
    r = client.get("/api/v1/alerts/A123456", headers=csr)
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"

    r = client.get("/api/v1/taxpayers/900-00-0001/accesses", headers=csr)
    assert r.status_code == 403
    r = client.get("/api/v1/taxpayers/900-00-0001/accesses", headers=analyst)
    assert r.status_code == 404

    r = client.post("/api/v1/self-reports", headers=csr, json={"audit_index": 0, "reason": "typo"})
    assert r.status_code == 403  # entry 0 is not this employee's research entry
    # without a session, a body that does not validate is still 401 (authenticated first)
    r = client.post("/api/v1/self-reports", json={"audit_index": -1})
    assert r.status_code == 401 and r.json()["reasons"][0]["code"] == "AUTH_REQUIRED"
    r = client.post("/api/v1/self-reports", headers=csr, json={"audit_index": -1})
    assert r.status_code == 422
