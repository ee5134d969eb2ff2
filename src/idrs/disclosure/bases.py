"""Statutory bases of disclosure, each a set of Cedar policies (``disclosure/policies/``).

A basis is a Cedar action (``Disclosure::Action::"6103i2"``); its conditions are the forbid
policies of its file, each naming its reason code, and one permit. The policies are parsed
and validated against ``schema.cedarschema`` once per process (a file that does not parse or
validate raises ConfigurationError naming it); :func:`decide` answers one record's facts:
``(allowed, every reason)``. Cedar reads only the action and the context, so answers are
memoized on the facts (a batch of a million records has a few dozen distinct fact sets).

:data:`BASES` says, per basis, what an allowed record's answer may hold (:data:`SCOPE`) and
the messages of its reason codes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cedarpy
from cedarpy import _internal

from idrs.access.policy import split_statements
from idrs.errors import ConfigurationError

POLICY_DIR = Path(__file__).parent / "policies"
SCHEMA_FILE = "schema.cedarschema"
DEFAULT_DENY = "DENIED_BY_DEFAULT"

#: reason code → what it means (the requester, the officer and docs/interface.md read these)
MESSAGES: dict[str, str] = {
    "NO_AGREEMENT": "the requesting system has no disclosure agreement for this basis",
    "AGREEMENT_EXPIRED": "the disclosure agreement has expired",
    "AGREEMENT_NOT_STARTED": "the disclosure agreement has not started",
    "AGREEMENT_REVOKED": "the disclosure agreement was revoked",
    "AGENCY_NOT_NAMED": "the requesting system's agency is not the agency its agreement names",
    "REQUESTER_NOT_FEDERAL": "the basis needs a federal agency; the agreement names another",
    "SIGNATORY_MISSING": "the request does not name the official who signed it",
    "SIGNATORY_RANK": "the request is not signed by an official of a rank the agreement requires",
    "TAXPAYER_NOT_NAMED": "the record does not give the taxpayer's first and last name",
    "ADDRESS_MISSING": "the record gives no address of the taxpayer (missing or a placeholder)",
    "ADDRESS_INCOMPLETE": "the record's address lacks a street, city, state or ZIP code",
    "PROCEEDING_MISSING": "the record names no criminal proceeding or investigation",
    "OFFICIAL_MISSING": "the record names no official personally and directly engaged in it",
    "TIN_INVALID": "the record's TIN is not 9 digits",
    "TAXPAYER_NOT_FOUND": "no taxpayer on file matches the record",
    "AMBIGUOUS_MATCH": "more than one taxpayer matches the record's name and address",
    "NAME_MISMATCH": "the name given is not the name on file for the TIN given",
    "ADDRESS_NOT_ON_FILE": "the address given is not one the master file holds for the taxpayer",
    "CAP_NOT_APPROVED": "the batch is over a cap and the disclosure officer did not approve it",
    DEFAULT_DENY: "no policy of the basis allows this disclosure",
}


@dataclass(frozen=True)
class Basis:
    name: str
    statute: str
    #: the only keys an allowed record's answer may carry
    scope: tuple[str, ...]
    description: str


BASES: dict[str, Basis] = {
    "6103i2": Basis(
        "6103i2",
        "26 U.S.C. § 6103(i)(2)",
        ("address_confirmed",),
        "return information other than taxpayer return information, on the written request "
        "of a federal agency, for a criminal proceeding or investigation: the answer is "
        "\"address confirmed: yes\" for an address the requester gave, never an address",
    ),
}


@dataclass(frozen=True)
class Loaded:
    policy_set: Any
    entities: Any
    reasons: dict[str, str]  # policy id → reason (forbids)
    version: str
    texts: dict[str, str]


def _error(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def load(directory: Path = POLICY_DIR) -> Loaded:
    """Parse and validate the basis policies; ConfigurationError naming the file and line."""
    try:
        schema_text = (directory / SCHEMA_FILE).read_text()
        schema = cedarpy.Schema.from_str(schema_text)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"disclosure policy schema: {_error(exc)}") from None
    digest = hashlib.sha256(b"schema\0" + schema_text.encode() + b"\0")
    static: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    texts: dict[str, str] = {}
    for path in sorted(directory.glob("*.cedar")):
        text = path.read_text()
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        for line, stmt in split_statements(text):
            where = f"{path.name}:{line}"
            try:
                (body,) = json.loads(cedarpy.policies_to_json_str(stmt))["staticPolicies"].values()
            except (ValueError, KeyError) as exc:
                raise ConfigurationError(f"policy {where} does not parse: {_error(exc)}") from None
            result = cedarpy.validate_policies(stmt, schema)
            if not result.validation_passed:
                errs = "; ".join(e.error for e in result.errors) or "invalid"
                raise ConfigurationError(f"policy {where} fails schema validation: {errs[:300]}")
            reason = body.get("annotations", {}).get("reason")
            if body["effect"] == "forbid":
                if not reason or reason not in MESSAGES:
                    raise ConfigurationError(f"policy {where}: a forbid needs a known @reason")
                reasons[where] = reason
            static[where] = body
            texts[where] = stmt
    try:
        policy_set = cedarpy.PolicySet.from_json_str(
            json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
        )
    except ValueError as exc:
        raise ConfigurationError(f"disclosure policies do not load: {_error(exc)}") from None
    entities = cedarpy.Entities.from_json_str("[]", schema)._inner
    return Loaded(policy_set, entities, reasons, digest.hexdigest(), texts)


_LOADED: Loaded | None = None


def loaded() -> Loaded:
    global _LOADED
    if _LOADED is None:
        _LOADED = load()
    return _LOADED


def version() -> str:
    return loaded().version


def decide(basis: str, facts: dict[str, Any]) -> tuple[bool, list[str]]:
    """Cedar's answer for one record's facts under ``basis``: (allowed, every reason)."""
    key = tuple(sorted(facts.items()))
    return _decide(basis, key)


@lru_cache(maxsize=4096)
def _decide(basis: str, key: tuple[tuple[str, Any], ...]) -> tuple[bool, list[str]]:
    pol = loaded()
    request = {
        "principal": {"type": "Disclosure::System", "id": "s"},
        "action": {"type": "Disclosure::Action", "id": basis},
        "resource": {"type": "Disclosure::Record", "id": "r"},
        "context": json.dumps(dict(key), separators=(",", ":")),
    }
    resp = json.loads(_internal.is_authorized(request, pol.policy_set, pol.entities, None, False))
    diag = resp.get("diagnostics", {})
    if diag.get("errors"):
        return False, [DEFAULT_DENY]
    if resp.get("decision") == "Allow":
        return True, []
    codes: list[str] = []
    for pid in diag.get("reason", []):
        code = pol.reasons.get(pid)
        if code is not None and code not in codes:
            codes.append(code)
    # a fixed order (the policy file's) so equal facts give equal documents
    order = list(MESSAGES)
    return False, sorted(codes, key=order.index) or [DEFAULT_DENY]
