"""The oversight report: potential and actual access of a set of principals.

``idrs oversight report (--grant ID | --seids S1,S2 | --unit U | --system NAME) [--from --to]
--format html|pdf|json|csv --out FILE``.

- *potential*: per principal, what the decision point would allow now: for each command of
  their profile or grant, the Cedar policies (access + grants, the same files the decision
  point loads) are asked about an ordinary taxpayer, a high-profile one and another
  employee's account, with and without a case; ``access.explain.what_can`` (the real decision
  point over their open cases and contacts) gives the need-to-know counts. Population and
  taxpayer counts, whether they can change data, sensitive categories reachable, the visible
  classes, the grants with their term and approvals.
- *actual*: from the audit log, up to a signed checkpoint: accesses by command and class,
  distinct taxpayers (counted by pseudonym, never listed), sensitive accounts touched,
  denials by reason code, per-day counts, alerts (detection, and grants' exports-outstanding)
  and exports with their destruction status. The figures from the log are one named query,
  ``actual_access`` of :mod:`idrs.analytics.engines`, run on DuckDB (default) or on Apache
  Spark (``--engine spark``) over the scope's entries, staged once by :func:`scan`.
- *answers*: every answer the principals received in the period, by entry index and
  commitment (never its content), the checkpoint covering them with the witnesses'
  cosignatures, and the commands that open one for a court and check the opening.
- *an agency system* (``--system NAME``): its disclosures the same way: potential (the
  agreements in force, each basis's answer scope, the taxpayers reachable, the caps) and
  actual (batches, records disclosed and refused by reason, distinct taxpayers disclosed,
  per day), from ``disclosure.service.oversight``.
- *checkpoint*: the tree size and root the actual part was computed against (a fresh
  checkpoint is signed first when the signing key is present), so a reader can verify it
  against ``idrs audit export``.

The scope is resolved, the request recorded and the checkpoint signed on the primary; the
rest is read through ``app.read_engine`` (a streaming replica when ``IDRS_REPLICA_URL`` is
set), after waiting until the replica has replayed the primary's WAL up to that point.

No taxpayer identity appears anywhere: counts only (not even pseudonyms). Generating a
report is itself recorded (``oversight:report:generate``).
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NotRequired, TypedDict

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idrs.access import explain, masking
from idrs.analytics import engines
from idrs.audit import log as audit_log
from idrs.audit.checkpoint import Checkpoint
from idrs.audit.events import Actor
from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import IdrsError, NotFound, ValidationFailed
from idrs.grants import cedar, rules
from idrs.grants import facts as gfacts
from idrs.grants.events import GrantEvent
from idrs.grants.models import Export, Grant
from idrs.grants.service import grant_view
from idrs.masterfile.models import Dependent, Marker, Taxpayer
from idrs.masterfile.screens import Sensitivity
from idrs.people.models import Employee, Unit
from idrs.vocabulary import ADJUSTMENT_CODES

_log = logging.getLogger(__name__)

ACCESS_TYPES = {"access:research:decide": "research", "access:adjustment:decide": "adjustment"}
ALLOWED = frozenset({"allow", "allowed", "success"})
DENIED = frozenset({"deny", "denied"})
DEFAULT_DAYS = 90
CHUNK = 20_000


@dataclass
class Scope:
    """Whose access the report covers, and the period of the actual part (UTC days)."""

    seids: list[str]
    grant_id: int | None = None
    unit: str | None = None
    start: date | None = None
    end: date | None = None
    description: str = ""
    grants: list[int] = field(default_factory=list)


# -- scope ---------------------------------------------------------------------------------


def resolve_scope(session: Session, app: App, *, grant_id: int | None, seids: list[str] | None,
                  unit: str | None, start: date | None, end: date | None) -> Scope:
    """Exactly one of grant / seids / unit; default period: from the grant's start to today,
    else the last 90 days."""
    given = [x for x in (grant_id, seids, unit) if x]
    if len(given) != 1:
        raise ValidationFailed(["scope: give exactly one of --grant, --seids, --unit"])
    today = as_utc(app.clock.now()).date()
    if grant_id:
        g = session.get(Grant, int(grant_id))
        if g is None:
            raise NotFound(f"no grant {grant_id}")
        emp = session.get(Employee, g.principal_id)
        assert emp is not None
        sc = Scope([emp.seid], grant_id=g.id, description=f"grant {g.id} ({emp.seid})",
                   grants=[g.id])
        # through today: attempts after the term (GRANT_EXPIRED) interest oversight too
        sc.start = start or g.start_date
        sc.end = end or max(today, g.start_date)
    elif seids:
        wanted = sorted({s.strip().upper() for s in seids if s.strip()})
        found = set(session.scalars(select(Employee.seid).where(Employee.seid.in_(wanted))))
        missing = [s for s in wanted if s not in found]
        if missing:
            raise NotFound(f"no employee {', '.join(missing)}")
        sc = Scope(wanted, description="principals " + ", ".join(wanted))
    else:
        code = (unit or "").strip().upper()
        u = session.scalar(select(Unit).where(Unit.code == code))
        if u is None:
            raise NotFound(f"no unit {code}")
        sc = Scope(sorted(session.scalars(select(Employee.seid).where(Employee.unit_id == u.id))),
                   unit=code, description=f"unit {code}")
    if not sc.grant_id:
        ids = session.scalars(select(Employee.id).where(Employee.seid.in_(sc.seids)))
        sc.grants = sorted(session.scalars(select(Grant.id).where(
            Grant.principal_id.in_(list(ids)))))
        sc.end = end or today
        sc.start = start or (sc.end - timedelta(days=DEFAULT_DAYS - 1))
    if sc.start and sc.end and sc.end < sc.start:
        raise ValidationFailed(["to: before from"])
    return sc


# -- potential access --------------------------------------------------------------------------


_BASE_CONTEXT = {
    "authorities": [], "reason_given": True, "has_case": False, "has_contact": False,
    "basis_named": False, "basis_valid": False, "conflicts": [], "target_is_employee": False,
    "target_same_unit": False, "high_profile": False, "rate_exceeded": False,
}
CATEGORIES = {
    "ordinary": {},
    "high_profile": {"high_profile": True},
    "employee_account": {"target_is_employee": True},
}


def _ask(emp: Employee, cmd: str, gf: gfacts.GrantFacts, category: str, case: bool) -> bool:
    ctx = {**_BASE_CONTEXT, **CATEGORIES[category],
           "in_profile": cmd in emp.profile_set, "authorities": sorted(emp.authority_set),
           "has_case": case, **gfacts.cedar_context(gf)}
    # The prerequisites are about the person's standing today; potential access is what
    # their profile and grant reach once those are in order, so they are reported apart.
    ctx.update(training_current=True, agreement_signed=True, clearance_verified=True)
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in ctx.items()))
    return _decide(cmd, key)


@lru_cache(maxsize=4096)
def _decide(cmd: str, key: tuple[tuple[str, Any], ...]) -> bool:
    """Cedar's answer (the policies read only the action and the context: memoized)."""
    ctx = {k: list(v) if isinstance(v, tuple) else v for k, v in key}
    allowed, _ = cedar.decide(ctx, cmd)
    return allowed


