"""What the adjustment service reads: the account behind a request (sign-in session,
prerequisite research, versions), refunds and the earlier changes the amount thresholds sum
(read again under the taxpayer's lock inside the write transaction), and a stored request
with what an approval or a reversal needs of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from idrs.access import facts as pip
from idrs.access import sqlraw
from idrs.adjustments import apply as post
from idrs.adjustments import rules, trail
from idrs.adjustments.calls import Call, thresholds_for
from idrs.adjustments.tx import Tx
from idrs.context import App
from idrs.crypto import sha256_hex
from idrs.db import db_datetime
from idrs.errors import NotFound
from idrs.vocabulary import CommandCode

#: PostgreSQL advisory lock class (first int4 key; the second is the taxpayer id) that
#: serializes the amount-threshold sums of one taxpayer ("ADJT"; the two-int4 key space is
#: distinct from the audit log's bigint key)
ADJ_LOCK_CLASS = 0x41444A54


@dataclass(frozen=True)
class Account:
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


def read_account(session: Session, *, token: str, employee_id: int, tin_index: bytes,
                 change: rules.Change) -> Account:
    """One query: the sign-in session, the latest prerequisite research in it (and the version
    it saw), the taxpayer, the module of the year and both versions. (+1 query for TC 571.)"""
    need = trail.PREREQUISITE[change.command]
    # straight to the driver on the session's connection (the hot path of every adjustment)
    rows = sqlraw.fetch(session, _ACCOUNT_SQL[need], {
        "t": tin_index, "y": change.tax_year, "c": need, "e": employee_id,
        "h": sha256_hex(token)})
    row = rows[0] if rows else None
    if row is None:  # pragma: no cover - authenticate just found the session
        return Account(None, False, None, None, None, None, 0, 0)
    holds = 0
    if row[4] is not None and change.tc == "571":
        holds = int(session.execute(text(
            "SELECT COALESCE(SUM(CASE WHEN tc = '570' THEN 1 WHEN tc = '571' THEN -1 ELSE 0 END), 0)"
            " FROM txn WHERE module_id = :m"), {"m": row[4]}).scalar() or 0)
    return Account(int(row[0]), row[1] is not None, row[2],
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
AMOUNT_CODES = frozenset(str(trigger) for trigger, _ in rules.AMOUNT_TRIGGERS.values())


def _window_start(app: App) -> datetime:
    return app.clock.now() - timedelta(days=thresholds_for(app).window_days)


def _earlier_rows(rows: Any) -> tuple[rules.Earlier, ...]:
    return tuple(rules.Earlier(int(r[0]), None if r[1] is None else int(r[1]), int(r[2]),
                               str(r[3])) for r in rows)


def _earlier(session: Session, app: App, taxpayer_id: int, tc: str) -> tuple[rules.Earlier, ...]:
    """The applied and pending changes of effective ``tc`` on the taxpayer in the window."""
    return _earlier_rows(session.execute(text(_EARLIER_SQL), {
        "tp": taxpayer_id, "since": param_dt(app, _window_start(app)), "tc": tc}).all())


def _earlier_locked(tx: Tx, app: App, taxpayer_id: int, tc: str) -> tuple[rules.Earlier, ...]:
    """The same inside the write transaction, after taking the taxpayer's lock (PostgreSQL;
    SQLite holds its write lock already): a concurrent change is either committed and seen
    here, or waits for this transaction and then sees this change."""
    if tx.pg:
        tx.one("SELECT pg_advisory_xact_lock(?, ?)", (ADJ_LOCK_CLASS, taxpayer_id))
    return _earlier_rows(tx.all(_EARLIER_TX, (taxpayer_id, tx.p(_window_start(app)), tc)))


def account_facts(session: Session, app: App, facts: pip.Facts, account: Account,
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


class CrossedMeanwhile(Exception):
    """Inside the write transaction the sum reached a threshold (a concurrent change)."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("threshold reached meanwhile")
        self.reasons = reasons


def recheck(tx: Tx, app: App, change: rules.Change, acct: rules.AccountFacts,
            target: post.Target, reversal: bool) -> list[dict[str, Any]] | None:
    """The amount-threshold reasons read again under the lock (None: not an amount change)."""
    tc = rules.effective_tc(change, reversal)
    if tc not in rules.AMOUNT_TRIGGERS or target.module_id is None:
        return None
    earlier = _earlier_locked(tx, app, target.taxpayer_id, tc)
    return rules.threshold_reasons(change, replace(acct, earlier=earlier), thresholds_for(app),
                                   reversal=reversal)


def load_request(s: Session, app: App, call: Call, actor: str, adjustment_id: int) -> Any:
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


def change_of(app: App, row: Any) -> rules.Change:
    identity = post.decrypt_payload(app.keyring, row.payload_enc)
    eff = row.effective_date if isinstance(row.effective_date, date) else date.fromisoformat(
        str(row.effective_date))
    return rules.Change(command=row.command, reason=row.reason, effective_date=eff,
                        tax_year=row.tax_year, tc=row.tc, amount_cents=row.amount_cents,
                        action_code=row.action_code, address=identity.get("address"),
                        name=identity.get("name"), base_version=row.base_version)


def reversal_txns(s: Session, original_id: int) -> list[tuple[int, str, int, str | None]]:
    rows = s.execute(text(
        "SELECT x.id, x.tc, x.amount_cents, x.action_code FROM adjustment_posting p"
        " JOIN txn x ON x.id = p.txn_id WHERE p.adjustment_id = :a AND p.kind = 'txn'"
        " ORDER BY x.id"), {"a": original_id}).all()
    return [(int(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def param_dt(app: App, when: datetime) -> Any:
    return db_datetime(app.engine.dialect.name, when)
