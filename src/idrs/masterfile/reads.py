"""The master file's named reads for the system's own work (no employee's research).

Detection, the oversight report, disclosures, the case inventory and the demo need to
turn a taxpayer's TIN into something else — a keyed pseudonym, a masked TIN — without
showing it to anyone. They do it here, and only here outside the research path, the
writers and the services that record each answer (tests/unit/test_taxpayer_reads.py):
a reviewer who wants to know where a TIN is decrypted reads this module and that list.
Nothing here returns a TIN but :func:`plain_taxpayer_tin`, which the demo prints for its
newcomer (a synthetic one).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from idrs.crypto import Keyring
from idrs.identifiers import format_tin, mask_tin, normalize_tin
from idrs.masterfile.models import Dependent, Marker, Taxpayer
from idrs.people.models import Employee

#: taxpayers per IN (...) list
CHUNK = 900


def pseudonyms(conn: Connection | Session, keyring: Keyring, ids: Iterable[int]
               ) -> dict[int, str]:
    """The audit log's pseudonym of each taxpayer id (decrypted in memory, never kept)."""
    out: dict[int, str] = {}
    ordered = sorted(set(ids))
    for i in range(0, len(ordered), CHUNK):
        rows = conn.execute(select(Taxpayer.id, Taxpayer.tin_enc)
                            .where(Taxpayer.id.in_(ordered[i:i + CHUNK])))
        for tid, enc in rows:
            out[tid] = keyring.pseudonym(keyring.decrypt(bytes(enc), "taxpayer.tin"))
    return out


def pseudonyms_after(session: Session, keyring: Keyring, after: int) -> list[tuple[int, str]]:
    """``(id, pseudonym)`` of every taxpayer with an id above ``after``, in id order."""
    rows = session.execute(select(Taxpayer.id, Taxpayer.tin_enc).where(Taxpayer.id > after)
                           .order_by(Taxpayer.id)).all()
    return [(i, keyring.pseudonym(keyring.decrypt(enc, "taxpayer.tin"))) for i, enc in rows]


def masked_tin(keyring: Keyring, blob: bytes | None) -> str:
    """A stored TIN as its masked form (``***-**-1234``), or ``(not on file)``."""
    if blob is None:
        return "(not on file)"
    return mask_tin(keyring.decrypt(bytes(blob), "taxpayer.tin"))


def sensitive_pseudonyms(session: Session, keyring: Keyring) -> dict[str, set[str]]:
    """Pseudonyms of high-profile taxpayers, employees' own accounts and adoption dependents.

    Decrypted in memory only to compute the keyed pseudonyms; never written anywhere.
    """
    out: dict[str, set[str]] = {"high_profile": set(), "employee_account": set(), "adoption": set()}
    for (enc,) in session.execute(select(Taxpayer.tin_enc).join(
            Marker, Marker.taxpayer_id == Taxpayer.id).where(Marker.marker == "high_profile")):
        out["high_profile"].add(
            keyring.pseudonym(normalize_tin(keyring.decrypt(enc, "taxpayer.tin"))))
    for emp_enc in session.scalars(select(Employee.tin_enc).where(Employee.tin_enc.is_not(None))):
        if emp_enc is not None:  # the query excludes NULL; this narrows the column's type
            out["employee_account"].add(
                keyring.pseudonym(normalize_tin(keyring.decrypt(emp_enc, "employee.tin"))))
    for (enc,) in session.execute(select(Dependent.tin_enc).where(
            Dependent.adoption_pending.is_(True))):
        out["adoption"].add(
            keyring.pseudonym(normalize_tin(keyring.decrypt(enc, "dependent.tin"))))
    return out


def plain_taxpayer_tin(conn: Connection, keyring: Keyring) -> str | None:
    """The demo's example: the first taxpayer without markers who is not an employee."""
    employees = {bytes(r) for r in conn.execute(select(Employee.tin_index)).scalars() if r}
    rows = conn.execute(
        select(Taxpayer.tin_index, Taxpayer.tin_enc)
        .where(Taxpayer.id.not_in(select(Marker.taxpayer_id)))
        .order_by(Taxpayer.id)
        .limit(200)
    ).all()
    for idx, enc in rows:
        if bytes(idx) not in employees:
            return format_tin(keyring.decrypt(enc, "taxpayer.tin"))
    return None
