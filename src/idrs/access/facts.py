"""The policy information point (PIP): everything the decision needs, gathered in one place.

One round trip to the database (a UNION ALL of indexed lookups) reads: the stored conflict
codes of this employee for this taxpayer, whether the taxpayer exists and its markers,
whether the taxpayer is another employee (and in which unit), the employee's open cases and
contacts on this TIN, whether the conflict index of the employee is current, and today's
count of distinct taxpayers. If the index was never computed for this employee (or for
another own TIN) the conflicts are computed live instead (fail closed).

Need to know when the request names no basis: ANY open case assigned to the employee on
this TIN, or any open contact they handle for it, counts (the basis used is recorded in the
verdict). When it names ``case=`` or ``contact=``, that named basis must be open, theirs and
on this TIN, or the answer is NO_BUSINESS_NEED.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NotRequired, TypedDict

from sqlalchemy.orm import Session

from idrs.access import ratelimit
from idrs.access.sqlraw import fetch
from idrs.context import App
from idrs.errors import ValidationFailed
from idrs.grants.facts import GrantFacts, grant_facts
from idrs.identifiers import BadIdentifier, normalize_tin
from idrs.people.models import Employee
from idrs.vocabulary import CommandCode

_Q = (
    "SELECT 'C' AS k, code AS v, 0 AS n FROM access_conflict"
    " WHERE employee_id = :e AND tin_index = :t"
    " UNION ALL SELECT 'T', '', id FROM taxpayer WHERE tin_index = :t"
    " UNION ALL SELECT 'M', m.marker, 0 FROM taxpayer_marker m"
    "  JOIN taxpayer tp ON tp.id = m.taxpayer_id WHERE tp.tin_index = :t"
    " UNION ALL SELECT 'E', '', unit_id FROM employee WHERE tin_index = :t AND id <> :e"
    " UNION ALL SELECT 'K', case_id, 0 FROM case_assignment"
    "  WHERE employee_id = :e AND tin_index = :t AND closed_at IS NULL"
    " UNION ALL SELECT 'N', contact_id, 0 FROM taxpayer_contact"
    "  WHERE employee_id = :e AND tin_index = :t AND closed_at IS NULL"
    " UNION ALL SELECT 'S', CASE WHEN tin_index = :own THEN 'y' ELSE 'n' END,"
    "  CASE WHEN tin_index IS NULL THEN 1 ELSE 0 END"
    "  FROM access_conflict_state WHERE employee_id = :e"
    " UNION ALL SELECT 'R', '', count(*) FROM access_counter WHERE employee_id = :e AND day = :d"
    " UNION ALL SELECT 'Q', '', 1 FROM access_counter"
    "  WHERE employee_id = :e AND day = :d AND tin_index = :t"
)
_Q_NAMES = "SELECT 'R' AS k, '' AS v, count(*) AS n FROM access_counter WHERE employee_id = :e AND day = :d"


class FactsBase(TypedDict):
    """The facts known from the employee and the request alone, before any taxpayer lookup.

    Spread into :class:`Facts` (``Facts(**base, ...)``); the keys are its field names.
    """

    employee_id: int
    seid: str
    roles: frozenset[str]
    profile: frozenset[str]
    command: str
    tin: str | None
    case: NotRequired[str | None]
    contact: NotRequired[str | None]
    reason: NotRequired[str | None]
    authorities: frozenset[str]
    unit_id: int | None
    rate_limit: int
    grant: NotRequired[GrantFacts | None]


@dataclass(frozen=True)
class Facts:
    employee_id: int
    seid: str
    roles: frozenset[str]
    profile: frozenset[str]
    command: str
    tin: str | None
    case: str | None = None
    contact: str | None = None
    reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # -- added by the decision point (all default to the safe side) --
    authorities: frozenset[str] = frozenset()
    unit_id: int | None = None
    tin_index: bytes | None = None
    #: the taxpayer as Cedar sees it: a keyed pseudonym, never the TIN
    resource_id: str = "unknown"
    taxpayer_exists: bool = False
    open_cases: tuple[str, ...] = ()
    open_contacts: tuple[str, ...] = ()
    conflicts: frozenset[str] = frozenset()
    conflicts_live: bool = False
    target_is_employee: bool = False
    target_same_unit: bool = False
    high_profile: bool = False
    markers: frozenset[str] = frozenset()
    rate_count: int = 0
    rate_limit: int = 0
    rate_exceeded: bool = False
    #: this taxpayer is already among today's distinct taxpayers of the employee
    seen_today: bool = False
    #: grants, prerequisites and UNAX training (idrs.grants.facts); None → the safe side
    grant: GrantFacts | None = None

    @property
    def case_found(self) -> str | None:
        if self.case is not None:
            return self.case if self.case in self.open_cases else None
        return self.open_cases[0] if self.open_cases else None

    @property
    def contact_found(self) -> str | None:
        if self.contact is not None:
            return self.contact if self.contact in self.open_contacts else None
        return self.open_contacts[0] if self.open_contacts else None

    @property
    def basis_valid(self) -> bool:
        """A named basis (case= and/or contact=) is open, the employee's and on this TIN."""
        ok_case = self.case is None or self.case in self.open_cases
        ok_contact = self.contact is None or self.contact in self.open_contacts
        return ok_case and ok_contact and (self.case is not None or self.contact is not None)

    @property
    def basis(self) -> str | None:
        """The basis that makes the access lawful (``case:ID`` / ``contact:ID``), if any."""
        if self.command == CommandCode.NAMES:
            return "reason" if self.reason else None
        if self.case_found is not None:
            return f"case:{self.case_found}"
        if self.contact_found is not None:
            return f"contact:{self.contact_found}"
        return None


