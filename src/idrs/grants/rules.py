"""The pure rules of grants: states from the clock, scope, the approval rule, input checks.

No database, no clock of its own: every function takes ``now`` (from ``app.clock``), so time
comes from the injected clock and never from a setting a production user could change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from idrs.config import Settings
from idrs.errors import IdrsError, ValidationFailed
from idrs.masterfile.screens import Sensitivity
from idrs.vocabulary import ADJUSTMENT_CODES, ALL_CODES, CommandCode

POPULATIONS = ("cases", "all", "anonymized")
KINDS = ("records", "anonymized", "statistics")
#: the k of an anonymized grant when the request names none, and its bounds
DEFAULT_K, MIN_K, MAX_K = 10, 2, 1000
#: stored lifecycle values (Grant.status)
PENDING, APPROVED, REVOKED, ENDED = "pending_approval", "approved", "revoked", "ended"
#: computed states
ACTIVE, EXPIRED, NONE = "active", "expired", "none"
STATES = (PENDING, APPROVED, ACTIVE, EXPIRED, REVOKED, ENDED, NONE)

ALL_CLASSES = frozenset(c.value for c in Sensitivity)

S = Sensitivity
C = CommandCode
#: The class a command is about: a grant must include it for the command to be in scope.
COMMAND_CLASS: dict[str, Sensitivity] = {
    C.ENMOD: S.IDENTITY, C.INOLE: S.IDENTITY, C.NAMES: S.IDENTITY,
    C.IMFOL: S.RETURN, C.TXMOD: S.RETURN, C.RTVUE: S.RETURN, C.IRPTR: S.RETURN,
    C.ENREQ: S.ADDRESS, C.ADJ54: S.RETURN, C.REQ77: S.RETURN,
}
#: Every class a command's output can carry (masterfile/commands.py), for registers/reports.
COMMAND_CLASSES: dict[str, frozenset[Sensitivity]] = {
    C.ENMOD: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.OTHER}),
    C.IMFOL: frozenset({S.IDENTITY, S.RETURN}),
    C.TXMOD: frozenset({S.IDENTITY, S.RETURN, S.OTHER}),
    C.RTVUE: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.ADOPTION}),
    C.INOLE: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.ADOPTION, S.OTHER}),
    C.NAMES: frozenset({S.IDENTITY, S.ADDRESS, S.OTHER}),
    C.IRPTR: frozenset({S.IDENTITY, S.RETURN}),
    C.ENREQ: frozenset({S.IDENTITY, S.ADDRESS}),
    C.ADJ54: frozenset({S.RETURN}),
    C.REQ77: frozenset({S.RETURN}),
}

#: The denial code for each grant state that does not allow access (docs/interface.md).
STATE_REASON: dict[str, str] = {
    PENDING: "GRANT_PENDING_APPROVAL",
    APPROVED: "GRANT_NOT_STARTED",
    EXPIRED: "GRANT_EXPIRED",
    ENDED: "GRANT_EXPIRED",
    REVOKED: "GRANT_REVOKED",
    NONE: "NO_GRANT",
}


@dataclass(frozen=True)
class ApprovalRule:
    """Which approving roles must each approve once (one approval per role, distinct people)."""

    roles: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalRule:
        """The rule ``IDRS_GRANT_APPROVAL_ROLES`` names (``settings.grant_approval_roles``)."""
        return cls.parse(settings.grant_approval_roles)

    @classmethod
    def parse(cls, text: str) -> ApprovalRule:
        roles = tuple(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
        if not roles:
            # fail closed: an empty rule would approve everything
            raise IdrsError("grant approval rule names no approving role (IDRS_GRANT_APPROVAL_ROLES)")
        return cls(roles)


#: The rule when the setting is left at its default.
DEFAULT_RULE = ApprovalRule.parse(Settings.model_fields["grant_approval_roles"].default)


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def end_of(start: date, term_days: int) -> datetime:
    """The first instant at which the grant is over: ``term_days`` whole UTC days after start."""
    return start_of(start) + timedelta(days=term_days)


def state_of(status: str, start: date, term_days: int, now: datetime) -> str:
    """The effective state of a grant at ``now``.

    revoked / ended are final; otherwise a grant past its term is ``expired`` (approved or
    not); an approved grant whose start has come is ``active``.
    """
    if status in (REVOKED, ENDED):
        return status
    if now >= end_of(start, term_days):
        return EXPIRED
    if status == APPROVED:
        return ACTIVE if now >= start_of(start) else APPROVED
    return PENDING


def training_current(last: datetime | None, now: datetime, valid_days: int = 365) -> bool:
    """UNAX training attested within the last ``valid_days`` days."""
    return last is not None and now - last < timedelta(days=valid_days)


def in_scope(command: str, commands: Iterable[str], classes: Iterable[str], population: str,
             allow_changes: bool) -> tuple[bool, bool]:
    """(command in scope, class in scope) of a grant for one command code.

    An adjustment is in scope only with ``allow_changes`` and never on anonymized views;
    neither is NAMES (a search by name answers with identities).
    """
    cmd_ok = command in set(commands)
    if command in ADJUSTMENT_CODES and (not allow_changes or population == "anonymized"):
        cmd_ok = False
    if command == CommandCode.NAMES and population == "anonymized":
        cmd_ok = False  # a name search reveals identities: never on anonymized views
    cls = COMMAND_CLASS.get(command)
    return cmd_ok, cls is not None and cls.value in set(classes)


def check_kind(kind: str | None, population: str | None, k: int | None,
               epsilon: float | None) -> tuple[str, str, int | None]:
    """(kind, population, k) of a grant request, or ValidationFailed naming the field.

    The kind follows from the population when not given, and the population from the kind
    ``anonymized`` or ``statistics``. ``epsilon`` belongs to a statistics grant only (its
    bounds are checked by :func:`check_budget`).
    """
    if kind is not None and kind not in KINDS:
        raise ValidationFailed([f"kind: one of {', '.join(KINDS)}"])
    if kind is None and population == "statistics":
        kind = "statistics"  # the population alone names the kind, as for anonymized
    if epsilon is not None and kind != "statistics":
        raise ValidationFailed(["epsilon: only for a statistics grant (--kind statistics)"])
    if kind == "statistics":
        if population not in (None, "statistics"):
            raise ValidationFailed([f"population: a statistics grant covers no {population}; "
                                    "it counts, it never sees a record"])
        if k is not None:
            raise ValidationFailed(["k: only for an anonymized grant"])
        return kind, "statistics", None
    if population is not None and population not in POPULATIONS:
        raise ValidationFailed([f"population: one of {', '.join(POPULATIONS)}"])
    if kind is None:
        if population is None:
            raise ValidationFailed(["population: required (or --kind anonymized|statistics)"])
        kind = "anonymized" if population == "anonymized" else "records"
    if kind == "anonymized":
        if population not in (None, "anonymized"):
            raise ValidationFailed([f"population: an anonymized grant covers no {population}"])
        population = "anonymized"
        k = DEFAULT_K if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
            raise ValidationFailed([f"k: a whole number from {MIN_K} to {MAX_K}"])
        return kind, population, k
    if population is None:
        raise ValidationFailed(["population: required for a records grant (cases or all)"])
    if population == "anonymized":
        raise ValidationFailed(["population: anonymized is the kind anonymized"])
    if k is not None:
        raise ValidationFailed(["k: only for an anonymized grant"])
    return kind, population, None


#: a statistics grant's budget: ε in all (required), δ in all (default, and bounds)
MIN_EPSILON, MAX_EPSILON = 0.01, 10.0
DEFAULT_DELTA, MAX_DELTA = 1e-6, 1e-4


def check_budget(kind: str, epsilon: float | None,
                 delta: float | None) -> tuple[float | None, float | None]:
    """(ε, δ) of a grant request: required for a statistics grant, refused for any other."""
    if kind != "statistics":
        if delta is not None:
            raise ValidationFailed(["delta: only for a statistics grant (--kind statistics)"])
        return None, None
    if epsilon is None:
        raise ValidationFailed(["epsilon: required for a statistics grant (its privacy "
                                f"budget in all, from {MIN_EPSILON} to {MAX_EPSILON})"])
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) \
            or not MIN_EPSILON <= float(epsilon) <= MAX_EPSILON:
        raise ValidationFailed([f"epsilon: from {MIN_EPSILON} to {MAX_EPSILON}"])
    delta = DEFAULT_DELTA if delta is None else delta
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) \
            or not 0 <= float(delta) <= MAX_DELTA:
        raise ValidationFailed([f"delta: from 0 to {MAX_DELTA}"])
    return float(epsilon), float(delta)


def parse_commands(raw: str | Iterable[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    codes = sorted({c.strip().upper() for c in items if c.strip()})
    unknown = [c for c in codes if c not in ALL_CODES]
    if not codes:
        raise ValidationFailed(["commands: at least one command code"])
    if unknown:
        raise ValidationFailed([f"commands: unknown command code {', '.join(unknown)}; "
                                f"valid: {', '.join(sorted(ALL_CODES))}"])
    return codes


def parse_classes(raw: str | Iterable[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    classes = sorted({c.strip().lower() for c in items if c.strip()})
    unknown = [c for c in classes if c not in ALL_CLASSES]
    if not classes:
        raise ValidationFailed(["classes: at least one sensitivity class"])
    if unknown:
        raise ValidationFailed([f"classes: unknown class {', '.join(unknown)}; "
                                f"valid: {', '.join(sorted(ALL_CLASSES))}"])
    return classes


def check_term(start: date, days: int | None, end: date | None, renewal: bool,
               settings: Settings) -> int:
    """The term in days from ``days`` or an ``end`` date (exclusive of the end day).

    Refuses an end before (or on) the start, and a term beyond the limit without a renewal.
    """
    if days is None and end is None:
        days = settings.grant_max_days
    if end is not None:
        if end <= start:
            raise ValidationFailed([f"end: {end.isoformat()} is not after the start {start.isoformat()}"])
        if days is not None and days != (end - start).days:
            raise ValidationFailed(["days: does not agree with --end"])
        days = (end - start).days
    assert days is not None
    if days <= 0:
        raise ValidationFailed(["days: the term must be at least one day (the end is before the start)"])
    limit = settings.grant_renewal_max_days if renewal else settings.grant_max_days
    if days > limit:
        if not renewal:
            raise ValidationFailed([f"days: {days} is beyond the {limit}-day limit; "
                                    "a longer term needs --renewal-of"])
        raise ValidationFailed([f"days: {days} is beyond the {limit}-day limit of a renewal"])
    return days
