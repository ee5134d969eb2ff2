"""``idrs detect run``: explain every access, score what is left, raise and keep alerts.

Callers: the CLI (``idrs detect run``), the API, the benchmarks. Steps:

1. read the audit entries from the cursor (or from ``since``) to the end into DuckDB
   (:mod:`idrs.detection.logscan`); remember every case and contact opened (who opened it,
   for whom, on which taxpayer) in ``detection_basis``;
2. **explain** each allowed research access: its basis was assigned or routed by someone
   else (case by a manager, contact by the intake systems), or it is the unit's review
   workflow (a manager's review case on a taxpayer a member of the unit has a case on),
   or collaboration (several employees assigned to one taxpayer's cases);
3. **score** the rest and every refused attempt with the signals of
   :mod:`idrs.detection.signals` joined with master-file facts (the employee's own surname,
   street, ZIP, unit; the target's surname, street, markers, whether an employee);
4. one alert per employee-day at or above :data:`scoring.THRESHOLD`; an open alert of the
   same employee-day is updated rather than duplicated;
5. move the cursor past the last entry read; record ``detect:run:complete``.

Nothing here reads return data: only names, addresses and markers, to compare with the
employee's own.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select

from idrs.audit import log as audit_log
from idrs.audit.events import make_event
from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import logscan, scoring
from idrs.detection.events import DetectionEvent
from idrs.detection.models import (
    Alert,
    DetectionBasis,
    DetectionCursor,
    DetectionEmployeeDay,
    DetectionTaxpayerKey,
    SelfReport,
)
from idrs.detection.signals import (
    WEIGHTS,
    Access,
    EmployeeFacts,
    Signal,
    TaxpayerFacts,
    access_signals,
    percentile,
    volume_signal,
)
from idrs.errors import IdrsError
from idrs.masterfile.models import AddressRecord, Marker, Taxpayer
from idrs.people.models import Employee, Unit

_HOUSE_NUMBER = re.compile(r"^\d+[A-Z]?\s+")
SEQUENCE_GAP_SECONDS = 15
SEQUENCE_MIN = 10
MANY_WINDOW = timedelta(hours=6)
MANY_MIN = 3
HISTORY_DAYS = 90


# ---------------------------------------------------------------- master-file facts


def refresh_pseudonyms(app: App) -> int:
    """Compute the pseudonym of every taxpayer not yet mapped (decrypts the TIN once)."""
    with session_scope(app.engine) as s:
        done = s.scalar(select(func.max(DetectionTaxpayerKey.taxpayer_id))) or 0
        rows = s.execute(select(Taxpayer.id, Taxpayer.tin_enc).where(Taxpayer.id > done)
                         .order_by(Taxpayer.id)).all()
        ring = app.keyring
        s.add_all([DetectionTaxpayerKey(taxpayer_id=i,
                                        pseudonym=ring.pseudonym(ring.decrypt(enc, "taxpayer.tin")))
                   for i, enc in rows])
    return len(rows)


def street_name(street_key: str) -> str:
    """The street of a ``street_key`` without the house number ("ELM ST|DAYTON|OH")."""
    return _HOUSE_NUMBER.sub("", street_key or "")


def _latest_addresses(s: Any) -> dict[int, tuple[str, str, str]]:
    out: dict[int, tuple[str, str, str]] = {}
    q = select(AddressRecord.taxpayer_id, AddressRecord.street_key, AddressRecord.zip,
               AddressRecord.norm_key).order_by(AddressRecord.taxpayer_id,
                                                AddressRecord.valid_from, AddressRecord.id)
    for tid, street, zip_code, norm in s.execute(q):
        out[tid] = (street_name(street), (zip_code or "")[:5], norm)
    return out


def master_facts(app: App) -> tuple[dict[str, TaxpayerFacts], dict[str, EmployeeFacts],
                                    dict[str, int], int]:
    """(taxpayer facts by pseudonym, employee facts by SEID, surname counts, population)."""
    refresh_pseudonyms(app)
    with session_scope(app.engine) as s:
        addr = _latest_addresses(s)
        high = {t for (t,) in s.execute(select(Marker.taxpayer_id).where(Marker.marker == "high_profile"))}
        emp_idx = {t for (t,) in s.execute(select(Employee.tin_index).where(Employee.tin_index.is_not(None)))}
        pseud = dict(s.execute(select(DetectionTaxpayerKey.taxpayer_id, DetectionTaxpayerKey.pseudonym)).all())
        by_index: dict[bytes, tuple[str, str, str, str]] = {}
        tps: dict[str, TaxpayerFacts] = {}
        counts: dict[str, int] = defaultdict(int)
        for tid, tin_index, last in s.execute(select(Taxpayer.id, Taxpayer.tin_index, Taxpayer.last_name)):
            street, zip_code, norm = addr.get(tid, ("", "", ""))
            counts[(last or "").upper()] += 1
            p = pseud.get(tid)
            if p is None:
                continue
            tps[p] = TaxpayerFacts(last or "", street, zip_code, norm, tid in high, tin_index in emp_idx)
            by_index[tin_index] = (last or "", street, zip_code, norm)
        emps: dict[str, EmployeeFacts] = {}
        q = select(Employee.seid, Unit.code, Employee.roles, Employee.tin_index).join(
            Unit, Unit.id == Employee.unit_id)
        for seid, unit, roles, tin_index in s.execute(q):
            last, street, zip_code, norm = by_index.get(tin_index, (None, None, None, None)) \
                if tin_index else (None, None, None, None)
            emps[seid] = EmployeeFacts(seid, unit, frozenset(roles.split(",")), last, street,
                                       zip_code, norm)
    return tps, emps, dict(counts), sum(counts.values())


# ---------------------------------------------------------------- the cursor


def _cursor(app: App) -> int:
    with session_scope(app.engine) as s:
        c = s.get(DetectionCursor, 1)
        return c.next_index if c else 0


def _log_size(app: App) -> int:
    with raw(app.engine) as db:
        return int(db.size())


def first_index_at(app: App, since: datetime, size: int) -> int:
    """The first entry whose time is >= ``since`` (binary search; entries are in time order)."""
    lo, hi = 0, size
    with raw(app.engine) as db:
        while lo < hi:
            mid = (lo + hi) // 2
            row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (mid,))
            t = as_utc(datetime.fromisoformat(json.loads(bytes(row[0]))["time"]))
            if t < since:
                lo = mid + 1
            else:
                hi = mid
    return lo


# ---------------------------------------------------------------- the run


def run(app: App, *, since: datetime | None = None, actor: str = "system",
        interface: str = "cli") -> dict[str, Any]:
    """One detection run (see the module docstring). Returns the alerts raised or updated."""
    now = app.clock.now()
    size = _log_size(app)
    cursor = _cursor(app)
    if since is not None:
        since = as_utc(since)
        if since > now:
            raise IdrsError(f"--since {since.isoformat()} is in the future")
        start = first_index_at(app, since, size)
    else:
        start = cursor
    con = logscan.connect()
    read = logscan.load(app, con, start, size)
    new_bases = _store_bases(app, con)
    _load_bases(app, con, read)
    tps, emps, counts, population = master_facts(app)
    _load_employees(con, emps)
    reported = _self_reports(app)
    explained = _explain(con)
    scored = _score(app, con, tps, emps, counts, population, reported)
    alerts = _persist(app, scored)
    with session_scope(app.engine) as s:
        c = s.get(DetectionCursor, 1)
        if c is None:
            c = DetectionCursor(id=1, next_index=0, runs=0, updated_at=now)
            s.add(c)
        c.next_index = max(c.next_index or 0, size)
        c.runs = (c.runs or 0) + 1
        c.updated_at = now
    summary = {"from_index": start, "to_index": size, "entries_read": read,
               "new_bases": new_bases, **explained, "alerts": len(alerts)}
    audit_log.append(app.engine, make_event(
        DetectionEvent.DETECT_RUN_COMPLETE, time=now, actor=actor, outcome="success",  # type: ignore[arg-type]
        interface=interface, obj={"kind": "detection"}, detail=summary))
    con.close()
    return {"alerts": alerts, "summary": summary}


def _store_bases(app: App, con: Any) -> int:
    rows = logscan.rows(con, """
        SELECT CASE WHEN type = 'admin:case:assign' THEN 'case' ELSE 'contact' END,
               COALESCE(case_id, contact_id), obj_seid, taxpayer, actor, COALESCE(channel, ''),
               t, idx
        FROM ev WHERE type IN ('admin:case:assign', 'admin:contact:open')
          AND obj_seid IS NOT NULL AND taxpayer IS NOT NULL""")
    if not rows:
        return 0
    with session_scope(app.engine) as s:
        known = set()
        ids = [r[1] for r in rows]
        for i in range(0, len(ids), 5000):
            known |= set(s.execute(select(DetectionBasis.kind, DetectionBasis.basis_id).where(
                DetectionBasis.basis_id.in_(ids[i:i + 5000]))).all())
        fresh = []
        for r in rows:  # the first opening of an id wins (ids are unique in a sound log)
            if (r[0], r[1]) not in known:
                known.add((r[0], r[1]))
                fresh.append(r)
        s.execute(DetectionBasis.__table__.insert(), [
            {"kind": k, "basis_id": b, "seid": se, "taxpayer": tp, "opened_by": by, "channel": ch,
             "opened_at": t, "open_index": i} for k, b, se, tp, by, ch, t, i in fresh]) if fresh else None
    return len(fresh)


_BASIS_COLS = "kind, basis_id, seid, taxpayer, opened_by, channel, opened_at, open_index"
#: above this many entries in the window every stored basis is loaded at once
SELECTIVE_MAX = 300_000


def _load_bases(app: App, con: Any, window: int) -> None:
    """The bases the window's accesses may need, as DuckDB table ``basis``.

    A large window (a first run) loads them all; an incremental run only those its research
    entries name, those opened in it, and the other cases on the taxpayers it touches.
    """
    sql = f"SELECT {_BASIS_COLS} FROM detection_basis"  # noqa: S608 - constant columns
    rows: list[Any] = []
    with raw(app.engine) as db:
        if window > SELECTIVE_MAX:
            rows = db.execute(sql).fetchall()
        else:
            ids = [r[0] for r in con.execute(
                """SELECT DISTINCT substr(basis, strpos(basis, ':') + 1) FROM ev
                   WHERE basis IS NOT NULL UNION SELECT COALESCE(case_id, contact_id) FROM ev
                   WHERE case_id IS NOT NULL OR contact_id IS NOT NULL""").fetchall()]
            seen: set[tuple[str, str]] = set()

            def fetch(col: str, values: list[str]) -> None:
                for i in range(0, len(values), 500):
                    part = values[i:i + 500]
                    marks = ",".join("?" * len(part))
                    for r in db.execute(f"{sql} WHERE {col} IN ({marks})", tuple(part)).fetchall():  # noqa: S608
                        if (r[0], r[1]) not in seen:
                            seen.add((r[0], r[1]))
                            rows.append(r)

            fetch("basis_id", ids)
            # workflow and collaboration: the other cases on taxpayers of self-assigned cases
            fetch("taxpayer", sorted({r[3] for r in rows if r[0] == "case" and r[4] == r[2]}))
    # columns handed to DuckDB as arrays (row-by-row inserts would cost seconds per 100k)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    names = ("kind", "basis_id", "seid", "taxpayer", "opened_by", "channel", "opened_at", "open_index")
    data = {n: np.array(list(c), dtype=object) for n, c in zip(names, cols, strict=True)}
    data["opened_at"] = np.array(
        [t if isinstance(t, str) else as_utc(t).replace(tzinfo=None).isoformat(sep=" ") for t in cols[6]],
        dtype=object)
    data["open_index"] = np.array(list(cols[7]), dtype=np.int64)
    con.register("basis_in", data)
    con.execute("""CREATE OR REPLACE TABLE basis AS SELECT kind::VARCHAR AS kind,
                   basis_id::VARCHAR AS basis_id, seid::VARCHAR AS seid,
                   taxpayer::VARCHAR AS taxpayer, opened_by::VARCHAR AS opened_by,
                   channel::VARCHAR AS channel, CAST(opened_at AS TIMESTAMP) AS opened_at_naive,
                   open_index::BIGINT AS open_index FROM basis_in""")
    con.execute("""CREATE OR REPLACE TABLE basis AS SELECT * EXCLUDE (opened_at_naive),
                   timezone('UTC', opened_at_naive) AS opened_at FROM basis""")
    con.unregister("basis_in")


def _load_employees(con: Any, emps: dict[str, EmployeeFacts]) -> None:
    con.execute("CREATE OR REPLACE TABLE emp (seid VARCHAR, unit VARCHAR, manager BOOLEAN)")
    if emps:
        con.executemany("INSERT INTO emp VALUES (?, ?, ?)",
                        [(e.seid, e.unit, "manager" in e.roles) for e in emps.values()])


def _self_reports(app: App) -> set[int]:
    with session_scope(app.engine) as s:
        return {i for (i,) in s.execute(select(SelfReport.audit_index))}


def _explain(con: Any) -> dict[str, int]:
    """Build ``acc`` (research entries) with each allowed access's explanation, if any."""
    con.execute("""
        CREATE OR REPLACE TABLE acc AS
        SELECT e.idx, e.actor AS seid, e.t, e.command, e.taxpayer, e.outcome, e.reasons,
               e.matches, split_part(e.basis, ':', 1) AS bkind,
               CASE WHEN e.basis IS NULL THEN NULL ELSE substr(e.basis, strpos(e.basis, ':') + 1) END AS bid
        FROM ev e WHERE e.type = 'access:research:decide' AND e.actor <> 'anonymous'""")
    con.execute("""
        CREATE OR REPLACE TABLE acc2 AS
        SELECT a.*, b.opened_by, b.channel, b.open_index,
          CASE
            WHEN a.outcome <> 'allow' OR a.command = 'NAMES' THEN NULL
            WHEN b.basis_id IS NULL THEN 'unknown_basis'
            WHEN b.opened_by <> a.seid AND a.bkind = 'case' THEN 'case'
            WHEN b.opened_by <> a.seid THEN 'contact'
            WHEN a.bkind = 'case' AND EXISTS (
                 SELECT 1 FROM basis b2 JOIN emp e2 ON e2.seid = b2.seid
                 JOIN emp e1 ON e1.seid = a.seid
                 WHERE b2.kind = 'case' AND b2.taxpayer = a.taxpayer AND b2.seid <> a.seid
                   AND b2.opened_by <> b2.seid AND e2.unit = e1.unit AND e1.manager)
              THEN 'unit_workflow'
            ELSE NULL END AS explained
        FROM acc a LEFT JOIN basis b ON b.kind = a.bkind AND b.basis_id = a.bid""")
    stats = dict(con.execute("""SELECT COALESCE(explained, CASE WHEN outcome = 'allow' AND
                                command = 'NAMES' THEN 'names' WHEN outcome = 'allow'
                                THEN 'unexplained' ELSE 'refused' END), count(*)
                                FROM acc2 GROUP BY 1""").fetchall())
    collab = con.execute("""SELECT count(*) FROM acc2 a WHERE explained = 'case' AND EXISTS (
                              SELECT 1 FROM basis b WHERE b.kind = 'case' AND b.taxpayer = a.taxpayer
                              AND b.seid <> a.seid)""").fetchone()[0]
    return {"accesses": int(sum(stats.values())),
            "explained_case": int(stats.get("case", 0)),
            "explained_contact": int(stats.get("contact", 0)),
            "explained_unit_workflow": int(stats.get("unit_workflow", 0)),
            "explained_collaboration": int(collab),
            "name_searches": int(stats.get("names", 0)),
            "unexplained": int(stats.get("unexplained", 0)),
            "refused": int(stats.get("refused", 0))}


