"""Disclosures to other agencies in bulk, record by record, under a statutory basis.

The path of one batch (``submit``):

1. validate the body (shape and types only: a malformed body writes nothing, 422 naming
   each problem by line and field); a record that *lacks* something the statute needs is
   not malformed: it is decided and refused with the reason;
2. the agreement of the requesting system for the basis (``none``, ``active``,
   ``not_started``, ``expired``, ``revoked``), the request's signatory and rank;
3. per record: the name, the address's plausibility (``disclosure.addresses``), the
   proceeding and the official; the match against the master file (``disclosure.matching``);
4. plausibility across the batch: records per named official and per investigation, this
   batch plus the system's earlier batches within the agreement's window; a batch over a
   cap is **held** (one ``disclosure:batch:hold`` entry with the counts, nothing decided or
   released) until the disclosure officer approves (``approve``) or rejects (``reject``) it;
5. each record's facts go to the basis's Cedar policies (``disclosure.bases``): disclosed or
   refused with every reason; a disclosed record's answer holds only the basis's scope
   (``{"address_confirmed": true}`` for § 6103(i)(2)); nothing else of the master file
   leaves (never an address the requester did not give);
6. each decision is a canonical JSON document (taxpayer by pseudonym); their RFC 6962 Merkle
   tree's root is committed in ONE audit entry (``disclosure:batch:decide``), written in the
   same transaction that marks the batch decided; the decisions are returned (and readable
   later) only after that commit. Each decision's inclusion proof is served by ``proof``.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from idrs.audit import log as audit_log
from idrs.audit import merkle
from idrs.audit.events import Actor, canonical, make_event
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import is_sqlite, session_scope
from idrs.disclosure import addresses, bases, matching
from idrs.disclosure.events import DisclosureEvent
from idrs.disclosure.models import DisclosureAgreement, DisclosureBatch, DisclosureDecision
from idrs.errors import AccessDenied, Conflict, NotFound, Reason, ValidationFailed
from idrs.identifiers import BadIdentifier, normalize_tin
from idrs.people.models import Employee, SystemPrincipal
from idrs.people.roles import DISCLOSURE_OFFICERS, DISCLOSURE_READERS
from idrs.people.systems import AGENCY_SYSTEM, Principal

#: the most records one batch may carry (a larger file is split by the requester)
MAX_RECORDS = 2_000_000
MAX_TEXT = 120
REQUEST_FIELDS = ("signatory", "signatory_rank", "agency", "proceeding", "official", "reference")
RECORD_FIELDS = ("tin", "first_name", "last_name", "address", "proceeding", "official",
                 "reference")
AUDIT_UNAVAILABLE = Reason("AUDIT_UNAVAILABLE", "the audit log cannot be written; nothing was done")
INSERT_CHUNK = 5000
#: leaves per stored block hash (a perfect subtree: level BLOCK_LEVEL)
BLOCK_LEVEL = 10
BLOCK = 1 << BLOCK_LEVEL


# -- agreements --------------------------------------------------------------------------------


def _system(s: Session, name: str) -> SystemPrincipal:
    p = s.scalar(select(SystemPrincipal).where(SystemPrincipal.name == (name or "").strip().lower()))
    if p is None:
        raise NotFound(f"no system {name}")
    return p


def add_agreement(app: App, *, system: str, basis: str, agency: str, federal: bool,
                  ranks: list[str], cap_official: int, cap_investigation: int,
                  window_days: int, start: date | None, days: int, actor: str,
                  interface: str = "cli") -> dict[str, Any]:
    """Record an agency system's agreement for one basis (the latest one for a basis governs)."""
    problems = []
    if basis not in bases.BASES:
        problems.append(f"basis: one of {', '.join(sorted(bases.BASES))}")
    agency = (agency or "").strip()
    if not agency or len(agency) > MAX_TEXT:
        problems.append(f"agency: 1 to {MAX_TEXT} characters")
    clean_ranks = sorted({r.strip().lower() for r in ranks if r.strip()})
    if not clean_ranks or any(len(r) > 60 for r in clean_ranks):
        problems.append("ranks: at least one rank (comma-separated, at most 60 characters each)")
    for name, value, hi in (("cap-official", cap_official, 10_000_000),
                            ("cap-investigation", cap_investigation, 10_000_000),
                            ("window-days", window_days, 3660), ("days", days, 3660)):
        if not 1 <= value <= hi:
            problems.append(f"{name}: 1 to {hi}")
    if problems:
        raise ValidationFailed(problems)
    start = start or app.clock.now().date()
    with session_scope(app.engine) as s:
        p = _system(s, system)
        if p.kind != AGENCY_SYSTEM:
            raise ValidationFailed([f"system: {p.name} is a {p.kind}, not an {AGENCY_SYSTEM}"])
        pid, pname = p.id, p.name
    idx = audit_log.record(
        app, DisclosureEvent.AGREEMENT_ADD, Actor(actor, interface),
        {"system": pname, "basis": basis},
        {"agency": agency, "federal": federal, "ranks": clean_ranks,
         "cap_official": cap_official, "cap_investigation": cap_investigation,
         "window_days": window_days, "start": start.isoformat(), "days": days})
    with session_scope(app.engine) as s:
        row = DisclosureAgreement(
            system_id=pid, basis=basis, agency=agency, federal=federal,
            ranks=",".join(clean_ranks), cap_official=cap_official,
            cap_investigation=cap_investigation, window_days=window_days, start_date=start,
            end_date=start + timedelta(days=days - 1), created_by=actor,
            created_at=app.clock.now())
        s.add(row)
        s.flush()
        return {**_agreement_view(row, pname, app.clock.now().date()), "audit_index": idx}


