"""The seed's population: deterministic households, their returns and transactions.

Same (seed, taxpayers, employees) → the same people in the same order (``generate``).
Identifiers come only from the synthetic ranges: TIN area 900–999 group 00–49, EIN prefix
00, routing prefix 80. The household kinds are listed in ``idrs.masterfile.seed``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from idrs.identifiers import aba_checksum_ok
from idrs.masterfile.schema import TaxpayerIn
from idrs.masterfile.seed.records import (
    K1,
    W2,
    Addr,
    Dep,
    DirectDeposit,
    Info,
    Name,
    Person,
    Refund,
    Ret,
    SchC,
    Txn,
)

YEARS = (2022, 2023, 2024)
TIN_SPACE = 100 * 50 * 9999  # area 900-999 × group 00-49 × serial 0001-9999
_TIN_STEP = 1_000_003  # prime, coprime with TIN_SPACE: i → (a·i + b) mod space is a bijection
EIN_SPACE = 9_999_999


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


def dashed(tin: str) -> str:
    """A TIN's digits as ``NNN-NN-NNNN``."""
    return f"{tin[:3]}-{tin[3:5]}-{tin[5:]}"


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
