"""The need-to-know bases (case assignments, taxpayer contacts) and declared relationships."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class CaseAssignment(Base):
    __tablename__ = "case_assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), unique=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        Index("ix_case_assignment_emp_tin", "employee_id", "tin_index"),
        Index("ix_case_assignment_tin", "tin_index"),
    )


class TaxpayerContact(Base):
    __tablename__ = "taxpayer_contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(40), unique=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    channel: Mapped[str] = mapped_column(String(8), default="phone")  # phone|letter|visit
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: where the need to know comes from: ``inbound`` (a call, letter or visit the telephony
    #: or correspondence feed recorded, ``recorded_by`` names that system) or ``declared``
    #: (an employee of a walk-in role said a taxpayer came in; detection counts its use)
    origin: Mapped[str] = mapped_column(String(8), default="declared", server_default="declared")
    recorded_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    __table_args__ = (
        Index("ix_taxpayer_contact_emp_tin", "employee_id", "tin_index"),
        Index("ix_taxpayer_contact_tin", "tin_index"),
    )


class DeclaredRelationship(Base):
    __tablename__ = "declared_relationship"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    kind: Mapped[str] = mapped_column(
        String(20)
    )  # friend|relative|neighbor|business|former_spouse|other
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_declared_relationship_emp_tin", "employee_id", "tin_index"),)


class ConflictEntry(Base):
    """One row of the conflict index: ``employee`` must never open the taxpayer ``tin_index``.

    Written only by ``access.conflicts`` (rebuild/refresh); ``evidence`` is JSON naming the
    return, year and field that made the link (pseudonyms only, never a plaintext TIN).
    """

    __tablename__ = "access_conflict"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id", ondelete="CASCADE"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    code: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        Index("ix_access_conflict_emp_tin", "employee_id", "tin_index"),
        Index("ix_access_conflict_tin", "tin_index"),
    )


class ConflictState(Base):
    """When the conflict index of one employee was last computed, and for which own TIN.

    A missing row (or one for another TIN) makes the decision point compute the conflicts
    live instead of trusting an index that was never built (fail closed).
    """

    __tablename__ = "access_conflict_state"

    employee_id: Mapped[int] = mapped_column(
        ForeignKey("employee.id", ondelete="CASCADE"), primary_key=True
    )
    tin_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccessCounter(Base):
    """Distinct taxpayers opened per employee per (UTC) day, for the RATE_LIMITED rule."""

    __tablename__ = "access_counter"

    employee_id: Mapped[int] = mapped_column(
        ForeignKey("employee.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)


class PolicyVersion(Base):
    """Each policy version the system ran with (the first load of a new hash is recorded)."""

    __tablename__ = "access_policy_version"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    files: Mapped[str] = mapped_column(Text)
    first_loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
