"""Investigations of referred alerts, to their end, and the §7431(e) notice at the right time.

A referral (``triage.refer``) creates the alert's case, ``INV-<alert id>``, in state
``referred``. Then:

- ``open``: an investigator (``people.roles.INVESTIGATORS``) takes the case:
  referred → opened. Never the subject of the alert, never someone of the subject's unit,
  never the analyst who referred it.
- ``outcome``: the investigator who opened it records an outcome, each at most once:

  ============================ ==================================================== =========
  outcome                      needs                                                then
  ============================ ==================================================== =========
  ``unsubstantiated``          opened, no finding yet                               closed
  ``substantiated``            opened, no finding yet                               finding
  ``adverse_action_proposed``  opened, substantiated, the subject has not resigned  notice
  ``criminal_charge``          opened or closed, substantiated or resigned          notice
  ``resigned``                 opened (resignation before completion)               —
  ============================ ==================================================== =========

- ``close``: the investigator ends an opened case that is substantiated or whose subject
  resigned (an unsubstantiated finding closes it at once). A criminal charge may still be
  recorded on a closed case: a prosecution can follow the administrative end.

IRC §7431(e) requires the notice to the taxpayer when a person is criminally charged with
the inspection or disclosure, or when the agency proposes disciplinary or adverse action
against an employee for it — not when an alert is raised or referred. So the notice is
issued here, on ``criminal_charge`` or ``adverse_action_proposed``, to each taxpayer whose
return information the alert's allowed entries inspected, and exactly once per taxpayer
and alert (the second trigger finds it sent; the table's unique key backs that).

Every step, and every refused attempt (outcome ``deny`` with its reason codes), is an
audit entry first (``detect:investigation:*``) naming the actor; reasons are recorded
verbatim, so they are screened for taxpayer identifiers. A check that fails changes
nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idrs.audit import log as audit_log
from idrs.audit.events import make_event
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.events import DetectionEvent
from idrs.detection.models import Investigation, InvestigationStep, TaxpayerNotice
from idrs.detection.results import (
    CaseDetail,
    CaseNotice,
    CaseRow,
    CaseStep,
    CaseStepDone,
    CaseTriggerStep,
    TriggeredNotices,
)
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import screen_text
from idrs.people.models import Employee, Unit
from idrs.people.roles import INVESTIGATORS

STATES = ("referred", "opened", "closed")
#: the outcomes, in the order they are listed
OUTCOMES = ("unsubstantiated", "substantiated", "adverse_action_proposed", "criminal_charge",
            "resigned")
#: the outcomes on which IRC §7431(e) requires the notice to the taxpayer
NOTICE_TRIGGERS = frozenset({"criminal_charge", "adverse_action_proposed"})
STEPS = ("open", *OUTCOMES, "close")

NOT_INVESTIGATOR = Reason("NOT_IN_PROFILE", "only an investigator works an investigation")
OWN_CASE = Reason("SELF_APPROVAL", "no one investigates, or moves, a case about themselves")
REFERRER = Reason("SELF_APPROVAL", "the analyst who referred an alert does not investigate it")
OWN_UNIT = Reason("CONFLICT_COWORKER", "an investigator never works a case about their own unit")


def case_id_of(alert_id: str) -> str:
    """The case of an alert: ``INV-`` and the alert's id."""
    return f"INV-{alert_id.strip().upper()}"


def create(s: Session, *, alert_id: str, subject: str, unit: str, referred_by: str,
           at: datetime) -> str:
    """The case of a referred alert, in state ``referred`` (triage.refer calls this)."""
    cid = case_id_of(alert_id)
    if s.scalar(select(Investigation.id).where(Investigation.alert_id == alert_id)) is None:
        s.add(Investigation(case_id=cid, alert_id=alert_id, subject=subject, unit=unit,
                            state="referred", referred_by=referred_by, referred_at=at,
                            updated_at=at))
    return cid


# ---------------------------------------------------------------- who may act


def _case(s: Session, case_id: str, *, lock: bool = False) -> Investigation:
    q = select(Investigation).where(Investigation.case_id == (case_id or "").strip().upper()[:24])
    if lock:
        q = q.with_for_update()
    inv = s.scalar(q)
    if inv is None:
        raise NotFound(f"no investigation {case_id}")
    return inv


