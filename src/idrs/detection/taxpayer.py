"""The taxpayer's side: an accounting of who opened the account, and the §7431(e) notice.

``accesses``: every research entry that opened the account (or revealed it among NAMES
results), with the date, the unit and a purpose category, never the employee's identity;
refused attempts are counted (nothing was shown); and every disclosure of the taxpayer's
return information to another agency (agency, basis, date, what was disclosed: the
§ 6103(p)(3) accounting, from ``disclosure.service.accounting``). Recorded as
``taxpayer:accesses:read``.

``notice``: the notice IRC §7431(e) requires once the alert's investigation records one of
the statute's triggers — a criminal charge, or a proposed disciplinary or adverse action
(``detection.investigations``); a referral alone is no trigger. It says that an
unauthorized inspection of the taxpayer's return information occurred, its date(s), which
trigger occurred, and the taxpayer's right to bring a civil action (§7431(a), within two
years of discovery, §7431(d)). Rendered as HTML and PDF (``idrs.documents``), stored, and
recorded as sent (``taxpayer:notice:send``), once per taxpayer and alert.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from idrs import documents
from idrs.audit import log as audit_log
from idrs.audit.events import Actor, make_event
from idrs.audit.store import raw
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.events import DetectionEvent
from idrs.detection.facts import refresh_pseudonyms
from idrs.detection.investigations import trigger_of
from idrs.detection.models import Alert, DetectionTaxpayerKey, TaxpayerNotice
from idrs.detection.results import LetterSent, Opening, TaxpayerAccounting
from idrs.detection.triage import read_entry
from idrs.errors import Conflict, IdrsError, NotFound, ValidationFailed
from idrs.identifiers import BadIdentifier, normalize_tin
from idrs.masterfile.models import AddressRecord, Taxpayer
from idrs.people.models import Employee, Unit
from idrs.vocabulary import CommandCode

PURPOSES = {
    "case": "examination or account work on an assigned case",
    "contact": "answering the taxpayer's contact (call, letter or visit)",
    "names": "name search (the account appeared among the results)",
    "other": "other account work",
}


def _purpose(entry: dict[str, Any]) -> str:
    if entry.get("object", {}).get("command") == CommandCode.NAMES:
        return PURPOSES["names"]
    basis = (entry.get("detail") or {}).get("basis") or ""
    return PURPOSES.get(basis.split(":")[0], PURPOSES["other"])


def accesses(app: App, *, tin: str, actor: str, interface: str = "cli") -> TaxpayerAccounting:
    """The accounting for ``tin``: date, unit, purpose of each opening; no employee identity."""
    try:
        canonical = normalize_tin(tin)
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None
    pseud = app.keyring.pseudonym(canonical)
    units: dict[str, str] = {}
    with session_scope(app.engine) as s:
        known = s.scalar(select(Taxpayer.id).where(
            Taxpayer.tin_index == app.keyring.tin_index(canonical))) is not None
        units = dict(s.execute(select(Employee.seid, Unit.code).join(Unit, Unit.id == Employee.unit_id)).all())
    if not known:  # the attempt is recorded like any other: no free existence probe
        audit_log.append(app.engine, make_event(
            DetectionEvent.TAXPAYER_ACCESSES_READ, time=app.clock.now(), actor=actor,
            outcome="not_found", interface=interface, obj={"taxpayer": pseud}))
        raise NotFound("no taxpayer with this TIN in the master file")
    opened: list[Opening] = []
    refused = 0
    with raw(app.engine) as db:
        # SQLite's LIKE never matches a BLOB (SQLITE_LIKE_DOESNT_MATCH_BLOBS): instr() does
        if db.sqlite:
            cur = db.execute("SELECT idx, leaf_input FROM audit_entry "
                             "WHERE instr(leaf_input, ?) > 0 ORDER BY idx", (pseud.encode(),))
        else:
            cur = db.execute("SELECT idx, leaf_input FROM audit_entry WHERE leaf_input LIKE ? "
                             "ORDER BY idx", (f"%{pseud}%".encode(),))
        for _idx, leaf in cur.fetchall():
            e = json.loads(bytes(leaf))
            obj = e.get("object", {})
            if e.get("type") not in ("access:research:decide", "access:adjustment:decide"):
                continue
            if obj.get("taxpayer") != pseud and pseud not in (obj.get("matches") or []):
                continue
            if e.get("outcome") != "allow":
                refused += 1
                continue
            opened.append(Opening(date=e["time"][:10], unit=units.get(e.get("actor", ""), "unknown"),
                                  purpose=_purpose(e), command=obj.get("command")))
    from idrs.disclosure import service as disclosure  # § 6103(p)(3): disclosures beside them

    disclosed = disclosure.accounting(app, pseud)
    audit_log.record(app, DetectionEvent.TAXPAYER_ACCESSES_READ, Actor(actor, interface),
                     {"taxpayer": pseud}, {"openings": len(opened), "disclosures": len(disclosed)})
    return TaxpayerAccounting(taxpayer=pseud, openings=opened, refused_attempts=refused,
                              disclosures=disclosed)


def _taxpayer_letterhead(app: App, pseud: str) -> dict[str, str]:
    refresh_pseudonyms(app)
    with session_scope(app.engine) as s:
        tid = s.scalar(select(DetectionTaxpayerKey.taxpayer_id).where(DetectionTaxpayerKey.pseudonym == pseud))
        if tid is None:
            raise NotFound("the taxpayer of this alert is not in the master file")
        tp = s.get(Taxpayer, tid)
        addr = s.scalars(select(AddressRecord).where(AddressRecord.taxpayer_id == tid)
                         .order_by(AddressRecord.valid_from.desc(), AddressRecord.id.desc())).first()
        assert tp is not None
        return {"name": f"{tp.first_name} {tp.last_name}".strip(),
                "street": addr.street if addr else "", "city": addr.city if addr else "",
                "state": addr.state if addr else "", "zip": addr.zip if addr else ""}


def notice(app: App, *, alert_id: str, out_dir: str | Path, actor: str,
           interface: str = "cli") -> list[LetterSent]:
    """Produce and record the §7431(e) notice(s) of an alert whose investigation recorded a
    statutory trigger (one per inspected taxpayer, once)."""
    with session_scope(app.engine) as s:
        alert = s.scalar(select(Alert).where(Alert.alert_id == (alert_id or "").strip().upper()[:40]))
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        trigger = trigger_of(s, alert.alert_id)
        if trigger is None:
            raise IdrsError(f"alert {alert.alert_id} ({alert.state}): no notice is due — IRC "
                            "7431(e) requires it on a criminal charge or a proposed adverse "
                            "action, and its investigation records neither")
        aid, indexes = alert.alert_id, json.loads(alert.audit_indexes)
        sent = {n.taxpayer for n in s.scalars(select(TaxpayerNotice).where(TaxpayerNotice.alert_id == aid))}
    inspected: dict[str, list[str]] = {}
    for i in indexes:
        e, _ = read_entry(app, i)
        tp = e.get("object", {}).get("taxpayer")
        if e.get("type") == "access:research:decide" and e.get("outcome") == "allow" and tp:
            inspected.setdefault(tp, []).append(e["time"][:10])
    if not inspected:
        raise IdrsError(f"alert {aid} cites no allowed inspection (refused attempts showed nothing): no notice is due")
    todo = {k: v for k, v in inspected.items() if k not in sent}
    if not todo:
        raise Conflict(f"the notices of alert {aid} were already sent")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[LetterSent] = []
    for n, (pseud, dates) in enumerate(sorted(todo.items()), start=1):
        when: datetime = app.clock.now()
        # claim the (alert, taxpayer) row first: of two requests at once (two triggers, two
        # retries) only one gets past the unique key and sends; a failure gives it back
        try:
            with session_scope(app.engine) as s:
                claim = TaxpayerNotice(alert_id=aid, taxpayer=pseud, html="", pdf_path=None,
                                       sent_at=when, audit_index=-1, trigger=trigger)
                s.add(claim)
                s.flush()
                claim_id = claim.id
        except IntegrityError:
            continue  # another request is sending this one
        try:
            letter = _taxpayer_letterhead(app, pseud)
            notice_id = f"{aid}-{n}"
            html = documents.html(documents.TaxpayerNotice(
                notice_id=notice_id, sent=when.date().isoformat(),
                dates=", ".join(sorted(set(dates))), trigger=trigger, **letter))
            html_path = out / f"notice-{notice_id}.html"
            html_path.write_text(html)
            pdf_path = out / f"notice-{notice_id}.pdf"
            pdf_path.write_bytes(documents.html_to_pdf(html))
            idx = audit_log.record(app, DetectionEvent.TAXPAYER_NOTICE_SEND,
                                   Actor(actor, interface), {"alert_id": aid, "taxpayer": pseud},
                                   {"dates": sorted(set(dates)), "trigger": trigger})
        except BaseException:
            with session_scope(app.engine) as s:
                s.execute(delete(TaxpayerNotice).where(TaxpayerNotice.id == claim_id))
            raise
        with session_scope(app.engine) as s:
            row = s.get(TaxpayerNotice, claim_id)
            assert row is not None
            row.html, row.pdf_path, row.audit_index = html, str(pdf_path), idx
        results.append(LetterSent(alert_id=aid, taxpayer=pseud, trigger=trigger,
                                  html=str(html_path), pdf=str(pdf_path),
                                  dates=sorted(set(dates)), audit_index=idx))
    if not results:
        raise Conflict(f"the notices of alert {aid} were already sent")
    return results
