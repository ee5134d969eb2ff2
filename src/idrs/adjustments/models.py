"""Adjustment requests, their postings, the research trail and the entity's history tables.

* ``adjustment_request``: one requested change (ENREQ / ADJ54 / REQ77, or the reversal of an
  earlier one) with who asked, why, on which case, the version it was based on, and its
  status ``pending_approval`` → ``applied`` | ``rejected`` | ``expired`` (or ``applied`` at
  once below the two-person thresholds). Never deleted. Identity values to be applied
  (a new name or address) are kept only encrypted (``payload_enc``); ``payload`` holds the
  non-identifying fields.
* ``adjustment_posting``: each row the change posted (a transaction, an entity address
  record, a name-history row) with who posted it, who approved it and on which case.
* ``research_trail``: one row per ALLOWED research call (session, employee, taxpayer blind
  index, command, tax year, the version seen); the prerequisite-research check reads it.
* ``entity_version``: the optimistic-concurrency counter of a taxpayer's entity (ENREQ).
* ``taxpayer_name_history``: every name a taxpayer had, dated (the ``taxpayer`` row holds the
  current one; the history keeps the previous values readable).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base

PENDING = "pending_approval"
APPLIED = "applied"
REJECTED = "rejected"
EXPIRED = "expired"
STATUSES = (PENDING, APPLIED, REJECTED, EXPIRED)


class AdjustmentRequest(Base):
    __tablename__ = "adjustment_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command: Mapped[str] = mapped_column(String(5))  # ENREQ | ADJ54 | REQ77
    kind: Mapped[str] = mapped_column(String(10), default="change")  # change | reversal
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("adjustment_request.id"), nullable=True, index=True
    )
    requester_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    requester_seid: Mapped[str] = mapped_column(String(8))
    signin_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id"), index=True)
    module_id: Mapped[int | None] = mapped_column(ForeignKey("tax_module.id"), nullable=True)
    tax_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tc: Mapped[str | None] = mapped_column(String(3), nullable=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    action_code: Mapped[str | None] = mapped_column(String(4), nullable=True)
    effective_date: Mapped[date] = mapped_column(Date)
    #: JSON of the non-identifying request fields (which entity fields change, etc.)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    #: AES-GCM (column "adjustment_request.payload") JSON of a new name / address
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    base_version: Mapped[int] = mapped_column(Integer)
    applied_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    #: comma-separated two-person triggers (rules.Trigger) when pending
    requires: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("employee.id"), nullable=True)
    approver_seid: Mapped[str | None] = mapped_column(String(8), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_audit_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_audit_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (Index("ix_adjustment_request_status", "status", "expires_at"),)


class AdjustmentPosting(Base):
    """One row posted by an applied adjustment: who, why (the request), the case, the approver."""

    __tablename__ = "adjustment_posting"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adjustment_id: Mapped[int] = mapped_column(ForeignKey("adjustment_request.id"), index=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # txn | address | name
    txn_id: Mapped[int | None] = mapped_column(ForeignKey("txn.id"), nullable=True, index=True)
    address_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("address_record.id"), nullable=True
    )
    name_history_id: Mapped[int | None] = mapped_column(
        ForeignKey("taxpayer_name_history.id"), nullable=True
    )
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posted_by: Mapped[str] = mapped_column(String(8))
    approved_by: Mapped[str | None] = mapped_column(String(8), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ResearchTrail(Base):
    """An allowed research call, kept for the prerequisite-research rule (same session)."""

    __tablename__ = "research_trail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signin_session_id: Mapped[int] = mapped_column(Integer)
    employee_id: Mapped[int] = mapped_column(Integer)
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    command: Mapped[str] = mapped_column(String(5))
    tax_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the module version (TXMOD) or entity version (ENMOD) at the time of the research
    version_seen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        Index("ix_research_trail_lookup", "signin_session_id", "tin_index", "command", "tax_year"),
    )


class EntityVersion(Base):
    """The entity's optimistic-concurrency counter (absent row = version 0)."""

    __tablename__ = "entity_version"

    taxpayer_id: Mapped[int] = mapped_column(
        ForeignKey("taxpayer.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    version: Mapped[int] = mapped_column(Integer)


class NameHistory(Base):
    """A name the taxpayer had from ``valid_from`` (the newest row is the current name)."""

    __tablename__ = "taxpayer_name_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id", ondelete="CASCADE"))
    first_name: Mapped[str] = mapped_column(String(40))
    middle_name: Mapped[str] = mapped_column(String(40), default="")
    last_name: Mapped[str] = mapped_column(String(60))
    suffix: Mapped[str] = mapped_column(String(10), default="")
    name_control: Mapped[str] = mapped_column(String(4))
    valid_from: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(12))  # original | adjustment | reversal
    adjustment_id: Mapped[int | None] = mapped_column(
        ForeignKey("adjustment_request.id"), nullable=True
    )
    __table_args__ = (Index("ix_taxpayer_name_history_tp", "taxpayer_id", "recorded_at"),)