def revoke_agreement(app: App, *, agreement_id: int, actor: str,
                     interface: str = "cli") -> dict[str, Any]:
    with session_scope(app.engine) as s:
        a = s.get(DisclosureAgreement, agreement_id)
        if a is None:
            raise NotFound(f"no disclosure agreement {agreement_id}")
        if a.revoked_at is not None:
            raise Conflict(f"disclosure agreement {agreement_id} is already revoked")
    idx = audit_log.record(app, DisclosureEvent.AGREEMENT_REVOKE, Actor(actor, interface),
                           {"agreement": agreement_id})
    with session_scope(app.engine) as s:
        a = s.get(DisclosureAgreement, agreement_id)
        assert a is not None
        a.revoked_at, a.revoked_by = app.clock.now(), actor
        name = s.scalar(select(SystemPrincipal.name).where(SystemPrincipal.id == a.system_id))
        return {**_agreement_view(a, name or "?", app.clock.now().date()), "audit_index": idx}


def agreement_state(a: DisclosureAgreement | None, today: date) -> str:
    if a is None:
        return "none"
    if a.revoked_at is not None:
        return "revoked"
    if today < a.start_date:
        return "not_started"
    if today > a.end_date:
        return "expired"
    return "active"


def _agreement_view(a: DisclosureAgreement, system: str, today: date) -> dict[str, Any]:
    return {"agreement_id": a.id, "system": system, "basis": a.basis, "agency": a.agency,
            "federal": a.federal, "ranks": a.ranks.split(","), "cap_official": a.cap_official,
            "cap_investigation": a.cap_investigation, "window_days": a.window_days,
            "start": a.start_date.isoformat(), "end": a.end_date.isoformat(),
            "state": agreement_state(a, today)}


def list_agreements(app: App, *, system: str | None = None) -> list[dict[str, Any]]:
    today = app.clock.now().date()
    with session_scope(app.engine) as s:
        q = select(DisclosureAgreement, SystemPrincipal.name).join(
            SystemPrincipal, SystemPrincipal.id == DisclosureAgreement.system_id)
        if system:
            q = q.where(SystemPrincipal.name == system.strip().lower())
        return [_agreement_view(a, n, today) for a, n in s.execute(q.order_by(DisclosureAgreement.id))]


def _current_agreement(s: Session, system_id: int, basis: str) -> DisclosureAgreement | None:
    return s.scalar(select(DisclosureAgreement).where(
        DisclosureAgreement.system_id == system_id, DisclosureAgreement.basis == basis)
        .order_by(DisclosureAgreement.id.desc()).limit(1))


# -- validating a body -------------------------------------------------------------------------


def _text(value: Any, where: str, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}: a string")
        return ""
    if len(value) > MAX_TEXT:
        problems.append(f"{where}: at most {MAX_TEXT} characters")
        return ""
    return " ".join(value.split())


def _validate(basis: Any, request: Any, records: Any) -> tuple[str, dict[str, str],
                                                               list[dict[str, Any]]]:
    problems: list[str] = []
    if not isinstance(basis, str) or basis not in bases.BASES:
        problems.append(f"basis: one of {', '.join(sorted(bases.BASES))}")
    req: dict[str, str] = {}
    if not isinstance(request, dict):
        problems.append("request: an object")
    else:
        for k in request:
            if k not in REQUEST_FIELDS:
                problems.append(f"request.{str(k)[:40]}: unknown field "
                                f"(known: {', '.join(REQUEST_FIELDS)})")
        req = {k: _text(request.get(k), f"request.{k}", problems) for k in REQUEST_FIELDS}
    out: list[dict[str, Any]] = []
    if not isinstance(records, list) or not records:
        problems.append("records: a non-empty list")
    elif len(records) > MAX_RECORDS:
        problems.append(f"records: at most {MAX_RECORDS}")
    else:
        for n, r in enumerate(records, start=1):
            if len(problems) > 50:
                break
            if not isinstance(r, dict):
                problems.append(f"line {n}: an object")
                continue
            bad = [k for k in r if k not in RECORD_FIELDS]
            if bad:
                problems.append(f"line {n}: {str(bad[0])[:40]}: unknown field")
                continue
            rec: dict[str, Any] = {k: _text(r.get(k), f"line {n}: {k}", problems)
                                   for k in RECORD_FIELDS if k != "address"}
            addr = r.get("address")
            if addr is not None and not isinstance(addr, dict):
                problems.append(f"line {n}: address: an object with street, city, state, zip")
            elif isinstance(addr, dict):
                extra = [k for k in addr if k not in addresses.FIELDS]
                if extra:
                    problems.append(f"line {n}: address.{str(extra[0])[:40]}: unknown field")
                rec["address"] = {k: _text(addr.get(k), f"line {n}: address.{k}", problems)
                                  for k in addresses.FIELDS}
            else:
                rec["address"] = None
            out.append(rec)
    if problems:
        raise ValidationFailed(problems)
    assert isinstance(basis, str)
    return basis, req, out


