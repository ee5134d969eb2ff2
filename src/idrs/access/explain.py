"""Explanations and reverse questions, for security staff and oversight.

- ``explain``: one (employee, taxpayer, command): every rule (file, line, text, whether it
  applies), every fact, and the evidence behind each conflict (return, year, field).
- ``who_can``: the employees who could open one taxpayer's account now, and why.
- ``what_can``: per command code and sensitivity class, how many taxpayers one employee
  could open now and on what basis (case, contact, none).

All three run the real decision point (facts + policy) so their answers cannot drift from
what research would do. They read only; the callers (CLI/API, security staff) record the
question in the audit log. Evidence names people by pseudonyms, never by plaintext.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from functools import lru_cache
from typing import Any

import cedarpy
from cedarpy import _internal
from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.access import conflicts, facts, policy, ratelimit
from idrs.access.masking import classes_for
from idrs.access.models import CaseAssignment, TaxpayerContact
from idrs.access.service import employee_by_seid
from idrs.context import App
from idrs.grants.facts import grant_facts
from idrs.grants.models import Grant
from idrs.identifiers import normalize_tin, optional_case_id
from idrs.masterfile.screens import ALL_CLASSES
from idrs.people.models import Employee, Unit
from idrs.vocabulary import ADJUSTMENT_CODES, ALL_CODES, CommandCode


@lru_cache(maxsize=64)
def _single(policy_id: str) -> Any:
    """A policy set holding one policy (turned into a permit) to test whether it applies."""
    pol = policy.loaded()
    est = json.loads(cedarpy.policies_to_json_str(pol.policies[policy_id].text))
    (body,) = est["staticPolicies"].values()
    body = {**body, "effect": "permit"}
    return cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": {policy_id: body}, "templates": {}, "templateLinks": []})
    )


def rule_applies(f: facts.Facts, policy_id: str) -> bool:
    """Whether the condition of one policy holds for these facts."""
    pol = policy.loaded()
    request = {
        "principal": {"type": "Idrs::Employee", "id": f.seid},
        "action": {"type": "Idrs::Action", "id": f.command},
        "resource": {"type": "Idrs::Taxpayer", "id": f.resource_id},
        "context": json.dumps(policy.context_of(f)),
    }
    resp = json.loads(
        _internal.is_authorized(request, _single(policy_id), pol.entities, None, False)
    )
    return bool(resp.get("decision") == "Allow")


def explain(
    session: Session,
    app: App,
    *,
    seid: str,
    tin: str,
    command: str,
    case: str | None = None,
    contact: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Everything behind one decision, for security staff (never shown to the employee)."""
    emp = employee_by_seid(session, seid)
    command = command.strip().upper()
    case, contact = optional_case_id(case, "case"), optional_case_id(contact, "contact")
    f = facts.gather(
        session,
        app,
        employee=emp,
        command=command,
        tin=tin,
        case=case,
        contact=contact,
        reason=reason,
    )
    verdict = policy.decide(f)
    pol = policy.loaded()
    rules = []
    for pid, info in pol.policies.items():
        applies = rule_applies(f, pid) if command in ALL_CODES else False
        rules.append(
            {
                "policy": pid,
                "name": info.name,
                "effect": info.effect,
                "reason": info.reason or None,
                "applies": applies,
                "text": info.text,
            }
        )
    if f.conflicts_live:
        ev = {
            c: v
            for c, v in conflicts.conflicts_of(
                session, app, employee_id=emp.id, tin_index=emp.tin_index
            )
            .by_tin.get(f.tin_index or b"", {})
            .items()
        }
    else:
        ev = conflicts.stored_for(session, emp.id, f.tin_index or b"")
    if "CONFLICT_SELF" in f.conflicts and "CONFLICT_SELF" not in ev:
        ev["CONFLICT_SELF"] = [{"field": "employee.tin"}]
    return {
        "seid": emp.seid,
        "taxpayer": app.keyring.pseudonym(normalize_tin(tin)),
        "command": command,
        "decision": "allow" if verdict.allowed else "deny",
        "reasons": [r.as_dict() for r in verdict.reasons],
        "basis": verdict.basis,
        "policy_version": verdict.policy_version,
        "visible_classes": sorted(verdict.obligations.visible),
        "rules": rules,
        "facts": {
            **policy.context_of(f),
            "roles": sorted(f.roles),
            "profile": sorted(f.profile),
            "taxpayer_exists": f.taxpayer_exists,
            "open_cases": list(f.open_cases),
            "open_contacts": list(f.open_contacts),
            "markers": sorted(f.markers),
            "rate_count_today": f.rate_count,
            "rate_limit": f.rate_limit,
            "conflict_index": "computed live (not yet stored)" if f.conflicts_live else "stored",
        },
        "evidence": ev,
    }


def _base(app: App, emp: Employee) -> facts.FactsBase:
    return facts.FactsBase(
        employee_id=emp.id,
        seid=emp.seid,
        roles=emp.role_set,
        profile=emp.profile_set,
        command=CommandCode.ENMOD,
        tin=None,
        authorities=emp.authority_set,
        unit_id=emp.unit_id,
        rate_limit=ratelimit.limit_for(emp.role_set, app.settings),
    )


def _for_command(
    session: Session, app: App, emp: Employee, f0: facts.Facts, cmd: str
) -> facts.Facts:
    """The facts of ``f0`` for another command (grant coverage depends on the command)."""
    return replace(f0, command=cmd, grant=grant_facts(session, app, emp, cmd, app.clock.now()))


def _commands(emp: Employee, command: str | None) -> list[str]:
    if command:
        return [command.strip().upper()]
    return sorted(c for c in emp.profile_set if c != CommandCode.NAMES) or [CommandCode.ENMOD]