def _refusal(s: Session, seid: str, inv: Investigation | None) -> Reason | None:
    """Why ``seid`` may not act on ``inv`` (or on investigations at all); None when they may."""
    who = (seid or "").strip().upper()
    emp = s.scalar(select(Employee).where(Employee.seid == who))
    if inv is not None and who == inv.subject:
        return OWN_CASE  # first: the subject is refused whatever roles they hold
    if emp is None or not emp.active or not (emp.role_set & INVESTIGATORS):
        return NOT_INVESTIGATOR
    if inv is None:
        return None
    if who == inv.referred_by:
        return REFERRER
    unit = s.scalar(select(Unit.code).where(Unit.id == emp.unit_id))
    subject_unit = s.scalar(select(Unit.code).join(Employee, Employee.unit_id == Unit.id)
                            .where(Employee.seid == inv.subject))
    if unit is not None and unit in (inv.unit, subject_unit):
        return OWN_UNIT
    return None


def _deny(app: App, event: DetectionEvent, actor: str, case_id: str, reason: Reason,
          interface: str, detail: dict[str, Any] | None = None) -> AccessDenied:
    idx = audit_log.append(app.engine, make_event(
        event, time=app.clock.now(), actor=(actor or "").strip().upper()[:64] or "unknown",
        outcome="deny", interface=interface, obj={"case_id": case_id},
        reasons=[reason.code], detail=detail))
    return AccessDenied([reason], audit_index=idx)


# ---------------------------------------------------------------- the steps


