"""A small world for the grants tests: approvers, a detailee, an agreement, the Carters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from idrs.audit.events import Actor
from idrs.context import App
from idrs.db import session_scope
from idrs.grants import service
from idrs.grants.results import GrantApproved
from idrs.people import auth, passwords, totp
from idrs.people import service as people
from idrs.people.models import Employee
from tests.integration import factories as f

OPERATOR = Actor("os:test")
AGREEMENT_TEXT = "I will not inspect or disclose return information except as authorized.\n"


@dataclass
class World:
    app: App
    creds: dict[str, dict[str, str]] = field(default_factory=dict)
    agreement_id: int = 0

    def emp(self, seid: str) -> Employee:
        with session_scope(self.app.engine) as s:
            e = s.scalar(select(Employee).where(Employee.seid == seid))
            assert e is not None
            s.expunge(e)
            return e

    def otp(self, seid: str) -> str:
        """A fresh code: the clock moves one TOTP step so that no step is used twice."""
        self.app.clock.advance(seconds=30)  # type: ignore[attr-defined]
        return totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())

    def token(self, seid: str) -> str:
        code = self.otp(seid)
        tok, _, _ = auth.sign_in(self.app, seid, self.creds[seid]["password"], code, "test")
        return tok

    def add(
        self,
        seid: str,
        roles: str,
        tin: str | None,
        kind: str = "employee",
        home_org: str | None = None,
    ) -> None:
        self.creds[seid] = people.create_employee(
            self.app,
            # agency employees arrive trained; outside people attest during the scenario
            unax_attested_at=self.app.clock.now() if kind == "employee" else None,
            seid=seid,
            name=f"Person {seid}",
            tin=tin,
            roles=roles,
            kind=kind,
            home_org=home_org,
        )

    def train(self, seid: str) -> None:
        service.record_training(self.app, seid=seid, actor=OPERATOR)

    def request(self, **kw: Any) -> int:
        args: dict[str, Any] = dict(
            principal="DT001",
            purpose="modernization engineering support",
            basis="5 U.S.C. 3341 detail; IRC 6103(h)(1)",
            commands="ENMOD,IMFOL",
            classes="identity,return",
            population="all",
            start=self.app.clock.now().date() + timedelta(days=1),
            days=120,
            actor=OPERATOR,
        )
        args.update(kw)
        return int(service.request_grant(self.app, **args).grant_id)

    def approve_both(self, grant_id: int) -> GrantApproved:
        service.approve_grant(self.app, self.emp("PO001"), grant_id=grant_id, otp=self.otp("PO001"))
        return service.approve_grant(
            self.app, self.emp("AO001"), grant_id=grant_id, otp=self.otp("AO001")
        )


#: Cheap argon2 parameters for these tests only (the real ones cost ~1 s per employee on a
#: loaded machine; sign-in itself is tested in test_signin).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


def make_world(app: App, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(passwords, "_HASHER", CHEAP_HASHER)
    f.carter_household(app)
    w = World(app)
    w.add("PO001", "privacy_officer", "900-40-0101")
    w.add("PO002", "privacy_officer", "900-40-0102")
    w.add("AO001", "authorizing_official", "900-40-0103")
    w.add("SA001", "security_admin", "900-40-0104")
    w.add("EX001", "examiner", "900-40-0105")
    w.add("DT001", "examiner", "900-40-0106", kind="detailee", home_org="Dept. of Energy")
    w.agreement_id = service.add_agreement(
        app, title="Confidentiality agreement", text=AGREEMENT_TEXT, actor=OPERATOR
    ).agreement_id
    return w


def start_day(w: World) -> date:
    return w.app.clock.now().date() + timedelta(days=1)