# -- deciding ----------------------------------------------------------------------------------


def _person(text: str) -> str:
    """How officials and investigations are counted: case and spacing do not split them."""
    return " ".join(text.upper().split())


@dataclass
class _Prepared:
    facts: list[dict[str, Any]]
    matches: list[matching.Match]
    officials: Counter[str]
    investigations: Counter[str]


def _prepare(app: App, req: dict[str, str], records: list[dict[str, Any]]) -> _Prepared:
    probes: list[matching.Probe | None] = []
    facts: list[dict[str, Any]] = []
    officials: Counter[str] = Counter()
    investigations: Counter[str] = Counter()
    for r in records:
        first, last = matching.name_key(r["first_name"]), matching.name_key(r["last_name"])
        status = addresses.status(r["address"])
        key = addresses.norm_key(r["address"]) if status == "given" else None
        tin_state, tin = "none", None
        if r["tin"]:
            try:
                tin, tin_state = normalize_tin(r["tin"]), "valid"
            except BadIdentifier:
                tin_state = "invalid"
        proceeding = r["proceeding"] or req["proceeding"]
        official = r["official"] or req["official"]
        if official:
            officials[_person(official)] += 1
        if proceeding:
            investigations[_person(proceeding)] += 1
        named = bool(first and last)
        probes.append(matching.Probe(tin, first, last, key) if named else None)
        facts.append({"names_taxpayer": named, "address": status,
                      "proceeding_named": bool(proceeding), "official_named": bool(official),
                      "tin": tin_state})
    with app.engine.connect() as conn:
        matches = matching.match_all(app, conn, probes)
        conn.rollback()
    return _Prepared(facts, matches, officials, investigations)


def _window_counts(s: Session, system_id: int, since: datetime,
                   exclude: str | None) -> tuple[Counter[str], Counter[str]]:
    """Records per official and per investigation in the system's batches since ``since``
    (held ones included: a cap cannot be dodged by splitting while one batch waits)."""
    off: Counter[str] = Counter()
    inv: Counter[str] = Counter()
    q = select(DisclosureBatch.id, DisclosureBatch.counts).where(
        DisclosureBatch.system_id == system_id, DisclosureBatch.submitted_at >= since,
        DisclosureBatch.status.in_(("held", "decided")))
    for bid, counts in s.execute(q):
        if bid == exclude:
            continue
        c = json.loads(counts)
        off.update(c.get("officials", {}))
        inv.update(c.get("investigations", {}))
    return off, inv


def _plausibility(prep: _Prepared, prior: tuple[Counter[str], Counter[str]],
                  a: DisclosureAgreement | None) -> dict[str, Any]:
    """The counts shown to the officer: per official / investigation, batch and window."""
    cap_o = a.cap_official if a else 0
    cap_i = a.cap_investigation if a else 0

    def rows(this: Counter[str], before: Counter[str], cap: int) -> list[dict[str, Any]]:
        return sorted(({"name": k, "batch": n, "window": n + before.get(k, 0), "cap": cap,
                        "over": n + before.get(k, 0) > cap} for k, n in this.items()),
                      key=lambda r: (-r["window"], r["name"]))

    off = rows(prep.officials, prior[0], cap_o)
    inv = rows(prep.investigations, prior[1], cap_i)
    return {"officials": off, "investigations": inv,
            # no agreement, no caps: the records are refused for that already
            "over_cap": a is not None and any(r["over"] for r in off + inv),
            "cap_official": cap_o, "cap_investigation": cap_i,
            "window_days": a.window_days if a else 0}


def _batch_facts(principal_agency: str | None, req: dict[str, str],
                 a: DisclosureAgreement | None, today: date) -> dict[str, Any]:
    state = agreement_state(a, today)
    agency_named = a is not None and (principal_agency or "").strip().lower() == \
        a.agency.lower() and (not req["agency"] or req["agency"].lower() == a.agency.lower())
    ranks = set(a.ranks.split(",")) if a else set()
    return {"agreement": state, "agency_named": agency_named,
            "federal": bool(a and a.federal), "signed": bool(req["signatory"]),
            "rank_ok": bool(req["signatory_rank"]) and req["signatory_rank"].lower() in ranks}


def _document(batch_id: str, line: int, basis: str, allowed: bool, reasons: list[str],
              pseud: str | None, policy: str) -> dict[str, Any]:
    return {"v": 1, "batch": batch_id, "line": line, "basis": basis,
            "outcome": "disclosed" if allowed else "refused", "reasons": reasons,
            "answer": {"address_confirmed": True} if allowed else {},
            "taxpayer": pseud, "policy": policy}