def _reason_text(reason: str, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed([f"reason: {what} needs a reason"])
    screen_text(text, "reason")  # recorded verbatim: no taxpayer identifier in it
    return text[:2000]


def _allowed(inv: Investigation, step: str, done: set[str]) -> str | None:
    """Why ``step`` cannot be taken now (a Conflict message), None when it can."""
    if step in done:
        return f"{step} is already recorded on {inv.case_id}"
    if step == "open":
        return None if inv.state == "referred" else f"{inv.case_id} is {inv.state}; open needs referred"
    need_open = f"{inv.case_id} is {inv.state}; {step} needs an opened investigation"
    if step == "criminal_charge":
        if inv.state not in ("opened", "closed"):
            return need_open
        if inv.finding != "substantiated" and "resigned" not in done:
            return f"{inv.case_id}: a criminal charge needs a substantiated finding or a resignation"
        return None
    if inv.state != "opened":
        return need_open
    if step in ("unsubstantiated", "substantiated"):
        return None if inv.finding is None else f"{inv.case_id} is already {inv.finding}"
    if step == "adverse_action_proposed":
        if inv.finding != "substantiated":
            return f"{inv.case_id}: an adverse action is proposed only on a substantiated finding"
        if "resigned" in done:
            return f"{inv.case_id}: the subject resigned; no action can be proposed"
        return None
    if step == "close":
        if inv.finding != "substantiated" and "resigned" not in done:
            return f"{inv.case_id}: close needs a substantiated finding or a resignation"
        return None
    return None  # resigned


def _take(app: App, *, case_id: str, step: str, actor: str, reason: str,
          interface: str) -> CaseStepDone:
    """Check, record (audit entry first), then write; on SQLite a session holds the write
    lock, so the audit entry is appended between the two sessions, as triage does."""
    event = {"open": DetectionEvent.DETECT_INVESTIGATION_OPEN,
             "close": DetectionEvent.DETECT_INVESTIGATION_CLOSE}.get(
                 step, DetectionEvent.DETECT_INVESTIGATION_OUTCOME)
    seid = (actor or "").strip().upper()
    cid = (case_id or "").strip().upper()[:24]
    with session_scope(app.engine) as s:
        refusal = _refusal(s, seid, None)  # the role first: a stranger learns nothing
        inv = _case(s, cid) if refusal is None else None
        if inv is not None:
            cid = inv.case_id
            refusal = _refusal(s, seid, inv)
        if refusal is None and inv is not None and step != "open" and (
                inv.investigator not in (None, seid)):
            refusal = Reason("NOT_IN_PROFILE", f"{cid} is investigated by {inv.investigator}")
        if refusal is not None or inv is None:
            why, aid, subject = None, "", ""
        else:
            why, aid, subject = _allowed(inv, step, _done(s, cid)), inv.alert_id, inv.subject
    if refusal is not None:
        raise _deny(app, event, seid, cid, refusal, interface, {"step": step})
    if why is not None:
        raise Conflict(why)
    text = _reason_text(reason, step.replace("_", " "))
    now = app.clock.now()
    idx = audit_log.append(app.engine, make_event(
        event, time=now, actor=seid, outcome="success", interface=interface,
        obj={"case_id": cid, "alert_id": aid},
        detail={"step": step, "reason": text, "subject": subject}))
    try:
        with session_scope(app.engine) as s:
            inv = _case(s, cid, lock=True)
            why = _allowed(inv, step, _done(s, cid))
            if why is not None:  # another request moved the case in between
                raise Conflict(why)
            s.add(InvestigationStep(case_id=cid, step=step, actor=seid, reason=text, at=now,
                                    audit_index=idx))
            if step == "open":
                inv.state, inv.investigator, inv.opened_at = "opened", seid, now
            elif step in ("unsubstantiated", "substantiated"):
                inv.finding = step
            if step in ("unsubstantiated", "close"):
                inv.state, inv.closed_at = "closed", now
            inv.updated_at = now
            state, finding = inv.state, inv.finding
    except IntegrityError:  # the same step recorded at the same moment by another request
        raise Conflict(f"{step} is already recorded on {cid}") from None
    if step in NOTICE_TRIGGERS:
        return CaseTriggerStep(case_id=cid, alert_id=aid, step=step, by=seid, state=state,
                               finding=finding, audit_index=idx,
                               notices=_notify(app, aid, step, seid, interface))
    return CaseStepDone(case_id=cid, alert_id=aid, step=step, by=seid, state=state,
                        finding=finding, audit_index=idx)


def _done(s: Session, case_id: str) -> set[str]:
    return set(s.scalars(select(InvestigationStep.step).where(InvestigationStep.case_id == case_id)))


def _notify(app: App, alert_id: str, trigger: str, actor: str,
            interface: str) -> TriggeredNotices:
    """Issue the alert's §7431(e) notices on ``trigger``; what was sent, or why nothing was."""
    del trigger  # the letter names the first trigger recorded (investigations.trigger_of)
    from idrs.detection import notices

    try:
        sent = notices.issue(app, alert_id=alert_id, actor=actor, interface=interface)
    except Conflict:
        return TriggeredNotices(
            sent=[], why_none="already sent on an earlier trigger (notice is issued once)")
    except (NotFound, IdrsError) as exc:
        if isinstance(exc, AccessDenied):
            raise
        return TriggeredNotices(sent=[], why_none=str(exc))
    return TriggeredNotices(sent=sent, why_none=None)


def open_case(app: App, *, case_id: str, investigator: str, reason: str,
              interface: str = "cli") -> CaseStepDone:
    """The investigator takes a referred case (referred → opened)."""
    return _take(app, case_id=case_id, step="open", actor=investigator, reason=reason,
                 interface=interface)


def record_outcome(app: App, *, case_id: str, outcome: str, investigator: str, reason: str,
                   interface: str = "cli") -> CaseStepDone:
    """Record one outcome; on a statutory trigger the taxpayers' notices are issued once."""
    name = (outcome or "").strip().lower().replace("-", "_")
    if name not in OUTCOMES:
        raise ValidationFailed([f"outcome: one of {', '.join(OUTCOMES)}"])  # never echoed
    return _take(app, case_id=case_id, step=name, actor=investigator, reason=reason,
                 interface=interface)


def close(app: App, *, case_id: str, investigator: str, reason: str,
          interface: str = "cli") -> CaseStepDone:
    """End an opened case that is substantiated or whose subject resigned."""
    return _take(app, case_id=case_id, step="close", actor=investigator, reason=reason,
                 interface=interface)


# ---------------------------------------------------------------- reading


def _steps(s: Session, case_id: str) -> list[CaseStep]:
    return [CaseStep(step=st.step, actor=st.actor, reason=st.reason,
                     at=as_utc(st.at).isoformat(), audit_index=st.audit_index)
            for st in s.scalars(select(InvestigationStep).where(InvestigationStep.case_id == case_id)
                                .order_by(InvestigationStep.id))]


def _fields(inv: Investigation) -> dict[str, Any]:
    return {"case_id": inv.case_id, "alert_id": inv.alert_id, "subject": inv.subject,
            "unit": inv.unit, "state": inv.state, "finding": inv.finding,
            "investigator": inv.investigator, "referred_by": inv.referred_by,
            "referred_at": as_utc(inv.referred_at).isoformat(),
            "opened_at": as_utc(inv.opened_at).isoformat() if inv.opened_at else None,
            "closed_at": as_utc(inv.closed_at).isoformat() if inv.closed_at else None}


def _reader_refusal(app: App, seid: str, case_id: str | None,
                    interface: str) -> None:
    """Refuse (recorded) a reader who may not see investigations, or this case."""
    with session_scope(app.engine) as s:
        inv = _case(s, case_id) if case_id is not None else None
        refusal = _refusal(s, seid, inv)
        cid = inv.case_id if inv is not None else "*"
    if refusal is not None:
        raise _deny(app, DetectionEvent.DETECT_INVESTIGATION_SHOW, seid, cid, refusal, interface)


def list_cases(app: App, *, investigator: str, state: str | None = None,
               interface: str = "cli") -> list[CaseRow]:
    """The cases ``investigator`` may work (never their own, their unit's or their referrals)."""
    if state is not None and state not in STATES:
        raise ValidationFailed([f"state: one of {', '.join(STATES)}"])
    _reader_refusal(app, investigator, None, interface)
    with session_scope(app.engine) as s:
        q = select(Investigation).order_by(Investigation.referred_at.desc(), Investigation.id.desc())
        if state:
            q = q.where(Investigation.state == state)
        out = []
        for inv in list(s.scalars(q)):
            if _refusal(s, investigator, inv) is None:
                out.append(CaseRow(**_fields(inv), outcomes=[
                    st.step for st in _steps(s, inv.case_id) if st.step in OUTCOMES]))
    return out


def show(app: App, *, case_id: str, investigator: str, interface: str = "cli") -> CaseDetail:
    """One case with its steps, what may be done next, and its notices (recorded).

    The role is checked before the case is looked up: someone who is no investigator learns
    nothing, not even whether the case exists.
    """
    _reader_refusal(app, investigator, None, interface)
    _reader_refusal(app, investigator, case_id, interface)
    seid = investigator.strip().upper()
    with session_scope(app.engine) as s:
        inv = _case(s, case_id)
        steps = _steps(s, inv.case_id)
        done = {st.step for st in steps}
        mine = inv.investigator in (None, seid)
        data = CaseDetail(
            **_fields(inv), steps=steps,
            outcomes=[st.step for st in steps if st.step in OUTCOMES],
            next=[st for st in STEPS if mine and _allowed(inv, st, done) is None
                  and (st == "open") == (inv.state == "referred")],
            notices=[CaseNotice(notice_id=n.id, taxpayer=n.taxpayer, trigger=n.trigger,
                                sent_at=as_utc(n.sent_at).isoformat(), audit_index=n.audit_index)
                     for n in s.scalars(select(TaxpayerNotice).where(
                         TaxpayerNotice.alert_id == inv.alert_id).order_by(TaxpayerNotice.id))])
    audit_log.append(app.engine, make_event(
        DetectionEvent.DETECT_INVESTIGATION_SHOW, time=app.clock.now(), actor=seid,
        outcome="success", interface=interface, obj={"case_id": data.case_id}))
    return data


def trigger_of(s: Session, alert_id: str) -> str | None:
    """The first statutory trigger recorded on the alert's case (None: no notice is due)."""
    cid = case_id_of(alert_id)
    return s.scalar(select(InvestigationStep.step).where(
        InvestigationStep.case_id == cid, InvestigationStep.step.in_(NOTICE_TRIGGERS))
        .order_by(InvestigationStep.id))


def statistics(s: Session, *, subjects: set[str] | None, start: datetime | None = None,
               end: datetime | None = None) -> dict[str, Any]:
    """Counts of outcomes (recorded in [start, end) when given) and of cases by state.

    ``subjects``: only the cases about these employees (a unit's); None: every case. Counts
    only, no names: the weekly report shows them to the unit's manager.
    """
    cases = {inv.case_id: inv.state for inv in s.scalars(select(Investigation))
             if subjects is None or inv.subject in subjects}
    q = select(InvestigationStep.case_id, InvestigationStep.step).where(
        InvestigationStep.step.in_(OUTCOMES))
    if start is not None:
        q = q.where(InvestigationStep.at >= start)
    if end is not None:
        q = q.where(InvestigationStep.at < end)
    outcomes: Counter[str] = Counter(step for cid, step in s.execute(q) if cid in cases)
    notices = 0
    if cases:
        nq = select(TaxpayerNotice.sent_at, TaxpayerNotice.alert_id).where(
            TaxpayerNotice.trigger.is_not(None))
        for sent_at, aid in s.execute(nq):
            when = as_utc(sent_at)
            if case_id_of(aid) in cases and (start is None or when >= start) and (
                    end is None or when < end):
                notices += 1
    states = Counter(cases.values())
    return {"outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
            "notices_sent": notices,
            "cases": {st: states.get(st, 0) for st in STATES}}
