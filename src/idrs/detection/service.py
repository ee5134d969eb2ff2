"""``idrs detect run``: explain every access, score what is left, raise and keep alerts.

Callers: the CLI (``idrs detect run``), the API, the benchmarks. Steps:

1. read the audit entries from the cursor (or from ``since``) to the end into DuckDB
   (:mod:`idrs.detection.logscan`), together with the *context* the last days need (see
   "Incremental runs" below); remember every case and contact opened (who opened it, for
   whom, on which taxpayer) in ``detection_basis``;
2. **explain** each allowed research access: its basis was assigned or routed by someone
   else (case by a manager, contact by the intake systems), or it is the unit's review
   workflow (a manager's review case on a taxpayer a member of the unit already has a case
   on), or collaboration (several employees assigned to one taxpayer's cases);
3. **score** the rest and every refused attempt with the signals of
   :mod:`idrs.detection.signals` joined with master-file facts (the employee's own surname,
   street, ZIP, unit; the target's surname, street, markers, whether an employee);
   3a. on every access, explained or not, the ties and the shape of the work of
   :mod:`idrs.detection.relations` (issue 17: an explained access is not a cleared one);
4. one alert per employee-day at or above :data:`scoring.THRESHOLD`;
5. move the cursor past the last entry read; record ``detect:run:complete``.

Incremental runs give the alerts a full run over the same entries gives. A day's signals
look at most :data:`HORIZON` (six hours: many employees on one account) past the day's end,
at the whole day (volume, repeated refusals), at every use of a self-opened contact (quick
look without follow-up) and at self-reports made up to a day later. So a run *recomputes*
every employee-day from ``R``: the day of (first new entry - HORIZON), moved earlier to the
day a self-opened contact used since then was opened and to the day of an access
self-reported since (at most :data:`CONTEXT_MAX_DAYS` earlier: a contact used again after
longer is judged on its uses in those days, and the summary says ``context_capped``). It
re-reads the entries from ``R - HORIZON`` (context for the six-hour window and the
sequences) and replaces what it knew of those days: the employee-day volumes, and the
*open* alerts. An open alert the complete days no longer support is withdrawn (dismissed,
with :data:`WITHDRAWN` as the reason) and reopened if its day scores again; an assigned
alert only gains evidence; a dismissed or referred one stays closed, and a new alert is
raised only for signals it did not hold. The volume baseline is causal: the employee's own
days in the ``HISTORY_DAYS`` before the day, and the other employees of the role in those
days and that day. Days before ``R`` are final.

Nothing here reads return data: only names, addresses and markers, to compare with the
employee's own.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased

from idrs.analytics import engines
from idrs.audit import log as audit_log
from idrs.audit.events import make_event
from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import adjustments, explain, logscan, relations, scoring
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
    VOLUME_MIN,
    WEIGHTS,
    WORK_HOURS,
    Access,
    EmployeeFacts,
    Signal,
    TaxpayerFacts,
    access_signals,
    volume_signal,
)
from idrs.errors import IdrsError
from idrs.masterfile import reads
from idrs.masterfile.models import AddressRecord, Marker, Taxpayer
from idrs.people.models import Employee, Unit
from idrs.people.roles import UNIT_MANAGERS

_HOUSE_NUMBER = re.compile(r"^[0-9]+[A-Z]?\s+")
SEQUENCE_GAP_SECONDS = 15
SEQUENCE_MIN = 10
#: how many matches NAMES answers at most (masterfile.commands.names' limit)
NAMES_LIMIT = 25
MANY_WINDOW = timedelta(hours=6)
MANY_MIN = 3
HISTORY_DAYS = 90
#: the farthest a day's signals look past the day's end (many employees within six hours)
HORIZON = MANY_WINDOW
#: the farthest back a self-opened contact used again, or a self-report, moves the days a run
#: recomputes (a contact reopened after longer is judged on its uses in these days)
CONTEXT_MAX_DAYS = 7
#: above this many entries in the window every stored basis opened before it is loaded at once
SELECTIVE_MAX = 300_000
_IN = 500  # values per IN (...) list
WITHDRAWN = "withdrawn by detection: the complete day no longer scores at the threshold"


# ---------------------------------------------------------------- master-file facts


def refresh_pseudonyms(app: App) -> int:
    """Compute the pseudonym of every taxpayer not yet mapped (decrypts the TIN once)."""
    with session_scope(app.engine) as s:
        done = s.scalar(select(func.max(DetectionTaxpayerKey.taxpayer_id))) or 0
        rows = reads.pseudonyms_after(s, app.keyring, done)
        s.add_all([DetectionTaxpayerKey(taxpayer_id=i, pseudonym=p) for i, p in rows])
    return len(rows)


def house_number(street_key: str) -> int | None:
    """The house number a ``street_key`` starts with, if any."""
    m = re.match(r"^([0-9]+)", street_key or "")
    return int(m.group(1)) if m else None


def street_name(street_key: str) -> str:
    """The street of a ``street_key`` without the house number ("ELM ST|DAYTON|OH")."""
    return _HOUSE_NUMBER.sub("", street_key or "")


def _chunks(values: list[Any], n: int = _IN) -> list[list[Any]]:
    return [values[i:i + n] for i in range(0, len(values), n)]


def _latest_addresses(s: Any, tids: list[int] | None = None,
                      history: dict[int, set[str]] | None = None,
                      houses: dict[int, int | None] | None = None) -> dict[int, tuple[str, str, str]]:
    """The latest address of each taxpayer; every dwelling each was recorded at goes to
    ``history`` (when given)."""
    out: dict[int, tuple[str, str, str]] = {}
    q = select(AddressRecord.taxpayer_id, AddressRecord.street_key, AddressRecord.zip,
               AddressRecord.norm_key).order_by(AddressRecord.taxpayer_id,
                                                AddressRecord.valid_from, AddressRecord.id)
    parts = [q] if tids is None else [q.where(AddressRecord.taxpayer_id.in_(c)) for c in _chunks(tids)]
    for part in parts:
        for tid, street, zip_code, norm in s.execute(part):
            out[tid] = (street_name(street), (zip_code or "")[:5], norm)
            if houses is not None:
                houses[tid] = house_number(street)
            if history is not None and norm:
                history.setdefault(tid, set()).add(norm)
    return out


def _household_namesakes(s: Any, homes: dict[str, str]) -> dict[tuple[str, str], set[int]]:
    """Per (dwelling, surname) of the employees' homes: the taxpayers recorded at that
    dwelling who carry that surname (the employee's household)."""
    out: dict[tuple[str, str], set[int]] = defaultdict(set)
    keys = sorted(k for k in homes if k)
    for part in _chunks(keys):
        rows = s.execute(select(AddressRecord.taxpayer_id, AddressRecord.norm_key, Taxpayer.last_name)
                         .join(Taxpayer, Taxpayer.id == AddressRecord.taxpayer_id)
                         .where(AddressRecord.norm_key.in_(part))).all()
        for tid, norm, last in rows:
            if (last or "").upper() == (homes.get(norm) or "").upper():
                out[(norm, (last or "").upper())].add(int(tid))
    return dict(out)


def _linked_namesakes(s: Any) -> dict[str, set[int]]:
    """Per SEID: the taxpayers the conflict index links to the employee (spouse, dependents,
    declared relatives...) who carry the employee's surname."""
    from idrs.access.models import ConflictEntry

    own = aliased(Taxpayer)
    rows = s.execute(select(Employee.seid, Taxpayer.id)
                     .join(ConflictEntry, ConflictEntry.employee_id == Employee.id)
                     .join(Taxpayer, Taxpayer.tin_index == ConflictEntry.tin_index)
                     .join(own, own.tin_index == Employee.tin_index)
                     .where(func.upper(Taxpayer.last_name) == func.upper(own.last_name))).all()
    out: dict[str, set[int]] = defaultdict(set)
    for seid, tid in rows:
        out[seid].add(int(tid))
    return dict(out)


def master_facts(app: App, wanted: set[str] | None = None) -> tuple[
        dict[str, TaxpayerFacts], dict[str, EmployeeFacts], dict[str, int], int]:
    """(taxpayer facts by pseudonym, employee facts by SEID, surname counts, population).

    ``wanted``: only these taxpayers' facts (every taxpayer when None); the surname counts
    and the employees' own records always cover the whole master file.
    """
    refresh_pseudonyms(app)
    with session_scope(app.engine) as s:
        counts: dict[str, int] = defaultdict(int)
        for last, n in s.execute(select(Taxpayer.last_name, func.count()).group_by(Taxpayer.last_name)):
            counts[(last or "").upper()] += int(n)
        high = {t for (t,) in s.execute(select(Marker.taxpayer_id).where(Marker.marker == "high_profile"))}
        emp_idx = {t for (t,) in s.execute(select(Employee.tin_index).where(Employee.tin_index.is_not(None)))}
        tq = select(Taxpayer.id, Taxpayer.tin_index, Taxpayer.last_name)
        dwell: dict[int, set[str]] = {}
        house: dict[int, int | None] = {}
        if wanted is None:
            pseud = dict(s.execute(select(DetectionTaxpayerKey.taxpayer_id, DetectionTaxpayerKey.pseudonym)).all())
            tp_rows = s.execute(tq).all()
            addr = _latest_addresses(s, history=dwell, houses=house)
        else:
            pseud = {}
            for c in _chunks(sorted(wanted)):
                pseud.update(s.execute(select(DetectionTaxpayerKey.taxpayer_id, DetectionTaxpayerKey.pseudonym)
                                       .where(DetectionTaxpayerKey.pseudonym.in_(c))).all())
            found: dict[int, Any] = {}
            for c in _chunks(sorted(pseud)):
                found.update((r[0], r) for r in s.execute(tq.where(Taxpayer.id.in_(c))))
            for c in _chunks(sorted(emp_idx)):
                found.update((r[0], r) for r in s.execute(tq.where(Taxpayer.tin_index.in_(c))))
            tp_rows = list(found.values())
            addr = _latest_addresses(s, sorted(found), history=dwell, houses=house)
        by_index: dict[bytes, tuple[str, str, str, str]] = {}
        dwell_of: dict[bytes, frozenset[str]] = {}
        house_of: dict[bytes, int | None] = {}
        tps: dict[str, TaxpayerFacts] = {}
        for tid, tin_index, last in tp_rows:
            street, zip_code, norm = addr.get(tid, ("", "", ""))
            by_index[tin_index] = (last or "", street, zip_code, norm)
            dwell_of[tin_index] = frozenset(dwell.get(tid, ()))
            house_of[tin_index] = house.get(tid)
            p = pseud.get(tid)
            if p is not None:
                tps[p] = TaxpayerFacts(last or "", street, zip_code, norm, tid in high,
                                       tin_index in emp_idx, dwell_of[tin_index], house.get(tid))
        namesakes = _household_namesakes(s, {v[3]: v[0] for k, v in by_index.items() if k in emp_idx})
        linked = _linked_namesakes(s)
        emps: dict[str, EmployeeFacts] = {}
        q = select(Employee.seid, Unit.code, Employee.roles, Employee.tin_index).join(
            Unit, Unit.id == Employee.unit_id)
        nothing: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)
        for seid, unit, roles, own_index in s.execute(q):
            own = by_index.get(own_index, nothing) if own_index else nothing
            emps[seid] = EmployeeFacts(seid, unit, frozenset(roles.split(",")), *own,
                                       dwellings=dwell_of.get(own_index, frozenset()) if own_index else frozenset(),
                                       house=house_of.get(own_index) if own_index else None,
                                       household_namesakes=len(
                                           namesakes.get((own[3] or "", (own[0] or "").upper()), set())
                                           | linked.get(seid, set())))
    return tps, emps, dict(counts), sum(counts.values())