def _population_counts(session: Session, app: App) -> dict[str, int]:
    total = int(session.scalar(select(func.count()).select_from(Taxpayer)) or 0)
    hp = int(session.scalar(select(func.count(func.distinct(Marker.taxpayer_id)))
                            .where(Marker.marker == "high_profile")) or 0)
    emp_accounts = int(session.scalar(select(func.count()).select_from(Taxpayer).where(
        Taxpayer.tin_index.in_(select(Employee.tin_index).where(
            Employee.tin_index.is_not(None))))) or 0)
    adoption = int(session.scalar(select(func.count()).select_from(Dependent)
                                  .where(Dependent.adoption_pending.is_(True))) or 0)
    return {"taxpayers": total, "high_profile": hp, "employee_accounts": emp_accounts,
            "adoption_records": adoption}


class _CommandReach(TypedDict):
    """One command code in a principal's potential access (the keys after ``taxpayers`` only
    when it is reachable)."""

    command: str
    reachable: bool
    taxpayers: int
    kind: NotRequired[str]
    population: NotRequired[str]
    basis: NotRequired[str]
    anonymized: NotRequired[bool]
    visible_classes: NotRequired[list[str]]


def potential_of(session: Session, app: App, emp: Employee, pop: dict[str, int],
                 grant_ids: list[int], now: datetime) -> dict[str, Any]:
    """What ``emp`` could reach now, from the decision point (see the module docstring)."""
    wc = explain.what_can(session, app, seid=emp.seid)
    by_cmd = {row["command"]: row for row in wc["commands"]}
    grants = [session.get(Grant, g) for g in grant_ids]
    grant_cmds = {c for g in grants if g is not None for c in g.commands.split(",") if c}
    role_classes = masking.classes_for(emp.role_set, emp.authority_set)
    commands: list[_CommandReach] = []
    classes: set[str] = set()
    sensitive: Counter[str] = Counter()
    can_change = False
    for cmd in sorted(emp.profile_set | grant_cmds):
        gf = gfacts.grant_facts(session, app, emp, cmd, now)
        free = _ask(emp, cmd, gf, "ordinary", False)
        with_case = _ask(emp, cmd, gf, "ordinary", True)
        if not (free or with_case):
            commands.append({"command": cmd, "reachable": False, "taxpayers": 0})
            continue
        visible = gfacts.visible_classes(gf, role_classes)
        anonymized = gfacts.anonymize(gf)
        row = by_cmd.get(cmd, {})
        count = pop["taxpayers"] if free else row.get("taxpayers") or 0
        commands.append({
            "command": cmd, "reachable": True, "kind": "adjustment" if cmd in ADJUSTMENT_CODES
            else "research", "population": ("anonymized" if anonymized else "all") if free
            else "cases", "taxpayers": count, "basis": "grant" if gf.covers else "need_to_know",
            "anonymized": anonymized, "visible_classes": sorted(c.value for c in visible),
        })
        classes |= {c.value for c in visible}
        can_change = can_change or cmd in ADJUSTMENT_CODES
        for cat in ("high_profile", "employee_account"):
            if _ask(emp, cmd, gf, cat, False):
                sensitive[cat] = max(sensitive[cat], pop["high_profile" if cat == "high_profile"
                                                         else "employee_accounts"])
            elif _ask(emp, cmd, gf, cat, True):
                sensitive[cat + "_with_case"] = 1
    if Sensitivity.ADOPTION.value in classes:
        sensitive["adoption_records"] = pop["adoption_records"]
    unit = session.get(Unit, emp.unit_id)
    views = [grant_view(session, app, g, now) for g in grants if g is not None]
    return {
        "seid": emp.seid, "kind": emp.kind, "home_org": emp.home_org,
        "unit": unit.code if unit else None, "roles": sorted(emp.role_set),
        "profile": sorted(emp.profile_set), "authorities": sorted(emp.authority_set),
        "commands": commands, "classes": sorted(classes), "can_change": can_change,
        "max_taxpayers": max((c["taxpayers"] for c in commands), default=0),
        "sensitive_reachable": {
            "high_profile": sensitive.get("high_profile", 0),
            "high_profile_with_a_case": bool(sensitive.get("high_profile_with_case")),
            "employee_accounts": sensitive.get("employee_account", 0),
            "employee_accounts_with_a_case": bool(sensitive.get("employee_account_with_case")),
            "adoption_records": sensitive.get("adoption_records", 0)},
        "open_bases": wc.get("open_bases", 0),
        "grants": [{k: v[k] for k in ("grant_id", "status", "purpose", "legal_basis",
                                      "population", "commands", "classes", "allow_changes",
                                      "start", "end", "term_days", "renewal_of", "approvals",
                                      "daily_limit", "agreement", "kind", "k", "epsilon",
                                      "delta", "epsilon_spent", "delta_spent", "budget_left",
                                      "access")} for v in views],
        # each grant's reach in plain words ("could count, with ε = 1 in all, never see a
        # record"), so that a reader need not decode the tables
        "access": [v["access"] for v in views],
    }


