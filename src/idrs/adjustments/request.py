"""Requesting an adjustment (ENREQ/ADJ54/REQ77): validate, decide, then apply at once or
leave it pending for a second person (see :mod:`idrs.adjustments.service`). :func:`submit`
is shared with reversals.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from idrs.access import facts as pip
from idrs.access import policy
from idrs.access.decision import Verdict
from idrs.adjustments import apply as post
from idrs.adjustments import rules, trail
from idrs.adjustments.calls import (
    Call,
    canonical_tin,
    committed,
    screened,
    signed_in,
    thresholds_for,
)
from idrs.adjustments.lookups import (
    AMOUNT_CODES,
    Account,
    CrossedMeanwhile,
    account_facts,
    read_account,
    recheck,
)
from idrs.adjustments.models import APPLIED, PENDING
from idrs.adjustments.results import AdjustmentResult
from idrs.adjustments.tx import Tx
from idrs.context import App
from idrs.errors import NotFound, Reason, ValidationFailed
from idrs.people.models import Employee
from idrs.vocabulary import CommandCode

TWO_PERSON = "TWO_PERSON_REQUIRED"
_PREREQ_MSG: dict[str, str] = {
    CommandCode.ENREQ: "run ENMOD on this TIN in this session before ENREQ",
    CommandCode.ADJ54: "run TXMOD of this tax year in this session before ADJ54",
    CommandCode.REQ77: "run TXMOD of this tax year in this session before REQ77",
}


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
    case, contact, reason = screened(case, contact, reason)
    canonical = canonical_tin(tin)
    today = app.clock.now().date()
    body = {**fields, "reason": reason}
    if address is not None:
        body["address"] = address
    try:
        change = rules.validate(command, body, today=today)
    except ValueError as exc:
        raise ValidationFailed(str(exc).split("; ")) from None
    call = Call(app, "request", interface, origin, command=change.command,
                pseudonym=app.keyring.pseudonym(canonical), tax_year=change.tax_year,
                tc=change.tc, tin=canonical,
                detail={"case": case, "contact": contact, "reason_given": True})
    employee = signed_in(app, call, token)
    # an anonymized principal names no taxpayer, from any interface (the CLI included)
    from idrs.grants.anonymized import check_principal

    check_principal(app, employee, "tin", interface=interface, address=origin)
    return submit(app, call, employee, token or "", canonical, change, case, contact,
                  reversal=None)


def submit(app: App, call: Call, employee: Employee, token: str, canonical: str,
           change: rules.Change, case: str | None, contact: str | None,
           reversal: dict[str, Any] | None) -> AdjustmentResult:
    """Decide, then apply or leave pending (shared by request and reverse)."""
    tin_index = pip.tin_index_of(app, canonical)
    with Session(app.engine) as s:
        facts = pip.gather(s, app, employee=employee, command=change.command, tin=canonical,
                           case=case, contact=contact, reason=change.reason)
        verdict = policy.decide(facts)
        account = read_account(s, token=token, employee_id=employee.id, tin_index=tin_index,
                               change=change)
        reasons = list(verdict.reasons) if not verdict.allowed else []
        if not account.prerequisite_found:
            reasons.append(Reason("PREREQUISITE_RESEARCH", _PREREQ_MSG[change.command]))
        if reasons:
            raise call.deny(employee.seid, reasons, verdict)
        target, current = _check_account(call, employee, account, change, verdict, reversal)
        acct = account_facts(s, app, facts, account, change, reversal is not None)
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
    except CrossedMeanwhile as exc:  # rolled back: nothing written; it waits instead
        call.adjustment_id = None
        return _leave_pending(app, call, employee, sid, change, target, base,
                              [rules.Trigger(r["code"]) for r in exc.reasons], case, contact,
                              verdict, reversal, acct)


def _check_account(call: Call, employee: Employee, account: Account, change: rules.Change,
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


def _invalid(call: Call, employee: Employee, verdict: Verdict, problem: str) -> NoReturn:
    """Record the refusal (naming the field only), then raise it."""
    call.record(employee.seid, "invalid", [], verdict, problem=problem.split(":")[0])
    raise ValidationFailed([problem])


def _request_row(call: Call, employee: Employee, sid: int, change: rules.Change,
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


def _leave_pending(app: App, call: Call, employee: Employee, sid: int, change: rules.Change,
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
        reasons = recheck(tx, app, change, acct, target, reversal is not None) or pre
        others = [str(t) for t in triggers if str(t) not in AMOUNT_CODES]
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

    (adj_id, requires, reasons), idx = committed(
        app, call, work, employee.seid,
        answer=lambda r: AdjustmentResult(r[0], PENDING, -1, r[1], reasons=r[2]))
    return AdjustmentResult(adj_id, PENDING, idx, requires, reasons=reasons)


def _apply_now(app: App, call: Call, employee: Employee, sid: int, change: rules.Change,
               target: post.Target, base: int, case: str | None, contact: str | None,
               verdict: Verdict, reversal: dict[str, Any] | None,
               acct: rules.AccountFacts | None = None) -> AdjustmentResult:
    now = app.clock.now()
    tin_index = pip.tin_index_of(app, call.tin or "")
    acct = acct or rules.AccountFacts(module_id=target.module_id)

    def work(tx: Tx) -> tuple[tuple[int, int], dict[str, Any]]:
        crossed = recheck(tx, app, change, acct, target, reversal is not None)
        if crossed:  # before any write: the transaction rolls back empty
            raise CrossedMeanwhile(crossed)
        row = _request_row(call, employee, sid, change, target, base, APPLIED, case, contact,
                           now, tin_index, reversal, [], None)
        if tx.pg and change.command != CommandCode.ENREQ and reversal is None:
            # the hot path in ONE statement (version check, request, transaction, posting, trail)
            adj_id, version = post.apply_txn_pg(tx, row, target, base, now, employee.seid,
                                                case, sid, employee.id, tin_index)
            call.adjustment_id = adj_id
            return (adj_id, version), call.entry(employee.seid, APPLIED, [], verdict,
                                                 new_version=version)
        version = post.bump_version(tx, change, target, base)  # first: a stale base fails before any write
        row.update(decided_at=now, applied_version=version)
        adj_id = tx.insert("adjustment_request", row)
        call.adjustment_id = adj_id
        post.post_change(tx, adj_id, change, target, now, employee.seid, None, case, reversal)
        _follow_trail(tx, sid, employee.id, tin_index, change, version)
        return (adj_id, version), call.entry(employee.seid, APPLIED, [], verdict,
                                             new_version=version)

    (adj_id, version), idx = committed(
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