# ---------------------------------------------------------------- the cursor and the log


def _cursor(app: App) -> int:
    with session_scope(app.engine) as s:
        c = s.get(DetectionCursor, 1)
        return c.next_index if c else 0


def _log_size(app: App) -> int:
    with raw(app.engine) as db:
        return int(db.size())


def _time_of(db: Any, idx: int) -> datetime:
    row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (idx,))
    return as_utc(datetime.fromisoformat(json.loads(bytes(row[0]))["time"]))


def first_index_at(app: App, since: datetime, size: int) -> int:
    """The first entry whose time is >= ``since`` (binary search; entries are in time order)."""
    lo, hi = 0, size
    with raw(app.read_engine) as db:
        while lo < hi:
            mid = (lo + hi) // 2
            if _time_of(db, mid) < since:
                lo = mid + 1
            else:
                hi = mid
    return lo


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


# ---------------------------------------------------------------- the run


def run(app: App, *, since: datetime | None = None, to_index: int | None = None,
        actor: str = "system", interface: str = "cli", engine: str | None = None) -> dict[str, Any]:
    """One detection run (see the module docstring). Returns the alerts raised or changed.

    ``to_index``: analyse the entries before this index only (default: the whole log).
    ``engine``: where the queries run, ``duckdb`` (default) or ``spark`` (the same queries,
    transpiled: :mod:`idrs.analytics.engines`)."""
    engine = engines.check_engine(engine)
    now = app.clock.now()
    size = _log_size(app)
    app.await_replica()  # the log is read from app.read_engine: up to ``size`` at least
    if to_index is not None:
        if to_index < 0:
            raise IdrsError(f"to_index must not be negative (got {to_index})")
        size = min(size, to_index)
    cursor = _cursor(app)
    if since is not None:
        since = as_utc(since)
        if since > now:
            raise IdrsError(f"--since {since.isoformat()} is in the future")
        start = first_index_at(app, since, size)
    else:
        start = cursor
    con = logscan.connect(engine)
    try:
        if start < size:
            summary, writes = _analyse(app, con, start, size, cursor)
        else:
            summary, writes = _nothing_new(start, size)
    finally:
        con.close()
    # one transaction (on SQLite it holds the write lock from the start): a concurrent run
    # waits, then finds the alerts this one raised
    with session_scope(app.engine) as s:
        alerts, withdrawn = writes(s, now)
        c = s.get(DetectionCursor, 1)
        if c is None:
            c = DetectionCursor(id=1, next_index=0, runs=0, updated_at=now)
            s.add(c)
        c.next_index = max(c.next_index or 0, size)
        c.runs = (c.runs or 0) + 1
        c.updated_at = now
    out = _as_json(alerts)
    summary = {**summary, "alerts": len(out), "alerts_withdrawn": len(withdrawn)}
    detail = {**summary, "withdrawn": withdrawn} if withdrawn else summary
    audit_log.append(app.engine, make_event(
        DetectionEvent.DETECT_RUN_COMPLETE, time=now, actor=actor, outcome="success",
        interface=interface, obj={"kind": "detection"}, detail=detail))
    return {"alerts": out, "summary": summary}


