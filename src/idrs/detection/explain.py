"""Every alert says why in words (issue 17.6): one sentence per signal, then the honest
explanations that were checked and ruled out. Pure: built from the signals an alert stores,
so the alerts raised before this module existed read the same way.

Example (a sweep under contacts)::

    14 accounts under contacts within 15 minutes; peers in unit U03 (csr) look at 4 or fewer
    that day (half of them; limit 8)
    ruled out: an ordinary walk-in queue or call load (the peer group's busiest sittings are
    far smaller)
"""

from __future__ import annotations

from typing import Any

#: sentence per signal when its evidence carries no ``why`` of its own
_SAYS: dict[str, str] = {
    "refused_conflict": "refused for a relationship the conflict rules know ({codes})",
    "coworker_account": "tried a co-worker's or another employee's account (refused)",
    "refused_sensitive": "tried a high-profile account without the authority (refused)",
    "refused_no_need": "refused for no business need on this account",
    "repeated_refusals": "{refusals} refusals on one taxpayer in a day",
    "rate_limited": "hit the daily ceiling of distinct taxpayers",
    "contact_without_call": "opened a {channel} contact themself: no routed call or letter behind it",
    "self_opened_visit": "a walk-in visit the employee declared",
    "self_assigned_case": "worked a case they assigned to themself",
    "no_followup": "used the basis for a quick look only (at most 3 calls in under 3 minutes)",
    "same_surname": "the taxpayer shares the employee's surname (about {surname_share} of taxpayers carry it)",
    "same_street": "the taxpayer lives on the employee's street",
    "same_zip": "the taxpayer lives in the employee's ZIP",
    "high_profile": "a high-profile taxpayer",
    "target_employee": "the taxpayer is an employee of the agency",
    "after_hours": "outside working hours ({time})",
    "volume": "{taxpayers} taxpayers in a day against the employee's own median of {own_median} "
              "and the role's p99 of {peer_p99}",
    "sequence": "{quick_accounts} accounts each seconds after the previous one",
    "name_search_no_followup": "a name search ({matches} matches) no case or contact followed",
    "sweep": "looked at the matches of a name search without a basis",
    "many_employees": "one of {employees_within_6h} employees on one account within six hours, unexplained",
}
#: the honest explanation each signal's presence rules out
_RULED_OUT: dict[str, str] = {
    "contact_without_call": "a routed call, letter or intake record (none for this contact)",
    "self_assigned_case": "a case someone else assigned (the employee assigned it)",
    "no_followup": "real work on the contact (it was used for a quick look only)",
    "after_hours": "work in the employee's hours on a basis (none explains the access)",
    "volume": "the employee's usual load and the peer group's busiest days",
    "sequence": "a batch of assigned cases (these accounts had none)",
    "sweep": "a caller found by name (no contact or case followed the search)",
    "name_search_no_followup": "a caller found by name (no contact or case followed the search)",
    "many_employees": "collaboration on a case (no case links these employees)",
    "contact_sweep": "an ordinary walk-in queue or call load (the peer group's busiest sittings "
                     "are far smaller)",
    "same_surname": "chance: the surname is rare enough that an honest caseload seldom meets it",
    "declared_contacts": "a unit that takes walk-ins (the peer group declares far fewer)",
    "basis_refused": "a basis of their own (the decision point refused the one they tried to open)",
    "past_address": "the household the conflict rules know (they live apart now)",
}
_UNEXPLAINED = {"same_surname", "same_street", "same_zip", "high_profile", "target_employee",
                "after_hours", "no_followup", "contact_without_call", "self_assigned_case"}


def _sentence(sig: dict[str, Any]) -> str:
    ev = sig.get("evidence") or {}
    if ev.get("why"):
        return str(ev["why"])
    name = str(sig["name"])
    tmpl = _SAYS.get(name, name.replace("_", " "))
    fields = {k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in ev.items()}
    try:
        return tmpl.format(**fields)
    except (KeyError, IndexError, ValueError):
        return str(sig["name"]).replace("_", " ")


def why(signals: list[dict[str, Any]]) -> list[str]:
    """The alert's reasons in words (strongest first), then what was ruled out."""
    out: list[str] = []
    for sig in sorted(signals, key=lambda s: -float(s.get("weight", 0.0))):
        if sig["name"] == "self_reported":
            out.append("the employee self-reported this access (shown, never a discount)")
            continue
        line = _sentence(sig)
        idx = (sig.get("evidence") or {}).get("audit_index")
        if idx is not None:
            line += f" (entry {idx})"
        if line not in out:
            out.append(line)
    names = {s["name"] for s in signals}
    unexplained = [s for s in signals if s["name"] in _UNEXPLAINED
                   and not (s.get("evidence") or {}).get("explained_by")]
    ruled = []
    if unexplained:
        ruled.append("a case or a routed contact on this account (none found)")
    bases = sorted({str(s["evidence"]["explained_by"]) for s in signals
                    if (s.get("evidence") or {}).get("explained_by")})
    if bases:
        ruled.append("that the basis clears it (" + ", ".join(bases[:3]) + " explains why the "
                     "account could be opened, not the tie)")
    strong = {s["name"] for s in signals if float(s.get("weight", 0.0)) >= 2.5}
    ruled += [_RULED_OUT[n] for n in sorted(names) if n in _RULED_OUT
              and (n != "same_surname" or n in strong)]  # chance is ruled out for a rare name only
    if ruled:
        out.append("ruled out: " + "; ".join(dict.fromkeys(ruled)))
    return out
