"""What detection answers, as typed records (:class:`idrs.results.Record`: they read as the
dicts the functions returned before, in the same key order, so every interface answers the
same): a run (:func:`idrs.detection.service.run`: the alerts it raised or changed and the
summary of what it read), the alert queue (``detection.triage``) and the investigations
(``detection.investigations``), the taxpayer's accounting and notices, the weekly reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idrs.results import Record


@dataclass(frozen=True, slots=True)
class RaisedAlert(Record):
    """An alert a run raised or changed, as the interfaces show it."""

    alert_id: str
    seid: str
    score: float
    category: str
    #: the employee-day, ISO 8601
    day: str
    #: name, weight, evidence and taxpayer pseudonym of each signal
    signals: list[dict[str, Any]]
    audit_indexes: list[int]
    #: one sentence per signal, then what was ruled out (:func:`idrs.detection.explain.why`)
    why: list[str]
    state: str


@dataclass(frozen=True, slots=True)
class RunSummary(Record):
    """What a run read, explained and changed (also the detail of its audit entry)."""

    from_index: int
    to_index: int
    entries_read: int
    context_from_index: int
    context_entries: int
    #: the first day recomputed (ISO 8601); None when nothing new was read
    recomputed_from_day: str | None
    context_capped: bool
    new_bases: int
    accesses: int
    explained_case: int
    explained_contact: int
    explained_walk_in: int
    explained_unit_workflow: int
    explained_collaboration: int
    name_searches: int
    unexplained: int
    refused: int
    alerts: int
    alerts_withdrawn: int


@dataclass(frozen=True, slots=True)
class DetectionRun(Record):
    """The answer of one run: the alerts raised or changed, and the summary."""

    alerts: list[RaisedAlert]
    summary: RunSummary


# ---------------------------------------------------------------- the alert queue (triage)


@dataclass(frozen=True, slots=True)
class AlertView(Record):
    """One alert as the queue lists it (:func:`idrs.detection.triage.list_alerts`)."""

    alert_id: str
    seid: str
    unit: str
    #: the employee-day, ISO 8601
    day: str
    score: float
    category: str
    #: name, weight, evidence and taxpayer pseudonym of each signal
    signals: list[dict[str, Any]]
    audit_indexes: list[int]
    #: the pseudonyms of the taxpayers the cited entries name
    taxpayers: list[str]
    state: str
    assignee: str | None
    self_reported: bool
    close_reason: str | None
    #: the signals in words (:func:`idrs.detection.explain.why`)
    why: list[str]


@dataclass(frozen=True, slots=True)
class TriageAction(Record):
    """One step taken on an alert (assign, review, dismiss, refer), with its audit entry."""

    action: str
    actor: str
    note: str
    #: ISO 8601
    at: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class AlertSelfReport(Record):
    """A self-report of the alert's subject about an entry the alert cites."""

    audit_index: int
    seid: str
    reason: str
    #: ISO 8601
    reported_at: str


@dataclass(frozen=True, slots=True)
class AlertDetail(AlertView):
    """One alert with its triage history, its subject's self-reports and its case."""

    actions: list[TriageAction]
    self_reports: list[AlertSelfReport]
    #: the investigation of a referred alert; None before a referral
    case_id: str | None


@dataclass(frozen=True, slots=True)
class AlertStepDone(Record):
    """A triage step done; ``state`` is None for a review (the state stays as it was)."""

    alert_id: str
    action: str
    by: str
    state: str | None
    audit_index: int


@dataclass(frozen=True, slots=True)
class AlertReferred(AlertStepDone):
    """A referral: the step, the case it opened and the referral package (as stored: plain
    JSON, the alert, its triage, self-reports, a checkpoint and each cited entry with its
    inclusion proof)."""

    case_id: str
    package: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SelfReported(Record):
    """A self-report recorded (``recorded_as``: its audit entry)."""

    seid: str
    audit_index: int
    recorded_as: int


# ---------------------------------------------------------------- the taxpayer's side


@dataclass(frozen=True, slots=True)
class Opening(Record):
    """One opening of a taxpayer's account, as the accounting shows it: no employee identity."""

    #: YYYY-MM-DD
    date: str
    unit: str
    purpose: str
    command: str | None


