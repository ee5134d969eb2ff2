"""An explained access is not a cleared access (issue 17.3): signals scored on *every* access.

A basis (a case someone else assigned, a contact the intake systems routed or recorded, a
walk-in the employee declared) explains why an employee *could* open an account, not that
nothing is wrong: the relative looked up under a pretext case is the commonest browsing there
is. So two kinds of signal are computed here over the accesses the work explains (the
unexplained ones already get them from :func:`signals.access_signals`), each a separate SQL
step over the tables a run builds (``acc``, ``judged``: :mod:`idrs.detection.explained`;
``basis``, ``emp``: :mod:`idrs.detection.bases`; ``empf``, ``tpf``: :mod:`idrs.detection.score`):

**Ties** (:func:`add_ties`): the relationships the data can still show between the employee
and the account's taxpayer, when the conflict rules did not refuse the access:

=================  ======  ==================================================================
same_surname       ≤ 3.0   a *rare* shared surname: full weight when at most 1 taxpayer in
                           :data:`RARE_SHARE_INV` carries it (the employee's family the data
                           knows — household, spouse, dependents — not counted), falling with
                           the square of how much commoner it is (a surname 1 in 1,000 carry:
                           0.75; a town's common name: ~0)
same_street        3.0     the same block: the same street and ZIP, house numbers at most
                           :data:`BLOCK` apart, another household (a long street is no tie)
past_address       3.0     a dwelling both were recorded at (a former household), now apart
=================  ======  ==================================================================

The ZIP alone is no tie on an explained access (a small town shares one).

**Shape of the work** (:func:`add_contact_sweeps`): ``contact_sweep`` (3.0): in some
:data:`SITTING_MINUTES`-minute sitting the employee looked at more distinct accounts under
contacts whose taxpayer the employee could choose (declared walk-ins, contacts an intake desk
or the mail room recorded; not calls a phone system routed: a surge of routed calls is the
queue's shape, the caller is chosen by the queue) than :data:`SWEEP_MIN` and than
:data:`SWEEP_FACTOR` times the median of their peers' busiest sittings (same unit and role,
the same day; a peer who worked that day without such a sitting counts 0). The median, not
the p90: the p90 of a unit of eight is its busiest colleague, so two sweepers of one unit on
one day hid each other (the independent workload, seed 3). A whole unit working a walk-in queue raises its own baseline: the
pattern every peer shows is not, by itself, suspicious. The baseline is the peers' same day,
not the employee's own past, so it needs no history: a new employee is judged from their first
day (the cold start), and an incremental run sees the baseline a full run sees. A peer group
with fewer than :data:`MIN_PEERS` employees working contacts that day falls back to everyone
of the role that day, and to :data:`SWEEP_MIN` alone when even that is empty.

**Research under contacts the employee declared** (:func:`add_declared_contacts`, issue 17.5):
``declared_contacts`` (1.5, never an alert alone): the employee worked more accounts under
contacts they declared themselves (walk-ins, no intake record) than :data:`DECLARED_MIN` and
than twice the p90 of their peer group that day (the same fallbacks as above). A unit whose
whole staff takes walk-ins sets its own baseline.

**A basis the employee tried to make and was refused** (:func:`add_refused_bases`):
``basis_refused`` (2.0): the employee tried to open a contact or a case on a taxpayer for
themself and the decision point refused (a declared contact outside a walk-in role, a case
on a conflicted account): the pretext was attempted. With one refused look at the same
taxpayer (1.0) it reaches the threshold.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date
from typing import Any

from idrs.detection.signals import EmployeeFacts, Signal, TaxpayerFacts

WEIGHTS = {"same_surname": 3.0, "same_street": 3.0, "past_address": 3.0, "contact_sweep": 3.0,
           "declared_contacts": 1.5, "basis_refused": 2.0}
#: a surname at most one taxpayer in this many carries (outside the employee's household) is
#: rare enough that an honest caseload seldom meets it by chance
RARE_SHARE_INV = 2000
BLOCK = 100
SITTING_MINUTES = 15
SWEEP_MIN = 6
SWEEP_FACTOR = 2.0
MIN_PEERS = 2
DECLARED_MIN = 3

Key = tuple[str, str]


def rare_surname_weight(count: int, household: int, population: int) -> float:
    """3.0 when at most 1 in :data:`RARE_SHARE_INV` taxpayers (outside the employee's family
    the data knows) carry the surname; ``3.0 * (rare share / share) ** 2`` above that."""
    others = max(1, count - household)
    if population <= 0:
        return 0.0
    share = others / population
    limit = 1.0 / RARE_SHARE_INV
    return WEIGHTS["same_surname"] * min(1.0, (limit / share) ** 2)


def _basis_words(explained: str, bkind: str | None, bid: str | None, opened_by: str | None,
                 channel: str | None) -> str:
    if explained == "case":
        return f"case {bid} assigned by {opened_by}"
    if explained == "walk_in":
        return f"walk-in visit {bid} the employee declared"
    if explained == "unit_workflow":
        return f"review case {bid} of the unit's workflow"
    return f"{channel or 'contact'} contact {bid} recorded by {opened_by}"


def add_ties(con: Any, day0: date, tps: dict[str, TaxpayerFacts], emps: dict[str, EmployeeFacts],
             counts: dict[str, int], population: int, out: dict[Key, list[Signal]],
             idx: dict[Key, list[int]]) -> None:
    """Rare shared surname, same street, past shared address on explained accesses."""
    rows = con.execute("""
        SELECT a.idx, a.seid, a.day, a.command, a.taxpayer, j.explained, a.bkind, a.bid,
               j.opened_by, j.channel
        FROM acc a JOIN judged j ON j.idx = a.idx
        JOIN empf ef ON ef.seid = a.seid JOIN tpf tf ON tf.tp = a.taxpayer
        WHERE j.explained IS NOT NULL AND j.explained <> 'unknown_basis' AND a.day >= ?
          AND ((ef.last <> '' AND ef.last = tf.last)
               OR (ef.street <> '' AND ef.street = tf.street AND ef.zip = tf.zip AND ef.hh <> tf.hh)
               OR (array_length(list_intersect(ef.dw, tf.dw)) > 0 AND ef.hh <> tf.hh))
        ORDER BY a.t, a.idx""", [day0]).fetchall()
    for i, seid, d, cmd, tp, explained, bkind, bid, by, channel in rows:
        emp, fact = emps.get(seid), tps.get(tp)
        if emp is None or fact is None:
            continue
        basis = _basis_words(explained, bkind, bid, by, channel)
        ev: dict[str, Any] = {"audit_index": i, "command": cmd, "explained_by": basis}
        key = (seid, d.isoformat())
        found: list[Signal] = []
        household = bool(emp.household_key) and emp.household_key == fact.household_key
        if emp.last_name and fact.last_name and emp.last_name.upper() == fact.last_name.upper():
            n = counts.get(fact.last_name.upper(), 0)
            w = rare_surname_weight(n, emp.household_namesakes, population)
            others = max(1, n - emp.household_namesakes)
            if w >= 0.05:
                found.append(Signal("same_surname", w, {
                    **ev, "surname_share": round(others / max(1, population), 5),
                    "why": f"the account's taxpayer shares the employee's surname, which about 1 "
                           f"in {max(1, population // others):,} taxpayers carry; explained by "
                           f"{basis}, but a basis does not clear a relative"}, tp))
        near = emp.house is None or fact.house is None or abs(emp.house - fact.house) <= BLOCK
        if not household and near and emp.street_key and emp.street_key == fact.street_key \
                and emp.zip == fact.zip:
            found.append(Signal("same_street", WEIGHTS["same_street"], {
                **ev, "why": f"the taxpayer lives on the employee's block; explained by {basis}, "
                             "but a neighbour's account should go to someone else"}, tp))
        if not household and emp.dwellings & fact.dwellings:
            found.append(Signal("past_address", WEIGHTS["past_address"], {
                **ev, "why": f"the employee and the taxpayer were once recorded at the same "
                             f"dwelling; explained by {basis}"}, tp))
        if found:
            out[key].extend(found)
            idx[key].append(int(i))


def add_contact_sweeps(con: Any, day0: date, out: dict[Key, list[Signal]],
                       idx: dict[Key, list[int]]) -> None:
    """Many distinct accounts under contacts in one sitting, against the peer group."""
    con.execute(f"""
        CREATE OR REPLACE TABLE sitting AS
        WITH first AS (
          SELECT a.seid, a.day, a.taxpayer, min(a.t) AS t, min(a.idx) AS idx FROM acc a
          LEFT JOIN basis b ON b.kind = 'contact' AND b.basis_id = a.bid
          WHERE a.bkind = 'contact' AND a.outcome = 'allow' AND a.command <> 'NAMES'
            AND a.taxpayer IS NOT NULL
            -- a call the phone system routed: the caller was chosen by the queue, not the
            -- employee, so a burst of them is the queue's shape, not a sweep
            AND NOT (COALESCE(b.channel, '') = 'phone' AND COALESCE(b.opened_by, '') LIKE 'system:%')
          GROUP BY 1, 2, 3),
        w AS (
          SELECT f1.seid, f1.day, f1.t, count(*) AS n, list(f2.idx ORDER BY f2.t) AS idxs
          FROM first f1 JOIN first f2 ON f2.seid = f1.seid AND f2.day = f1.day
           AND f2.t >= f1.t AND f2.t < f1.t + INTERVAL {SITTING_MINUTES} MINUTE
          GROUP BY 1, 2, 3)
        SELECT w.seid, w.day, max(w.n) AS n,
               -- the largest sitting, the earliest of equal ones (a tie must not be left to
               -- the engine: DuckDB and Spark would each pick their own)
               arg_max(w.idxs, {{'n': w.n, 'e': -epoch_us(w.t)}}) AS idxs,
               arg_max(w.t, {{'n': w.n, 'e': -epoch_us(w.t)}}) AS t,
               COALESCE(e.unit, '') AS unit, COALESCE(e.role, '') AS role
        FROM w LEFT JOIN emp e ON e.seid = w.seid GROUP BY w.seid, w.day, e.unit, e.role""")  # noqa: S608
    rows = con.execute("SELECT seid, day, n, idxs, t, unit, role FROM sitting WHERE day >= ? AND n > ?",
                       [day0, SWEEP_MIN]).fetchall()
    if not rows:
        return
    # the peer group's sittings of the same day (a day is always read whole, so an incremental
    # run sees the baseline a full run sees)
    peaks: dict[tuple[str, str, date], list[tuple[str, int]]] = defaultdict(list)
    by_role: dict[tuple[str, date], list[tuple[str, int]]] = defaultdict(list)
    # every employee who worked that day is in the peer group; one who looked at no account
    # under such contacts counts 0 (leaving them out made the baseline the busiest colleague:
    # two sweepers in one unit on one day hid each other)
    for seid, d, n, unit, role in con.execute("""
            SELECT t.seid, t.day, COALESCE(s.n, 0), COALESCE(e.unit, ''), COALESCE(e.role, '')
            FROM today t LEFT JOIN sitting s ON s.seid = t.seid AND s.day = t.day
            LEFT JOIN emp e ON e.seid = t.seid WHERE t.day >= ?""", [day0]).fetchall():
        peaks[(unit, role, d)].append((seid, int(n)))
        by_role[(role, d)].append((seid, int(n)))
    for seid, d, n, idxs, t, unit, role in rows:
        peers = [m for s, m in peaks[(unit, role, d)] if s != seid]
        group = f"unit {unit} ({role})"
        if len(peers) < MIN_PEERS:
            peers = [m for s, m in by_role[(role, d)] if s != seid]
            group = f"every {role}"
        mid = _median(peers)
        limit = max(float(SWEEP_MIN), SWEEP_FACTOR * mid)
        if n <= limit:
            continue
        key = (seid, d.isoformat())
        out[key].append(Signal("contact_sweep", WEIGHTS["contact_sweep"], {
            "accounts": int(n), "minutes": SITTING_MINUTES, "from": t.isoformat(timespec="minutes"),
            "peer_median": mid, "peer_group": group, "audit_indexes": list(idxs)[:30],
            "why": f"{n} accounts under contacts within {SITTING_MINUTES} minutes; peers in "
                   f"{group} look at {mid:g} or fewer that day (half of them; limit {limit:g})"}))
        idx[key].extend(int(i) for i in idxs)


def _median(values: list[int]) -> float:
    """The peers' median sitting: one or two busy colleagues (a second sweeper the same day)
    do not move it, a whole group working a queue does."""
    return float(statistics.median(values)) if values else 0.0


def _p90(values: list[int]) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return float(v[min(len(v) - 1, max(0, int(0.9 * len(v) + 0.999) - 1))])


def add_declared_contacts(con: Any, day0: date, out: dict[Key, list[Signal]],
                          idx: dict[Key, list[int]]) -> None:
    """Accounts worked under contacts the employee declared, against the peer group's day."""
    rows = con.execute("""
        WITH d AS (
          SELECT a.seid, a.day, count(DISTINCT a.taxpayer) AS n, list(DISTINCT a.idx) AS idxs
          FROM acc a JOIN basis b ON b.kind = 'contact' AND b.basis_id = a.bid
          WHERE a.bkind = 'contact' AND a.outcome = 'allow' AND b.opened_by = a.seid
            AND a.day >= ?
          GROUP BY 1, 2)
        SELECT t.seid, t.day, COALESCE(d.n, 0), d.idxs, COALESCE(e.unit, ''), COALESCE(e.role, '')
        FROM today t LEFT JOIN d ON d.seid = t.seid AND d.day = t.day
        LEFT JOIN emp e ON e.seid = t.seid WHERE t.day >= ?""", [day0, day0]).fetchall()
    peers: dict[tuple[str, str, date], list[tuple[str, int]]] = defaultdict(list)
    by_role: dict[tuple[str, date], list[tuple[str, int]]] = defaultdict(list)
    for seid, d, n, _i, unit, role in rows:
        peers[(unit, role, d)].append((seid, int(n)))
        by_role[(role, d)].append((seid, int(n)))
    for seid, d, n, idxs, unit, role in rows:
        if n <= DECLARED_MIN:
            continue
        group = f"unit {unit} ({role})"
        others = [m for s, m in peers[(unit, role, d)] if s != seid]
        if len(others) < MIN_PEERS:
            others = [m for s, m in by_role[(role, d)] if s != seid]
            group = f"every {role}"
        p90 = _p90(others)
        limit = max(float(DECLARED_MIN), 2.0 * p90)
        if n <= limit:
            continue
        key = (seid, d.isoformat())
        cited = sorted(int(i) for i in idxs or [])
        out[key].append(Signal("declared_contacts", WEIGHTS["declared_contacts"], {
            "accounts": int(n), "peer_p90": p90, "peer_group": group, "audit_indexes": cited[:30],
            "why": f"{n} accounts worked under contacts the employee declared (no intake record); "
                   f"peers in {group} work {p90:g} or fewer so that day (9 in 10 of them; limit {limit:g})"}))
        idx[key].extend(cited[:30])


def add_refused_bases(con: Any, day0: date, out: dict[Key, list[Signal]],
                      idx: dict[Key, list[int]]) -> None:
    """Refused attempts by an employee to open a contact or a case for themself."""
    for i, seid, d, tp, contact, case, reasons in con.execute("""
            SELECT idx, actor, day, taxpayer, contact_id, case_id, reasons FROM ev
            WHERE type = 'access:basis:deny' AND day >= ? AND actor = obj_seid
              AND taxpayer IS NOT NULL
            ORDER BY t, idx""", [day0]).fetchall():
        what = f"contact {contact}" if contact else f"case {case}" if case else "a basis"
        key = (seid, d.isoformat())
        out[key].append(Signal("basis_refused", WEIGHTS["basis_refused"], {
            "audit_index": int(i), "codes": list(reasons or []),
            "why": f"tried to open {what} on this taxpayer for themself and was refused "
                   f"({', '.join(reasons or []) or 'no reason recorded'})"}, tp))
        idx[key].append(int(i))
