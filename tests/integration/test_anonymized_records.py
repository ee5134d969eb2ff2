"""Anonymized records cannot be linked back (issue 15.1), on SQLite and PostgreSQL.

The re-identification attack: an attacker holding the audit export and every anonymized
answer of two grants tries to tie a pseudonym to a TIN or to single a record out. Also: the
grant kind, per-grant pseudonyms and their rotation, filters finer than the release refused,
the security staff's re-identification (recorded, role-checked).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from idrs.audit import service as audit_service
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.audit.models import AuditEntry
from idrs.db import session_scope
from idrs.errors import AccessDenied, NotFound, ValidationFailed
from idrs.grants import anonymized, service
from idrs.grants.anonymized import LEVELS, generalize, population
from idrs.masterfile import seed
from idrs.masterfile.models import Taxpayer
from idrs.people.roles import REIDENTIFIERS
from tests.integration.grants_world import OPERATOR, World, make_world

ANALYST = Actor("DT001", "api")
TIN_SHAPE = re.compile(r"(?<!\d)\d{3}-?\d{2}-?\d{4}(?!\d)")


def _ready(w: World, seid: str) -> None:
    service.sign_agreement(w.app, w.emp(seid), agreement_id=w.agreement_id, otp=w.otp(seid))
    service.verify_clearance(w.app, seid=seid, by="SA001", actor=OPERATOR)
    w.train(seid)


def _anon_grant(w: World, seid: str = "DT001", k: int = 10) -> int:
    gid = w.request(
        principal=seid, population=None, kind="anonymized", k=k, start=w.app.clock.now().date()
    )
    w.approve_both(gid)
    return gid


@pytest.fixture
def world(app, monkeypatch):
    w = make_world(app, monkeypatch)
    seed.seed(app, taxpayers=400, employees=0, seed=7)
    _ready(w, "DT001")
    w.add("DT002", "examiner", "900-40-0107", kind="contractor", home_org="Acme")
    _ready(w, "DT002")
    return w


def _tins(app) -> list[str]:
    with session_scope(app.engine) as s:
        return [app.keyring.decrypt(b, "taxpayer.tin") for b in s.scalars(select(Taxpayer.tin_enc))]


def _leaves(data: Any):
    if isinstance(data, dict):
        for v in data.values():
            yield from _leaves(v)
    elif isinstance(data, list):
        for v in data:
            yield from _leaves(v)
    elif data is not None:
        yield str(data)


def test_the_kind_of_a_grant(world):
    w = world
    with pytest.raises(ValidationFailed, match="epsilon: required for a statistics grant"):
        w.request(kind="statistics", population=None, commands=[], classes=[])
    with pytest.raises(ValidationFailed, match="epsilon"):
        w.request(epsilon=1.0)
    with pytest.raises(ValidationFailed, match="k: only for an anonymized grant"):
        w.request(k=5)
    with pytest.raises(ValidationFailed, match="k: a whole number"):
        w.request(kind="anonymized", population=None, k=1)
    with pytest.raises(ValidationFailed, match="an anonymized grant covers no all"):
        w.request(kind="anonymized", population="all")
    gid = w.request(kind="anonymized", population=None)
    g = service.show_grant(w.app, gid)
    assert (g["kind"], g["population"], g["k"], g["key_version"]) == (
        "anonymized",
        "anonymized",
        10,
        1,
    )
    old = w.request(population="anonymized")  # the population alone implies the kind
    assert service.show_grant(w.app, old)["kind"] == "anonymized"
    assert service.show_grant(w.app, w.request())["kind"] == "records"


def test_the_reidentification_attack_fails(world, tmp_path):
    w = world
    app = w.app
    g1 = _anon_grant(w, "DT001", k=10)
    g2 = _anon_grant(w, "DT002", k=10)
    # the attacker asks many questions under both grants
    answers: list[dict[str, Any]] = []
    for gid, seid in ((g1, "DT001"), (g2, "DT002")):
        who = w.emp(seid)
        actor = Actor(seid, "api")
        everything = anonymized.list_records(app, who, filters={}, limit=1000, actor=actor)
        answers.append(everything)
        answers.append(
            anonymized.list_records(app, who, filters={}, limit=50, sample=True, actor=actor)
        )
        for year in (2022, 2023):
            for fs in ("S", "MFJ", "HOH"):
                answers.append(
                    anonymized.list_records(
                        app,
                        who,
                        filters={"tax_year": year, "filing_status": fs},
                        limit=1000,
                        actor=actor,
                    )
                )
        answers.append(
            anonymized.show_record(app, who, everything["records"][0]["pseudonym"], actor=actor)
        )
    # the attacker's table: every TIN's audit-log pseudonym (the most a TIN-holder can build)
    tins = _tins(app)
    audit_pseudonyms = {app.keyring.pseudonym(t) for t in tins}
    ensure_signing_key(app.settings.home, name=app.settings.audit_origin)
    audit_service.export(app, tmp_path / "audit", "os:test")
    exported = "\n".join(
        base64.b64decode(json.loads(ln)["leaf_input"]).decode("utf-8", "replace")
        for ln in (tmp_path / "audit" / "entries.jsonl").read_text().splitlines()
    )

    records = [r for a in answers for r in a.get("records", [a.get("record")]) if r]
    assert len(records) > 300
    by_grant: dict[int, set[str]] = {g1: set(), g2: set()}
    for a in answers:
        for r in a.get("records", [a.get("record")]):
            if r:
                by_grant[a["grant_id"]].add(r["pseudonym"])
    # 1. no pseudonym is an audit-log pseudonym, nor another grant's
    assert not (by_grant[g1] | by_grant[g2]) & audit_pseudonyms
    assert not by_grant[g1] & by_grant[g2]
    for p in by_grant[g1] | by_grant[g2]:
        assert p not in exported
        assert p.removeprefix("an_") not in {a.removeprefix("tp_") for a in audit_pseudonyms}
    # 2. no TIN, name or address anywhere in the answers
    with session_scope(app.engine) as s:
        names = {n for (n,) in s.execute(select(Taxpayer.last_name))}
    text = json.dumps(answers)
    for p in by_grant[g1] | by_grant[g2]:  # base32 digits can run nine long: not a TIN
        text = text.replace(p, "an_")
    assert not TIN_SHAPE.search(text)
    for t in tins:
        assert t not in text and t.replace("-", "") not in text
    values = set(_leaves(answers))
    assert not values & names
    assert not any(
        k in text
        for k in ('"tin"', '"name"', '"street"', '"city"', '"zip"', '"markers"', '"date_of_birth"')
    )
    # 3. every released record has at least k others sharing its combination in the population
    with session_scope(app.engine) as s:
        rows = population(s, app)
    for a in answers:
        level = LEVELS[a["level"]]
        sizes = Counter(generalize(r, level) for r in rows)
        for r in a.get("records", [a.get("record")]):
            if r:
                key = tuple(r[q] for q in anonymized.QUASI_IDENTIFIERS)
                assert sizes[key] >= a["k"] + 1, (key, sizes[key])
    # the control can fail: at the finest level, some combinations are rarer than k+1
    finest = Counter(generalize(r, LEVELS[0]) for r in rows)
    assert min(finest.values()) <= 10
    # 4. the audit export does not tie an answer to the taxpayers in it
    entries = [ln for ln in exported.splitlines() if "grants:anonymized:record" in ln]
    assert len(entries) == len(answers)
    for line in entries:
        assert not any(p in line for p in audit_pseudonyms)


def test_a_pseudonym_addresses_only_its_own_grant_and_key_version(world):
    w = world
    app = w.app
    g1 = _anon_grant(w, "DT001")
    _anon_grant(w, "DT002")
    one = anonymized.list_records(app, w.emp("DT001"), filters={}, limit=5, actor=ANALYST)
    p = one["records"][0]["pseudonym"]
    assert (
        anonymized.show_record(app, w.emp("DT001"), p, actor=ANALYST)["record"] == one["records"][0]
    )
    with pytest.raises(NotFound):  # another grant's pseudonym addresses nothing
        anonymized.show_record(app, w.emp("DT002"), p, actor=Actor("DT002"))
    with pytest.raises(NotFound):  # a forged one neither
        anonymized.show_record(app, w.emp("DT001"), p[:-2] + "aa", actor=ANALYST)
    out = anonymized.rotate_key(app, w.emp("PO001"), grant_id=g1, actor=OPERATOR)
    assert out.key_version == 2
    with pytest.raises(NotFound):  # rotated: yesterday's pseudonyms are gone
        anonymized.show_record(app, w.emp("DT001"), p, actor=ANALYST)
    again = anonymized.list_records(app, w.emp("DT001"), filters={}, limit=1000, actor=ANALYST)
    assert p not in {r["pseudonym"] for r in again["records"]}
    with pytest.raises(AccessDenied):  # only the grant staff rotate
        anonymized.rotate_key(app, w.emp("DT001"), grant_id=g1, actor=ANALYST)


def test_filters_finer_than_the_release_are_refused(world):
    w = world
    _anon_grant(w, "DT001", k=25)
    who = w.emp("DT001")
    out = anonymized.list_records(w.app, who, filters={}, limit=10, actor=ANALYST)
    level = LEVELS[out["level"]]
    if not level.zip3:
        with pytest.raises(ValidationFailed, match="zip3"):
            anonymized.list_records(w.app, who, filters={"zip3": "454"}, actor=ANALYST)
    with pytest.raises(ValidationFailed, match="agi_band"):
        anonymized.list_records(w.app, who, filters={"agi_band": "12345-23456"}, actor=ANALYST)
    for bad in (
        {"agi_band": "\u00b2-1"},
        {"zip3": "\u0664\u0665\u0664"},
        {"tax_year": "\u0662023"},
    ):
        with pytest.raises(ValidationFailed):  # digits of other scripts: 400, never 500
            anonymized.list_records(w.app, who, filters=bad, actor=ANALYST)
    with pytest.raises(ValidationFailed, match="not a filter"):
        anonymized.list_records(w.app, who, filters={"tin": "900-12-3456"}, actor=ANALYST)
    with pytest.raises(ValidationFailed, match="limit"):
        anonymized.list_records(w.app, who, filters={}, limit=0, actor=ANALYST)


def test_without_an_active_anonymized_grant_or_its_prerequisites_nothing(world):
    w = world
    with pytest.raises(AccessDenied) as exc:
        anonymized.list_records(w.app, w.emp("EX001"), filters={}, actor=ANALYST)
    assert exc.value.codes == [anonymized.NO_ANONYMIZED_GRANT]
    w.add("DT003", "examiner", "900-40-0108", kind="contractor", home_org="Acme")
    _anon_grant(w, "DT003")
    with pytest.raises(AccessDenied) as exc:  # no clearance, agreement or training
        anonymized.list_records(w.app, w.emp("DT003"), filters={}, actor=ANALYST)
    assert exc.value.codes == ["CLEARANCE_NOT_VERIFIED"]


def test_reidentification_is_for_security_staff_and_recorded(world):
    w = world
    app = w.app
    gid = _anon_grant(w, "DT001")
    rec = anonymized.list_records(app, w.emp("DT001"), filters={}, limit=1, actor=ANALYST)
    p = rec["records"][0]["pseudonym"]
    for seid in ("DT001", "PO001", "EX001"):
        assert not w.emp(seid).role_set & REIDENTIFIERS
        with pytest.raises(AccessDenied) as exc:
            anonymized.reidentify(
                app,
                w.emp(seid),
                grant_id=gid,
                pseudonym=p,
                reason="suspected misuse",
                actor=Actor(seid),
            )
        assert exc.value.audit_index is not None
    out = anonymized.reidentify(
        app,
        w.emp("SA001"),
        grant_id=gid,
        pseudonym=p,
        reason="suspected misuse",
        actor=Actor("SA001"),
    )
    assert out.tin in _tins(app)
    assert out.taxpayer == app.keyring.pseudonym(out.tin)
    with session_scope(app.engine) as s:
        e = s.get(AuditEntry, out.audit_index)
        assert e is not None
        body = bytes(e.leaf_input).decode()
    assert "grants:anonymized:reidentify" in body and out.taxpayer in body
    assert out.tin not in body and out.tin.replace("-", "") not in body


def test_the_command_line(world, capsys, monkeypatch):
    """``idrs anonymized records|record`` and ``idrs grant reidentify|rotate-key`` wire the
    options to the service (the signed-in employee stands in for ``idrs login``)."""
    import idrs.cli.grants as cli_grants
    from tests.integration.cli_helpers import run_cli

    w = world
    gid = _anon_grant(w, "DT001")
    monkeypatch.setattr(cli_grants, "open_app", lambda: w.app)
    me = {"seid": "DT001"}
    monkeypatch.setattr(cli_grants, "_signed_in", lambda a: w.emp(me["seid"]))
    code, out, err = run_cli(
        capsys, "anonymized", "records", "--limit", "3", "--tax-year", "2023", "--json"
    )
    assert code == 0, err
    got = json.loads(out)
    assert {"records", "k", "suppressed"} <= set(got) and got["k"] == 10
    assert all(r["tax_year"] == 2023 for r in got["records"])
    p = got["records"][0]["pseudonym"]
    code, out, err = run_cli(capsys, "anonymized", "record", p, "--json")
    assert code == 0 and json.loads(out)["record"]["pseudonym"] == p
    code, out, err = run_cli(capsys, "anonymized", "records", "--zip3", "45x")
    assert code == 1 and "zip3" in err
    code, out, err = run_cli(capsys, "grant", "reidentify", str(gid), p, "--reason", "audit")
    assert code != 0 and "NOT_IN_PROFILE" in out + err
    me["seid"] = "SA001"
    code, out, err = run_cli(
        capsys, "grant", "reidentify", str(gid), p, "--reason", "audit", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["tin"] in _tins(w.app)
    me["seid"] = "PO001"
    code, out, err = run_cli(capsys, "grant", "rotate-key", str(gid), "--json")
    assert code == 0 and json.loads(out)["key_version"] == 2


def test_the_service_paths_refuse_an_anonymized_principal_too(world, tmp_path):
    """The command line reaches research, adjustments and exports without the HTTP guard."""
    from idrs import research
    from idrs.adjustments import service as adjustments
    from idrs.grants import exports

    w = world
    _anon_grant(w, "DT001")
    token = w.token("DT001")
    tin = _tins(w.app)[0]
    calls = [
        lambda: research.run(w.app, token=token, command="ENMOD", tin=tin, interface="cli"),
        lambda: research.run(
            w.app,
            token=token,
            command="NAMES",
            tin=None,
            name="Carter",
            reason="x",
            interface="cli",
        ),
        lambda: adjustments.request(
            w.app,
            token=token,
            tin=tin,
            command="REQ77",
            tax_year=2023,
            tc="971",
            action_code="043",
            reason="x",
            case="C-1",
            interface="cli",
        ),
        lambda: exports.create_export(
            w.app, token=token, command="ENMOD", tins=[tin], fmt="csv", interface="cli"
        ),
    ]
    for call in calls:
        with pytest.raises(AccessDenied) as exc:
            call()
        assert anonymized.NO_IDENTIFIER in exc.value.codes
        assert exc.value.audit_index is not None


def test_who_can_does_not_list_an_anonymized_principal(world):
    from idrs.access import explain

    w = world
    gid = w.request(principal="DT001", population="all", start=w.app.clock.now().date())
    w.approve_both(gid)
    tin = _tins(w.app)[0]
    with session_scope(w.app.engine) as s:
        before = explain.who_can(s, w.app, tin=tin, command="ENMOD")
    assert "DT001" in {r["seid"] for r in before["can"]}  # the control can fail
    _anon_grant(w, "DT001")
    with session_scope(w.app.engine) as s:
        after = explain.who_can(s, w.app, tin=tin, command="ENMOD")
    assert "DT001" not in {r["seid"] for r in after["can"]}
    refused = {r["seid"]: r["refused"] for r in after["refused"]}
    assert refused["DT001"]["ENMOD"] == [anonymized.NO_IDENTIFIER]


def test_a_principals_grants_never_answer_finer_than_one_of_them_did(world):
    """A renewal (or a parallel grant) starts at the coarsest level its principal was
    answered at: two releases of one principal never combine into a finer view."""
    w = world
    app = w.app
    g1 = _anon_grant(w, "DT001", k=40)
    coarse = anonymized.list_records(app, w.emp("DT001"), filters={}, grant_id=g1, actor=ANALYST)
    g2 = _anon_grant(w, "DT001", k=2)
    fine = anonymized.list_records(app, w.emp("DT001"), filters={}, grant_id=g2, actor=ANALYST)
    assert fine["level"] >= coarse["level"]
    # the control: a fresh principal with k=2 gets a finer level than k=40 did
    g3 = _anon_grant(w, "DT002", k=2)
    other = anonymized.list_records(
        app, w.emp("DT002"), filters={}, grant_id=g3, actor=Actor("DT002")
    )
    assert other["level"] < coarse["level"]
