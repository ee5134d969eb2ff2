"""The research command codes: ENMOD, IMFOL, TXMOD, RTVUE, INOLE, NAMES, IRPTR.

Each is a function ``(session, keyring, taxpayer, **params) -> tree`` whose leaves are
:class:`~idrs.masterfile.screens.F` (value, sensitivity class, mask form). They read the
master file and decrypt; they decide nothing and record nothing.

Only ``idrs.research.run`` may call them, after the decision and the audit entry (docs/architecture.md:
nothing else reads the master file for an employee). The output of each is documented in
docs/commands.md. Money is a string with two decimals (``"-123.45"``), dates ISO 8601.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from idrs.access import sqlraw
from idrs.clock import as_utc
from idrs.crypto import Keyring
from idrs.identifiers import format_ein, format_tin
from idrs.masterfile.models import (
    K1,
    W2,
    AddressRecord,
    Dependent,
    InformationReturn,
    Marker,
    ScheduleC,
    TaxModule,
    Taxpayer,
    TaxReturn,
    Transaction,
)
from idrs.masterfile.screens import F, Sensitivity
from idrs.vocabulary import CommandCode

ID = Sensitivity.IDENTITY
ADDR = Sensitivity.ADDRESS
BANK = Sensitivity.BANKING
RET = Sensitivity.RETURN
ADOPT = Sensitivity.ADOPTION
OTHER = Sensitivity.OTHER

#: Transaction codes that increase the balance owed (assessments, refunds paid out).
DEBIT_TCS = frozenset({"150", "290", "846"})
#: Transaction codes that decrease it (credits, abatements, payments).
CREDIT_TCS = frozenset({"806", "291", "610", "670", "766"})

#: Codes that need a tax year (they show one tax module).
NEEDS_YEAR = frozenset({CommandCode.TXMOD, CommandCode.RTVUE})


def money(cents: int | None) -> str | None:
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _iso(value: date | datetime | None) -> str | None:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return None if value is None else value.isoformat()


def _tin(keyring: Keyring, blob: bytes | None, column: str) -> str | None:
    return None if blob is None else format_tin(keyring.decrypt(blob, column))


def _ein(keyring: Keyring, blob: bytes | None, column: str) -> str | None:
    return None if blob is None else format_ein(keyring.decrypt(blob, column))


def _name(tp: Any) -> dict[str, F]:
    return {
        "first": F(tp.first_name, ID),
        "middle": F(tp.middle_name, ID),
        "last": F(tp.last_name, ID),
        "suffix": F(tp.suffix, ID),
    }


def _address(rec: Any) -> dict[str, F]:
    return {
        "street": F(rec.street, ADDR),
        "city": F(rec.city, ADDR),
        "state": F(rec.state, ADDR),
        "zip": F(rec.zip, ADDR),
    }


# Pre-built Core statements for the hot path (ENMOD on every call centre screen): no ORM
# identity map, compiled once, executed on the request's own connection.
_AR = AddressRecord.__table__
_ADDRESSES = select(_AR).where(_AR.c.taxpayer_id == bindparam("tp"))
_MK = Marker.__table__
_MARKERS = select(_MK.c.marker).where(_MK.c.taxpayer_id == bindparam("tp"))
_TR = TaxReturn.__table__


# ENMOD's three reads in one round trip, straight to the driver
# (kind 'A' address, 'M' marker, 'S' filing status).
_ENTITY_SQL = (
    "SELECT 'A', id, street, city, state, zip, source, tax_year, valid_from"
    " FROM address_record WHERE taxpayer_id = :tp"
    " UNION ALL SELECT 'M', NULL, marker, NULL, NULL, NULL, NULL, NULL, NULL"
    " FROM taxpayer_marker WHERE taxpayer_id = :tp"
    " UNION ALL SELECT 'S', NULL, filing_status, NULL, NULL, NULL, NULL, tax_year, NULL"
    " FROM tax_return WHERE taxpayer_id = :tp"
)


@dataclass(frozen=True, slots=True)
class _Addr:
    id: int
    street: str
    city: str
    state: str
    zip: str
    source: str
    tax_year: int | None
    valid_from: date


def _entity_rows(session: Session, tp: Any) -> tuple[list[_Addr], list[str], list[tuple[int, str]]]:
    """(address history newest first, markers sorted, (year, filing status) newest first)."""
    addrs: list[_Addr] = []
    markers: list[str] = []
    statuses: list[tuple[int, str]] = []
    for k, rid, a, city, state, zip5, source, year, valid in sqlraw.fetch(
        session, _ENTITY_SQL, {"tp": tp.id}
    ):
        if k == "A":
            if isinstance(valid, str):  # SQLite returns the union's dates as text
                valid = date.fromisoformat(valid)
            addrs.append(_Addr(rid, a, city, state, zip5, source, year, valid))
        elif k == "M":
            markers.append(a)
        else:
            statuses.append((int(year), a))
    addrs.sort(key=lambda r: (r.valid_from, r.source == "entity", r.id), reverse=True)
    return addrs, sorted(markers), sorted(statuses, reverse=True)


def _addresses(session: Session, tp: Any) -> list[Any]:
    """Address history, newest first (entity records before return records on the same day)."""
    rows = session.connection().execute(_ADDRESSES, {"tp": tp.id}).all()
    return sorted(rows, key=lambda r: (r.valid_from, r.source == "entity", r.id), reverse=True)


def _markers(session: Session, tp: Any) -> list[F]:
    rows = session.connection().execute(_MARKERS, {"tp": tp.id}).scalars().all()
    return [F(m, OTHER) for m in sorted(rows)]


def _signed(txn: Transaction, by_id: dict[int, Transaction]) -> int:
    """The effect of one transaction on the balance (reversals undo their original)."""
    if txn.reverses_id is not None and txn.reverses_id in by_id:
        return -_signed(by_id[txn.reverses_id], by_id)
    if txn.tc in DEBIT_TCS:
        return abs(txn.amount_cents)
    if txn.tc in CREDIT_TCS:
        return -abs(txn.amount_cents)
    return 0


def module_status(txns: list[Transaction], balance: int) -> str:
    """Open examination, refund hold, balance due, credit, or settled."""
    tcs = [t.tc for t in txns]
    if tcs.count("420") > tcs.count("421"):
        return "examination"
    if tcs.count("570") > tcs.count("571"):
        return "hold"
    if balance > 0:
        return "balance_due"
    if balance < 0:
        return "credit"
    return "settled"


def module_transactions(session: Session, module_id: int) -> list[Transaction]:
    return list(
        session.scalars(
            select(Transaction)
            .where(Transaction.module_id == module_id)
            .order_by(Transaction.txn_date, Transaction.id)
        ).all()
    )


def balance(txns: list[Transaction]) -> int:
    by_id = {t.id: t for t in txns}
    return sum(_signed(t, by_id) for t in txns)


# -- ENMOD ---------------------------------------------------------------------------------


def ENMOD(session: Session, keyring: Keyring, taxpayer: Taxpayer, **_: Any) -> dict[str, Any]:
    """Entity: TIN, name, date of birth, phone, address history, filing-status history, markers."""
    tp = taxpayer
    addresses, markers, statuses = _entity_rows(session, tp)
    return {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name": _name(tp),
        "name_control": F(tp.name_control, ID),
        "date_of_birth": F(keyring.decrypt_opt(tp.dob_enc, "taxpayer.dob"), ID),
        "phone": F(keyring.decrypt_opt(tp.phone_enc, "taxpayer.phone"), ADDR, "stars"),
        "address_history": [
            {
                **_address(rec),
                "source": F(rec.source, OTHER),
                "tax_year": F(rec.tax_year, RET),
                "valid_from": F(_iso(rec.valid_from), ADDR),
            }
            for rec in addresses
        ],
        "filing_status_history": [
            {"tax_year": F(year, RET), "filing_status": F(fs, RET)} for year, fs in statuses
        ],
        "markers": [F(m, OTHER) for m in markers],
    }


# -- IMFOL ---------------------------------------------------------------------------------


def IMFOL(session: Session, keyring: Keyring, taxpayer: Taxpayer, **_: Any) -> dict[str, Any]:
    """Account overview: every tax module with its balance, status and transaction count."""
    tp = taxpayer
    modules = session.scalars(
        select(TaxModule).where(TaxModule.taxpayer_id == tp.id).order_by(TaxModule.tax_year.desc())
    ).all()
    out = []
    for mod in modules:
        txns = module_transactions(session, mod.id)
        bal = balance(txns)
        out.append(
            {
                "tax_year": F(mod.tax_year, RET),
                "balance": F(money(bal), RET),
                "status": F(module_status(txns, bal), RET),
                "transactions": F(len(txns), RET),
                "last_activity": F(_iso(txns[-1].txn_date) if txns else None, RET),
            }
        )
    return {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name_control": F(tp.name_control, ID),
        "modules": out,
    }


# -- TXMOD ---------------------------------------------------------------------------------


def TXMOD(
    session: Session, keyring: Keyring, taxpayer: Taxpayer, *, year: int, **_: Any
) -> dict[str, Any]:
    """One tax module (``year``): balance, status and every transaction, oldest first."""
    tp = taxpayer
    mod = session.scalar(
        select(TaxModule).where(TaxModule.taxpayer_id == tp.id, TaxModule.tax_year == year)
    )
    txns = module_transactions(session, mod.id) if mod is not None else []
    bal = balance(txns)
    return {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name_control": F(tp.name_control, ID),
        "tax_year": F(year, RET),
        "module_exists": F(mod is not None, RET),
        "version": F(mod.version if mod is not None else None, OTHER),
        "balance": F(money(bal), RET),
        "status": F(module_status(txns, bal) if mod is not None else None, RET),
        "transactions": [
            {
                "id": F(t.id, OTHER),
                "tc": F(t.tc, RET),
                "date": F(_iso(t.txn_date), RET),
                "amount": F(money(t.amount_cents), RET),
                "action_code": F(t.action_code, RET),
                "source": F(t.source, OTHER),
                "posted_at": F(_iso(t.posted_at), OTHER),
                "posted_by": F(t.posted_by, OTHER),
                "reverses": F(t.reverses_id, OTHER),
            }
            for t in txns
        ],
    }


# -- RTVUE ---------------------------------------------------------------------------------


def _dependent(keyring: Keyring, d: Dependent) -> dict[str, F]:
    # A child placed for adoption: the temporary TIN (ATIN), name and relationship are
    # adoption details, visible only with the adoption authority.
    cls = ADOPT if d.adoption_pending else ID
    return {
        "tin": F(_tin(keyring, d.tin_enc, "dependent.tin"), cls, "tin"),
        "first_name": F(d.first_name, cls),
        "last_name": F(d.last_name, cls),
        "relationship": F(d.relationship, ADOPT if d.adoption_pending else RET),
        "adoption_pending": F(d.adoption_pending, ADOPT),
    }


def RTVUE(
    session: Session, keyring: Keyring, taxpayer: Taxpayer, *, year: int, **_: Any
) -> dict[str, Any]:
    """One year's return as filed: lines, spouse, dependents, W-2/K-1/Schedule C, refund, bank."""
    tp = taxpayer
    ret = session.scalar(
        select(TaxReturn).where(TaxReturn.taxpayer_id == tp.id, TaxReturn.tax_year == year)
    )
    base: dict[str, Any] = {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name_control": F(tp.name_control, ID),
        "tax_year": F(year, RET),
        "return_filed": F(ret is not None, RET),
    }
    if ret is None:
        return base
    addr = session.scalar(
        select(AddressRecord).where(
            AddressRecord.taxpayer_id == tp.id,
            AddressRecord.tax_year == year,
            AddressRecord.source == "return",
        )
    )
    deps = session.scalars(
        select(Dependent).where(Dependent.return_id == ret.id).order_by(Dependent.id)
    ).all()
    w2s = session.scalars(select(W2).where(W2.return_id == ret.id).order_by(W2.id)).all()
    k1s = session.scalars(select(K1).where(K1.return_id == ret.id).order_by(K1.id)).all()
    scs = session.scalars(
        select(ScheduleC).where(ScheduleC.return_id == ret.id).order_by(ScheduleC.id)
    ).all()
    refund = None
    if ret.refund_cents is not None:
        deposit = None
        if ret.routing_enc is not None or ret.account_enc is not None:
            deposit = {
                "routing": F(
                    keyring.decrypt_opt(ret.routing_enc, "tax_return.routing"), BANK, "account"
                ),
                "account": F(
                    keyring.decrypt_opt(ret.account_enc, "tax_return.account"), BANK, "account"
                ),
            }
        refund = {"amount": F(money(ret.refund_cents), RET), "direct_deposit": deposit}
    return {
        **base,
        "filing_status": F(ret.filing_status, RET),
        "spouse_tin": F(_tin(keyring, ret.spouse_tin_enc, "tax_return.spouse_tin"), ID, "tin"),
        "address": _address(addr) if addr is not None else None,
        "dependents": [_dependent(keyring, d) for d in deps],
        "w2": [
            {
                "employer_ein": F(_ein(keyring, w.employer_ein_enc, "w2.employer_ein"), RET),
                "employer_name": F(w.employer_name, RET),
                "wages": F(money(w.wages_cents), RET),
                "withholding": F(money(w.withholding_cents), RET),
            }
            for w in w2s
        ],
        "k1": [
            {
                "entity_ein": F(_ein(keyring, k.entity_ein_enc, "k1.entity_ein"), RET),
                "entity_name": F(k.entity_name, RET),
                "share_pct": F(k.share_pct, RET),
            }
            for k in k1s
        ],
        "schedule_c": [
            {
                "business_name": F(c.business_name, RET),
                "ein": F(_ein(keyring, c.ein_enc, "schedule_c.ein"), RET),
            }
            for c in scs
        ],
        "agi": F(money(ret.agi_cents), RET),
        "total_tax": F(money(ret.total_tax_cents), RET),
        "preparer_ptin": F(ret.preparer_ptin, RET),
        "refund": refund,
        "received_at": F(_iso(ret.received_at), RET),
    }


