"""``idrs seed``: a deterministic synthetic population of households, businesses and employees.

Callers: the CLI (``idrs seed``, ``idrs demo``), benchmarks and tests. Same ``seed`` → same
plaintext data (names, TINs, addresses, returns, transactions, employees' SEIDs and roles);
only ciphertexts (random nonces) and generated passwords differ. Identifiers come only from
the synthetic ranges: TIN area 900–999 group 00–49, EIN prefix 00, routing prefix 80.

What the population holds (over tax years 2022–2024, transactions consistent with the
returns: 000, 150, 806, 846 or 610, sometimes 420/290/421 and 570/971/571):
single filers; married couples filing jointly (MFJ) and separately (MFS, same address and
bank account); heads of household; divorces (a joint return in 2022, then separate
addresses, the former spouse still on the 2022 return); widows (QSS, the late spouse marked
``deceased``); children and elderly parents as dependents; pending adoptions; roommates
at one address (spelled differently: ``Apt 4`` / ``#4``), some sharing a bank account;
two-partner partnerships (K-1); sole proprietors who employ people (the W-2 EIN is the
owner's Schedule C EIN); large employers; banks filing 1099-INT; high-profile taxpayers
and identity-theft victims (markers); people who moved. Every person with a TIN (children
and dependent parents too) has a taxpayer record; ``--taxpayers N`` counts them all.

Employees (``--employees M``, default 20) are seeded taxpayers (marker ``employee``)
spread over four units with the roles csr, examiner, manager, security_admin,
privacy_analyst and auditor. Only with ``credentials_out`` are passwords and TOTP secrets
made (argon2 is slow), through ``people.service.create_employee``; otherwise employees
are written directly with no usable password (a security administrator resets them).

Records one audit entry ``data:seed:run`` (counts only) after the population is committed,
and the ``admin:*`` entries of the units and employees it creates.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from idrs.access import conflicts
from idrs.audit import log as audit_log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.errors import IdrsError
from idrs.identifiers import aba_checksum_ok
from idrs.masterfile.schema import TaxpayerIn
from idrs.masterfile.store import MasterFileWriter, WriteStats, lock_for_write
from idrs.vocabulary import ADJUSTMENT_CODES, RESEARCH_CODES, CommandCode, Role

YEARS = (2022, 2023, 2024)
TIN_SPACE = 100 * 50 * 9999  # area 900-999 × group 00-49 × serial 0001-9999
_TIN_STEP = 1_000_003  # prime, coprime with TIN_SPACE: i → (a·i + b) mod space is a bijection
EIN_SPACE = 9_999_999
COMMIT_EVERY = 50_000  # taxpayers per transaction during the bulk load

# -- the records the writer takes (duck-typed like masterfile.schema, without validation) ----


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


# -- fast deterministic draws (random() is one C call; randint is several Python calls) ----


def _ri(r: random.Random, lo: int, hi: int) -> int:
    return lo + int(r.random() * (hi - lo + 1))


def _rr(r: random.Random, n: int, stop: int | None = None) -> int:
    if stop is None:
        return int(r.random() * n)
    return n + int(r.random() * (stop - n))


def _ch(r: random.Random, seq: Any) -> Any:
    return seq[int(r.random() * len(seq))]


# -- identifiers --------------------------------------------------------------------------------


def tin_for(seed: int, i: int) -> str:
    """The i-th synthetic TIN of ``seed`` (a bijection on the synthetic TIN space)."""
    k = (_TIN_STEP * i + (seed * 48_271 + 12_345) % TIN_SPACE) % TIN_SPACE
    area = 900 + k // (50 * 9999)
    group = (k // 9999) % 50
    serial = k % 9999 + 1
    return f"{area:03d}{group:02d}{serial:04d}"


def ein_for(seed: int, n: int) -> str:
    return f"00{((n + seed * 7_654_321) % EIN_SPACE) + 1:07d}"


def routing_for(n: int) -> str:
    body = f"80{n % 1_000_000:06d}"
    for check in "0123456789":
        if aba_checksum_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


# -- pools (Faker, seeded; made once so per-taxpayer cost stays tiny) -------------------------

TRADES = (
    "Design",
    "Plumbing",
    "Consulting",
    "Landscaping",
    "Bakery",
    "Auto Repair",
    "Cleaning",
    "Photography",
    "Catering",
    "Tutoring",
    "Electric",
    "Roofing",
    "Salon",
    "Painting",
)
ROLE_PATTERN: tuple[tuple[Role, ...], ...] = (
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.MANAGER,),
    (Role.SECURITY_ADMIN,),
    (Role.PRIVACY_ANALYST,),
    (Role.AUDITOR,),
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.CSR, Role.EXAMINER),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.MANAGER,),
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.SECURITY_ADMIN,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.PRIVACY_ANALYST,),
)
#: units the seed creates when absent: code → (name, ceiling, roles that land there)
UNITS: dict[str, tuple[str, str]] = {
    "WIAM": (
        "Wage & Investment Accounts Management",
        ",".join((*RESEARCH_CODES, CommandCode.ENREQ, CommandCode.REQ77)),
    ),
    "SBEX": (
        "Small Business/Self-Employed Examination",
        ",".join(RESEARCH_CODES + ADJUSTMENT_CODES),
    ),
    "PGLD": ("Privacy, Governmental Liaison and Disclosure", CommandCode.ENMOD),
    "AUDT": ("Internal Audit", CommandCode.ENMOD),
}


def _unit_of(roles: tuple[str, ...], k: int) -> str:
    if Role.PRIVACY_ANALYST in roles:
        return "PGLD"
    if Role.AUDITOR in roles:
        return "AUDT"
    if Role.EXAMINER in roles:
        return "SBEX"
    if Role.CSR in roles:
        return "WIAM"
    return "WIAM" if k % 2 == 0 else "SBEX"  # managers and unit security representatives


@dataclass
class Pools:
    male: list[str]
    female: list[str]
    last: list[str]
    streets: list[str]
    places: list[tuple[str, str, str]]  # city, state, zip
    companies: list[tuple[str, str]]  # (ein, name)
    banks: list[tuple[str, str, str]]  # (ein, name, routing)


def make_pools(seed: int) -> Pools:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    male = sorted({fake.first_name_male() for _ in range(600)})
    female = sorted({fake.first_name_female() for _ in range(600)})
    last = sorted({fake.last_name() for _ in range(1500)})
    streets = sorted({fake.street_name() for _ in range(2500)})
    places = []
    for _ in range(700):
        state = fake.state_abbr(include_territories=False)
        places.append((fake.city(), state, fake.zipcode_in_state(state)))
    companies = [(ein_for(seed, 1_000_000 + k), fake.company()[:100]) for k in range(300)]
    bank_words = ("First", "Citizens", "Community", "Peoples", "United", "Heritage", "Summit")
    banks = [
        (
            ein_for(seed, 1_100_000 + k),
            f"{bank_words[k % len(bank_words)]} {fake.last_name()} Bank",
            routing_for(seed * 97 + k),
        )
        for k in range(40)
    ]
    return Pools(male, female, last, streets, places, companies, banks)


# -- households -----------------------------------------------------------------------------


@dataclass
class SeedPlan:
    seed: int
    taxpayers: int
    employees: int
    sole_every: int = 37
    partner_every: int = 53


class Generator:
    """Yields people household by household; deterministic for (seed, taxpayers, employees)."""

    def __init__(self, plan: SeedPlan, pools: Pools) -> None:
        self.plan = plan
        self.p = pools
        self.next_person = 0
        est_households = max(1, plan.taxpayers // 2)
        self.emp_stride = max(1, est_households // max(1, plan.employees * 2))
        self.employees: list[tuple[str, str]] = []  # (tin, name)

    # names and places ------------------------------------------------------------------

    def _tin(self) -> str:
        tin = tin_for(self.plan.seed, self.next_person)
        self.next_person += 1
        return tin

    def _address(self, r: random.Random) -> Addr:
        city, state, zip5 = self.p.places[_rr(r, len(self.p.places))]
        street = f"{_ri(r, 1, 9899)} {self.p.streets[_rr(r, len(self.p.streets))]}"
        if r.random() < 0.3:
            street += f" Apt {_ri(r, 1, 40)}"
        return Addr(street, city, state, zip5)

    def _person(
        self,
        r: random.Random,
        last: str,
        addr: Addr,
        born: date,
        *,
        adult: bool,
        gender: str | None = None,
    ) -> Person:
        gender = gender or ("F" if r.random() < 0.5 else "M")
        pool = self.p.female if gender == "F" else self.p.male
        first = pool[_rr(r, len(pool))]
        middle = chr(65 + _rr(r, 26)) if r.random() < 0.6 else ""
        phone = f"{_ri(r, 201, 989)}-555-{_ri(r, 100, 199):04d}" if adult else None
        p = Person(self._tin(), Name(first, last, middle), born, addr, phone, gender)
        p.history.append((addr, date(born.year + 18, 6, 1) if adult else born))
        return p

    @staticmethod
    def _born(r: random.Random, lo: int, hi: int) -> date:
        return date(_ri(r, lo, hi), _ri(r, 1, 12), _ri(r, 1, 28))

    # jobs and money --------------------------------------------------------------------

    def _job(
        self, r: random.Random, h: int, rich: bool = False
    ) -> tuple[str, str, int, float] | None:
        x = r.random()
        wages = int(r.lognormvariate(10.8, 0.55) * 100) * (20 if rich else 1)
        wages = min(wages, 500_000_000)
        rate = 0.08 + r.random() * 0.1
        owners = h // self.plan.sole_every
        if x < 0.08 and owners > 1:
            j = _rr(r, max(0, owners - 30), owners)
            return (self._sole_ein(j), self._sole_name(j), wages // 2, rate)
        if x < 0.93:
            ein, name = self.p.companies[_rr(r, len(self.p.companies))]
            return (ein, name, wages, rate)
        return None

    def _sole_last(self, j: int) -> str:
        return self.p.last[(j * 7919) % len(self.p.last)]

    def _sole_name(self, j: int) -> str:
        return f"{self._sole_last(j)} {TRADES[j % len(TRADES)]}"

    def _sole_ein(self, j: int) -> str:
        return ein_for(self.plan.seed, 5_000_000 + j)

    def _partner_last(self, q: int, which: int) -> str:
        return self.p.last[(q * 31 + which * 17 + 3) % len(self.p.last)]

    def _partnership(self, q: int) -> tuple[str, str]:
        name = f"{self._partner_last(q, 0)} & {self._partner_last(q, 1)} LLP"
        return ein_for(self.plan.seed, 2_000_000 + q), name

    # the household ----------------------------------------------------------------------

    def household(self, h: int, remaining: int) -> list[Person]:
        """The people of household ``h`` (at most ``remaining``)."""
        r = random.Random(self.plan.seed * 1_000_003 + h)
        sole = h % self.plan.sole_every == 5
        partner = h % self.plan.partner_every in (7, 8)
        if sole:
            last = self._sole_last(h // self.plan.sole_every)
        elif partner:
            last = self._partner_last(h // self.plan.partner_every, h % self.plan.partner_every - 7)
        else:
            last = self.p.last[_rr(r, len(self.p.last))]
        x = r.random()
        if remaining < 6 or x < 0.30:
            kind = "single"
        elif x < 0.58:
            kind = "mfj"
        elif x < 0.62:
            kind = "mfs"
        elif x < 0.70:
            kind = "hoh"
        elif x < 0.75:
            kind = "divorced"
        elif x < 0.78:
            kind = "parent"
        elif x < 0.84:
            kind = "roommates"
        elif x < 0.855:
            kind = "widowed"
        elif x < 0.87:
            kind = "adoption"
        else:
            kind = "mfj" if x < 0.95 else "single"
        hh = _Household(self, r, h, last, kind)
        people = hh.build()
        if sole or partner:
            hh.business(sole=sole, partner=partner)
        for person in people:
            hh.finish(person)
        return people[:remaining]


_STD = {"S": 13_850_00, "MFS": 13_850_00, "MFJ": 27_700_00, "QSS": 27_700_00, "HOH": 20_800_00}


def income_tax(agi: int, status: str, children: int) -> int:
    """A simplified progressive tax in cents (brackets 10/12/22/24/32 %), less child credits."""
    joint = status in ("MFJ", "QSS")
    taxable = max(0, agi - _STD[status])
    tax = 0.0
    prev = 0
    for top, rate in (
        (11_000_00, 0.10),
        (44_725_00, 0.12),
        (95_375_00, 0.22),
        (182_100_00, 0.24),
        (10**15, 0.32),
    ):
        top = top * 2 if joint else top
        if taxable > prev:
            tax += (min(taxable, top) - prev) * rate
        prev = top
    return max(0, int(tax) - children * 2000_00)


class _Household:
    """Builds one household's people, returns, transactions and information returns."""

    def __init__(self, g: Generator, r: random.Random, h: int, last: str, kind: str) -> None:
        self.g, self.r, self.h, self.last, self.kind = g, r, h, last, kind
        self.addr = g._address(r)
        bank = g.p.banks[_rr(r, len(g.p.banks))]
        self.bank = (bank, DirectDeposit(bank[2], f"{_ri(r, 10**9, 10**12 - 1)}"))
        self.preparer = f"P{_ri(r, 1, 5000):08d}" if r.random() < 0.5 else None
        self.moved: tuple[Addr, date] | None = None
        if r.random() < 0.08:
            self.moved = (g._address(r), date(2024, _ri(r, 1, 12), _ri(r, 1, 28)))
        self.schedule_c: list[SchC] = []
        self.k1: list[K1] = []
        self.people: list[Person] = []

    # people

    def adult(
        self, last: str | None = None, lo: int = 1950, hi: int = 2002, gender: str | None = None
    ) -> Person:
        g, r = self.g, self.r
        p = g._person(
            r, last or self.last, self.addr, g._born(r, lo, hi), adult=True, gender=gender
        )
        p.job = g._job(r, self.h, rich=False)
        head = not self.people
        # a few are always there (even in a small population), more at random
        if r.random() < 0.0005 or (head and self.h % 2000 == 17):
            p.markers.append("high_profile")
            p.job = g._job(r, self.h, rich=True)
        if r.random() < 0.003 or (head and self.h % 300 == 29):
            p.markers.append("identity_theft")
        if self.moved:
            p.history.append(self.moved)
        self.people.append(p)
        return p

    def child(self, lo: int = 2006, hi: int = 2021, last: str | None = None) -> Person:
        g, r = self.g, self.r
        p = g._person(r, last or self.last, self.addr, g._born(r, lo, hi), adult=False)
        if self.moved:
            p.history.append(self.moved)
        self.people.append(p)
        return p

    def dep(self, p: Person, relationship: str | None = None, pending: bool = False) -> Dep:
        rel = relationship or ("daughter" if p.gender == "F" else "son")
        if relationship is None and self.r.random() < 0.06:
            rel = _ch(self.r, ("stepchild", "foster_child", "grandchild"))
        return Dep(p.tin, rel, Name(p.name.first, p.name.last), pending)

    def addr_in(self, year: int, p: Person | None = None) -> Addr:
        hist = (
            p.history
            if p is not None
            else ([(self.addr, date(1900, 1, 1))] + ([self.moved] if self.moved else []))
        )
        current = hist[0][0]
        for addr, since in hist:
            if since <= date(year, 12, 31):
                current = addr
        return current

    def build(self) -> list[Person]:
        k, r = self.kind, self.r
        if k == "single":
            a = self.adult()
            for y in YEARS:
                self.file(a, y, "S")
        elif k in ("mfj", "adoption", "parent"):
            a = self.adult(gender="M")
            b = self.adult(gender="F")
            kids = [self.child() for _ in range(_ch(r, (0, 1, 1, 2, 2, 3)))]
            deps = [self.dep(c) for c in kids]
            if k == "adoption":
                baby = self.child(2022, 2024)
                deps_late = [*deps, self.dep(baby, pending=True)]
            if k == "parent":
                elder = self.adult(lo=1930, hi=1950)
                elder.job = None
                elder_dep = self.dep(elder, "parent")
                old_home = self.g._address(random.Random(self.h))
                elder.history = [(old_home, date(1975, 5, 1)), (self.addr, date(2023, 1, 15))]
            for y in YEARS:
                d = list(deps)
                if k == "adoption" and y >= 2023:
                    d = deps_late
                if k == "parent":
                    if y == 2022:  # the parent still lived alone and filed
                        self.file(elder, y, "S", address=old_home)
                    else:
                        d.append(elder_dep)
                self.file(a, y, "MFJ", spouse=b, deps=d)
        elif k == "mfs":
            a, b = self.adult(gender="M"), self.adult(gender="F")
            kids = [self.child() for _ in range(_ch(r, (0, 1, 2)))]
            for y in YEARS:
                self.file(a, y, "MFS", spouse=b, deps=[self.dep(c) for c in kids])
                self.file(b, y, "MFS", spouse=a)
        elif k == "hoh":
            a = self.adult()
            kids = [self.child() for _ in range(_ch(r, (1, 1, 2, 3)))]
            for y in YEARS:
                self.file(a, y, "HOH", deps=[self.dep(c) for c in kids])
        elif k == "divorced":
            a, b = self.adult(gender="F"), self.adult(gender="M")
            kids = [self.child() for _ in range(_ch(r, (0, 1, 2)))]
            deps = [self.dep(c) for c in kids]
            new_addr = self.g._address(r)
            b.history = [h for h in b.history if h[1] < date(2023, 1, 1)]
            b.history.append((new_addr, date(2023, _ri(r, 2, 11), _ri(r, 1, 28))))
            own_bank = DirectDeposit(self.bank[0][2], f"{_ri(r, 10**9, 10**12 - 1)}")
            self.file(a, 2022, "MFJ", spouse=b, deps=deps)
            for y in YEARS[1:]:
                self.file(a, y, "HOH" if deps else "S", deps=deps)
                self.file(b, y, "S", bank=own_bank)
        elif k == "roommates":
            mates = [
                self.adult(last=self.g.p.last[_rr(r, len(self.g.p.last))])
                for _ in range(_ch(r, (2, 2, 3)))
            ]
            if "Apt" not in self.addr.street:
                self.addr.street += f" Apt {_ri(r, 1, 40)}"
            shared = r.random() < 0.3
            for n, m in enumerate(mates):
                if n % 2 == 1:  # the same dwelling, spelled another way
                    m.address = Addr(
                        self.addr.street.replace(" Apt ", " #"),
                        self.addr.city.upper(),
                        self.addr.state,
                        self.addr.zip,
                    )
                    m.history[0] = (m.address, m.history[0][1])
                own = DirectDeposit(self.bank[0][2], f"{_ri(r, 10**9, 10**12 - 1)}")
                for y in YEARS:
                    self.file(m, y, "S", bank=None if shared else own)
        elif k == "widowed":
            a, b = self.adult(gender="F"), self.adult(gender="M", lo=1940, hi=1990)
            b.markers.append("deceased")
            b.job = None
            kids = [self.child() for _ in range(_ch(r, (1, 2)))]
            deps = [self.dep(c) for c in kids]
            self.file(a, 2022, "MFJ", spouse=b, deps=deps)
            for y in YEARS[1:]:
                self.file(a, y, "QSS", deps=deps)
        return self.people

    def business(self, *, sole: bool, partner: bool) -> None:
        """Attach the household head's Schedule C or K-1 to the returns already built."""
        head = self.people[0]
        g = self.g
        for ret in head.returns:
            if sole:
                j = self.h // g.plan.sole_every
                profit = _ri(self.r, 5_000_00, 90_000_00)
                ret.schedule_c.append(SchC(g._sole_name(j), g._sole_ein(j)))
                ret.agi += profit
            if partner:
                ein, name = g._partnership(self.h // g.plan.partner_every)
                ret.k1.append(K1(ein, name, 50.0))
                ret.agi += _ri(self.r, 10_000_00, 150_000_00)
            ret.total_tax = income_tax(ret.agi, ret.filing_status, len(ret.dependents))

    # returns and transactions

    def file(
        self,
        filer: Person,
        year: int,
        status: str,
        *,
        spouse: Person | None = None,
        deps: list[Dep] | None = None,
        bank: DirectDeposit | None = None,
        address: Addr | None = None,
    ) -> None:
        earners = [filer] + ([spouse] if spouse is not None and status == "MFJ" else [])
        w2s = []
        for e in earners:
            if e.job is None:
                continue
            ein, name, base, rate = e.job
            wages = int(base * (1.03 ** (year - 2022)))
            w2 = W2(ein, name, wages, int(wages * rate))
            w2s.append(w2)
            e.information_returns.append(Info(year, "W-2", ein, name, wages, w2.withholding))
        deps = deps or []
        agi = sum(w.wages for w in w2s)
        ret = Ret(
            year,
            status,
            spouse.tin if spouse is not None else None,
            address or self.addr_in(year, filer),
            deps,
            w2s,
            [],
            [],
            agi,
            income_tax(agi, status, len(deps)),
            self.preparer,
            None,
        )
        ret.bank = bank or self.bank[1]
        filer.returns.append(ret)
        if self.r.random() < 0.3:
            b = self.bank[0]
            filer.information_returns.append(
                Info(year, "1099-INT", b[0], b[1], _ri(self.r, 1_00, 900_00))
            )

    def finish(self, p: Person) -> None:
        """Refunds and the transactions of every return of ``p``."""
        r = self.r
        for n, ret in enumerate(p.returns):
            y = ret.tax_year
            withheld = sum(w.withholding for w in ret.w2)
            filed = date(y + 1, _ri(r, 1, 4), _ri(r, 1, 28))
            txns = p.transactions
            if n == 0:
                txns.append(Txn(y, "000", filed - timedelta(days=1), 0))
            txns.append(Txn(y, "150", filed, ret.total_tax))
            if withheld:
                txns.append(Txn(y, "806", filed, -withheld))
            due = ret.total_tax - withheld
            theft = "identity_theft" in p.markers and y == 2023
            if due < 0:
                dd = ret.bank if r.random() < 0.75 else None
                ret.refund = Refund(-due, dd)
                if theft:
                    txns.append(Txn(y, "971", filed + timedelta(days=3), 0, "522"))
                    txns.append(Txn(y, "570", filed + timedelta(days=3), 0))
                    txns.append(Txn(y, "571", filed + timedelta(days=90), 0))
                    txns.append(Txn(y, "846", filed + timedelta(days=95), -due))
                else:
                    txns.append(Txn(y, "846", filed + timedelta(days=21), -due))
            elif due > 0 and r.random() < 0.85:
                txns.append(Txn(y, "610", filed, -due))
            if y == 2022 and r.random() < 0.03:  # an examination with additional tax
                extra = _ri(r, 100_00, 5_000_00)
                txns.append(Txn(y, "420", date(2024, 3, 4), 0))
                txns.append(Txn(y, "290", date(2024, 9, 16), extra))
                txns.append(Txn(y, "421", date(2024, 9, 16), 0))
            if theft:
                ein, name = self.g.p.companies[(self.h * 13) % len(self.g.p.companies)]
                p.information_returns.append(Info(y, "W-2", ein, name, 41_250_00, 0))
        g = self.g
        if (
            p.returns
            and "deceased" not in p.markers
            and self.h % g.emp_stride == g.emp_stride // 2
            and len(g.employees) < g.plan.employees
            and p is self.people[0]
        ):
            p.markers.append("employee")
            g.employees.append((p.tin, f"{p.name.first} {p.name.last}"))


def generate(gen: Generator) -> Iterator[Person]:
    """Every person of the population, household by household."""
    h = 0
    made = 0
    while made < gen.plan.taxpayers:
        for p in gen.household(h, gen.plan.taxpayers - made):
            made += 1
            yield p
        h += 1


def as_record(p: Person) -> TaxpayerIn:
    """A Person as the writer's record type (duck-typed; already valid by construction)."""
    return cast(TaxpayerIn, p)


# -- the run --------------------------------------------------------------------------------


@dataclass
class SeedResult:
    taxpayers: int
    stats: WriteStats
    employees: list[dict[str, Any]]
    audit_index: int
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "taxpayers": self.taxpayers,
            **self.stats.as_dict(),
            "employees": len(self.employees),
            "audit_index": self.audit_index,
        }


