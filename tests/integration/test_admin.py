"""Security administration (people.admin) and its HTTP API, on SQLite and PostgreSQL.

Ceilings, the ban on administering oneself, the administrator's units, restricted changes
held until a second administrator confirms them (never the requester or the subject),
expiry, bad input that changes nothing, and audit entries that name nobody in clear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from idrs.api.app import create_app
from idrs.audit.events import Actor
from idrs.context import App
from idrs.errors import AccessDenied, Conflict, NotFound, ValidationFailed
from idrs.people import admin, auth, passwords, totp
from idrs.people import service as people
from idrs.people.models import Employee, ProfileChange, SignInSession
from tests.integration.audit_helpers import all_leaves

WIAM_CEILING = "ENMOD,IMFOL,TXMOD,INOLE,NAMES,ENREQ,REQ77"
#: seid → (name, TIN, roles, unit)
STAFF = {
    "SA1": ("Sarah Oakhurst", "900-41-0001", "security_admin", "SEC"),
    "SA2": ("Bram Quillfeather", "900-41-0002", "security_admin", "WIAM"),
    "SA3": ("Tilda Marchbanks", "900-41-0003", "security_admin", "WIAM"),
    "CS1": ("Orla Pennywhistle", "900-41-0004", "csr", "WIAM"),
    "EX1": ("Ivo Thistlewood", "900-41-0005", "examiner", "SBEX"),
}


@dataclass
class World:
    app: App
    creds: dict[str, dict[str, str]] = field(default_factory=dict)

    def actor(self, seid: str) -> Actor:
        return Actor(seid, "test")

    def token(self, seid: str) -> str:
        self.app.clock.advance(seconds=30)  # type: ignore[attr-defined]
        code = totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())
        return auth.sign_in(self.app, seid, self.creds[seid]["password"], code, "test").token

    def emp(self, seid: str) -> Employee:
        with self.app.engine.connect() as conn:
            row = conn.execute(select(Employee.__table__).where(Employee.seid == seid)).one()
        e = Employee()
        for k, v in row._mapping.items():
            setattr(e, k, v)
        return e

    def changes(self) -> int:
        with self.app.engine.connect() as conn:
            return int(conn.execute(select(func.count(ProfileChange.id))).scalar_one())

    def events(self) -> list[dict]:
        return [json.loads(leaf) for leaf in all_leaves(self.app)]


@pytest.fixture
def w(app: App) -> World:
    passwords.use_weak_hashing_for_tests_only()
    app.settings = app.settings.model_copy(
        update={"session_idle_minutes": 10**6, "session_absolute_hours": 10**5}
    )
    people.create_unit(app, "SEC", "Security office", ceiling=[])
    people.create_unit(app, "WIAM", "Accounts management", ceiling=WIAM_CEILING)
    people.create_unit(app, "SBEX", "Examination")
    world = World(app)
    for seid, (name, tin, roles, unit) in STAFF.items():
        world.creds[seid] = people.create_employee(
            app,
            seid=seid,
            name=name,
            tin=tin,
            roles=roles,
            unit=unit,
            unax_attested_at=app.clock.now(),
        )
    return world


def _denied(exc: pytest.ExceptionInfo[AccessDenied]) -> list[str]:
    return exc.value.codes


# -- service -------------------------------------------------------------------------------


def test_profile_outside_the_ceiling_is_refused_naming_the_codes(w):
    before = w.emp("CS1").profile
    with pytest.raises(AccessDenied) as exc:
        admin.request_change(w.app, w.actor("SA2"), seid="CS1", codes="ENMOD,ADJ54,RTVUE")
    assert _denied(exc) == ["CEILING_EXCEEDED"]
    assert "ADJ54, RTVUE" in exc.value.reasons[0].message and "WIAM" in exc.value.reasons[0].message
    assert exc.value.audit_index is not None
    assert w.emp("CS1").profile == before and w.changes() == 0
    denial = w.events()[exc.value.audit_index]
    assert denial["type"] == "admin:profile-change:request" and denial["outcome"] == "denied"
    assert denial["reasons"] == ["CEILING_EXCEEDED"]


def test_nobody_administers_their_own_record(w):
    for call in (
        lambda: admin.request_change(w.app, w.actor("SA2"), seid="sa2", roles="security_admin,csr"),
        lambda: admin.set_active(w.app, w.actor("SA2"), seid="SA2", active=False),
        lambda: admin.unlock(w.app, w.actor("SA2"), seid="SA2"),
    ):
        with pytest.raises(AccessDenied) as exc:
            call()
        assert _denied(exc) == ["SELF_ADMINISTRATION"]
    assert w.emp("SA2").roles == "security_admin" and w.emp("SA2").active
    assert w.changes() == 0


def test_only_a_security_administrator_administers(w):
    with pytest.raises(AccessDenied) as exc:
        admin.request_change(w.app, w.actor("CS1"), seid="EX1", codes="ENMOD")
    assert _denied(exc) == ["NOT_IN_PROFILE"]
    with pytest.raises(AccessDenied):
        admin.list_employees(w.app, w.actor("EX1"))
    with pytest.raises(AccessDenied):
        admin.list_units(w.app, w.actor("NOBODY"))
    # a deactivated administrator can no longer act
    admin.set_active(w.app, w.actor("SA1"), seid="SA3", active=False)
    with pytest.raises(AccessDenied) as exc:
        admin.request_change(w.app, w.actor("SA3"), seid="CS1", codes="ENMOD")
    assert _denied(exc) == ["NOT_IN_PROFILE"]


def test_units_outside_the_administrators_scope_are_refused(w):
    with pytest.raises(AccessDenied) as exc:
        admin.request_change(w.app, w.actor("SA2"), seid="EX1", codes="ENMOD")
    assert _denied(exc) == ["OUT_OF_SCOPE"]
    with pytest.raises(AccessDenied) as exc:
        admin.list_employees(w.app, w.actor("SA2"), unit="SBEX")
    assert _denied(exc) == ["OUT_OF_SCOPE"]
    with pytest.raises(AccessDenied):
        admin.set_ceiling(w.app, w.actor("SA2"), unit="SBEX", codes="ENMOD")
    with pytest.raises(AccessDenied):
        admin.show_employee(w.app, w.actor("SA2"), "EX1")
    mine = {e["seid"] for e in admin.list_employees(w.app, w.actor("SA2"))}
    assert mine == {"SA2", "SA3", "CS1"}
    # the security office administers every unit
    everyone = {e["seid"] for e in admin.list_employees(w.app, w.actor("SA1"))}
    assert everyone == set(STAFF)
    units = {u["code"]: u for u in admin.list_units(w.app, w.actor("SA2"))}
    assert units["WIAM"]["administered"] and not units["SBEX"]["administered"]
    assert units["WIAM"]["headcount"] == 3 and units["WIAM"]["ceiling"] == sorted(
        WIAM_CEILING.split(",")
    )
    with pytest.raises(NotFound):
        admin.list_employees(w.app, w.actor("SA1"), unit="NOPE")


def test_removals_apply_at_once_and_restricted_additions_wait_for_a_second_admin(w):
    full = w.emp("CS1").profile_set
    assert {"ENREQ", "REQ77"} <= full
    # removing codes: applied at once
    out = admin.request_change(
        w.app,
        w.actor("SA2"),
        seid="CS1",
        codes=sorted(full - {"ENREQ", "REQ77"}),
        note="moved to phones",
    )
    assert out["status"] == "applied" and out["removed"] == ["code:ENREQ", "code:REQ77"]
    assert w.emp("CS1").profile_set == full - {"ENREQ", "REQ77"}
    # adding ENREQ back (an adjustment code) and NAMES-free research: pending
    out = admin.request_change(w.app, w.actor("SA2"), seid="CS1", codes=sorted(full - {"REQ77"}))
    cid = out["change_id"]
    assert out["status"] == "pending" and out["requires"] == ["code:ENREQ"]
    assert out["expires_at"] is not None
    assert "ENREQ" not in w.emp("CS1").profile_set  # not yet
    # a second request while one is pending: 409
    with pytest.raises(Conflict):
        admin.request_change(w.app, w.actor("SA3"), seid="CS1", codes="ENMOD")
    # the requester cannot confirm; the subject is no administrator; someone outside: no
    with pytest.raises(AccessDenied) as exc:
        admin.confirm_change(w.app, w.actor("SA2"), cid)
    assert _denied(exc) == ["SELF_APPROVAL"]
    with pytest.raises(AccessDenied) as exc:
        admin.confirm_change(w.app, w.actor("CS1"), cid)
    assert _denied(exc) == ["NOT_IN_PROFILE"]
    assert "ENREQ" not in w.emp("CS1").profile_set
    pending = admin.list_changes(w.app, w.actor("SA3"))
    assert [(c["change_id"], c["can_confirm"]) for c in pending] == [(cid, True)]
    assert admin.list_changes(w.app, w.actor("SA2"))[0]["can_confirm"] is False
    # a different administrator of the unit confirms: applied now
    done = admin.confirm_change(w.app, w.actor("SA3"), cid, note="checked with the manager")
    assert done["status"] == "confirmed" and done["decided_by"] == "SA3"
    assert w.emp("CS1").profile_set == full - {"REQ77"}
    with pytest.raises(Conflict):
        admin.confirm_change(w.app, w.actor("SA1"), cid)  # decided already
    events = w.events()
    requests = [e["outcome"] for e in events if e["type"] == "admin:profile-change:request"]
    assert requests == ["applied", "pending"]  # the 409 changed nothing and is not an entry
    confirms = [e["outcome"] for e in events if e["type"] == "admin:profile-change:confirm"]
    assert confirms == ["denied", "denied", "confirmed"]
    shown = admin.show_employee(w.app, w.actor("SA1"), "CS1")
    assert [c["status"] for c in shown["changes"]] == ["confirmed", "applied"]


def test_the_subject_cannot_confirm_a_change_about_themself(w):
    out = admin.request_change(w.app, w.actor("SA2"), seid="SA3", authorities="sensitive_accounts")
    assert out["status"] == "pending" and out["requires"] == ["authority:sensitive_accounts"]
    with pytest.raises(AccessDenied) as exc:
        admin.confirm_change(w.app, w.actor("SA3"), out["change_id"])
    assert _denied(exc) == ["SELF_ADMINISTRATION"]
    with pytest.raises(AccessDenied) as exc:
        admin.reject_change(w.app, w.actor("SA3"), out["change_id"])
    assert _denied(exc) == ["SELF_ADMINISTRATION"]
    assert w.emp("SA3").authorities == ""
    assert admin.list_changes(w.app, w.actor("SA3"))[0]["can_confirm"] is False
    admin.confirm_change(w.app, w.actor("SA1"), out["change_id"])
    assert w.emp("SA3").authorities == "sensitive_accounts"


def test_a_rejected_change_is_not_applied_and_the_requester_may_withdraw(w):
    out = admin.request_change(w.app, w.actor("SA2"), seid="CS1", roles="csr,manager")
    assert out["requires"] == ["role:manager"]
    rej = admin.reject_change(w.app, w.actor("SA3"), out["change_id"], note="no vacancy")
    assert rej["status"] == "rejected" and w.emp("CS1").roles == "csr"
    out = admin.request_change(w.app, w.actor("SA2"), seid="CS1", roles="csr,manager")
    assert admin.reject_change(w.app, w.actor("SA2"), out["change_id"])["status"] == "rejected"
    assert w.emp("CS1").roles == "csr"
    with pytest.raises(Conflict):
        admin.confirm_change(w.app, w.actor("SA3"), out["change_id"])


def test_pending_changes_expire(w):
    out = admin.request_change(w.app, w.actor("SA2"), seid="CS1", authorities="employee_accounts")
    w.app.clock.advance(hours=71)
    assert [c["change_id"] for c in admin.list_changes(w.app, w.actor("SA3"))] == [out["change_id"]]
    w.app.clock.advance(hours=1, seconds=1)
    with pytest.raises(Conflict) as exc:
        admin.confirm_change(w.app, w.actor("SA3"), out["change_id"])
    assert "expired" in str(exc.value)
    assert w.emp("CS1").authorities == ""
    assert admin.list_changes(w.app, w.actor("SA3")) == []
    expired = admin.list_changes(w.app, w.actor("SA3"), status="expired")
    assert [c["change_id"] for c in expired] == [out["change_id"]]
    assert [e for e in w.events() if e["type"] == "admin:profile-change:expire"][0]["object"] == {
        "change": out["change_id"],
        "seid": "CS1",
    }
    # an expired change no longer blocks a new request
    again = admin.request_change(w.app, w.actor("SA2"), seid="CS1", authorities="employee_accounts")
    assert again["status"] == "pending"


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(w):
    before = (w.emp("CS1").roles, w.emp("CS1").profile, w.emp("CS1").authorities)
    n_events = len(w.events())
    cases = [
        (dict(codes="ENMOD,FOO"), "codes: unknown command code FOO"),
        (dict(roles="csr,wizard"), "roles: unknown role wizard"),
        (dict(roles=""), "roles: at least one role"),
        (dict(authorities="superpowers"), "authorities: unknown authority"),
        (dict(authorities="admin:WIAM"), "authorities: admin:UNIT needs the security_admin role"),
        (dict(codes="ENMOD", note="x" * 501), "note: at most 500"),
        (dict(), "change: give roles, codes or authorities"),
        (dict(roles="csr"), "change: nothing to change"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationFailed) as exc:
            admin.request_change(w.app, w.actor("SA2"), seid="CS1", **kwargs)
        assert message in str(exc.value), (kwargs, str(exc.value))
    with pytest.raises(ValidationFailed, match="seid: SEID must be"):
        admin.request_change(w.app, w.actor("SA2"), seid="no such!", codes="ENMOD")
    with pytest.raises(NotFound):
        admin.request_change(w.app, w.actor("SA2"), seid="ZZZ9", codes="ENMOD")
    with pytest.raises(ValidationFailed, match="authorities: no unit NOPE"):
        admin.request_change(w.app, w.actor("SA1"), seid="SA2", authorities="admin:NOPE")
    with pytest.raises(ValidationFailed, match="ceiling: unknown command code"):
        admin.set_ceiling(w.app, w.actor("SA2"), unit="WIAM", codes="ENMOD,XYZZY")
    with pytest.raises(ValidationFailed, match="status"):
        admin.list_changes(w.app, w.actor("SA2"), status="bogus")
    assert (w.emp("CS1").roles, w.emp("CS1").profile, w.emp("CS1").authorities) == before
    assert w.changes() == 0 and len(w.events()) == n_events


def test_lowering_a_ceiling_trims_profiles_and_stales_pending_changes(w):
    out = admin.request_change(
        w.app, w.actor("SA2"), seid="SA3", roles="security_admin,csr", codes="ENMOD,ENREQ"
    )
    assert out["status"] == "pending"
    res = admin.set_ceiling(w.app, w.actor("SA2"), unit="wiam", codes="ENMOD,IMFOL,TXMOD")
    assert res.trimmed == {"CS1": ["ENREQ", "INOLE", "NAMES", "REQ77"]}
    assert w.emp("CS1").profile == "ENMOD,IMFOL,TXMOD"
    with pytest.raises(AccessDenied) as exc:  # ENREQ is now outside the ceiling
        admin.confirm_change(w.app, w.actor("SA1"), out["change_id"])
    assert _denied(exc) == ["CEILING_EXCEEDED"]
    assert w.emp("SA3").roles == "security_admin"
    entry = [e for e in w.events() if e["type"] == "admin:unit:ceiling"][-1]
    assert entry["detail"]["trimmed"] == {"CS1": ["ENREQ", "INOLE", "NAMES", "REQ77"]}


def test_a_confirmed_change_must_still_match_the_record(w):
    out = admin.request_change(w.app, w.actor("SA2"), seid="CS1", roles="csr,manager")
    # another route changes the record meanwhile (the ceiling trims CS1's profile)
    admin.set_ceiling(w.app, w.actor("SA1"), unit="WIAM", codes="ENMOD,IMFOL")
    with pytest.raises(Conflict, match="changed since"):
        admin.confirm_change(w.app, w.actor("SA3"), out["change_id"])
    assert w.emp("CS1").roles == "csr"


def test_unit_scope_authority_needs_confirmation_then_extends_the_scope(w):
    out = admin.request_change(w.app, w.actor("SA1"), seid="SA2", authorities="admin:SBEX")
    assert out["requires"] == ["authority:admin:SBEX"]
    with pytest.raises(AccessDenied):
        admin.list_employees(w.app, w.actor("SA2"), unit="SBEX")
    admin.confirm_change(w.app, w.actor("SA3"), out["change_id"])
    assert [e["seid"] for e in admin.list_employees(w.app, w.actor("SA2"), unit="SBEX")] == ["EX1"]


def test_deactivation_ends_sessions_and_reactivation_restores(w):
    token = w.token("CS1")
    out = admin.set_active(w.app, w.actor("SA2"), seid="CS1", active=False)
    assert out.sessions_ended == 1
    with pytest.raises(AccessDenied):
        auth.authenticate(w.app, token)
    with w.app.engine.connect() as conn:
        reason = conn.execute(select(SignInSession.end_reason)).scalar_one()
    assert reason == "deactivated"
    with pytest.raises(Conflict):
        admin.set_active(w.app, w.actor("SA2"), seid="CS1", active=False)
    admin.set_active(w.app, w.actor("SA3"), seid="CS1", active=True)
    assert w.emp("CS1").active
    w.token("CS1")  # signs in again
    types = [e["type"] for e in w.events()]
    assert "admin:employee:deactivate" in types and "admin:employee:reactivate" in types


def test_views_and_audit_entries_never_hold_a_tin_or_name(w):
    admin.request_change(w.app, w.actor("SA2"), seid="CS1", codes="ENMOD", note="Orla asked")
    admin.request_change(w.app, w.actor("SA2"), seid="SA3", authorities="adoption")
    with pytest.raises(AccessDenied):
        admin.request_change(w.app, w.actor("SA2"), seid="EX1", codes="ENMOD")
    admin.set_active(w.app, w.actor("SA1"), seid="EX1", active=False)
    admin.set_ceiling(w.app, w.actor("SA1"), unit="SBEX", codes="ENMOD")
    views = json.dumps(
        [
            admin.list_employees(w.app, w.actor("SA1")),
            admin.show_employee(w.app, w.actor("SA1"), "CS1"),
            admin.list_changes(w.app, w.actor("SA1"), status="all"),
        ]
    )
    blob = b"\n".join(all_leaves(w.app))
    for seid, (name, tin, _, _) in STAFF.items():
        for secret in (
            tin,
            tin.replace("-", ""),
            w.creds[seid]["password"],
            w.creds[seid]["totp_secret"],
        ):
            assert secret.encode() not in blob and secret not in views
        for part in name.split():
            assert part.encode() not in blob, part
    assert b"Orla asked" not in blob  # notes stay with the change, not in the log
    for key in ("tin", "tin_enc", "tin_index", "password_hash", "totp_secret_enc"):
        assert f'"{key}"' not in views
    kinds = {e["type"] for e in w.events()}
    assert {
        "admin:profile-change:request",
        "admin:employee:deactivate",
        "admin:unit:ceiling",
    } <= kinds


# -- HTTP API ------------------------------------------------------------------------------


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_api(w):
    client = TestClient(create_app(w.app))
    sa2, sa3, cs1 = w.token("SA2"), w.token("SA3"), w.token("CS1")
    assert client.get("/api/v1/employees").status_code == 401
    assert client.get("/api/v1/units").status_code == 401
    r = client.get("/api/v1/employees", headers=_h(cs1))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "NOT_IN_PROFILE"

    r = client.get("/api/v1/units", headers=_h(sa2))
    assert r.status_code == 200
    assert {u["code"]: u["administered"] for u in r.json()["units"]} == {
        "SEC": False,
        "WIAM": True,
        "SBEX": False,
    }

    r = client.get("/api/v1/employees", params={"limit": 2}, headers=_h(sa2))
    page = r.json()
    assert r.status_code == 200 and page["total"] == 3 and page["next_offset"] == 2
    assert [e["seid"] for e in page["employees"]] == ["CS1", "SA2"]
    assert page["employees"][1]["is_self"] is True
    r = client.get("/api/v1/employees", params={"offset": 2}, headers=_h(sa2))
    assert [e["seid"] for e in r.json()["employees"]] == ["SA3"] and r.json()["next_offset"] is None
    r = client.get("/api/v1/employees", params={"unit": "SBEX"}, headers=_h(sa2))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "OUT_OF_SCOPE"

    r = client.get("/api/v1/employees/cs1", headers=_h(sa2))
    body = r.json()
    assert r.status_code == 200 and body["seid"] == "CS1" and body["unit"] == "WIAM"
    assert not {"tin", "password", "totp_secret", "password_hash"} & set(body)
    assert STAFF["CS1"][1] not in r.text
    assert client.get("/api/v1/employees/NOPE1", headers=_h(sa2)).status_code == 404
    assert client.get("/api/v1/employees/EX1", headers=_h(sa2)).status_code == 403

    url = "/api/v1/employees/CS1/profile-changes"
    r = client.post(url, json={"codes": ["ENMOD", "ADJ54"]}, headers=_h(sa2))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "CEILING_EXCEEDED"
    assert "ADJ54" in r.json()["reasons"][0]["message"]
    r = client.post(url, json={"codes": ["ENMOD", "BOGUS"]}, headers=_h(sa2))
    assert r.status_code == 422 and "codes" in r.json()["error"]
    r = client.post(url, json={"codes": ["ENMOD"], "tin": "900-41-0004"}, headers=_h(sa2))
    assert r.status_code == 422
    r = client.post("/api/v1/employees/SA2/profile-changes", json={"codes": []}, headers=_h(sa2))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "SELF_ADMINISTRATION"
    assert w.changes() == 0

    r = client.post(url, json={"roles": ["csr", "manager"], "note": "acting lead"}, headers=_h(sa2))
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["status"] == "pending" and ch["restricted"] == ["role:manager"]
    assert isinstance(ch["audit_index"], int)
    r = client.get("/api/v1/profile-changes", headers=_h(sa3))
    assert r.json()["total"] == 1 and r.json()["changes"][0]["can_confirm"] is True
    r = client.post(f"/api/v1/profile-changes/{ch['change_id']}/confirm", headers=_h(sa2))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "SELF_APPROVAL"
    r = client.post(f"/api/v1/profile-changes/{ch['change_id']}/confirm", headers=_h(cs1))
    assert r.status_code == 403
    assert w.emp("CS1").roles == "csr"
    r = client.post(
        f"/api/v1/profile-changes/{ch['change_id']}/confirm", json={"note": "ok"}, headers=_h(sa3)
    )
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert w.emp("CS1").roles == "csr,manager"
    r = client.post(f"/api/v1/profile-changes/{ch['change_id']}/reject", headers=_h(sa3))
    assert r.status_code == 409
    assert client.post("/api/v1/profile-changes/999/confirm", headers=_h(sa3)).status_code == 404
    r = client.get("/api/v1/profile-changes", params={"status": "all"}, headers=_h(sa3))
    assert [c["status"] for c in r.json()["changes"]] == ["confirmed"]
    assert (
        client.get("/api/v1/profile-changes", params={"status": "x"}, headers=_h(sa3)).status_code
        == 422
    )

    r = client.put(
        "/api/v1/units/WIAM/ceiling", json={"ceiling": ["ENMOD", "IMFOL"]}, headers=_h(sa3)
    )
    assert r.status_code == 200 and r.json()["trimmed"]["CS1"] == [
        "ENREQ",
        "INOLE",
        "NAMES",
        "REQ77",
        "TXMOD",
    ]
    r = client.put("/api/v1/units/SBEX/ceiling", json={"ceiling": ["ENMOD"]}, headers=_h(sa3))
    assert r.status_code == 403
    r = client.put("/api/v1/units/WIAM/ceiling", json={"ceiling": ["NOPE"]}, headers=_h(sa3))
    assert r.status_code == 422 and "ceiling" in r.json()["error"]

    r = client.post("/api/v1/employees/CS1/deactivate", headers=_h(sa2))
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert client.get("/api/v1/units", headers=_h(cs1)).status_code == 401
    r = client.post("/api/v1/employees/CS1/reactivate", headers=_h(sa2))
    assert r.status_code == 200 and r.json()["active"] is True


def test_unlock_api(w):
    client = TestClient(create_app(w.app))
    sa2 = w.token("SA2")
    for _ in range(w.app.settings.lockout_threshold):
        with pytest.raises(AccessDenied):
            auth.sign_in(w.app, "EX1", "wrong", "000000", "test")
    assert w.emp("EX1").locked_at is not None
    r = client.post("/api/v1/employees/SA2/unlock", headers=_h(sa2))
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "SELF_ADMINISTRATION"
    # unlocking is not limited to the administrator's units (it restores no privilege)
    r = client.post("/api/v1/employees/EX1/unlock", headers=_h(sa2))
    assert r.status_code == 200 and r.json() == {"seid": "EX1", "locked": False}
    assert w.emp("EX1").locked_at is None


def test_every_admin_route_declares_its_authorization(w):
    api = create_app(w.app)
    spec = api.openapi()
    admin_paths = [
        p
        for p in spec["paths"]
        if p.startswith(("/api/v1/units", "/api/v1/employees", "/api/v1/profile-changes"))
    ]
    assert len(admin_paths) >= 8
    for path in admin_paths:
        for op in spec["paths"][path].values():
            assert op["x-authorization"] == "role:security_admin", path
    from idrs.web import admin_pages

    web = admin_pages.router.routes
    assert len(web) >= 10
    for route in web:
        assert route.openapi_extra == {"x-authorization": "role:security_admin"}, route.path


# -- web pages (no JavaScript: plain forms, CSRF, post/redirect/get) -------------------------


def _browser(w: World, seid: str) -> TestClient:
    from idrs.api import middleware

    api = create_app(w.app)
    middleware.install(api)
    client = TestClient(api, base_url="http://testserver")
    client.cookies.set("idrs_session", w.token(seid))
    return client


def _csrf(html: str) -> str:
    import re

    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def test_admin_pages(w):
    sa2, sa3, cs1 = _browser(w, "SA2"), _browser(w, "SA3"), _browser(w, "CS1")
    assert cs1.get("/admin").status_code == 403
    assert cs1.get("/admin/employees").status_code == 403
    page = sa2.get("/admin/employees")
    assert page.status_code == 200 and "CS1" in page.text and "EX1" not in page.text
    assert STAFF["CS1"][1] not in page.text
    own = sa2.get("/admin/employees/SA2")
    assert "your own record" in own.text and "Request the change" not in own.text
    assert sa2.get("/admin/employees/EX1").status_code == 403

    detail = sa2.get("/admin/employees/CS1")
    assert detail.status_code == 200 and 'id="code-ADJ54"' in detail.text
    assert '<label for="code-ADJ54">' in detail.text and "outside the unit" in detail.text
    token = _csrf(detail.text)
    form = {"role_csr": "1", "code_ENMOD": "1", "code_ADJ54": "1"}
    r = sa2.post("/admin/employees/CS1/profile", data=form)  # no CSRF token
    assert r.status_code == 403 and w.changes() == 0
    r = sa2.post("/admin/employees/CS1/profile", data={**form, "csrf": token})
    assert r.status_code == 403 and "CEILING_EXCEEDED" in r.text and "ADJ54" in r.text
    assert w.changes() == 0
    r = sa2.post("/admin/employees/CS1/profile", data={"csrf": token, "code_ENMOD": "1"})
    assert r.status_code == 422 and "roles: at least one role" in r.text

    keep = {f"code_{c}": "1" for c in w.emp("CS1").profile_set}
    r = sa2.post(
        "/admin/employees/CS1/profile",
        data={**keep, "role_csr": "1", "role_manager": "1", "note": "acting lead", "csrf": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=pending:" in r.headers["location"]
    cid = int(r.headers["location"].rsplit(":", 1)[1])
    shown = sa2.get(r.headers["location"])
    assert "waiting for a second security administrator" in shown.text
    mine = sa2.get("/admin/changes")
    assert f"Confirm change {cid}" not in mine.text and "your own request" in mine.text
    assert w.emp("CS1").roles == "csr"

    queue = sa3.get("/admin/changes")
    assert f"Confirm change {cid}" in queue.text
    assert f'<label for="note-{cid}">' in queue.text
    r = sa3.post(
        f"/admin/changes/{cid}/confirm",
        data={"csrf": _csrf(queue.text), "note": "ok"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/changes?done={cid}:confirmed"
    assert w.emp("CS1").roles == "csr,manager"

    units = sa3.get("/admin/units")
    assert "Set the ceiling of WIAM" in units.text and "Set the ceiling of SBEX" not in units.text
    r = sa3.post(
        "/admin/units/WIAM/ceiling",
        data={"csrf": _csrf(units.text), "code_ENMOD": "1", "code_IMFOL": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "trimmed=CS1" in r.headers["location"]
    assert w.emp("CS1").profile == "ENMOD,IMFOL"

    hub = sa3.get("/admin")
    assert 'action="/admin/unlock"' in hub.text
    r = sa3.post("/admin/unlock", data={"csrf": _csrf(hub.text), "seid": "SA3"})
    assert r.status_code == 403 and "SELF_ADMINISTRATION" in r.text
    r = sa3.post(
        "/admin/employees/CS1/deactivate", data={"csrf": _csrf(hub.text)}, follow_redirects=False
    )
    assert r.status_code == 303 and not w.emp("CS1").active


# -- issue 13.10: research codes for the people who watch the system -------------------------


def test_research_codes_for_auditors_privacy_staff_and_admins_wait_for_a_second_admin(w):
    """A security administrator gives an auditor, a privacy analyst or another administrator
    research codes (API, page, service): each waits for a second administrator, the
    requester cannot confirm it, and nothing applies until one does. Taking the watching
    role away, adding the codes and giving the role back is caught the same way."""
    for seid, roles in (("AU1", "auditor"), ("PA1", "privacy_analyst")):
        w.creds[seid] = people.create_employee(
            w.app,
            seid=seid,
            name=f"Person {seid}",
            tin=None,
            roles=roles,
            unit="WIAM",
            unax_attested_at=w.app.clock.now(),
        )
    assert w.emp("AU1").profile == "" and w.emp("PA1").profile == ""
    client = TestClient(create_app(w.app))
    sa2 = _h(w.token("SA2"))
    # the API: an auditor given ENMOD and INOLE
    r = client.post(
        "/api/v1/employees/AU1/profile-changes", json={"codes": ["ENMOD", "INOLE"]}, headers=sa2
    )
    assert r.status_code in (200, 201, 202), r.text
    body = r.json()
    assert body["status"] == "pending" and body["restricted"] == ["code:ENMOD", "code:INOLE"]
    assert w.emp("AU1").profile == ""
    cid = body["change_id"]
    r = client.post(f"/api/v1/profile-changes/{cid}/confirm", json={}, headers=sa2)
    assert r.status_code == 403 and r.json()["reasons"][0]["code"] == "SELF_APPROVAL"
    assert w.emp("AU1").profile == ""
    # the page: a privacy analyst given NAMES
    sa2_web = _browser(w, "SA2")
    detail = sa2_web.get("/admin/employees/PA1")
    r = sa2_web.post(
        "/admin/employees/PA1/profile",
        data={"role_privacy_analyst": "1", "code_NAMES": "1", "csrf": _csrf(detail.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=pending:" in r.headers["location"]
    assert w.emp("PA1").profile == ""
    # the service: another security administrator given ENMOD
    out = admin.request_change(w.app, w.actor("SA2"), seid="SA3", codes="ENMOD")
    assert out["status"] == "pending" and out["requires"] == ["code:ENMOD"]
    with pytest.raises(AccessDenied) as exc:
        admin.confirm_change(w.app, w.actor("SA2"), out["change_id"])
    assert _denied(exc) == ["SELF_APPROVAL"]
    assert w.emp("SA3").profile == ""
    # a second administrator confirms: applied now
    done = admin.confirm_change(w.app, w.actor("SA3"), cid, note="audit sampling")
    assert done["status"] == "confirmed" and w.emp("AU1").profile == "ENMOD,INOLE"
    # the role added to someone holding research codes is restricted too
    out = admin.request_change(w.app, w.actor("SA3"), seid="CS1", roles="csr,auditor")
    assert out["status"] == "pending" and out["requires"] == ["role:auditor"]
    assert w.emp("CS1").roles == "csr"
    # other research codes for a CSR still apply at once (nothing watches there)
    admin.reject_change(w.app, w.actor("SA2"), out["change_id"])
    out = admin.request_change(w.app, w.actor("SA3"), seid="CS1", codes="ENMOD,IMFOL")
    assert out["status"] == "applied"
