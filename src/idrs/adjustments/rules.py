"""The adjustment rules, pure (no database, no clock): input validation and two-person triggers.

Callers: the modules of the adjustment service (and the unit tests, exhaustively).

Validation (a bad request is refused before anything is stored, with every problem named):

* ``command`` is ENREQ, ADJ54 or REQ77; ``reason`` is a non-empty text (≤ 500 characters).
* ADJ54: ``tc`` is ``290`` (additional assessment) or ``291`` (abatement); ``amount`` is a
  positive number of dollars with at most two decimals (the TC gives the sign, so zero or a
  negative amount is an error), at most $1,000,000,000.
* REQ77: ``tc`` is ``570`` (refund hold), ``571`` (hold released) or ``971`` (other action,
  which needs an ``action_code`` from :data:`ACTION_CODES`; the other TCs take none).
  No amount.
* ADJ54 and REQ77 need ``tax_year`` (the module must exist: the service checks that).
* ENREQ: ``address`` (the import format's address object) and/or ``name`` (first, middle,
  last, suffix); a name change may not empty the first or last name.
* ``date`` (the transaction / effective date, default today) may not be in the future.

Two-person integrity (:func:`two_person_triggers`): the change waits for a second authorized
employee when any trigger applies. The thresholds are configurable (:class:`Thresholds`).

The amount thresholds cannot be split. ``ABATEMENT_THRESHOLD`` / ``INCREASE_THRESHOLD`` apply
to the SUM of the changes of the same kind (by effect: an abatement, or the reversal of an
increase, is an abatement) on the same module, and on the same taxpayer across modules,
requested within the last ``window_days`` (default 30), by every employee, the pending ones
included, this change counted: the change whose sum reaches the threshold waits, and its
reasons (:func:`threshold_reasons`) name the earlier changes. Sums are gross (a reversal
does not net out the change it reverses: it is a change of the other kind). Rejected and
expired requests do not count (they never changed the account; a second person has seen a
rejected one), so a refused split cannot be retried piecemeal: the applied ones still count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from idrs.masterfile.schema import STATES
from idrs.vocabulary import ADJUSTMENT_CODES, CommandCode

if TYPE_CHECKING:
    from idrs.config import Settings

#: TCs each command may post.
TCS: dict[str, frozenset[str]] = {
    CommandCode.ADJ54: frozenset({"290", "291"}),
    CommandCode.REQ77: frozenset({"570", "571", "971"}),
    CommandCode.ENREQ: frozenset(),
}

#: The action codes accepted with TC 971 (a small documented subset of the agency's list).
ACTION_CODES: dict[str, str] = {
    "010": "account in dispute: collection suspended",
    "043": "taxpayer notified of a pending adjustment",
    "121": "innocent-spouse claim received",
    "506": "identity theft: taxpayer-initiated case closed",
    "522": "identity theft: taxpayer claims to be a victim",
    "524": "deceased taxpayer: locking the account",
}

#: The complementary TC that reverses a posted one (a reversal is a new transaction).
REVERSING_TC: dict[str, str] = {"290": "291", "291": "290", "570": "571", "571": "570",
                                "971": "971"}

MAX_CENTS = 100_000_000_000  # $1,000,000,000.00
MAX_REASON = 500
_NAME_FIELDS = {"first": 40, "middle": 40, "last": 60, "suffix": 10}
_ADDRESS_FIELDS = ("street", "city", "state", "zip")
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")


class Trigger(StrEnum):
    """Why a change needs a second person (listed in the response's ``requires``)."""

    ABATEMENT_THRESHOLD = "ABATEMENT_THRESHOLD"
    INCREASE_THRESHOLD = "INCREASE_THRESHOLD"
    HOLD_RELEASE = "HOLD_RELEASE"
    HIGH_PROFILE_ACCOUNT = "HIGH_PROFILE_ACCOUNT"
    EMPLOYEE_ACCOUNT = "EMPLOYEE_ACCOUNT"
    ADDRESS_NEAR_REFUND = "ADDRESS_NEAR_REFUND"


@dataclass(frozen=True)
class Thresholds:
    """Configurable limits (env ``IDRS_ADJ_*``: the ``adj_*`` fields of ``config.Settings``)."""

    abatement_cents: int = 100_000  # an abatement of at least $1,000
    increase_cents: int = 1_000_000  # an increase of at least $10,000
    refund_window_days: int = 60  # an address change within 60 days of a pending refund
    pending_hours: int = 72  # a pending request expires after this long
    window_days: int = 30  # the amount thresholds apply to the sum over this many days

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(settings.adj_abatement_cents, settings.adj_increase_cents,
                   settings.adj_refund_window_days, settings.adj_pending_hours,
                   settings.adj_window_days)


#: the amount trigger of each effective TC (the kinds of change whose sums are limited)
AMOUNT_TRIGGERS: dict[str, tuple[Trigger, str]] = {
    "291": (Trigger.ABATEMENT_THRESHOLD, "abatements"),
    "290": (Trigger.INCREASE_THRESHOLD, "additional assessments"),
}


@dataclass(frozen=True)
class Earlier:
    """An earlier change of the same kind on the same taxpayer within the window (applied or
    pending, by anyone), as the service found it."""

    adjustment_id: int
    module_id: int | None
    amount_cents: int
    status: str


@dataclass(frozen=True)
class Change:
    """A validated request (what the service applies)."""

    command: str
    reason: str
    effective_date: date
    tax_year: int | None = None
    tc: str | None = None
    amount_cents: int | None = None
    action_code: str | None = None
    address: dict[str, str] | None = None
    name: dict[str, str] | None = None
    base_version: int | None = None

    def public_payload(self) -> dict[str, Any]:
        """The non-identifying fields (safe to store in clear and to show in lists)."""
        out: dict[str, Any] = {"changes": sorted(k for k in ("address", "name")
                                                 if getattr(self, k) is not None)}
        return out if self.command == CommandCode.ENREQ else {}


@dataclass(frozen=True)
class AccountFacts:
    """What the triggers need to know about the account (gathered by the service)."""

    high_profile: bool = False
    employee_account: bool = False
    #: dates of refunds claimed and not yet issued (their return's receipt date) and of
    #: refunds issued (TC 846 dates); see :func:`refund_pending_near`
    unissued_refund: bool = False
    refund_issue_dates: tuple[date, ...] = field(default_factory=tuple)
    #: the module the change applies to, and the earlier changes of the same kind on this
    #: taxpayer within the window (see :func:`threshold_reasons`)
    module_id: int | None = None
    earlier: tuple[Earlier, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------- validation


def parse_amount(value: Any) -> int:
    """Dollars (JSON number or string) → positive cents; ValueError with the reason."""
    if isinstance(value, bool) or value is None:
        raise ValueError("amount: required, a positive number with at most two decimals")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("amount: not a number") from None
    if not dec.is_finite():
        raise ValueError("amount: not a number")
    if abs(dec) * 100 > MAX_CENTS:
        raise ValueError("amount: too large")
    if dec != dec.quantize(Decimal("0.01")):
        raise ValueError("amount: at most two decimals")
    if dec <= 0:
        raise ValueError("amount: must be positive (the TC gives the sign)")
    cents = int(dec * 100)
    if cents > MAX_CENTS:
        raise ValueError("amount: too large")
    return cents


def _text(value: Any, label: str, limit: int, required: bool) -> tuple[str, list[str]]:
    if value is None:
        value = ""
    if not isinstance(value, str):
        return "", [f"{label}: must be text"]
    text = value.strip()
    if required and not text:
        return "", [f"{label}: must not be empty"]
    if len(text) > limit:
        return "", [f"{label}: at most {limit} characters"]
    if any(ord(c) < 32 for c in text):
        return "", [f"{label}: control characters are not allowed"]
    return text, []


def _name(value: Any) -> tuple[dict[str, str] | None, list[str]]:
    if not isinstance(value, dict):
        return None, ["name: must be an object {first, middle, last, suffix}"]
    problems = [f"name.{k}: unknown field" for k in value if k not in _NAME_FIELDS]
    out: dict[str, str] = {}
    for key, limit in _NAME_FIELDS.items():
        text, p = _text(value.get(key), f"name.{key}", limit, key in ("first", "last"))
        out[key] = text
        problems += p
    if not problems and not re.search(r"[A-Za-z]", out["last"]):
        problems.append("name.last: must contain a letter")
    return (None, problems) if problems else (out, [])


def _address(value: Any) -> tuple[dict[str, str] | None, list[str]]:
    if not isinstance(value, dict):
        return None, ["address: must be an object {street, city, state, zip}"]
    problems = [f"address.{k}: unknown field" for k in value if k not in _ADDRESS_FIELDS]
    out: dict[str, str] = {}
    for key, limit in (("street", 120), ("city", 60), ("state", 2), ("zip", 10)):
        text, p = _text(value.get(key), f"address.{key}", limit, True)
        out[key] = text
        problems += p
    if not problems:
        out["state"] = out["state"].upper()
        if out["state"] not in STATES:
            problems.append("address.state: not a US state or territory code")
        if not _ZIP.match(out["zip"]):
            problems.append("address.zip: must be NNNNN or NNNNN-NNNN")
    return (None, problems) if problems else (out, [])


def _year(value: Any, today: date) -> tuple[int | None, list[str]]:
    if value is None:
        return None, ["tax_year: required"]
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None, ["tax_year: must be a year"]
    try:
        year = int(value)
    except ValueError:
        return None, ["tax_year: must be a year"]
    if not 1900 <= year <= today.year:
        return None, [f"tax_year: {year} is not a past or current tax year"]
    return year, []


def _date(value: Any, today: date) -> tuple[date, list[str]]:
    if value is None or value == "":
        return today, []
    try:
        when = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return today, ["date: must be YYYY-MM-DD"]
    if when > today:
        return today, ["date: must not be in the future"]
    if when.year < 1900:
        return today, ["date: too early"]
    return when, []


def validate(command: str, fields: dict[str, Any], *, today: date) -> Change:
    """Check one request; return the Change or raise ValueError listing every problem.

    ``fields`` holds the body fields besides command and case: reason, tax_year, tc, amount,
    action_code, address, name, date, base_version. Unknown fields are an error.
    """
    cmd = (command or "").strip().upper()
    if cmd not in ADJUSTMENT_CODES:
        raise ValueError(f"command: unknown adjustment command {command!r}; valid: "
                         + ", ".join(ADJUSTMENT_CODES))
    known = {"reason", "tax_year", "tc", "amount", "action_code", "address", "name", "date",
             "base_version"}
    problems = [f"{k}: unknown field" for k in sorted(fields) if k not in known]
    reason, p = _text(fields.get("reason"), "reason", MAX_REASON, True)
    problems += p
    when, p = _date(fields.get("date"), today)
    problems += p
    base = fields.get("base_version")
    if base is not None and (isinstance(base, bool) or not isinstance(base, int) or base < 0):
        problems.append("base_version: must be a non-negative integer")
    kw: dict[str, Any] = {}
    if cmd == CommandCode.ENREQ:
        problems += _enreq_fields(fields, kw)
    else:
        problems += _txn_fields(cmd, fields, kw, today)
    if problems:
        raise ValueError("; ".join(problems))
    return Change(command=cmd, reason=reason, effective_date=when, base_version=base, **kw)


def _enreq_fields(fields: dict[str, Any], kw: dict[str, Any]) -> list[str]:
    problems = [f"{k}: not used by ENREQ" for k in ("tax_year", "tc", "amount", "action_code")
                if fields.get(k) is not None]
    if fields.get("address") is None and fields.get("name") is None:
        problems.append("ENREQ needs an address and/or a name")
    if fields.get("address") is not None:
        kw["address"], p = _address(fields["address"])
        problems += p
    if fields.get("name") is not None:
        kw["name"], p = _name(fields["name"])
        problems += p
    return problems


def _txn_fields(cmd: str, fields: dict[str, Any], kw: dict[str, Any], today: date) -> list[str]:
    problems = [f"{k}: not used by {cmd}" for k in ("address", "name") if fields.get(k) is not None]
    kw["tax_year"], p = _year(fields.get("tax_year"), today)
    problems += p
    tc = str(fields.get("tc") or "").strip()
    if tc not in TCS[cmd]:
        problems.append(f"tc: {tc or 'missing'} is not valid for {cmd} (valid: "
                        + ", ".join(sorted(TCS[cmd])) + ")")
    kw["tc"] = tc
    if cmd == CommandCode.ADJ54:
        try:
            kw["amount_cents"] = parse_amount(fields.get("amount"))
        except ValueError as exc:
            problems.append(str(exc))
        if fields.get("action_code") is not None:
            problems.append("action_code: only with REQ77 TC 971")
    else:
        if fields.get("amount") is not None:
            problems.append("amount: REQ77 posts no amount")
        code = fields.get("action_code")
        if tc == "971":
            code = str(code or "").strip()
            if code not in ACTION_CODES:
                problems.append(f"action_code: {code or 'missing'} is not a known TC 971 action "
                                "code (valid: " + ", ".join(sorted(ACTION_CODES)) + ")")
            kw["action_code"] = code
        elif code is not None:
            problems.append("action_code: only with TC 971")
    return problems


# ----------------------------------------------------------------------------- two-person


def refund_pending_near(facts: AccountFacts, today: date, window_days: int) -> bool:
    """A refund is pending near ``today``: claimed and not yet issued, or issued (TC 846)
    within ``window_days`` before today or scheduled after it."""
    if facts.unissued_refund:
        return True
    start = today - timedelta(days=window_days)
    return any(d >= start for d in facts.refund_issue_dates)


def effective_tc(change: Change, reversal: bool) -> str | None:
    """The TC whose effect the change has (a reversal of 291 acts as a 290, and so on)."""
    if change.tc is None:
        return None
    return REVERSING_TC[change.tc] if reversal else change.tc


def two_person_triggers(change: Change, account: AccountFacts, thresholds: Thresholds,
                        today: date, *, reversal: bool = False) -> list[Trigger]:
    """Every reason this change needs a second authorized employee (empty: apply at once)."""
    out: list[Trigger] = [Trigger(r["code"]) for r in threshold_reasons(
        change, account, thresholds, reversal=reversal)]
    tc = effective_tc(change, reversal)
    if tc == "571":
        out.append(Trigger.HOLD_RELEASE)
    if account.high_profile:
        out.append(Trigger.HIGH_PROFILE_ACCOUNT)
    if account.employee_account:
        out.append(Trigger.EMPLOYEE_ACCOUNT)
    if change.address is not None and refund_pending_near(account, today,
                                                          thresholds.refund_window_days):
        out.append(Trigger.ADDRESS_NEAR_REFUND)
    return out


def _limit(tc: str, thresholds: Thresholds) -> int:
    return thresholds.abatement_cents if tc == "291" else thresholds.increase_cents


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def threshold_reasons(change: Change, account: AccountFacts, thresholds: Thresholds, *,
                      reversal: bool = False) -> list[dict[str, Any]]:
    """The amount trigger this change meets, with its explanation (empty list: none).

    The sum of this change and ``account.earlier`` (the same kind, this taxpayer, the window)
    against the threshold; on the module alone first, then across the taxpayer's modules.
    Each reason: ``code``, ``scope`` (module | taxpayer), ``total_cents``, ``threshold_cents``,
    ``window_days``, ``with`` (the earlier adjustment ids that count, oldest first) and a
    ``message`` in words.
    """
    tc = effective_tc(change, reversal)
    if tc not in AMOUNT_TRIGGERS or change.amount_cents is None:
        return []
    trigger, words = AMOUNT_TRIGGERS[tc]
    limit = _limit(tc, thresholds)
    amount = change.amount_cents
    mine = [e for e in account.earlier
            if account.module_id is not None and e.module_id == account.module_id]
    for scope, counted in (("module", mine), ("taxpayer", list(account.earlier))):
        total = amount + sum(e.amount_cents for e in counted)
        if total < limit:
            continue
        ids = sorted(e.adjustment_id for e in counted)
        if ids:
            where = "on this module" if scope == "module" else "on this taxpayer's modules"
            pending = sum(1 for e in counted if e.status != "applied")
            more = f" ({pending} of them pending)" if pending else ""
            message = (f"{words} {where} within {thresholds.window_days} days total "
                       f"{_dollars(total)} with this one and adjustment"
                       f"{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}{more}; "
                       f"{_dollars(limit)} or more needs a second person")
        else:
            message = (f"{_dollars(amount)} of {words} in one change; {_dollars(limit)} or more"
                       " needs a second person")
        return [{"code": str(trigger), "scope": scope, "total_cents": total,
                 "threshold_cents": limit, "window_days": thresholds.window_days,
                 "with": ids, "message": message}]
    return []