def seed(
    app: App,
    *,
    taxpayers: int,
    employees: int = 20,
    seed: int = 1,
    credentials_out: Path | None = None,
    actor: str = "system",
    progress: Callable[[int], None] | None = None,
    interface: str = "cli",
) -> SeedResult:
    """Add the synthetic population of ``seed`` (see the module docstring).

    Refuses (IdrsError, nothing new written) when a generated TIN already exists: the same
    seed was loaded before. ``progress`` gets the number of taxpayers written since last call.
    """
    if taxpayers < 1:
        raise IdrsError("--taxpayers must be at least 1")
    if employees < 0 or employees > taxpayers:
        raise IdrsError("--employees must be between 0 and the number of taxpayers")
    import time as _time

    t0 = _time.perf_counter()
    gen = Generator(SeedPlan(seed, taxpayers, employees), make_pools(seed))
    stats = _load(app, gen, actor, progress)
    entry = make_event(
        EventType.DATA_SEED_RUN,
        time=app.clock.now(),
        actor=actor,
        outcome="success",
        interface=interface,
        obj={"kind": "seed"},
        detail={"seed": seed, "taxpayers": taxpayers, **stats.as_dict()},
    )
    index = audit_log.append(app.engine, entry)
    made = _employees(app, gen, seed, credentials_out, actor, interface)
    conflicts.rebuild_all(app)  # the new population links new people to every employee
    return SeedResult(taxpayers, stats, made, index, _time.perf_counter() - t0)