# -- actual access -------------------------------------------------------------------------


def checkpoint_for_report(app: App) -> dict[str, Any]:
    """Sign a fresh checkpoint if the key is here, else take the latest stored one."""
    note: str | None = None
    try:
        from idrs.audit.service import checkpoint_now

        note = checkpoint_now(app)
    except IdrsError:
        note = audit_log.latest_checkpoint_note(app.engine)
    if note is None:
        raise IdrsError("no signed audit checkpoint exists (run `idrs init`, then "
                        "`idrs audit verify`); the report must name one")
    ck = Checkpoint.parse(note.split("\n\n")[0] + "\n")
    return {"origin": ck.origin, "tree_size": ck.size, "root_hash": base64.b64encode(ck.root).decode(),
            "root_hex": ck.root.hex(), "note": note}


def sensitive_pseudonyms(session: Session, app: App) -> dict[str, set[str]]:
    """Pseudonyms of high-profile taxpayers, employees' own accounts and adoption dependents
    (the master file's named read: :func:`idrs.masterfile.reads.sensitive_pseudonyms`)."""
    from idrs.masterfile.reads import sensitive_pseudonyms as read

    return read(session, app.keyring)


def _first_index_at(db: Any, when: datetime, size: int) -> int:
    """The first entry at or after ``when`` (binary search: entries are in time order)."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (mid,))
        t = as_utc(datetime.fromisoformat(json.loads(bytes(row[0]))["time"]))
        if t < when:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _team_filter(db: Any, seids: list[str]) -> tuple[str, list[Any]]:
    """A SQL condition keeping only entries whose actor is one of ``seids``.

    The leaf input is canonical JSON with sorted keys, so every entry starts with
    ``{"actor":"SEID"`` ("actor" sorts first): comparing that byte prefix runs inside the
    database and spares fetching and parsing everyone else's entries. Entries that do not
    start that way are fetched too (the Python side checks every fetched entry again).
    """
    if not seids:
        return " AND 1 = 0", []
    by_len: dict[int, list[bytes]] = defaultdict(list)
    for s in seids:
        p = b'{"actor":"' + s.encode() + b'"'
        by_len[len(p)].append(p)
    parts: list[str] = []
    params: list[Any] = []
    for n, prefixes in sorted(by_len.items()):
        if db.pg:
            parts.append(f"substring(leaf_input from 1 for {n}) = ANY(?)")
            params.append(prefixes)
        else:
            parts.append(f"substr(leaf_input, 1, {n}) IN ({','.join('?' * len(prefixes))})")
            params.extend(prefixes)
    other = ("substring(leaf_input from 1 for 10) <> ?" if db.pg
             else "substr(leaf_input, 1, 10) <> ?")
    params.append(b'{"actor":"')
    return " AND (" + " OR ".join(parts + [other]) + ")", params


#: the staged entries of the scope (see :func:`scan`): the columns the named query reads
_ENTRIES = """CREATE TABLE oa_entries (actor VARCHAR, day VARCHAR, type VARCHAR,
                outcome VARCHAR, command VARCHAR, reasons VARCHAR[], taxpayer VARCHAR,
                matches VARCHAR[])"""
_INSERT = """INSERT INTO oa_entries SELECT a::VARCHAR, d::VARCHAR, ty::VARCHAR, o::VARCHAR,
                c::VARCHAR, CAST(CAST(r AS JSON) AS VARCHAR[]), tp::VARCHAR,
                CAST(CAST(m AS JSON) AS VARCHAR[]) FROM oa_in"""
_STAGED = ("a", "d", "ty", "o", "c", "r", "tp", "m")


def _stage(duck: Any, name: str, columns: dict[str, list[Any]]) -> None:
    """Register ``columns`` (name → values) as the DuckDB view ``name``."""
    arrays = {}
    for col, values in columns.items():
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        arrays[col] = arr
    duck.register(name, arrays)


def _stage_entries(duck: Any, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        _stage(duck, "oa_in", dict(zip(_STAGED, (list(c) for c in zip(*rows, strict=True)),
                                       strict=True)))
        duck.execute(_INSERT)
        duck.unregister("oa_in")
        rows.clear()


def _entry_row(e: dict[str, Any]) -> tuple[Any, ...]:
    """One access decision as the row of ``oa_entries`` (lists as JSON text)."""
    obj = e.get("object") or {}
    reasons, matches = e.get("reasons"), obj.get("matches")
    return (e.get("actor"), e["time"][:10], e.get("type"), e.get("outcome"), obj.get("command"),
            json.dumps(reasons) if isinstance(reasons, list) else None, obj.get("taxpayer"),
            json.dumps(matches) if isinstance(matches, list) else None)


def scan(app: App, team: set[str], start: date, end: date, size: int,
         duck: Any) -> dict[str, list[dict[str, Any]]]:
    """One pass over entries < ``size`` in [start, end]: each principal's committed answers
    (returned), and the team's access decisions, staged as table ``oa_entries`` of the DuckDB
    connection ``duck`` for the named query ``actual_access``."""
    lo_t = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi_t = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    keys = {s.encode(): s for s in team}
    answers: dict[str, list[dict[str, Any]]] = {s: [] for s in team}
    start_s, end_s = lo_t.isoformat(), hi_t.isoformat()
    duck.execute(_ENTRIES)
    staged: list[tuple[Any, ...]] = []
    with raw(app.read_engine) as db:
        db.begin_read()
        first = _first_index_at(db, lo_t, size)
        last = _first_index_at(db, hi_t, size)
        sql, params = _team_filter(db, sorted(team))
        # only placeholders and fixed lengths are interpolated; the SEIDs are parameters
        query = f"SELECT leaf_input FROM audit_entry WHERE idx >= ? AND idx < ?{sql} ORDER BY idx"  # noqa: S608
        cur = db.execute(query, (first, last, *params))
        while rows := cur.fetchmany(CHUNK):
            for (leaf,) in rows:
                b = bytes(leaf)
                if b.startswith(b'{"actor":"') and b[10:b.find(b'"', 10)] not in keys:
                    continue
                e = json.loads(b.decode())
                who = e.get("actor")
                if who not in answers:
                    continue
                t = e["time"]
                if not (start_s <= t < end_s):
                    continue
                _note_answer(answers[who], e)
                if e.get("type") in ACCESS_TYPES:
                    staged.append(_entry_row(e))
            _stage_entries(duck, staged)
        cur.close()
        db.rollback()
    return answers


def _stage_facts(duck: Any, classes_of: dict[str, dict[str, frozenset[str]]],
                 sensitive: dict[str, set[str]]) -> None:
    """Tables ``oa_shown`` (the classes each principal's allowed answers carried, per command)
    and ``oa_sensitive`` (the sensitive accounts by category) of ``duck``."""
    shown = [(seid, str(cmd), c) for seid, by_cmd in sorted(classes_of.items())
             for cmd, carried in sorted(by_cmd.items()) for c in sorted(carried)]
    _stage(duck, "oa_shown_in", {"s": [r[0] for r in shown], "c": [r[1] for r in shown],
                                 "k": [r[2] for r in shown]})
    duck.execute("CREATE TABLE oa_shown AS SELECT s::VARCHAR AS seid, c::VARCHAR AS command, "
                 "k::VARCHAR AS class FROM oa_shown_in")
    duck.unregister("oa_shown_in")
    members = [(cat, p) for cat, ps in sorted(sensitive.items()) for p in sorted(ps)]
    _stage(duck, "oa_sensitive_in", {"c": [m[0] for m in members], "p": [m[1] for m in members]})
    duck.execute("CREATE TABLE oa_sensitive AS SELECT c::VARCHAR AS category, "
                 "p::VARCHAR AS pseudonym FROM oa_sensitive_in")
    duck.unregister("oa_sensitive_in")


@dataclass
class _Figures:
    """One principal's actual access, as the named query ``actual_access`` gives it."""

    allowed: int = 0
    denied: int = 0
    accesses: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    denials: dict[str, int] = field(default_factory=dict)
    taxpayers: int = 0
    sensitive: dict[str, int] = field(default_factory=dict)


@dataclass
class _Actual:
    """The figures of ``actual_access``: per principal, over everyone, per day."""

    principals: dict[str, _Figures]
    taxpayers: int = 0
    sensitive: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


def actual_access(app: App, team: set[str], classes_of: dict[str, dict[str, frozenset[str]]],
                  start: date, end: date, size: int, sensitive: dict[str, set[str]],
                  engine: str | None = None) -> tuple[_Actual, dict[str, list[dict[str, Any]]]]:
    """The team's actual access in [start, end] over entries < ``size``, from the named query
    ``actual_access`` (:data:`idrs.analytics.engines.TABLE_QUERIES`) on ``engine`` (DuckDB
    by default, or Spark), and each principal's committed answers (:func:`scan`)."""
    out = _Actual({s: _Figures() for s in team})
    if not team:  # an agency system's report: no principal, nothing to read
        return out, {}
    con = engines.connect(engine)
    try:
        with engines.staged(con, "oa_entries", "oa_shown", "oa_sensitive") as duck:
            answers = scan(app, team, start, end, size, duck)
            _stage_facts(duck, classes_of, sensitive)
        rows = engines.run_named(con, "actual_access")
    finally:
        con.close()
    for facet, seid, key, n in rows:
        n = int(n)
        f = out.principals.get(seid) if seid is not None else None
        if facet == "all_taxpayers":
            out.taxpayers = n
        elif facet == "all_sensitive":
            out.sensitive[key] = n
        elif facet in ("day_allowed", "day_denied"):
            out.per_day[key][0 if facet == "day_allowed" else 1] = n
        elif f is None:
            continue
        elif facet == "allowed":
            f.allowed = n
        elif facet == "denied":
            f.denied = n
        elif facet == "taxpayers":
            f.taxpayers = n
        else:
            {"command": f.accesses, "class": f.classes, "reason": f.denials,
             "sensitive": f.sensitive}[facet][key] = n
    return out, answers


def _classes_shown(session: Session, app: App, emp: Employee,
                   now: datetime) -> dict[str, frozenset[str]]:
    """Per command: the classes an allowed answer carried (command's classes ∩ visible)."""
    role = masking.classes_for(emp.role_set, emp.authority_set)
    out: dict[str, frozenset[str]] = {}
    for cmd, carried in rules.COMMAND_CLASSES.items():
        gf = gfacts.grant_facts(session, app, emp, cmd, now)
        visible = gfacts.visible_classes(gf, role) if gf.has_grant else role
        if emp.kind != "employee" and gf.has_grant:
            visible = frozenset(Sensitivity(c) for c in gf.classes)
        out[cmd] = frozenset(c.value for c in carried & visible)
    return out


def _alerts(session: Session, team: list[str], start: date, end: date) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        from idrs.detection.models import Alert
    except ImportError:  # pragma: no cover - the detection package is optional
        return out
    rows = session.scalars(select(Alert).where(Alert.seid.in_(team), Alert.day >= start,
                                               Alert.day <= end).order_by(Alert.day))
    for a in rows:
        out.append({"source": "detection", "alert_id": a.alert_id, "seid": a.seid,
                    "day": a.day.isoformat(), "category": a.category,
                    "score": round(float(a.score), 3), "status": a.state})
    return out


def _grant_alerts(session: Session, grant_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for gid in grant_ids:
        g = session.get(Grant, gid)
        if g is not None and g.outstanding_alert_at is not None:
            outstanding = session.scalar(select(func.count()).select_from(Export).where(
                Export.grant_id == gid, Export.certified_at.is_(None)))
            emp = session.get(Employee, g.principal_id)
            out.append({"source": "grants", "alert_id": f"grant-{gid}-exports",
                        "seid": emp.seid if emp else None,
                        "day": as_utc(g.outstanding_alert_at).date().isoformat(),
                        "category": "exports_outstanding",
                        "status": "open" if outstanding else "resolved"})
    return out


def _exports(session: Session, team: list[str]) -> list[dict[str, Any]]:
    ids = list(session.scalars(select(Employee.id).where(Employee.seid.in_(team))))
    out = []
    for e in session.scalars(select(Export).where(Export.employee_id.in_(ids))
                             .order_by(Export.created_at)):
        holder = session.get(Employee, e.employee_id)
        out.append({"export_id": e.id, "holder": holder.seid if holder else None,
                    "grant_id": e.grant_id, "created_at": as_utc(e.created_at).isoformat(),
                    "command": e.command, "format": e.format, "taxpayers": e.taxpayers,
                    "counts": json.loads(e.counts),
                    "destroyed": e.certified_at is not None, "method": e.method,
                    "witness": e.witness,
                    "destroyed_at": as_utc(e.destroyed_at).isoformat() if e.destroyed_at else None})
    return out


# -- answers received (issue 14.4) ------------------------------------------------------------
#
# Every answer a principal received is committed in its audit entry (``object.answer``,
# audit/commitment.py). The report lists each one by entry index and commitment, never by
# content, with the checkpoint covering them as the witnesses cosigned it and the commands
# that open one for a court (security staff) and check the opening (anyone).

#: what opens the answer of entry INDEX (security staff; the opening is itself recorded)
OPEN_COMMAND = "idrs audit open {index} --json > opening-{index}.json"
#: what checks an opening with SHA-256, the checkpoint and the inclusion proof only
CHECK_COMMAND = "idrs audit check-opening opening-{index}.json"


def _note_answer(answers: list[dict[str, Any]], e: dict[str, Any]) -> None:
    """Keep an allowed entry of the principal that commits to an answer (any kind of entry:
    research, NAMES, exports, adjustments' results, anonymized records)."""
    obj = e.get("object") or {}
    committed = obj.get("answer")
    if not isinstance(committed, str) or e.get("outcome") not in ALLOWED:
        return
    index = e.get("index")
    if not isinstance(index, int):
        return
    answers.append({
        "index": index, "time": e.get("time"), "type": e.get("type"),
        "command": obj.get("command") or "", "commitment": committed,
        "open": OPEN_COMMAND.format(index=index),
    })


def witnessed_checkpoint(app: App, note: str) -> dict[str, Any]:
    """The report's checkpoint with the cosignatures of the configured witnesses.

    The checkpoint is submitted to every witness now (a witness that is down, or refuses,
    simply does not cosign: the report says so). ``witnesses``: each configured witness and
    whether its cosignature on this checkpoint verifies against its key.
    """
    from idrs.audit import witnesses
    from idrs.audit.cosignature import CosignerKey, cosigned_by
    from idrs.audit.service import cosigned_now

    configured = witnesses.configured(app.engine)
    cosigned = note
    if configured:
        try:
            cosigned = cosigned_now(app, note)
        except (IdrsError, OSError) as exc:  # the report still names the operator's checkpoint
            _log.warning("submitting the report's checkpoint to the witnesses failed: %s", exc)
    keys: list[tuple[dict[str, str], CosignerKey | None]] = []
    for w in configured:
        try:
            keys.append((w, CosignerKey.parse(w["vkey"])))
        except IdrsError:
            keys.append((w, None))
    valid = cosigned_by(cosigned, [k for _, k in keys if k is not None])
    rows = [{"name": w["name"], "vkey": w["vkey"],
             "cosigned": k is not None and k.vkey() in valid} for w, k in keys]
    return {"note": cosigned, "witnesses": rows,
            "cosignatures": sum(1 for r in rows if r["cosigned"])}


def answers_received(app: App, received: dict[str, list[dict[str, Any]]],
                     ck: dict[str, Any]) -> dict[str, Any]:
    """The ``answers`` section: every committed answer of the scope's principals in the
    period (index order), the witnessed checkpoint covering them, how to open one."""
    items = sorted(({"seid": seid, **a} for seid, got in received.items() for a in got),
                   key=lambda a: a["index"])
    witnessed = witnessed_checkpoint(app, ck["note"])
    return {
        "total": len(items),
        "items": items,
        "checkpoint": {"origin": ck["origin"], "tree_size": ck["tree_size"],
                       "root_hex": ck["root_hex"], **witnessed},
        "open_command": OPEN_COMMAND.format(index="INDEX"),
        "check_command": CHECK_COMMAND.format(index="INDEX"),
        "how": ("Each answer is committed in its audit entry as SHA-256(salt || RFC 8785 JSON "
                "of the answer); the content is not in this report. A security administrator "
                "opens one for a court with the open command (itself recorded): it rebuilds "
                "the answer from the master file's history, prints it with its salt, the "
                "signed checkpoint and the inclusion proof, and says whether it matches the "
                "commitment. Anyone checks the opening file with the check command, or by hand "
                "with SHA-256, the checkpoint and the proof (docs/interface.md)."),
    }


# -- the report ----------------------------------------------------------------------------


def build(app: App, *, grant_id: int | None = None, seids: list[str] | None = None,
          unit: str | None = None, system: str | None = None, start: date | None = None,
          end: date | None = None, actor: Actor, engine: str | None = None) -> dict[str, Any]:
    """The report as a dict with top-level keys ``potential``, ``actual``, ``checkpoint``.

    ``engine``: where the actual access is computed from the log, ``duckdb`` (default) or
    ``spark`` (the same named query, transpiled: :mod:`idrs.analytics.engines`).

    Callers: cli (``idrs oversight report``), the tests, the benchmark. Records the request
    (``oversight:report:generate``) before computing, then signs/reads the checkpoint.
    """
    from idrs.grants.service import check_outstanding

    engine = engines.check_engine(engine)
    now = as_utc(app.clock.now())
    if system:
        sc = _system_scope(app, system, grant_id, seids, unit, start, end)
    else:
        with session_scope(app.engine) as s:
            sc = resolve_scope(s, app, grant_id=grant_id, seids=seids, unit=unit, start=start,
                               end=end)
    idx = audit_log.record(app, GrantEvent.OVERSIGHT_REPORT, actor,
                  {"scope": sc.description, "grant_id": sc.grant_id, "unit": sc.unit},
                  {"principals": len(sc.seids), "from": str(sc.start), "to": str(sc.end)})
    check_outstanding(app)
    ck = checkpoint_for_report(app)
    # The reads below may go to a streaming replica (IDRS_REPLICA_URL): first let it replay
    # the primary's WAL up to now, so that it holds every entry up to the checkpoint.
    app.await_replica()
    with session_scope(app.read_engine) as s:
        emps = list(s.scalars(select(Employee).where(Employee.seid.in_(sc.seids))
                              .order_by(Employee.seid)))
        pop = _population_counts(s, app)
        grant_ids_of: dict[str, list[int]] = defaultdict(list)
        for gid in sc.grants:
            g = s.get(Grant, gid)
            owner = s.get(Employee, g.principal_id) if g else None
            if owner is not None:
                grant_ids_of[owner.seid].append(gid)
        potential = [potential_of(s, app, e, pop, grant_ids_of[e.seid], now) for e in emps]
        classes_of = {e.seid: _classes_shown(s, app, e, now) for e in emps}
        sensitive = sensitive_pseudonyms(s, app)
        alerts = _alerts(s, sc.seids, sc.start, sc.end) + _grant_alerts(s, sc.grants)  # type: ignore[arg-type]
        exports = _exports(s, sc.seids)
    assert sc.start is not None and sc.end is not None
    figures, received = actual_access(app, set(sc.seids), classes_of, sc.start, sc.end,
                                      ck["tree_size"], sensitive, engine)
    actual = _actual(figures, alerts, exports, sc)
    answers = answers_received(app, received, ck)
    systems = []
    if system:
        from idrs.disclosure import service as disclosure

        systems.append(disclosure.oversight(app, system, sc.start, sc.end, pop["taxpayers"]))
    return {
        "title": "Oversight report: potential and actual access",
        "generated_at": now.isoformat(), "audit_index": idx,
        "scope": {"description": sc.description, "grant_id": sc.grant_id, "unit": sc.unit,
                  "seids": sc.seids, "from": sc.start.isoformat(), "to": sc.end.isoformat()},
        "population": pop,
        "potential": potential, "actual": actual, "answers": answers,
        # an agency system: potential and actual disclosures (idrs.disclosure)
        "systems": systems,
        "checkpoint": {k: ck[k] for k in ("origin", "tree_size", "root_hash", "root_hex", "note")},
    }


def _system_scope(app: App, system: str, grant_id: int | None, seids: list[str] | None,
                  unit: str | None, start: date | None, end: date | None) -> Scope:
    """The scope of an agency system (no employee): its disclosures over the period."""
    if grant_id or seids or unit:
        raise ValidationFailed(["scope: give exactly one of --grant, --seids, --unit, --system"])
    from idrs.people.systems import list_systems

    name = system.strip().lower()
    if name not in {r["system"] for r in list_systems(app)}:
        raise NotFound(f"no system {name}")
    today = as_utc(app.clock.now()).date()
    sc = Scope([], description=f"agency system {name}")
    sc.end = end or today
    sc.start = start or (sc.end - timedelta(days=DEFAULT_DAYS - 1))
    if sc.end < sc.start:
        raise ValidationFailed(["to: before from"])
    return sc


def _actual(figures: _Actual, alerts: list[dict[str, Any]], exports: list[dict[str, Any]],
            sc: Scope) -> dict[str, Any]:
    principals = []
    totals: dict[str, Counter[str]] = {"accesses": Counter(), "classes": Counter(),
                                       "denials": Counter()}
    for seid in sorted(figures.principals):
        f = figures.principals[seid]
        totals["accesses"].update(f.accesses)
        totals["classes"].update(f.classes)
        totals["denials"].update(f.denials)
        principals.append({
            "seid": seid, "allowed": f.allowed, "denied": f.denied,
            "accesses_by_command": dict(sorted(f.accesses.items())),
            "accesses_by_class": dict(sorted(f.classes.items())),
            "distinct_taxpayers": f.taxpayers,
            "sensitive_accounts_touched": dict(sorted(f.sensitive.items())),
            "denials_by_reason": dict(sorted(f.denials.items())),
        })
    per_day = figures.per_day
    days = []
    d = sc.start
    while d is not None and sc.end is not None and d <= sc.end:
        a, n = per_day.get(d.isoformat(), [0, 0])
        days.append({"day": d.isoformat(), "accesses": a, "denials": n})
        d += timedelta(days=1)
    return {
        "period": {"from": sc.start.isoformat() if sc.start else None,
                   "to": sc.end.isoformat() if sc.end else None},
        "principals": principals,
        "totals": {"allowed": sum(p["allowed"] for p in principals),
                   "denied": sum(p["denied"] for p in principals),
                   "accesses_by_command": dict(sorted(totals["accesses"].items())),
                   "accesses_by_class": dict(sorted(totals["classes"].items())),
                   "distinct_taxpayers": figures.taxpayers,
                   "sensitive_accounts_touched": dict(sorted(figures.sensitive.items())),
                   "denials_by_reason": dict(sorted(totals["denials"].items()))},
        "per_day": days,
        "alerts": alerts,
        "exports": exports,
        "exports_outstanding": sum(1 for e in exports if not e["destroyed"]),
    }
