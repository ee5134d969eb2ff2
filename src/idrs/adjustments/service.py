"""THE adjustment service: request, approve, reject, list pending, reverse (ENREQ/ADJ54/REQ77).

Every change to an account from every interface goes through these functions:

1. the input is validated (``rules.validate``): bad input is refused before anything is
   stored or recorded (ValidationFailed, 422);
2. the employee behind the token is authenticated (an unauthenticated call is recorded);
3. facts = ``access.facts.gather`` and verdict = ``access.policy.decide`` with the
   adjustment's command code: profile, need to know and every conflict apply exactly as
   for research; in addition the same employee must have run the prerequisite research in
   the same sign-in session (``ENMOD`` before ``ENREQ``; ``TXMOD`` of the year before
   ``ADJ54``/``REQ77``), else ``PREREQUISITE_RESEARCH``. Every applicable reason is given;
   a denial is recorded in its own short transaction (it survives) and raised;
4. the two-person triggers (``rules.two_person_triggers``) decide between applying at once
   and leaving the request ``pending_approval``. ``TWO_PERSON_REQUIRED`` is NOT a denial:
   the answer is 201 with status ``pending_approval`` and ``requires`` =
   ``["TWO_PERSON_REQUIRED", <triggers>]``. The amount thresholds apply to the sum of the
   changes of the same kind on the module and on the taxpayer within ``window_days``
   (``rules.threshold_reasons``; pending ones and every employee's count): the answer's
   ``reasons`` then name the earlier adjustments. The sum is read again inside the write
   transaction, under a per-taxpayer lock (PostgreSQL: the transaction-scoped advisory lock
   (:data:`ADJ_LOCK_CLASS`, taxpayer id); SQLite: the write lock held since BEGIN
   IMMEDIATE), so two changes racing on one taxpayer cannot both apply below the threshold:
   the second sees the first and waits;
5. the change (version check, postings, request row) and its audit entry commit in ONE
   transaction (the audit package's unit of work, ``log.unit_of_work``): both or neither. A stale version is a
   :class:`~idrs.adjustments.apply.VersionConflict` (409), recorded in its own entry.

Optimistic concurrency: a request states ``base_version`` (the module version for ADJ54 and
REQ77, the entity version for ENREQ). When it states none, the base is the version the
employee saw at the prerequisite research (kept in the research trail; after the employee's
own applied change, the trail follows the new version). Applying runs
``UPDATE … SET version=version+1 WHERE id=? AND version=?``; zero rows is a conflict.

Approval: the approver must hold the approval authority (role ``manager``; else
``APPROVAL_AUTHORITY_REQUIRED``), must not be the requester (``SELF_APPROVAL``), must pass the
access decision on the taxpayer with the request's command treated as in their profile and
the request's case as their basis — so every conflict, protected-account and sensitive-account
rule applies to them exactly as to a researcher — and must not be conflicted with the
requester (the requester's own TIN in the approver's conflict set: ``CONFLICT_*`` with a
message naming the requester). Pending requests expire after ``pending_hours``.

Every call past input validation appends exactly one ``access:adjustment:decide`` entry
(``object.action`` = request | approve | reject | reverse | list | expire) naming the
taxpayer only by pseudonym; its index is the ``audit_index`` of the answer or the denial.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from idrs.access import facts as pip
from idrs.access import policy, sqlraw
from idrs.access.decision import Verdict
from idrs.adjustments import apply as post
from idrs.adjustments import rules, trail
from idrs.adjustments.models import APPLIED, EXPIRED, PENDING, REJECTED
from idrs.adjustments.tx import Tx
from idrs.audit import commitment, log
from idrs.audit.events import EventType, make_event
from idrs.clock import as_utc
from idrs.context import App
from idrs.crypto import sha256_hex
from idrs.db import db_datetime
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.identifiers import BadIdentifier, normalize_tin, optional_case_id, screen_text
from idrs.people import auth
from idrs.people.models import Employee
from idrs.people.roles import ADJUSTMENT_APPROVERS
from idrs.vocabulary import CommandCode

_log = logging.getLogger(__name__)
#: PostgreSQL advisory lock class (first int4 key; the second is the taxpayer id) that
#: serializes the amount-threshold sums of one taxpayer ("ADJT"; the two-int4 key space is
#: distinct from the audit log's bigint key)
ADJ_LOCK_CLASS = 0x41444A54
AUDIT_UNAVAILABLE = Reason("AUDIT_UNAVAILABLE", "the audit log cannot be written; nothing was changed")
TWO_PERSON = "TWO_PERSON_REQUIRED"
_PREREQ_MSG: dict[str, str] = {
    CommandCode.ENREQ: "run ENMOD on this TIN in this session before ENREQ",
    CommandCode.ADJ54: "run TXMOD of this tax year in this session before ADJ54",
    CommandCode.REQ77: "run TXMOD of this tax year in this session before REQ77",
}


#: per engine (weakly: a collected engine's thresholds never pass to a new one at its address)
_configured: weakref.WeakKeyDictionary[Engine, rules.Thresholds] = weakref.WeakKeyDictionary()


def configure(app: App, thresholds: rules.Thresholds) -> None:
    """Use ``thresholds`` for ``app`` (tests, operators); default: ``IDRS_ADJ_*`` settings."""
    _configured[app.engine] = thresholds


def thresholds_for(app: App) -> rules.Thresholds:
    return _configured.get(app.engine) or rules.Thresholds.from_settings(app.settings)


@dataclass(frozen=True)
class AdjustmentResult:
    """The answer to a request, approval, rejection or reversal."""

    adjustment_id: int
    status: str
    audit_index: int
    requires: list[str] = field(default_factory=list)
    version: int | None = None
    #: why an amount threshold applies: code, scope, totals, the earlier adjustment ids
    #: (``with``) and a message (``rules.threshold_reasons``)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.document(), "audit_index": self.audit_index}

    def document(self) -> dict[str, Any]:
        """The answer as committed in its entry (issue 14.1): the HTTP body (``None`` left
        out) and the CLI's ``--json`` without ``audit_index``."""
        out: dict[str, Any] = {"adjustment_id": self.adjustment_id, "status": self.status}
        if self.requires:
            out["requires"] = self.requires
        if self.reasons:
            out["reasons"] = self.reasons
        if self.version is not None:
            out["version"] = self.version
        return out