def _load(
    app: App, gen: Generator, actor: str, progress: Callable[[int], None] | None
) -> WriteStats:
    with app.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # bulk load: fewer fsyncs; set on the raw connection, outside a transaction
            _pragma(conn, "PRAGMA synchronous=OFF")
        writer = MasterFileWriter(
            app.keyring,
            conn,
            now=app.clock.now(),
            source="seed",
            actor=actor,
            batch_size=2000,
            refuse_existing=True,
            pipelined=True,
        )
        try:
            _load_chunks(conn, writer, gen, progress)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                writer.close()  # no insert may still run on the connection we roll back
            if conn.in_transaction():
                conn.rollback()
            if isinstance(exc, IntegrityError):
                raise IdrsError(
                    "seed refused by the database: generated TINs already exist (this seed was "
                    "loaded before?) or another process wrote during the bulk load "
                    f"({type(exc.orig).__name__}); the unfinished chunk was rolled back"
                ) from None
            raise
        finally:
            writer.close()
            if sqlite:
                _pragma(conn, "PRAGMA synchronous=NORMAL")
    return writer.stats


def _load_chunks(
    conn: Connection,
    writer: MasterFileWriter,
    gen: Generator,
    progress: Callable[[int], None] | None,
) -> None:
    """Write the population in transactions of COMMIT_EVERY taxpayers."""
    trans = conn.begin()
    lock_for_write(conn)
    done = 0
    for n, person in enumerate(generate(gen), start=1):
        writer.add(as_record(person), history=cast(Any, person.history))
        if n % COMMIT_EVERY == 0:
            writer.flush()
            trans.commit()
            writer.ids.reset()
            if progress is not None:
                progress(n - done)
            done = n
            trans = conn.begin()
            lock_for_write(conn)
    writer.flush()
    trans.commit()
    if progress is not None:
        progress(gen.plan.taxpayers - done)


