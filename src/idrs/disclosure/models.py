"""Disclosure agreements, batches and their per-record decisions (migration 0009).

A batch's request (names, TINs, addresses as the requester sent them) is kept only
encrypted (``request_enc``, AES-GCM like every identifier), so that a held batch can be
decided when the disclosure officer approves it. A decision row holds the decision document
exactly as it was hashed into the batch's Merkle tree (canonical JSON; the taxpayer by
pseudonym only) and its leaf hash; ``taxpayer_pseudonym`` is indexed for the accounting of
disclosures (§ 6103(p)(3)).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
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


class DisclosureAgreement(Base):
    """An agency system's agreement for one statutory basis: who, for how long, the caps."""

    __tablename__ = "disclosure_agreement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("system_principal.id"), index=True)
    basis: Mapped[str] = mapped_column(String(20))
    #: the agency the agreement names (must be the system's own)
    agency: Mapped[str] = mapped_column(String(120))
    federal: Mapped[bool] = mapped_column(Boolean)
    #: comma-separated ranks whose signature a request needs
    ranks: Mapped[str] = mapped_column(Text)
    cap_official: Mapped[int] = mapped_column(Integer)
    cap_investigation: Mapped[int] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(120), nullable=True)


class DisclosureBatch(Base):
    """One bulk request: ``held`` (over a cap, awaiting approval), ``decided``, ``rejected``."""

    __tablename__ = "disclosure_batch"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # "D-" + 16 hex
    system_id: Mapped[int] = mapped_column(ForeignKey("system_principal.id"), index=True)
    agreement_id: Mapped[int | None] = mapped_column(
        ForeignKey("disclosure_agreement.id"), nullable=True
    )
    basis: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    records: Mapped[int] = mapped_column(Integer)
    disclosed: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: JSON: the plausibility counts (per official / per investigation) against the caps
    counts: Mapped[str] = mapped_column(Text)
    #: JSON: reason code → records refused for it
    reasons: Mapped[str] = mapped_column(Text, default="{}")
    request_enc: Mapped[bytes] = mapped_column(LargeBinary)
    hold_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    approval_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the one audit entry committing the decisions' Merkle root
    audit_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    root: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: the hashes (32 bytes each, in order) of every complete block of BLOCK leaves: a proof
    #: reads one or two blocks' leaves and these, not the whole batch
    blocks: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_disclosure_batch_status", "status"),)


class DisclosureDecision(Base):
    """One record's decision: the document hashed into the batch's tree, and its leaf hash."""

    __tablename__ = "disclosure_decision"

    batch_id: Mapped[str] = mapped_column(ForeignKey("disclosure_batch.id"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[str] = mapped_column(Text)  # comma-separated codes
    taxpayer_pseudonym: Mapped[str | None] = mapped_column(String(40), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (Index("ix_disclosure_decision_taxpayer", "taxpayer_pseudonym"),)