@dataclass
class _Call:
    """One call's context, for its audit entry."""

    app: App
    action: str
    interface: str
    origin: str | None
    command: str | None = None
    pseudonym: str | None = None
    #: the canonical TIN, for lookups only: never written to the entry
    tin: str | None = field(default=None, repr=False)
    adjustment_id: int | None = None
    tax_year: int | None = None
    tc: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def entry(self, actor: str, outcome: str, codes: list[str],
              verdict: Verdict | None = None, **more: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"action": self.action}
        for key, value in (("command", self.command), ("taxpayer", self.pseudonym),
                           ("adjustment", self.adjustment_id), ("year", self.tax_year),
                           ("tc", self.tc)):
            if value is not None:
                obj[key] = value
        detail = {**self.detail, **more}
        if verdict is not None and verdict.basis:
            detail["basis"] = verdict.basis
        return make_event(
            EventType.ACCESS_ADJUSTMENT_DECIDE, time=self.app.clock.now(), actor=actor,
            outcome=outcome, interface=self.interface, address=self.origin, obj=obj,
            reasons=codes, policy=verdict.policy_version if verdict is not None else None,
            detail={k: v for k, v in detail.items() if v is not None},
        )

    def record(self, actor: str, outcome: str, codes: list[str],
               verdict: Verdict | None = None, **more: Any) -> int:
        """Append this call's entry in its own transaction (denials, conflicts, errors)."""
        try:
            return log.append(self.app.engine, self.entry(actor, outcome, codes, verdict, **more))
        except IdrsError:
            raise AccessDenied([AUDIT_UNAVAILABLE]) from None

    def deny(self, actor: str, reasons: list[Reason], verdict: Verdict | None = None,
             **more: Any) -> AccessDenied:
        idx = self.record(actor, "deny", [r.code for r in reasons], verdict, **more)
        return AccessDenied(reasons, idx)


# ----------------------------------------------------------------------------- helpers


def _canonical_tin(tin: str) -> str:
    try:
        return normalize_tin(tin)
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None


def _screened(case: str | None, contact: str | None,
              reason: str | None) -> tuple[str | None, str | None, str | None]:
    """The basis in its documented id format and a reason free of identifiers (ValidationFailed
    before anything is recorded): case and contact go into the entry verbatim."""
    return (optional_case_id(case, "case"), optional_case_id(contact, "contact"),
            screen_text(reason, "reason"))


def _signed_in(app: App, call: _Call, token: str | None) -> Employee:
    """The employee behind ``token`` or a recorded AccessDenied."""
    try:
        return auth.authenticate(app, token, interface=call.interface, address=call.origin)
    except AccessDenied as exc:
        raise call.deny(exc.seid or "anonymous", exc.reasons) from None


def _sqlite_lock(app: App) -> threading.Lock | None:
    """In-process writers on SQLite queue here instead of sleeping in SQLite's busy handler."""
    if app.engine.dialect.name != "sqlite":
        return None
    return _LOCKS.setdefault(app.engine, threading.Lock())


#: per engine, weakly (as ``_configured``)
_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def _committed(app: App, call: _Call, work: Any, actor: str,
               index_column: str = "request_audit_index",
               answer: Any = None) -> tuple[Any, int]:
    """``work(tx) -> (result, entry)``: the change and its audit entry, one commit.

    Through the audit package's ONE unit of work (:func:`idrs.audit.log.unit_of_work`):
    ``work`` writes the change on the unit's transaction, then the unit appends the entry
    with the log's own appender (write lock, checkpoint floor, Merkle nodes) and commits
    both. The row's ``index_column`` is filled by a write committed with the entry
    (:data:`~idrs.audit.log.ENTRY_INDEX`). VersionConflict / Conflict: rolled back, then
    recorded on their own and re-raised. Any failure of the audit write (a database error,
    a log truncated below its last signed checkpoint) rolls everything back:
    AUDIT_UNAVAILABLE.

    ``answer(result) -> AdjustmentResult`` (issue 14.1): the answer the caller will return,
    committed in the entry (``object.answer``) with its salt written in the same transaction.
    """
    try:
        result, idx = _in_unit(app, call, work, index_column, answer)
    except post.VersionConflict as exc:
        exc.audit_index = call.record(actor, "conflict", ["VERSION_CONFLICT"],
                                      base_version=exc.base, current_version=exc.current)
        raise
    except Conflict as exc:  # decided or expired meanwhile
        exc.audit_index = call.record(actor, "conflict", [])  # type: ignore[attr-defined]
        raise
    except _AuditFailed:
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None
    return result, idx


def _in_unit(app: App, call: _Call, work: Any, index_column: str,
             answer: Any) -> tuple[Any, int]:
    """Run ``work`` and commit its entry in one unit of work (see :func:`_committed`)."""
    if index_column not in ("request_audit_index", "decision_audit_index"):
        raise ValueError(index_column)
    lock = _sqlite_lock(app)
    if lock is not None:
        lock.acquire()
    try:
        with log.unit_of_work(app.engine) as unit:
            result, entry = work(Tx(unit.conn, unit.pg))
            also: list[log.Write] = []
            if call.adjustment_id is not None:
                also.append((f"UPDATE adjustment_request SET {index_column} = :idx"  # noqa: S608
                             " WHERE id = :id", {"idx": log.ENTRY_INDEX,
                                                 "id": call.adjustment_id}))
            try:
                if answer is not None:
                    committed = commitment.commit(answer(result).document(),
                                                  {"kind": "adjustment", "action": call.action})
                    entry["object"]["answer"] = committed.hex
                    salt, recipe = committed.row(app.keyring)
                    also.append(("INSERT INTO audit_answer (idx, salt_enc, recipe_enc)"
                                 " VALUES (:idx, :salt, :recipe)",
                                 {"idx": log.ENTRY_INDEX, "salt": salt, "recipe": recipe}))
                return result, unit.commit(entry, also)
            except Exception:  # noqa: BLE001 - no entry, no change
                _log.exception("audit append inside the adjustment transaction failed")
                raise _AuditFailed from None
    finally:
        if lock is not None:
            lock.release()


