"""Approving, rejecting and expiring pending adjustment requests, and the approvers' list
(see :mod:`idrs.adjustments.service` for who may decide).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from idrs.access import facts as pip
from idrs.access import policy
from idrs.access.decision import Verdict
from idrs.adjustments import apply as post
from idrs.adjustments import rules
from idrs.adjustments.calls import Call, committed, signed_in
from idrs.adjustments.lookups import change_of, load_request, param_dt, reversal_txns
from idrs.adjustments.models import APPLIED, EXPIRED, PENDING, REJECTED
from idrs.adjustments.results import AdjustmentListing, AdjustmentResult, ListedAdjustment
from idrs.adjustments.tx import Tx
from idrs.clock import as_utc
from idrs.context import App
from idrs.errors import Conflict, Reason, ValidationFailed
from idrs.identifiers import screen_text
from idrs.people.models import Employee
from idrs.people.roles import ADJUSTMENT_APPROVERS

APPROVAL_AUTHORITY = Reason("APPROVAL_AUTHORITY_REQUIRED",
                            "only an employee with the approval authority (manager) may do this")
SELF_APPROVAL = Reason("SELF_APPROVAL", "you requested this change; another manager must decide it")


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
    call = Call(app, "approve" if approve_it else "reject", interface, origin,
                adjustment_id=adjustment_id)
    approver = signed_in(app, call, token)
    with Session(app.engine) as s:
        row = load_request(s, app, call, approver.seid, adjustment_id)
        reasons, verdict = approver_reasons(s, app, approver, row, call.tin or "")
        if reasons:
            raise call.deny(approver.seid, reasons, verdict)
        reversal = None
        if row.kind == "reversal" and approve_it:
            reversal = {"id": row.reverses_id, "txns": reversal_txns(s, row.reverses_id)}
    now = app.clock.now()
    if row.status != PENDING:
        call.record(approver.seid, "invalid", [], verdict, status=row.status)
        raise Conflict(f"adjustment {adjustment_id} is already {row.status}")
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        _expire_one(app, call, approver.seid, row.id, verdict)
        raise Conflict(f"adjustment {adjustment_id} expired at {as_utc(row.expires_at).isoformat()}")
    status = APPLIED if approve_it else REJECTED

    def work(tx: Tx) -> tuple[int | None, dict[str, Any]]:
        change = change_of(app, row)
        target = post.Target(row.taxpayer_id, row.module_id, row.tax_year)
        version = post.bump_version(tx, change, target, row.base_version) if approve_it else None
        n = tx.execute(
            "UPDATE adjustment_request SET status = ?, approver_id = ?, approver_seid = ?,"
            " decided_at = ?, decision_note = ?, applied_version = ? WHERE id = ? AND status = ?",
            (status, approver.id, approver.seid, tx.p(now), note, version, row.id, PENDING))
        if n != 1:
            raise Conflict(f"adjustment {adjustment_id} was decided meanwhile")
        if approve_it:
            post.post_change(tx, row.id, change, target, now, row.requester_seid, approver.seid,
                             row.case_id, reversal)
        return version, call.entry(approver.seid, status, [], verdict, new_version=version,
                                   note_given=bool(note))

    version, idx = committed(app, call, work, approver.seid, "decision_audit_index",
                             answer=lambda v: AdjustmentResult(row.id, status, -1, [], v))
    return AdjustmentResult(row.id, status, idx, [], version)


def _expire_one(app: App, call: Call, actor: str, adjustment_id: int,
                verdict: Verdict | None = None) -> int:
    """Mark one request expired with its entry (one transaction); returns the entry's index."""
    call.adjustment_id = adjustment_id

    def work(tx: Tx) -> tuple[int, dict[str, Any]]:
        n = tx.execute("UPDATE adjustment_request SET status = ?, decided_at = ?"
                       " WHERE id = ? AND status = ?",
                       (EXPIRED, tx.p(app.clock.now()), adjustment_id, PENDING))
        return n, call.entry(actor, EXPIRED, [], verdict)

    _n, idx = committed(app, call, work, actor, "decision_audit_index")
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
            {"p": PENDING, "n": param_dt(app, now)}).all()
    del AdjustmentRequest, Taxpayer
    for adj_id, command, year, tc, tin_enc in rows:
        tin = app.keyring.decrypt(bytes(tin_enc), "taxpayer.tin")
        call = Call(app, "expire", "system", None, command=command, tax_year=year, tc=tc,
                    pseudonym=app.keyring.pseudonym(tin))
        _expire_one(app, call, "system", int(adj_id))
    return len(rows)


def listing(app: App, *, token: str | None, status: str = PENDING, interface: str,
            origin: str | None = None) -> AdjustmentListing:
    """Requests with ``status`` (default pending), for approvers. Records one ``list`` entry.

    Shows no taxpayer identity: the taxpayer's pseudonym, the case, the command and amounts.
    """
    from idrs.adjustments.models import STATUSES

    status = PENDING if status in ("pending", None) else status
    if status not in STATUSES:
        raise ValidationFailed([f"status: one of pending, {', '.join(STATUSES[1:])}"])
    call = Call(app, "list", interface, origin, detail={"status": status})
    emp = signed_in(app, call, token)
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
    return AdjustmentListing(adjustments=items, audit_index=idx)


def pending(app: App, *, token: str | None, interface: str,
            origin: str | None = None) -> AdjustmentListing:
    """The pending requests an approver may decide (see :func:`listing`)."""
    return listing(app, token=token, status=PENDING, interface=interface, origin=origin)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return as_utc(datetime.fromisoformat(str(value))).isoformat()


def _item(app: App, r: Any, me: str) -> ListedAdjustment:
    from idrs.masterfile.commands import money

    tin = app.keyring.decrypt(bytes(r[14]), "taxpayer.tin")
    return ListedAdjustment(
        adjustment_id=int(r[0]), command=r[1], kind=r[2], status=r[3],
        taxpayer=app.keyring.pseudonym(tin), tax_year=r[4], tc=r[5],
        amount=money(r[6]), action_code=r[7], requester=r[8], case=r[9],
        requires=[x for x in (r[10] or "").split(",") if x],
        requested_at=_iso(r[11]), expires_at=_iso(r[12]),
        changes=json.loads(r[13] or "{}").get("changes", []),
        reasons=json.loads(r[13] or "{}").get("thresholds", []),
        reverses=r[15], own=r[8] == me,
    )