def _score(app: App, con: Any, tps: dict[str, TaxpayerFacts], emps: dict[str, EmployeeFacts],
           counts: dict[str, int], population: int, reported: set[int]) -> list[scoring.Scored]:
    by_day: dict[tuple[str, str], list[Signal]] = defaultdict(list)
    idx_day: dict[tuple[str, str], list[int]] = defaultdict(list)
    cand = con.execute("""
        SELECT idx, seid, t, command, taxpayer, outcome, reasons, bkind, bid, opened_by, channel,
               open_index
        FROM acc2 WHERE command <> 'NAMES' AND (outcome = 'deny' OR (outcome = 'allow' AND explained IS NULL))
        ORDER BY t, idx""").fetchall()
    quick = {(k, b) for k, b in con.execute("""
        SELECT bkind, bid FROM acc2 WHERE explained IS NULL AND outcome = 'allow' AND bkind = 'contact'
        GROUP BY 1, 2 HAVING count(*) <= 3 AND max(t) - min(t) < INTERVAL 3 MINUTE""").fetchall()}
    accesses: list[Access] = []
    for idx, seid, t, cmd, tp, outcome, reasons, bkind, bid, by, ch, oidx in cand:
        a = Access(idx, seid, t, cmd, tp, outcome, list(reasons or []), bkind or None, bid, by, ch,
                   oidx, idx in reported)
        accesses.append(a)
        key = (seid, t.date().isoformat())
        sigs = access_signals(a, emps.get(seid), tps.get(tp) if tp else None, counts, population)
        if outcome == "allow" and (bkind, bid) in quick:
            sigs.append(Signal("no_followup", WEIGHTS["no_followup"] * (0.2 if a.self_reported else 1),
                               {"audit_index": idx, "basis": f"{bkind}:{bid}"}, tp))
        if sigs:
            by_day[key].extend(sigs)
            idx_day[key].append(idx)
            if oidx is not None and outcome == "allow":
                idx_day[key].append(int(oidx))
    _repeated(accesses, by_day)
    _many_employees(accesses, by_day)
    _day_level(app, con, emps, by_day, idx_day, accesses)
    out = []
    for key, sigs in by_day.items():
        sc = scoring.score_day(key[0], key[1], sigs, idx_day.get(key, []))
        if sc.score >= scoring.THRESHOLD:
            out.append(sc)
    return out