# -- INOLE ---------------------------------------------------------------------------------


def INOLE(session: Session, keyring: Keyring, taxpayer: Taxpayer, **_: Any) -> dict[str, Any]:
    """Cross-reference profile: entity, current address, spouse and dependent links both ways."""
    tp = taxpayer
    addrs = _addresses(session, tp)
    own = session.execute(
        select(TaxReturn.tax_year, TaxReturn.filing_status, TaxReturn.spouse_tin_enc)
        .where(TaxReturn.taxpayer_id == tp.id, TaxReturn.spouse_tin_enc.is_not(None))
        .order_by(TaxReturn.tax_year.desc())
    ).all()
    named_by = session.execute(
        select(TaxReturn.tax_year, TaxReturn.filing_status, Taxpayer.tin_enc)
        .join(Taxpayer, Taxpayer.id == TaxReturn.taxpayer_id)
        .where(TaxReturn.spouse_tin_index == tp.tin_index)
        .order_by(TaxReturn.tax_year.desc())
    ).all()
    claimed = session.execute(
        select(TaxReturn.tax_year, Dependent)
        .join(TaxReturn, TaxReturn.id == Dependent.return_id)
        .where(TaxReturn.taxpayer_id == tp.id)
        .order_by(TaxReturn.tax_year.desc(), Dependent.id)
    ).all()
    claimed_by = session.execute(
        select(
            TaxReturn.tax_year, Dependent.relationship, Dependent.adoption_pending, Taxpayer.tin_enc
        )
        .join(TaxReturn, TaxReturn.id == Dependent.return_id)
        .join(Taxpayer, Taxpayer.id == TaxReturn.taxpayer_id)
        .where(Dependent.tin_index == tp.tin_index)
        .order_by(TaxReturn.tax_year.desc())
    ).all()
    spouses = [
        {
            "tin": F(_tin(keyring, enc, "tax_return.spouse_tin"), ID, "tin"),
            "tax_year": F(year, RET),
            "filing_status": F(fs, RET),
            "link": F("named_on_own_return", RET),
        }
        for year, fs, enc in own
    ] + [
        {
            "tin": F(_tin(keyring, enc, "taxpayer.tin"), ID, "tin"),
            "tax_year": F(year, RET),
            "filing_status": F(fs, RET),
            "link": F("named_on_their_return", RET),
        }
        for year, fs, enc in named_by
    ]
    return {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name": _name(tp),
        "name_control": F(tp.name_control, ID),
        "address": _address(addrs[0]) if addrs else None,
        "markers": _markers(session, tp),
        "spouses": spouses,
        "dependents": [{"tax_year": F(year, RET), **_dependent(keyring, d)} for year, d in claimed],
        "claimed_by": [
            {
                "tin": F(_tin(keyring, enc, "taxpayer.tin"), ADOPT if pending else ID, "tin"),
                "tax_year": F(year, RET),
                "relationship": F(rel, ADOPT if pending else RET),
            }
            for year, rel, pending, enc in claimed_by
        ],
    }


