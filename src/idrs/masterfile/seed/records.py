"""The records the seed generates, in the shape the master-file writer takes.

Duck-typed like ``masterfile.schema`` (no validation: valid by construction). Amounts are
in cents; TINs and EINs are digits only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(slots=True)
class Name:
    first: str
    last: str
    middle: str = ""
    suffix: str = ""


@dataclass(slots=True)
class Addr:
    street: str
    city: str
    state: str
    zip: str


@dataclass(slots=True)
class DirectDeposit:
    routing: str
    account: str


@dataclass(slots=True)
class Refund:
    amount: int
    direct_deposit: DirectDeposit | None


@dataclass(slots=True)
class Dep:
    tin: str
    relationship: str
    name: Name
    adoption_pending: bool = False


@dataclass(slots=True)
class W2:
    employer_ein: str
    employer_name: str
    wages: int
    withholding: int


@dataclass(slots=True)
class K1:
    entity_ein: str
    entity_name: str
    share_pct: float


@dataclass(slots=True)
class SchC:
    business_name: str
    ein: str | None


@dataclass(slots=True)
class Ret:
    tax_year: int
    filing_status: str
    spouse_tin: str | None
    address: Addr
    dependents: list[Dep]
    w2: list[W2]
    k1: list[K1]
    schedule_c: list[SchC]
    agi: int
    total_tax: int
    preparer_ptin: str | None
    refund: Refund | None
    bank: DirectDeposit | None = None  # the account a refund goes to (seed only)


@dataclass(slots=True)
class Txn:
    tax_year: int
    tc: str
    date: date
    amount: int
    action_code: str | None = None


@dataclass(slots=True)
class Info:
    tax_year: int
    form: str
    payer_ein: str
    payer_name: str
    amount: int
    withholding: int = 0


@dataclass(slots=True)
class Person:
    tin: str
    name: Name
    date_of_birth: date
    address: Addr
    phone: str | None
    gender: str
    markers: list[str] = field(default_factory=list)
    returns: list[Ret] = field(default_factory=list)
    transactions: list[Txn] = field(default_factory=list)
    information_returns: list[Info] = field(default_factory=list)
    history: list[tuple[Addr, date]] = field(default_factory=list)
    # job: (ein, employer name, base wages in cents, withholding rate)
    job: tuple[str, str, int, float] | None = None
