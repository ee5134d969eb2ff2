"""``idrs simulate``: a month of an agency's work, with labeled browsing, through the real path.

Every research call goes through ``research.run`` with a real session token; every case and
contact through ``access.service``; so the audit log the detector reads is the genuine
article. Time comes from a :class:`idrs.clock.FakeClock` the simulator owns and advances
through simulated working days (it is never a setting of the production system).

Sign-in: password hashing (argon2) costs ~70 ms, and the simulation signs people in
thousands of times, so a simulated employee's session is started by :func:`_start_session`
(a SignInSession row and an ``auth:signin:success`` entry marked ``"method": "simulated"``)
instead of ``people.auth.sign_in``. The token then goes through ``research.run`` like any
other; nothing else is bypassed.

Work modelled: service representatives answer calls routed by the phone system
(the ``system:acd`` feed records the call, ``access.record_inbound``), sometimes find the
caller by NAMES first, take walk-ins (a visit they declare themselves); examiners work case
inventories their manager assigns, sometimes two on one case, sometimes late; managers review
their unit's cases (routed to them by ``system:review-queue``: nobody assigns themselves). Volume
follows the week (Monday peak, Friday lull) and each person's own pace. Honest mistakes
(a mistyped TIN) happen and are mostly self-reported.

Violations are injected at ``violation_rate`` per employee-day, of every type in
:data:`VIOLATION_TYPES`; their ground truth (type, SEID, audit indexes) goes only to the
file the caller names, never to the database.
"""

from __future__ import annotations

import heapq
import json
import math
import queue
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from idrs.access import service as access
from idrs.audit.events import Actor, make_event
from idrs.clock import FakeClock
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import population
from idrs.detection.events import DetectionEvent
from idrs.detection.population import Person, Staff, World
from idrs.errors import AccessDenied, IdrsError, NotFound
from idrs.masterfile.commands import NEEDS_YEAR
from idrs.people.models import Employee, SignInSession
from idrs.people.service import record
from idrs.vocabulary import CommandCode as C
from idrs.vocabulary import Role

if TYPE_CHECKING:  # imported lazily at run time (see research_run)
    from idrs.research import ResearchAnswer

VIOLATION_TYPES = (
    "self", "spouse", "relative", "household", "undeclared_relative", "neighbour", "celebrity",
    "coworker", "pretext_contact", "sweep", "bulk_harvest", "after_hours", "repeated_refusals",
    "news_spike",
)
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
_WEEKDAY_LOAD = (1.25, 1.1, 1.0, 0.95, 0.8, 0.0, 0.0)
_CSR_COMMANDS = (C.ENMOD, C.IMFOL, C.TXMOD, C.INOLE)
_EXAM_COMMANDS = (C.TXMOD, C.RTVUE, C.IRPTR, C.IMFOL, C.ENMOD, C.INOLE)
YEAR = population.TAX_YEAR
#: processes sharing a simulation (fixed, not the machine's core count, so that a seed gives
#: the same run everywhere)
DEFAULT_WORKERS = 2
_BARRIER_TIMEOUT = 600.0
#: how long, once a worker has failed, the others get to notice the aborted barrier and
#: report before they are stopped
_STOP_GRACE = 60.0


@dataclass
class Stats:
    accesses: int = 0
    allowed: int = 0
    denied: int = 0
    admin: int = 0
    violations: int = 0
    seconds: float = 0.0
    employee_days: int = 0

    def as_dict(self) -> dict[str, Any]:
        rate = self.accesses / self.seconds if self.seconds else 0.0
        return {"accesses": self.accesses, "allowed": self.allowed, "denied": self.denied,
                "admin_events": self.admin, "violations": self.violations,
                "employee_days": self.employee_days, "seconds": round(self.seconds, 1),
                "accesses_per_second": round(rate, 1)}


@dataclass
class _Violation:
    type: str
    seid: str
    day: str
    indexes: list[int] = field(default_factory=list)
    target: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "seid": self.seid, "day": self.day,
                "audit_indexes": sorted(self.indexes), "taxpayer": self.target}


Action = Callable[[], object]  # its result, if any, is ignored