def _pragma(conn: Connection, sql: str) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute(sql)


# -- employees ------------------------------------------------------------------------------


def seid_for(seed: int, k: int) -> str:
    """Deterministic SEID: 'S', two base-36 characters of the seed, four digits."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    s = seed % 1296
    return f"S{digits[s // 36]}{digits[s % 36]}{k:04d}"


def _ensure_units(app: App, actor: str, interface: str) -> None:
    from idrs.people import service
    from idrs.people.models import Unit

    with app.engine.connect() as conn:
        have = set(conn.execute(select(Unit.code)).scalars())
    for code, (name, ceiling) in UNITS.items():
        if code not in have:
            service.create_unit(app, code, name, ceiling, actor=actor, interface=interface)


def _employees(
    app: App,
    gen: Generator,
    seed_value: int,
    credentials_out: Path | None,
    actor: str,
    interface: str,
) -> list[dict[str, Any]]:
    if not gen.employees:
        return []
    _ensure_units(app, actor, interface)
    plan = [
        (seid_for(seed_value, k), name, tin, ROLE_PATTERN[k % len(ROLE_PATTERN)])
        for k, (tin, name) in enumerate(gen.employees)
    ]
    made: list[dict[str, Any]] = []
    if credentials_out is not None:
        from idrs.people import service

        for k, (seid, name, tin, roles) in enumerate(plan):
            creds = service.create_employee(
                app,
                unax_attested_at=app.clock.now(),
                seid=seid,
                name=name,
                tin=tin,
                roles=list(roles),
                unit=_unit_of(roles, k),
                actor=actor,
                interface=interface,
            )
            made.append({**creds, "roles": list(roles), "tin": _dashed(tin)})
        _write_credentials(credentials_out, made)
        return made
    for k, (seid, name, tin, roles) in enumerate(plan):
        _insert_employee(app, seid, name, tin, roles, _unit_of(roles, k), actor, interface)
        made.append({"seid": seid, "roles": list(roles), "tin": _dashed(tin)})
    return made


def _dashed(tin: str) -> str:
    return f"{tin[:3]}-{tin[3:5]}-{tin[5:]}"


def _write_credentials(path: Path, creds: list[dict[str, Any]]) -> None:
    """Write the credentials file with mode 0600 (never world-readable, even briefly)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
        fh.write("\n")


