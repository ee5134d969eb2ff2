"""An independent workload for detection (issue 17): a small agency, written apart from the simulator.

The simulator (:mod:`idrs.detection.simulator`, :mod:`idrs.detection.profiles`) and the
detector were written by the same hands, so a detector tuned on the simulator can learn its
habits. This workload shares none of the simulator's planning code or population: its own
town (five ZIPs, a skewed surname pool), its own agency (a front office of service
representatives, a second small front office, an examination unit), its own pace, intake
feeds and sign-ins (real ``people.auth.sign_in`` with password and TOTP, a new sign-in after
each idle spell). Everything goes through the service path the API calls:
``masterfile.importer.import_file`` for the master file, ``people.service.create_employee``,
``access.service`` for cases and contacts, ``research.run`` for every research command.

Honest work:

* calls routed by ``system:callcenter`` and letters recorded by ``system:mailroom``, worked
  with one to four commands; a walk-in a representative declares now and then;
* examiners working an inventory their manager assigns, a few cases a day;
* a refund-status surge: on some days the phone system routes 9-12 quick calls (one look
  each, a minute or so apart) to one representative of the small front office;
* **a dozen accounts in one sitting**: on one day an examiner gets a project of 12-14 cases
  from the manager and works them back to back (1-4 minutes apart, one or two commands
  each); a manager reviews a dozen of the team's cases in one sitting;
* common surnames and shared ZIPs between employees and the public they serve (a call or a
  case from the employee's own block is passed to a colleague: the agency's recusal rule);
* one representative with a rare surname doing only honest work.

Violations, interleaved with the honest work (the four kinds of issue 17's table; the type
names are the detector's alert categories, so ``evaluate.score_alerts`` can score them):

=====================  ==================================================================
``relative``           a refused attempt on the employee's parent (a dependent on their
                       own return), no basis, once or twice
``neighbour``          a neighbour (same street, a few house numbers away, another
                       household) opened under a walk-in the representative declares
``contact_sweep``      11-15 accounts in one sitting under walk-ins the representative
                       declares, 1-2 minutes apart, one or two commands each
``undeclared_relative`` a cousin (same rare surname, another address, nothing links them
                       in the data) worked under a case the manager assigned
=====================  ==================================================================

The ground truth (type, SEID, day, audit indexes) goes only to the file the caller names.
``pace`` scales the honest volume (0.5 a slow week, 2.0 a peak).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from idrs.access import conflicts
from idrs.access import service as access
from idrs.audit.events import Actor
from idrs.clock import FakeClock
from idrs.context import App
from idrs.errors import AccessDenied, IdrsError, NotFound
from idrs.masterfile.importer import import_file
from idrs.people import auth, passwords, totp
from idrs.people import service as people
from idrs.vocabulary import Role

START = datetime(2026, 4, 6, tzinfo=UTC)  # a Monday
YEAR = 2025
ZIPS = ("97101", "97102", "97103", "97104", "97105")
STREETS = ("Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Garfield", "Hawthorne", "Ivy",
           "Juniper", "Kingsley", "Laurel", "Madison", "Nutmeg", "Orchard", "Pine", "Quincy",
           "Rose", "Spruce", "Tamarack", "Union", "Valley", "Walnut", "Yew")
COMMON = ("Nguyen", "Garcia", "Smith", "Johnson", "Lee", "Martinez", "Brown", "Kim", "Lopez",
          "Davis", "Patel", "Wilson", "Clark", "Young", "Hall", "Allen", "King", "Wright", "Scott",
          "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter",
          "Phillips", "Evans", "Turner", "Torres", "Parker", "Collins", "Edwards", "Stewart")
RARE = ("Ostrowiecki", "Barraclough", "Tuilagi", "Esterhazy", "Wojtaszek", "Mbatha")
FIRST = ("Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lia",
         "Mo", "Nia", "Oren", "Pia", "Raj", "Sia", "Tom", "Uma", "Vic", "Wren", "Xan", "Zoe")
READS = ("ENMOD", "IMFOL", "TXMOD", "INOLE", "RTVUE", "IRPTR")
NEEDS_YEAR = {"TXMOD", "RTVUE"}
TYPES = ("relative", "neighbour", "contact_sweep", "undeclared_relative")


@dataclass
class Resident:
    tin: str
    first: str
    last: str
    house: int
    street: str
    zip: str


@dataclass
class Worker:
    seid: str
    role: Role
    unit: str
    me: Resident
    parent: Resident
    neighbours: list[Resident] = field(default_factory=list)
    cousin: Resident | None = None
    password: str = ""
    secret: str = ""
    token: str = ""
    last_seen: datetime | None = None
    signed_in: datetime | None = None
    inventory: list[tuple[str, Resident]] = field(default_factory=list)


class Agency:
    """A small agency and its week; ``run`` returns the truth as a dict."""

    def __init__(self, app: App, *, seed: int, days: int, pace: float = 1.0,
                 violations: bool = True) -> None:
        if not isinstance(app.clock, FakeClock):
            raise IdrsError("the independent workload needs a FakeClock")
        self.app, self.clock, self.days, self.pace = app, app.clock, days, pace
        self.rng = random.Random(seed)
        self.violations = violations
        self.public: list[Resident] = []
        self.workers: list[Worker] = []
        self.truth: list[dict[str, Any]] = []
        self._tins: set[str] = set()
        self._seq = 0
        self._events: list[tuple[datetime, int, Callable[[], None]]] = []
        self.employee_days = 0

    # ---------------------------------------------------------------- the town
    def _tin(self) -> str:
        while True:
            t = f"{self.rng.randint(950, 999)}{self.rng.randint(0, 49):02d}{self.rng.randint(1000, 9999)}"
            if t not in self._tins:
                self._tins.add(t)
                return t

    def _resident(self, last: str, *, near: Resident | None = None, at: Resident | None = None) -> Resident:
        if at is not None:
            return Resident(self._tin(), self.rng.choice(FIRST), last, at.house, at.street, at.zip)
        if near is not None:
            house = max(1, near.house + self.rng.choice((-1, 1)) * self.rng.randint(2, 30))
            return Resident(self._tin(), self.rng.choice(FIRST), last, house, near.street, near.zip)
        return Resident(self._tin(), self.rng.choice(FIRST), last, self.rng.randint(100, 9800),
                        self.rng.choice(STREETS), self.rng.choice(ZIPS))

    def _surname(self) -> str:
        # Zipf-like: the first names of the list are far commoner
        k = min(len(COMMON) - 1, int(len(COMMON) * self.rng.random() ** 2.2))
        return COMMON[k]

    @staticmethod
    def _rec(p: Resident, *, spouse: Resident | None = None, deps: tuple[tuple[Resident, str], ...] = (),
             files: bool = True) -> dict[str, Any]:
        addr = {"street": f"{p.house} {p.street} St", "city": "Riverton", "state": "OR", "zip": p.zip}
        rec: dict[str, Any] = {"tin": p.tin, "name": {"first": p.first, "last": p.last},
                               "address": addr, "markers": []}
        if files:
            ret: dict[str, Any] = {"tax_year": YEAR, "filing_status": "MFJ" if spouse else "S",
                                   "address": addr, "agi": 61000.0, "total_tax": 5200.0,
                                   "dependents": [{"tin": d.tin, "relationship": r,
                                                   "name": {"first": d.first, "last": d.last}}
                                                  for d, r in deps]}
            if spouse is not None:
                ret["spouse_tin"] = spouse.tin
            rec["returns"] = [ret]
            rec["transactions"] = [{"tax_year": YEAR, "tc": "150", "date": "2026-04-14",
                                    "amount": 5200.0}]
        return rec

    def build(self) -> None:
        recs: list[dict[str, Any]] = []
        for _ in range(1500):
            head = self._resident(self._surname())
            if self.rng.random() < 0.4:
                sp = self._resident(head.last, at=head)
                recs += [self._rec(head, spouse=sp), self._rec(sp, files=False)]
                self.public += [head, sp]
            else:
                recs.append(self._rec(head))
                self.public.append(head)
        # units: a front office of 8, a second small one of 3 (a small peer group), examination 6
        plan = [("FRA", Role.MANAGER)] + [("FRA", Role.CSR)] * 8 + [("FRB", Role.MANAGER)] + \
               [("FRB", Role.CSR)] * 3 + [("EXM", Role.MANAGER)] + [("EXM", Role.EXAMINER)] * 6
        rare = list(RARE)
        seen = {"EXM": 0, "FRB": 0}
        for n, (unit, role) in enumerate(plan, start=1):
            # four examiners and one representative carry a rare surname (a cousin elsewhere)
            rare_name = (role == Role.EXAMINER and seen["EXM"] < 4) or \
                        (role == Role.CSR and unit == "FRB" and seen["FRB"] < 1)
            if rare_name:
                seen[unit] += 1
            last = rare.pop(0) if rare_name else self._surname()
            me = self._resident(last)
            sp = self._resident(last, at=me)
            kid = self._resident(last, at=me)
            parent = self._resident(last)
            w = Worker(f"W{n:04d}", role, unit, me, parent)
            w.neighbours = [self._resident(self._surname(), near=me) for _ in range(2)]
            recs += [self._rec(me, spouse=sp, deps=((kid, "daughter"), (parent, "parent"))),
                     self._rec(sp, files=False), self._rec(kid, files=False), self._rec(parent)]
            recs += [self._rec(x) for x in w.neighbours]
            if last in RARE:
                w.cousin = self._resident(last)
                while w.cousin.zip == me.zip:
                    w.cousin = self._resident(last)
                recs.append(self._rec(w.cousin))
            self.workers.append(w)
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "town.jsonl"
            f.write_text("".join(json.dumps(r) + "\n" for r in recs))
            import_file(self.app, f, actor="system:independent", interface="system")
        with passwords.weak_hashing_for_simulated_staff_only():
            for code in ("FRA", "FRB", "EXM", "PRV"):
                people.create_unit(self.app, code, f"Office {code}", actor="system:independent",
                                   interface="system")
            for w in self.workers:
                made = people.create_employee(
                    self.app, seid=w.seid, name=f"{w.me.first} {w.me.last}", tin=w.me.tin,
                    roles=[w.role], unit=w.unit, actor="system:independent", interface="system",
                    unax_attested_at=self.clock.now())
                w.password, w.secret = made["password"], made["totp_secret"]
            people.create_employee(self.app, seid="PRIV01", name="Privacy Analyst", tin=None,
                                   roles=[Role.PRIVACY_ANALYST], unit="PRV",
                                   actor="system:independent", interface="system",
                                   unax_attested_at=self.clock.now())
        conflicts.rebuild_all(self.app)

    # ---------------------------------------------------------------- the service path
    def _session(self, w: Worker) -> str:
        now = self.clock.now()
        idle = timedelta(minutes=self.app.settings.session_idle_minutes - 1)
        fresh = w.token and w.last_seen is not None and w.signed_in is not None and \
            now - w.last_seen < idle and now - w.signed_in < timedelta(hours=7)
        if not fresh:
            with passwords.weak_hashing_for_simulated_staff_only():
                w.token = auth.sign_in(self.app, w.seid, w.password, totp.code_at(w.secret, now),
                                       "api", address="10.9.0.1").token
            w.signed_in = now
        w.last_seen = now
        return w.token

    def read(self, w: Worker, cmd: str, p: Resident, *, case: str | None = None,
             contact: str | None = None, reason: str | None = None) -> int | None:
        from idrs import research

        try:
            ans = research.run(self.app, token=self._session(w), command=cmd, tin=p.tin,
                               year=YEAR if cmd in NEEDS_YEAR else None, case=case, contact=contact,
                               reason=reason, interface="api", address="10.9.0.1")
        except AccessDenied as exc:
            return exc.audit_index
        except NotFound:
            return None
        return int(ans.audit_index)

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self._seq}"

    def routed(self, w: Worker, p: Resident, feed: str, channel: str) -> str:
        cid = self._id("IC")
        access.record_inbound(self.app, seid=w.seid, tin=p.tin, contact_id=cid, channel=channel,
                              actor=Actor(feed, "api"))
        return cid

    def declared(self, w: Worker, p: Resident) -> tuple[str, int]:
        cid = self._id("WI")
        res = access.open_contact(self.app, seid=w.seid, tin=p.tin, contact_id=cid, channel="visit",
                                  actor=Actor(w.seid, "api"))
        return cid, int(res["audit_index"])

    def assign(self, mgr: Worker, w: Worker, p: Resident) -> str:
        cid = self._id("CS")
        access.assign_case(self.app, seid=w.seid, tin=p.tin, case_id=cid, actor=Actor(mgr.seid, "api"))
        return cid

    # ---------------------------------------------------------------- scheduling
    def at(self, when: datetime, fn: Callable[[], None]) -> None:
        self._seq += 1
        self._events.append((when, self._seq, fn))

    def _drain(self) -> None:
        while self._events:
            self._events.sort(key=lambda e: (e[0], e[1]))
            when, _, fn = self._events.pop(0)
            if when > self.clock.now():
                self.clock.set(when)
            fn()

    def _poisson(self, lam: float) -> int:
        n, p, lim = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.rng.random()
            if p <= lim:
                return n
            n += 1

    def _t(self, day: datetime, lo: float = 8.0, hi: float = 16.5) -> datetime:
        return day + timedelta(hours=self.rng.uniform(lo, hi))

    @staticmethod
    def _knows(w: Worker, p: Resident) -> bool:
        """Whether ``w`` would recognise ``p`` as living on their block (same street and ZIP,
        within a hundred house numbers)."""
        return p.zip == w.me.zip and p.street == w.me.street and abs(p.house - w.me.house) <= 100

    def _pick(self, w: Worker) -> Resident:
        """A member of the public for ``w``'s honest work: the agency's recusal rule passes a
        call or a case from the employee's own block to a colleague (another is drawn)."""
        while True:
            p = self.rng.choice(self.public)
            if not self._knows(w, p):
                return p

    def _picks(self, w: Worker, n: int) -> list[Resident]:
        out: list[Resident] = []
        while len(out) < n:
            p = self._pick(w)
            if p not in out:
                out.append(p)
        return out

    def _mgr(self, unit: str) -> Worker:
        return next(w for w in self.workers if w.unit == unit and w.role == Role.MANAGER)

    # ---------------------------------------------------------------- honest work
    def _call(self, w: Worker, p: Resident, feed: str, channel: str) -> None:
        cid = self.routed(w, p, feed, channel)
        when = self.clock.now()
        for cmd in ["ENMOD", *self.rng.sample(READS[1:4], self.rng.randint(0, 3))]:
            when += timedelta(seconds=self.rng.uniform(20, 150))
            self.at(when, lambda c=cmd: self._quiet(self.read(w, c, p, contact=cid)))

    def _quick_call(self, w: Worker, p: Resident) -> None:
        cid = self.routed(w, p, "system:callcenter", "phone")
        self._quiet(self.read(w, "ENMOD", p, contact=cid))

    def _walk_in(self, w: Worker, p: Resident) -> None:
        cid, _ = self.declared(w, p)
        when = self.clock.now()
        for cmd in ("ENMOD", "IMFOL", "TXMOD"):
            when += timedelta(minutes=self.rng.uniform(2, 6))
            self.at(when, lambda c=cmd: self._quiet(self.read(w, c, p, contact=cid)))

    def _work_case(self, w: Worker, cid: str, p: Resident, n: int, gap: tuple[float, float]) -> None:
        when = self.clock.now()
        for cmd in self.rng.sample(READS, n):
            self.at(when, lambda c=cmd: self._quiet(self.read(w, c, p, case=cid)))
            when += timedelta(seconds=self.rng.uniform(*gap))

    @staticmethod
    def _quiet(_: object) -> None:
        return None

    def _honest_day(self, d: int, day: datetime) -> None:
        for w in self.workers:
            self.employee_days += 1
            if w.role == Role.CSR:
                for _ in range(self._poisson(7 * self.pace)):
                    p = self._pick(w)
                    feed, ch = ("system:mailroom", "letter") if self.rng.random() < 0.15 else \
                        ("system:callcenter", "phone")
                    self.at(self._t(day), lambda w=w, p=p, f=feed, c=ch: self._call(w, p, f, c))
                if self.rng.random() < 0.5:
                    p = self._pick(w)
                    self.at(self._t(day, 9, 15), lambda w=w, p=p: self._walk_in(w, p))
            elif w.role == Role.EXAMINER:
                k = max(1, min(len(w.inventory), self._poisson(2.5 * self.pace)))
                for cid, p in self.rng.sample(w.inventory, k):
                    self.at(self._t(day, 8, 15.5),
                            lambda w=w, c=cid, p=p: self._work_case(w, c, p, self.rng.randint(3, 5),
                                                                    (90, 360)))
        if d % 3 == 1:  # a refund-status surge the phone system routes to one representative
            w = [x for x in self.workers if x.unit == "FRB" and x.role == Role.CSR][d % 3]
            t = self._t(day, 10, 14)
            for _ in range(self.rng.randint(9, 12)):
                p = self._pick(w)
                self.at(t, lambda w=w, p=p: self._quick_call(w, p))
                t += timedelta(seconds=self.rng.uniform(50, 100))
        ex = [w for w in self.workers if w.role == Role.EXAMINER]
        mgr = self._mgr("EXM")
        if d % 2 == 0:  # an examiner works a project of a dozen new cases in one sitting
            w = ex[(d // 2) % len(ex)]
            project = [(self.assign(mgr, w, p), p) for p in self._picks(w, self.rng.randint(12, 14))]
            w.inventory += project
            t = self._t(day, 9, 13)
            for cid, p in project:
                self.at(t, lambda w=w, c=cid, p=p: self._work_case(w, c, p, self.rng.randint(1, 2), (20, 70)))
                t += timedelta(minutes=self.rng.uniform(1, 4))
        if d % 2 == 1:  # the manager reviews a dozen of the team's cases in one sitting
            cases = [(cid, p) for w in ex for cid, p in w.inventory if not self._knows(mgr, p)]
            t = self._t(day, 13, 15)
            for _, p in self.rng.sample(cases, min(12, len(cases))):
                self.at(t, lambda p=p: self._review(mgr, p))
                t += timedelta(minutes=self.rng.uniform(1.5, 4))

    def _review(self, mgr: Worker, p: Resident) -> None:
        # the case system routes a review case to the manager (never self-assigned)
        rid = self._id("RV")
        access.assign_case(self.app, seid=mgr.seid, tin=p.tin, case_id=rid,
                           actor=Actor("system:casereview", "api"))
        self._quiet(self.read(mgr, "ENMOD", p, case=rid))
        self._quiet(self.read(mgr, "TXMOD", p, case=rid))

    # ---------------------------------------------------------------- violations
    def _mark(self, kind: str, w: Worker, day: datetime, idx: list[int | None], p: Resident) -> None:
        got = [i for i in idx if i is not None]
        if got:
            self.truth.append({"type": kind, "seid": w.seid, "day": day.date().isoformat(),
                               "audit_indexes": sorted(got), "taxpayer": p.tin})

    def _v_relative(self, w: Worker, day: datetime) -> None:
        p = w.parent
        got = [self.read(w, "ENMOD", p, reason="caller asked about a notice")]
        if self.rng.random() < 0.5:
            got.append(self.read(w, "IMFOL", p, reason="caller asked about a notice"))
        self._mark("relative", w, day, got, p)

    def _v_neighbour(self, w: Worker, day: datetime) -> None:
        p = self.rng.choice(w.neighbours)
        cid, _ = self.declared(w, p)
        got = [self.read(w, c, p, contact=cid) for c in ("ENMOD", "IMFOL", "TXMOD")[:self.rng.randint(1, 3)]]
        self._mark("neighbour", w, day, got, p)

    def _v_sweep(self, w: Worker, day: datetime, n: int) -> None:
        idx: list[int | None] = []
        t = self.clock.now()
        targets = self.rng.sample(self.public, n)

        def one(p: Resident) -> None:
            cid, _ = self.declared(w, p)
            idx.append(self.read(w, "ENMOD", p, contact=cid))
            if self.rng.random() < 0.4:
                idx.append(self.read(w, "IMFOL", p, contact=cid))

        for p in targets:
            self.at(t, lambda p=p: one(p))
            t += timedelta(seconds=self.rng.uniform(60, 120))
        self.at(t, lambda: self.truth.append({
            "type": "contact_sweep", "seid": w.seid, "day": day.date().isoformat(),
            "audit_indexes": sorted(i for i in idx if i is not None), "taxpayer": None}))

    def _v_cousin(self, w: Worker, day: datetime) -> None:
        assert w.cousin is not None
        p = w.cousin
        cid = self.assign(self._mgr(w.unit), w, p)
        when = self.clock.now() + timedelta(minutes=self.rng.uniform(5, 90))

        def work() -> None:
            got = [self.read(w, c, p, case=cid) for c in self.rng.sample(READS, self.rng.randint(2, 4))]
            self._mark("undeclared_relative", w, day, got, p)
        self.at(when, work)

    def _plan_violations(self) -> dict[int, list[Callable[[datetime], None]]]:
        csrs = [w for w in self.workers if w.role == Role.CSR]
        rare = [w for w in self.workers if w.cousin is not None and w.role == Role.EXAMINER]
        others = [w for w in self.workers if w.role in (Role.CSR, Role.EXAMINER)]
        plan: dict[int, list[Callable[[datetime], None]]] = {}

        def put(fn: Callable[[datetime], None]) -> None:
            plan.setdefault(self.rng.randrange(self.days), []).append(fn)

        for w in self.rng.sample(others, 3):
            put(lambda day, w=w: self._v_relative(w, day))
        for w in self.rng.sample(csrs, 3):
            put(lambda day, w=w: self._v_neighbour(w, day))
        for w in self.rng.sample(csrs, 2):
            put(lambda day, w=w: self._v_sweep(w, day, self.rng.randint(11, 15)))
        for w in rare[:4]:
            put(lambda day, w=w: self._v_cousin(w, day))
        return plan

    # ---------------------------------------------------------------- the run
    def run(self) -> dict[str, Any]:
        self.clock.set(START - timedelta(days=1, hours=-8))
        self.build()
        mgr = self._mgr("EXM")
        for w in self.workers:
            if w.role == Role.EXAMINER:
                w.inventory = [(self.assign(mgr, w, p), p) for p in self._picks(w, 8)]
        plan = self._plan_violations() if self.violations else {}
        d = n = 0
        while n < self.days:
            day = START + timedelta(days=d)
            d += 1
            if day.weekday() >= 5:
                continue
            self._honest_day(n, day)
            for fn in plan.get(n, []):
                t = self._t(day, 9, 15.5)
                self.at(t, lambda fn=fn, day=day: fn(day))
            n += 1
            self._drain()
        return {"workload": "independent", "violations": sorted(self.truth, key=lambda v: v["audit_indexes"][:1]),
                "employee_days": self.employee_days, "days": self.days, "pace": self.pace}


def run(app: App, *, seed: int = 1, days: int = 5, pace: float = 1.0, violations: bool = True,
        truth_out: Path | str | None = None) -> dict[str, Any]:
    """Build the agency in ``app`` (an empty database), work ``days`` weekdays, write the truth."""
    truth = Agency(app, seed=seed, days=days, pace=pace, violations=violations).run()
    if truth_out is not None:
        Path(truth_out).write_text(json.dumps(truth, indent=1))
    return truth