class Simulator:
    """Runs simulated days against ``app`` (whose clock must be a FakeClock)."""

    def __init__(self, app: App, world: World, *, seed: int, violation_rate: float,
                 part: tuple[int, int] = (0, 1), barrier: Any = None) -> None:
        if not isinstance(app.clock, FakeClock):
            raise IdrsError("the simulator needs a FakeClock (simulated time), never the system clock")
        self.app, self.world, self.clock = app, world, app.clock
        worker, workers = part
        # Worker w of n simulates the units it owns (round robin over the sorted unit codes)
        # and meets the other workers at every simulated hour (``barrier``), so that the log's
        # timestamps stay within an hour of its order.
        self.worker, self.barrier = worker, barrier
        own_units = set(sorted(world.units)[worker::workers])
        self.staff = [s for s in world.staff if s.unit in own_units]
        self.rng = random.Random(seed + 1 + 1000 * worker)
        self.rate = violation_rate
        self.stats = Stats()
        self.truth: list[_Violation] = []
        self._tokens: dict[str, tuple[str, datetime, datetime]] = {}
        self._ids: dict[str, int] = {}
        self._n = 0
        self.cases: dict[str, list[tuple[str, Person]]] = {}  # examiner seid → open cases
        self._schedule: list[tuple[datetime, int, Action]] = []
        with session_scope(app.engine) as s:
            for seid, eid in s.execute(select(Employee.seid, Employee.id)):
                self._ids[seid] = eid

    # ------------------------------------------------------------------ primitives

    def _next(self, prefix: str) -> str:
        self._n += 1
        # the documented id format (letters, '-', at most 8 digits): the worker as a letter
        return f"{prefix}{chr(ord('A') + self.worker)}-{self._n}"

    def at(self, when: datetime, action: Action) -> None:
        """Run ``action`` at simulated time ``when`` (actions may schedule follow-ups)."""
        self._n += 1
        heapq.heappush(self._schedule, (when, self._n, action))

    def token(self, staff: Staff) -> str:
        now = self.clock.now()
        held = self._tokens.get(staff.seid)
        if held is not None:
            tok, started, last = held
            if now - last < timedelta(minutes=self.app.settings.session_idle_minutes - 1) and \
                    now - started < timedelta(hours=self.app.settings.session_absolute_hours - 1):
                self._tokens[staff.seid] = (tok, started, now)
                return tok
        tok = _start_session(self.app, self._ids[staff.seid], staff.seid)
        self._tokens[staff.seid] = (tok, now, now)
        self.stats.admin += 1
        return tok

    def research(self, staff: Staff, command: str, person: Person | None, *,
                 case: str | None = None, contact: str | None = None, reason: str | None = None,
                 name: str | None = None, place: str | None = None) -> int | None:
        """One research call through the real service; returns its audit index."""
        year = YEAR if command in NEEDS_YEAR else None
        self.stats.accesses += 1
        try:
            ans = research_run(self.app, token=self.token(staff), command=command,
                               tin=person.tin if person else None, year=year, case=case,
                               contact=contact, reason=reason, name=name, place=place,
                               interface="api", address=f"10.1.0.{self._ids[staff.seid] % 250}")
        except AccessDenied as exc:
            self.stats.denied += 1
            return exc.audit_index
        except NotFound:
            return None
        self.stats.allowed += 1
        return ans.audit_index

    def open_contact(self, staff: Staff, person: Person, *, by: str,
                     channel: str = "phone") -> tuple[str, int | None]:
        """A contact routed by the intake feed (``by`` = ``system:<feed>``), or one the employee
        declares (``by`` = their SEID: walk-in roles only; anyone else is refused, recorded,
        and the index returned is the refusal's)."""
        cid = self._next("K")
        self.stats.admin += 1
        if by.startswith("system:"):
            res = access.record_inbound(self.app, seid=staff.seid, tin=person.tin, contact_id=cid,
                                        channel=channel, actor=Actor(by, "api"))
            return cid, res.audit_index
        try:
            opened = access.open_contact(self.app, seid=staff.seid, tin=person.tin, contact_id=cid,
                                      channel=channel, actor=Actor(by, "api"))
        except AccessDenied as exc:
            return cid, exc.audit_index
        return cid, opened.audit_index

    def close_contact(self, staff: Staff, cid: str) -> None:
        try:
            access.close_contact(self.app, contact_id=cid, actor=Actor(staff.seid, "api"))
            self.stats.admin += 1
        except IdrsError:
            pass

    def assign_case(self, staff: Staff, person: Person, *, by: str, prefix: str = "C") -> str:
        cid = self._next(prefix)
        access.assign_case(self.app, seid=staff.seid, tin=person.tin, case_id=cid,
                           actor=Actor(by, "api"))
        self.stats.admin += 1
        return cid

    def close_case(self, by: str, cid: str) -> None:
        try:
            access.close_case(self.app, case_id=cid, actor=Actor(by, "api"))
            self.stats.admin += 1
        except IdrsError:
            pass

    def _mine(self, role: str) -> list[Staff]:
        return [s for s in self.staff if s.role == role]

    def public(self, worker: Staff | None = None) -> Person:
        """A member of the public (high-profile taxpayers are worked by authorized staff only).

        With ``worker``, someone the worker may honestly be given: never a taxpayer on their
        own block (same street and ZIP, house numbers at most :data:`OWN_BLOCK` apart). Policy
        passes a call or a case from one's own block to a colleague, so the honest work the
        simulator produces never holds one; drawing another member of the public stands for
        the hand-off (an honest routed call from the employee's block was counted as a
        ``neighbour`` false alert: seeds 5-7 of the ``routed`` and ``small_town`` profiles).
        """
        for _ in range(50):
            p = self.rng.choice(self.world.ordinary)
            if worker is None or not on_block(worker.own, p):
                return p
        raise IdrsError(f"no member of the public lives off {worker.seid if worker else ''}'s block")

    # ------------------------------------------------------------------ the run

    def run(self, days: int, start: datetime = DEFAULT_START,
            on_day: Callable[[int], None] | None = None) -> Stats:
        """Simulate ``days`` days; ``on_day(n)`` is called after each completed day."""
        t0 = time.perf_counter()
        self.clock.set(start + timedelta(hours=7))
        self._initial_inventories()
        for d in range(days):
            day0 = start + timedelta(days=d)
            self._plan_day(day0)
            for hour in range(1, 25):
                self._drain(until=day0 + timedelta(hours=hour))
                if self.barrier is not None:
                    self.barrier.wait()
            if on_day is not None:
                self.stats.seconds = time.perf_counter() - t0
                on_day(d + 1)
        self.stats.seconds = time.perf_counter() - t0
        self.stats.violations = len(self.truth)
        return self.stats

    def _drain(self, until: datetime | None = None) -> None:
        """Run the scheduled actions in time order (those before ``until``, if given)."""
        while self._schedule and (until is None or self._schedule[0][0] < until):
            when, _, action = heapq.heappop(self._schedule)
            if when > self.clock.now():
                self.clock.set(when)
            action()

    def _initial_inventories(self) -> None:
        for s in self._mine(Role.EXAMINER):
            mgr = self.world.manager_of(s.unit)
            inventory = []
            for _ in range(5):
                p = self.public(s)
                inventory.append((self.assign_case(s, p, by=mgr.seid), p))
            self.cases[s.seid] = inventory

    def _plan_day(self, day0: datetime) -> None:
        load = _WEEKDAY_LOAD[day0.weekday()] * self.rng.uniform(0.85, 1.15)
        workers = list(self.staff)
        if load == 0.0:  # weekend: a few examiners catch up on a case
            for s in self._mine(Role.EXAMINER):
                if self.rng.random() < 0.03:
                    self._examiner_day(s, day0, 1.0, hours=(10, 12), cases=1)
                    self.stats.employee_days += 1
            return
        for s in workers:
            self.stats.employee_days += 1
            pace = math.exp(self.rng.gauss(0, 0.25)) * load
            if s.role == Role.CSR:
                self._csr_day(s, day0, pace)
            elif s.role == Role.EXAMINER:
                self._examiner_day(s, day0, pace)
            elif s.role == Role.MANAGER:
                self._manager_day(s, day0)
            if s.role in (Role.CSR, Role.EXAMINER):
                if self.rng.random() < 0.03:
                    self._typo(s, day0)
                if self.rng.random() < self.rate:
                    self._violation(s, day0)
        if self.rng.random() < self.rate * len(self.staff) / 60:
            self._news_spike(day0)

    def _worktime(self, day0: datetime, hours: tuple[float, float] = (8.0, 16.5)) -> datetime:
        h = self.rng.uniform(*hours)
        return day0 + timedelta(hours=h)

    # ------------------------------------------------------------------ legitimate work

    def _csr_day(self, s: Staff, day0: datetime, pace: float) -> None:
        n = _poisson(self.rng, 4.0 * pace)
        for _ in range(n):
            t = self._worktime(day0)
            walk_in = self.rng.random() < 0.06
            by_name = not walk_in and self.rng.random() < 0.12
            self.at(t, partial(self._contact, s, t, walk_in, by_name))

    def _contact(self, s: Staff, t: datetime, walk_in: bool, by_name: bool) -> None:
        p = self.public(s)
        if by_name:
            self.research(s, C.NAMES, None, name=p.last, place=p.zip, reason="caller has no TIN at hand")
        cid, _ = self.open_contact(s, p, by=s.seid if walk_in else "system:acd",
                                   channel="visit" if walk_in else "phone")
        cmds = [C.ENMOD, C.IMFOL] + [c for c in _CSR_COMMANDS[2:] if self.rng.random() < 0.5]
        if walk_in:
            cmds = [C.ENMOD, C.IMFOL, C.TXMOD, C.INOLE]
        step = 120 if walk_in else 50
        when = self.clock.now()
        for c in cmds:
            when += timedelta(seconds=self.rng.uniform(0.5, 1.5) * step)
            self.at(when, partial(self.research, s, c, p, contact=cid))
        self.at(when + timedelta(seconds=40), lambda: self.close_contact(s, cid))

    def _examiner_day(self, s: Staff, day0: datetime, pace: float, *,
                      hours: tuple[float, float] = (8.0, 15.5), cases: int | None = None) -> None:
        inventory = self.cases.setdefault(s.seid, [])
        if not inventory:
            return
        k = cases if cases is not None else max(1, min(len(inventory), _poisson(self.rng, 2.2 * pace)))
        for cid, p in self.rng.sample(inventory, min(k, len(inventory))):
            t = self._worktime(day0, hours)
            self.at(t, partial(self._work_case, s, cid, p))
        if cases is None and self.rng.random() < 0.04:  # staying late on a case, legitimately
            cid, p = self.rng.choice(inventory)
            self.at(day0 + timedelta(hours=self.rng.uniform(18.0, 19.5)),
                    lambda: self._work_case(s, cid, p))

    def _open_case(self, s: Staff, cid: str) -> bool:
        """Whether the case is still in the examiner's inventory (one closed since the day was
        planned is not worked: the examiner's case list shows it closed)."""
        return any(c == cid for c, _ in self.cases.get(s.seid, []))

    def _work_case(self, s: Staff, cid: str, p: Person) -> None:
        if not self._open_case(s, cid):
            return
        when = self.clock.now()
        for c in self.rng.sample(_EXAM_COMMANDS, self.rng.randint(3, 5)):
            when += timedelta(seconds=self.rng.uniform(60, 240))
            self.at(when, partial(self.research, s, c, p, case=cid))
        if self.rng.random() < 0.12:
            self.at(when + timedelta(minutes=5), lambda: self._rotate_case(s, cid))

    def _rotate_case(self, s: Staff, cid: str) -> None:
        mgr = self.world.manager_of(s.unit)
        self.close_case(mgr.seid, cid)
        inv = self.cases[s.seid]
        inv[:] = [(c, p) for c, p in inv if c != cid]
        p = self.public(s)
        inv.append((self.assign_case(s, p, by=mgr.seid), p))
        if self.rng.random() < 0.15:  # a second examiner joins the case
            others = [o for o in self.world.units[s.unit] if o.role == Role.EXAMINER and o is not s]
            if others:
                o = self.rng.choice(others)
                if on_block(o.own, p):  # passed on: the colleague lives on that block
                    return
                self.cases.setdefault(o.seid, []).append(
                    (self.assign_case(o, p, by=mgr.seid), p))

    def _manager_day(self, m: Staff, day0: datetime) -> None:
        team = [s for s in self.world.units[m.unit] if s.role == Role.EXAMINER and self.cases.get(s.seid)]
        for _ in range(self.rng.choice((1, 1, 2))):
            if not team:
                return
            s = self.rng.choice(team)
            _, p = self.rng.choice(self.cases[s.seid])
            if on_block(m.own, p):  # the review goes to another reviewer
                continue
            self.at(self._worktime(day0), partial(self._review, m, p))

    def _review(self, m: Staff, p: Person) -> None:
        # the case system routes the review to the manager (nobody assigns a case to themselves)
        rid = self.assign_case(m, p, by="system:review-queue", prefix="R")
        when = self.clock.now()
        for c in (C.ENMOD, C.TXMOD, C.RTVUE):
            when += timedelta(seconds=self.rng.uniform(60, 180))
            self.at(when, partial(self.research, m, c, p, case=rid))
        self.at(when + timedelta(minutes=2), lambda: self.close_case(m.seid, rid))

    def _typo(self, s: Staff, day0: datetime) -> None:
        """A mistyped TIN: refused, and self-reported most of the time."""
        t = self._worktime(day0)

        def act() -> None:
            idx = self.research(s, C.ENMOD, self.public())
            if idx is not None and self.rng.random() < 0.7:
                later = self.clock.now() + timedelta(minutes=self.rng.uniform(2, 120))
                self.at(later, lambda: self._self_report(s, idx))
        self.at(t, act)

    def _self_report(self, s: Staff, idx: int) -> None:
        from idrs.detection import triage

        triage.self_report(self.app, token=self.token(s), audit_index=idx,
                           reason="mistyped TIN", interface="api")
        self.stats.admin += 1

    # ------------------------------------------------------------------ violations

    def _violation(self, s: Staff, day0: datetime) -> None:
        kind = self.rng.choice(VIOLATION_TYPES[:-1])
        if kind == "household" and s.roommate is None:
            kind = "spouse"
        v = _Violation(kind, s.seid, day0.date().isoformat())
        self.truth.append(v)
        t = self._worktime(day0, (9.0, 16.0))
        if kind == "after_hours":
            t = day0 + timedelta(hours=self.rng.uniform(20.5, 23.0))
        self.at(t, lambda: self._do_violation(s, v))

    def _refused_peek(self, s: Staff, v: _Violation, p: Person, cmds: tuple[str, ...]) -> None:
        v.target = v.target or p.tin
        when = self.clock.now()
        for c in cmds:
            self.at(when, partial(self._keep_research, v, s, c, p))
            when += timedelta(seconds=self.rng.uniform(20, 90))

    def _pretext(self, s: Staff, v: _Violation, p: Person, *, cmds: tuple[str, ...] = (C.ENMOD, C.IMFOL),
                 channel: str | None = None) -> None:
        """Open a contact nobody called about, then look."""
        ch = channel or ("phone" if self.rng.random() < 0.85 else "letter")
        cid, idx = self.open_contact(s, p, by=s.seid, channel=ch)
        if idx is not None:
            v.indexes.append(idx)
        when = self.clock.now()
        for c in cmds:
            when += timedelta(seconds=self.rng.uniform(10, 45))
            self.at(when, partial(self._keep_research, v, s, c, p, contact=cid))
        if self.rng.random() < 0.5:
            self.at(when + timedelta(seconds=30), lambda: self.close_contact(s, cid))

    def _keep(self, v: _Violation, idx: int | None) -> None:
        if idx is not None:
            v.indexes.append(idx)

    def _keep_research(self, v: _Violation, s: Staff, command: str, p: Person, *,
                       contact: str | None = None) -> None:
        """One research call of violation ``v``, its entry kept (scheduled as one action)."""
        self._keep(v, self.research(s, command, p, contact=contact))

    def _do_violation(self, s: Staff, v: _Violation) -> None:
        k = v.type
        if k == "self":
            self._refused_peek(s, v, s.own, (C.ENMOD, C.IMFOL))
        elif k == "spouse":
            self._refused_peek(s, v, s.spouse or s.own, (C.ENMOD, C.TXMOD))
        elif k == "relative":
            p = self.rng.choice([*s.children, s.parent]) if s.parent else s.children[0]
            self._refused_peek(s, v, p, (C.ENMOD,))
        elif k == "household":
            self._refused_peek(s, v, s.roommate or s.own, (C.ENMOD, C.IMFOL))
        elif k == "undeclared_relative":
            v.target = s.cousin.tin if s.cousin else None
            self._pretext(s, v, s.cousin or self.public())
        elif k == "neighbour":
            p = self.rng.choice(s.neighbours)
            v.target = p.tin
            self._pretext(s, v, p)
        elif k == "celebrity":
            p = self.rng.choice(self.world.celebrities)
            v.target = p.tin
            self._pretext(s, v, p, cmds=(C.ENMOD,))
        elif k == "coworker":
            others = [o for o in self.world.staff if o is not s]
            p = self.rng.choice(others).own
            v.target = p.tin
            self._pretext(s, v, p, cmds=(C.ENMOD,))
        elif k == "pretext_contact":
            p = self.public()
            v.target = p.tin
            self._pretext(s, v, p, cmds=(C.ENMOD, C.IMFOL, C.TXMOD))
        elif k == "after_hours":
            for _ in range(self.rng.randint(2, 4)):
                self._pretext(s, v, self.public(), channel="letter")
        elif k == "repeated_refusals":
            self._refused_peek(s, v, self.public(), (C.ENMOD, C.IMFOL, C.TXMOD, C.ENMOD, C.INOLE))
        elif k == "sweep":
            self._sweep(s, v)
        elif k == "bulk_harvest":
            when = self.clock.now()
            for _ in range(self.rng.randint(40, 70)):
                p = self.public()
                when += timedelta(seconds=self.rng.uniform(2, 8))
                self.at(when, partial(self._keep_research, v, s, C.ENMOD, p))

    def _sweep(self, s: Staff, v: _Violation) -> None:
        zip_code = s.own.zip if self.world.by_zip.get(s.own.zip) else self.public().zip
        pool = self.world.by_zip.get(zip_code) or self.world.public
        last = self.rng.choice(pool).last
        self._keep(v, self.research(s, C.NAMES, None, name=last, place=zip_code,
                                    reason="caller"))
        hits = [p for p in pool if p.last == last][:4] or [self.rng.choice(pool)]
        when = self.clock.now()
        for p in hits:
            when += timedelta(seconds=self.rng.uniform(10, 40))
            self.at(when, partial(self._keep_research, v, s, C.ENMOD, p))

    def _news_spike(self, day0: datetime) -> None:
        """Someone is in the news: a legitimate examiner works the case, many others peek."""
        p = self.public()
        t0 = self._worktime(day0, (9.0, 13.0))
        exams = self._mine(Role.EXAMINER)
        e = self.rng.choice(exams) if exams else None
        if e is not None:
            mgr = self.world.manager_of(e.unit)

            def legit() -> None:
                cid = self.assign_case(e, p, by=mgr.seid)
                self.cases.setdefault(e.seid, []).append((cid, p))
                self._work_case(e, cid, p)
            self.at(t0 - timedelta(minutes=30), legit)
        crowd = [s for s in self.staff if s.role in (Role.CSR, Role.EXAMINER) and s is not e]
        for s in self.rng.sample(crowd, min(len(crowd), self.rng.randint(6, 12))):
            v = _Violation("news_spike", s.seid, day0.date().isoformat(), target=p.tin)
            self.truth.append(v)
            t = t0 + timedelta(minutes=self.rng.uniform(0, 180))
            self.at(t, partial(self._pretext, s, v, p, cmds=(C.ENMOD, C.IMFOL)))

    # ------------------------------------------------------------------ output

    def truth_records(self) -> list[dict[str, Any]]:
        """Ground truth with taxpayers as audit-log pseudonyms (never a TIN in the file)."""
        out = []
        for v in self.truth:
            d = v.as_dict()
            d["taxpayer"] = self.app.keyring.pseudonym(v.target) if v.target else None
            out.append(d)
        return out


