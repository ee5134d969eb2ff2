"""The master file: taxpayer entities, addresses, returns and their links, modules, transactions.

Sensitive identifiers are stored only encrypted (``*_enc``, AES-GCM, see crypto.py); every
link between people (spouse, dependent, employer, partnership, bank account, address) has an
indexed blind-index or normalized column so it can be followed in both directions.
Money is stored in integer cents.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class Taxpayer(Base):
    __tablename__ = "taxpayer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    tin_enc: Mapped[bytes] = mapped_column(LargeBinary)
    first_name: Mapped[str] = mapped_column(String(40))
    middle_name: Mapped[str] = mapped_column(String(40), default="")
    last_name: Mapped[str] = mapped_column(String(60), index=True)
    suffix: Mapped[str] = mapped_column(String(10), default="")
    name_control: Mapped[str] = mapped_column(String(4))
    dob_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Marker(Base):
    __tablename__ = "taxpayer_marker"

    taxpayer_id: Mapped[int] = mapped_column(
        ForeignKey("taxpayer.id", ondelete="CASCADE"), primary_key=True
    )
    marker: Mapped[str] = mapped_column(String(30), primary_key=True)
    __table_args__ = (Index("ix_taxpayer_marker_marker", "marker"),)


class AddressRecord(Base):
    """One address of a taxpayer: the entity's history (``source='entity'``) or a return's."""

    __tablename__ = "address_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id", ondelete="CASCADE"))
    tax_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(10))  # entity | return
    street: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(60))
    state: Mapped[str] = mapped_column(String(2))
    zip: Mapped[str] = mapped_column(String(10))
    #: normalized street + city + state + ZIP5 (access.addresses.normalize); equal ⇒ same dwelling
    norm_key: Mapped[str] = mapped_column(String(200))
    #: normalized street without the unit designator: same building / street for detection
    street_key: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[date] = mapped_column(Date)
    __table_args__ = (
        Index("ix_address_record_taxpayer", "taxpayer_id", "tax_year"),
        Index("ix_address_record_norm", "norm_key", "tax_year"),
        Index("ix_address_record_street", "street_key"),
    )


class Business(Base):
    """A business entity known by EIN (employers, partnerships, sole proprietorships)."""

    __tablename__ = "business"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ein_index: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    ein_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), default="business")  # employer|partnership|sole_prop


class TaxReturn(Base):
    __tablename__ = "tax_return"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id", ondelete="CASCADE"))
    tax_year: Mapped[int] = mapped_column(Integer)
    filing_status: Mapped[str] = mapped_column(String(3))
    spouse_tin_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    spouse_tin_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    agi_cents: Mapped[int] = mapped_column(BigInteger)
    total_tax_cents: Mapped[int] = mapped_column(BigInteger)
    preparer_ptin: Mapped[str | None] = mapped_column(String(9), nullable=True)
    refund_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    routing_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    account_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: blind index of routing+account: who shares a bank account
    bank_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("taxpayer_id", "tax_year", name="uq_tax_return_taxpayer_year"),
        Index("ix_tax_return_spouse", "spouse_tin_index"),
        Index("ix_tax_return_bank", "bank_index"),
        Index("ix_tax_return_preparer", "preparer_ptin"),
    )


class Dependent(Base):
    __tablename__ = "dependent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("tax_return.id", ondelete="CASCADE"), index=True)
    tin_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    tin_enc: Mapped[bytes] = mapped_column(LargeBinary)
    relationship: Mapped[str] = mapped_column(String(20))
    first_name: Mapped[str] = mapped_column(String(40))
    last_name: Mapped[str] = mapped_column(String(60))
    adoption_pending: Mapped[bool] = mapped_column(Boolean, default=False)


class W2(Base):
    __tablename__ = "w2"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("tax_return.id", ondelete="CASCADE"), index=True)
    employer_ein_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    employer_ein_enc: Mapped[bytes] = mapped_column(LargeBinary)
    employer_name: Mapped[str] = mapped_column(String(120))
    wages_cents: Mapped[int] = mapped_column(BigInteger)
    withholding_cents: Mapped[int] = mapped_column(BigInteger)


class K1(Base):
    __tablename__ = "k1"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("tax_return.id", ondelete="CASCADE"), index=True)
    entity_ein_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    entity_ein_enc: Mapped[bytes] = mapped_column(LargeBinary)
    entity_name: Mapped[str] = mapped_column(String(120))
    share_pct: Mapped[float] = mapped_column(Float)


class ScheduleC(Base):
    __tablename__ = "schedule_c"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("tax_return.id", ondelete="CASCADE"), index=True)
    business_name: Mapped[str] = mapped_column(String(120))
    ein_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True, index=True)
    ein_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class TaxModule(Base):
    """One tax period of one account. ``version`` is the optimistic-concurrency counter."""

    __tablename__ = "tax_module"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayer.id", ondelete="CASCADE"))
    tax_year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    __table_args__ = (
        UniqueConstraint("taxpayer_id", "tax_year", name="uq_tax_module_taxpayer_year"),
    )


class Transaction(Base):
    """A posted transaction. Never edited: a reversal is a new row (``reverses_id``)."""

    __tablename__ = "txn"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("tax_module.id", ondelete="CASCADE"), index=True)
    tc: Mapped[str] = mapped_column(String(3))
    txn_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    action_code: Mapped[str | None] = mapped_column(String(4), nullable=True)
    source: Mapped[str] = mapped_column(String(12), default="import")  # import|adjustment|seed
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posted_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("txn.id"), nullable=True, index=True)


class InformationReturn(Base):
    """An information return (W-2, 1099) a payer filed about a TIN (for IRPTR)."""

    __tablename__ = "information_return"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payee_tin_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    tax_year: Mapped[int] = mapped_column(Integer)
    form: Mapped[str] = mapped_column(String(10))  # W-2 | 1099-INT | 1099-NEC ...
    payer_ein_index: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    payer_ein_enc: Mapped[bytes] = mapped_column(LargeBinary)
    payer_name: Mapped[str] = mapped_column(String(120))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    withholding_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class DatabaseMeta(Base):
    """Key/value facts about this database (e.g. ``synthetic=true``, schema notes)."""

    __tablename__ = "database_meta"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