class _AuditFailed(Exception):
    pass


# ----------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class _Account:
    signin_session_id: int | None
    prerequisite_found: bool
    version_seen: int | None
    taxpayer_id: int | None
    module_id: int | None
    module_version: int | None
    entity_version: int
    open_holds: int


def _account_sql(need: str) -> Any:
    year_cond = " AND r.tax_year = :y" if need == CommandCode.TXMOD else ""
    latest = ("(SELECT r.{col} FROM research_trail r WHERE r.signin_session_id = s.id"  # noqa: S608
              " AND r.tin_index = :t AND r.command = :c AND r.employee_id = :e" + year_cond
              + " ORDER BY r.id DESC LIMIT 1)")
    return (
        "SELECT s.id, " + latest.format(col="id") + ", "  # noqa: S608 - fixed text only
        + latest.format(col="version_seen")
        + ", t.id, m.id, m.version, COALESCE(v.version, 0) FROM signin_session s"
        " LEFT JOIN taxpayer t ON t.tin_index = :t"
        " LEFT JOIN tax_module m ON m.taxpayer_id = t.id AND m.tax_year = :y"
        " LEFT JOIN entity_version v ON v.taxpayer_id = t.id WHERE s.token_hash = :h")


_ACCOUNT_SQL = {need: _account_sql(need) for need in (CommandCode.ENMOD, CommandCode.TXMOD)}


def _account(session: Session, *, token: str, employee_id: int, tin_index: bytes,
             change: rules.Change) -> _Account:
    """One query: the sign-in session, the latest prerequisite research in it (and the version
    it saw), the taxpayer, the module of the year and both versions. (+1 query for TC 571.)"""
    need = trail.PREREQUISITE[change.command]
    # straight to the driver on the session's connection (the hot path of every adjustment)
    rows = sqlraw.fetch(session, _ACCOUNT_SQL[need], {
        "t": tin_index, "y": change.tax_year, "c": need, "e": employee_id,
        "h": sha256_hex(token)})
    row = rows[0] if rows else None
    if row is None:  # pragma: no cover - authenticate just found the session
        return _Account(None, False, None, None, None, None, 0, 0)
    holds = 0
    if row[4] is not None and change.tc == "571":
        holds = int(session.execute(text(
            "SELECT COALESCE(SUM(CASE WHEN tc = '570' THEN 1 WHEN tc = '571' THEN -1 ELSE 0 END), 0)"
            " FROM txn WHERE module_id = :m"), {"m": row[4]}).scalar() or 0)
    return _Account(int(row[0]), row[1] is not None, row[2],
                    None if row[3] is None else int(row[3]), row[4], row[5], int(row[6]), holds)


def _refunds(session: Session, taxpayer_id: int) -> tuple[bool, tuple[date, ...]]:
    """(a refund claimed and not yet issued, the dates of issued refunds TC 846)."""
    unissued = session.execute(text(
        "SELECT 1 FROM tax_return r WHERE r.taxpayer_id = :p AND r.refund_cents > 0"
        " AND NOT EXISTS (SELECT 1 FROM tax_module m JOIN txn x ON x.module_id = m.id"
        "  WHERE m.taxpayer_id = :p AND m.tax_year = r.tax_year AND x.tc = '846')"
        " LIMIT 1"), {"p": taxpayer_id}).first() is not None
    issued = session.execute(text(
        "SELECT x.txn_date FROM txn x JOIN tax_module m ON m.id = x.module_id"
        " WHERE m.taxpayer_id = :p AND x.tc = '846'"), {"p": taxpayer_id}).scalars().all()
    days = tuple(d if isinstance(d, date) else date.fromisoformat(str(d)[:10]) for d in issued)
    return unissued, days


_EARLIER_SQL = (
    "SELECT id, module_id, amount_cents, status FROM adjustment_request"
    " WHERE taxpayer_id = :tp AND command = 'ADJ54' AND amount_cents IS NOT NULL"
    " AND status IN ('applied', 'pending_approval') AND requested_at >= :since"
    " AND (CASE WHEN kind = 'reversal' THEN (CASE tc WHEN '290' THEN '291' WHEN '291' THEN '290'"
    " END) ELSE tc END) = :tc ORDER BY id")
_EARLIER_TX = _EARLIER_SQL.replace(":tp", "?").replace(":since", "?").replace(":tc", "?")
_AMOUNT_CODES = frozenset(str(trigger) for trigger, _ in rules.AMOUNT_TRIGGERS.values())


def _window_start(app: App) -> datetime:
    return app.clock.now() - timedelta(days=thresholds_for(app).window_days)


def _earlier_rows(rows: Any) -> tuple[rules.Earlier, ...]:
    return tuple(rules.Earlier(int(r[0]), None if r[1] is None else int(r[1]), int(r[2]),
                               str(r[3])) for r in rows)


def _earlier(session: Session, app: App, taxpayer_id: int, tc: str) -> tuple[rules.Earlier, ...]:
    """The applied and pending changes of effective ``tc`` on the taxpayer in the window."""
    return _earlier_rows(session.execute(text(_EARLIER_SQL), {
        "tp": taxpayer_id, "since": _param_dt(app, _window_start(app)), "tc": tc}).all())


def _earlier_locked(tx: Tx, app: App, taxpayer_id: int, tc: str) -> tuple[rules.Earlier, ...]:
    """The same inside the write transaction, after taking the taxpayer's lock (PostgreSQL;
    SQLite holds its write lock already): a concurrent change is either committed and seen
    here, or waits for this transaction and then sees this change."""
    if tx.pg:
        tx.one("SELECT pg_advisory_xact_lock(?, ?)", (ADJ_LOCK_CLASS, taxpayer_id))
    return _earlier_rows(tx.all(_EARLIER_TX, (taxpayer_id, tx.p(_window_start(app)), tc)))


