"""The signed-in employee's own open cases and taxpayer contacts (read-only, session-free).

A service function for the HTTP layer (the /cases page calls it through
``idrs.web.inventory``): it reads the two assignment tables for ONE employee id (the caller
passes the signed-in employee's own id, never a chosen one). It shows no taxpayer data
beyond the case or contact id and the masked TIN (last four digits). It records nothing: it
reveals only the employee's own assignments, which they already hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from idrs.access.models import CaseAssignment, TaxpayerContact
from idrs.clock import as_utc
from idrs.context import App
from idrs.masterfile.models import Taxpayer


@dataclass(frozen=True)
class Item:
    ident: str
    masked_tin: str
    opened_at: datetime
    channel: str | None = None
    #: a contact's origin: ``inbound`` (the intake feed recorded it) or ``declared``
    origin: str | None = None


@dataclass(frozen=True)
class Inventory:
    cases: list[Item]
    contacts: list[Item]


def open_work(app: App, employee_id: int, limit: int = 500) -> Inventory:
    """Open cases and contacts of ``employee_id``, newest first, TINs masked."""
    with app.engine.connect() as conn:
        case_rows = conn.execute(
            select(CaseAssignment.case_id, Taxpayer.tin_enc, CaseAssignment.opened_at)
            .outerjoin(Taxpayer, Taxpayer.tin_index == CaseAssignment.tin_index)
            .where(CaseAssignment.employee_id == employee_id, CaseAssignment.closed_at.is_(None))
            .order_by(CaseAssignment.opened_at.desc())
            .limit(limit)
        ).all()
        contact_rows = conn.execute(
            select(
                TaxpayerContact.contact_id,
                Taxpayer.tin_enc,
                TaxpayerContact.opened_at,
                TaxpayerContact.channel,
                TaxpayerContact.origin,
            )
            .outerjoin(Taxpayer, Taxpayer.tin_index == TaxpayerContact.tin_index)
            .where(TaxpayerContact.employee_id == employee_id, TaxpayerContact.closed_at.is_(None))
            .order_by(TaxpayerContact.opened_at.desc())
            .limit(limit)
        ).all()
    cases = [Item(r[0], _masked(app, r[1]), as_utc(r[2])) for r in case_rows]
    contacts = [Item(r[0], _masked(app, r[1]), as_utc(r[2]), r[3], r[4]) for r in contact_rows]
    return Inventory(cases, contacts)


def _masked(app: App, blob: bytes | None) -> str:
    from idrs.masterfile.reads import masked_tin

    return masked_tin(app.keyring, blob)