def _pseudonyms(app: App, ids: set[int]) -> dict[int, str]:
    from idrs.masterfile.reads import pseudonyms

    with app.engine.connect() as conn:
        out = pseudonyms(conn, app.keyring, ids)
        conn.rollback()
    return out


def _decide_and_commit(app: App, *, batch_id: str, basis: str, system: str,
                       batch_facts: dict[str, Any], prep: _Prepared, over_cap: bool,
                       cap_approved: bool, interface: str,
                       extra: dict[str, Any]) -> dict[str, Any]:
    """Decide every record, store the decisions, commit the root in ONE entry, return them."""
    policy = bases.version()
    pseuds = _pseudonyms(app, {m.taxpayer_id for m in prep.matches if m.taxpayer_id})
    rows: list[dict[str, Any]] = []
    tree = merkle.CompactRange()
    hashes: list[bytes] = []
    reasons_count: Counter[str] = Counter()
    disclosed = 0
    decisions: list[dict[str, Any]] = []
    for n, (f, m) in enumerate(zip(prep.facts, prep.matches, strict=True), start=1):
        ctx = {**batch_facts, **f, "match": m.status, "address_on_file": m.address_on_file,
               "over_cap": over_cap, "cap_approved": cap_approved}
        allowed, reasons = bases.decide(basis, ctx)
        pseud = pseuds.get(m.taxpayer_id) if m.taxpayer_id else None
        doc = _document(batch_id, n, basis, allowed, reasons, pseud, policy)
        leaf = canonical(doc)
        h = merkle.leaf_hash(leaf)
        tree.append(h)
        hashes.append(h)
        disclosed += allowed
        reasons_count.update(reasons)
        rows.append({"batch_id": batch_id, "line": n, "outcome": doc["outcome"],
                     "reasons": ",".join(reasons), "taxpayer_pseudonym": pseud,
                     "document": leaf.decode(), "leaf_hash": h.hex()})
        decisions.append({"line": n, "outcome": doc["outcome"], "reasons": reasons,
                          "answer": doc["answer"]})
    root = tree.root().hex()
    total = len(rows)
    blocks = b"".join(merkle.subtree_hash(hashes[i:i + BLOCK])
                      for i in range(0, total - total % BLOCK, BLOCK))
    table = cast(Table, DisclosureDecision.__table__)
    bind = app.engine.execution_options(idrs_write=True) if is_sqlite(app.engine) else app.engine
    with bind.begin() as conn:  # Core executemany: no ORM bookkeeping per row
        for i in range(0, total, INSERT_CHUNK):
            conn.execute(insert(table), rows[i:i + INSERT_CHUNK])
    now = app.clock.now()
    entry = make_event(
        DisclosureEvent.BATCH_DECIDE, time=now, actor=f"system:{system}", outcome="success",
        interface=interface,
        obj={"batch": batch_id, "basis": basis, "root": root, "tree_size": total},
        detail={"disclosed": disclosed, "refused": total - disclosed,
                "reasons": dict(sorted(reasons_count.items())), **extra},
        policy=policy)
    sql = ("UPDATE disclosure_batch SET status = :status, audit_index = :idx, root = :root, "
           "policy = :policy, blocks = :blocks, disclosed = :disclosed, refused = :refused, reasons = :reasons, "
           "decided_at = :at WHERE id = :id")
    params = {"status": "decided", "idx": audit_log.ENTRY_INDEX, "root": root, "policy": policy,
              "blocks": blocks,
              "disclosed": disclosed, "refused": total - disclosed,
              "reasons": json.dumps(dict(sorted(reasons_count.items()))),
              "at": now, "id": batch_id}
    try:
        idx = audit_log.append(app.engine, entry, also=[(sql, params)])
    except audit_log.AlsoFailed as exc:
        raise AccessDenied([AUDIT_UNAVAILABLE], exc.index) from None
    except audit_log.AuditUnavailable:
        with session_scope(app.engine) as s:  # nothing was committed to: nothing stays
            s.execute(delete(DisclosureDecision).where(DisclosureDecision.batch_id == batch_id))
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None
    return {"batch_id": batch_id, "status": "decided", "basis": basis, "audit_index": idx,
            "root": root, "records": total, "disclosed": disclosed,
            "refused": total - disclosed, "decisions": decisions}


def _new_id() -> str:
    return "D-" + secrets.token_hex(8)