# -- NAMES ---------------------------------------------------------------------------------


def NAMES(
    session: Session,
    keyring: Keyring,
    taxpayer: Taxpayer | None = None,
    *,
    last: str,
    first: str | None = None,
    state: str | None = None,
    zip: str | None = None,  # noqa: A002 - the field's name
    limit: int = 25,
    **_: Any,
) -> dict[str, Any]:
    """Search by last name (+ first-name prefix, state, ZIP); at most ``limit`` matches.

    The place filters match the newest address on file. ``truncated`` says more existed.
    """
    variants = {
        last,
        last.strip(),
        last.strip().title(),
        last.strip().upper(),
        last.strip().lower(),
    }
    rows = session.scalars(
        select(Taxpayer).where(Taxpayer.last_name.in_(variants)).order_by(Taxpayer.id)
    )
    first_u = (first or "").strip().upper()
    matches: list[dict[str, Any]] = []
    truncated = False
    for tp in rows:
        if tp.last_name.strip().upper() != last.strip().upper():
            continue
        if first_u and not tp.first_name.upper().startswith(first_u):
            continue
        addrs = _addresses(session, tp)
        cur = addrs[0] if addrs else None
        if state and (cur is None or cur.state.upper() != state.upper()):
            continue
        if zip and (cur is None or cur.zip[:5] != zip[:5]):
            continue
        if len(matches) >= limit:
            truncated = True
            break
        matches.append(
            {
                "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
                "name": F(
                    " ".join(
                        p for p in (tp.first_name, tp.middle_name, tp.last_name, tp.suffix) if p
                    ),
                    ID,
                ),
                "city": F(cur.city if cur else None, ADDR),
                "state": F(cur.state if cur else None, ADDR),
                "zip": F(cur.zip if cur else None, ADDR),
            }
        )
    return {"matches": matches, "truncated": F(truncated, OTHER), "limit": F(limit, OTHER)}