def _log_size(app: App) -> int:
    from idrs.audit.store import raw

    with raw(app.engine) as db:
        return int(db.size())


#: house numbers at most this far apart on one street and ZIP are one block (the detector's
#: ``relations.BLOCK`` says the same of a neighbour)
OWN_BLOCK = 100


def _house(p: Person) -> int | None:
    head = p.street.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def on_block(me: Person, p: Person) -> bool:
    """Whether ``p`` lives on ``me``'s block (their own dwelling included)."""
    if p.zip != me.zip or p.street_name != me.street_name:
        return False
    a, b = _house(me), _house(p)
    return a is None or b is None or abs(a - b) <= OWN_BLOCK


def research_run(app: App, **kw: Any) -> ResearchAnswer:
    from idrs import research

    return research.run(app, **kw)


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def _start_session(app: App, employee_id: int, seid: str) -> str:
    """A session for a simulated employee without the ~70 ms password hash (see module doc)."""
    from idrs.crypto import random_token, sha256_hex

    now = app.clock.now()
    token = random_token(32)
    with session_scope(app.engine) as s:
        row = SignInSession(token_hash=sha256_hex(token), employee_id=employee_id, created_at=now,
                            last_seen_at=now,
                            expires_at=now + timedelta(hours=app.settings.session_absolute_hours),
                            interface="api")
        s.add(row)
        s.flush()
        sid = row.id
    from idrs.audit.events import EventType

    record(app, EventType.AUTH_SIGNIN_SUCCESS, actor=seid, interface="api",
           obj={"seid": seid, "session": sid}, detail={"method": "simulated"})
    return token