def tin_index_of(app: App, tin: str) -> bytes:
    """The blind index of a TIN given with or without dashes (ValidationFailed if malformed).

    Equal to ``app.keyring.tin_index`` (a test holds them together); computed with the C
    one-shot HMAC because it sits on the hot path of every decision.
    """
    try:
        canonical = normalize_tin(tin)
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None
    return hmac.digest(app.keyring.index_key, f"tin:{canonical}".encode(), "sha256")[:16]


@lru_cache(maxsize=4096)
def _set_of(csv: str) -> frozenset[str]:
    return frozenset(x for x in csv.split(",") if x)


def gather(
    session: Session,
    app: App,
    *,
    employee: Employee,
    command: str,
    tin: str | None,
    case: str | None = None,
    contact: str | None = None,
    reason: str | None = None,
) -> Facts:
    """Collect the facts for one request by ``employee``. Reads only; records nothing.

    Callers: the research and adjustment services, explain / who-can / what-can.
    """
    roles = _set_of(employee.roles)
    day = app.clock.now().date()
    limit = ratelimit.limit_for(roles, app.settings)
    base = FactsBase(
        employee_id=employee.id,
        seid=employee.seid,
        roles=roles,
        profile=_set_of(employee.profile),
        command=command,
        tin=tin,
        case=case,
        contact=contact,
        reason=reason,
        authorities=_set_of(employee.authorities or ""),
        unit_id=employee.unit_id,
        rate_limit=limit,
        grant=grant_facts(session, app, employee, command, app.clock.now()),
    )
    if tin is None:
        count = int(fetch(session, _Q_NAMES, {"e": employee.id, "d": day})[0][2])
        return Facts(
            **base,
            resource_id="names-search",
            rate_count=count,
            rate_exceeded=count >= limit,
        )
    tin_index = tin_index_of(app, tin)
    return gather_indexed(session, app, base, tin_index, employee, day)


