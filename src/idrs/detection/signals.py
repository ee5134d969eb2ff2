"""Signals: why an access that the work does not explain looks like browsing. Pure.

Each signal has a name, a weight (how much it adds to the employee-day's score) and the
evidence that supports it. The weights are documented here, next to the reason for each.

Per access (only accesses left unexplained by a case, a contact routed by someone else, the
unit's review workflow, a declared walk-in, or collaboration on a case, and every refused
attempt; the accesses those explain still get the ties and work-shape signals of
:mod:`idrs.detection.relations`: an explained access is not a cleared one):

=====================  ======  =============================================================
refused_conflict        4.0    the decision point refused for a relationship (self, spouse,
                               relative, household, bank, business, declared): intent shown
coworker_account        4.0    refused: a co-worker's or another employee's account
refused_sensitive       3.0    refused: a high-profile account without the authority
refused_no_need         1.0    refused for no business need (often a typo; counts up)
repeated_refusals       3.5    three or more refusals on one taxpayer within a day
rate_limited            2.0    hit the daily ceiling of distinct taxpayers
contact_without_call    2.5    a phone/letter contact the employee opened themselves (calls
                               and letters are routed by the intake systems)
self_opened_visit       0.5    a walk-in visit opened by the employee (normal, but unrouted)
self_assigned_case      2.0    a case the employee assigned to themselves, outside review
no_followup             1.0    the basis was used for a quick look only (<= 3 calls, < 3 min)
same_surname            ≤3.0   target shares the employee's surname, discounted by how
                               common the surname is
same_street             3.0    target lives on the employee's street (not their household)
same_zip                0.3    target lives in the employee's ZIP
high_profile            2.0    target carries the high_profile marker
target_employee         3.0    target is an employee of the agency
after_hours             1.5    outside 07:00-19:00 or on a weekend
=====================  ======  =============================================================

Per employee-day: ``volume`` 2.0 (distinct taxpayers far above the employee's own history
and the peer group), ``sequence`` 3.0 (ten or more accounts, seconds apart),
``name_search_no_followup`` 1.5 (NAMES whose matches led to no case or contact),
``sweep`` 2.0 (NAMES then looks at its matches without a basis), ``many_employees`` 3.0
(three or more employees on one account within six hours, unexplained).
A self-reported access keeps its full weight (issue 13.2: a self-report never lowers a
score); it only gains a ``self_reported`` marker of weight 0 the analyst sees beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RELATIONSHIP_CODES = {
    "CONFLICT_SELF": "self", "CONFLICT_SPOUSE": "spouse", "CONFLICT_RELATIVE": "relative",
    "CONFLICT_HOUSEHOLD": "household", "CONFLICT_FINANCIAL": "relative",
    "CONFLICT_BUSINESS": "relative", "CONFLICT_DECLARED": "relative",
}
PROTECTED_CODES = ("CONFLICT_COWORKER", "PROTECTED_EMPLOYEE_ACCOUNT")
WEIGHTS: dict[str, float] = {
    "refused_conflict": 4.0, "coworker_account": 4.0, "refused_sensitive": 3.0,
    "refused_no_need": 1.0, "repeated_refusals": 3.5, "rate_limited": 2.0,
    "contact_without_call": 2.5, "self_opened_visit": 0.5, "self_assigned_case": 2.0,
    "no_followup": 1.0, "same_surname": 3.0, "same_street": 3.0, "same_zip": 0.3,
    "high_profile": 2.0, "target_employee": 3.0, "after_hours": 1.5, "volume": 2.0,
    "sequence": 3.0, "name_search_no_followup": 1.5, "sweep": 2.0, "many_employees": 3.0,
}
WORK_HOURS = (7, 19)
#: ``volume`` never fires at or below this many distinct taxpayers in a day (whatever the
#: history), so only the employee-days above it need a baseline
VOLUME_MIN = 25.0


@dataclass(frozen=True)
class TaxpayerFacts:
    last_name: str
    street_key: str
    zip: str
    household_key: str
    high_profile: bool
    employee: bool
    #: every dwelling the taxpayer was recorded at (normalized keys), current and past
    dwellings: frozenset[str] = frozenset()
    house: int | None = None  # the house number of the latest address


@dataclass(frozen=True)
class EmployeeFacts:
    seid: str
    unit: str
    roles: frozenset[str]
    last_name: str | None
    street_key: str | None
    zip: str | None
    household_key: str | None
    dwellings: frozenset[str] = frozenset()
    house: int | None = None
    #: taxpayers carrying the employee's surname who live with them or whom the conflict
    #: index links to them (their family: not evidence that a surname is common)
    household_namesakes: int = 0


@dataclass
class Signal:
    name: str
    weight: float
    evidence: dict[str, Any] = field(default_factory=dict)
    taxpayer: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": round(self.weight, 2), "evidence": self.evidence}


@dataclass
class Access:
    """One research entry that the work did not explain (or that was refused)."""

    idx: int
    seid: str
    t: datetime
    command: str
    taxpayer: str | None
    outcome: str
    reasons: list[str]
    basis_kind: str | None = None  # case | contact
    basis_id: str | None = None
    basis_opened_by: str | None = None
    basis_channel: str | None = None
    basis_open_index: int | None = None
    self_reported: bool = False


def surname_weight(count: int, population: int) -> float:
    """Full weight for a surname at most 0.4% of taxpayers carry; less the commoner it is."""
    if population <= 0 or count <= 0:
        return WEIGHTS["same_surname"]
    share = count / population
    return WEIGHTS["same_surname"] * min(1.0, 0.004 / share)


def after_hours(t: datetime) -> bool:
    return t.weekday() >= 5 or not (WORK_HOURS[0] <= t.hour < WORK_HOURS[1])


def access_signals(a: Access, emp: EmployeeFacts | None, tp: TaxpayerFacts | None,
                   surname_counts: dict[str, int], population: int) -> list[Signal]:
    """The per-access signals of one unexplained or refused access."""
    out: list[Signal] = []
    ev = {"audit_index": a.idx, "command": a.command}
    if a.outcome == "deny":
        codes = set(a.reasons)
        rel = sorted(c for c in codes if c in RELATIONSHIP_CODES)
        if rel:
            out.append(Signal("refused_conflict", WEIGHTS["refused_conflict"],
                              {**ev, "codes": rel}, a.taxpayer))
        if codes & set(PROTECTED_CODES):
            out.append(Signal("coworker_account", WEIGHTS["coworker_account"],
                              {**ev, "codes": sorted(codes & set(PROTECTED_CODES))}, a.taxpayer))
        if "SENSITIVE_ACCOUNT" in codes:
            out.append(Signal("refused_sensitive", WEIGHTS["refused_sensitive"], ev, a.taxpayer))
        if "RATE_LIMITED" in codes:
            out.append(Signal("rate_limited", WEIGHTS["rate_limited"], ev, a.taxpayer))
        if codes == {"NO_BUSINESS_NEED"} or not out and "NO_BUSINESS_NEED" in codes:
            out.append(Signal("refused_no_need", WEIGHTS["refused_no_need"], ev, a.taxpayer))
    elif a.basis_kind == "contact" and a.basis_opened_by == a.seid:
        if a.basis_channel == "visit":
            out.append(Signal("self_opened_visit", WEIGHTS["self_opened_visit"],
                              {**ev, "contact": a.basis_id}, a.taxpayer))
        else:
            out.append(Signal("contact_without_call", WEIGHTS["contact_without_call"],
                              {**ev, "contact": a.basis_id, "channel": a.basis_channel,
                               "opened_at_index": a.basis_open_index}, a.taxpayer))
    elif a.basis_kind == "case":
        out.append(Signal("self_assigned_case", WEIGHTS["self_assigned_case"],
                          {**ev, "case": a.basis_id}, a.taxpayer))
    if tp is not None and emp is not None:
        if emp.last_name and tp.last_name and emp.last_name.upper() == tp.last_name.upper():
            w = surname_weight(surname_counts.get(tp.last_name.upper(), 0), population)
            out.append(Signal("same_surname", w, {**ev, "surname_share":
                              round(surname_counts.get(tp.last_name.upper(), 0) / max(1, population), 5)},
                              a.taxpayer))
        same_household = bool(emp.household_key) and emp.household_key == tp.household_key
        if emp.street_key and emp.street_key == tp.street_key and emp.zip == tp.zip and not same_household:
            out.append(Signal("same_street", WEIGHTS["same_street"], ev, a.taxpayer))
        elif emp.zip and emp.zip == tp.zip and not same_household:
            out.append(Signal("same_zip", WEIGHTS["same_zip"], ev, a.taxpayer))
        if tp.high_profile:
            out.append(Signal("high_profile", WEIGHTS["high_profile"], ev, a.taxpayer))
        if tp.employee and "CONFLICT_SELF" not in a.reasons and not (
                emp.household_key and emp.household_key == tp.household_key):
            out.append(Signal("target_employee", WEIGHTS["target_employee"], ev, a.taxpayer))
    if after_hours(a.t):
        out.append(Signal("after_hours", WEIGHTS["after_hours"],
                          {**ev, "time": a.t.isoformat(timespec="minutes")}, a.taxpayer))
    if a.self_reported:  # shown to the analyst; never a discount
        out.append(Signal("self_reported", 0.0, ev, a.taxpayer))
    return out


def volume_signal(taxpayers_today: int, own_history: list[int], peer_p99: float) -> Signal | None:
    """Distinct taxpayers today against the employee's own median and the peer group's p99."""
    own = sorted(own_history)
    median = own[len(own) // 2] if own else 0
    limit = max(VOLUME_MIN, 3.0 * median, 1.5 * peer_p99)
    if taxpayers_today > limit:
        return Signal("volume", WEIGHTS["volume"], {"taxpayers": taxpayers_today,
                                                    "own_median": median,
                                                    "peer_p99": round(peer_p99, 1)})
    return None


def percentile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))
    return float(v[k])
