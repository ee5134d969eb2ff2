"""Asking the decision point's Cedar policies directly, from a ready-made context.

The grant policies live with the others in ``access/policies/60_grants.cedar``.
:func:`decide` answers one request from a Cedar context (the access facts' context merged
with ``grants.facts.cedar_context``): (allowed, reason codes). Used by the tests and the
benchmark; production decisions go through ``access.policy.decide``.
"""

from __future__ import annotations

import json
from typing import Any

from cedarpy import _internal

from idrs.access import policy


def combined() -> policy.LoadedPolicies:
    """The decision point's policy set (the grant policies are part of it)."""
    return policy.loaded()


def decide(context: dict[str, Any], command: str, *, seid: str = "P",
           resource: str = "r") -> tuple[bool, list[str]]:
    """Cedar's answer and the reason codes of every determining forbid."""
    pol = combined()
    request = {
        "principal": {"type": "Idrs::Employee", "id": seid},
        "action": {"type": "Idrs::Action", "id": command},
        "resource": {"type": "Idrs::Taxpayer", "id": resource},
        "context": json.dumps(context, separators=(",", ":")),
    }
    resp = json.loads(_internal.is_authorized(request, pol.policy_set, pol.entities, None, False))
    allowed = resp.get("decision") == "Allow"
    if resp.get("diagnostics", {}).get("errors"):
        return False, ["DENIED_BY_DEFAULT"]
    if allowed:
        return True, []
    codes: list[str] = []
    for pid in resp.get("diagnostics", {}).get("reason", []):
        info = pol.policies.get(pid)
        if info is not None and info.effect == "forbid" and info.reason not in codes:
            codes.append(info.reason)
    return False, codes or ["DENIED_BY_DEFAULT"]
