"""Outside access under an agreement: grants and their approvals, agreements and signatures,
clearance verifications, training attestations, exports and their destruction certificates.

Time stamps are UTC. Grant states ``active`` and ``expired`` are never stored: they follow
from the stored lifecycle (``status``), the start date and the term, computed against the
injected clock (:func:`idrs.grants.rules.state_of`). Signatures, approvals, clearance
verifications and training attestations are append-only records (migration 0003 adds
triggers refusing UPDATE and DELETE on them).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class Agreement(Base):
    """One version of a confidentiality agreement's text. One current version per title."""

    __tablename__ = "grant_agreement"
    __table_args__ = (UniqueConstraint("title", "version", name="uq_grant_agreement_title_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by: Mapped[str] = mapped_column(String(120))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgreementSignature(Base):
    """A principal's signature of one agreement version (immutable)."""

    __tablename__ = "grant_signature"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("grant_agreement.id"), index=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    #: SHA-256 of the exact text signed (equal to the agreement's at signing time)
    sha256: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: the TOTP time step of the freshly entered one-time code
    otp_step: Mapped[int] = mapped_column(Integer)


class ClearanceVerification(Base):
    """A security clearance recorded as verified: by whom, when (immutable)."""

    __tablename__ = "grant_clearance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    verified_by: Mapped[str] = mapped_column(String(8))
    recorded_by: Mapped[str] = mapped_column(String(120))
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrainingAttestation(Base):
    """An employee's UNAX training attestation (every employee, at least every 365 days)."""

    __tablename__ = "grant_training"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    course: Mapped[str] = mapped_column(String(40), default="UNAX")
    attested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    otp_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Grant(Base):
    """A time-limited grant of access to an outside (or inside) principal.

    ``status`` is the stored lifecycle: pending_approval, approved, revoked, ended. The
    effective state (adds ``active`` and ``expired``) is computed from the clock.
    """

    __tablename__ = "grant_grant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(120))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    commands: Mapped[str] = mapped_column(Text)  # comma-separated, sorted
    classes: Mapped[str] = mapped_column(Text)  # comma-separated, sorted
    population: Mapped[str] = mapped_column(String(12))  # cases|all|anonymized|statistics
    #: records | anonymized | statistics (the population names the kind for the last two)
    kind: Mapped[str] = mapped_column(String(12), default="records", server_default="records")
    #: an anonymized grant's k (every released record has at least k look-alikes)
    anon_k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the version of the grant's pseudonym key (derived from the master key, id, version)
    key_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: the coarsest generalization level released so far (only rises)
    anon_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: a statistics grant's privacy budget: ε in all, and δ in all (non-public group keys)
    dp_epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    dp_delta: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: what its queries have spent so far (only grows; see grants.statistics.spend)
    dp_epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    dp_delta_spent: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    allow_changes: Mapped[bool] = mapped_column(Boolean, default=False)
    start_date: Mapped[date] = mapped_column(Date)
    term_days: Mapped[int] = mapped_column(Integer)
    renewal_of_id: Mapped[int | None] = mapped_column(ForeignKey("grant_grant.id"), nullable=True)
    daily_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the agreement (by title) whose current version the principal must have signed
    agreement_title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending_approval")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    #: when the "exports outstanding" alert was raised (once per grant)
    outstanding_alert_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class DpSpend(Base):
    """One query's spend from a statistics grant's privacy budget (never updated)."""

    __tablename__ = "grant_dp_spend"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grant_grant.id"), index=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    spent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    #: SHA-256 of the query's canonical JSON (the query itself is in the audit entry)
    query_sha256: Mapped[str] = mapped_column(String(64))


class GrantApproval(Base):
    """One approval of a grant by the holder of an approving role (immutable)."""

    __tablename__ = "grant_approval"
    __table_args__ = (UniqueConstraint("grant_id", "role", name="uq_grant_approval_grant_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grant_grant.id"), index=True)
    approver_id: Mapped[int] = mapped_column(ForeignKey("employee.id"))
    role: Mapped[str] = mapped_column(String(40))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    otp_step: Mapped[int] = mapped_column(Integer)


class Export(Base):
    """An export of data out of the system, and (later) its certified destruction."""

    __tablename__ = "grant_export"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # "X-" + 16 hex
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("grant_grant.id"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    command: Mapped[str] = mapped_column(String(8))
    format: Mapped[str] = mapped_column(String(4))
    #: JSON object: sensitivity class → number of taxpayer records carrying it
    counts: Mapped[str] = mapped_column(Text)
    #: JSON list of the taxpayers' pseudonyms (never TINs)
    pseudonyms: Mapped[str] = mapped_column(Text)
    taxpayers: Mapped[int] = mapped_column(Integer)
    #: comma-separated audit indexes of the research calls that produced the data
    audit_indexes: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    destroyed_by: Mapped[str | None] = mapped_column(String(8), nullable=True)
    witness: Mapped[str | None] = mapped_column(String(8), nullable=True)
    method: Mapped[str | None] = mapped_column(Text, nullable=True)
    certified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