_ZERO = {"accesses": 0, "explained_case": 0, "explained_contact": 0, "explained_walk_in": 0,
         "explained_unit_workflow": 0,
         "explained_collaboration": 0, "name_searches": 0, "unexplained": 0, "refused": 0}


def _nothing_new(start: int, size: int) -> tuple[dict[str, Any], Any]:
    return ({"from_index": start, "to_index": size, "entries_read": 0, "context_from_index": start,
             "context_entries": 0, "recomputed_from_day": None, "context_capped": False,
             "new_bases": 0, **_ZERO},
            lambda s, now: ([], []))


def _analyse(app: App, con: Any, start: int, size: int, cursor: int) -> tuple[dict[str, Any], Any]:
    """Read, explain and score; return (summary, the writes to make: a function of the
    session and the time that returns the alerts created or changed and the ids withdrawn)."""
    with raw(app.read_engine) as db:
        first_new = _time_of(db, start)
    day0 = (first_new - HORIZON).date()
    read_from = min(first_index_at(app, _midnight(day0) - HORIZON, size), start)
    read = logscan.load(app, con, read_from, size)
    # The log is in time order only nearly: a simulated month recorded after a real `idrs
    # init`, or a clock stepped back, puts later indexes at earlier times. Start from the
    # earliest of the new entries, not from the first one.
    earliest = con.execute("SELECT min(t) FROM ev WHERE idx >= ?", [start]).fetchall()[0][0]
    if earliest is not None and (earliest.astimezone(UTC) - HORIZON).date() < day0:
        day0 = (earliest.astimezone(UTC) - HORIZON).date()
        new_from = min(first_index_at(app, _midnight(day0) - HORIZON, size), read_from)
        if new_from < read_from:
            read += logscan.load(app, con, new_from, read_from, append=True)
            read_from = new_from
    floor = day0 - timedelta(days=CONTEXT_MAX_DAYS)
    reported = _self_reports(app)
    _load_reported(con, reported)
    capped = False
    while True:
        _bases(app, con, read_from, size - read_from)
        earlier = _earliest_dependent_day(app, con, start, day0, read_from)
        if earlier is not None and earlier < floor:
            earlier, capped = floor, True
        if earlier is None or earlier >= day0:
            break
        day0 = earlier
        new_from = first_index_at(app, _midnight(day0) - HORIZON, size)
        if new_from < read_from:
            read += logscan.load(app, con, new_from, read_from, append=True)
            read_from = new_from
    new_bases = _new_bases(con, cursor)
    wanted = {r[0] for r in con.execute(
        "SELECT DISTINCT taxpayer FROM ev WHERE type = 'access:research:decide' AND taxpayer IS NOT NULL "
        "AND t >= ?", [_midnight(day0)]).fetchall()}
    tps, emps, counts, population = master_facts(app, wanted)
    _load_employees(con, emps)
    explained = _explain(con, start)
    volumes = _volumes(app, con, day0)
    scored = _score(app, con, day0, tps, emps, counts, population, reported, size)

    def writes(s: Any, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        _write_bases(s, new_bases)
        _write_volumes(s, day0, volumes)
        return _reconcile(s, now, scored, day0, read_from)

    summary = {"from_index": start, "to_index": size, "entries_read": size - start,
               "context_from_index": read_from, "context_entries": read - (size - start),
               "recomputed_from_day": day0.isoformat(), "context_capped": capped,
               "new_bases": len(new_bases), **explained}
    return summary, writes


def _self_reports(app: App) -> set[int]:
    with session_scope(app.engine) as s:
        return {i for (i,) in s.execute(select(SelfReport.audit_index))}


def _load_reported(con: Any, reported: set[int]) -> None:
    con.register("reported_in", {"idx": np.array(sorted(reported), dtype=np.int64)})
    con.execute("CREATE OR REPLACE TABLE reported AS SELECT idx FROM reported_in")
    con.unregister("reported_in")


def _earliest_dependent_day(app: App, con: Any, start: int, day0: date, read_from: int) -> date | None:
    """The earliest day whose signals the entries from ``start`` on can change, beyond the
    horizon: the day an access self-reported since was made, and the day a contact used
    since ``day0`` by the employee who opened it (or by a name search) was opened."""
    days: list[date] = []
    targets = [int(r[0]) for r in con.execute(
        "SELECT DISTINCT obj_index FROM ev WHERE type = 'access:research:self-report' AND idx >= ? "
        "AND outcome = 'success' AND obj_index IS NOT NULL", [start]).fetchall()]
    inside = dict(con.execute("SELECT idx, CAST(t AS DATE) FROM ev WHERE idx IN (SELECT unnest(?))",
                              [targets]).fetchall()) if targets else {}
    outside = [i for i in targets if i not in inside and 0 <= i < read_from]
    if outside:
        with raw(app.read_engine) as db:
            days += [_time_of(db, i).date() for i in outside]
    days += list(inside.values())
    row = con.execute("""
        SELECT min(b.opened_at) FROM ev e JOIN basis b ON b.kind = 'contact'
          AND b.basis_id = e.bid
        WHERE e.type = 'access:research:decide' AND e.outcome = 'allow' AND e.t >= ?
          AND e.basis LIKE 'contact:%' AND b.opened_at < ?
          AND (b.opened_by = e.actor OR e.command = 'NAMES')""",
                      [_midnight(day0), _midnight(day0)]).fetchone()
    if row and row[0] is not None:
        days.append(row[0].astimezone(UTC).date())
    return min(days) if days else None


# ---------------------------------------------------------------- bases


_BASIS_NAMES = ("kind", "basis_id", "seid", "taxpayer", "opened_by", "channel", "opened_at", "open_index")
_BASIS_COLS = ", ".join(_BASIS_NAMES)


def _bases(app: App, con: Any, read_from: int, window: int) -> None:
    """DuckDB table ``basis``: every basis the window's accesses may need, one row per id.

    The window's own openings (the first of an id wins), and the stored bases opened before
    the window: all of them for a large window, otherwise only those its entries name and the
    other cases on the taxpayers of its case accesses (the unit's review workflow).
    """
    con.execute("""
        CREATE OR REPLACE TABLE opens AS
        SELECT kind, basis_id, o.seid, o.taxpayer, o.opened_by, o.channel, o.opened_at, o.open_index
        FROM (SELECT CASE WHEN type = 'admin:case:assign' THEN 'case' ELSE 'contact' END AS kind,
                     COALESCE(case_id, contact_id) AS basis_id,
                     arg_min({'seid': obj_seid, 'taxpayer': taxpayer, 'opened_by': actor,
                              'channel': COALESCE(channel, ''), 'opened_at': t, 'open_index': idx},
                             idx) AS o
              FROM ev WHERE type IN ('admin:case:assign', 'admin:contact:open')
                AND obj_seid IS NOT NULL AND taxpayer IS NOT NULL
                AND COALESCE(case_id, contact_id) IS NOT NULL
              GROUP BY 1, 2)""")
    rows: list[Any] = []
    if read_from > 0:
        sql = f"SELECT {_BASIS_COLS} FROM detection_basis WHERE open_index < ?"  # noqa: S608 - constant
        with raw(app.engine) as db:
            if window > SELECTIVE_MAX:
                rows = db.execute(sql, (read_from,)).fetchall()
            else:
                ids = [r[0] for r in con.execute(
                    """SELECT DISTINCT bid FROM ev
                       WHERE basis IS NOT NULL AND type = 'access:research:decide'
                       UNION SELECT basis_id FROM opens""").fetchall()]
                tps = [r[0] for r in con.execute(
                    """SELECT DISTINCT taxpayer FROM ev WHERE type = 'access:research:decide'
                       AND basis LIKE 'case:%' AND taxpayer IS NOT NULL""").fetchall()]
                seen: set[tuple[str, str]] = set()
                for col, values, extra in (("basis_id", ids, ""), ("taxpayer", tps, " AND kind = 'case'")):
                    for part in _chunks(values):
                        marks = ",".join("?" * len(part))
                        for r in db.execute(f"{sql}{extra} AND {col} IN ({marks})",  # noqa: S608
                                            (read_from, *part)).fetchall():
                            if (r[0], r[1]) not in seen:
                                seen.add((r[0], r[1]))
                                rows.append(r)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    data = {n: np.array(list(c), dtype=object) for n, c in zip(_BASIS_NAMES, cols, strict=True)}
    data["opened_at"] = np.array(
        [t if isinstance(t, str) else as_utc(t).replace(tzinfo=None).isoformat(sep=" ") for t in cols[6]],
        dtype=object)
    data["open_index"] = np.array(list(cols[7]), dtype=np.int64)
    con.register("basis_in", data)
    con.execute("""
        CREATE OR REPLACE TABLE stored AS
        SELECT kind::VARCHAR AS kind, basis_id::VARCHAR AS basis_id, seid::VARCHAR AS seid,
               taxpayer::VARCHAR AS taxpayer, opened_by::VARCHAR AS opened_by,
               channel::VARCHAR AS channel,
               timezone('UTC', CAST(opened_at AS VARCHAR)::TIMESTAMP) AS opened_at,
               open_index::BIGINT AS open_index FROM basis_in""")
    con.unregister("basis_in")
    con.execute(f"""
        CREATE OR REPLACE TABLE basis AS
        SELECT {_BASIS_COLS} FROM stored
        UNION ALL
        SELECT {_BASIS_COLS} FROM opens o
        WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.kind = o.kind AND s.basis_id = o.basis_id)""")  # noqa: S608


def _new_bases(con: Any, cursor: int) -> list[tuple[Any, ...]]:
    """The window's openings not stored yet (those read again for context are)."""
    fmt = "strftime(opened_at, '%Y-%m-%d %H:%M:%S.%f')"
    rows: list[tuple[Any, ...]] = con.execute(f"""
        SELECT kind, basis_id, seid, taxpayer, opened_by, channel, {fmt}, open_index
        FROM opens o WHERE open_index >= ?
          AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.kind = o.kind AND s.basis_id = o.basis_id)
        ORDER BY open_index""", [cursor]).fetchall()  # noqa: S608 - constant
    return rows


def _insert(s: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]],
            conflict: str = "") -> None:
    """Bulk insert through the driver (no per-row ORM or type processing)."""
    if not rows:
        return
    conn = s.connection()
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"  # noqa: S608
           f"{' ON CONFLICT ' + conflict + ' DO NOTHING' if conflict else ''}")
    for i in range(0, len(rows), 100_000):
        conn.exec_driver_sql(sql, rows[i:i + 100_000])