def submit(app: App, principal: Principal, *, basis: Any, request: Any, records: Any,
           interface: str = "api") -> dict[str, Any]:
    """Decide a batch (or hold it over a cap). See the module docstring."""
    if principal.kind != AGENCY_SYSTEM:  # the route checks the kind too; fail closed here
        raise AccessDenied([Reason("WRONG_PRINCIPAL", "disclosures are for agency systems")])
    basis_name, req, recs = _validate(basis, request, records)
    now = app.clock.now()
    today = as_utc(now).date()
    with session_scope(app.engine) as s:
        a = _current_agreement(s, principal.id, basis_name)
        since = now - timedelta(days=a.window_days if a else 1)
        prior = _window_counts(s, principal.id, since, None)
        agreement_id = a.id if a else None
        bf = _batch_facts(principal.agency, req, a, today)
        prep = _prepare(app, req, recs)
        plaus = _plausibility(prep, prior, a)
    batch_id = _new_id()
    counts = {"officials": dict(prep.officials), "investigations": dict(prep.investigations)}
    request_enc = app.keyring.encrypt(json.dumps({"request": req, "records": recs}),
                                      "disclosure_batch.request")
    hold = plaus["over_cap"] and bf["agreement"] == "active"
    with session_scope(app.engine) as s:
        s.add(DisclosureBatch(
            id=batch_id, system_id=principal.id, agreement_id=agreement_id, basis=basis_name,
            status="deciding", records=len(recs), disclosed=0, refused=0, submitted_at=now,
            counts=json.dumps(counts), reasons="{}", request_enc=request_enc))
    if hold:
        detail = _hold_detail(plaus)
        try:
            idx = audit_log.record(
                app, DisclosureEvent.BATCH_HOLD, Actor(principal.actor, interface),
                {"batch": batch_id, "basis": basis_name, "records": len(recs)}, detail,
                outcome="held")
        except audit_log.AuditUnavailable:
            _drop_batch(app, batch_id)
            raise AccessDenied([AUDIT_UNAVAILABLE]) from None
        with session_scope(app.engine) as s:
            b = s.get(DisclosureBatch, batch_id)
            assert b is not None
            b.status, b.hold_index = "held", idx
        return {"batch_id": batch_id, "status": "held", "basis": basis_name,
                "audit_index": idx, "root": None, "records": len(recs),
                "counts": plaus, "decisions": []}
    try:
        return _decide_and_commit(app, batch_id=batch_id, basis=basis_name,
                                  system=principal.name, batch_facts=bf, prep=prep,
                                  over_cap=plaus["over_cap"], cap_approved=False,
                                  interface=interface, extra={})
    except AccessDenied:
        _drop_batch(app, batch_id)
        raise


def _hold_detail(plaus: dict[str, Any]) -> dict[str, Any]:
    """Numbers only (no official's name in the log)."""
    off, inv = plaus["officials"], plaus["investigations"]
    return {"cap_official": plaus["cap_official"],
            "cap_investigation": plaus["cap_investigation"],
            "window_days": plaus["window_days"],
            "max_per_official": max((r["window"] for r in off), default=0),
            "max_per_investigation": max((r["window"] for r in inv), default=0),
            "officials_over": sum(r["over"] for r in off),
            "investigations_over": sum(r["over"] for r in inv)}


def _drop_batch(app: App, batch_id: str) -> None:
    with session_scope(app.engine) as s:
        b = s.get(DisclosureBatch, batch_id)
        if b is not None and b.status == "deciding":
            b.status = "failed"


# -- the disclosure officer --------------------------------------------------------------------


def _require(app: App, who: Employee, roles: frozenset[str], what: str, interface: str,
             address: str | None = None) -> None:
    from idrs.grants.records import require

    require(app, who, roles, what, interface, address)


def _resolve_held(app: App, who: Employee, batch_id: str, *, approve: bool, interface: str,
                  address: str | None) -> dict[str, Any]:
    _require(app, who, DISCLOSURE_OFFICERS, "approving or rejecting a held disclosure batch",
             interface, address)
    with session_scope(app.engine) as s:
        b = s.get(DisclosureBatch, (batch_id or "").strip()[:24])
        if b is None:
            raise NotFound(f"no disclosure batch {batch_id}")
        if b.status != "held":
            raise Conflict(f"batch {b.id} is {b.status}, not held")
        p = s.get(SystemPrincipal, b.system_id)
        assert p is not None
        a = _current_agreement(s, b.system_id, b.basis)
        body = json.loads(app.keyring.decrypt(bytes(b.request_enc), "disclosure_batch.request"))
        prior = _window_counts(s, b.system_id, b.submitted_at - timedelta(
            days=a.window_days if a else 1), b.id)
        system, agency, basis, bid = p.name, p.agency, b.basis, b.id
        b.status = "deciding"  # no second approval while this one runs
    req, recs = body["request"], body["records"]
    prep = _prepare(app, req, recs)
    plaus = _plausibility(prep, prior, a)
    event = DisclosureEvent.BATCH_APPROVE if approve else DisclosureEvent.BATCH_REJECT
    try:
        approval = audit_log.record(app, event, Actor(who.seid, interface, address),
                                    {"batch": bid, "basis": basis, "system": system},
                                    _hold_detail(plaus))
    except audit_log.AuditUnavailable:
        with session_scope(app.engine) as s:
            held = s.get(DisclosureBatch, bid)
            assert held is not None
            held.status = "held"
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None
    with session_scope(app.engine) as s:
        held = s.get(DisclosureBatch, bid)
        assert held is not None
        held.approved_by, held.approval_index = who.seid, approval
    bf = _batch_facts(agency, req, a, as_utc(app.clock.now()).date())
    try:
        out = _decide_and_commit(
            app, batch_id=bid, basis=basis, system=system, batch_facts=bf, prep=prep,
            over_cap=True, cap_approved=approve, interface=interface,
            extra={"approved" if approve else "rejected": {"by": who.seid, "index": approval}})
    except AccessDenied:  # nothing was released: the batch waits again
        with session_scope(app.engine) as s:
            held = s.get(DisclosureBatch, bid)
            if held is not None and held.status == "deciding":
                held.status = "held"
        raise
    if not approve:
        with session_scope(app.engine) as s:
            done = s.get(DisclosureBatch, bid)
            assert done is not None
            done.status = "rejected"
        out["status"] = "rejected"
    return out