def simulate(app: App, *, days: int, employees: int, seed: int = 7, violation_rate: float = 0.01,
             truth_out: Path | str, start: datetime = DEFAULT_START,
             workers: int = DEFAULT_WORKERS,
             simulator_class: type[Simulator] | None = None) -> dict[str, Any]:
    """Build the world, simulate ``days`` days, write the truth file; return the figures.

    ``workers`` processes share the simulation: each owns a share of the units (and their
    staff) and they meet at every simulated hour. A run is reproducible for the same seed and
    number of workers. Callers: ``idrs simulate`` and the tests/benchmarks. Records
    ``detect:simulation:run`` (counts only; the truth is never stored in the database).
    """
    if days < 1 or employees < 5:
        raise IdrsError("simulate needs --days >= 1 and --employees >= 5")
    if not 0.0 <= violation_rate <= 0.5:
        raise IdrsError("--violation-rate must lie in [0, 0.5]")
    if not 1 <= workers <= 16:
        raise IdrsError("--workers must lie in [1, 16]")
    if not isinstance(app.clock, FakeClock):
        raise IdrsError("the simulator needs a FakeClock (simulated time)")
    app.clock.set(start - timedelta(days=1) + timedelta(hours=12))
    t0 = time.perf_counter()
    world = population.build(app, employees=employees, seed=seed)
    built = time.perf_counter() - t0
    workers = min(workers, len(world.units))

    def write_truth(done: int, stats: Stats, truth: list[dict[str, Any]]) -> None:
        # rewritten after every simulated day (one worker), so a long run can be evaluated part way
        Path(truth_out).write_text(json.dumps({
            "days": days, "days_completed": done, "employees": employees, "seed": seed,
            "workers": workers, "violation_rate": violation_rate,
            "start": start.date().isoformat(), "employee_days": stats.employee_days,
            "log_size": _log_size(app), "stats": stats.as_dict(), "violations": truth}, indent=1))

    t1 = time.perf_counter()
    if workers == 1:
        sim = (simulator_class or Simulator)(app, world, seed=seed, violation_rate=violation_rate)
        stats = sim.run(days, start, on_day=lambda d: write_truth(d, sim.stats, sim.truth_records()))
        truth = sim.truth_records()
    else:
        def progress(done: int, st: Stats, truth: list[dict[str, Any]]) -> None:
            st.seconds = time.perf_counter() - t1
            write_truth(done, st, truth)

        stats, truth = _run_workers(app, world, days=days, start=start, seed=seed,
                                    violation_rate=violation_rate, workers=workers, on_day=progress,
                                    simulator_class=simulator_class)
        stats.seconds = time.perf_counter() - t1
        write_truth(days, stats, truth)
    out = {**stats.as_dict(), "population_seconds": round(built, 1), "workers": workers,
           "taxpayers": len(world.people), "truth_out": str(truth_out)}
    record(app, DetectionEvent.DETECT_SIMULATION_RUN, actor="system:simulator",
           interface="system", obj={"kind": "simulation"},
           detail={k: v for k, v in out.items() if k != "truth_out"})
    return out