def _write_bases(s: Any, rows: list[tuple[Any, ...]]) -> None:
    if s.connection().dialect.name != "sqlite":
        rows = [(*r[:6], datetime.fromisoformat(r[6]).replace(tzinfo=UTC), r[7]) for r in rows]
    _insert(s, DetectionBasis.__tablename__, _BASIS_NAMES, rows, "(kind, basis_id)")


def _load_employees(con: Any, emps: dict[str, EmployeeFacts]) -> None:
    es = list(emps.values())
    con.register("emp_in", {
        "seid": np.array([e.seid for e in es], dtype=object),
        "unit": np.array([e.unit for e in es], dtype=object),
        "manager": np.array([bool(e.roles & UNIT_MANAGERS) for e in es], dtype=bool),
        "role": np.array([min(e.roles) if e.roles else "" for e in es], dtype=object)})
    con.execute("""CREATE OR REPLACE TABLE emp AS SELECT seid::VARCHAR AS seid, unit::VARCHAR AS unit,
                   manager, role::VARCHAR AS role FROM emp_in""")
    con.unregister("emp_in")


# ---------------------------------------------------------------- explain


def _explain(con: Any, start: int) -> dict[str, int]:
    """View ``acc`` (research entries), table ``judged`` (each one's explanation, if any),
    table ``acc2`` (those no basis explains: refusals, name searches, unexplained accesses,
    with their basis); count them (entries from ``start`` on: the context read again is not
    counted)."""
    con.execute("""
        CREATE OR REPLACE VIEW acc AS
        SELECT idx, actor AS seid, t, day, command, taxpayer, outcome, reasons, matches, bkind, bid
        FROM ev WHERE type = 'access:research:decide' AND actor <> 'anonymous'""")
    # the unit's review workflow: a manager's own case on a taxpayer on whom a member of the
    # unit already had a case assigned by someone else
    con.execute("""
        CREATE OR REPLACE TABLE workflow AS
        SELECT DISTINCT a.idx FROM acc a
        JOIN basis b ON b.kind = 'case' AND b.basis_id = a.bid AND b.opened_by = a.seid
        JOIN emp e1 ON e1.seid = a.seid AND e1.manager
        JOIN basis b2 ON b2.kind = 'case' AND b2.taxpayer = a.taxpayer AND b2.seid <> a.seid
             AND b2.opened_by <> b2.seid AND b2.open_index < a.idx
        JOIN emp e2 ON e2.seid = b2.seid AND e2.unit = e1.unit
        WHERE a.outcome = 'allow' AND a.command <> 'NAMES' AND a.bkind = 'case'""")
    con.execute("""
        CREATE OR REPLACE TABLE judged AS
        SELECT a.idx, b.opened_by, b.channel, b.open_index,
          CASE
            WHEN a.outcome <> 'allow' OR a.command = 'NAMES' THEN NULL
            WHEN b.basis_id IS NULL THEN 'unknown_basis'
            WHEN b.opened_by <> a.seid AND a.bkind = 'case' THEN 'case'
            WHEN b.opened_by <> a.seid THEN 'contact'
            WHEN a.bkind = 'contact' AND b.channel = 'visit' THEN 'walk_in'
            WHEN w.idx IS NOT NULL THEN 'unit_workflow'
            ELSE NULL END AS explained,
          a.outcome = 'allow' AS allowed, a.command = 'NAMES' AS names
        FROM acc a LEFT JOIN basis b ON b.kind = a.bkind AND b.basis_id = a.bid
        LEFT JOIN workflow w ON w.idx = a.idx""")
    (n, case, contact, walk_in, workflow, names, unexplained, refused) = con.execute("""
        SELECT count(*), count(*) FILTER (explained = 'case'), count(*) FILTER (explained = 'contact'),
               count(*) FILTER (explained = 'walk_in'),
               count(*) FILTER (explained = 'unit_workflow'),
               count(*) FILTER (explained IS NULL AND allowed AND names),
               count(*) FILTER (explained IS NULL AND allowed AND NOT names),
               count(*) FILTER (NOT allowed)
        FROM judged WHERE idx >= ?""", [start]).fetchone()
    # collaboration: a case access on a taxpayer someone else also has a case on
    collab = con.execute("""
        WITH tc AS (SELECT taxpayer, count(DISTINCT seid) AS seids, min(seid) AS one FROM basis
                    WHERE kind = 'case' GROUP BY 1),
        x AS (SELECT a.taxpayer, a.seid, count(*) AS n FROM judged j JOIN acc a ON a.idx = j.idx
              WHERE j.explained = 'case' AND j.idx >= ? GROUP BY 1, 2)
        SELECT COALESCE(sum(n), 0) FROM x JOIN tc ON tc.taxpayer = x.taxpayer
        WHERE tc.seids > 1 OR tc.one <> x.seid""", [start]).fetchone()[0]
    con.execute("""
        CREATE OR REPLACE TABLE acc2 AS
        SELECT a.*, j.opened_by, j.channel, j.open_index, j.explained
        FROM acc a JOIN judged j ON j.idx = a.idx WHERE j.explained IS NULL""")
    return {"accesses": int(n), "explained_case": int(case), "explained_contact": int(contact),
            "explained_walk_in": int(walk_in),
            "explained_unit_workflow": int(workflow), "explained_collaboration": int(collab),
            "name_searches": int(names), "unexplained": int(unexplained), "refused": int(refused)}