def approve(app: App, who: Employee, batch_id: str, *, interface: str = "cli",
            address: str | None = None) -> dict[str, Any]:
    """The disclosure officer lets a held batch over its caps be decided (record by record)."""
    return _resolve_held(app, who, batch_id, approve=True, interface=interface, address=address)


def reject(app: App, who: Employee, batch_id: str, *, interface: str = "cli",
           address: str | None = None) -> dict[str, Any]:
    """The disclosure officer refuses a held batch: every record refused (CAP_NOT_APPROVED)."""
    return _resolve_held(app, who, batch_id, approve=False, interface=interface, address=address)


# -- reading batches ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who reads: a requesting system (its own batches only) or an employee reader."""

    system_id: int | None = None
    employee: Employee | None = None


def _batch_row(s: Session, batch_id: str, viewer: Viewer) -> tuple[DisclosureBatch, str, str | None]:
    b = s.get(DisclosureBatch, (batch_id or "").strip()[:24])
    # another system's batch is answered exactly like a missing one
    if b is None or b.status in ("deciding", "failed") or (
            viewer.system_id is not None and b.system_id != viewer.system_id):
        raise NotFound(f"no disclosure batch {batch_id}")
    p = s.get(SystemPrincipal, b.system_id)
    return b, p.name if p else "?", p.agency if p else None


def _batch_view(b: DisclosureBatch, system: str, agency: str | None,
                officer: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "batch_id": b.id, "system": system, "agency": agency, "basis": b.basis,
        "status": b.status, "records": b.records, "disclosed": b.disclosed,
        "refused": b.refused, "reasons": json.loads(b.reasons or "{}"),
        "submitted_at": as_utc(b.submitted_at).isoformat(),
        "decided_at": as_utc(b.decided_at).isoformat() if b.decided_at else None,
        "audit_index": b.audit_index, "root": b.root, "hold_index": b.hold_index,
        "approved_by": b.approved_by, "approval_index": b.approval_index,
    }
    if officer:
        c = json.loads(b.counts)
        out["counts"] = {k: sorted(({"name": n, "batch": v} for n, v in c.get(k, {}).items()),
                                   key=lambda r: (-r["batch"], r["name"]))
                         for k in ("officials", "investigations")}
    return out


def _check_reader(app: App, viewer: Viewer, interface: str, address: str | None) -> None:
    if viewer.system_id is None:
        if viewer.employee is None:
            raise AccessDenied([Reason("AUTH_REQUIRED", "sign in")])
        _require(app, viewer.employee, DISCLOSURE_READERS, "disclosure batches", interface,
                 address)


def get_batch(app: App, viewer: Viewer, batch_id: str, *, limit: int = 1000, offset: int = 0,
              outcome: str | None = None, interface: str = "api",
              address: str | None = None) -> dict[str, Any]:
    """One batch and its decisions (``limit``/``offset``; ``outcome`` filters)."""
    _check_reader(app, viewer, interface, address)
    with session_scope(app.engine) as s:
        b, system, agency = _batch_row(s, batch_id, viewer)
        out = _batch_view(b, system, agency, viewer.employee is not None)
        q = select(DisclosureDecision.line, DisclosureDecision.outcome,
                   DisclosureDecision.reasons).where(DisclosureDecision.batch_id == b.id)
        if outcome:
            q = q.where(DisclosureDecision.outcome == outcome)
        rows = s.execute(q.order_by(DisclosureDecision.line).limit(limit + 1).offset(offset)).all()
    decisions = [{"line": line, "outcome": o, "reasons": r.split(",") if r else [],
                  "answer": {"address_confirmed": True} if o == "disclosed" else {}}
                 for line, o, r in rows[:limit]]
    out.update(decisions=decisions, limit=limit, offset=offset,
               next_offset=offset + limit if len(rows) > limit else None)
    return out