def _insert_employee(
    app: App,
    seid: str,
    name: str,
    tin: str,
    roles: tuple[str, ...],
    unit_code: str,
    actor: str,
    interface: str,
) -> None:
    """An employee row without a usable password (no argon2 cost); records its creation."""
    from idrs.people.models import Employee, Unit
    from idrs.people.roles import join, profile_for

    with app.engine.begin() as conn:
        unit = conn.execute(select(Unit.id, Unit.ceiling).where(Unit.code == unit_code)).one()
        if conn.execute(select(Employee.id).where(Employee.seid == seid)).first() is not None:
            raise IdrsError(f"employee {seid} already exists (this seed was loaded before?)")
        profile = profile_for(roles, unit.ceiling.split(","))
        _insert_row(
            conn,
            Employee.__table__,
            {
                "seid": seid,
                "name": name,
                "kind": "employee",
                "unit_id": unit.id,
                "tin_index": app.keyring.tin_index(tin),
                "tin_enc": app.keyring.encrypt(tin, "employee.tin"),
                "roles": join(roles),
                "profile": join(profile),
                "authorities": "",
                "password_hash": None,
                "totp_secret_enc": None,
                "totp_last_step": 0,
                "failed_logins": 0,
                "active": True,
                "created_at": app.clock.now(),
                # a working agency: UNAX training attested (learning-system record)
                "training_attested_at": app.clock.now(),
            },
        )
    entry = make_event(
        EventType.ADMIN_EMPLOYEE_CREATE,
        time=app.clock.now(),
        actor=actor,
        outcome="success",
        interface=interface,
        obj={"seid": seid},
        detail={
            "roles": sorted(roles),
            "unit": unit_code,
            "kind": "employee",
            "profile": sorted(profile),
            "authorities": [],
            "credentials": "none (seeded)",
        },
    )
    audit_log.append(app.engine, entry)


