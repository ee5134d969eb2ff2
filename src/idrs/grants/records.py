"""Outside access as the HTTP API and the pages need it (they hold no SQL).

Who may see which grant, the renewal of a grant, agreements and their signatures, clearance verifications, training attestations, one
export's register entry and an employee's prerequisites. None of this is
taxpayer data; who may read what is decided here (``may_read_records``) so that the API and
the pages ask the same question. Refusals by role are recorded (``refuse``).

Callers: api/grants.py, api/detection.py, api/reports.py, web/grant_pages.py,
web/report_pages.py.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from idrs.audit import log as audit_log
from idrs.audit.events import Actor, AuditEvent
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason
from idrs.grants import exports, rules, service
from idrs.grants.models import (
    Agreement,
    AgreementSignature,
    ClearanceVerification,
    Export,
    TrainingAttestation,
)
from idrs.grants.results import GrantRequested
from idrs.grants.service import _employee, prerequisites
from idrs.people.models import Employee
from idrs.people.roles import GRANT_RECORD_READERS

RENEWABLE = (rules.APPROVED, rules.ACTIVE, rules.EXPIRED)


class RecordEvent(AuditEvent):
    ROUTE_DENY = "access:route:deny"


def refuse(app: App, who: Employee | None, what: str, roles: frozenset[str],
           interface: str = "api", address: str | None = None) -> AccessDenied:
    """Record a refusal by role (``access:route:deny``) and return the AccessDenied to raise.

    The refusal stands even if the audit log cannot take the entry (fail closed).
    """
    message = f"{what} needs one of the roles {', '.join(sorted(roles))}"
    idx = None
    with contextlib.suppress(IdrsError):
        actor = Actor(who.seid if who else "anonymous", interface, address)
        idx = audit_log.record(app, RecordEvent.ROUTE_DENY, actor,
                      {"what": what}, {"roles": sorted(roles)}, outcome="denied",
                      reasons=["NOT_IN_PROFILE"])
    return AccessDenied([Reason("NOT_IN_PROFILE", message)], idx)


def require(app: App, who: Employee, roles: frozenset[str], what: str, interface: str = "api",
            address: str | None = None) -> None:
    """Raise (recorded) unless ``who`` holds one of ``roles``. An empty set refuses everyone."""
    if not roles or not (who.role_set & roles):
        raise refuse(app, who, what, roles, interface, address)


def may_read_records(who: Employee, seid: str) -> bool:
    """One's own records, or anyone's for the record readers."""
    return who.seid == (seid or "").strip().upper() or bool(who.role_set & GRANT_RECORD_READERS)


# -- grants ----------------------------------------------------------------------------------


def may_see_grant(who: Employee, grant: dict[str, Any]) -> bool:
    """Record readers see every grant; anyone else those they are principal or requester of."""
    return bool(who.role_set & GRANT_RECORD_READERS) or who.seid in (grant["principal"],
                                                               grant["requested_by"])


def visible_grant(app: App, who: Employee, grant_id: int, *, interface: str = "api",
                  address: str | None = None) -> dict[str, Any]:
    """``service.show_grant`` for someone who may see it; refused (recorded) otherwise."""
    g = service.show_grant(app, grant_id)
    if not may_see_grant(who, g):
        raise refuse(app, who, "another person's grant", GRANT_RECORD_READERS, interface, address)
    return g


def request_renewal(app: App, who: Employee, *, grant_id: int, start: date | None = None,
                    days: int | None = None, end: date | None = None,
                    actor: Actor) -> GrantRequested:
    """Request the one renewal of a grant: same principal and scope, a new term.

    Only an approved, active or expired grant is renewed (409 otherwise). The start defaults to the day the grant ends, the term to the grant's. The principal,
    the requester and the record readers may ask; ``service.request_grant`` refuses a
    renewal of a renewal and a term beyond the renewal limit, and records the request.
    """
    g = visible_grant(app, who, grant_id, interface=actor.interface, address=actor.address)
    if g["status"] not in RENEWABLE:
        raise Conflict(f"grant {grant_id} is {g['status']}: only an approved, active or expired "
                       "grant is renewed")
    if days is None and end is None:
        days = g["term_days"]
    return service.request_grant(
        app, principal=g["principal"], purpose=g["purpose"], basis=g["legal_basis"],
        commands=g["commands"], classes=g["classes"], population=g["population"],
        allow_changes=g["allow_changes"], start=start or date.fromisoformat(g["end"]),
        days=days, end=end, renewal_of=int(grant_id), daily_limit=g["daily_limit"],
        agreement=g["agreement"], kind=g["kind"], k=g["k"], actor=actor)


# -- agreements ----------------------------------------------------------------------------


def _agreement_row(a: Agreement, signatures: int) -> dict[str, Any]:
    return {"agreement_id": a.id, "title": a.title, "version": a.version, "sha256": a.sha256,
            "current": a.current, "added_by": a.added_by,
            "added_at": as_utc(a.added_at).isoformat(), "signatures": signatures}


def list_agreements(app: App, *, title: str | None = None,
                    current_only: bool = False) -> list[dict[str, Any]]:
    """Every agreement version (newest title version first), with its count of signatures."""
    with session_scope(app.engine) as s:
        counts = dict(s.execute(select(AgreementSignature.agreement_id, func.count())
                                .group_by(AgreementSignature.agreement_id)).all())
        q = select(Agreement).order_by(Agreement.title, Agreement.version.desc())
        if title:
            q = q.where(Agreement.title == title)
        if current_only:
            q = q.where(Agreement.current.is_(True))
        return [_agreement_row(a, int(counts.get(a.id, 0))) for a in s.scalars(q)]


def show_agreement(app: App, agreement_id: int, *, reader: Employee) -> dict[str, Any]:
    """One version with its text, and whether ``reader`` has signed it (and when)."""
    with session_scope(app.engine) as s:
        a = s.get(Agreement, int(agreement_id))
        if a is None:
            raise NotFound(f"no agreement {agreement_id}")
        n = s.scalar(select(func.count()).select_from(AgreementSignature)
                     .where(AgreementSignature.agreement_id == a.id)) or 0
        mine = s.scalar(select(AgreementSignature.signed_at).where(
            AgreementSignature.agreement_id == a.id, AgreementSignature.employee_id == reader.id))
        out = _agreement_row(a, int(n))
        out["text"] = a.text
        out["signed_by_you"] = mine is not None
        out["signed_at"] = as_utc(mine).isoformat() if mine else None
    return out


def agreement_signatures(app: App, agreement_id: int) -> list[dict[str, Any]]:
    """Who signed this version, when, and the digest of the text they signed."""
    with session_scope(app.engine) as s:
        if s.get(Agreement, int(agreement_id)) is None:
            raise NotFound(f"no agreement {agreement_id}")
        rows = s.execute(select(Employee.seid, Employee.kind, AgreementSignature.signed_at,
                                AgreementSignature.sha256)
                         .join(Employee, Employee.id == AgreementSignature.employee_id)
                         .where(AgreementSignature.agreement_id == int(agreement_id))
                         .order_by(AgreementSignature.id)).all()
    return [{"seid": seid, "kind": kind, "signed_at": as_utc(at).isoformat(), "sha256": digest}
            for seid, kind, at, digest in rows]


# -- clearance and training --------------------------------------------------------------


def clearances(app: App, seid: str) -> list[dict[str, Any]]:
    """Every clearance verification of ``seid`` (newest first)."""
    with session_scope(app.engine) as s:
        emp = _employee(s, seid)
        rows = s.scalars(select(ClearanceVerification)
                         .where(ClearanceVerification.employee_id == emp.id)
                         .order_by(ClearanceVerification.id.desc())).all()
        return [{"seid": emp.seid, "verified_by": r.verified_by, "recorded_by": r.recorded_by,
                 "verified_at": as_utc(r.verified_at).isoformat(), "note": r.note} for r in rows]


def training(app: App, seid: str) -> dict[str, Any]:
    """``seid``'s UNAX attestations (newest first) and whether training is current now."""
    valid = app.settings.grant_training_valid_days
    now = as_utc(app.clock.now())
    with session_scope(app.engine) as s:
        emp = _employee(s, seid)
        rows = s.scalars(select(TrainingAttestation)
                         .where(TrainingAttestation.employee_id == emp.id)
                         .order_by(TrainingAttestation.id.desc())).all()
        items = [{"course": r.course, "attested_at": as_utc(r.attested_at).isoformat(),
                  "valid_until": (as_utc(r.attested_at) + timedelta(days=valid)).isoformat(),
                  "with_code": r.otp_step is not None} for r in rows]
        status = prerequisites(s, app, emp.id, None, now)
        out_seid = emp.seid
    last = status["training_attested_at"]
    until = (as_utc(datetime.fromisoformat(last)) + timedelta(days=valid)).isoformat() if last else None
    return {"seid": out_seid, "attestations": items, "current": status["training_current"],
            "last_attested_at": last, "valid_until": until}


# -- exports -------------------------------------------------------------------------


def show_export(app: App, export_id: str, *, reader: Employee) -> dict[str, Any]:
    """One export's register entry (pseudonyms, never TINs): its holder or the record readers."""
    with session_scope(app.engine) as s:
        exp = s.get(Export, export_id) if exports._ID.match(export_id or "") else None
        if exp is None:
            raise NotFound(f"no export {export_id!r}")
        holder = exp.employee_id
        out = exports.export_view(s, export_id)
    if holder != reader.id and not (reader.role_set & GRANT_RECORD_READERS):
        raise refuse(app, reader, "another person's export", GRANT_RECORD_READERS)
    return out

