"""Master-file facts for detection: the employees' own records and the targets' surnames,
addresses and markers, by audit pseudonym (only names, addresses and markers: nothing here
reads return data).

Callers: :mod:`idrs.detection.runner` (every run), :mod:`idrs.detection.adjustments` (the
taxpayers its requests name), :mod:`idrs.detection.taxpayer` (pseudonyms).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from idrs.context import App
from idrs.db import session_scope
from idrs.detection.models import DetectionTaxpayerKey
from idrs.detection.signals import EmployeeFacts, TaxpayerFacts
from idrs.masterfile import reads
from idrs.masterfile.models import AddressRecord, Marker, Taxpayer
from idrs.people.models import Employee, Unit

_HOUSE_NUMBER = re.compile(r"^[0-9]+[A-Z]?\s+")
_IN = 500  # values per IN (...) list



def refresh_pseudonyms(app: App) -> int:
    """Compute the pseudonym of every taxpayer not yet mapped (decrypts the TIN once)."""
    with session_scope(app.engine) as s:
        done = s.scalar(select(func.max(DetectionTaxpayerKey.taxpayer_id))) or 0
        rows = reads.pseudonyms_after(s, app.keyring, done)
        s.add_all([DetectionTaxpayerKey(taxpayer_id=i, pseudonym=p) for i, p in rows])
    return len(rows)


def house_number(street_key: str) -> int | None:
    """The house number a ``street_key`` starts with, if any."""
    m = re.match(r"^([0-9]+)", street_key or "")
    return int(m.group(1)) if m else None


def street_name(street_key: str) -> str:
    """The street of a ``street_key`` without the house number ("ELM ST|DAYTON|OH")."""
    return _HOUSE_NUMBER.sub("", street_key or "")


def chunks(values: list[Any], n: int = _IN) -> list[list[Any]]:
    return [values[i:i + n] for i in range(0, len(values), n)]


def _latest_addresses(s: Any, tids: list[int] | None = None,
                      history: dict[int, set[str]] | None = None,
                      houses: dict[int, int | None] | None = None) -> dict[int, tuple[str, str, str]]:
    """The latest address of each taxpayer; every dwelling each was recorded at goes to
    ``history`` (when given)."""
    out: dict[int, tuple[str, str, str]] = {}
    q = select(AddressRecord.taxpayer_id, AddressRecord.street_key, AddressRecord.zip,
               AddressRecord.norm_key).order_by(AddressRecord.taxpayer_id,
                                                AddressRecord.valid_from, AddressRecord.id)
    parts = [q] if tids is None else [q.where(AddressRecord.taxpayer_id.in_(c)) for c in chunks(tids)]
    for part in parts:
        for tid, street, zip_code, norm in s.execute(part):
            out[tid] = (street_name(street), (zip_code or "")[:5], norm)
            if houses is not None:
                houses[tid] = house_number(street)
            if history is not None and norm:
                history.setdefault(tid, set()).add(norm)
    return out


def _household_namesakes(s: Any, homes: dict[str, str]) -> dict[tuple[str, str], set[int]]:
    """Per (dwelling, surname) of the employees' homes: the taxpayers recorded at that
    dwelling who carry that surname (the employee's household)."""
    out: dict[tuple[str, str], set[int]] = defaultdict(set)
    keys = sorted(k for k in homes if k)
    for part in chunks(keys):
        rows = s.execute(select(AddressRecord.taxpayer_id, AddressRecord.norm_key, Taxpayer.last_name)
                         .join(Taxpayer, Taxpayer.id == AddressRecord.taxpayer_id)
                         .where(AddressRecord.norm_key.in_(part))).all()
        for tid, norm, last in rows:
            if (last or "").upper() == (homes.get(norm) or "").upper():
                out[(norm, (last or "").upper())].add(int(tid))
    return dict(out)


def _linked_namesakes(s: Any) -> dict[str, set[int]]:
    """Per SEID: the taxpayers the conflict index links to the employee (spouse, dependents,
    declared relatives...) who carry the employee's surname."""
    from idrs.access.models import ConflictEntry

    own = aliased(Taxpayer)
    rows = s.execute(select(Employee.seid, Taxpayer.id)
                     .join(ConflictEntry, ConflictEntry.employee_id == Employee.id)
                     .join(Taxpayer, Taxpayer.tin_index == ConflictEntry.tin_index)
                     .join(own, own.tin_index == Employee.tin_index)
                     .where(func.upper(Taxpayer.last_name) == func.upper(own.last_name))).all()
    out: dict[str, set[int]] = defaultdict(set)
    for seid, tid in rows:
        out[seid].add(int(tid))
    return dict(out)


def master_facts(app: App, wanted: set[str] | None = None) -> tuple[
        dict[str, TaxpayerFacts], dict[str, EmployeeFacts], dict[str, int], int]:
    """(taxpayer facts by pseudonym, employee facts by SEID, surname counts, population).

    ``wanted``: only these taxpayers' facts (every taxpayer when None); the surname counts
    and the employees' own records always cover the whole master file.
    """
    refresh_pseudonyms(app)
    with session_scope(app.engine) as s:
        counts: dict[str, int] = defaultdict(int)
        for last, n in s.execute(select(Taxpayer.last_name, func.count()).group_by(Taxpayer.last_name)):
            counts[(last or "").upper()] += int(n)
        high = {t for (t,) in s.execute(select(Marker.taxpayer_id).where(Marker.marker == "high_profile"))}
        emp_idx = {t for (t,) in s.execute(select(Employee.tin_index).where(Employee.tin_index.is_not(None)))}
        tq = select(Taxpayer.id, Taxpayer.tin_index, Taxpayer.last_name)
        dwell: dict[int, set[str]] = {}
        house: dict[int, int | None] = {}
        if wanted is None:
            pseud = dict(s.execute(select(DetectionTaxpayerKey.taxpayer_id, DetectionTaxpayerKey.pseudonym)).all())
            tp_rows = s.execute(tq).all()
            addr = _latest_addresses(s, history=dwell, houses=house)
        else:
            pseud = {}
            for c in chunks(sorted(wanted)):
                pseud.update(s.execute(select(DetectionTaxpayerKey.taxpayer_id, DetectionTaxpayerKey.pseudonym)
                                       .where(DetectionTaxpayerKey.pseudonym.in_(c))).all())
            found: dict[int, Any] = {}
            for c in chunks(sorted(pseud)):
                found.update((r[0], r) for r in s.execute(tq.where(Taxpayer.id.in_(c))))
            for c in chunks(sorted(emp_idx)):
                found.update((r[0], r) for r in s.execute(tq.where(Taxpayer.tin_index.in_(c))))
            tp_rows = list(found.values())
            addr = _latest_addresses(s, sorted(found), history=dwell, houses=house)
        by_index: dict[bytes, tuple[str, str, str, str]] = {}
        dwell_of: dict[bytes, frozenset[str]] = {}
        house_of: dict[bytes, int | None] = {}
        tps: dict[str, TaxpayerFacts] = {}
        for tid, tin_index, last in tp_rows:
            street, zip_code, norm = addr.get(tid, ("", "", ""))
            by_index[tin_index] = (last or "", street, zip_code, norm)
            dwell_of[tin_index] = frozenset(dwell.get(tid, ()))
            house_of[tin_index] = house.get(tid)
            p = pseud.get(tid)
            if p is not None:
                tps[p] = TaxpayerFacts(last or "", street, zip_code, norm, tid in high,
                                       tin_index in emp_idx, dwell_of[tin_index], house.get(tid))
        namesakes = _household_namesakes(s, {v[3]: v[0] for k, v in by_index.items() if k in emp_idx})
        linked = _linked_namesakes(s)
        emps: dict[str, EmployeeFacts] = {}
        q = select(Employee.seid, Unit.code, Employee.roles, Employee.tin_index).join(
            Unit, Unit.id == Employee.unit_id)
        nothing: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)
        for seid, unit, roles, own_index in s.execute(q):
            own = by_index.get(own_index, nothing) if own_index else nothing
            emps[seid] = EmployeeFacts(seid, unit, frozenset(roles.split(",")), *own,
                                       dwellings=dwell_of.get(own_index, frozenset()) if own_index else frozenset(),
                                       house=house_of.get(own_index) if own_index else None,
                                       household_namesakes=len(
                                           namesakes.get((own[3] or "", (own[0] or "").upper()), set())
                                           | linked.get(seid, set())))
    return tps, emps, dict(counts), sum(counts.values())

