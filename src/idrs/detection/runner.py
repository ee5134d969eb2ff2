"""One detection run (:func:`run`): the window of entries and days it reads and
recomputes, the steps in order, and the one transaction that writes what it found.

The steps are in their own modules: :mod:`~idrs.detection.bases` (the bases the window
needs), :mod:`~idrs.detection.explained` (which accesses a basis explains),
:mod:`~idrs.detection.score` (the employee-days at the threshold),
:mod:`~idrs.detection.alerts` (matching them with the stored alerts). The public entry point
is :func:`idrs.detection.service.run`, whose docstring describes incremental runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from idrs.analytics import engines
from idrs.audit import log as audit_log
from idrs.audit.events import make_event
from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import logscan
from idrs.detection.alerts import as_json, reconcile
from idrs.detection.bases import load_bases, load_employees, opened_since, write_bases
from idrs.detection.cursor import first_index_at, log_size, midnight, next_index, time_of
from idrs.detection.day_signals import MANY_WINDOW
from idrs.detection.events import DetectionEvent
from idrs.detection.explained import explain_accesses
from idrs.detection.facts import master_facts
from idrs.detection.models import DetectionCursor, SelfReport
from idrs.detection.results import DetectionRun, RunSummary
from idrs.detection.score import day_volumes, score_days, write_volumes
from idrs.errors import IdrsError

#: the farthest a day's signals look past the day's end (many employees within six hours)
HORIZON = MANY_WINDOW
#: the farthest back a self-opened contact used again, or a self-report, moves the days a run
#: recomputes (a contact reopened after longer is judged on its uses in these days)
CONTEXT_MAX_DAYS = 7



def run(app: App, *, since: datetime | None = None, to_index: int | None = None,
        actor: str = "system", interface: str = "cli", engine: str | None = None) -> DetectionRun:
    """One detection run (see :mod:`idrs.detection.service`): the alerts raised or changed.

    ``to_index``: analyse the entries before this index only (default: the whole log).
    ``engine``: where the queries run, ``duckdb`` (default) or ``spark`` (the same queries,
    transpiled: :mod:`idrs.analytics.engines`)."""
    engine = engines.check_engine(engine)
    now = app.clock.now()
    size = log_size(app)
    app.await_replica()  # the log is read from app.read_engine: up to ``size`` at least
    if to_index is not None:
        if to_index < 0:
            raise IdrsError(f"to_index must not be negative (got {to_index})")
        size = min(size, to_index)
    cursor = next_index(app)
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
    out = as_json(alerts)
    summary = {**summary, "alerts": len(out), "alerts_withdrawn": len(withdrawn)}
    detail = {**summary, "withdrawn": withdrawn} if withdrawn else summary
    audit_log.append(app.engine, make_event(
        DetectionEvent.DETECT_RUN_COMPLETE, time=now, actor=actor, outcome="success",
        interface=interface, obj={"kind": "detection"}, detail=detail))
    return DetectionRun(alerts=out, summary=RunSummary(**summary))


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
        first_new = time_of(db, start)
    day0 = (first_new - HORIZON).date()
    read_from = min(first_index_at(app, midnight(day0) - HORIZON, size), start)
    read = logscan.load(app, con, read_from, size)
    # The log is in time order only nearly: a simulated month recorded after a real `idrs
    # init`, or a clock stepped back, puts later indexes at earlier times. Start from the
    # earliest of the new entries, not from the first one.
    earliest = con.execute("SELECT min(t) FROM ev WHERE idx >= ?", [start]).fetchall()[0][0]
    if earliest is not None and (earliest.astimezone(UTC) - HORIZON).date() < day0:
        day0 = (earliest.astimezone(UTC) - HORIZON).date()
        new_from = min(first_index_at(app, midnight(day0) - HORIZON, size), read_from)
        if new_from < read_from:
            read += logscan.load(app, con, new_from, read_from, append=True)
            read_from = new_from
    floor = day0 - timedelta(days=CONTEXT_MAX_DAYS)
    reported = _self_reports(app)
    _load_reported(con, reported)
    capped = False
    while True:
        load_bases(app, con, read_from, size - read_from)
        earlier = _earliest_dependent_day(app, con, start, day0, read_from)
        if earlier is not None and earlier < floor:
            earlier, capped = floor, True
        if earlier is None or earlier >= day0:
            break
        day0 = earlier
        new_from = first_index_at(app, midnight(day0) - HORIZON, size)
        if new_from < read_from:
            read += logscan.load(app, con, new_from, read_from, append=True)
            read_from = new_from
    new_bases = opened_since(con, cursor)
    wanted = {r[0] for r in con.execute(
        "SELECT DISTINCT taxpayer FROM ev WHERE type = 'access:research:decide' AND taxpayer IS NOT NULL "
        "AND t >= ?", [midnight(day0)]).fetchall()}
    tps, emps, counts, population = master_facts(app, wanted)
    load_employees(con, emps)
    explained = explain_accesses(con, start)
    volumes = day_volumes(app, con, day0)
    scored = score_days(app, con, day0, tps, emps, counts, population, reported, size)

    def writes(s: Any, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        write_bases(s, new_bases)
        write_volumes(s, day0, volumes)
        return reconcile(s, now, scored, day0, read_from)

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
            days += [time_of(db, i).date() for i in outside]
    days += list(inside.values())
    row = con.execute("""
        SELECT min(b.opened_at) FROM ev e JOIN basis b ON b.kind = 'contact'
          AND b.basis_id = e.bid
        WHERE e.type = 'access:research:decide' AND e.outcome = 'allow' AND e.t >= ?
          AND e.basis LIKE 'contact:%' AND b.opened_at < ?
          AND (b.opened_by = e.actor OR e.command = 'NAMES')""",
                      [midnight(day0), midnight(day0)]).fetchone()
    if row and row[0] is not None:
        days.append(row[0].astimezone(UTC).date())
    return min(days) if days else None

