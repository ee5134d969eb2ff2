"""Detection tables: the cursor, what the log taught us (bases, volumes), alerts and triage,
self-reports, weekly reports and certifications, taxpayer notices, investigations.

Nothing here holds a plaintext TIN or name: taxpayers appear as audit-log pseudonyms.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class DetectionCursor(Base):
    """One row (id 1): the next audit index a detection run will read."""

    __tablename__ = "detection_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DetectionBasis(Base):
    """A need-to-know basis seen in the log: who opened it, for whom, on which taxpayer."""

    __tablename__ = "detection_basis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # case | contact
    basis_id: Mapped[str] = mapped_column(String(40))
    seid: Mapped[str] = mapped_column(String(8))
    taxpayer: Mapped[str] = mapped_column(String(40))
    opened_by: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8), default="")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    open_index: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("kind", "basis_id", name="uq_detection_basis"),
                      Index("ix_detection_basis_tp", "taxpayer"),
                      Index("ix_detection_basis_id", "basis_id"))


class DetectionEmployeeDay(Base):
    """Per employee and day: research calls and distinct taxpayers (the volume history)."""

    __tablename__ = "detection_employee_day"

    seid: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    taxpayers: Mapped[int] = mapped_column(Integer, default=0)


class DetectionTaxpayerKey(Base):
    """Pseudonym of each master-file taxpayer (computed once, to join log and master file)."""

    __tablename__ = "detection_taxpayer_key"

    taxpayer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pseudonym: Mapped[str] = mapped_column(String(40), unique=True)


class Alert(Base):
    """One alert: an employee's unexplained or refused accesses of one day, scored."""

    __tablename__ = "detection_alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(16), unique=True)
    seid: Mapped[str] = mapped_column(String(8), index=True)
    unit: Mapped[str] = mapped_column(String(20), default="")
    day: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(40))
    signals: Mapped[str] = mapped_column(Text)  # JSON list of {name, weight, evidence}
    audit_indexes: Mapped[str] = mapped_column(Text)  # JSON list of ints
    taxpayers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of pseudonyms
    state: Mapped[str] = mapped_column(String(12), default="open")  # open|assigned|dismissed|referred
    assignee: Mapped[str | None] = mapped_column(String(8), nullable=True)
    self_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_detection_alert_seid_day", "seid", "day"),)


class AlertAction(Base):
    """Every triage step on an alert (also in the audit log)."""

    __tablename__ = "detection_alert_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audit_index: Mapped[int] = mapped_column(BigInteger)


class Referral(Base):
    """A referral package to the inspector general: evidence + entries with inclusion proofs."""

    __tablename__ = "detection_referral"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(16), unique=True)
    package: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SelfReport(Base):
    """An employee's own report of an accidental access (within a day of it)."""

    __tablename__ = "detection_self_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seid: Mapped[str] = mapped_column(String(8), index=True)
    audit_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    reason: Mapped[str] = mapped_column(Text)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WeeklyReport(Base):
    """A unit's weekly security report (refusals for conflicts, open alerts) and its certification."""

    __tablename__ = "detection_weekly_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit: Mapped[str] = mapped_column(String(20))
    week_start: Mapped[date] = mapped_column(Date)
    content: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    certified_by: Mapped[str | None] = mapped_column(String(8), nullable=True)
    certified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (UniqueConstraint("unit", "week_start", name="uq_detection_weekly"),)


class TaxpayerNotice(Base):
    """An IRC 7431(e) notice of unauthorized inspection, as sent."""

    __tablename__ = "detection_taxpayer_notice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(16))
    taxpayer: Mapped[str] = mapped_column(String(40))
    html: Mapped[str] = mapped_column(Text)
    pdf_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audit_index: Mapped[int] = mapped_column(BigInteger)
    #: the statutory trigger it was issued on (criminal_charge | adverse_action_proposed);
    #: None for a notice sent before investigations were recorded (at referral)
    trigger: Mapped[str | None] = mapped_column(String(32), nullable=True)
    __table_args__ = (UniqueConstraint("alert_id", "taxpayer", name="uq_detection_notice"),)


class Investigation(Base):
    """The investigation of a referred alert: referred → opened → closed, with its finding.

    One per alert (created at referral). ``finding`` is unsubstantiated | substantiated |
    None; every step (opening, each outcome, the closing) is a row of
    ``InvestigationStep`` and an audit entry.
    """

    __tablename__ = "detection_investigation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(24), unique=True)
    alert_id: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str] = mapped_column(String(8), index=True)
    unit: Mapped[str] = mapped_column(String(20), default="")
    state: Mapped[str] = mapped_column(String(12), default="referred")  # referred|opened|closed
    finding: Mapped[str | None] = mapped_column(String(16), nullable=True)
    investigator: Mapped[str | None] = mapped_column(String(8), nullable=True)
    referred_by: Mapped[str] = mapped_column(String(64), default="")
    referred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InvestigationStep(Base):
    """One step of an investigation (open, an outcome, close): each at most once per case."""

    __tablename__ = "detection_investigation_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(24), index=True)
    step: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audit_index: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("case_id", "step", name="uq_detection_investigation_step"),
                      Index("ix_detection_investigation_step_at", "at"))
