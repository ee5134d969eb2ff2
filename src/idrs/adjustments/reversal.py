"""Reversing an applied adjustment: a new request with the original's command whose
postings undo it (never an edit or a delete).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from idrs.adjustments import rules
from idrs.adjustments.calls import Call, screened, signed_in
from idrs.adjustments.lookups import load_request, reversal_txns
from idrs.adjustments.models import APPLIED, PENDING
from idrs.adjustments.request import submit
from idrs.adjustments.results import AdjustmentResult
from idrs.context import App
from idrs.errors import Conflict, ValidationFailed
from idrs.vocabulary import CommandCode


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
    case, contact, reason = screened(case, contact, reason)
    text_reason, problems = rules._text(reason, "reason", rules.MAX_REASON, True)
    if problems:
        raise ValidationFailed(problems)
    call = Call(app, "reverse", interface, origin, adjustment_id=adjustment_id,
                detail={"case": case, "contact": contact, "reason_given": True,
                        "reverses": adjustment_id})
    employee = signed_in(app, call, token)
    with Session(app.engine) as s:
        row = load_request(s, app, call, employee.seid, adjustment_id)
        call.adjustment_id = None
        problem = _reversal_problem(s, row)
        if problem:
            call.record(employee.seid, "invalid", [], problem=problem)
            raise Conflict(f"adjustment {adjustment_id} cannot be reversed: {problem}")
        change, reversal = _reversal_change(s, app, row, text_reason, base_version)
    return submit(app, call, employee, token or "", call.tin or "", change, case, contact,
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
        reversal["txns"] = reversal_txns(s, row.id)
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
