"""explain, who-can and what-can through the service, the CLI and the API (both databases)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from idrs.access import explain, service
from idrs.audit.events import Actor
from idrs.config import get_settings
from idrs.db import session_scope
from idrs.people.models import Employee

from . import access_fixtures as af

OP = Actor("os:test")


@pytest.fixture
def world(app, tmp_path):
    af.build(app, tmp_path)
    service.assign_case(app, seid="EMP", tin=af.T["SPOUSE"], case_id="S-1", actor=OP)
    service.assign_case(app, seid="EMP", tin=af.T["UNRELATED"], case_id="U-1", actor=OP)
    service.open_contact(app, seid="CSR", tin=af.T["UNRELATED"], contact_id="K-1", actor=OP)
    service.assign_case(app, seid="HOLDER", tin=af.T["CELEB"], case_id="H-1", actor=OP)
    return app


def test_explain_shows_rules_facts_and_evidence(world):
    with session_scope(world.engine) as s:
        out = explain.explain(s, world, seid="EMP", tin=af.T["EXSPOUSE"], command="ENMOD")
    assert out["decision"] == "deny"
    assert {r["code"] for r in out["reasons"]} == {"NO_BUSINESS_NEED", "CONFLICT_SPOUSE"}
    applied = {r["reason"] for r in out["rules"] if r["applies"]}
    assert applied == {"NO_BUSINESS_NEED", "CONFLICT_SPOUSE"}
    assert all(r["policy"].split(":")[0].endswith(".cedar") for r in out["rules"])
    assert out["facts"]["conflicts"] == ["CONFLICT_SPOUSE"] and out["facts"]["has_case"] is False
    (ev,) = out["evidence"]["CONFLICT_SPOUSE"]
    assert ev["tax_year"] == 2019 and ev["field"] == "spouse_tin"
    assert af.T["EXSPOUSE"].replace("-", "") not in json.dumps(out)


def test_explain_of_an_allowed_decision_names_the_permit(world):
    with session_scope(world.engine) as s:
        out = explain.explain(s, world, seid="EMP", tin=af.T["UNRELATED"], command="RTVUE")
    assert out["decision"] == "allow" and out["basis"] == "case:U-1"
    assert [r["name"] for r in out["rules"] if r["applies"]] == ["permit-need-to-know"]
    assert "banking" in out["visible_classes"]


def test_who_can_lists_those_allowed_and_those_refused(world):
    with session_scope(world.engine) as s:
        out = explain.who_can(s, world, tin=af.T["UNRELATED"], command="ENMOD")
        spouse = explain.who_can(s, world, tin=af.T["SPOUSE"])
        nobody = explain.who_can(s, world, tin=af.T["SURNAME"])
    assert {r["seid"] for r in out["can"]} == {"EMP", "CSR"}
    csr = next(r for r in out["can"] if r["seid"] == "CSR")
    assert csr["basis"] == "contact:K-1" and "banking" not in csr["visible_classes"]
    assert spouse["can"] == []
    (refused,) = spouse["refused"]
    assert refused["seid"] == "EMP"
    assert set(refused["refused"]["ENMOD"]) == {"CONFLICT_SPOUSE", "CONFLICT_HOUSEHOLD"}
    assert nobody["can"] == [] and nobody["refused"] == []


def test_what_can_counts_taxpayers_per_command_and_basis(world):
    with session_scope(world.engine) as s:
        emp = explain.what_can(s, world, seid="EMP")
        csr = explain.what_can(s, world, seid="CSR")
        auditor = explain.what_can(s, world, seid="AUDITOR")
    enmod = next(r for r in emp["commands"] if r["command"] == "ENMOD")
    assert enmod["taxpayers"] == 1 and enmod["by_basis"] == {"case": 1, "contact": 0, "none": 0}
    assert enmod["refused_despite_basis"] == 1  # the spouse
    assert emp["can_change"] is True
    csr_enmod = next(r for r in csr["commands"] if r["command"] == "ENMOD")
    assert csr_enmod["by_basis"]["contact"] == 1 and "banking" in csr_enmod["masked_classes"]
    assert auditor["commands"] == [] and auditor["can_change"] is False


def _cli(app, monkeypatch, *args: str):
    from idrs.cli import access as _register  # noqa: F401 - registers the commands
    from idrs.cli import app as cli_app

    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, list(args))
    get_settings.cache_clear()
    return result


def test_cli_case_contact_relationship_and_questions(world, monkeypatch):
    r = _cli(
        world,
        monkeypatch,
        "case",
        "assign",
        "--seid",
        "EMP",
        "--tin",
        af.T["SURNAME"],
        "--case-id",
        "CLI-1",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "open"
    r = _cli(
        world,
        monkeypatch,
        "contact",
        "open",
        "--seid",
        "CSR",
        "--tin",
        af.T["SURNAME"],
        "--contact-id",
        "CLIK-1",
        "--channel",
        "visit",
        "--json",
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["channel"] == "visit"
    r = _cli(
        world,
        monkeypatch,
        "relationship",
        "declare",
        "--seid",
        "CSR",
        "--tin",
        af.T["SURNAME"],
        "--kind",
        "neighbor",
        "--json",
    )
    assert r.exit_code == 0, r.output
    r = _cli(
        world,
        monkeypatch,
        "access",
        "who-can",
        "--tin",
        af.T["SURNAME"],
        "--command",
        "ENMOD",
        "--json",
    )
    out = json.loads(r.stdout)
    assert [x["seid"] for x in out["can"]] == ["EMP"]
    assert out["refused"][0]["refused"]["ENMOD"] == ["CONFLICT_DECLARED"]
    r = _cli(
        world,
        monkeypatch,
        "access",
        "explain",
        "--seid",
        "CSR",
        "--tin",
        af.T["SURNAME"],
        "--command",
        "ENMOD",
        "--json",
    )
    assert json.loads(r.stdout)["evidence"]["CONFLICT_DECLARED"][0]["kind"] == "neighbor"
    r = _cli(world, monkeypatch, "access", "what-can", "--seid", "EMP", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["seid"] == "EMP"
    r = _cli(
        world,
        monkeypatch,
        "access",
        "explain",
        "--seid",
        "EMP",
        "--tin",
        af.T["SPOUSE"],
        "--command",
        "ENMOD",
    )
    assert r.exit_code == 0 and "CONFLICT_SPOUSE" in r.stdout
    r = _cli(world, monkeypatch, "case", "close", "--case-id", "CLI-1")
    assert r.exit_code == 0
    r = _cli(world, monkeypatch, "access", "rebuild", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["employees"] == 6
    r = _cli(
        world,
        monkeypatch,
        "case",
        "assign",
        "--seid",
        "EMP",
        "--tin",
        "900-49-9999",
        "--case-id",
        "CLI-2",
    )
    assert r.exit_code != 0


def _client(app, seid: str):
    from idrs.api.app import create_app
    from idrs.api.deps import current_employee

    api = create_app(app)
    with session_scope(app.engine) as s:
        emp = s.scalar(select(Employee).where(Employee.seid == seid))
    api.dependency_overrides[current_employee] = lambda: emp
    return TestClient(api)


def test_api_contacts_and_explain(world):
    af.add_employee(world, "SECADM", None, "security_admin", "SEC")
    af.add_employee(world, "BOSSU4", None, "manager", "U4")
    csr = _client(world, "CSR")
    r = csr.post(
        "/api/v1/contacts",
        json={"tin": af.T["NEIGHBOR"], "contact_id": "API-1", "channel": "phone"},
    )
    assert r.status_code == 201, r.text
    r = csr.post(
        "/api/v1/contacts", json={"tin": af.T["NEIGHBOR"], "contact_id": "API-2", "seid": "EMP"}
    )
    assert r.status_code == 403  # not a manager of EMP's unit
    assert (
        csr.get(
            "/api/v1/access/explain",
            params={"seid": "CSR", "tin": af.T["NEIGHBOR"], "command": "ENMOD"},
        ).status_code
        == 403
    )
    boss = _client(world, "BOSSU4")
    r = boss.post(
        "/api/v1/cases", json={"tin": af.T["NEIGHBOR"], "case_id": "APIC-1", "seid": "HOLDER"}
    )
    assert r.status_code == 201, r.text
    sec = _client(world, "SECADM")
    r = sec.get(
        "/api/v1/access/explain",
        params={"seid": "CSR", "tin": af.T["NEIGHBOR"], "command": "ENMOD"},
    )
    assert r.status_code == 200 and r.json()["basis"] == "contact:API-1"
    r = sec.get("/api/v1/access/who-can", params={"tin": af.T["NEIGHBOR"]})
    assert {x["seid"] for x in r.json()["can"]} == {"CSR", "HOLDER"}
    assert sec.get("/api/v1/access/what-can", params={"seid": "CSR"}).status_code == 200
    r = csr.post("/api/v1/contacts/API-1/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    r = sec.get(
        "/api/v1/access/explain",
        params={"seid": "CSR", "tin": af.T["NEIGHBOR"], "command": "ENMOD"},
    )
    assert [x["code"] for x in r.json()["reasons"]] == ["NO_BUSINESS_NEED"]
