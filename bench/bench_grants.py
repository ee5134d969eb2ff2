"""Grants and the oversight report: the grant check's cost per decision; the report at scale.

- *Grant check*: ``grants.facts.grant_facts`` (one round trip on the request's connection:
  the principal's grants with the agreement-signed flag, the newest training attestation,
  clearance) plus ``cedar_context``, for a principal holding two grants, warm, on SQLite;
  p50 and p99 over a few thousand calls. This is what the decision gains when the lead wires
  it into ``access.facts.gather`` (the Cedar answer itself stays memoized on the facts).
  Also Cedar run uncached with and without the grant policies (the extra policies' cost
  when the memo misses).
- *Oversight report*: a 100-person unit (10 of them detailees with grants) among 2,000
  employees; the audit log holds N research entries over 90 days (5% denials), appended with
  ``audit.log.append_many`` (real Merkle nodes) and checkpointed. Timed: ``report.build`` for
  the unit (potential from the decision point for 100 principals, actual from one pass over
  the log up to a fresh signed checkpoint) and rendering JSON and HTML.

Full scale asks for 10,000,000 entries; generating them takes long on a small machine, so
``IDRS_BENCH_GRANTS_ENTRIES`` may set the size actually built (the figure says which size
was measured). Quick: 100,000 entries. The database lives under /tmp/idrs-bench-grants.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

TITLE = "Grants: grant check per decision; oversight report over the audit log"
BASE = Path("/tmp/idrs-bench-grants")
NOW = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)
SIZES = {"full": 10_000_000, "quick": 100_000}
EMPLOYEES, TEAM, DETAILEES = 2_000, 100, 10
COMMANDS = ["ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE", "IRPTR"]
DENIALS = ["NO_BUSINESS_NEED", "CONFLICT_RELATIVE", "SENSITIVE_ACCOUNT", "RATE_LIMITED"]


def _app(db: Path) -> Any:
    from idrs.clock import FakeClock
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    home = BASE / "home"
    if not home.exists():
        Keyring.create(home)
    from idrs.audit.checkpoint import ensure_signing_key

    settings = Settings(database_url=f"sqlite:///{db}", home=home,
                        checkpoint_every_entries=10**9, checkpoint_every_seconds=10**9)
    ensure_signing_key(home, settings.audit_origin)
    return App(settings=settings, engine=make_engine(settings.database_url),
               keyring=Keyring.load(home), clock=FakeClock(NOW))


def _people(app: Any) -> None:
    from idrs.db import session_scope
    from idrs.grants.models import (
        Agreement,
        AgreementSignature,
        ClearanceVerification,
        Grant,
        TrainingAttestation,
    )
    from idrs.people.models import Employee, Unit

    with session_scope(app.engine) as s:
        team = Unit(code="TEAM", name="The team", ceiling="ENMOD,IMFOL,TXMOD,RTVUE,INOLE,IRPTR")
        other = Unit(code="HQ", name="Headquarters", ceiling=team.ceiling)
        s.add_all([team, other])
        s.flush()
        ag = Agreement(title="NDA", version=1, text="x", sha256="0" * 64, current=True,
                       added_by="bench", added_at=NOW)
        s.add(ag)
        s.flush()
        for i in range(EMPLOYEES):
            in_team = i < TEAM
            detailee = i < DETAILEES
            e = Employee(seid=f"E{i:05d}", name=f"E{i}", kind="detailee" if detailee else "employee",
                         unit_id=team.id if in_team else other.id, roles="examiner",
                         profile="ENMOD,IMFOL,INOLE,IRPTR,RTVUE,TXMOD", authorities="",
                         created_at=NOW, active=True)
            s.add(e)
            s.flush()
            s.add(TrainingAttestation(employee_id=e.id, attested_at=NOW - timedelta(days=30)))
            if detailee:
                s.add(ClearanceVerification(employee_id=e.id, verified_by="E00099",
                                            recorded_by="bench", verified_at=NOW))
                s.add(AgreementSignature(agreement_id=ag.id, employee_id=e.id, sha256="0" * 64,
                                         signed_at=NOW, otp_step=1))
                for start, status in ((date(2025, 10, 1), "approved"), (date(2026, 1, 15), "approved")):
                    s.add(Grant(principal_id=e.id, requested_by="bench", purpose="p",
                                legal_basis="b", commands="ENMOD,IMFOL", classes="identity,return",
                                population="all", allow_changes=False, start_date=start,
                                term_days=120, daily_limit=50, agreement_title="NDA",
                                status=status, requested_at=NOW, approved_at=NOW))


def _entries(n: int, rng: random.Random) -> Any:
    """n research entries over the 90 days before NOW, in time order."""
    t0 = NOW - timedelta(days=90)
    step = timedelta(days=90) / max(n, 1)
    for i in range(n):
        seid = f"E{rng.randrange(EMPLOYEES):05d}"
        denied = rng.random() < 0.05
        entry: dict[str, Any] = {
            "v": 1, "time": (t0 + step * i).isoformat(timespec="microseconds"),
            "type": "access:research:decide", "actor": seid,
            "outcome": "deny" if denied else "allow",
            "origin": {"interface": "api", "address": None},
            "object": {"command": COMMANDS[i % len(COMMANDS)],
                       "taxpayer": f"tp_{rng.randrange(1_000_000):026d}"},
            "reasons": [DENIALS[i % len(DENIALS)]] if denied else [],
            "policy": "bench",
        }
        yield entry


def _ensure(n: int) -> Any:
    db = BASE / f"log-{n}.db"
    marker = BASE / f"log-{n}.ready"
    if marker.exists():
        return _app(db), 0.0
    if BASE.exists():
        shutil.rmtree(BASE)
    BASE.mkdir(parents=True)
    from idrs import migrate
    from idrs.audit import log
    from idrs.audit.service import checkpoint_now

    app = _app(db)
    migrate.upgrade(app.engine)
    _people(app)
    t0 = time.perf_counter()
    rng = random.Random(7)
    batch: list[dict[str, Any]] = []
    for e in _entries(n, rng):
        batch.append(e)
        if len(batch) == 20_000:
            log.append_many(app.engine, batch)
            batch = []
            done = rng_done = getattr(_ensure, "done", 0) + 20_000
            _ensure.done = done  # type: ignore[attr-defined]
            if rng_done % 1_000_000 == 0:
                print(f"    {done:,} entries in {time.perf_counter() - t0:.0f} s", flush=True)
    if batch:
        log.append_many(app.engine, batch)
    checkpoint_now(app)
    marker.write_text("ok")
    return app, time.perf_counter() - t0


def _grant_check(app: Any, out: list[dict[str, Any]]) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from idrs.access import policy
    from idrs.grants import cedar
    from idrs.grants.facts import cedar_context, grant_facts
    from idrs.people.models import Employee

    with app.engine.connect() as conn, Session(bind=conn) as s:
        emp = s.scalar(select(Employee).where(Employee.seid == "E00001"))
        inside = s.scalar(select(Employee).where(Employee.seid == "E00500"))
        for _ in range(300):
            grant_facts(s, app, emp, "ENMOD", NOW)
        for who, label in ((emp, "detailee with 2 grants"), (inside, "employee, no grant")):
            times = []
            for _ in range(3000):
                t = time.perf_counter_ns()
                gf = grant_facts(s, app, who, "ENMOD", NOW)
                cedar_context(gf, rate_count=3, seen_today=False)
                times.append(time.perf_counter_ns() - t)
            p50 = statistics.median(times) / 1000
            p99 = sorted(times)[int(len(times) * 0.99)] / 1000
            out.append({"what": f"grant check added per decision, p50 ({label}, SQLite)",
                        "value": round(p50, 1), "unit": "µs", "target": "< 50 µs",
                        "met": p50 < 50, "note": f"p99 {p99:.1f} µs; grant_facts + cedar_context"})
        gf = grant_facts(s, app, emp, "ENMOD", NOW)
    ctx = {"in_profile": True, "authorities": [], "reason_given": False, "has_case": True,
           "has_contact": False, "basis_named": False, "basis_valid": False, "conflicts": [],
           "target_is_employee": False, "target_same_unit": False, "high_profile": False,
           "rate_exceeded": False}
    full = {**ctx, **cedar_context(gf)}
    import json as _json

    from cedarpy import _internal

    base_pol = policy.loaded()
    req = {"principal": {"type": "Idrs::Employee", "id": "E1"},
           "action": {"type": "Idrs::Action", "id": "ENMOD"},
           "resource": {"type": "Idrs::Taxpayer", "id": "r"}}

    def _time(fn: Any) -> float:
        for _ in range(100):
            fn()
        t = time.perf_counter_ns()
        for _ in range(2000):
            fn()
        return (time.perf_counter_ns() - t) / 2000 / 1000

    only = _time(lambda: _internal.is_authorized(
        {**req, "context": _json.dumps(ctx)}, base_pol.policy_set, base_pol.entities, None, False))
    both = _time(lambda: cedar.decide(full, "ENMOD"))
    out.append({"what": "Cedar uncached: access policies + grant policies vs access only",
                "value": round(both - only, 1), "unit": "µs", "target": "-", "met": None,
                "note": f"{both:.1f} µs vs {only:.1f} µs a call (memoized in production)"})


def run(scale: str) -> list[dict[str, Any]]:
    from idrs.audit.events import Actor
    from idrs.oversight import render, report

    n = int(os.environ.get("IDRS_BENCH_GRANTS_ENTRIES", SIZES[scale]))
    t0 = time.perf_counter()
    app, gen_s = _ensure(n)
    out: list[dict[str, Any]] = []
    _grant_check(app, out)
    t = time.perf_counter()
    rep = report.build(app, unit="TEAM", actor=Actor("bench"))
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    render.render(rep, "json")
    render.render(rep, "html")
    render_s = time.perf_counter() - t
    team_entries = rep["actual"]["totals"]["allowed"] + rep["actual"]["totals"]["denied"]
    out.append({"what": f"oversight report, 100-person unit, {n:,} audit entries (SQLite)",
                "value": round(build_s, 2), "unit": "s", "target": "< 30 s at 10,000,000",
                "met": build_s < 30 if n >= 10_000_000 else None,
                "note": f"measured at {n:,} entries ({team_entries:,} of them the team's); "
                        f"render JSON+HTML {render_s:.2f} s; log generation {gen_s:.0f} s "
                        f"(0 = reused); total {time.perf_counter() - t0:.0f} s"})
    app.engine.dispose()
    return out