# -- IRPTR ---------------------------------------------------------------------------------


def IRPTR(
    session: Session, keyring: Keyring, taxpayer: Taxpayer, *, year: int | None = None, **_: Any
) -> dict[str, Any]:
    """Information returns (W-2, 1099) payers filed about the TIN; optionally one year."""
    tp = taxpayer
    q = select(InformationReturn).where(InformationReturn.payee_tin_index == tp.tin_index)
    if year is not None:
        q = q.where(InformationReturn.tax_year == year)
    rows = session.scalars(
        q.order_by(InformationReturn.tax_year.desc(), InformationReturn.id)
    ).all()
    return {
        "tin": F(_tin(keyring, tp.tin_enc, "taxpayer.tin"), ID, "tin"),
        "name_control": F(tp.name_control, ID),
        "tax_year": F(year, RET),
        "information_returns": [
            {
                "tax_year": F(r.tax_year, RET),
                "form": F(r.form, RET),
                "payer_ein": F(_ein(keyring, r.payer_ein_enc, "information_return.payer_ein"), RET),
                "payer_name": F(r.payer_name, RET),
                "amount": F(money(r.amount_cents), RET),
                "withholding": F(money(r.withholding_cents), RET),
            }
            for r in rows
        ],
    }


CommandFn = Callable[..., dict[str, Any]]

#: Every research command code and its function (the order docs/commands.md uses).
COMMANDS: dict[str, CommandFn] = {
    CommandCode.ENMOD: ENMOD,
    CommandCode.IMFOL: IMFOL,
    CommandCode.TXMOD: TXMOD,
    CommandCode.RTVUE: RTVUE,
    CommandCode.INOLE: INOLE,
    CommandCode.NAMES: NAMES,
    CommandCode.IRPTR: IRPTR,
}
