"""Grants, approvals, agreements, clearance and training: the service on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from idrs.audit.events import Actor
from idrs.audit.models import AuditEntry
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, NotFound, ValidationFailed
from idrs.grants import cedar, rules, service
from idrs.grants.facts import cedar_context, grant_facts
from idrs.grants.models import AgreementSignature, Grant, GrantApproval
from tests.integration.grants_world import OPERATOR, World, make_world


@pytest.fixture
def w(app, monkeypatch) -> World:
    return make_world(app, monkeypatch)


def _size(app) -> int:
    with app.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def _grants(app) -> int:
    with app.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(Grant)).scalar_one())


def _last_entry(app) -> dict:
    with app.engine.connect() as c:
        leaf = c.execute(
            select(AuditEntry.leaf_input).order_by(AuditEntry.idx.desc()).limit(1)
        ).scalar_one()
    return json.loads(bytes(leaf))


def _facts(w: World, seid: str, command: str):
    with Session(w.app.engine) as s:
        return grant_facts(s, w.app, w.emp(seid), command, w.app.clock.now())


BAD_REQUESTS = [
    ({"days": 121}, "days"),
    ({"end": "BEFORE", "days": None}, "end"),
    ({"commands": "ENMOD,XXXXX"}, "unknown command code XXXXX"),
    ({"classes": "identity,secrets"}, "unknown class secrets"),
    ({"population": "everyone"}, "population"),
    ({"purpose": "  "}, "purpose"),
    ({"commands": "ENMOD,ADJ54"}, "allow-changes"),
    ({"renewal_of": 999}, "renewal_of"),
    ({"principal": "NOBODY"}, "NOBODY"),
]


def test_bad_requests_are_refused_and_change_nothing(w):
    before = (_size(w.app), _grants(w.app))
    for bad, message in BAD_REQUESTS:
        if bad.get("end") == "BEFORE":
            bad = {**bad, "end": w.app.clock.now().date() - timedelta(days=3)}
        with pytest.raises((ValidationFailed, NotFound), match=message):
            w.request(**bad)
        assert (_size(w.app), _grants(w.app)) == before, bad


def test_request_is_pending_and_recorded(w):
    gid = w.request()
    shown = service.show_grant(w.app, gid)
    assert shown["status"] == "pending_approval"
    assert shown["principal"] == "DT001" and shown["principal_kind"] == "detailee"
    assert shown["home_org"] == "Dept. of Energy"
    assert shown["commands"] == ["ENMOD", "IMFOL"] and shown["term_days"] == 120
    e = _last_entry(w.app)
    assert e["type"] == "grants:grant:request" and e["object"] == {"principal": "DT001"}


def test_longer_term_needs_a_renewal_and_renewal_is_once(w):
    first = w.request()
    second = w.request(days=200, renewal_of=first)
    assert service.show_grant(w.app, second)["renewal_of"] == first
    with pytest.raises(ValidationFailed, match="renewable once"):
        w.request(renewal_of=second)


def test_two_approvals_from_two_roles(w):
    gid = w.request()
    out = service.approve_grant(w.app, w.emp("PO001"), grant_id=gid, otp=w.otp("PO001"))
    assert out.status == "pending_approval" and out.approvals == ["privacy_officer"]
    # a second approval by the same role is refused, nothing changed
    with pytest.raises(Conflict, match="authorizing_official"):
        service.approve_grant(w.app, w.emp("PO002"), grant_id=gid, otp=w.otp("PO002"))
    out = service.approve_grant(w.app, w.emp("AO001"), grant_id=gid, otp=w.otp("AO001"))
    assert out.status == "approved"
    with session_scope(w.app.engine) as s:
        assert s.scalar(select(func.count()).select_from(GrantApproval)) == 2
    with pytest.raises(Conflict):  # no longer pending
        service.approve_grant(w.app, w.emp("PO002"), grant_id=gid, otp=w.otp("PO002"))


def test_the_service_follows_the_settings_of_its_app(w):
    """Term limits and the approval rule come from ``app.settings`` (IDRS_GRANT_*)."""
    w.app.settings = w.app.settings.model_copy(
        update={"grant_max_days": 30, "grant_approval_roles": "authorizing_official"})
    with pytest.raises(ValidationFailed, match="beyond the 30-day limit"):
        w.request(days=31)
    gid = w.request(days=30)
    out = service.approve_grant(w.app, w.emp("AO001"), grant_id=gid, otp=w.otp("AO001"))
    assert out.status == "approved" and out.approvals == ["authorizing_official"]


def test_the_requester_and_non_approvers_may_not_approve(w):
    gid = w.request(actor=Actor("PO001"))
    with pytest.raises(AccessDenied) as exc:
        service.approve_grant(w.app, w.emp("PO001"), grant_id=gid, otp=w.otp("PO001"))
    assert exc.value.codes == ["SELF_APPROVAL"]
    assert _last_entry(w.app)["outcome"] == "denied"
    with pytest.raises(AccessDenied) as exc:
        service.approve_grant(w.app, w.emp("EX001"), grant_id=gid, otp=w.otp("EX001"))
    assert exc.value.codes == ["NOT_IN_PROFILE"]
    assert service.show_grant(w.app, gid)["approvals"] == []


def test_the_role_is_checked_before_the_grant_is_looked_up(w):
    """Someone without an approving role learns nothing: an unknown grant and a grant that
    is no longer pending are refused alike (NOT_IN_PROFILE, recorded), not 404 or 409."""
    ex = w.emp("EX001")
    gid = w.request(start=w.app.clock.now().date())
    w.approve_both(gid)  # approved: no longer pending
    for grant_id in (gid, 999):
        with pytest.raises(AccessDenied) as exc:
            service.approve_grant(w.app, ex, grant_id=grant_id, otp=w.otp("EX001"))
        assert exc.value.codes == ["NOT_IN_PROFILE"] and exc.value.audit_index is not None
        entry = _last_entry(w.app)
        assert entry["type"] == "grants:grant:approve" and entry["outcome"] == "denied"
        assert entry["object"] == {"grant_id": grant_id, "seid": "EX001"}
        for fn in (service.revoke_grant, service.end_grant):
            with pytest.raises(AccessDenied) as exc:
                fn(w.app, ex, grant_id=grant_id, reason="")  # even before the reason is read
            assert exc.value.codes == ["NOT_IN_PROFILE"]
            assert _last_entry(w.app)["outcome"] == "denied"
    # an approving role still hears what is wrong with the grant
    with pytest.raises(NotFound):
        service.approve_grant(w.app, w.emp("PO002"), grant_id=999, otp=w.otp("PO002"))
    with pytest.raises(NotFound):
        service.revoke_grant(w.app, w.emp("PO002"), grant_id=999, reason="x")
    with pytest.raises(Conflict):
        service.approve_grant(w.app, w.emp("PO002"), grant_id=gid, otp=w.otp("PO002"))
    assert service.show_grant(w.app, gid)["status"] == "active"


def test_the_one_time_code_must_be_fresh_and_right(w):
    gid = w.request()
    with pytest.raises(AccessDenied) as exc:
        service.approve_grant(w.app, w.emp("PO001"), grant_id=gid, otp="000000")
    assert exc.value.codes == ["AUTH_FAILED"]
    code = w.otp("PO001")
    service.approve_grant(w.app, w.emp("PO001"), grant_id=gid, otp=code)
    gid2 = w.request()
    with pytest.raises(AccessDenied):  # the same code cannot serve twice
        service.approve_grant(w.app, w.emp("PO001"), grant_id=gid2, otp=code)


def test_states_follow_the_injected_clock(w):
    start = w.app.clock.now().date() + timedelta(days=2)
    gid = w.request(start=start, days=120)
    assert _facts(w, "DT001", "ENMOD").state == "pending_approval"
    w.approve_both(gid)
    assert service.show_grant(w.app, gid)["status"] == "approved"
    assert _facts(w, "DT001", "ENMOD").state == "approved"
    w.app.clock.set(rules.start_of(start))
    assert service.show_grant(w.app, gid)["status"] == "active"
    w.app.clock.set(rules.start_of(start + timedelta(days=120)) - timedelta(seconds=1))
    assert _facts(w, "DT001", "ENMOD").state == "active"
    w.app.clock.set(rules.start_of(start + timedelta(days=120)))  # day 121
    assert _facts(w, "DT001", "ENMOD").state == "expired"
    assert service.show_grant(w.app, gid)["status"] == "expired"


def test_revocation_by_either_approving_role_takes_effect_at_once(w):
    gid = w.request(start=w.app.clock.now().date())
    w.approve_both(gid)
    assert _facts(w, "DT001", "ENMOD").state == "active"
    with pytest.raises(AccessDenied):
        service.revoke_grant(w.app, w.emp("EX001"), grant_id=gid, reason="no")
    service.revoke_grant(w.app, w.emp("PO002"), grant_id=gid, reason="detail cancelled")
    gf = _facts(w, "DT001", "ENMOD")
    assert gf.state == "revoked" and gf.reason == "GRANT_REVOKED"
    with pytest.raises(Conflict):
        service.revoke_grant(w.app, w.emp("AO001"), grant_id=gid, reason="again")


def test_agreement_versions_and_immutable_signatures(w):
    v2 = service.add_agreement(
        w.app, title="Confidentiality agreement", text="v2 text\n", actor=OPERATOR
    )
    assert v2.version == 2 and len(v2.sha256) == 64
    with pytest.raises(Conflict, match="not the current"):
        service.sign_agreement(
            w.app, w.emp("DT001"), agreement_id=w.agreement_id, otp=w.otp("DT001")
        )
    with pytest.raises(NotFound):
        service.sign_agreement(w.app, w.emp("DT001"), agreement_id=9999, otp=w.otp("DT001"))
    out = service.sign_agreement(
        w.app, w.emp("DT001"), agreement_id=v2.agreement_id, otp=w.otp("DT001")
    )
    assert out.sha256 == v2.sha256
    with pytest.raises(Conflict):
        service.sign_agreement(
            w.app, w.emp("DT001"), agreement_id=v2.agreement_id, otp=w.otp("DT001")
        )
    with pytest.raises(DBAPIError), session_scope(w.app.engine) as s:  # append-only trigger
        s.execute(AgreementSignature.__table__.update().values(sha256="0" * 64))


def test_grant_facts_and_the_grant_policy(w):
    gid = w.request(start=w.app.clock.now().date())
    base = {
        "in_profile": True,
        "authorities": [],
        "reason_given": False,
        "has_case": False,
        "has_contact": False,
        "basis_named": False,
        "basis_valid": False,
        "conflicts": [],
        "target_is_employee": False,
        "target_same_unit": False,
        "high_profile": False,
        "rate_exceeded": False,
    }

    def decide(seid: str, cmd: str) -> tuple[bool, list[str]]:
        return cedar.decide({**base, **cedar_context(_facts(w, seid, cmd))}, cmd)

    allowed, codes = decide("DT001", "ENMOD")
    assert not allowed and "GRANT_PENDING_APPROVAL" in codes and "TRAINING_NOT_CURRENT" in codes
    w.approve_both(gid)
    w.train("DT001")
    allowed, codes = decide("DT001", "ENMOD")
    assert not allowed and "AGREEMENT_NOT_SIGNED" in codes and "CLEARANCE_NOT_VERIFIED" in codes
    service.sign_agreement(w.app, w.emp("DT001"), agreement_id=w.agreement_id, otp=w.otp("DT001"))
    service.verify_clearance(w.app, seid="DT001", by="SA001", actor=OPERATOR)
    assert decide("DT001", "ENMOD") == (True, [])  # population all: no case needed
    allowed, codes = decide("DT001", "RTVUE")
    assert not allowed and "OUT_OF_SCOPE" in codes
    # an inside employee, trained when hired: no grant means no grant rules
    assert decide("EX001", "ENMOD") == (False, ["NO_BUSINESS_NEED"])
    # training is required of everyone: a year and a day later it has lapsed
    w.app.clock.advance(days=366)
    allowed, codes = decide("EX001", "ENMOD")
    assert not allowed and set(codes) == {"TRAINING_NOT_CURRENT", "NO_BUSINESS_NEED"}
    w.train("EX001")
    assert decide("EX001", "ENMOD") == (False, ["NO_BUSINESS_NEED"])


def test_clearance_needs_another_verifier(w):
    with pytest.raises(ValidationFailed):
        service.verify_clearance(w.app, seid="DT001", by="DT001", actor=OPERATOR)
    with pytest.raises(NotFound):
        service.verify_clearance(w.app, seid="DT001", by="NOBODY", actor=OPERATOR)
    out = service.verify_clearance(w.app, seid="DT001", by="SA001", actor=OPERATOR)
    assert out.verified_by == "SA001"
    assert service.show_grant(w.app, w.request())["prerequisites"]["clearance_verified"]


def test_training_attestation_with_a_code(w):
    out = service.attest_training(w.app, w.emp("EX001"), otp=w.otp("EX001"))
    assert out.valid_until > out.attested_at
    assert _facts(w, "EX001", "ENMOD").training_current
    w.app.clock.advance(days=366)
    assert not _facts(w, "EX001", "ENMOD").training_current


def test_demo_seed_scenario_starts_pending(w):
    from idrs.grants.demo import seed_outside_detail

    out = seed_outside_detail(w.app, actor="os:test")
    assert out["status"] == "pending_approval" and set(out["people"]) >= {"PO100", "DT100"}
    shown = service.show_grant(w.app, out["grant_id"])
    assert shown["principal_kind"] == "detailee" and shown["term_days"] == 120
    pre = shown["prerequisites"]
    assert pre["clearance_verified"] and pre["training_current"] and not pre["agreement_signed"]
    assert _facts(w, "DT100", "ENMOD").reason == "GRANT_PENDING_APPROVAL"
