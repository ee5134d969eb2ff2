"""Work profiles for the simulator: the ways real units work that the default month lacks.

Issue 17: a detector tuned on one simulator learns its habits. Each profile here is a
documented, parameterized way of working, simulated through the same real service path as
:mod:`idrs.detection.simulator` (``research.run`` with session tokens, ``access.service`` for
cases and contacts), with or without violations. The violations are the ones that hide inside
a legitimate-looking basis:

``undeclared_relative``
    an employee with a rare surname works their cousin (same surname, another address,
    nothing links them in the data) under a case someone else assigned (examiners) or a
    contact the intake desk recorded for them (service representatives);
``neighbour``
    a neighbour (same street, another household) is worked under a contact the intake desk
    recorded for the employee;
``contact_sweep``
    many accounts looked at in one sitting, each under a contact (walk-ins the employee
    declares and contacts the intake desk records), one or two commands each.

Profiles (``PROFILES``; the parameters are the keyword arguments of :func:`run_profile`'s
``params``, defaults in :data:`DEFAULTS`):

``routed``        the default simulator's work: calls routed by ``system:acd``, cases assigned
                  by the manager, reviews routed by ``system:review-queue``.
``intake``        contacts recorded for the representative by the intake desk
                  (``system:intake``) and a morning queue of walk-ins the representative
                  declares (``walkins`` per day, ``visit_minutes`` each), besides routed calls.
``bulk_assign``   a workload-selection system (``system:workload``) assigns ``batch`` cases to
                  each examiner at any hour (night included); an operator assigns more through
                  the CLI; the examiners work them the next days.
``batch``         an examiner works ``batch`` cases in one sitting, ``gap_minutes`` apart, two
                  or three commands each.
``team_lead``     managers and reviewers look at ``reviews`` of their team's cases a day,
                  minutes apart (the review queue routes each to them).
``night_shift``   the whole agency works ``shift`` hours (22:00-06:00 by default): calls
                  routed at night, cases worked at night.
``new_employee``  ``new_share`` of the staff start on day ``start_day`` (no history before),
                  and ``leave_share`` are on leave until then and come back to a backlog.
``seasonal_peak`` the filing season: from the first day the work of everyone (calls, cases,
                  reviews) climbs over ``ramp_days`` to ``peak`` times the ordinary load, and
                  the working day stretches to ``overtime_until`` (19:30) with overtime.
``small_town``    the public and the staff live in ``zips`` ZIP codes and draw their surnames
                  from ``surnames`` common names: honest caseloads share the employee's ZIP and
                  surname every day.

Every profile gives a handful of employees a rare surname (``rare`` of them) so that the
hidden-relative violation can happen; their honest work is like anyone's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from idrs.context import App
from idrs.detection import population
from idrs.detection.events import DetectionEvent
from idrs.detection.population import Person, Staff, World
from idrs.detection.simulator import DEFAULT_START, Simulator, _poisson, _Violation, on_block
from idrs.errors import IdrsError
from idrs.people.service import record
from idrs.vocabulary import CommandCode as C
from idrs.vocabulary import Role

HIDDEN_TYPES = ("undeclared_relative", "neighbour", "contact_sweep")
DEFAULTS: dict[str, dict[str, Any]] = {
    "routed": {},
    "intake": {"walkins": 7, "visit_minutes": 6.0, "intake_share": 0.5},
    "bulk_assign": {"batch": 12, "night_share": 0.5},
    "batch": {"batch": 12, "gap_minutes": 3.0},
    "team_lead": {"reviews": 10, "gap_minutes": 4.0},
    "night_shift": {"shift": (22.0, 30.0)},
    "new_employee": {"new_share": 0.3, "leave_share": 0.2, "start_day": 3},
    "small_town": {"zips": 1, "surnames": 12},
    "seasonal_peak": {"peak": 3.0, "ramp_days": 2, "overtime_until": 19.5},
}
PROFILES = tuple(DEFAULTS)
#: ``mixed``: every unit works one of the profiles above (round robin over the units; a
#: ``small_town`` unit works like ``routed``: the town is a property of the world)
MIXED = "mixed"
_SMALL_TOWN_NAMES = ("Smith", "Johnson", "Miller", "Brown", "Davis", "Wilson", "Moore", "Taylor",
                     "Anderson", "Thomas", "Jackson", "White", "Harris", "Martin", "Clark", "Lewis")


@dataclass(frozen=True)
class ProfileRun:
    profile: str
    violations: bool
    params: dict[str, Any]


class ProfileSimulator(Simulator):
    """The default simulator with one profile's work (and its hidden violations)."""

    def __init__(self, app: App, world: World, run: ProfileRun, *, seed: int, days: int,
                 per_type: int) -> None:
        super().__init__(app, world, seed=seed, violation_rate=0.0)
        mixed = run.profile == MIXED
        self.unit_profile = {u: (PROFILES[i % len(PROFILES)] if mixed else run.profile)
                             for i, u in enumerate(sorted(world.units))}
        self.params = {p: {**DEFAULTS[p], **(run.params if p == run.profile else {})} for p in PROFILES}
        self._cur = PROFILES[0] if mixed else run.profile
        self.starts: dict[str, int] = {}
        self.day_no = 0
        self.plan: dict[int, list[tuple[str, Staff]]] = {}
        if "new_employee" in self.unit_profile.values():
            order = [s for s in self.staff if self.unit_profile[s.unit] == "new_employee"]
            self.rng.shuffle(order)
            p = self.params["new_employee"]
            n_new = int(len(order) * float(p["new_share"]))
            n_leave = int(len(order) * float(p["leave_share"]))
            for s in order[:n_new + n_leave]:
                if s.role != Role.MANAGER:
                    self.starts[s.seid] = int(p["start_day"])
        if run.violations:
            self._plan_violations(days, per_type)

    @property
    def profile(self) -> str:
        """The profile of the unit whose work is being planned."""
        return self._cur

    @property
    def p(self) -> dict[str, Any]:
        return self.params[self._cur]

    def _use(self, s: Staff) -> None:
        self._cur = self.unit_profile[s.unit]

    def run(self, days: int, start: datetime = DEFAULT_START, on_day: Any = None) -> Any:
        """The days, then whatever work is still scheduled (a night shift's last hours)."""
        super().run(days, start, on_day)
        self._drain()
        self.stats.violations = len(self.truth)
        return self.stats

    # ------------------------------------------------------------ violations planned ahead

    def _plan_violations(self, days: int, per_type: int) -> None:
        """``per_type`` violations of each hidden type, on working days after the first two
        (so the employee has some history), by distinct employees where possible."""
        workdays = [d for d in range(days) if (DEFAULT_START + timedelta(days=d)).weekday() < 5]
        later = [d for d in workdays if d >= 2] or workdays
        rare = [s for s in self.staff if s.own.last in population.RARE_SURNAMES
                and s.cousin is not None]
        csrs = [s for s in self.staff if s.role == Role.CSR]
        workers = [s for s in self.staff if s.role in (Role.CSR, Role.EXAMINER)]
        pools = {"undeclared_relative": rare, "neighbour": workers, "contact_sweep": csrs}
        for kind in HIDDEN_TYPES:
            pool = list(pools[kind])
            self.rng.shuffle(pool)
            for i in range(min(per_type, len(pool))):
                s = pool[i]
                day = max(self.starts.get(s.seid, 0), later[(i * 3 + len(kind)) % len(later)])
                self.plan.setdefault(day, []).append((kind, s))

    def _hidden(self, kind: str, s: Staff, day0: datetime) -> None:
        self._use(s)
        v = _Violation(kind, s.seid, day0.date().isoformat())
        self.truth.append(v)
        lo, hi = self._hours()
        t = day0 + timedelta(hours=self.rng.uniform(lo + 1.0, hi - 1.5))
        if kind == "undeclared_relative":
            assert s.cousin is not None
            v.target = s.cousin.tin
            self.at(t, partial(self._relative_under_basis, s, v, s.cousin))
        elif kind == "neighbour":
            p = self.rng.choice(s.neighbours)
            v.target = p.tin
            self.at(t, partial(self._under_intake_contact, s, v, p))
        else:
            self.at(t, partial(self._contact_sweep, s, v))

    def _relative_under_basis(self, s: Staff, v: _Violation, p: Person) -> None:
        """The relative's case comes from someone else (the manager, or the workload system);
        a representative has the intake desk record a contact instead."""
        if s.role == Role.EXAMINER:
            bulk = self.unit_profile[s.unit] == "bulk_assign"
            by = "system:workload" if bulk else self.world.manager_of(s.unit).seid
            cid = self.assign_case(s, p, by=by)
            when = self.clock.now()
            for c in self.rng.sample((C.ENMOD, C.TXMOD, C.IMFOL, C.RTVUE, C.INOLE), 3):
                when += timedelta(seconds=self.rng.uniform(60, 200))
                self.at(when, partial(self._keep_research, v, s, c, p, case=cid))
        else:
            self._under_intake_contact(s, v, p)

    def _under_intake_contact(self, s: Staff, v: _Violation, p: Person) -> None:
        cid, _ = self.open_contact(s, p, by="system:intake", channel="visit")
        when = self.clock.now()
        for c in (C.ENMOD, C.IMFOL, C.TXMOD):
            when += timedelta(seconds=self.rng.uniform(40, 120))
            self.at(when, partial(self._keep_research, v, s, c, p, contact=cid))
        self.at(when + timedelta(seconds=30), lambda: self.close_contact(s, cid))

    def _contact_sweep(self, s: Staff, v: _Violation) -> None:
        when = self.clock.now()
        for k in range(self.rng.randint(10, 16)):
            p = self.public()
            by = "system:intake" if k % 2 else s.seid
            when += timedelta(seconds=self.rng.uniform(20, 60))
            self.at(when, partial(self._sweep_one, s, v, p, by))
            when += timedelta(seconds=self.rng.uniform(20, 60))

    def _sweep_one(self, s: Staff, v: _Violation, p: Person, by: str) -> None:
        cid, _ = self.open_contact(s, p, by=by, channel="visit")
        self._keep(v, self.research(s, C.ENMOD, p, contact=cid))
        if self.rng.random() < 0.5:
            self.at(self.clock.now() + timedelta(seconds=15),
                    partial(self._keep_research, v, s, C.IMFOL, p, contact=cid))
        self.at(self.clock.now() + timedelta(seconds=40), lambda: self.close_contact(s, cid))

    def _keep_research(self, v: _Violation, s: Staff, command: str, p: Person, *,
                       contact: str | None = None, case: str | None = None) -> None:
        self._keep(v, self.research(s, command, p, contact=contact, case=case))

    # ------------------------------------------------------------ honest work

    def _hours(self) -> tuple[float, float]:
        if self.profile == "night_shift":
            lo, hi = self.p["shift"]
            return float(lo), float(hi)
        return 8.0, 16.5

    def _season(self) -> float:
        """The filing season's load: 1 on the first day, ``peak`` after ``ramp_days``."""
        peak, ramp = float(self.p["peak"]), max(1, int(self.p["ramp_days"]))
        return 1.0 + (peak - 1.0) * min(1.0, self.day_no / ramp)

    def _worktime(self, day0: datetime, hours: tuple[float, float] = (8.0, 16.5)) -> datetime:
        if self.profile == "seasonal_peak" and self.day_no > 0 and hours[1] < 18.0:
            hours = (hours[0], max(hours[1], float(self.p["overtime_until"]) - 0.5))
        if self.profile == "night_shift":
            lo, hi = self._hours()
            shift = (hours[0] - 8.0, hours[1] - 8.0)  # the same part of the shift
            return day0 + timedelta(hours=self.rng.uniform(lo + shift[0], min(hi, lo + shift[1])))
        return super()._worktime(day0, hours)

    def _initial_inventories(self) -> None:
        super()._initial_inventories()
        for s in self._mine(Role.EXAMINER):
            self._use(s)
            if self.profile in ("batch", "bulk_assign"):
                n = int(self.p["batch"])
                by = "system:workload" if self.profile == "bulk_assign" else self.world.manager_of(s.unit).seid
                for _ in range(n):
                    p = self.public(s)
                    self.cases[s.seid].append((self.assign_case(s, p, by=by), p))

    def _plan_day(self, day0: datetime) -> None:
        self.day_no = (day0 - DEFAULT_START).days if day0 >= DEFAULT_START else self.day_no
        weekday = day0.weekday() < 5
        if weekday:
            for s in self.staff:
                self._use(s)
                start = self.starts.get(s.seid, 0)
                if self.day_no < start:
                    continue
                self.stats.employee_days += 1
                pace = self.rng.uniform(0.8, 1.2) * (1.5 if self.day_no == start and start else 1.0)
                if self.profile == "seasonal_peak":
                    pace *= self._season()
                self._honest_day(s, day0, pace)
                if s.role in (Role.CSR, Role.EXAMINER) and self.rng.random() < 0.03:
                    self._typo(s, day0)  # a mistyped TIN, mostly self-reported
            for unit in sorted({s.unit for s in self.staff}):
                if self.unit_profile[unit] == "bulk_assign":
                    self._cur = "bulk_assign"
                    self._bulk_assign(day0, unit)
        for kind, s in self.plan.get(self.day_no, []):
            self._hidden(kind, s, day0)

    def _honest_day(self, s: Staff, day0: datetime, pace: float) -> None:
        prof = self.profile
        if s.role == Role.CSR:
            if prof == "intake":
                self._intake_day(s, day0, pace)
            else:
                self._csr_day(s, day0, pace)
        elif s.role == Role.EXAMINER:
            batch_share = {"batch": 0.6, "bulk_assign": 0.5}.get(prof, 0.0)
            if batch_share and self.rng.random() < batch_share:
                self._batch_day(s, day0)
            else:
                self._examiner_day(s, day0, pace, hours=self._exam_hours())
        elif s.role == Role.MANAGER:
            if prof == "team_lead":
                self._lead_day(s, day0)
            else:
                self._manager_day(s, day0)

    def _exam_hours(self) -> tuple[float, float]:
        return (8.0, 15.5)

    def _intake_day(self, s: Staff, day0: datetime, pace: float) -> None:
        """Routed calls, contacts the intake desk records for the representative, and a
        morning queue of walk-ins the representative declares, back to back."""
        for _ in range(_poisson(self.rng, 3.0 * pace)):
            t = self._worktime(day0)
            intake = self.rng.random() < float(self.p["intake_share"])
            self.at(t, partial(self._routed_contact, s, "system:intake" if intake else "system:acd",
                               "visit" if intake else "phone"))
        t = day0 + timedelta(hours=self.rng.uniform(8.5, 10.0))
        for _ in range(max(1, _poisson(self.rng, float(self.p["walkins"]) * pace))):
            self.at(t, partial(self._walk_in, s))
            t += timedelta(minutes=float(self.p["visit_minutes"]) * self.rng.uniform(0.8, 1.3))

    def _routed_contact(self, s: Staff, by: str, channel: str) -> None:
        p = self.public(s)
        cid, _ = self.open_contact(s, p, by=by, channel=channel)
        when = self.clock.now()
        for c in [C.ENMOD, C.IMFOL] + [c for c in (C.TXMOD, C.INOLE) if self.rng.random() < 0.5]:
            when += timedelta(seconds=self.rng.uniform(30, 90))
            self.at(when, partial(self.research, s, c, p, contact=cid))
        self.at(when + timedelta(seconds=40), lambda: self.close_contact(s, cid))

    def _walk_in(self, s: Staff) -> None:
        p = self.public(s)
        cid, _ = self.open_contact(s, p, by=s.seid, channel="visit")
        when = self.clock.now()
        for c in (C.ENMOD, C.IMFOL, C.TXMOD):
            when += timedelta(seconds=self.rng.uniform(40, 90))
            self.at(when, partial(self.research, s, c, p, contact=cid))
        self.at(when + timedelta(seconds=30), lambda: self.close_contact(s, cid))

    def _batch_day(self, s: Staff, day0: datetime) -> None:
        """One sitting: ``batch`` cases, ``gap_minutes`` apart, two or three commands each."""
        inv = self.cases.get(s.seid) or []
        if not inv:
            return
        k = min(len(inv), int(self.p["batch"]))
        lo, hi = self._hours()
        t = day0 + timedelta(hours=self.rng.uniform(lo + 0.5, hi - 3.0))
        gap = float(self.p.get("gap_minutes", 3.0))
        for cid, p in self.rng.sample(inv, k):
            self.at(t, partial(self._quick_case, s, cid, p))
            t += timedelta(minutes=gap * self.rng.uniform(0.6, 1.4))

    def _quick_case(self, s: Staff, cid: str, p: Person) -> None:
        if not self._open_case(s, cid):
            return
        when = self.clock.now()
        for c in self.rng.sample((C.TXMOD, C.RTVUE, C.IMFOL, C.ENMOD), self.rng.randint(2, 3)):
            when += timedelta(seconds=self.rng.uniform(15, 50))
            self.at(when, partial(self.research, s, c, p, case=cid))

    def _bulk_assign(self, day0: datetime, unit: str) -> None:
        """The workload system assigns a batch to a few examiners at any hour (night too);
        an operator (the manager, through the CLI) assigns a few more in the afternoon."""
        exams = [s for s in self._mine(Role.EXAMINER) if s.unit == unit]
        if not exams:
            return
        for s in self.rng.sample(exams, max(1, len(exams) // 3)):
            night = self.rng.random() < float(self.p["night_share"])
            t = day0 + timedelta(hours=self.rng.uniform(1.0, 4.0) if night else self.rng.uniform(9, 17))
            self.at(t, partial(self._assign_batch, s, "system:workload", int(self.p["batch"]) // 2))
        s = self.rng.choice(exams)
        self.at(day0 + timedelta(hours=15), partial(self._assign_batch, s,
                                                    self.world.manager_of(s.unit).seid, 3))

    def _assign_batch(self, s: Staff, by: str, n: int) -> None:
        inv = self.cases.setdefault(s.seid, [])
        for _ in range(n):
            p = self.public(s)
            inv.append((self.assign_case(s, p, by=by), p))
        while len(inv) > 40:  # closed as worked
            cid, _ = inv.pop(0)
            self.close_case(self.world.manager_of(s.unit).seid, cid)

    def _lead_day(self, m: Staff, day0: datetime) -> None:
        """A team lead reviews ``reviews`` of the team's cases in one sitting, minutes apart."""
        team = [s for s in self.world.units[m.unit] if s.role == Role.EXAMINER and self.cases.get(s.seid)]
        if not team:
            return
        t = day0 + timedelta(hours=self.rng.uniform(9.0, 13.0))
        for _ in range(int(self.p["reviews"])):
            s = self.rng.choice(team)
            _, p = self.rng.choice(self.cases[s.seid])
            if on_block(m.own, p):  # the review goes to another reviewer
                continue
            self.at(t, partial(self._review, m, p))
            t += timedelta(minutes=float(self.p["gap_minutes"]) * self.rng.uniform(0.7, 1.3))


def build_world(app: App, profile: str, *, employees: int, seed: int,
                params: dict[str, Any] | None = None, public_per_employee: int = 0) -> World:
    """The population for ``profile`` (a small town has few ZIPs and few surnames).

    ``public_per_employee`` 0: enough members of the public (at least 3,000) that a surname
    one of them carries, besides the employee's family, is rare (1 in 2,000 or rarer: the hidden
    relative's case)."""
    p = {**DEFAULTS.get(profile, {}), **(params or {})}
    per = public_per_employee or max(24, 3000 // max(1, employees))
    kw: dict[str, Any] = {"rare_surnames": max(2, employees // 10)}
    if profile == "small_town":
        kw.update(n_zips=int(p["zips"]), surnames=_SMALL_TOWN_NAMES[:int(p["surnames"])])
    if profile == MIXED:  # a unit per profile (at least 5 staff each), a rare surname in each
        size = max(5, employees // len(PROFILES))
        kw.update(unit_size=size, rare_surnames=min(len(population.RARE_SURNAMES),
                                                    2 * max(1, round(employees / size))))
    return population.build(app, employees=employees, seed=seed, public_per_employee=per, **kw)


def run_profile(app: App, profile: str, *, days: int, employees: int, seed: int = 7,
                violations: bool = True, per_type: int = 2, truth_out: Path | str,
                params: dict[str, Any] | None = None,
                start: datetime = DEFAULT_START) -> dict[str, Any]:
    """Build the profile's world and simulate ``days`` days of its work (one process);
    write the truth file (the same format as ``idrs simulate``'s); return the figures."""
    from idrs.clock import FakeClock

    if profile not in DEFAULTS and profile != MIXED:
        raise IdrsError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}, {MIXED}")
    unknown = set(params or {}) - set(DEFAULTS.get(profile, {}))
    if unknown:
        raise IdrsError(f"profile {profile}: unknown parameter {sorted(unknown)[0]!r}")
    if days < 1 or employees < 5:
        raise IdrsError("a profile run needs days >= 1 and employees >= 5")
    if not isinstance(app.clock, FakeClock):
        raise IdrsError("the simulator needs a FakeClock (simulated time)")
    if start != DEFAULT_START:
        raise IdrsError("profiles start on the simulator's default Monday")
    app.clock.set(start - timedelta(days=1) + timedelta(hours=12))
    world = build_world(app, profile, employees=employees, seed=seed, params=params)
    sim = ProfileSimulator(app, world, ProfileRun(profile, violations, dict(params or {})),
                           seed=seed, days=days, per_type=per_type)
    stats = sim.run(days, start)
    truth = sim.truth_records()
    Path(truth_out).write_text(json.dumps({
        "profile": profile, "units": sim.unit_profile,
        "params": {p: sim.params[p] for p in sorted(set(sim.unit_profile.values()))}, "days": days, "employees": employees, "seed": seed,
        "with_violations": violations, "employee_days": stats.employee_days,
        "stats": stats.as_dict(), "violations": truth}, indent=1, default=str))
    out = {**stats.as_dict(), "profile": profile, "taxpayers": len(world.people),
           "truth_out": str(truth_out)}
    record(app, DetectionEvent.DETECT_SIMULATION_RUN, actor="system:simulator",
           interface="system", obj={"kind": "simulation"},
           detail={"profile": profile, **{k: v for k, v in out.items() if k not in ("truth_out", "profile")}})
    return out

