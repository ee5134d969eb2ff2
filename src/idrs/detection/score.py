"""Score the employee-days of a run: the per-access signals of
:func:`idrs.detection.signals.access_signals` joined with the master-file facts, the
day-level signals of :mod:`idrs.detection.day_signals`, the adjustment signals and the ties
of :mod:`idrs.detection.relations`; only the days at or above :data:`scoring.THRESHOLD`
are kept. Also the employee-day volumes the volume baseline reads.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from idrs.context import App
from idrs.db import session_scope
from idrs.detection import adjustments, day_signals, relations, scoring
from idrs.detection.bases import insert_rows
from idrs.detection.day_signals import HISTORY_DAYS
from idrs.detection.models import DetectionEmployeeDay
from idrs.detection.signals import (
    WEIGHTS,
    WORK_HOURS,
    Access,
    EmployeeFacts,
    Signal,
    TaxpayerFacts,
    access_signals,
)


def day_volumes(app: App, con: Any, day0: date) -> list[tuple[Any, ...]]:
    """Research calls and distinct taxpayers per employee-day from ``day0`` on (DuckDB table
    ``today``), with the stored history of the ``HISTORY_DAYS`` before (table ``hist``)."""
    con.execute("""
        CREATE OR REPLACE TABLE today AS
        SELECT seid, day, count(*) AS calls, count(DISTINCT taxpayer) AS n FROM acc
        WHERE command <> 'NAMES' AND day >= ? GROUP BY 1, 2""", [day0])
    t = DetectionEmployeeDay
    with session_scope(app.engine) as s:
        old = s.execute(select(t.seid, t.day, t.taxpayers).where(
            t.day >= day0 - timedelta(days=HISTORY_DAYS), t.day < day0)).all()
    con.register("old_in", {"seid": np.array([r[0] for r in old], dtype=object),
                            "day": np.array([r[1].isoformat() for r in old], dtype=object),
                            "n": np.array([r[2] for r in old], dtype=np.int64)})
    con.execute("""
        CREATE OR REPLACE TABLE hist AS
        SELECT h.seid, h.day, h.n, COALESCE(e.role, '') AS role FROM (
          SELECT seid::VARCHAR AS seid, CAST(day AS VARCHAR)::DATE AS day, n FROM old_in
          UNION ALL SELECT seid, day, n FROM today) h LEFT JOIN emp e ON e.seid = h.seid""")
    con.unregister("old_in")
    rows: list[tuple[Any, ...]] = con.execute("SELECT seid, day, calls, n FROM today ORDER BY day, seid").fetchall()
    return rows


def write_volumes(s: Any, day0: date, rows: list[tuple[Any, ...]]) -> None:
    s.execute(delete(DetectionEmployeeDay).where(DetectionEmployeeDay.day >= day0))
    sqlite = s.connection().dialect.name == "sqlite"
    insert_rows(s, DetectionEmployeeDay.__tablename__, ("seid", "day", "calls", "taxpayers"),
                [(seid, d.isoformat() if sqlite else d, int(calls), int(n)) for seid, d, calls, n in rows])


#: score only the employee-days whose upper bound (see :func:`upper_bounds`) reaches the threshold
PREFILTER = True


def score_days(app: App, con: Any, day0: date, tps: dict[str, TaxpayerFacts],
               emps: dict[str, EmployeeFacts], counts: dict[str, int], population: int,
               reported: set[int], size: int | None = None) -> list[scoring.Scored]:
    """Score every employee-day from ``day0`` on; return those at or above the threshold.

    The day-level signals are computed for every day (in DuckDB, a little Python). The
    per-access signals (:func:`signals.access_signals`, in Python) only for the days that can
    reach the threshold: an upper bound of their per-access part, computed in DuckDB, plus
    their day-level part. The signals of each employee-day are listed in the order the
    accesses were made, then repeated refusals, many employees, volume, sequences, names.
    """
    con.execute("""
        CREATE OR REPLACE TABLE cand AS
        SELECT idx, seid, t, day, command, taxpayer, outcome, reasons, bkind, bid, opened_by,
               channel, open_index, idx IN (SELECT idx FROM reported) AS self_reported
        FROM acc2 WHERE command <> 'NAMES' AND outcome IN ('allow', 'deny')""")
    con.execute("""
        CREATE OR REPLACE TABLE quick AS
        SELECT bkind, bid FROM acc2 WHERE outcome = 'allow' AND bkind = 'contact'
        GROUP BY 1, 2 HAVING count(*) <= 3 AND max(t) - min(t) < INTERVAL 3 MINUTE""")
    level: dict[tuple[str, str], list[Signal]] = defaultdict(list)
    level_idx: dict[tuple[str, str], list[int]] = defaultdict(list)
    day_signals.repeated_refusals(con, day0, level)
    day_signals.many_employees(con, day0, level)
    day_signals.volume(con, level)
    day_signals.sequences(con, day0, level)
    day_signals.name_searches(con, day0, level, level_idx)
    adjustments.add_signals(app, day0, size, tps, emps, counts, population, level, level_idx)
    # issue 17.3: ties and the shape of the work on the accesses the work explains too
    facts_tables(con, tps, emps)
    relations.add_ties(con, day0, tps, emps, counts, population, level, level_idx)
    relations.add_contact_sweeps(con, day0, level, level_idx)
    relations.add_declared_contacts(con, day0, level, level_idx)
    relations.add_refused_bases(con, day0, level, level_idx)
    if PREFILTER:
        bound = upper_bounds(con, day0, tps, emps)
        days = {k for k in set(bound) | set(level) if bound.get(k, 0.0) + (
            scoring.score_day(k[0], k[1], level[k], []).score if k in level else 0.0)
            >= scoring.THRESHOLD - 1e-6}
        con.register("days_in", {"seid": np.array([k[0] for k in days], dtype=object),
                                 "day": np.array([k[1] for k in days], dtype=object)})
        con.execute("CREATE OR REPLACE TABLE days AS SELECT seid::VARCHAR AS seid, "
                    "CAST(day AS VARCHAR)::DATE AS day FROM days_in")
        con.unregister("days_in")
        only = "AND EXISTS (SELECT 1 FROM days d WHERE d.seid = c.seid AND d.day = c.day)"
    else:
        days, only = set(), ""
    by_day: dict[tuple[str, str], list[Signal]] = defaultdict(list)
    idx_day: dict[tuple[str, str], list[int]] = defaultdict(list)
    cur = con.execute(f"""
        SELECT c.idx, c.seid, c.t, c.command, c.taxpayer, c.outcome, c.reasons, c.bkind, c.bid,
               c.opened_by, c.channel, c.open_index, c.day, q.bid IS NOT NULL AS quick
        FROM cand c LEFT JOIN quick q ON q.bkind = c.bkind AND q.bid = c.bid
        WHERE c.day >= ? {only} ORDER BY c.t, c.idx""", [day0])  # noqa: S608 - constant
    no_followup = WEIGHTS["no_followup"]
    while True:
        part = cur.fetchmany(100_000)
        if not part:
            break
        for idx, seid, t, cmd, tp, outcome, reasons, bkind, bid, by, ch, oidx, d, quick in part:
            rep = idx in reported
            a = Access(idx, seid, t, cmd, tp, outcome, list(reasons or []), bkind or None, bid, by,
                       ch, oidx, rep)
            sigs = access_signals(a, emps.get(seid), tps.get(tp) if tp else None, counts, population)
            if outcome == "allow" and quick:
                sigs.append(Signal("no_followup", no_followup,
                                   {"audit_index": idx, "basis": f"{bkind}:{bid}"}, tp))
            if sigs:
                key = (seid, d.isoformat())
                by_day[key].extend(sigs)
                idx_day[key].append(idx)
                if oidx is not None and outcome == "allow":
                    idx_day[key].append(int(oidx))
    out = []
    for key in (days if PREFILTER else set(by_day) | set(level)):
        sc = scoring.score_day(key[0], key[1], by_day.get(key, []) + level.get(key, []),
                               idx_day.get(key, []) + level_idx.get(key, []))
        if sc.score >= scoring.THRESHOLD:
            out.append(sc)
    return out


def facts_tables(con: Any, tps: dict[str, TaxpayerFacts], emps: dict[str, EmployeeFacts]) -> None:
    def up(x: str | None) -> str:
        return (x or "").upper()

    t = list(tps.items())
    con.register("tpf_in", {
        "tp": np.array([p for p, _ in t], dtype=object),
        "last": np.array([up(f.last_name) for _, f in t], dtype=object),
        "street": np.array([f.street_key or "" for _, f in t], dtype=object),
        "zip": np.array([f.zip or "" for _, f in t], dtype=object),
        "high": np.array([bool(f.high_profile) for _, f in t], dtype=bool),
        "employee": np.array([bool(f.employee) for _, f in t], dtype=bool),
        "hh": np.array([f.household_key or "" for _, f in t], dtype=object),
        "dw": np.array(["\x1f".join(sorted(f.dwellings)) for _, f in t], dtype=object)})
    e = [f for f in emps.values() if f.last_name or f.street_key or f.zip]
    con.register("empf_in", {
        "seid": np.array([f.seid for f in e], dtype=object),
        "last": np.array([up(f.last_name) for f in e], dtype=object),
        "street": np.array([f.street_key or "" for f in e], dtype=object),
        "zip": np.array([f.zip or "" for f in e], dtype=object),
        "hh": np.array([f.household_key or "" for f in e], dtype=object),
        "dw": np.array(["\x1f".join(sorted(f.dwellings)) for f in e], dtype=object)})
    con.execute("""CREATE OR REPLACE TABLE tpf AS SELECT tp::VARCHAR AS tp, last::VARCHAR AS last,
                   street::VARCHAR AS street, zip::VARCHAR AS zip, high, employee,
                   hh::VARCHAR AS hh, string_split(NULLIF(dw::VARCHAR, ''), chr(31)) AS dw
                   FROM tpf_in""")
    con.execute("""CREATE OR REPLACE TABLE empf AS SELECT seid::VARCHAR AS seid, last::VARCHAR AS last,
                   street::VARCHAR AS street, zip::VARCHAR AS zip, hh::VARCHAR AS hh,
                   string_split(NULLIF(dw::VARCHAR, ''), chr(31)) AS dw FROM empf_in""")
    con.unregister("tpf_in")
    con.unregister("empf_in")


def upper_bounds(con: Any, day0: date, tps: dict[str, TaxpayerFacts],
                 emps: dict[str, EmployeeFacts]) -> dict[tuple[str, str], float]:
    """Per employee-day, an upper bound of the score of its per-access signals.

    Mirrors :func:`signals.access_signals` (and ``no_followup``) loosely enough to be an upper
    bound: every signal it can emit for an access, at its full weight (no self-report or
    surname discount; same street and same ZIP as one "place" signal at the higher weight),
    counted once per (signal, taxpayer) as :func:`scoring.dedupe` does. A signal added to
    ``access_signals`` must be added here (tests/integration/test_detection_incremental.py
    compares the scores with and without this filter)."""
    from idrs.detection.signals import PROTECTED_CODES, RELATIONSHIP_CODES

    facts_tables(con, tps, emps)
    w = WEIGHTS
    place = max(w["same_street"], w["same_zip"])
    rel = "[" + ", ".join(f"'{c}'" for c in sorted(RELATIONSHIP_CODES)) + "]"
    prot = "[" + ", ".join(f"'{c}'" for c in PROTECTED_CODES) + "]"
    rows = con.execute(f"""
        WITH f AS (
          SELECT c.seid, c.day, c.taxpayer AS tp, [
            CASE WHEN c.outcome = 'deny' AND list_has_any(c.reasons, {rel})
                 THEN {{'n': 'refused_conflict', 'w': {w['refused_conflict']}}} END,
            CASE WHEN c.outcome = 'deny' AND list_has_any(c.reasons, {prot})
                 THEN {{'n': 'coworker_account', 'w': {w['coworker_account']}}} END,
            CASE WHEN c.outcome = 'deny' AND list_contains(c.reasons, 'SENSITIVE_ACCOUNT')
                 THEN {{'n': 'refused_sensitive', 'w': {w['refused_sensitive']}}} END,
            CASE WHEN c.outcome = 'deny' AND list_contains(c.reasons, 'RATE_LIMITED')
                 THEN {{'n': 'rate_limited', 'w': {w['rate_limited']}}} END,
            CASE WHEN c.outcome = 'deny' AND list_contains(c.reasons, 'NO_BUSINESS_NEED')
                 THEN {{'n': 'refused_no_need', 'w': {w['refused_no_need']}}} END,
            CASE WHEN c.outcome <> 'deny' AND c.bkind = 'contact' AND c.opened_by = c.seid
                 THEN CASE WHEN c.channel = 'visit'
                           THEN {{'n': 'self_opened_visit', 'w': {w['self_opened_visit']}}}
                           ELSE {{'n': 'contact_without_call', 'w': {w['contact_without_call']}}} END END,
            CASE WHEN c.outcome <> 'deny' AND c.bkind = 'case'
                 THEN {{'n': 'self_assigned_case', 'w': {w['self_assigned_case']}}} END,
            CASE WHEN ef.last <> '' AND ef.last = tf.last
                 THEN {{'n': 'same_surname', 'w': {w['same_surname']}}} END,
            CASE WHEN (ef.street <> '' AND ef.street = tf.street) OR (ef.zip <> '' AND ef.zip = tf.zip)
                 THEN {{'n': 'place', 'w': {place}}} END,
            CASE WHEN ef.seid IS NOT NULL AND tf.high THEN {{'n': 'high_profile', 'w': {w['high_profile']}}} END,
            CASE WHEN ef.seid IS NOT NULL AND tf.employee
                 THEN {{'n': 'target_employee', 'w': {w['target_employee']}}} END,
            CASE WHEN isodow(c.t) >= 6 OR hour(c.t) < {WORK_HOURS[0]} OR hour(c.t) >= {WORK_HOURS[1]}
                 THEN {{'n': 'after_hours', 'w': {w['after_hours']}}} END,
            CASE WHEN c.outcome = 'allow' AND q.bid IS NOT NULL
                 THEN {{'n': 'no_followup', 'w': {w['no_followup']}}} END
          ] AS sigs
          FROM cand c LEFT JOIN quick q ON q.bkind = c.bkind AND q.bid = c.bid
          LEFT JOIN empf ef ON ef.seid = c.seid LEFT JOIN tpf tf ON tf.tp = c.taxpayer
          WHERE c.day >= ?),
        s AS (SELECT seid, day, tp, unnest(sigs) AS s FROM f),
        k AS (SELECT seid, day, s.n, tp, max(s.w) AS w FROM s WHERE s IS NOT NULL GROUP BY 1, 2, 3, 4)
        SELECT seid, day, sum(w) FROM k GROUP BY 1, 2""", [day0]).fetchall()  # noqa: S608 - constants
    return {(seid, d.isoformat()): float(total) for seid, d, total in rows}