def _account_facts(session: Session, app: App, facts: pip.Facts, account: _Account,
                   change: rules.Change, reversal: bool) -> rules.AccountFacts:
    unissued = False
    issued: tuple[date, ...] = ()
    if change.address is not None and account.taxpayer_id is not None:
        unissued, issued = _refunds(session, account.taxpayer_id)
    tc = rules.effective_tc(change, reversal)
    earlier: tuple[rules.Earlier, ...] = ()
    if tc in rules.AMOUNT_TRIGGERS and account.taxpayer_id is not None:
        earlier = _earlier(session, app, account.taxpayer_id, tc)
    return rules.AccountFacts(
        high_profile=facts.high_profile,
        employee_account=facts.target_is_employee or "employee" in facts.markers,
        unissued_refund=unissued, refund_issue_dates=issued,
        module_id=account.module_id, earlier=earlier,
    )


class _CrossedMeanwhile(Exception):
    """Inside the write transaction the sum reached a threshold (a concurrent change)."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("threshold reached meanwhile")
        self.reasons = reasons


def _recheck(tx: Tx, app: App, change: rules.Change, acct: rules.AccountFacts,
             target: post.Target, reversal: bool) -> list[dict[str, Any]] | None:
    """The amount-threshold reasons read again under the lock (None: not an amount change)."""
    tc = rules.effective_tc(change, reversal)
    if tc not in rules.AMOUNT_TRIGGERS or target.module_id is None:
        return None
    earlier = _earlier_locked(tx, app, target.taxpayer_id, tc)
    return rules.threshold_reasons(change, replace(acct, earlier=earlier), thresholds_for(app),
                                   reversal=reversal)


# ----------------------------------------------------------------------------- request


def request(app: App, *, token: str | None, tin: str, command: str, case: str | None = None,
            contact: str | None = None, reason: str | None = None, interface: str,
            origin: str | None = None, address: dict[str, Any] | None = None,
            **fields: Any) -> AdjustmentResult:
    """Request one adjustment as the employee behind ``token``; apply it or leave it pending.

    ``address`` is ENREQ's new address (the import format's address object); ``origin`` is
    the client's network address for the audit entry. ``fields``: name, tax_year, tc,
    amount (dollars), action_code, date, base_version. Callers: cli/adjust.py,
    api/adjustments.py. Raises ValidationFailed (bad input, nothing stored or recorded),
    AccessDenied (recorded), NotFound, VersionConflict (recorded, 409).
    """
    case, contact, reason = _screened(case, contact, reason)
    canonical = _canonical_tin(tin)
    today = app.clock.now().date()
    body = {**fields, "reason": reason}
    if address is not None:
        body["address"] = address
    try:
        change = rules.validate(command, body, today=today)
    except ValueError as exc:
        raise ValidationFailed(str(exc).split("; ")) from None
    call = _Call(app, "request", interface, origin, command=change.command,
                 pseudonym=app.keyring.pseudonym(canonical), tax_year=change.tax_year,
                 tc=change.tc, tin=canonical,
                 detail={"case": case, "contact": contact, "reason_given": True})
    employee = _signed_in(app, call, token)
    # an anonymized principal names no taxpayer, from any interface (the CLI included)
    from idrs.grants.anonymized import check_principal

    check_principal(app, employee, "tin", interface=interface, address=origin)
    return _submit(app, call, employee, token or "", canonical, change, case, contact,
                   reversal=None)


def _submit(app: App, call: _Call, employee: Employee, token: str, canonical: str,
            change: rules.Change, case: str | None, contact: str | None,
            reversal: dict[str, Any] | None) -> AdjustmentResult:
    """Decide, then apply or leave pending (shared by request and reverse)."""
    tin_index = pip.tin_index_of(app, canonical)
    with Session(app.engine) as s:
        facts = pip.gather(s, app, employee=employee, command=change.command, tin=canonical,
                           case=case, contact=contact, reason=change.reason)
        verdict = policy.decide(facts)
        account = _account(s, token=token, employee_id=employee.id, tin_index=tin_index,
                           change=change)
        reasons = list(verdict.reasons) if not verdict.allowed else []
        if not account.prerequisite_found:
            reasons.append(Reason("PREREQUISITE_RESEARCH", _PREREQ_MSG[change.command]))
        if reasons:
            raise call.deny(employee.seid, reasons, verdict)
        target, current = _check_account(call, employee, account, change, verdict, reversal)
        acct = _account_facts(s, app, facts, account, change, reversal is not None)
    triggers = rules.two_person_triggers(change, acct, thresholds_for(app), app.clock.now().date(),
                                         reversal=reversal is not None)
    seen = account.version_seen
    base = change.base_version if change.base_version is not None else (
        seen if seen is not None else current)
    sid = account.signin_session_id or 0
    call.detail.update(basis=verdict.basis, base_version=base)
    if triggers:
        return _leave_pending(app, call, employee, sid, change, target, base, triggers,
                              case, contact, verdict, reversal, acct)
    try:
        return _apply_now(app, call, employee, sid, change, target, base, case, contact,
                          verdict, reversal, acct)
    except _CrossedMeanwhile as exc:  # rolled back: nothing written; it waits instead
        call.adjustment_id = None
        return _leave_pending(app, call, employee, sid, change, target, base,
                              [rules.Trigger(r["code"]) for r in exc.reasons], case, contact,
                              verdict, reversal, acct)


def _check_account(call: _Call, employee: Employee, account: _Account, change: rules.Change,
                   verdict: Verdict, reversal: dict[str, Any] | None) -> tuple[post.Target, int]:
    """Allowed, but the account or module cannot take this change: recorded, then raised.

    Otherwise the target of the change and the current version of what it changes (the
    entity's, or the tax module's).
    """
    if account.taxpayer_id is None:
        call.record(employee.seid, "not_found", [], verdict)
        raise NotFound("no taxpayer with that TIN")
    enreq = change.command == CommandCode.ENREQ
    current = account.entity_version if enreq else account.module_version
    # the module's version is NULL exactly when there is no module (same LEFT JOIN row)
    if current is None or (not enreq and account.module_id is None):
        _invalid(call, employee, verdict,
                 f"tax_year: no tax module for {change.tax_year} on this account")
    if reversal is None and change.tc == "571" and account.open_holds <= 0:
        _invalid(call, employee, verdict,
                 f"tc: 571 releases a refund hold and module {change.tax_year} has none")
    return post.Target(account.taxpayer_id, account.module_id, change.tax_year), current


def _invalid(call: _Call, employee: Employee, verdict: Verdict, problem: str) -> NoReturn:
    """Record the refusal (naming the field only), then raise it."""
    call.record(employee.seid, "invalid", [], verdict, problem=problem.split(":")[0])
    raise ValidationFailed([problem])


def _request_row(call: _Call, employee: Employee, sid: int, change: rules.Change,
                 target: post.Target, base: int, status: str, case: str | None,
                 contact: str | None, now: datetime, tin_index: bytes,
                 reversal: dict[str, Any] | None, requires: list[str],
                 expires: datetime | None) -> dict[str, Any]:
    identity = {k: getattr(change, k) for k in ("address", "name") if getattr(change, k)}
    return {
        "command": change.command, "kind": "reversal" if reversal else "change",
        "reverses_id": reversal["id"] if reversal else None,
        "requester_id": employee.id, "requester_seid": employee.seid, "signin_session_id": sid,
        "case_id": case, "contact_id": contact, "reason": change.reason, "tin_index": tin_index,
        "taxpayer_id": target.taxpayer_id, "module_id": target.module_id,
        "tax_year": change.tax_year, "tc": change.tc, "amount_cents": change.amount_cents,
        "action_code": change.action_code, "effective_date": change.effective_date,
        "payload": json.dumps(change.public_payload(), sort_keys=True),
        "payload_enc": post.encrypt_payload(call.app.keyring, identity),
        "base_version": base, "status": status, "requires": ",".join(requires),
        "requested_at": now, "expires_at": expires,
    }


def _leave_pending(app: App, call: _Call, employee: Employee, sid: int, change: rules.Change,
                   target: post.Target, base: int, triggers: list[rules.Trigger],
                   case: str | None, contact: str | None, verdict: Verdict,
                   reversal: dict[str, Any] | None,
                   acct: rules.AccountFacts | None = None) -> AdjustmentResult:
    now = app.clock.now()
    expires = now + timedelta(hours=thresholds_for(app).pending_hours)
    tin_index = pip.tin_index_of(app, call.tin or "")
    acct = acct or rules.AccountFacts(module_id=target.module_id)
    # what the read before the transaction found (kept if the sum fell meanwhile)
    pre = rules.threshold_reasons(change, acct, thresholds_for(app), reversal=reversal is not None)

    def work(tx: Tx) -> tuple[tuple[int, list[str], list[dict[str, Any]]],
                                                   dict[str, Any]]:
        post.check_version(tx, target, change.command, base)
        # read again under the taxpayer's lock: the reasons name every earlier change, and a
        # concurrent change of the same kind sees this one once it commits
        reasons = _recheck(tx, app, change, acct, target, reversal is not None) or pre
        others = [str(t) for t in triggers if str(t) not in _AMOUNT_CODES]
        requires = [TWO_PERSON, *[r["code"] for r in reasons], *others]
        row = _request_row(call, employee, sid, change, target, base, PENDING, case, contact,
                           now, tin_index, reversal, requires, expires)
        if reasons:
            row["payload"] = json.dumps({**change.public_payload(), "thresholds": reasons},
                                        sort_keys=True)
        adj_id = tx.insert("adjustment_request", row)
        call.adjustment_id = adj_id
        counted = {r["code"]: {"scope": r["scope"], "total_cents": r["total_cents"],
                               "with": r["with"]} for r in reasons}
        return (adj_id, requires, reasons), call.entry(
            employee.seid, PENDING, [], verdict, requires=requires,
            expires_at=expires.isoformat(), thresholds=counted or None)

    (adj_id, requires, reasons), idx = _committed(
        app, call, work, employee.seid,
        answer=lambda r: AdjustmentResult(r[0], PENDING, -1, r[1], reasons=r[2]))
    return AdjustmentResult(adj_id, PENDING, idx, requires, reasons=reasons)


def _apply_now(app: App, call: _Call, employee: Employee, sid: int, change: rules.Change,
               target: post.Target, base: int, case: str | None, contact: str | None,
               verdict: Verdict, reversal: dict[str, Any] | None,
               acct: rules.AccountFacts | None = None) -> AdjustmentResult:
    now = app.clock.now()
    tin_index = pip.tin_index_of(app, call.tin or "")
    acct = acct or rules.AccountFacts(module_id=target.module_id)

    def work(tx: Tx) -> tuple[tuple[int, int], dict[str, Any]]:
        crossed = _recheck(tx, app, change, acct, target, reversal is not None)
        if crossed:  # before any write: the transaction rolls back empty
            raise _CrossedMeanwhile(crossed)
        row = _request_row(call, employee, sid, change, target, base, APPLIED, case, contact,
                           now, tin_index, reversal, [], None)
        if tx.pg and change.command != CommandCode.ENREQ and reversal is None:
            # the hot path in ONE statement (version check, request, transaction, posting, trail)
            adj_id, version = post.apply_txn_pg(tx, row, target, base, now, employee.seid,
                                                case, sid, employee.id, tin_index)
            call.adjustment_id = adj_id
            return (adj_id, version), call.entry(employee.seid, APPLIED, [], verdict,
                                                 new_version=version)
        version = _bump(tx, change, target, base)  # first: a stale base fails before any write
        row.update(decided_at=now, applied_version=version)
        adj_id = tx.insert("adjustment_request", row)
        call.adjustment_id = adj_id
        _post_change(tx, adj_id, change, target, now, employee.seid, None, case, reversal)
        _follow_trail(tx, sid, employee.id, tin_index, change, version)
        return (adj_id, version), call.entry(employee.seid, APPLIED, [], verdict,
                                             new_version=version)

    (adj_id, version), idx = _committed(
        app, call, work, employee.seid,
        answer=lambda r: AdjustmentResult(r[0], APPLIED, -1, [], r[1]))
    return AdjustmentResult(adj_id, APPLIED, idx, [], version)


def _follow_trail(tx: Tx, sid: int, employee_id: int, tin_index: bytes, change: rules.Change,
                  version: int) -> None:
    """The requester has seen the result of their own change: their trail follows it."""
    need = trail.PREREQUISITE[change.command]
    sql = ("UPDATE research_trail SET version_seen = ? WHERE id = (SELECT MAX(id) FROM"
           " research_trail WHERE signin_session_id = ? AND employee_id = ? AND tin_index = ?"
           " AND command = ?")
    params: list[Any] = [version, sid, employee_id, tin_index, need]
    if need == CommandCode.TXMOD:
        sql += " AND tax_year = ?"
        params.append(change.tax_year)
    tx.execute(sql + ")", params)


def _bump(tx: Tx, change: rules.Change, target: post.Target, base: int) -> int:
    """The optimistic-concurrency step: the new version, or VersionConflict on a stale base."""
    if change.command == CommandCode.ENREQ:
        return post.bump_entity(tx, target.taxpayer_id, base)
    return post.bump_module(tx, target.module_id, base)  # type: ignore[arg-type]


def _post_change(tx: Tx, adj_id: int, change: rules.Change, target: post.Target, now: datetime,
                 seid: str, approver: str | None, case: str | None,
                 reversal: dict[str, Any] | None) -> None:
    """Write the postings of an applied change (after :func:`_bump`)."""
    common = dict(adjustment_id=adj_id, taxpayer_id=target.taxpayer_id, now=now, seid=seid,
                  approver=approver, case_id=case)
    if change.command == CommandCode.ENREQ:
        if change.address is not None:
            rid = post.post_address(tx, target.taxpayer_id, change.address, change.effective_date)
            post.posting(tx, kind="address", address_record_id=rid, **common)  # type: ignore[arg-type]
        if change.name is not None:
            hid = post.post_name(tx, target.taxpayer_id, change.name, change.effective_date, now,
                                 adj_id, "reversal" if reversal else "adjustment")
            post.posting(tx, kind="name", name_history_id=hid, **common)  # type: ignore[arg-type]
        return
    if reversal is not None:
        for txn_id, tc, amount, action in reversal["txns"]:
            tid = post.post_txn(tx, module_id=target.module_id, tc=rules.REVERSING_TC[tc],  # type: ignore[arg-type]
                                when=change.effective_date, amount_cents=amount,
                                action_code=action, now=now, seid=seid, reverses_id=txn_id)
            post.posting(tx, kind="txn", txn_id=tid, **common)  # type: ignore[arg-type]
        return
    tid = post.post_txn(tx, module_id=target.module_id, tc=change.tc,  # type: ignore[arg-type]
                        when=change.effective_date, amount_cents=change.amount_cents or 0,
                        action_code=change.action_code, now=now, seid=seid)
    post.posting(tx, kind="txn", txn_id=tid, **common)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- approval

APPROVAL_AUTHORITY = Reason("APPROVAL_AUTHORITY_REQUIRED",
                            "only an employee with the approval authority (manager) may do this")
SELF_APPROVAL = Reason("SELF_APPROVAL", "you requested this change; another manager must decide it")


def _load(s: Session, app: App, call: _Call, actor: str, adjustment_id: int) -> Any:
    from idrs.adjustments.models import AdjustmentRequest
    from idrs.masterfile.models import Taxpayer

    row = s.get(AdjustmentRequest, adjustment_id)
    if row is None:
        call.record(actor, "not_found", [])
        raise NotFound(f"no adjustment {adjustment_id}")
    tp = s.get(Taxpayer, row.taxpayer_id)
    call.tin = app.keyring.decrypt(tp.tin_enc, "taxpayer.tin")  # type: ignore[union-attr]
    call.pseudonym = app.keyring.pseudonym(call.tin)
    call.command, call.tax_year, call.tc = row.command, row.tax_year, row.tc
    call.detail.update(case=row.case_id, requester=row.requester_seid)
    return row


def approver_reasons(s: Session, app: App, approver: Employee, row: Any,
                     tin: str) -> tuple[list[Reason], Verdict | None]:
    """Every reason ``approver`` may not decide ``row`` (empty: they may).

    The access decision runs for the approver on the taxpayer with the request's command
    treated as in their profile and the request's case as their basis: the profile and need
    to know belong to the requester, every conflict / protected / sensitive rule applies to
    the approver as to anyone opening the account. Then the approver must not be conflicted
    with the requester (the requester's own TIN in the approver's conflict set).
    """
    from idrs.people.models import Employee as Emp

    reasons: list[Reason] = []
    if not (approver.role_set & ADJUSTMENT_APPROVERS):
        reasons.append(APPROVAL_AUTHORITY)
    if approver.id == row.requester_id:
        reasons.append(SELF_APPROVAL)
    facts = pip.gather(s, app, employee=approver, command=row.command, tin=tin)
    as_basis = replace(facts, profile=facts.profile | {row.command},
                       open_cases=(row.case_id or f"adjustment:{row.id}",), case=None, contact=None)
    verdict = policy.decide(as_basis)
    if not verdict.allowed:
        reasons.extend(verdict.reasons)
    requester = s.get(Emp, row.requester_id)
    if requester is not None and requester.tin_index is not None and approver.id != requester.id:
        # computed live (an approval is rare; the stored index may lag a fresh relationship)
        from idrs.access.conflicts import conflicts_of

        mine = conflicts_of(s, app, employee_id=approver.id, tin_index=approver.tin_index)
        for code in sorted(mine.codes_for(requester.tin_index)):
            reasons.append(Reason(code, f"you are conflicted with the requester ({code}); "
                                        "another manager must decide it"))
    return reasons, verdict


def _change_of(app: App, row: Any) -> rules.Change:
    identity = post.decrypt_payload(app.keyring, row.payload_enc)
    eff = row.effective_date if isinstance(row.effective_date, date) else date.fromisoformat(
        str(row.effective_date))
    return rules.Change(command=row.command, reason=row.reason, effective_date=eff,
                        tax_year=row.tax_year, tc=row.tc, amount_cents=row.amount_cents,
                        action_code=row.action_code, address=identity.get("address"),
                        name=identity.get("name"), base_version=row.base_version)


def _reversal_txns(s: Session, original_id: int) -> list[tuple[int, str, int, str | None]]:
    rows = s.execute(text(
        "SELECT x.id, x.tc, x.amount_cents, x.action_code FROM adjustment_posting p"
        " JOIN txn x ON x.id = p.txn_id WHERE p.adjustment_id = :a AND p.kind = 'txn'"
        " ORDER BY x.id"), {"a": original_id}).all()
    return [(int(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def approve(app: App, *, token: str | None, adjustment_id: int, note: str | None = None,
            interface: str, origin: str | None = None) -> AdjustmentResult:
    """Approve a pending request and apply it (change, postings, entry: one transaction).

    Callers: cli/adjust.py, api/adjustments.py. AccessDenied (APPROVAL_AUTHORITY_REQUIRED,
    SELF_APPROVAL, conflicts; recorded), NotFound, Conflict 409 (already decided, expired,
    or a VersionConflict: the account changed since the request — it stays pending).
    """
    return _decide(app, token, adjustment_id, note, interface, origin, approve_it=True)


def reject(app: App, *, token: str | None, adjustment_id: int, note: str | None = None,
           interface: str, origin: str | None = None) -> AdjustmentResult:
    """Reject a pending request (same authority checks as approval). Records one entry."""
    return _decide(app, token, adjustment_id, note, interface, origin, approve_it=False)


def _decide(app: App, token: str | None, adjustment_id: int, note: str | None, interface: str,
            origin: str | None, *, approve_it: bool) -> AdjustmentResult:
    if note is not None and len(note) > rules.MAX_REASON:
        raise ValidationFailed([f"note: at most {rules.MAX_REASON} characters"])
    screen_text(note, "note")
    call = _Call(app, "approve" if approve_it else "reject", interface, origin,
                 adjustment_id=adjustment_id)
    approver = _signed_in(app, call, token)
    with Session(app.engine) as s:
        row = _load(s, app, call, approver.seid, adjustment_id)
        reasons, verdict = approver_reasons(s, app, approver, row, call.tin or "")
        if reasons:
            raise call.deny(approver.seid, reasons, verdict)
        reversal = None
        if row.kind == "reversal" and approve_it:
            reversal = {"id": row.reverses_id, "txns": _reversal_txns(s, row.reverses_id)}
    now = app.clock.now()
    if row.status != PENDING:
        call.record(approver.seid, "invalid", [], verdict, status=row.status)
        raise Conflict(f"adjustment {adjustment_id} is already {row.status}")
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        _expire_one(app, call, approver.seid, row.id, verdict)
        raise Conflict(f"adjustment {adjustment_id} expired at {as_utc(row.expires_at).isoformat()}")
    status = APPLIED if approve_it else REJECTED

    def work(tx: Tx) -> tuple[int | None, dict[str, Any]]:
        change = _change_of(app, row)
        target = post.Target(row.taxpayer_id, row.module_id, row.tax_year)
        version = _bump(tx, change, target, row.base_version) if approve_it else None
        n = tx.execute(
            "UPDATE adjustment_request SET status = ?, approver_id = ?, approver_seid = ?,"
            " decided_at = ?, decision_note = ?, applied_version = ? WHERE id = ? AND status = ?",
            (status, approver.id, approver.seid, tx.p(now), note, version, row.id, PENDING))
        if n != 1:
            raise Conflict(f"adjustment {adjustment_id} was decided meanwhile")
        if approve_it:
            _post_change(tx, row.id, change, target, now, row.requester_seid, approver.seid,
                         row.case_id, reversal)
        return version, call.entry(approver.seid, status, [], verdict, new_version=version,
                                   note_given=bool(note))

    version, idx = _committed(app, call, work, approver.seid, "decision_audit_index",
                              answer=lambda v: AdjustmentResult(row.id, status, -1, [], v))
    return AdjustmentResult(row.id, status, idx, [], version)


def _expire_one(app: App, call: _Call, actor: str, adjustment_id: int,
                verdict: Verdict | None = None) -> int:
    """Mark one request expired with its entry (one transaction); returns the entry's index."""
    call.adjustment_id = adjustment_id

    def work(tx: Tx) -> tuple[int, dict[str, Any]]:
        n = tx.execute("UPDATE adjustment_request SET status = ?, decided_at = ?"
                       " WHERE id = ? AND status = ?",
                       (EXPIRED, tx.p(app.clock.now()), adjustment_id, PENDING))
        return n, call.entry(actor, EXPIRED, [], verdict)

    _n, idx = _committed(app, call, work, actor, "decision_audit_index")
    return idx