def gather_indexed(
    session: Session,
    app: App,
    base: FactsBase,
    tin_index: bytes,
    employee: Employee,
    day: object,
) -> Facts:
    """The facts for a taxpayer already known by its blind index (shared with who/what-can)."""
    conflicts: set[str] = set()
    markers: set[str] = set()
    exists = False
    target_units: list[int] = []
    cases: list[str] = []
    contacts: list[str] = []
    state_ok = False
    count = 0
    seen_today = False
    rows = fetch(
        session, _Q, {"e": employee.id, "t": tin_index, "own": employee.tin_index, "d": day}
    )
    for k, v, n in rows:
        if k == "C":
            conflicts.add(v)
        elif k == "T":
            exists = True
        elif k == "M":
            markers.add(v)
        elif k == "E":
            target_units.append(int(n))
        elif k == "K":
            cases.append(v)
        elif k == "N":
            contacts.append(v)
        elif k == "S":
            state_ok = v == "y" or (employee.tin_index is None and int(n) == 1)
        elif k == "R":
            count = int(n)
        elif k == "Q":
            seen_today = True
    live = False
    if not state_ok:
        # never computed (or computed for another own TIN): compute now rather than trust it
        from idrs.access.conflicts import conflicts_of

        live = True
        conflicts = conflicts_of(
            session, app, employee_id=employee.id, tin_index=employee.tin_index
        ).codes_for(tin_index)
    if employee.tin_index is not None and employee.tin_index == tin_index:
        conflicts.add("CONFLICT_SELF")  # independent of any index
    limit = base["rate_limit"]
    return Facts(
        **base,
        tin_index=tin_index,
        # the blind index is already a keyed hash: Cedar never sees a TIN
        resource_id=tin_index.hex(),
        taxpayer_exists=exists,
        open_cases=tuple(sorted(cases)),
        open_contacts=tuple(sorted(contacts)),
        conflicts=frozenset(conflicts),
        conflicts_live=live,
        target_is_employee=bool(target_units),
        target_same_unit=employee.unit_id in target_units,
        high_profile="high_profile" in markers,
        markers=frozenset(markers),
        rate_count=count,
        rate_exceeded=(not seen_today) and count >= limit,
        seen_today=seen_today,
    )


_Q_SCREEN = (
    "SELECT tin_index, code FROM access_conflict WHERE employee_id = :e AND tin_index IN ({ts})"
    " UNION ALL SELECT tin_index, 'PROTECTED_EMPLOYEE_ACCOUNT' FROM employee"
    "  WHERE tin_index IN ({ts}) AND id <> :e"
    " UNION ALL SELECT tp.tin_index, 'SENSITIVE_ACCOUNT' FROM taxpayer tp"
    "  JOIN taxpayer_marker m ON m.taxpayer_id = tp.id"
    "  WHERE tp.tin_index IN ({ts}) AND m.marker = 'high_profile'"
)


def screen_matches(
    session: Session, app: App, employee: Employee, tin_indexes: list[bytes]
) -> dict[bytes, set[str]]:
    """For a NAMES search: which matches this employee must not be shown, and why.

    Callers: the research service, before revealing NAMES matches (a name search must not
    become a way around the conflict rules). Conflicted, other employees' (unless the
    employee_accounts authority, never the own unit's) and high-profile accounts (unless the
    sensitive_accounts authority) are returned with their codes. Reads only.
    """
    blocked: dict[bytes, set[str]] = {}
    if not tin_indexes:
        return blocked
    auths = _set_of(employee.authorities or "")
    own_unit_units = {}
    for tin, code in fetch(session, _Q_SCREEN, {"e": employee.id}, lists={"ts": tin_indexes}):
        if code == "PROTECTED_EMPLOYEE_ACCOUNT" and "employee_accounts" in auths:
            own_unit_units[tin] = True
            continue
        if code == "SENSITIVE_ACCOUNT" and "sensitive_accounts" in auths:
            continue
        blocked.setdefault(bytes(tin), set()).add(code)
    if own_unit_units:
        same = fetch(
            session,
            "SELECT tin_index FROM employee WHERE tin_index IN ({ts})"
            " AND unit_id = :u AND id <> :e",
            {"u": employee.unit_id, "e": employee.id},
            lists={"ts": list(own_unit_units)},
        )
        for (tin,) in same:
            blocked.setdefault(bytes(tin), set()).update(
                {"CONFLICT_COWORKER", "PROTECTED_EMPLOYEE_ACCOUNT"}
            )
    if employee.tin_index is not None and employee.tin_index in tin_indexes:
        blocked.setdefault(employee.tin_index, set()).add("CONFLICT_SELF")
    return blocked
