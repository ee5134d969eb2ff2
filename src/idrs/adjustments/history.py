"""History readers: a tax module or an entity as it stood at a moment (``--as-of DATE``).

``TXMOD_AS_OF`` and ``ENMOD_AS_OF`` have the signature of the command codes in
``masterfile.commands`` (``(session, keyring, taxpayer, **params) -> tree`` with
:class:`~idrs.masterfile.screens.F` leaves, so masking applies unchanged) and take
``as_of`` (a date = the end of that day, UTC, or a datetime). Only the research service may
call them, after the decision and the audit entry, exactly like the command codes.

"As it stood" means as the system knew it: a transaction counts if it was POSTED by then
(``posted_at``), an address or name if it was recorded by then. Each posting made by an
adjustment shows who posted it, who approved it, on which case, and what it reverses.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.adjustments.models import AdjustmentPosting, NameHistory
from idrs.clock import as_utc
from idrs.crypto import Keyring
from idrs.identifiers import format_tin
from idrs.masterfile.commands import CREDIT_TCS, DEBIT_TCS, CommandFn, module_status, money
from idrs.masterfile.models import AddressRecord, TaxModule, Taxpayer, Transaction
from idrs.masterfile.screens import F, Sensitivity
from idrs.vocabulary import CommandCode

ID, ADDR, RET, OTHER = (Sensitivity.IDENTITY, Sensitivity.ADDRESS, Sensitivity.RETURN,
                        Sensitivity.OTHER)


def as_of_bound(value: date | datetime | str) -> datetime:
    """The last instant included: a date is the whole day (UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return as_utc(value)
    return datetime.combine(value + timedelta(days=1), time(0), tzinfo=UTC) - timedelta(
        microseconds=1)


def _signed(txn: Transaction, by_id: dict[int, Transaction]) -> int:
    if txn.reverses_id is not None and txn.reverses_id in by_id:
        return -_signed(by_id[txn.reverses_id], by_id)
    if txn.tc in DEBIT_TCS:
        return abs(txn.amount_cents)
    if txn.tc in CREDIT_TCS:
        return -abs(txn.amount_cents)
    return 0


class _Posting(NamedTuple):
    """Who posted a transaction through an adjustment: the request, its approver, its case."""

    adjustment_id: int
    approved_by: str | None
    case_id: str | None


def _postings(session: Session, ids: list[int]) -> dict[int, _Posting]:
    if not ids:
        return {}
    rows = session.execute(
        select(AdjustmentPosting.txn_id, AdjustmentPosting.adjustment_id,
               AdjustmentPosting.approved_by, AdjustmentPosting.case_id)
        .where(AdjustmentPosting.txn_id.in_(ids))).all()
    # txn_id is never NULL here (the IN filter excludes it); the check narrows the type.
    return {r.txn_id: _Posting(r.adjustment_id, r.approved_by, r.case_id)
            for r in rows if r.txn_id is not None}


def TXMOD_AS_OF(session: Session, keyring: Keyring, taxpayer: Taxpayer, *, year: int,
                as_of: date | datetime | str, **_: Any) -> dict[str, Any]:
    """One tax module as it stood at ``as_of``: the transactions posted by then, the balance."""
    bound = as_of_bound(as_of)
    mod = session.scalar(select(TaxModule).where(TaxModule.taxpayer_id == taxpayer.id,
                                                 TaxModule.tax_year == year))
    txns: list[Transaction] = []
    if mod is not None:
        txns = [t for t in session.scalars(select(Transaction).where(
            Transaction.module_id == mod.id).order_by(Transaction.txn_date, Transaction.id))
            if as_utc(t.posted_at) <= bound]
    by_id = {t.id: t for t in txns}
    bal = sum(_signed(t, by_id) for t in txns)
    posted = _postings(session, [t.id for t in txns if t.source == "adjustment"])
    return {
        "tin": F(format_tin(keyring.decrypt(taxpayer.tin_enc, "taxpayer.tin")), ID, "tin"),
        "name_control": F(taxpayer.name_control, ID),
        "tax_year": F(year, RET),
        "as_of": F(bound.isoformat(), OTHER),
        "module_exists": F(mod is not None, RET),
        "balance": F(money(bal), RET),
        "status": F(module_status(txns, bal) if mod is not None else None, RET),
        "transactions": [_txn(t, posted.get(t.id)) for t in txns],
    }


def _txn(t: Transaction, p: _Posting | None) -> dict[str, F]:
    return {
        "id": F(t.id, OTHER), "tc": F(t.tc, RET), "date": F(t.txn_date.isoformat(), RET),
        "amount": F(money(t.amount_cents), RET), "action_code": F(t.action_code, RET),
        "source": F(t.source, OTHER), "posted_at": F(as_utc(t.posted_at).isoformat(), OTHER),
        "posted_by": F(t.posted_by, OTHER), "reverses": F(t.reverses_id, OTHER),
        "adjustment": F(p.adjustment_id if p else None, OTHER),
        "approved_by": F(p.approved_by if p else None, OTHER),
        "case": F(p.case_id if p else None, OTHER),
    }


def ENMOD_AS_OF(session: Session, keyring: Keyring, taxpayer: Taxpayer, *,
                as_of: date | datetime | str, **_: Any) -> dict[str, Any]:
    """The entity's name and entity-address history as they stood at ``as_of``."""
    bound = as_of_bound(as_of)
    names = [n for n in session.scalars(select(NameHistory).where(
        NameHistory.taxpayer_id == taxpayer.id).order_by(NameHistory.id))
        if as_utc(n.recorded_at) <= bound]
    cur = names[-1] if names else taxpayer
    posted_late = {int(r) for r in session.scalars(select(AdjustmentPosting.address_record_id).where(
        AdjustmentPosting.taxpayer_id == taxpayer.id, AdjustmentPosting.kind == "address",
        AdjustmentPosting.posted_at > bound)) if r is not None}
    addrs = [a for a in session.scalars(select(AddressRecord).where(
        AddressRecord.taxpayer_id == taxpayer.id, AddressRecord.source == "entity"))
        if a.valid_from <= bound.date() and a.id not in posted_late]
    addrs.sort(key=lambda a: (a.valid_from, a.id), reverse=True)
    return {
        "tin": F(format_tin(keyring.decrypt(taxpayer.tin_enc, "taxpayer.tin")), ID, "tin"),
        "as_of": F(bound.isoformat(), OTHER),
        "name": {"first": F(cur.first_name, ID), "middle": F(cur.middle_name, ID),
                 "last": F(cur.last_name, ID), "suffix": F(cur.suffix, ID)},
        "name_control": F(cur.name_control, ID),
        "name_history": [
            {"first": F(n.first_name, ID), "middle": F(n.middle_name, ID),
             "last": F(n.last_name, ID), "suffix": F(n.suffix, ID),
             "valid_from": F(n.valid_from.isoformat(), OTHER), "source": F(n.source, OTHER),
             "adjustment": F(n.adjustment_id, OTHER)}
            for n in reversed(names)
        ],
        "address_history": [
            {"street": F(a.street, ADDR), "city": F(a.city, ADDR), "state": F(a.state, ADDR),
             "zip": F(a.zip, ADDR), "valid_from": F(a.valid_from.isoformat(), ADDR)}
            for a in addrs
        ],
    }


def module_as_of(session: Session, keyring: Keyring, taxpayer: Taxpayer, *, year: int,
                 as_of: date | datetime | str) -> dict[str, Any]:
    """Alias of :func:`TXMOD_AS_OF` (the name the lead's brief uses)."""
    return TXMOD_AS_OF(session, keyring, taxpayer, year=year, as_of=as_of)


def entity_as_of(session: Session, keyring: Keyring, taxpayer: Taxpayer, *,
                 as_of: date | datetime | str) -> dict[str, Any]:
    """Alias of :func:`ENMOD_AS_OF`."""
    return ENMOD_AS_OF(session, keyring, taxpayer, as_of=as_of)


#: The research commands that take ``as_of`` (the lead wires ``--as-of`` to these).
AS_OF: dict[str, CommandFn] = {CommandCode.TXMOD: TXMOD_AS_OF, CommandCode.ENMOD: ENMOD_AS_OF}