# ---------------------------------------------------------------- score


def _volumes(app: App, con: Any, day0: date) -> list[tuple[Any, ...]]:
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


def _write_volumes(s: Any, day0: date, rows: list[tuple[Any, ...]]) -> None:
    s.execute(delete(DetectionEmployeeDay).where(DetectionEmployeeDay.day >= day0))
    sqlite = s.connection().dialect.name == "sqlite"
    _insert(s, DetectionEmployeeDay.__tablename__, ("seid", "day", "calls", "taxpayers"),
            [(seid, d.isoformat() if sqlite else d, int(calls), int(n)) for seid, d, calls, n in rows])


#: score only the employee-days whose upper bound (see :func:`_bounds`) reaches the threshold
PREFILTER = True


def _score(app: App, con: Any, day0: date, tps: dict[str, TaxpayerFacts],
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
    _repeated(con, day0, level)
    _many_employees(con, day0, level)
    _volume(con, level)
    _sequences(con, day0, level)
    _names(con, day0, level, level_idx)
    adjustments.add_signals(app, day0, size, tps, emps, counts, population, level, level_idx)
    # issue 17.3: ties and the shape of the work on the accesses the work explains too
    _facts_tables(con, tps, emps)
    relations.add_ties(con, day0, tps, emps, counts, population, level, level_idx)
    relations.add_contact_sweeps(con, day0, level, level_idx)
    relations.add_declared_contacts(con, day0, level, level_idx)
    relations.add_refused_bases(con, day0, level, level_idx)
    if PREFILTER:
        bound = _bounds(con, day0, tps, emps)
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


def _facts_tables(con: Any, tps: dict[str, TaxpayerFacts], emps: dict[str, EmployeeFacts]) -> None:
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


def _bounds(con: Any, day0: date, tps: dict[str, TaxpayerFacts],
            emps: dict[str, EmployeeFacts]) -> dict[tuple[str, str], float]:
    """Per employee-day, an upper bound of the score of its per-access signals.

    Mirrors :func:`signals.access_signals` (and ``no_followup``) loosely enough to be an upper
    bound: every signal it can emit for an access, at its full weight (no self-report or
    surname discount; same street and same ZIP as one "place" signal at the higher weight),
    counted once per (signal, taxpayer) as :func:`scoring.dedupe` does. A signal added to
    ``access_signals`` must be added here (tests/integration/test_detection_incremental.py
    compares the scores with and without this filter)."""
    from idrs.detection.signals import PROTECTED_CODES, RELATIONSHIP_CODES

    _facts_tables(con, tps, emps)
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


def _repeated(con: Any, day0: date, level: dict[tuple[str, str], list[Signal]]) -> None:
    """Three or more refusals on one taxpayer in a day (self-reported ones count too)."""
    for seid, d, tp, idxs in con.execute("""
            SELECT seid, day, taxpayer, idxs FROM (
              SELECT seid, day, taxpayer, list(idx ORDER BY t, idx) AS idxs, min(t) AS first
              FROM cand WHERE outcome = 'deny' AND taxpayer IS NOT NULL AND taxpayer <> ''
                AND day >= ?
              GROUP BY 1, 2, 3 HAVING count(*) >= 3) ORDER BY first, idxs[1]""",
                                         [day0]).fetchall():
        level[(seid, d.isoformat())].append(Signal(
            "repeated_refusals", WEIGHTS["repeated_refusals"],
            {"refusals": len(idxs), "audit_indexes": list(idxs)[:20]}, tp))


def _many_employees(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Three or more employees on one taxpayer within six hours, unexplained: once per
    employee-day and taxpayer, at the first such access (linear time per taxpayer)."""
    rows = con.execute("""
        SELECT taxpayer, seid, epoch_us(t), idx, day FROM cand
        WHERE taxpayer IS NOT NULL AND taxpayer IN (
          SELECT taxpayer FROM cand WHERE taxpayer IS NOT NULL
          GROUP BY 1 HAVING count(DISTINCT seid) >= ?)
        ORDER BY taxpayer, t, idx""", [MANY_MIN]).fetchall()
    window = MANY_WINDOW // timedelta(microseconds=1)
    found: list[tuple[int, int, str, date, str, int]] = []
    i = 0
    while i < len(rows):
        tp = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == tp:
            j += 1
        items = rows[i:j]
        i = j
        seen: Counter[str] = Counter()
        lo = 0
        marked = -1
        crowd: dict[int, int] = {}
        for hi, cur in enumerate(items):
            seen[cur[1]] += 1
            while cur[2] - items[lo][2] > window:
                seen[items[lo][1]] -= 1
                if seen[items[lo][1]] == 0:
                    del seen[items[lo][1]]
                lo += 1
            if len(seen) >= MANY_MIN:
                for k in range(max(lo, marked + 1), hi + 1):
                    crowd[k] = len(seen)
                marked = hi
        done: set[tuple[str, date]] = set()
        for k, n in crowd.items():
            _, seid, t_us, idx, d = items[k]
            if d < day0 or (seid, d) in done:
                continue
            done.add((seid, d))
            found.append((t_us, idx, seid, d, tp, n))
    for _, idx, seid, d, tp, n in sorted(found):
        by_day[(seid, d.isoformat())].append(Signal(
            "many_employees", WEIGHTS["many_employees"],
            {"audit_index": idx, "employees_within_6h": n}, tp))


def _volume(con: Any, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Distinct taxpayers per employee-day against the employee's own days in the
    HISTORY_DAYS before it and the other employees of the role in those days and that day
    (only days above VOLUME_MIN can fire). The p99 is :func:`signals.percentile`'s."""
    rows = con.execute(f"""
        WITH c AS (SELECT t.seid, t.day, t.n, COALESCE(e.role, '') AS role FROM today t
                   LEFT JOIN emp e ON e.seid = t.seid WHERE t.n > {VOLUME_MIN}),
        own AS (SELECT c.seid, c.day, list(h.n) AS own FROM c JOIN hist h ON h.seid = c.seid
                AND h.day BETWEEN c.day - {HISTORY_DAYS} AND c.day - 1 GROUP BY 1, 2),
        peer AS (SELECT c.seid, c.day, list_sort(list(h.n)) AS v FROM c
                 JOIN hist h ON h.role = c.role AND h.seid <> c.seid
                  AND h.day BETWEEN c.day - {HISTORY_DAYS} AND c.day GROUP BY 1, 2)
        SELECT c.seid, c.day, c.n, own.own,
               CAST(p.v[least(array_length(p.v), greatest(1, CAST(ceil(0.99::DOUBLE * array_length(p.v)) AS BIGINT)))]
                    AS DOUBLE) AS p99
        FROM c LEFT JOIN own ON own.seid = c.seid AND own.day = c.day
        LEFT JOIN peer p ON p.seid = c.seid AND p.day = c.day
        ORDER BY c.day, c.seid""").fetchall()  # noqa: S608 - constants
    for seid, d, n, own, p99 in rows:
        sig = volume_signal(int(n), [int(x) for x in own or []], float(p99 or 0.0))
        if sig is not None:
            by_day[(seid, d.isoformat())].append(sig)


def _sequences(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Ten or more accounts in a day, each within seconds of the previous one."""
    for seid, d, n, first, last in con.execute(f"""
            SELECT seid, day, count(*), min(idx), max(idx) FROM (
              SELECT seid, t, day, idx, taxpayer,
                     t - lag(t) OVER (PARTITION BY seid ORDER BY t, idx) AS gap,
                     lag(taxpayer) OVER (PARTITION BY seid ORDER BY t, idx) AS prev
              FROM acc WHERE command <> 'NAMES' AND idx NOT IN (
                SELECT idx FROM judged WHERE explained IN ('case', 'unit_workflow')))
            WHERE gap < INTERVAL {SEQUENCE_GAP_SECONDS} SECOND AND taxpayer IS DISTINCT FROM prev
              AND day >= ?
            GROUP BY 1, 2 HAVING count(*) >= {SEQUENCE_MIN} ORDER BY 2, 1""",  # noqa: S608
                                             [day0]).fetchall():
        by_day[(seid, d.isoformat())].append(Signal(
            "sequence", WEIGHTS["sequence"], {"quick_accounts": int(n), "from_index": int(first),
                                              "to_index": int(last)}))


def _names(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]],
           idx_day: dict[tuple[str, str], list[int]]) -> None:
    """Name searches no case or contact followed; sweeps: looking at their matches after."""
    rows = con.execute("""
        WITH nm AS (SELECT idx, seid, t, day, unnest(matches) AS m FROM acc2
                    WHERE command = 'NAMES' AND outcome = 'allow' AND day >= ?),
        searched AS (
          SELECT nm.idx, nm.seid, nm.t, nm.day, bool_or(b.basis_id IS NOT NULL) AS followed,
                 list(DISTINCT nm.m) AS ms
          FROM nm LEFT JOIN basis b ON b.seid = nm.seid AND b.taxpayer = nm.m
               AND b.opened_at BETWEEN nm.t - INTERVAL 1 MINUTE AND nm.t + INTERVAL 20 MINUTE
          GROUP BY 1, 2, 3, 4),
        -- a search whose matches filled the list (NAMES answers at most NAMES_LIMIT: a common
        -- name in a small town) may have missed the caller: any basis the employee opened in
        -- the window counts as its follow-up
        lone AS (SELECT * FROM searched s WHERE NOT followed AND NOT (
          array_length(s.ms) >= ? AND EXISTS (SELECT 1 FROM basis b WHERE b.seid = s.seid
            AND b.opened_at BETWEEN s.t - INTERVAL 1 MINUTE AND s.t + INTERVAL 20 MINUTE))),
        hits AS (
          SELECT l.idx, list(c.idx ORDER BY c.t, c.idx) AS hits
          FROM (SELECT idx, seid, t, unnest(ms) AS m FROM lone) l
          JOIN cand c ON c.seid = l.seid AND c.taxpayer = l.m
               AND c.t >= l.t AND c.t - l.t <= INTERVAL 1 HOUR
          GROUP BY 1)
        SELECT l.idx, l.seid, l.day, array_length(l.ms), h.hits FROM lone l LEFT JOIN hits h ON h.idx = l.idx
        ORDER BY l.t, l.idx""", [day0, NAMES_LIMIT]).fetchall()
    for idx, seid, d, matches, hits in rows:
        key = (seid, d.isoformat())
        by_day[key].append(Signal("name_search_no_followup", WEIGHTS["name_search_no_followup"],
                                  {"audit_index": idx, "matches": int(matches)}))
        idx_day[key].append(idx)
        if hits:
            by_day[key].append(Signal("sweep", WEIGHTS["sweep"],
                                      {"audit_index": idx, "looked_at_matches": list(hits)[:20]}))


# ---------------------------------------------------------------- alerts


def _content(sc: scoring.Scored) -> dict[str, Any]:
    signals = [{**sig.as_dict(), "taxpayer": sig.taxpayer} for sig in sc.signals]
    return {"score": round(sc.score, 2), "category": sc.category, "signals": json.dumps(signals),
            "audit_indexes": json.dumps(sc.audit_indexes), "taxpayers": json.dumps(sc.taxpayers),
            "self_reported": sc.self_reported}


def _signal_keys(signals_json: str) -> set[tuple[str, Any]]:
    """The evidence an alert holds; the ``self_reported`` marker (weight 0) is no evidence."""
    return {(d["name"], d.get("taxpayer")) for d in json.loads(signals_json)
            if d["name"] != "self_reported"}


def _reconcile(s: Any, now: datetime, scored: list[scoring.Scored], day0: date,
               read_from: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Match the recomputed employee-days with the stored alerts of those days, in session
    ``s``.

    An open alert (or one withdrawn earlier) takes the recomputed day's content; an assigned
    one only gains evidence; an open alert whose day no longer reaches the threshold is
    withdrawn. Alerts citing nothing this run read are left to gain evidence only. A
    dismissed or referred alert stays closed: a new alert is raised only for signals it did
    not hold. Returns (the alerts created or changed, the ids withdrawn).
    """
    existing = list(s.scalars(select(Alert).where(Alert.day >= day0).order_by(Alert.id)))
    rank = {"open": 0, "assigned": 1, "dismissed": 2}
    live: dict[tuple[str, date], Alert] = {}
    closed: dict[tuple[str, date], list[Alert]] = defaultdict(list)
    for al in existing:
        k = (al.seid, al.day)
        if al.state in ("open", "assigned") or _was_withdrawn(al):
            if k not in live or rank[al.state] < rank[live[k].state]:
                live[k] = al
        else:
            closed[k].append(al)
    created: list[dict[str, Any]] = []
    changed: list[tuple[Alert, dict[str, Any]]] = []
    seen: set[tuple[str, date]] = set()
    for sc in sorted(scored, key=lambda x: (x.day, x.seid)):
        day = date.fromisoformat(sc.day)
        k = (sc.seid, day)
        seen.add(k)
        new = _content(sc)
        al = live.get(k)
        if al is None:
            held = set().union(*(_signal_keys(c.signals) for c in closed.get(k, [])))
            if not held or not _signal_keys(new["signals"]) <= held:
                created.append({"seid": sc.seid, "day": day, **new})
            continue
        if al.state == "assigned" or not _reread(al, read_from):
            upd = _merged(al, sc, new)
        elif al.state == "dismissed":
            upd = {**new, "state": "open", "close_reason": None}
        else:
            upd = new
        if any(getattr(al, f) != v for f, v in upd.items()):
            changed.append((al, upd))
    withdrawn = [al for k, al in live.items()
                 if k not in seen and al.state == "open" and _reread(al, read_from)]
    units = dict(s.execute(select(Employee.seid, Unit.code).join(Unit, Unit.id == Employee.unit_id)).all())
    n = s.scalar(select(func.max(Alert.id))) or 0
    for c in created:
        n += 1
        c.update(alert_id=f"A{n:06d}", unit=units.get(c["seid"], ""), state="open",
                 created_at=now, updated_at=now)
    out = list(created)
    for al, upd in changed:
        out.append({"alert_id": al.alert_id, "seid": al.seid, "day": al.day, "state": al.state, **upd})
    if created:
        s.execute(insert(Alert), created)
    for al, upd in changed:
        s.execute(update(Alert).where(Alert.id == al.id).values(**upd, updated_at=now))
    for al in withdrawn:
        s.execute(update(Alert).where(Alert.id == al.id).values(
            state="dismissed", close_reason=WITHDRAWN, updated_at=now))
    out.sort(key=lambda a: (a["day"], a["seid"], a["alert_id"]))
    return out, [al.alert_id for al in withdrawn]


def _was_withdrawn(al: Alert) -> bool:
    return al.state == "dismissed" and al.close_reason == WITHDRAWN


def _reread(al: Alert, read_from: int) -> bool:
    """Whether this run read again an entry the alert cites (so it may stand in for it)."""
    return any(i >= read_from for i in json.loads(al.audit_indexes))


def _merged(alert: Alert, sc: scoring.Scored, new: dict[str, Any]) -> dict[str, Any]:
    old = json.loads(alert.signals)
    merged = {(d["name"], d.get("taxpayer"), json.dumps(d["evidence"], sort_keys=True)): d
              for d in old + json.loads(new["signals"])}
    items = list(merged.values())
    best: dict[tuple[str, Any], float] = {}
    for d in items:
        k = (d["name"], d.get("taxpayer"))
        best[k] = max(best.get(k, 0.0), float(d["weight"]))
    return {"signals": json.dumps(sorted(items, key=lambda d: -float(d["weight"]))),
            "score": round(sum(best.values()), 2),
            "audit_indexes": json.dumps(sorted(set(json.loads(alert.audit_indexes)) | set(sc.audit_indexes))),
            "taxpayers": json.dumps(sorted(set(json.loads(alert.taxpayers)) | set(sc.taxpayers))),
            "category": alert.category,
            "self_reported": bool(alert.self_reported or sc.self_reported)}


def _as_json(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"alert_id": a["alert_id"], "seid": a["seid"], "score": a["score"],
             "category": a["category"], "day": a["day"].isoformat(),
             "signals": json.loads(a["signals"]), "audit_indexes": json.loads(a["audit_indexes"]),
             "why": explain.why(json.loads(a["signals"])), "state": a["state"]} for a in alerts]