def _anonymized() -> tuple[Any, str]:
    from idrs.grants.anonymized import NO_IDENTIFIER, is_anonymized_principal

    return is_anonymized_principal, NO_IDENTIFIER


def who_can(session: Session, app: App, *, tin: str, command: str | None = None) -> dict[str, Any]:
    """The employees who could open ``tin`` now (per command) and why; also who is refused.

    Only employees with an open case or contact on the TIN can have a business need, so
    they are the candidates; each is run through the decision point.
    """
    idx = facts.tin_index_of(app, tin)
    day = app.clock.now().date()
    ids = set(
        session.scalars(
            select(CaseAssignment.employee_id).where(
                CaseAssignment.tin_index == idx, CaseAssignment.closed_at.is_(None)
            )
        )
    )
    ids |= set(
        session.scalars(
            select(TaxpayerContact.employee_id).where(
                TaxpayerContact.tin_index == idx, TaxpayerContact.closed_at.is_(None)
            )
        )
    )
    # ... and outside principals whose grant needs no case (population all or anonymized).
    ids |= set(
        session.scalars(
            select(Grant.principal_id).where(
                Grant.population.in_(("all", "anonymized")),
                Grant.status.not_in(("revoked", "ended", "rejected")),
            )
        )
    )
    allowed, refused = [], []
    is_anonymized_principal, no_identifier = _anonymized()
    for emp in session.scalars(
        select(Employee).where(Employee.id.in_(sorted(ids))).order_by(Employee.seid)
    ):
        f0 = facts.gather_indexed(session, app, _base(app, emp), idx, emp, day)
        unit = session.get(Unit, emp.unit_id)
        ok: list[str] = []
        no: dict[str, list[str]] = {}
        # an anonymized principal never opens an account by TIN (research refuses them first)
        barred = is_anonymized_principal(session, app, emp.id)
        for cmd in _commands(emp, command):
            if barred:
                no[cmd] = [no_identifier]
                continue
            v = policy.decide(_for_command(session, app, emp, f0, cmd))
            if v.allowed:
                ok.append(cmd)
            else:
                no[cmd] = v.codes
        row = {
            "seid": emp.seid,
            "unit": unit.code if unit else None,
            "roles": sorted(emp.role_set),
            "basis": f0.basis,
            "cases": list(f0.open_cases),
            "contacts": list(f0.open_contacts),
        }
        if ok:
            allowed.append(
                {
                    **row,
                    "commands": ok,
                    "visible_classes": sorted(classes_for(emp.role_set, emp.authority_set)),
                }
            )
        if no:
            refused.append({**row, "refused": no})
    return {
        "taxpayer": app.keyring.pseudonym(normalize_tin(tin)),
        "command": command,
        "policy_version": policy.policy_version(),
        "can": allowed,
        "refused": refused,
        "note": "no one else has an open case or contact on this account (need to know)",
    }


def what_can(session: Session, app: App, *, seid: str) -> dict[str, Any]:
    """Per command code and sensitivity class: how many taxpayers ``seid`` could open now."""
    emp = employee_by_seid(session, seid)
    day = app.clock.now().date()
    bases: dict[bytes, set[str]] = defaultdict(set)
    for (idx,) in session.execute(
        select(CaseAssignment.tin_index).where(
            CaseAssignment.employee_id == emp.id, CaseAssignment.closed_at.is_(None)
        )
    ):
        bases[idx].add("case")
    for (idx,) in session.execute(
        select(TaxpayerContact.tin_index).where(
            TaxpayerContact.employee_id == emp.id, TaxpayerContact.closed_at.is_(None)
        )
    ):
        bases[idx].add("contact")
    profile = sorted(emp.profile_set)
    counts = {c: {"taxpayers": 0, "case": 0, "contact": 0, "refused": 0} for c in profile}
    base = _base(app, emp)
    for idx in bases:
        f0 = facts.gather_indexed(session, app, base, idx, emp, day)
        kind = "case" if f0.open_cases else "contact"
        for cmd in profile:
            if cmd == CommandCode.NAMES:
                continue
            v = policy.decide(_for_command(session, app, emp, f0, cmd))
            if v.allowed:
                counts[cmd]["taxpayers"] += 1
                counts[cmd][kind] += 1
            else:
                counts[cmd]["refused"] += 1
    visible = classes_for(emp.role_set, emp.authority_set)
    rows = []
    for cmd in profile:
        c = counts[cmd]
        row: dict[str, Any] = {
            "command": cmd,
            "kind": "adjustment" if cmd in ADJUSTMENT_CODES else "research",
            "visible_classes": sorted(visible),
            "masked_classes": sorted(ALL_CLASSES - visible),
        }
        if cmd == CommandCode.NAMES:
            row.update(
                {
                    "basis": "reason",
                    "taxpayers": None,
                    "per_search_limit": app.settings.names_max_matches,
                    "daily_limit": ratelimit.limit_for(emp.role_set, app.settings),
                }
            )
        else:
            row.update(
                {
                    "taxpayers": c["taxpayers"],
                    "by_basis": {"case": c["case"], "contact": c["contact"], "none": 0},
                    "refused_despite_basis": c["refused"],
                }
            )
        rows.append(row)
    return {
        "seid": emp.seid,
        "roles": sorted(emp.role_set),
        "profile": profile,
        "authorities": sorted(emp.authority_set),
        "policy_version": policy.policy_version(),
        "open_bases": len(bases),
        "can_change": any(c in ADJUSTMENT_CODES for c in profile),
        "commands": rows,
    }
