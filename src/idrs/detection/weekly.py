"""Who may see which unit's weekly security report, and the list of stored reports.

A manager sees (and certifies) the reports of their own unit; the overseers (privacy staff,
the authorizing official, auditors) see every unit's report and the certification rate.
The reports themselves are built and certified by ``detection.reports``. Who may read is
decided on the primary; the list is read through ``app.read_engine`` (a replica when set).
"""

from __future__ import annotations

import json

from sqlalchemy import select

from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.models import WeeklyReport
from idrs.detection.results import ReportListed
from idrs.people.models import Employee, Unit
from idrs.people.roles import UNIT_MANAGERS, WEEKLY_OVERSEERS


def unit_of(app: App, seid: str) -> str | None:
    with session_scope(app.engine) as s:
        return s.scalar(select(Unit.code).join(Employee, Employee.unit_id == Unit.id)
                        .where(Employee.seid == (seid or "").strip().upper()))


def units(app: App) -> list[str]:
    """Every unit code, sorted (for pickers)."""
    with session_scope(app.engine) as s:
        return sorted(s.scalars(select(Unit.code)))


def may_read(app: App, who: Employee, unit: str) -> bool:
    """An overseer: any unit. A manager: their own unit only. Anyone else: none."""
    if who.role_set & WEEKLY_OVERSEERS:
        return True
    code = (unit or "").strip().upper()
    return bool(who.role_set & UNIT_MANAGERS) and bool(code) and unit_of(app, who.seid) == code


def list_reports(app: App, *, unit: str | None = None) -> list[ReportListed]:
    """Stored weekly reports (newest week first) with their certification and counts."""
    app.await_replica()
    with session_scope(app.read_engine) as s:
        q = select(WeeklyReport).order_by(WeeklyReport.week_start.desc(), WeeklyReport.unit)
        if unit:
            q = q.where(WeeklyReport.unit == unit.strip().upper())
        out = []
        for r in s.scalars(q):
            content = json.loads(r.content) if r.content else {}
            conflicts = sum(len(v) for v in (content.get("conflict_refusals") or {}).values())
            out.append(ReportListed(
                unit=r.unit, week_start=r.week_start.isoformat(),
                created_at=as_utc(r.created_at).isoformat(), conflict_refusals=conflicts,
                open_alerts=len(content.get("open_alerts") or []),
                outcomes_this_week=sum(((content.get("investigations") or {}).get(
                    "week") or {}).get("outcomes", {}).values()),
                certified_by=r.certified_by,
                certified_at=as_utc(r.certified_at).isoformat() if r.certified_at else None))
    return out