def _repeated(accesses: list[Access], by_day: dict[tuple[str, str], list[Signal]]) -> None:
    refusals: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for a in accesses:
        if a.outcome == "deny" and a.taxpayer and not a.self_reported:
            refusals[(a.seid, a.t.date().isoformat(), a.taxpayer)].append(a.idx)
    for (seid, day, tp), idxs in refusals.items():
        if len(idxs) >= 3:
            by_day[(seid, day)].append(Signal("repeated_refusals", WEIGHTS["repeated_refusals"],
                                              {"refusals": len(idxs), "audit_indexes": idxs[:20]}, tp))


def _many_employees(accesses: list[Access], by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Three or more employees on one taxpayer within six hours, unexplained (linear time)."""
    on: dict[str, list[Access]] = defaultdict(list)
    for a in accesses:
        if a.taxpayer and not a.self_reported:
            on[a.taxpayer].append(a)
    for tp, items in on.items():
        if len({a.seid for a in items}) < MANY_MIN:
            continue
        items.sort(key=lambda a: a.t)
        seen: Counter[str] = Counter()
        lo = 0
        marked = -1
        crowd: dict[int, int] = {}
        for hi, cur in enumerate(items):
            seen[cur.seid] += 1
            while cur.t - items[lo].t > MANY_WINDOW:
                seen[items[lo].seid] -= 1
                if seen[items[lo].seid] == 0:
                    del seen[items[lo].seid]
                lo += 1
            if len(seen) >= MANY_MIN:
                for k in range(max(lo, marked + 1), hi + 1):
                    crowd[k] = len(seen)
                marked = hi
        done: set[str] = set()
        for k, n in crowd.items():
            a = items[k]
            if a.seid in done:
                continue
            done.add(a.seid)
            by_day[(a.seid, a.t.date().isoformat())].append(Signal(
                "many_employees", WEIGHTS["many_employees"],
                {"audit_index": a.idx, "employees_within_6h": n}, tp))


def _day_level(app: App, con: Any, emps: dict[str, EmployeeFacts],
               by_day: dict[tuple[str, str], list[Signal]], idx_day: dict[tuple[str, str], list[int]],
               accesses: list[Access]) -> None:
    # volume: distinct taxpayers per employee-day against history and peers
    today = con.execute("""SELECT seid, CAST(t AS DATE) AS d, count(*), count(DISTINCT taxpayer)
                           FROM acc WHERE command <> 'NAMES' GROUP BY 1, 2""").fetchall()
    with session_scope(app.engine) as s:
        # the baseline: the last HISTORY_DAYS days before the window (and the window itself)
        since = min((d for _, d, _, _ in today), default=date.max) - timedelta(days=HISTORY_DAYS)
        hist_rows = s.connection().execute(
            select(DetectionEmployeeDay.seid, DetectionEmployeeDay.day, DetectionEmployeeDay.calls,
                   DetectionEmployeeDay.taxpayers).where(DetectionEmployeeDay.day >= since)).all()
        hist: dict[tuple[str, date], tuple[int, int]] = {(r[0], r[1]): (r[2], r[3]) for r in hist_rows}
        fresh: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for seid, d, calls, n in today:
            old = hist.get((seid, d))
            if old is None:
                fresh.append({"seid": seid, "day": d, "calls": calls, "taxpayers": n})
                hist[(seid, d)] = (calls, n)
            else:
                # an incremental run adds to the day it continues (distinct counts: an upper bound)
                hist[(seid, d)] = (old[0] + calls, old[1] + n)
                changed.append({"k_seid": seid, "k_day": d, "calls": old[0] + calls,
                                "taxpayers": old[1] + n})
        table = DetectionEmployeeDay.__table__
        if fresh:
            s.execute(table.insert(), fresh)
        if changed:
            s.execute(table.update().where(table.c.seid == bindparam("k_seid"),
                                           table.c.day == bindparam("k_day"))
                      .values(calls=bindparam("calls"), taxpayers=bindparam("taxpayers")), changed)
    per_emp: dict[str, list[int]] = defaultdict(list)
    per_role: dict[str, list[int]] = defaultdict(list)
    for (seid, _), (_, n) in hist.items():
        per_emp[seid].append(n)
        e = emps.get(seid)
        per_role[min(e.roles) if e and e.roles else ""].append(n)
    p99 = {role: percentile(v, 0.99) for role, v in per_role.items()}
    for seid, d, _, n in today:
        e = emps.get(seid)
        sig = volume_signal(n, per_emp.get(seid, []), p99.get(min(e.roles) if e and e.roles else "", 0.0))
        if sig is not None:
            by_day[(seid, d.isoformat())].append(sig)
    # sequences: many accounts, seconds apart
    for seid, d, n, first, last in con.execute(f"""
            SELECT seid, CAST(t AS DATE), count(*), min(idx), max(idx) FROM (
              SELECT seid, t, idx, taxpayer,
                     t - lag(t) OVER (PARTITION BY seid ORDER BY t, idx) AS gap,
                     lag(taxpayer) OVER (PARTITION BY seid ORDER BY t, idx) AS prev
              FROM acc WHERE command <> 'NAMES')
            WHERE gap < INTERVAL {SEQUENCE_GAP_SECONDS} SECOND AND taxpayer IS DISTINCT FROM prev
            GROUP BY 1, 2 HAVING count(*) >= {SEQUENCE_MIN}""").fetchall():  # noqa: S608
        by_day[(seid, d.isoformat())].append(Signal(
            "sequence", WEIGHTS["sequence"], {"quick_accounts": int(n), "from_index": int(first),
                                              "to_index": int(last)}))
    _names(con, by_day, idx_day, accesses)


def _names(con: Any, by_day: dict[tuple[str, str], list[Signal]],
           idx_day: dict[tuple[str, str], list[int]], accesses: list[Access]) -> None:
    rows = con.execute("""
        WITH nm AS (SELECT idx, seid, t, unnest(matches) AS m FROM acc
                    WHERE command = 'NAMES' AND outcome = 'allow')
        SELECT nm.idx, nm.seid, nm.t, bool_or(b.basis_id IS NOT NULL), list(DISTINCT nm.m)
        FROM nm LEFT JOIN basis b ON b.seid = nm.seid AND b.taxpayer = nm.m
             AND b.opened_at BETWEEN nm.t - INTERVAL 1 MINUTE AND nm.t + INTERVAL 20 MINUTE
        GROUP BY 1, 2, 3""").fetchall()
    later: dict[str, list[Access]] = defaultdict(list)
    for a in accesses:
        later[a.seid].append(a)
    for idx, seid, t, followed, matches in rows:
        if followed:
            continue
        key = (seid, t.date().isoformat())
        by_day[key].append(Signal("name_search_no_followup", WEIGHTS["name_search_no_followup"],
                                  {"audit_index": idx, "matches": len(matches)}))
        idx_day[key].append(idx)
        ms = set(matches)
        hits = [a.idx for a in later.get(seid, [])
                if a.taxpayer in ms and timedelta(0) <= a.t - t <= timedelta(hours=1)]
        if hits:
            by_day[key].append(Signal("sweep", WEIGHTS["sweep"],
                                      {"audit_index": idx, "looked_at_matches": hits[:20]}))


def _persist(app: App, scored: list[scoring.Scored]) -> list[dict[str, Any]]:
    """Create or update one alert per employee-day; return them as the contract's JSON."""
    now = app.clock.now()
    out = []
    with session_scope(app.engine) as s:
        units = dict(s.execute(select(Employee.seid, Unit.code).join(Unit, Unit.id == Employee.unit_id)).all())
        n = s.scalar(select(func.max(Alert.id))) or 0
        days = sorted({date.fromisoformat(sc.day) for sc in scored})
        current: dict[tuple[str, date], Alert] = {}
        for i in range(0, len(days), 500):
            for al in s.scalars(select(Alert).where(Alert.day.in_(days[i:i + 500]),
                                                    Alert.state.in_(("open", "assigned")))):
                current[(al.seid, al.day)] = al
        for sc in scored:
            day = date.fromisoformat(sc.day)
            alert = current.get((sc.seid, day))
            signals = [{**sig.as_dict(), "taxpayer": sig.taxpayer} for sig in sc.signals]
            if alert is None:
                n += 1
                alert = Alert(alert_id=f"A{n:06d}", seid=sc.seid, unit=units.get(sc.seid, ""), day=day,
                              score=round(sc.score, 2), category=sc.category,
                              signals=json.dumps(signals), audit_indexes=json.dumps(sc.audit_indexes),
                              taxpayers=json.dumps(sc.taxpayers), state="open",
                              self_reported=sc.self_reported, created_at=now, updated_at=now)
                s.add(alert)
                current[(sc.seid, day)] = alert
            else:
                _merge(alert, sc, signals, now)
            out.append({"alert_id": alert.alert_id, "seid": alert.seid, "score": alert.score,
                        "category": alert.category, "day": sc.day,
                        "signals": json.loads(alert.signals),
                        "audit_indexes": json.loads(alert.audit_indexes), "state": alert.state})
    return out


def _merge(alert: Alert, sc: scoring.Scored, signals: list[dict[str, Any]], now: datetime) -> None:
    old = json.loads(alert.signals)
    merged = {(d["name"], d.get("taxpayer"), json.dumps(d["evidence"], sort_keys=True)): d
              for d in old + signals}
    items = list(merged.values())
    best: dict[tuple[str, Any], float] = {}
    for d in items:
        k = (d["name"], d.get("taxpayer"))
        best[k] = max(best.get(k, 0.0), float(d["weight"]))
    alert.signals = json.dumps(sorted(items, key=lambda d: -float(d["weight"])))
    alert.score = round(sum(best.values()), 2)
    alert.audit_indexes = json.dumps(sorted(set(json.loads(alert.audit_indexes)) | set(sc.audit_indexes)))
    alert.taxpayers = json.dumps(sorted(set(json.loads(alert.taxpayers)) | set(sc.taxpayers)))
    alert.self_reported = alert.self_reported or sc.self_reported
    alert.updated_at = now