def expire_due(app: App) -> int:
    """Expire every pending request past its time (each with an ``expire`` entry by system).

    Callers: :func:`listing` (so approvers never see a stale request), operators' cron.
    """
    from idrs.adjustments.models import AdjustmentRequest
    from idrs.masterfile.models import Taxpayer

    now = app.clock.now()
    with Session(app.engine) as s:
        rows = s.execute(
            text("SELECT a.id, a.command, a.tax_year, a.tc, t.tin_enc FROM adjustment_request a"
                 " JOIN taxpayer t ON t.id = a.taxpayer_id"
                 " WHERE a.status = :p AND a.expires_at <= :n"),
            {"p": PENDING, "n": _param_dt(app, now)}).all()
    del AdjustmentRequest, Taxpayer
    for adj_id, command, year, tc, tin_enc in rows:
        tin = app.keyring.decrypt(bytes(tin_enc), "taxpayer.tin")
        call = _Call(app, "expire", "system", None, command=command, tax_year=year, tc=tc,
                     pseudonym=app.keyring.pseudonym(tin))
        _expire_one(app, call, "system", int(adj_id))
    return len(rows)


def _param_dt(app: App, when: datetime) -> Any:
    return db_datetime(app.engine.dialect.name, when)


def listing(app: App, *, token: str | None, status: str = PENDING, interface: str,
            origin: str | None = None) -> dict[str, Any]:
    """Requests with ``status`` (default pending), for approvers. Records one ``list`` entry.

    Shows no taxpayer identity: the taxpayer's pseudonym, the case, the command and amounts.
    """
    from idrs.adjustments.models import STATUSES

    status = PENDING if status in ("pending", None) else status
    if status not in STATUSES:
        raise ValidationFailed([f"status: one of pending, {', '.join(STATUSES[1:])}"])
    call = _Call(app, "list", interface, origin, detail={"status": status})
    emp = _signed_in(app, call, token)
    if not (emp.role_set & ADJUSTMENT_APPROVERS):
        raise call.deny(emp.seid, [APPROVAL_AUTHORITY])
    if status == PENDING:
        expire_due(app)
    with Session(app.engine) as s:
        rows = s.execute(text(
            "SELECT a.id, a.command, a.kind, a.status, a.tax_year, a.tc, a.amount_cents,"
            " a.action_code, a.requester_seid, a.case_id, a.requires, a.requested_at,"
            " a.expires_at, a.payload, t.tin_enc, a.reverses_id FROM adjustment_request a"
            " JOIN taxpayer t ON t.id = a.taxpayer_id WHERE a.status = :st"
            " ORDER BY a.requested_at, a.id LIMIT 1000"), {"st": status}).all()
    items = [_item(app, r, emp.seid) for r in rows]
    idx = call.record(emp.seid, "allow", [], count=len(items))
    return {"adjustments": items, "audit_index": idx}


