"""Adjustment signals: changes to accounts that the two-person rule lets through but that
look like abuse. Read from ``adjustment_request`` (every request, whatever became of it:
a refused or expired one still shows what the employee tried), joined with the same
master-file facts as the access signals. Callers: ``detection.score.score_days`` (one call).

=====================  ======  =============================================================
adjust_just_under       3.0    three or more abatements (or assessments) by one employee,
                               each within 10% below the single-change threshold, within
                               ``IDRS_ADJ_WINDOW_DAYS``: splitting around the rule, on one
                               account or many (on the day of each such change from the
                               third on)
adjust_weak_tie         ≤3.0   a change to an account the employee has a weak tie to (the
                               ties the conflict rules do not refuse): the same street 3.0,
                               the same surname (discounted by how common it is, as
                               ``same_surname``) up to 3.0, the same ZIP 1.0
adjust_then_address     3.0    an abatement or a refund-hold release followed, within
                               ``IDRS_ADJ_REFUND_WINDOW_DAYS``, by an address change of the
                               same taxpayer near a refund (the address change waited with
                               ``ADDRESS_NEAR_REFUND``, a refund TC 846 was issued since the
                               first change, or the module is in credit): a refund being
                               redirected; raised for the employee who made each change
adjust_then_bank        3.0    an abatement or a refund-hold release followed, within the
                               same window, by a return claiming a refund to a bank account
                               none of the taxpayer's earlier returns used (bank accounts
                               change only with a return: no command changes one); raised
                               for the employee who made the change, on the day the return
                               was received. Only the blind index of the account is read
=====================  ======  =============================================================

Each signal's evidence names the adjustments and says ``why`` in words; the alert cites the
audit entries of the requests. A single honest adjustment on an account the employee has
no tie to raises none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from idrs.adjustments.models import AdjustmentRequest
from idrs.adjustments.rules import REVERSING_TC, Thresholds
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.facts import master_facts
from idrs.detection.models import DetectionTaxpayerKey
from idrs.detection.signals import EmployeeFacts, Signal, TaxpayerFacts, surname_weight
from idrs.masterfile.models import TaxModule, TaxReturn, Transaction
from idrs.vocabulary import CommandCode

JUST_UNDER_SHARE = 0.9  # an amount at least 90% of the threshold and below it
JUST_UNDER_MIN = 3  # this many such changes within the window
WEIGHTS: dict[str, float] = {"adjust_just_under": 3.0, "adjust_weak_tie": 3.0,
                             "adjust_then_address": 3.0, "adjust_then_bank": 3.0,
                             "adjust_weak_tie_zip": 1.0}
Key = tuple[str, str]


@dataclass(frozen=True)
class _Req:
    id: int
    seid: str
    taxpayer_id: int
    module_id: int | None
    command: str
    tc: str | None  # the effective TC (a reversal acts as the complementary one)
    amount: int | None
    status: str
    at: datetime
    audit_index: int | None
    address: bool
    requires: str


def _money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def _requests(app: App, since: datetime, upto: int) -> list[_Req]:
    a = AdjustmentRequest
    with session_scope(app.engine) as s:
        rows = s.execute(select(a.id, a.requester_seid, a.taxpayer_id, a.module_id, a.command,
                                a.kind, a.tc, a.amount_cents, a.status, a.requested_at,
                                a.request_audit_index, a.payload, a.requires)
                         .where(a.requested_at >= since).order_by(a.requested_at, a.id)).all()
    out = []
    for (i, seid, tp, mod, cmd, kind, tc, amount, status, at, idx, payload, requires) in rows:
        if idx is None or idx > upto:
            continue  # beyond the entries this run reads
        eff = REVERSING_TC.get(tc, tc) if kind == "reversal" and tc else tc
        changes = json.loads(payload or "{}").get("changes", [])
        out.append(_Req(int(i), seid, int(tp), mod, cmd, eff, amount, status, as_utc(at),
                        idx, "address" in changes, requires or ""))
    return out


def _pseudonyms(app: App, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    k = DetectionTaxpayerKey
    with session_scope(app.engine) as s:
        return dict(s.execute(select(k.taxpayer_id, k.pseudonym)
                              .where(k.taxpayer_id.in_(sorted(ids)))).all())


def _add(out: dict[Key, list[Signal]], idx: dict[Key, list[int]], seid: str, day: date,
         sig: Signal, reqs: list[_Req]) -> None:
    key = (seid, day.isoformat())
    out[key].append(sig)
    idx[key].extend(r.audit_index for r in reqs if r.audit_index is not None)


def _just_under(reqs: list[_Req], th: Thresholds, day0: date, out: dict[Key, list[Signal]],
                idx: dict[Key, list[int]]) -> None:
    limits = {"291": (th.abatement_cents, "abatements"),
              "290": (th.increase_cents, "additional assessments")}
    near: dict[tuple[str, str], list[_Req]] = defaultdict(list)
    for r in reqs:
        if r.command == CommandCode.ADJ54 and r.tc in limits and r.amount is not None:
            limit = limits[r.tc][0]
            if limit > 0 and JUST_UNDER_SHARE * limit <= r.amount < limit:
                near[(r.seid, r.tc)].append(r)
    window = timedelta(days=max(th.window_days, 1))
    for (seid, tc), items in near.items():
        done: set[date] = set()
        for k, r in enumerate(items):
            day = r.at.date()
            if day < day0 or day in done:
                continue
            recent = [x for x in items[:k + 1] if r.at - x.at < window]
            if len(recent) < JUST_UNDER_MIN:
                continue
            done.add(day)
            limit, words = limits[tc]
            _add(out, idx, seid, day, Signal("adjust_just_under", WEIGHTS["adjust_just_under"], {
                "adjustments": [x.id for x in recent][-20:], "count": len(recent),
                "threshold": _money(limit), "window_days": th.window_days,
                "why": (f"{len(recent)} {words} within {th.window_days} days, each just under "
                        f"the {_money(limit)} two-person threshold")}), recent)


def _weak_tie(reqs: list[_Req], day0: date, pseud: dict[int, str],
              tps: dict[str, TaxpayerFacts], emps: dict[str, EmployeeFacts],
              counts: dict[str, int], population: int, out: dict[Key, list[Signal]],
              idx: dict[Key, list[int]]) -> None:
    for r in reqs:
        day = r.at.date()
        tp_name = pseud.get(r.taxpayer_id)
        emp, tp = emps.get(r.seid), tps.get(tp_name or "")
        if day < day0 or emp is None or tp is None:
            continue
        if emp.household_key and emp.household_key == tp.household_key:
            continue  # a household is a conflict (refused), not a weak tie
        ties: list[tuple[str, float]] = []
        if emp.last_name and tp.last_name and emp.last_name.upper() == tp.last_name.upper():
            ties.append(("the same surname", surname_weight(
                counts.get(tp.last_name.upper(), 0), population)))
        if emp.street_key and emp.street_key == tp.street_key and emp.zip == tp.zip:
            ties.append(("the same street", WEIGHTS["adjust_weak_tie"]))
        elif emp.zip and emp.zip == tp.zip:
            ties.append(("the same ZIP code", WEIGHTS["adjust_weak_tie_zip"]))
        if not ties:
            continue
        weight = min(WEIGHTS["adjust_weak_tie"], max(w for _, w in ties))
        what = "an abatement" if r.tc == "291" else f"a {r.command} change"
        _add(out, idx, r.seid, day, Signal("adjust_weak_tie", weight, {
            "adjustment": r.id, "command": r.command, "ties": [t for t, _ in ties],
            "why": f"{what} on an account that shares {' and '.join(t for t, _ in ties)} "
                   "with the employee"}, tp_name), [r])


def _refund_near(app: App, money: _Req, address: _Req) -> str | None:
    """Why the address change is near a refund (None: it is not)."""
    if "ADDRESS_NEAR_REFUND" in address.requires.split(","):
        return "the address change waited for a refund (ADDRESS_NEAR_REFUND)"
    with session_scope(app.engine) as s:
        issued = s.scalar(select(func.count()).select_from(Transaction)
                          .join(TaxModule, TaxModule.id == Transaction.module_id)
                          .where(TaxModule.taxpayer_id == money.taxpayer_id,
                                 Transaction.tc == "846",
                                 Transaction.txn_date >= money.at.date()))
        if issued:
            return "a refund (TC 846) was issued after the first change"
        if money.module_id is not None:
            from idrs.masterfile.commands import balance, module_transactions

            bal = balance(module_transactions(s, money.module_id))
            if bal < 0:
                return f"the module is in credit ({_money(-bal)} refundable)"
    return None


def _then_address(app: App, reqs: list[_Req], th: Thresholds, day0: date,
                  pseud: dict[int, str], out: dict[Key, list[Signal]],
                  idx: dict[Key, list[int]]) -> None:
    window = timedelta(days=th.refund_window_days)
    money = [r for r in reqs if (r.command == CommandCode.ADJ54 and r.tc == "291")
             or (r.command == CommandCode.REQ77 and r.tc == "571")]
    for addr in reqs:
        day = addr.at.date()
        if addr.command != CommandCode.ENREQ or not addr.address or day < day0:
            continue
        before = [m for m in money if m.taxpayer_id == addr.taxpayer_id
                  and timedelta(0) <= addr.at - m.at <= window and m.id < addr.id]
        if not before:
            continue
        first = before[-1]
        why_refund = _refund_near(app, first, addr)
        if why_refund is None:
            continue
        what = "an abatement" if first.tc == "291" else "a refund-hold release"
        ev = {"adjustment": first.id, "by": first.seid, "address_change": addr.id,
              "address_by": addr.seid, "refund": why_refund,
              "why": f"{what} followed by an address change of the same taxpayer within "
                     f"{(addr.at - first.at).days} days; {why_refund}"}
        for seid in dict.fromkeys((addr.seid, first.seid)):
            _add(out, idx, seid, day, Signal("adjust_then_address", WEIGHTS["adjust_then_address"],
                                             ev, pseud.get(addr.taxpayer_id)), [first, addr])


def _then_bank(app: App, reqs: list[_Req], th: Thresholds, day0: date,
               pseud: dict[int, str], out: dict[Key, list[Signal]],
               idx: dict[Key, list[int]]) -> None:
    window = timedelta(days=th.refund_window_days)
    money = [r for r in reqs if (r.command == CommandCode.ADJ54 and r.tc == "291")
             or (r.command == CommandCode.REQ77 and r.tc == "571")]
    if not money:
        return
    r_ = TaxReturn
    with session_scope(app.engine) as s:
        rows = s.execute(select(r_.taxpayer_id, r_.tax_year, r_.received_at, r_.bank_index,
                                r_.refund_cents)
                         .where(r_.taxpayer_id.in_(sorted({m.taxpayer_id for m in money})))
                         .order_by(r_.received_at, r_.id)).all()
    returns: dict[int, list[tuple[int, datetime, bytes | None, int]]] = defaultdict(list)
    for tp, year, received, bank, refund in rows:
        returns[int(tp)].append((int(year), as_utc(received), None if bank is None else bytes(bank),
                                 int(refund or 0)))
    done: set[tuple[int, int]] = set()
    for m in money:
        mine = returns.get(m.taxpayer_id, [])
        known = {bank for _, received, bank, _ in mine if received < m.at and bank is not None}
        for year, received, bank, refund in mine:
            day = received.date()
            if (bank is None or bank in known or refund <= 0 or not m.at <= received <= m.at + window
                    or day < day0 or (m.id, year) in done):
                continue
            done.add((m.id, year))
            what = "an abatement" if m.tc == "291" else "a refund-hold release"
            _add(out, idx, m.seid, day, Signal("adjust_then_bank", WEIGHTS["adjust_then_bank"], {
                "adjustment": m.id, "by": m.seid, "return_year": year,
                "why": f"{what} followed within {(received - m.at).days} days by a {year} return "
                       "claiming a refund to a bank account none of the taxpayer's earlier "
                       "returns used"}, pseud.get(m.taxpayer_id)), [m])


def add_signals(app: App, day0: date, size: int | None, tps: dict[str, TaxpayerFacts],
                emps: dict[str, EmployeeFacts], counts: dict[str, int], population: int,
                out: dict[Key, list[Signal]], idx: dict[Key, list[int]]) -> None:
    """Add the adjustment signals of the employee-days from ``day0`` to ``out`` (and the audit
    indexes they cite to ``idx``); only requests whose entry is before ``size`` (the end of
    the entries the run reads; None: all)."""
    from idrs.adjustments.service import thresholds_for

    th = thresholds_for(app)
    upto = (size if size is not None else 2**62) - 1
    back = max(th.window_days, th.refund_window_days)
    start = datetime(day0.year, day0.month, day0.day, tzinfo=UTC) - timedelta(days=back)
    reqs = _requests(app, start, int(upto))
    if not reqs:
        return
    pseud = _pseudonyms(app, {r.taxpayer_id for r in reqs})
    missing = {p for p in pseud.values() if p not in tps}
    if missing:
        tps = {**tps, **master_facts(app, missing)[0]}
    _just_under(reqs, th, day0, out, idx)
    _weak_tie(reqs, day0, pseud, tps, emps, counts, population, out, idx)
    _then_address(app, reqs, th, day0, pseud, out, idx)
    _then_bank(app, reqs, th, day0, pseud, out, idx)
