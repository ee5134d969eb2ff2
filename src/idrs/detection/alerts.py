"""Alerts: one per employee-day at or above the threshold, matched with the stored alerts
of the days a run recomputed (:func:`reconcile`), and their JSON form (:func:`as_json`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from idrs.detection import explain, scoring
from idrs.detection.models import Alert
from idrs.detection.results import RaisedAlert
from idrs.people.models import Employee, Unit

WITHDRAWN = "withdrawn by detection: the complete day no longer scores at the threshold"



def _content(sc: scoring.Scored) -> dict[str, Any]:
    signals = [{**sig.as_dict(), "taxpayer": sig.taxpayer} for sig in sc.signals]
    return {"score": round(sc.score, 2), "category": sc.category, "signals": json.dumps(signals),
            "audit_indexes": json.dumps(sc.audit_indexes), "taxpayers": json.dumps(sc.taxpayers),
            "self_reported": sc.self_reported}


def _signal_keys(signals_json: str) -> set[tuple[str, Any]]:
    """The evidence an alert holds; the ``self_reported`` marker (weight 0) is no evidence."""
    return {(d["name"], d.get("taxpayer")) for d in json.loads(signals_json)
            if d["name"] != "self_reported"}


def reconcile(s: Any, now: datetime, scored: list[scoring.Scored], day0: date,
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


def as_json(alerts: list[dict[str, Any]]) -> list[RaisedAlert]:
    """The alerts :func:`reconcile` returns, as the interfaces show them."""
    return [RaisedAlert(alert_id=a["alert_id"], seid=a["seid"], score=a["score"],
                        category=a["category"], day=a["day"].isoformat(),
                        signals=json.loads(a["signals"]),
                        audit_indexes=json.loads(a["audit_indexes"]),
                        why=explain.why(json.loads(a["signals"])), state=a["state"])
            for a in alerts]
