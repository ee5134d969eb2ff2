"""The grant facts of one request, for the decision point (PIP side of grants).

:func:`grant_facts` reads, in ONE round trip on the caller's session connection, the
principal's grants (with whether the current version of the grant's agreement is signed),
the newest UNAX training attestation and whether a clearance verification exists. It picks
the grant that governs the request (an active grant covering the command, else any active
grant, else the newest) and computes its state from ``now`` (the injected clock).

:func:`cedar_context` turns the facts into the Cedar context attributes the grant policies
(``grants/policies/60_grants.cedar``) use; :func:`visible_classes` and :func:`anonymize`
say what masking must do when the decision relied on the grant.

Callers: ``access.facts.gather`` (once wired by the lead), explain/what-can, the oversight
report, the tests. Reads only; records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from idrs.clock import as_utc
from idrs.grants import rules
from idrs.masterfile.screens import Sensitivity

_SQL = (
    "SELECT t.tr, t.cl, g.id, g.status, g.start_date, g.term_days, g.commands, g.classes,"
    " g.population, g.allow_changes, g.daily_limit,"
    " (SELECT count(*) FROM grant_signature s JOIN grant_agreement a ON a.id = s.agreement_id"
    "   WHERE s.employee_id = :e AND a.title = g.agreement_title AND a.current = :true"
    "   AND s.sha256 = a.sha256) AS signed"
    " FROM (SELECT (SELECT max(attested_at) FROM grant_training WHERE employee_id = :e) AS tr,"
    "  (SELECT count(*) FROM grant_clearance WHERE employee_id = :e) AS cl) t"
    " LEFT JOIN grant_grant g ON g.principal_id = :e"
)
_SQL_SQLITE = _SQL.replace(":true", "1")
_SQL_PG = _SQL.replace(":true", "true").replace(":e", "%(e)s")


@dataclass(frozen=True)
class GrantFacts:
    """What the decision point needs to know about grants and prerequisites for one request."""

    has_grant: bool
    state: str  # pending_approval|approved|active|expired|revoked|ended|none
    commands: frozenset[str]
    classes: frozenset[str]
    population: str  # cases|all|anonymized (or "none")
    allow_changes: bool
    daily_limit: int | None
    agreement_signed: bool
    training_current: bool
    clearance_verified: bool
    #: the principal is not an agency employee (detailee, contractor, appointee)
    outside: bool = False
    grant_id: int | None = None
    command_in_scope: bool = False
    class_in_scope: bool = False

    @property
    def covers(self) -> bool:
        """An active grant covers this command (command and class in scope)."""
        return self.state == rules.ACTIVE and self.command_in_scope and self.class_in_scope

    @property
    def widens(self) -> bool:
        """The grant lets the principal in without a case (population all or anonymized)."""
        return self.covers and self.population in ("all", "anonymized")

    @property
    def reason(self) -> str | None:
        """The grant-state denial code, if the state itself refuses (None when active/none-inside)."""
        if self.state == rules.ACTIVE:
            return None
        if self.state == rules.NONE and not self.outside:
            return None
        return rules.STATE_REASON[self.state]


def _date(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


@lru_cache(maxsize=4096)
def _parse_time(v: str) -> datetime:
    return as_utc(datetime.fromisoformat(v))


def _datetime(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return as_utc(v)
    return _parse_time(str(v))


@dataclass(frozen=True)
class _Row:
    """One grant row, parsed once (rows repeat on every request of the principal)."""

    grant_id: int
    status: str
    start: datetime
    end: datetime
    commands: frozenset[str]
    classes: frozenset[str]
    population: str
    allow_changes: bool
    daily_limit: int | None

    def state(self, now: datetime) -> str:
        if self.status in (rules.REVOKED, rules.ENDED):
            return self.status
        if now >= self.end:
            return rules.EXPIRED
        if self.status == rules.APPROVED:
            return rules.ACTIVE if now >= self.start else rules.APPROVED
        return rules.PENDING


@lru_cache(maxsize=8192)
def _parse_row(gid: int, status: str, start: Any, term: int, commands: str, classes: str,
               population: str, allow: Any, daily: Any) -> _Row:
    day = _date(start)
    return _Row(int(gid), status, rules.start_of(day), rules.end_of(day, int(term)),
                _split(commands), _split(classes), population, bool(allow),
                None if daily is None else int(daily))


@lru_cache(maxsize=8192)
def _scope(command: str, commands: frozenset[str], classes: frozenset[str], population: str,
           allow: bool) -> tuple[bool, bool]:
    return rules.in_scope(command, commands, classes, population, allow)


def _rows(session: Session, employee_id: int) -> list[Any]:
    conn = session.connection()
    dialect = conn.dialect.name
    raw = conn.connection.driver_connection
    cur = raw.cursor()  # type: ignore[union-attr]
    try:
        if dialect == "sqlite":
            cur.execute(_SQL_SQLITE, {"e": employee_id})
        else:
            cur.execute(_SQL_PG, {"e": employee_id})
        return list(cur.fetchall())
    finally:
        cur.close()


@lru_cache(maxsize=4096)
def _split(csv: str | None) -> frozenset[str]:
    return frozenset(x for x in (csv or "").split(",") if x)


def grant_facts(session: Session, app: Any, employee: Any, command: str,
                now: datetime) -> GrantFacts:
    """The grant facts of ``employee`` using ``command`` at ``now`` (from ``app.clock``).

    Inside employees: only an active grant counts (a grant only ever widens their access);
    outside principals (kind other than ``employee``): the governing grant whatever its state,
    or state ``none``. Fail closed: anything unreadable is read as "not satisfied".
    """
    valid_days = app.settings.grant_training_valid_days
    rows = _rows(session, employee.id)
    outside = (getattr(employee, "kind", "employee") or "employee") != "employee"
    first = rows[0] if rows else (None, 0, None)
    last_training = _datetime(first[0])
    own = _datetime(getattr(employee, "training_attested_at", None))
    if own is not None and (last_training is None or own > last_training):
        last_training = own
    trained = rules.training_current(last_training, now, valid_days)
    cleared = int(first[1] or 0) > 0
    candidates = []
    for r in rows:
        if r[2] is None:
            continue
        g = _parse_row(*r[2:11])
        cmd_ok, cls_ok = _scope(command, g.commands, g.classes, g.population, g.allow_changes)
        candidates.append((g.state(now), cmd_ok, cls_ok, g, int(r[11] or 0) > 0))
    chosen = _choose(candidates)
    if chosen is None or (not outside and chosen[0] != rules.ACTIVE):
        return GrantFacts(False, rules.NONE, frozenset(), frozenset(), "none", False, None,
                          False, trained, cleared, outside)
    state, cmd_ok, cls_ok, g, signed = chosen
    return GrantFacts(
        has_grant=True, state=state, commands=g.commands, classes=g.classes,
        population=g.population, allow_changes=g.allow_changes, daily_limit=g.daily_limit,
        agreement_signed=signed, training_current=trained, clearance_verified=cleared,
        outside=outside, grant_id=g.grant_id, command_in_scope=cmd_ok, class_in_scope=cls_ok,
    )


_RANK = {rules.ACTIVE: 0, rules.APPROVED: 1, rules.PENDING: 2, rules.REVOKED: 3,
         rules.EXPIRED: 4, rules.ENDED: 5}


def _choose(cands: list[Any]) -> Any:
    """An active covering grant, else an active one, else by state (approved, pending,
    revoked, expired, ended), the newest first: the most telling reason for a refusal."""
    if not cands:
        return None
    if len(cands) == 1:
        return cands[0]
    covering = [c for c in cands if c[0] == rules.ACTIVE and c[1] and c[2]]
    if covering:
        return max(covering, key=lambda c: c[3].grant_id)
    active = [c for c in cands if c[0] == rules.ACTIVE]
    if active:
        return max(active, key=lambda c: c[3].grant_id)
    return min(cands, key=lambda c: (_RANK[c[0]], -c[3].grant_id))


def cedar_context(gf: GrantFacts, *, rate_count: int = 0, seen_today: bool = False) -> dict[str, Any]:
    """The Cedar context attributes of the grant policies (merge into access.policy.context_of).

    ``rate_count``/``seen_today``: today's distinct taxpayers of this principal and whether
    this taxpayer is already among them (the access facts have both).
    """
    return {
        "outside": gf.outside,
        "grant_state": gf.state,
        "grant_population": gf.population,
        "grant_covers": gf.covers,
        "grant_widens": gf.widens,
        "grant_daily_exceeded": (gf.covers and gf.daily_limit is not None
                                 and not seen_today and rate_count >= gf.daily_limit),
        "agreement_signed": gf.agreement_signed,
        "clearance_verified": gf.clearance_verified,
        "training_current": gf.training_current,
    }


def visible_classes(gf: GrantFacts, role_classes: frozenset[Sensitivity]) -> frozenset[Sensitivity]:
    """The classes shown in clear when the decision relied on the grant.

    Outside principals see exactly the grant's classes; an inside employee using a grant
    sees their role's classes plus the grant's.
    """
    if not gf.covers:
        return role_classes
    granted = frozenset(Sensitivity(c) for c in gf.classes)
    return granted if gf.outside else role_classes | granted


def anonymize(gf: GrantFacts) -> bool:
    """Whether the answer must be the anonymized view (population ``anonymized``)."""
    return gf.covers and gf.population == "anonymized"