def _insert_row(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    from sqlalchemy import insert

    conn.execute(insert(table).values(**values))


# -- export in the import format (benchmarks, tests, fixtures) ------------------------------


def _money(cents: int) -> float | int:
    return cents // 100 if cents % 100 == 0 else cents / 100


def _addr_dict(a: Addr) -> dict[str, str]:
    return {"street": a.street, "city": a.city, "state": a.state, "zip": a.zip}


def to_import_dict(p: Person) -> dict[str, Any]:
    """One seeded person as a line of the import format (docs/interface.md, with its extensions)."""

    def ret(r: Ret) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tax_year": r.tax_year,
            "filing_status": r.filing_status,
            "address": _addr_dict(r.address),
            "dependents": [
                {
                    "tin": _dashed(d.tin),
                    "relationship": d.relationship,
                    "name": {"first": d.name.first, "last": d.name.last},
                    "adoption_pending": d.adoption_pending,
                }
                for d in r.dependents
            ],
            "w2": [
                {
                    "employer_ein": f"{w.employer_ein[:2]}-{w.employer_ein[2:]}",
                    "employer_name": w.employer_name,
                    "wages": _money(w.wages),
                    "withholding": _money(w.withholding),
                }
                for w in r.w2
            ],
            "k1": [
                {
                    "entity_ein": f"{k.entity_ein[:2]}-{k.entity_ein[2:]}",
                    "entity_name": k.entity_name,
                    "share_pct": k.share_pct,
                }
                for k in r.k1
            ],
            "schedule_c": [
                {
                    "business_name": c.business_name,
                    "ein": f"{c.ein[:2]}-{c.ein[2:]}" if c.ein else None,
                }
                for c in r.schedule_c
            ],
            "agi": _money(r.agi),
            "total_tax": _money(r.total_tax),
        }
        if r.spouse_tin:
            out["spouse_tin"] = _dashed(r.spouse_tin)
        if r.preparer_ptin:
            out["preparer_ptin"] = r.preparer_ptin
        if r.refund is not None:
            dd = r.refund.direct_deposit
            out["refund"] = {
                "amount": _money(r.refund.amount),
                "direct_deposit": ({"routing": dd.routing, "account": dd.account} if dd else None),
            }
        return out

    rec: dict[str, Any] = {
        "tin": _dashed(p.tin),
        "name": {
            "first": p.name.first,
            "middle": p.name.middle,
            "last": p.name.last,
            "suffix": p.name.suffix,
        },
        "date_of_birth": p.date_of_birth.isoformat(),
        "address": _addr_dict(p.address),
        "markers": sorted(set(p.markers)),
        "returns": [ret(r) for r in p.returns],
        "transactions": [
            {
                "tax_year": t.tax_year,
                "tc": t.tc,
                "date": t.date.isoformat(),
                "amount": _money(t.amount),
                **({"action_code": t.action_code} if t.action_code else {}),
            }
            for t in p.transactions
        ],
        "information_returns": [
            {
                "tax_year": i.tax_year,
                "form": i.form,
                "payer_ein": f"{i.payer_ein[:2]}-{i.payer_ein[2:]}",
                "payer_name": i.payer_name,
                "amount": _money(i.amount),
                "withholding": _money(i.withholding),
            }
            for i in p.information_returns
        ],
    }
    if p.phone:
        rec["phone"] = p.phone
    return rec


def export_jsonl(path: Path, *, taxpayers: int, seed_value: int = 1) -> int:
    """Write the population of ``seed_value`` as an import file; returns the line count."""
    gen = Generator(SeedPlan(seed_value, taxpayers, 0), make_pools(seed_value))
    n = 0
    with Path(path).open("w") as fh:
        for p in generate(gen):
            fh.write(json.dumps(to_import_dict(p), separators=(",", ":")) + "\n")
            n += 1
    return n
