"""The privacy analysts' alert queue, referrals to the inspector general, self-reports.

Rules (each check raises; nothing is changed by a refused step):

- only a ``privacy_analyst`` assigns, reviews, dismisses or refers; an analyst never acts on
  an alert about themselves or about anyone in their own unit;
- an alert is worked in order: open → assigned (to one analyst) → dismissed (with a reason)
  or referred (with a referral package); a closed alert takes no further step; a referral
  opens the alert's investigation case (``detection.investigations``), where it goes on —
  a referral is no trigger of the taxpayer's §7431(e) notice;
- the referral package holds the alert's evidence and every cited audit entry with its
  RFC 9162 inclusion proof against a signed checkpoint covering it (one is signed if the
  latest does not cover the entries yet);
- an employee may self-report an accidental access of their own within a day of it; the
  report is recorded and shown to the analyst beside any alert citing that entry. It never
  lowers a score, dismisses or withdraws an alert: only an analyst closes one, with a reason.

Every step is recorded in the audit log first (``detect:alert:*``,
``access:research:self-report``), then written to the tables.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.audit import log as audit_log
from idrs.audit import merkle
from idrs.audit import service as audit_service
from idrs.audit.checkpoint import Checkpoint
from idrs.audit.events import Actor, EventType, make_event
from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import explain, investigations
from idrs.detection.events import DetectionEvent
from idrs.detection.models import Alert, AlertAction, Referral, SelfReport
from idrs.detection.results import (
    AlertDetail,
    AlertReferred,
    AlertSelfReport,
    AlertStepDone,
    AlertView,
    SelfReported,
    TriageAction,
)
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import screen_text
from idrs.people.models import Employee, Unit
from idrs.people.roles import ALERT_REVIEWERS

CLOSED = ("dismissed", "referred")
SELF_REPORT_WINDOW = timedelta(days=1)
NOT_ANALYST = Reason("NOT_IN_PROFILE", "only a privacy analyst works the alert queue")
OWN_ALERT = Reason("SELF_APPROVAL", "an analyst never reviews an alert about themselves")
OWN_UNIT = Reason("CONFLICT_COWORKER", "an analyst never reviews an alert about their own unit")
NOT_OWN_ENTRY = Reason("NO_BUSINESS_NEED", "you can self-report only your own research entries")


def read_entry(app: App, index: int) -> tuple[dict[str, Any], bytes]:
    """The parsed audit entry at ``index`` and its leaf input (NotFound beyond the log)."""
    with raw(app.engine) as db:
        row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (int(index),))
    if row is None:
        raise NotFound(f"no audit entry {index}")
    leaf = bytes(row[0])
    return json.loads(leaf), leaf


# ---------------------------------------------------------------- self-reports


def self_report(app: App, *, token: str | None, audit_index: int, reason: str,
                interface: str = "cli", address: str | None = None) -> SelfReported:
    """The signed-in employee reports an accidental access (their own entry, within a day).

    Records ``access:research:self-report``. The report is context for the analyst, never a
    discount (issue 13.2): no alert's score, state or evidence changes; the alerts citing the
    entry are only flagged ``self_reported`` and show the report beside them. A report of
    someone else's entry (or of anything but a research decision) is refused and recorded
    with outcome ``deny``.
    """
    from idrs.people import auth

    emp = auth.authenticate(app, token, interface=interface, address=address)
    if not (reason or "").strip():
        raise ValidationFailed(["reason: say what happened (for example 'mistyped TIN')"])
    screen_text(reason, "reason")  # recorded verbatim: no taxpayer identifier in it
    entry, _ = read_entry(app, audit_index)
    if entry.get("type") != "access:research:decide" or entry.get("actor") != emp.seid:
        idx = audit_log.append(app.engine, make_event(
            EventType.ACCESS_SELF_REPORT, time=app.clock.now(), actor=emp.seid,
            outcome="deny", interface=interface, address=address,
            obj={"audit_index": audit_index}, reasons=[NOT_OWN_ENTRY.code]))
        raise AccessDenied([NOT_OWN_ENTRY], audit_index=idx)
    when = as_utc(_parse_time(entry["time"]))
    if app.clock.now() - when > SELF_REPORT_WINDOW:
        raise IdrsError("a self-report must be made within a day of the access")
    text = reason.strip()[:500]
    with session_scope(app.engine) as s:
        if s.scalar(select(SelfReport.id).where(SelfReport.audit_index == audit_index)):
            raise Conflict(f"entry {audit_index} is already self-reported")
    idx = audit_log.record(
        app, EventType.ACCESS_SELF_REPORT, Actor(emp.seid, interface),
        {"audit_index": audit_index, "taxpayer": entry.get("object", {}).get("taxpayer")},
        {"reason": text})
    with session_scope(app.engine) as s:
        s.add(SelfReport(seid=emp.seid, audit_index=audit_index, reason=text,
                         reported_at=app.clock.now()))
        for alert in s.scalars(select(Alert).where(Alert.seid == emp.seid, Alert.self_reported.is_(False))):
            if audit_index in json.loads(alert.audit_indexes):
                alert.self_reported = True  # a flag for the queue; score and state stay
    return SelfReported(seid=emp.seid, audit_index=audit_index, recorded_as=idx)


def _parse_time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


# ---------------------------------------------------------------- the queue


def _analyst(s: Session, seid: str) -> Employee:
    emp = s.scalar(select(Employee).where(Employee.seid == (seid or "").strip().upper()))
    if emp is None or not emp.active or not (emp.role_set & ALERT_REVIEWERS):
        raise AccessDenied([NOT_ANALYST])
    return emp


def _alert(s: Session, alert_id: str) -> Alert:
    alert = s.scalar(select(Alert).where(Alert.alert_id == (alert_id or "").strip().upper()))
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def _check_may_work(s: Session, analyst: Employee, alert: Alert) -> None:
    """Never about themselves, never about their own unit."""
    if alert.seid == analyst.seid:
        raise AccessDenied([OWN_ALERT])
    unit = s.scalar(select(Unit.code).where(Unit.id == analyst.unit_id))
    subject_unit = s.scalar(select(Unit.code).join(Employee, Employee.unit_id == Unit.id)
                            .where(Employee.seid == alert.seid))
    if unit is not None and unit in (alert.unit, subject_unit):
        raise AccessDenied([OWN_UNIT])


def _step(app: App, alert_id: str, analyst_seid: str, action: str, *, need_state: tuple[str, ...],
          new_state: str | None, note: str = "", interface: str = "cli",
          event: DetectionEvent, extra: dict[str, Any] | None = None,
          must_be_assignee: bool = True) -> AlertStepDone:
    screen_text(note, "reason" if action == "dismiss" else "note")  # recorded verbatim
    with session_scope(app.engine) as s:
        analyst = _analyst(s, analyst_seid)
        alert = _alert(s, alert_id)
        _check_may_work(s, analyst, alert)
        if alert.state in CLOSED:
            raise Conflict(f"alert {alert.alert_id} is already {alert.state}")
        if alert.state not in need_state:
            raise Conflict(f"alert {alert.alert_id} is {alert.state}; {action} needs {' or '.join(need_state)}")
        if must_be_assignee and alert.assignee not in (None, analyst.seid):
            raise AccessDenied([Reason("NOT_IN_PROFILE", f"alert {alert.alert_id} is assigned to {alert.assignee}")])
        aid, seid = alert.alert_id, analyst.seid
    idx = audit_log.record(app, event, Actor(seid, interface), {"alert_id": aid},
                           {"note": note[:500], **(extra or {})})
    now = app.clock.now()
    with session_scope(app.engine) as s:
        alert = _alert(s, aid)
        if new_state is not None:
            alert.state = new_state
        if action == "assign":
            alert.assignee = seid
        if action in ("dismiss", "refer"):
            alert.close_reason = note
            alert.confirmed = action == "refer"
        alert.updated_at = now
        s.add(AlertAction(alert_id=aid, action=action, actor=seid, note=note[:2000], at=now,
                          audit_index=idx))
    return AlertStepDone(alert_id=aid, action=action, by=seid, state=new_state, audit_index=idx)


def assign(app: App, *, alert_id: str, analyst: str, interface: str = "cli") -> AlertStepDone:
    """Take an open alert (the analyst assigns it to themselves). Records detect:alert:assign."""
    return _step(app, alert_id, analyst, "assign", need_state=("open",), new_state="assigned",
                 interface=interface, event=DetectionEvent.DETECT_ALERT_ASSIGN)


def review(app: App, *, alert_id: str, analyst: str, note: str, interface: str = "cli") -> AlertStepDone:
    """Add a review note to an assigned alert (state unchanged)."""
    return _step(app, alert_id, analyst, "review", need_state=("assigned",), new_state=None,
                 note=note, interface=interface, event=DetectionEvent.DETECT_ALERT_REVIEW)


def dismiss(app: App, *, alert_id: str, analyst: str, reason: str, interface: str = "cli") -> AlertStepDone:
    """Close an assigned alert as not a violation; a reason is required."""
    if not (reason or "").strip():
        raise ValidationFailed(["reason: a dismissal needs a reason"])
    return _step(app, alert_id, analyst, "dismiss", need_state=("assigned",), new_state="dismissed",
                 note=reason.strip(), interface=interface, event=DetectionEvent.DETECT_ALERT_DISMISS)


def refer(app: App, *, alert_id: str, analyst: str, note: str = "",
          interface: str = "cli") -> AlertReferred:
    """Refer an assigned alert to the inspector general with its package (proofs included)."""
    screen_text(note, "note")  # before the package's checkpoint is written
    with session_scope(app.engine) as s:
        _analyst(s, analyst)
        alert = _alert(s, alert_id)
        indexes = json.loads(alert.audit_indexes)
    package = referral_package(app, alert_id)
    out = _step(app, alert_id, analyst, "refer", need_state=("assigned",), new_state="referred",
                note=note or "referred to the inspector general", interface=interface,
                event=DetectionEvent.DETECT_ALERT_REFER,
                extra={"entries": len(indexes), "tree_size": package["checkpoint"]["tree_size"],
                       "case_id": investigations.case_id_of(alert_id)})
    package["referred_by"] = out.by
    with session_scope(app.engine) as s:
        s.add(Referral(alert_id=out.alert_id, package=json.dumps(package), created_at=app.clock.now()))
        alert = _alert(s, out.alert_id)
        case_id = investigations.create(s, alert_id=alert.alert_id, subject=alert.seid,
                                        unit=alert.unit, referred_by=out.by,
                                        at=app.clock.now())
    return AlertReferred(alert_id=out.alert_id, action=out.action, by=out.by, state=out.state,
                         audit_index=out.audit_index, case_id=case_id, package=package)


def _covering_checkpoint(app: App, needed: int) -> str:
    try:
        note = audit_service.latest_checkpoint(app)
        if Checkpoint.parse(note.split("\n\n")[0] + "\n").size > needed:
            return note
    except NotFound:
        pass
    return audit_service.checkpoint_now(app)


def referral_package(app: App, alert_id: str) -> dict[str, Any]:
    """Evidence + each cited entry (base64 leaf) with its inclusion proof against a checkpoint."""
    with session_scope(app.engine) as s:
        alert = _alert(s, alert_id)
        data = alert_dict(alert).as_dict()  # the package is stored as JSON
        actions = [{"action": a.action, "actor": a.actor, "note": a.note, "at": a.at.isoformat(),
                    "audit_index": a.audit_index}
                   for a in s.scalars(select(AlertAction).where(AlertAction.alert_id == alert.alert_id)
                                      .order_by(AlertAction.id))]
        reports = [{"audit_index": r.audit_index, "reason": r.reason, "at": r.reported_at.isoformat()}
                   for r in s.scalars(select(SelfReport).where(
                       SelfReport.audit_index.in_(data["audit_indexes"])))]
    indexes = data["audit_indexes"]
    note = _covering_checkpoint(app, max(indexes) if indexes else 0)
    size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
    entries = []
    for i in indexes:
        _, leaf = read_entry(app, i)
        proof = audit_service.inclusion_proof(app, i, size)
        entries.append({"index": i, "leaf_input": base64.b64encode(leaf).decode(),
                        "inclusion_proof": proof["hashes"]})
    return {"alert": data, "triage": actions, "self_reports": reports,
            "checkpoint": {"note": note, "tree_size": size}, "entries": entries}


def verify_package(package: dict[str, Any]) -> int:
    """Check every entry's inclusion proof against the package's checkpoint root; the count.

    Raises merkle.ProofError on the first entry that does not verify. (The checkpoint's
    signature is checked with the published key by ``idrs audit verify`` tooling.)
    """
    ck = Checkpoint.parse(package["checkpoint"]["note"].split("\n\n")[0] + "\n")
    for e in package["entries"]:
        leaf = base64.b64decode(e["leaf_input"])
        merkle.verify_inclusion(e["index"], ck.size, merkle.leaf_hash(leaf),
                                [bytes.fromhex(h) for h in e["inclusion_proof"]], ck.root)
    return len(package["entries"])


def _alert_fields(alert: Alert) -> dict[str, Any]:
    signals = json.loads(alert.signals)
    return {"alert_id": alert.alert_id, "seid": alert.seid, "unit": alert.unit,
            "day": alert.day.isoformat(), "score": alert.score, "category": alert.category,
            "signals": signals, "audit_indexes": json.loads(alert.audit_indexes),
            "taxpayers": json.loads(alert.taxpayers), "state": alert.state,
            "assignee": alert.assignee, "self_reported": alert.self_reported,
            "close_reason": alert.close_reason,
            "why": explain.why(signals)}  # issue 17.6: in words


def alert_dict(alert: Alert) -> AlertView:
    """The alert as the queue shows it (``as_dict()``: as a referral package holds it)."""
    return AlertView(**_alert_fields(alert))


def list_alerts(app: App, *, state: str | None = None, analyst: str | None = None,
                limit: int = 200) -> list[AlertView]:
    """Alerts by score (highest first); with ``analyst``, only those they may work."""
    with session_scope(app.engine) as s:
        q = select(Alert).order_by(Alert.score.desc(), Alert.id)
        if state:
            q = q.where(Alert.state == state)
        rows = list(s.scalars(q))
        out = []
        who = _analyst(s, analyst) if analyst else None
        for a in rows:
            if who is not None:
                try:
                    _check_may_work(s, who, a)
                except AccessDenied:
                    continue
            out.append(alert_dict(a))
            if len(out) >= limit:
                break
    return out


def show(app: App, alert_id: str, *, analyst: str | None = None,
         interface: str = "cli") -> AlertDetail:
    """One alert with its triage history and self-reports (recorded: detect:alert:show).

    With ``analyst`` (the HTTP interfaces), the role is checked before the alert is looked
    up: someone who is no privacy analyst learns nothing, not even whether the alert exists.
    """
    with session_scope(app.engine) as s:
        who = _analyst(s, analyst) if analyst else None
        alert = _alert(s, alert_id)
        if who is not None:
            _check_may_work(s, who, alert)
        fields = _alert_fields(alert)
        actions = [TriageAction(action=a.action, actor=a.actor, note=a.note,
                                at=a.at.isoformat(), audit_index=a.audit_index)
                   for a in s.scalars(select(AlertAction).where(
                       AlertAction.alert_id == alert.alert_id).order_by(AlertAction.id))]
        reports = [AlertSelfReport(audit_index=r.audit_index, seid=r.seid, reason=r.reason,
                                   reported_at=r.reported_at.isoformat())
                   for r in s.scalars(select(SelfReport).where(
                       SelfReport.audit_index.in_(fields["audit_indexes"]),
                       SelfReport.seid == alert.seid).order_by(SelfReport.id))]
    case_id = (investigations.case_id_of(fields["alert_id"]) if fields["state"] == "referred"
               else None)
    data = AlertDetail(**fields, actions=actions, self_reports=reports, case_id=case_id)
    audit_log.record(app, DetectionEvent.DETECT_ALERT_SHOW, Actor(analyst or "system", interface),
                     {"alert_id": data.alert_id})
    return data