def pending(app: App, *, token: str | None, interface: str,
            origin: str | None = None) -> dict[str, Any]:
    """The pending requests an approver may decide (see :func:`listing`)."""
    return listing(app, token=token, status=PENDING, interface=interface, origin=origin)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return as_utc(datetime.fromisoformat(str(value))).isoformat()


def _item(app: App, r: Any, me: str) -> dict[str, Any]:
    from idrs.masterfile.commands import money

    tin = app.keyring.decrypt(bytes(r[14]), "taxpayer.tin")
    return {
        "adjustment_id": int(r[0]), "command": r[1], "kind": r[2], "status": r[3],
        "taxpayer": app.keyring.pseudonym(tin), "tax_year": r[4], "tc": r[5],
        "amount": money(r[6]), "action_code": r[7], "requester": r[8], "case": r[9],
        "requires": [x for x in (r[10] or "").split(",") if x],
        "requested_at": _iso(r[11]), "expires_at": _iso(r[12]),
        "changes": json.loads(r[13] or "{}").get("changes", []),
        "reasons": json.loads(r[13] or "{}").get("thresholds", []),
        "reverses": r[15], "own": r[8] == me,
    }


# ----------------------------------------------------------------------------- reversal


def reverse(app: App, *, token: str | None, adjustment_id: int, case: str | None = None,
            contact: str | None = None, reason: str | None = None, interface: str,
            origin: str | None = None, base_version: int | None = None) -> AdjustmentResult:
    """Undo an applied adjustment by a reversing posting (never an edit or a delete).

    A reversal is itself an adjustment request with the original's command: the same access
    decision, the same prerequisite research, two-person triggers by its effect (reversing an
    abatement is an increase; reversing a hold is a release; restoring an address near a
    pending refund waits for approval). Conflict if the original is not applied or already
    reversed (or a reversal of it is pending).
    """
    case, contact, reason = _screened(case, contact, reason)
    text_reason, problems = rules._text(reason, "reason", rules.MAX_REASON, True)
    if problems:
        raise ValidationFailed(problems)
    call = _Call(app, "reverse", interface, origin, adjustment_id=adjustment_id,
                 detail={"case": case, "contact": contact, "reason_given": True,
                         "reverses": adjustment_id})
    employee = _signed_in(app, call, token)
    with Session(app.engine) as s:
        row = _load(s, app, call, employee.seid, adjustment_id)
        call.adjustment_id = None
        problem = _reversal_problem(s, row)
        if problem:
            call.record(employee.seid, "invalid", [], problem=problem)
            raise Conflict(f"adjustment {adjustment_id} cannot be reversed: {problem}")
        change, reversal = _reversal_change(s, app, row, text_reason, base_version)
    return _submit(app, call, employee, token or "", call.tin or "", change, case, contact,
                   reversal)


