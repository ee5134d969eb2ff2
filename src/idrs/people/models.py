"""Employees (and outside principals), units with their ceiling profiles, sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class Unit(Base):
    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    #: comma-separated command codes: no profile in this unit may exceed it
    ceiling: Mapped[str] = mapped_column(Text)


class Employee(Base):
    __tablename__ = "employee"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seid: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(12), default="employee")  # employee|detailee|contractor|appointee
    home_org: Mapped[str | None] = mapped_column(String(120), nullable=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    #: the employee's own taxpayer record (blind index of their TIN); never shown
    tin_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True, index=True)
    tin_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    roles: Mapped[str] = mapped_column(Text)  # comma-separated, sorted
    profile: Mapped[str] = mapped_column(Text)  # comma-separated command codes, sorted
    authorities: Mapped[str] = mapped_column(Text, default="")  # employee_accounts,sensitive_accounts,adoption
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    training_attested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)

    @property
    def profile_set(self) -> frozenset[str]:
        return frozenset(c for c in self.profile.split(",") if c)

    @property
    def authority_set(self) -> frozenset[str]:
        return frozenset(a for a in self.authorities.split(",") if a)


class SignInSession(Base):
    """A sign-in session. Only the SHA-256 of the token is stored."""

    __tablename__ = "signin_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute expiry
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    interface: Mapped[str] = mapped_column(String(8), default="cli")


class SystemPrincipal(Base):
    """A machine principal: another system with its own credentials (people/systems.py).

    ``kind`` says what it may do (``contact_feed``: record inbound calls, letters and visits;
    ``agency_system``: another agency's system). Only an argon2id hash of its secret is
    stored; the secret is shown once, at creation or rotation. It never signs in as an
    employee and no employee signs in as it (separate tables, separate routes).
    """

    __tablename__ = "system_principal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    agency: Mapped[str | None] = mapped_column(String(120), nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SystemSession(Base):
    """A machine principal's bearer session. Only the SHA-256 of the token is stored."""

    __tablename__ = "system_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("system_principal.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProfileChange(Base):
    """One change of an employee's roles, command-code profile or authorities.

    Written by ``people.admin`` for every change: applied at once (``status`` = ``applied``)
    unless it adds a restricted role, code or authority, in which case it waits
    (``pending``) until a second security administrator — neither the requester nor the
    subject — confirms it (``confirmed``), rejects it (``rejected``), or it expires
    (``expired``). The before/after sets make the row a durable history of who could do what.
    """

    __tablename__ = "profile_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employee.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))  # the subject's unit at request
    status: Mapped[str] = mapped_column(String(12), index=True)
    roles_before: Mapped[str] = mapped_column(Text)
    roles_after: Mapped[str] = mapped_column(Text)
    profile_before: Mapped[str] = mapped_column(Text)
    profile_after: Mapped[str] = mapped_column(Text)
    authorities_before: Mapped[str] = mapped_column(Text)
    authorities_after: Mapped[str] = mapped_column(Text)
    #: the restricted additions that needed a second administrator (empty when applied at once)
    restricted: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(8))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(8), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
