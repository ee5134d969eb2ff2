"""The need-to-know bases (case assignments, taxpayer contacts) and declared relationships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String
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
    __table_args__ = (Index("ix_case_assignment_emp_tin", "employee_id", "tin_index"),
                      Index("ix_case_assignment_tin", "tin_index"))


class TaxpayerContact(Base):
    __tablename__ = "taxpayer_contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(40), unique=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    channel: Mapped[str] = mapped_column(String(8), default="phone")  # phone|letter|visit
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (Index("ix_taxpayer_contact_emp_tin", "employee_id", "tin_index"),
                      Index("ix_taxpayer_contact_tin", "tin_index"))


class DeclaredRelationship(Base):
    __tablename__ = "declared_relationship"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16))
    kind: Mapped[str] = mapped_column(String(20))  # friend|relative|neighbor|business|former_spouse|other
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_declared_relationship_emp_tin", "employee_id", "tin_index"),)
