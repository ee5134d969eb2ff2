"""Weekly security reports per unit, the manager's certification, and who has not certified.

The report follows the agency's weekly *Security Violations* and *Sensitive Access
(own/spouse/employee)* reports: for the unit's employees, the week's refusals for conflicts
(own account, spouse, employee accounts, the other conflicts) and the other refusals,
then the unit's open alerts, then the statistics of investigations about the unit's
employees: the outcomes recorded in the week and to its end, the notices sent on a
statutory trigger, and the cases by state (counts only, no names). A report is regenerated until certified; once a manager of
the unit certifies it, it is frozen. Every report and certification is recorded.

Whether a report is already certified, and the writes, go to the primary; the week's log
entries, the open alerts and the certification rate are read through ``app.read_engine``
(a streaming replica when ``IDRS_REPLICA_URL`` is set) once it has caught up.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from idrs.analytics import engines
from idrs.audit import log as audit_log
from idrs.audit.events import Actor
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import investigations, logscan
from idrs.detection.cursor import first_index_at, log_size
from idrs.detection.events import DetectionEvent
from idrs.detection.models import Alert, WeeklyReport
from idrs.detection.results import (
    CertificationRate,
    UncertifiedReport,
    WeeklyReportRecorded,
    WeeklyReportView,
)
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason
from idrs.people.models import Employee, Unit
from idrs.people.roles import UNIT_MANAGERS

GROUPS = {
    "CONFLICT_SELF": "own", "CONFLICT_SPOUSE": "spouse",
    "CONFLICT_COWORKER": "employee", "PROTECTED_EMPLOYEE_ACCOUNT": "employee",
}


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def _unit_members(s: Any, unit: str) -> tuple[int, dict[str, str]]:
    u = s.scalar(select(Unit).where(Unit.code == (unit or "").strip().upper()))
    if u is None:
        raise NotFound(f"no unit {unit}")
    members = {seid: roles for seid, roles in s.execute(
        select(Employee.seid, Employee.roles).where(Employee.unit_id == u.id))}
    return u.id, members


def _refusals(app: App, start: datetime, end: datetime, members: set[str],
              engine: str | None = None) -> list[tuple[Any, ...]]:
    size = log_size(app)
    app.await_replica()  # the log is read from app.read_engine: up to ``size`` at least
    a, b = first_index_at(app, start, size), first_index_at(app, end, size)
    con = logscan.connect(engine)
    try:
        logscan.load(app, con, a, b)
        rows: list[tuple[Any, ...]] = con.execute(
            """SELECT idx, actor, t, command, reasons FROM ev
               WHERE type = 'access:research:decide' AND outcome = 'deny' ORDER BY idx""").fetchall()
    finally:
        con.close()
    return [r for r in rows if r[1] in members]


def weekly(app: App, *, unit: str, week: date, actor: str, interface: str = "cli",
           engine: str | None = None) -> WeeklyReportView:
    """Build (or rebuild, until certified) the unit's report for the week starting ``week``.

    ``engine``: where the week's log is queried, ``duckdb`` (default) or ``spark``.

    ``investigations``: ``{"week": ..., "to_date": ...}``, each the counts of
    ``investigations.statistics`` (outcomes, notices sent, cases by state).
    """
    engine = engines.check_engine(engine)
    week = week_of(week)
    start = datetime(week.year, week.month, week.day, tzinfo=UTC)
    if start > app.clock.now():
        raise IdrsError(f"week {week} has not begun")
    with session_scope(app.engine) as s:
        _, members = _unit_members(s, unit)
        code = unit.strip().upper()
        done = s.scalar(select(WeeklyReport).where(WeeklyReport.unit == code, WeeklyReport.week_start == week))
        if done is not None and done.certified_at is not None:
            return _as_dict(done)
    refusals = _refusals(app, start, start + timedelta(days=7), set(members), engine)
    with session_scope(app.read_engine) as s:  # the replica has caught up (_refusals)
        open_alerts = [{"alert_id": a.alert_id, "seid": a.seid, "day": a.day.isoformat(),
                        "score": a.score, "category": a.category, "state": a.state}
                       for a in s.scalars(select(Alert).where(Alert.seid.in_(list(members)),
                                                              Alert.state.in_(("open", "assigned")))
                                          .order_by(Alert.score.desc()))]
        end = start + timedelta(days=7)
        cases = {"week": investigations.statistics(s, subjects=set(members), start=start, end=end),
                 "to_date": investigations.statistics(s, subjects=set(members), end=end)}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    other: Counter[str] = Counter()
    for idx, seid, t, cmd, reasons in refusals:
        codes = list(reasons or [])
        conflict = [c for c in codes if c.startswith("CONFLICT_") or c == "PROTECTED_EMPLOYEE_ACCOUNT"]
        if conflict:
            group = next((GROUPS[c] for c in conflict if c in GROUPS), "other_conflict")
            groups[group].append({"audit_index": idx, "seid": seid, "time": t.isoformat(),
                                  "command": cmd, "reasons": codes})
        else:
            for c in codes:
                other[c] += 1
    content = {"unit": code, "week_start": week.isoformat(),
               "conflict_refusals": {g: groups.get(g, []) for g in ("own", "spouse", "employee", "other_conflict")},
               "other_refusals": dict(other), "open_alerts": open_alerts,
               "investigations": cases}
    idx = audit_log.record(app, DetectionEvent.DETECT_REPORT_WEEKLY, Actor(actor, interface),
                           {"unit": code, "week": week.isoformat()},
                           {"conflict_refusals": sum(len(v) for v in groups.values()),
                            "open_alerts": len(open_alerts)})
    now = app.clock.now()
    with session_scope(app.engine) as s:
        rep = s.scalar(select(WeeklyReport).where(WeeklyReport.unit == code, WeeklyReport.week_start == week))
        if rep is None:
            rep = WeeklyReport(unit=code, week_start=week, content="", created_at=now)
            s.add(rep)
        rep.content = json.dumps(content)
        rep.created_at = now
        s.flush()
        return WeeklyReportRecorded(**_fields(rep), audit_index=idx)


def _fields(rep: WeeklyReport) -> dict[str, Any]:
    return {"unit": rep.unit, "week_start": rep.week_start.isoformat(),
            "report": json.loads(rep.content) if rep.content else {},
            "certified_by": rep.certified_by,
            "certified_at": rep.certified_at.isoformat() if rep.certified_at else None}


def _as_dict(rep: WeeklyReport) -> WeeklyReportView:
    return WeeklyReportView(**_fields(rep))


def certify(app: App, *, unit: str, week: date, manager: str,
            interface: str = "cli") -> WeeklyReportRecorded:
    """A manager of the unit certifies having reviewed the week's report (frozen afterwards)."""
    week = week_of(week)
    code = (unit or "").strip().upper()
    with session_scope(app.engine) as s:
        _, members = _unit_members(s, code)
        seid = (manager or "").strip().upper()
        if seid not in members or not (UNIT_MANAGERS & set(members[seid].split(","))):
            raise AccessDenied([Reason("NOT_IN_PROFILE", f"only a manager of unit {code} certifies its report")])
        rep = s.scalar(select(WeeklyReport).where(WeeklyReport.unit == code, WeeklyReport.week_start == week))
        if rep is None:
            raise NotFound(f"no report for unit {code}, week of {week} (run 'idrs reports weekly')")
        if rep.certified_at is not None:
            raise Conflict(f"the report of unit {code}, week of {week}, is already certified by {rep.certified_by}")
    idx = audit_log.record(app, DetectionEvent.DETECT_REPORT_CERTIFY, Actor(seid, interface),
                           {"unit": code, "week": week.isoformat()})
    with session_scope(app.engine) as s:
        rep = s.scalar(select(WeeklyReport).where(WeeklyReport.unit == code, WeeklyReport.week_start == week))
        rep.certified_by = seid  # type: ignore[union-attr]
        rep.certified_at = app.clock.now()  # type: ignore[union-attr]
        s.flush()
        return WeeklyReportRecorded(**_fields(rep), audit_index=idx)  # type: ignore[arg-type]


def certification_rate(app: App, *, week: date | None = None) -> CertificationRate:
    """Per week: reports, certified, the rate, and the units (with managers) that have not."""
    app.await_replica()
    with session_scope(app.read_engine) as s:
        q = select(WeeklyReport)
        if week is not None:
            q = q.where(WeeklyReport.week_start == week_of(week))
        reps = list(s.scalars(q.order_by(WeeklyReport.week_start, WeeklyReport.unit)))
        managers: dict[str, list[str]] = defaultdict(list)
        for seid, roles, code in s.execute(select(Employee.seid, Employee.roles, Unit.code)
                                           .join(Unit, Unit.id == Employee.unit_id)):
            if UNIT_MANAGERS & set(roles.split(",")):
                managers[code].append(seid)
        total = len(reps)
        certified = sum(1 for r in reps if r.certified_at is not None)
        missing = [UncertifiedReport(unit=r.unit, week_start=r.week_start.isoformat(),
                                     managers=sorted(managers.get(r.unit, [])))
                   for r in reps if r.certified_at is None]
    return CertificationRate(reports=total, certified=certified,
                             rate=round(certified / total, 4) if total else None,
                             not_certified=missing)