def _reversal_problem(s: Session, row: Any) -> str | None:
    if row.kind == "reversal":
        return "it is itself a reversal (post a new adjustment instead)"
    if row.status != APPLIED:
        return f"it is {row.status}, not applied"
    dup = s.execute(text("SELECT 1 FROM adjustment_request WHERE reverses_id = :a AND status IN"
                         " (:p, :ap) LIMIT 1"), {"a": row.id, "p": PENDING, "ap": APPLIED}).first()
    return "it is already reversed (or a reversal is pending)" if dup else None


def _reversal_change(s: Session, app: App, row: Any, reason: str,
                     base_version: int | None) -> tuple[rules.Change, dict[str, Any]]:
    today = app.clock.now().date()
    reversal: dict[str, Any] = {"id": row.id, "txns": []}
    if row.command != CommandCode.ENREQ:
        reversal["txns"] = _reversal_txns(s, row.id)
        change = rules.Change(command=row.command, reason=reason, effective_date=today,
                              tax_year=row.tax_year, tc=row.tc, amount_cents=row.amount_cents,
                              action_code=row.action_code, base_version=base_version)
        return change, reversal
    address, name = _previous_identity(s, row)
    change = rules.Change(command=CommandCode.ENREQ, reason=reason, effective_date=today, address=address,
                          name=name, base_version=base_version)
    return change, reversal