@dataclass(frozen=True)
class _Job:
    """What a worker process needs (pickled to it: workers are not forked from the caller)."""

    url: str
    home: Path
    now: datetime
    world: World
    seed: int
    violation_rate: float
    days: int
    start: datetime
    workers: int
    simulator: type[Simulator]


def _child(job: _Job, w: int, barrier: Any, results: Any) -> None:
    """One worker: its own engine and FakeClock, its share of the units; reports to the parent."""
    try:
        mine = App.open(job.url, home=job.home, clock=FakeClock(job.now))
        sim = job.simulator(mine, job.world, seed=job.seed, violation_rate=job.violation_rate,
                            part=(w, job.workers), barrier=barrier)
        st = sim.run(job.days, job.start, on_day=lambda d: results.put(
            ("day", w, (d, sim.stats, sim.truth_records()))))
        results.put(("done", w, (st, sim.clock.now(), sim.truth_records())))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then re-raised
        barrier.abort()
        results.put(("error", w, f"{type(exc).__name__}: {exc}"))
        raise


def _run_workers(app: App, world: World, *, days: int, start: datetime, seed: int,
                 violation_rate: float, workers: int,
                 on_day: Callable[[int, Stats, list[dict[str, Any]]], None] | None = None,
                 simulator_class: type[Simulator] | None = None,
                 ) -> tuple[Stats, list[dict[str, Any]]]:
    """Run ``workers`` simulator processes (each with its own engine and FakeClock); merge.

    ``simulator_class`` (a subclass of :class:`Simulator` importable by name, as the workers
    receive it pickled) lets a test make one worker fail.

    ``on_day(n, stats, truth)`` is called when every worker has finished day ``n``. A failing
    worker breaks the hourly barrier, so the others stop too; the run then raises IdrsError.
    (What was simulated until then stays in the append-only log, as it would after an
    interrupted single-process run.)
    """
    import multiprocessing as mp

    # never fork this process: it may run threads (the WAL checkpointer, the tail signer, a
    # server's), and a lock one of them held at the fork stays held in the child for ever.
    # Workers fork from a fresh, single-threaded server instead (their arguments are pickled).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    barrier = ctx.Barrier(workers, timeout=_BARRIER_TIMEOUT)
    results = ctx.Queue()
    url = app.engine.url.render_as_string(hide_password=False)
    home = app.settings.home
    now = app.clock.now()
    simulator_class = simulator_class or Simulator

    def merge(parts: list[tuple[Stats, list[dict[str, Any]]]]) -> tuple[Stats, list[dict[str, Any]]]:
        total, truth_all = Stats(), []
        for st, truth in parts:
            for k in ("accesses", "allowed", "denied", "admin", "employee_days"):
                setattr(total, k, getattr(total, k) + getattr(st, k))
            truth_all.extend(truth)
        total.violations = len(truth_all)
        truth_all.sort(key=lambda v: (v["day"], v["seid"], v["audit_indexes"][:1]))
        return total, truth_all

    job = _Job(url=url, home=home, now=now, world=world, seed=seed, violation_rate=violation_rate,
               days=days, start=start, workers=workers, simulator=simulator_class)
    procs = [ctx.Process(target=_child, args=(job, w, barrier, results), name=f"idrs-simulate-{w}")
             for w in range(workers)]
    for proc in procs:
        proc.start()
    done: dict[int, tuple[Stats, datetime, list[dict[str, Any]]]] = {}
    errors: dict[int, str] = {}
    days_of: dict[int, tuple[int, Stats, list[dict[str, Any]]]] = {}
    reported = 0
    failed_at: float | None = None  # when the first worker reported a failure
    while len(done) + len(errors) < workers:
        try:
            kind, w, payload = results.get(timeout=2.0)
        except queue.Empty:
            if failed_at is not None and time.monotonic() - failed_at > _STOP_GRACE:
                # the barrier was aborted, yet a worker neither finished nor failed: it is
                # stuck (a lock inherited through the fork, say); stop it rather than wait
                for i, proc in enumerate(procs):
                    if i not in done and i not in errors:
                        proc.kill()
                        errors[i] = "stopped: no answer after another worker failed"
                continue
            dead = [i for i, proc in enumerate(procs)
                    if i not in done and i not in errors and proc.exitcode not in (None, 0)]
            if dead:  # killed without a word (OOM, kill -9): stop the others and report
                barrier.abort()
                for proc in procs:
                    proc.join(timeout=_BARRIER_TIMEOUT)
                raise IdrsError(f"simulation failed: worker {dead[0]} died "
                                f"(exit code {procs[dead[0]].exitcode})") from None
            continue
        if kind == "error":
            errors[w] = payload
            failed_at = failed_at if failed_at is not None else time.monotonic()
        elif kind == "done":
            done[w] = payload
        else:
            days_of[w] = payload
            common = min((days_of[i][0] if i in days_of else 0) for i in range(workers))
            if on_day is not None and common > reported and len(days_of) == workers \
                    and all(days_of[i][0] == common for i in range(workers)):
                reported = common
                on_day(common, *merge([(days_of[i][1], days_of[i][2]) for i in range(workers)]))
    for proc in procs:
        proc.join(timeout=_STOP_GRACE if errors else None)
        if proc.is_alive():  # reported its failure but hangs on the way out
            proc.kill()
            proc.join()
    if errors:
        raise IdrsError("simulation failed: " + "; ".join(f"worker {w}: {e}" for w, e in sorted(errors.items())))
    for _, when, _ in done.values():
        if isinstance(app.clock, FakeClock) and when > app.clock.now():
            app.clock.set(when)  # the parent's record of the run comes after the simulated work
    return merge([(done[w][0], done[w][2]) for w in range(workers)])


def simulated_app(db_url: str | None, start: date | None = None) -> App:
    """An App for ``idrs simulate``: the configured database, keys, and a FakeClock."""
    when = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else DEFAULT_START
    return App.open(db_url, clock=FakeClock(when))


__all__ = ["VIOLATION_TYPES", "Simulator", "simulate", "simulated_app", "make_event"]