def list_batches(app: App, viewer: Viewer, *, status: str | None = None, system: str | None = None,
                 limit: int = 100, offset: int = 0, interface: str = "api",
                 address: str | None = None) -> dict[str, Any]:
    _check_reader(app, viewer, interface, address)
    with session_scope(app.engine) as s:
        q = select(DisclosureBatch, SystemPrincipal.name, SystemPrincipal.agency).join(
            SystemPrincipal, SystemPrincipal.id == DisclosureBatch.system_id).where(
            DisclosureBatch.status.in_(("held", "decided", "rejected")))
        if viewer.system_id is not None:
            q = q.where(DisclosureBatch.system_id == viewer.system_id)
        elif system:
            q = q.where(SystemPrincipal.name == system.strip().lower())
        if status:
            q = q.where(DisclosureBatch.status == status)
        rows = s.execute(q.order_by(DisclosureBatch.submitted_at.desc(), DisclosureBatch.id)
                         .limit(limit + 1).offset(offset)).all()
        items = [_batch_view(b, n, ag, viewer.employee is not None) for b, n, ag in rows[:limit]]
    return {"batches": items, "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}


def queue(app: App, who: Employee, *, limit: int = 200, interface: str = "api",
          address: str | None = None) -> dict[str, Any]:
    """The disclosure officer's queue: held batches with their counts against the caps, and
    the latest refused records with why."""
    _require(app, who, DISCLOSURE_READERS, "the disclosure queue", interface, address)
    with session_scope(app.engine) as s:
        held = []
        for b, name, agency in s.execute(
                select(DisclosureBatch, SystemPrincipal.name, SystemPrincipal.agency)
                .join(SystemPrincipal, SystemPrincipal.id == DisclosureBatch.system_id)
                .where(DisclosureBatch.status == "held").order_by(DisclosureBatch.submitted_at)):
            a = _current_agreement(s, b.system_id, b.basis)
            body = json.loads(b.counts)
            prior = _window_counts(s, b.system_id, b.submitted_at - timedelta(
                days=a.window_days if a else 1), b.id)
            prep = _Prepared([], [], Counter(body.get("officials", {})),
                             Counter(body.get("investigations", {})))
            view = _batch_view(b, name, agency, True)
            view["counts"] = _plausibility(prep, prior, a)
            held.append(view)
        refused = [
            {"batch_id": bid, "line": line, "reasons": r.split(",") if r else [],
             "system": name, "basis": basis}
            for bid, line, r, name, basis in s.execute(
                select(DisclosureDecision.batch_id, DisclosureDecision.line,
                       DisclosureDecision.reasons, SystemPrincipal.name, DisclosureBatch.basis)
                .join(DisclosureBatch, DisclosureBatch.id == DisclosureDecision.batch_id)
                .join(SystemPrincipal, SystemPrincipal.id == DisclosureBatch.system_id)
                .where(DisclosureDecision.outcome == "refused",
                       DisclosureBatch.status.in_(("decided", "rejected")))
                .order_by(DisclosureBatch.decided_at.desc(), DisclosureDecision.line)
                .limit(limit))]
    return {"held": held, "refused": refused}


# -- proofs ------------------------------------------------------------------------------------


def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:n]) from all the leaf hashes (audit.merkle's plan, evaluated)."""
    return _proof_from(len(leaf_hashes), index, dict(enumerate(leaf_hashes)), [])


def _proof_from(size: int, index: int, leaves: dict[int, bytes],
                blocks: list[bytes]) -> list[bytes]:
    """The proof from the leaves it needs and the hashes of complete BLOCK-leaf blocks."""
    plan = merkle.inclusion_plan(index, size)
    nodes = {}
    for group in plan:
        for level, i in group:
            if level >= BLOCK_LEVEL and blocks:
                lo = i << (level - BLOCK_LEVEL)
                nodes[(level, i)] = merkle.subtree_hash(
                    blocks[lo:lo + (1 << (level - BLOCK_LEVEL))])
            else:
                lo = i << level
                nodes[(level, i)] = merkle.subtree_hash(
                    [leaves[j] for j in range(lo, lo + (1 << level))])
    return merkle.evaluate(plan, nodes)


def proof(app: App, viewer: Viewer, batch_id: str, line: int, *, interface: str = "api",
          address: str | None = None) -> dict[str, Any]:
    """One record's decision document, its leaf hash, its inclusion proof and the root
    committed in the batch's audit entry. Reads the record's block of leaves, the last
    (incomplete) block's, and the stored hashes of the complete blocks."""
    _check_reader(app, viewer, interface, address)
    with session_scope(app.engine) as s:
        b, _system, _agency = _batch_row(s, batch_id, viewer)
        if b.audit_index is None or b.root is None:
            raise Conflict(f"batch {b.id} is {b.status}: nothing decided yet")
        if not 1 <= line <= b.records:
            raise NotFound(f"batch {b.id} has no line {line} (1 to {b.records})")
        doc = s.scalar(select(DisclosureDecision.document).where(
            DisclosureDecision.batch_id == b.id, DisclosureDecision.line == line))
        size = b.records
        raw_blocks = bytes(b.blocks or b"")
        blocks = [raw_blocks[i:i + 32] for i in range(0, len(raw_blocks), 32)]
        wanted = {(line - 1) // BLOCK, (size - 1) // BLOCK}
        leaves: dict[int, bytes] = {}
        for blk in wanted:
            for n, h in s.execute(select(DisclosureDecision.line, DisclosureDecision.leaf_hash)
                                  .where(DisclosureDecision.batch_id == b.id,
                                         DisclosureDecision.line > blk * BLOCK,
                                         DisclosureDecision.line <= (blk + 1) * BLOCK)):
                leaves[n - 1] = bytes.fromhex(h)
        bid, root, idx = b.id, b.root, b.audit_index
    assert doc is not None
    path = _proof_from(size, line - 1, leaves, blocks)
    # served only if it verifies against the committed root (fail closed)
    merkle.verify_inclusion(line - 1, size, leaves[line - 1], path, bytes.fromhex(root))
    return {"batch_id": bid, "line": line, "document": doc,
            "leaf_hash": leaves[line - 1].hex(), "leaf_index": line - 1,
            "tree_size": size, "proof": [p.hex() for p in path], "root": root,
            "audit_index": idx}


# -- the accounting of disclosures (§ 6103(p)(3)) ----------------------------------------------


def accounting(app: App, pseudonym: str) -> list[dict[str, Any]]:
    """Every disclosure of this taxpayer's return information: date, agency, basis, what."""
    with session_scope(app.engine) as s:
        rows = s.execute(
            select(DisclosureBatch.decided_at, SystemPrincipal.agency, SystemPrincipal.name,
                   DisclosureBatch.basis, DisclosureBatch.id, DisclosureDecision.line)
            .join(DisclosureBatch, DisclosureBatch.id == DisclosureDecision.batch_id)
            .join(SystemPrincipal, SystemPrincipal.id == DisclosureBatch.system_id)
            .where(DisclosureDecision.taxpayer_pseudonym == pseudonym,
                   DisclosureDecision.outcome == "disclosed",
                   DisclosureBatch.status == "decided")
            .order_by(DisclosureBatch.decided_at, DisclosureDecision.line)).all()
    out = []
    for at, agency, system, basis, bid, line in rows:
        b = bases.BASES.get(basis)
        out.append({"date": as_utc(at).date().isoformat() if at else None, "agency": agency,
                    "system": system, "basis": basis, "statute": b.statute if b else basis,
                    "disclosed": "confirmation that an address the agency gave is on file",
                    "batch_id": bid, "line": line})
    return out


def refused_requests(app: App, pseudonym: str) -> int:
    with session_scope(app.engine) as s:
        return int(s.scalar(select(func.count()).select_from(DisclosureDecision).where(
            DisclosureDecision.taxpayer_pseudonym == pseudonym,
            DisclosureDecision.outcome == "refused")) or 0)


# -- the oversight report of an agency system ---------------------------------------------------


def oversight(app: App, system: str, start: date, end: date, taxpayers: int) -> dict[str, Any]:
    """Potential (agreements in force: basis, scope, the whole master file reachable for
    confirmation) and actual (batches, records disclosed and refused, reasons, distinct
    taxpayers) disclosures of one agency system. Counts only."""
    today = as_utc(app.clock.now()).date()
    with session_scope(app.read_engine) as s:
        p = _system(s, system)
        agreements = [_agreement_view(a, p.name, today) for a in s.scalars(
            select(DisclosureAgreement).where(DisclosureAgreement.system_id == p.id)
            .order_by(DisclosureAgreement.id))]
        batches = list(s.scalars(select(DisclosureBatch).where(
            DisclosureBatch.system_id == p.id,
            DisclosureBatch.status.in_(("held", "decided", "rejected")))))
        in_period = [b for b in batches
                     if start <= as_utc(b.submitted_at).date() <= end]
        ids = [b.id for b in in_period]
        distinct = 0
        per_day: Counter[str] = Counter()
        for i in range(0, len(ids), matching.CHUNK):
            chunk = ids[i:i + matching.CHUNK]
            distinct += int(s.scalar(select(func.count(func.distinct(
                DisclosureDecision.taxpayer_pseudonym))).where(
                DisclosureDecision.batch_id.in_(chunk),
                DisclosureDecision.outcome == "disclosed")) or 0)
        kind, agency = p.kind, p.agency
    reasons: Counter[str] = Counter()
    for b in in_period:
        reasons.update(json.loads(b.reasons or "{}"))
        if b.decided_at is not None:
            per_day[as_utc(b.decided_at).date().isoformat()] += b.disclosed
    active = [a for a in agreements if a["state"] == "active"]
    return {
        "system": system, "kind": kind, "agency": agency,
        "potential": {
            "agreements": agreements,
            "bases_in_force": sorted({a["basis"] for a in active}),
            "scope": {a["basis"]: list(bases.BASES[a["basis"]].scope) for a in active
                      if a["basis"] in bases.BASES},
            "taxpayers_reachable": taxpayers if active else 0,
            "caps": {a["basis"]: {"per_official": a["cap_official"],
                                  "per_investigation": a["cap_investigation"],
                                  "window_days": a["window_days"]} for a in active},
        },
        "actual": {
            "period": {"from": start.isoformat(), "to": end.isoformat()},
            "batches": len(in_period),
            "held": sum(1 for b in in_period if b.status == "held"),
            "rejected": sum(1 for b in in_period if b.status == "rejected"),
            "records": sum(b.records for b in in_period),
            "disclosed": sum(b.disclosed for b in in_period),
            "refused": sum(b.refused for b in in_period),
            "refusals_by_reason": dict(sorted(reasons.items())),
            "distinct_taxpayers_disclosed": distinct,
            "per_day": [{"day": d, "disclosed": n} for d, n in sorted(per_day.items())],
        },
    }
