"""The policy decision point (PDP): Cedar policies over the facts, deny by default.

The policies are the ``*.cedar`` files in ``access/policies/`` (readable by a security
officer) validated against ``schema.cedarschema``. They are parsed ONCE per process into a
``cedarpy.PolicySet`` whose policy ids name file and line (``30_conflicts.cedar:5``); a file
that does not parse or validate makes loading raise ConfigurationError naming the file and
line of the offending policy (the system refuses to start).

Every applicable reason is returned: each forbid policy carries ``@reason("CODE")`` and Cedar
reports every determining forbid. A denial with no determining forbid (no permit matched for
a reason no forbid names) is still a denial (``DENIED_BY_DEFAULT``). The policy version is the
SHA-256 of the schema and policy files; ``record_version`` writes a new version to the audit
log (SYSTEM_POLICY_CHANGE) the first time it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cedarpy
from cedarpy import _internal
from sqlalchemy import select

from idrs.access.decision import Obligations, Verdict
from idrs.access.facts import Facts
from idrs.access.masking import obligations_for
from idrs.access.messages import message_for
from idrs.errors import ConfigurationError, Reason
from idrs.grants.facts import GrantFacts, cedar_context
from idrs.vocabulary import ADJUSTMENT_CODES, ALL_CODES

POLICY_DIR = Path(__file__).parent / "policies"
SCHEMA_FILE = "schema.cedarschema"
DEFAULT_DENY = "DENIED_BY_DEFAULT"


@dataclass(frozen=True)
class PolicyInfo:
    """One policy of the loaded set: where it is written and the reason it gives."""

    policy_id: str  # "file.cedar:line"
    file: str
    line: int
    effect: str
    reason: str
    name: str
    text: str


@dataclass(frozen=True)
class LoadedPolicies:
    policy_set: Any  # cedarpy.PolicySet
    entities: Any  # cedarpy _internal.Entities (the action hierarchy)
    schema: Any  # cedarpy.Schema
    policies: dict[str, PolicyInfo]
    version: str
    files: tuple[str, ...]
    #: no policy mentions principal or resource: answers depend on action + context only
    memoizable: bool = False


# -- splitting a policy file into statements (to name the file and line of each) -------------


def split_statements(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each ``;``-terminated statement, outside strings and comments."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start_line: int | None = None
    line = 1
    i, n = 0, len(text)
    in_str = False
    while i < n:
        ch = text[i]
        if in_str:
            buf.append(ch)
            if ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_str = False
            elif ch == "\n":
                line += 1
            i += 1
            continue
        if ch == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == "\n":
            line += 1
            buf.append(ch)
            i += 1
            continue
        if not ch.isspace() and start_line is None:
            start_line = line
        buf.append(ch)
        if ch == '"':
            in_str = True
        elif ch == ";":
            out.append((start_line or line, "".join(buf).strip()))
            buf, start_line = [], None
        i += 1
    rest = "".join(buf).strip()
    if rest:
        out.append((start_line or line, rest))
    return out


def _error_text(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def load(directory: Path = POLICY_DIR) -> LoadedPolicies:
    """Parse and validate every policy file in ``directory``. ConfigurationError on any fault."""
    schema_path = directory / SCHEMA_FILE
    try:
        schema_text = schema_path.read_text()
        schema = cedarpy.Schema.from_str(schema_text)
    except OSError as exc:
        raise ConfigurationError(
            f"policy schema unreadable: {schema_path}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(
            f"policy schema {schema_path.name} does not parse: {_error_text(exc)}"
        ) from None
    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise ConfigurationError(f"no policy files (*.cedar) in {directory}")
    digest = hashlib.sha256()
    digest.update(b"schema\0" + schema_text.encode() + b"\0")
    static: dict[str, Any] = {}
    infos: dict[str, PolicyInfo] = {}
    for path in files:
        text = path.read_text()
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        for line, stmt in split_statements(text):
            where = f"{path.name}:{line}"
            try:
                est = json.loads(cedarpy.policies_to_json_str(stmt))["staticPolicies"]
            except (ValueError, KeyError) as exc:
                raise ConfigurationError(
                    f"policy {where} does not parse: {_error_text(exc)}"
                ) from None
            if len(est) != 1:
                raise ConfigurationError(f"policy {where}: expected one policy per statement")
            (body,) = est.values()
            result = cedarpy.validate_policies(stmt, schema)
            if not result.validation_passed:
                errs = "; ".join(e.error for e in result.errors) or "invalid"
                raise ConfigurationError(f"policy {where} fails schema validation: {errs[:300]}")
            ann = body.get("annotations", {})
            reason = ann.get("reason")
            if body["effect"] == "forbid" and not reason:
                raise ConfigurationError(f'policy {where}: a forbid policy needs @reason("CODE")')
            static[where] = body
            infos[where] = PolicyInfo(
                where, path.name, line, body["effect"], reason or "", ann.get("id", where), stmt
            )
    if not any(p.effect == "permit" for p in infos.values()):
        raise ConfigurationError(f"no permit policy in {directory}: every request would be denied")
    try:
        policy_set = cedarpy.PolicySet.from_json_str(
            json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"policies in {directory} do not load: {_error_text(exc)}"
        ) from None
    memoizable = all(_only_action_and_context(body) for body in static.values())
    return LoadedPolicies(
        policy_set,
        _action_entities(schema),
        schema,
        infos,
        digest.hexdigest(),
        tuple(p.name for p in files),
        memoizable,
    )


def _only_action_and_context(body: dict[str, Any]) -> bool:
    """True when a policy (EST) constrains neither principal nor resource."""
    if body["principal"].get("op") != "All" or body["resource"].get("op") != "All":
        return False
    text = json.dumps(body.get("conditions", []))
    return '"Var": "principal"' not in text and '"Var": "resource"' not in text


def _action_entities(schema: Any) -> Any:
    """The action hierarchy (each command in ``research`` or ``adjust``) as a parsed entity set."""
    ents: list[dict[str, Any]] = [
        {"uid": {"type": "Idrs::Action", "id": g}, "attrs": {}, "parents": []}
        for g in ("research", "adjust")
    ]
    for cmd in sorted(ALL_CODES):
        group = "adjust" if cmd in ADJUSTMENT_CODES else "research"
        ents.append(
            {
                "uid": {"type": "Idrs::Action", "id": cmd},
                "attrs": {},
                "parents": [{"type": "Idrs::Action", "id": group}],
            }
        )
    return cedarpy.Entities.from_json_str(json.dumps(ents), schema)._inner


_LOADED: LoadedPolicies | None = None


def loaded() -> LoadedPolicies:
    """The process-wide policy set (loaded and validated on first use)."""
    global _LOADED
    if _LOADED is None:
        _LOADED = load()
    return _LOADED


def policy_version() -> str:
    return loaded().version


def context_of(facts: Facts) -> dict[str, Any]:
    """The Cedar request context built from the facts (the schema's ``Facts`` record)."""
    return {
        "in_profile": facts.command in facts.profile,
        "authorities": sorted(facts.authorities),
        "reason_given": bool(facts.reason and facts.reason.strip()),
        "has_case": facts.case_found is not None,
        "has_contact": facts.contact_found is not None,
        "basis_named": facts.case is not None or facts.contact is not None,
        "basis_valid": facts.basis_valid,
        "conflicts": sorted(facts.conflicts),
        "target_is_employee": facts.target_is_employee,
        "target_same_unit": facts.target_same_unit,
        "high_profile": facts.high_profile,
        "rate_exceeded": facts.rate_exceeded,
        **_grant_context(facts),
    }


#: No grant facts at all: no grant, not trained — missing facts are read on the safe side.
_NO_GRANT = GrantFacts(
    has_grant=False, state="none", commands=frozenset(), classes=frozenset(), population="none",
    allow_changes=False, daily_limit=None, agreement_signed=False, training_current=False,
    clearance_verified=False,
)


def _grant_context(facts: Facts) -> dict[str, Any]:
    """The grant attributes (grants/facts.py) of the Cedar context."""
    return cedar_context(facts.grant or _NO_GRANT, rate_count=facts.rate_count,
                         seen_today=facts.seen_today)


def _key(facts: Facts) -> tuple[Any, ...]:
    return (
        facts.command,
        facts.command in facts.profile,
        bool(facts.reason and facts.reason.strip()),
        facts.case_found is not None,
        facts.contact_found is not None,
        facts.case is not None or facts.contact is not None,
        facts.basis_valid,
        facts.conflicts,
        facts.target_is_employee,
        facts.target_same_unit,
        facts.high_profile,
        facts.rate_exceeded,
        facts.authorities,
        tuple(sorted(_grant_context(facts).items())),
    )


_MEMO: dict[tuple[Any, ...], tuple[bool, list[str], list[str]]] = {}
_MEMO_MAX = 8192


def evaluate(facts: Facts) -> tuple[bool, list[str], list[str]]:
    """Cedar's answer for the facts: (allowed, determining policy ids, errors).

    The policies (checked at load) refer to neither principal nor resource, only to the
    action and the context, so the answer is a pure function of the facts: it is memoized
    on them (a bounded table of the few hundred fact combinations that occur).
    """
    pol = loaded()
    if not pol.memoizable:
        return evaluate_uncached(facts)
    key = _key(facts)
    hit = _MEMO.get(key)
    if hit is None:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        hit = _MEMO[key] = evaluate_uncached(facts)
    return hit[0], list(hit[1]), list(hit[2])


def evaluate_uncached(facts: Facts) -> tuple[bool, list[str], list[str]]:
    """Run Cedar itself on the facts (no memo)."""
    pol = loaded()
    request = {
        "principal": {"type": "Idrs::Employee", "id": facts.seid},
        "action": {"type": "Idrs::Action", "id": facts.command},
        "resource": {"type": "Idrs::Taxpayer", "id": facts.resource_id},
        "context": json.dumps(context_of(facts), separators=(",", ":")),
    }
    resp = json.loads(_internal.is_authorized(request, pol.policy_set, pol.entities, None, False))
    diag = resp.get("diagnostics", {})
    return (
        resp.get("decision") == "Allow",
        list(diag.get("reason", [])),
        list(diag.get("errors", [])),
    )


def decide(facts: Facts) -> Verdict:
    """The verdict for one request. Deny by default; every applicable reason is returned.

    Callers: the research and adjustment services (after ``facts.gather``). Records nothing;
    the caller writes the audit entry with ``verdict.policy_version`` and the reasons.
    """
    pol = loaded()
    if facts.command not in ALL_CODES:
        return _deny(["NOT_IN_PROFILE"], pol.version, facts)
    try:
        allowed, determining, errors = evaluate(facts)
    except Exception:  # noqa: BLE001 - any failure of the engine is a denial, never an allow
        return _deny([DEFAULT_DENY], pol.version, facts)
    if allowed and not errors:
        obligations = obligations_for(facts)
        return Verdict(
            True, [], obligations, pol.version, basis=facts.basis, detail={"policies": determining}
        )
    codes: list[str] = []
    for pid in determining:
        info = pol.policies.get(pid)
        if info is not None and info.effect == "forbid" and info.reason not in codes:
            codes.append(info.reason)
    if not codes:
        codes = [DEFAULT_DENY]
    return _deny(codes, pol.version, facts, determining)


def _deny(
    codes: list[str], version: str, facts: Facts, determining: list[str] | None = None
) -> Verdict:
    reasons = [Reason(c, message_for(c, facts.command)) for c in _ordered(codes)]
    return Verdict(
        False,
        reasons,
        Obligations(visible=frozenset()),
        version,
        detail={"policies": determining or []},
    )


_ORDER = [
    "TRAINING_NOT_CURRENT",
    "NO_GRANT",
    "GRANT_PENDING_APPROVAL",
    "GRANT_NOT_STARTED",
    "GRANT_EXPIRED",
    "GRANT_REVOKED",
    "AGREEMENT_NOT_SIGNED",
    "CLEARANCE_NOT_VERIFIED",
    "OUT_OF_SCOPE",
    "NOT_IN_PROFILE",
    "NO_BUSINESS_NEED",
    "CONFLICT_SELF",
    "CONFLICT_SPOUSE",
    "CONFLICT_RELATIVE",
    "CONFLICT_HOUSEHOLD",
    "CONFLICT_FINANCIAL",
    "CONFLICT_BUSINESS",
    "CONFLICT_DECLARED",
    "CONFLICT_COWORKER",
    "PROTECTED_EMPLOYEE_ACCOUNT",
    "SENSITIVE_ACCOUNT",
    "RATE_LIMITED",
]


def _ordered(codes: list[str]) -> list[str]:
    rank = {c: i for i, c in enumerate(_ORDER)}
    return sorted(dict.fromkeys(codes), key=lambda c: (rank.get(c, len(rank)), c))


def record_version(app: Any) -> bool:
    """Record the running policy version if it is new (table + SYSTEM_POLICY_CHANGE entry).

    Callers: start-up paths (``idrs init``/``serve``, the access CLI). Returns True when a
    change was recorded. The audit entry is appended (and committed) before the row.
    """
    from idrs.access.models import PolicyVersion
    from idrs.audit import log
    from idrs.audit.events import EventType, make_event
    from idrs.db import session_scope

    pol = loaded()
    with session_scope(app.engine) as session:
        if session.get(PolicyVersion, pol.version) is not None:
            return False
        previous = session.execute(
            select(PolicyVersion.version).order_by(PolicyVersion.first_loaded_at.desc()).limit(1)
        ).scalar()
    now: datetime = app.clock.now()
    log.append(
        app.engine,
        make_event(
            EventType.SYSTEM_POLICY_CHANGE,
            time=now,
            actor="system",
            outcome="success",
            interface="system",
            obj={"policy_version": pol.version},
            policy=pol.version,
            detail={"previous": previous, "files": list(pol.files)},
        ),
    )
    with session_scope(app.engine) as session:
        if session.get(PolicyVersion, pol.version) is None:
            session.add(
                PolicyVersion(version=pol.version, files=",".join(pol.files), first_loaded_at=now)
            )
    return True