def _previous_identity(s: Session, row: Any) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """The entity address and name in force before ``row`` posted its own."""
    address = name = None
    for kind, ref in s.execute(text(
            "SELECT kind, COALESCE(address_record_id, name_history_id) FROM adjustment_posting"
            " WHERE adjustment_id = :a"), {"a": row.id}).all():
        if kind == "address":
            prev = s.execute(text(
                "SELECT street, city, state, zip FROM address_record WHERE taxpayer_id = :p"
                " AND source = 'entity' AND id < :r ORDER BY valid_from DESC, id DESC LIMIT 1"),
                {"p": row.taxpayer_id, "r": ref}).first()
            if prev is None:
                raise Conflict("no earlier entity address to restore")
            address = dict(zip(("street", "city", "state", "zip"), prev, strict=True))
        elif kind == "name":
            prev = s.execute(text(
                "SELECT first_name, middle_name, last_name, suffix FROM taxpayer_name_history"
                " WHERE taxpayer_id = :p AND id < :h ORDER BY id DESC LIMIT 1"),
                {"p": row.taxpayer_id, "h": ref}).first()
            if prev is None:  # pragma: no cover - the first change always keeps the original
                raise Conflict("no earlier name to restore")
            name = dict(zip(("first", "middle", "last", "suffix"), prev, strict=True))
    return address, name