@dataclass(frozen=True, slots=True)
class TaxpayerAccounting(Record):
    """The accounting of one account (:func:`idrs.detection.taxpayer.accesses`)."""

    #: the taxpayer's pseudonym
    taxpayer: str
    openings: list[Opening]
    #: refused attempts (nothing was shown), counted
    refused_attempts: int
    #: each disclosure to another agency (``idrs.disclosure.service.accounting``)
    disclosures: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LetterSent(Record):
    """A §7431(e) letter written (HTML and PDF paths) and recorded as sent."""

    alert_id: str
    #: the taxpayer's pseudonym
    taxpayer: str
    trigger: str
    html: str
    pdf: str
    #: the days of the inspections it reports (YYYY-MM-DD)
    dates: list[str]
    audit_index: int


@dataclass(frozen=True, slots=True)
class NoticeSent(Record):
    """A notice issued, by its number (:func:`idrs.detection.notices.issue`)."""

    notice_id: int | None
    alert_id: str
    taxpayer: str
    dates: list[str]
    trigger: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class NoticeListed(Record):
    """A notice as the list shows it: number, alert, taxpayer pseudonym, when."""

    notice_id: int
    alert_id: str
    taxpayer: str
    trigger: str | None
    #: ISO 8601
    sent_at: str
    audit_index: int


# ---------------------------------------------------------------- investigations


@dataclass(frozen=True, slots=True)
class _CaseFields(Record):
    case_id: str
    alert_id: str
    #: the employee the alert is about
    subject: str
    unit: str
    state: str
    finding: str | None
    investigator: str | None
    referred_by: str
    #: ISO 8601, as the three times below
    referred_at: str
    opened_at: str | None
    closed_at: str | None


@dataclass(frozen=True, slots=True)
class CaseRow(_CaseFields):
    """A case as the investigator's list shows it, with the outcomes recorded."""

    outcomes: list[str]


@dataclass(frozen=True, slots=True)
class CaseStep(Record):
    """One step recorded on a case, with its audit entry."""

    step: str
    actor: str
    reason: str
    #: ISO 8601
    at: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class CaseNotice(Record):
    """A §7431(e) notice sent about the case's alert (taxpayer by pseudonym)."""

    notice_id: int
    taxpayer: str
    trigger: str | None
    #: ISO 8601
    sent_at: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class CaseDetail(_CaseFields):
    """One case: its steps, the outcomes among them, the steps that may come next, the
    notices sent."""

    steps: list[CaseStep]
    outcomes: list[str]
    next: list[str]
    notices: list[CaseNotice]


@dataclass(frozen=True, slots=True)
class TriggeredNotices(Record):
    """The notices a statutory trigger issued, or why none was (``why_none``)."""

    sent: list[NoticeSent]
    why_none: str | None


@dataclass(frozen=True, slots=True)
class CaseStepDone(Record):
    """A step taken on a case (open, an outcome, close)."""

    case_id: str
    alert_id: str
    step: str
    by: str
    state: str
    finding: str | None
    audit_index: int


@dataclass(frozen=True, slots=True)
class CaseTriggerStep(CaseStepDone):
    """An outcome that is a statutory trigger, with the notices it issued."""

    notices: TriggeredNotices


# ---------------------------------------------------------------- the weekly reports


@dataclass(frozen=True, slots=True)
class WeeklyReportView(Record):
    """A unit's weekly report as stored (:func:`idrs.detection.reports.weekly` answers a
    certified one so: it is frozen, nothing is recorded)."""

    unit: str
    #: the Monday, YYYY-MM-DD
    week_start: str
    #: the report's content as stored (plain JSON): conflict refusals, other refusals,
    #: open alerts, investigations
    report: dict[str, Any]
    certified_by: str | None
    #: ISO 8601
    certified_at: str | None


@dataclass(frozen=True, slots=True)
class WeeklyReportRecorded(WeeklyReportView):
    """A report built (or rebuilt) or certified, with the audit entry that recorded it."""

    audit_index: int


@dataclass(frozen=True, slots=True)
class ReportListed(Record):
    """A stored weekly report as the history lists it: its counts and certification."""

    unit: str
    week_start: str
    #: ISO 8601, as ``certified_at``
    created_at: str
    conflict_refusals: int
    open_alerts: int
    outcomes_this_week: int
    certified_by: str | None
    certified_at: str | None


@dataclass(frozen=True, slots=True)
class UncertifiedReport(Record):
    """A report no manager has certified, and the unit's managers."""

    unit: str
    week_start: str
    managers: list[str]


@dataclass(frozen=True, slots=True)
class CertificationRate(Record):
    """Reports built, certified, the rate (None without reports), the uncertified ones."""

    reports: int
    certified: int
    rate: float | None
    not_certified: list[UncertifiedReport]
