"""Grants, approvals, agreements, clearances and training: one function per CLI/API action.

Pattern of every change (as in access.service): validate in a read transaction (bad input:
clear error, nothing changed) → append the audit entry (committed before the change; if the
log is unavailable nothing is changed) → write. Refusals of an authorization check (an
approval by the requester, a revocation by someone without an approving role, a wrong
one-time code) are recorded too, with outcome ``denied``.

Time always comes from ``app.clock`` (injected; a FakeClock in tests).

Callers: cli/grants.py (operator commands act as ``os:<user>``; signed-in actions use the
session token), api/grants.py (the signed-in employee), the seed/demo, the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idrs.audit import log
from idrs.audit.events import Actor
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, Conflict, IdrsError, NotFound, Reason, ValidationFailed
from idrs.grants import rules
from idrs.grants.events import GrantEvent
from idrs.grants.models import (
    Agreement,
    AgreementSignature,
    ClearanceVerification,
    Export,
    Grant,
    GrantApproval,
    TrainingAttestation,
)
from idrs.grants.results import (
    AgreementAdded,
    AgreementSigned,
    ClearanceVerified,
    GrantApproved,
    GrantClosed,
    GrantRequested,
    OutstandingAlert,
    TrainingAttested,
)
from idrs.identifiers import screen_text
from idrs.people import totp
from idrs.people.models import Employee
from idrs.vocabulary import ADJUSTMENT_CODES

_TEXT_MAX = 2000


def _deny(app: App, event: GrantEvent, actor: Actor, obj: dict[str, Any], code: str,
          message: str) -> AccessDenied:
    """Record a refused action and return the AccessDenied to raise."""
    idx = None
    with contextlib.suppress(IdrsError):  # the refusal stands even if it cannot be recorded
        idx = log.record(app, event, actor, obj, outcome="denied", reasons=[code])
    return AccessDenied([Reason(code, message)], idx)


def _employee(session: Session, seid: str, what: str = "employee") -> Employee:
    key = (seid or "").strip().upper()
    emp = session.scalar(select(Employee).where(Employee.seid == key))
    if emp is None:
        raise NotFound(f"no {what} with SEID {key!r}")
    return emp


def _text(value: str | None, what: str) -> str:
    v = (value or "").strip()
    if not v:
        raise ValidationFailed([f"{what}: required"])
    if len(v) > _TEXT_MAX:
        raise ValidationFailed([f"{what}: at most {_TEXT_MAX} characters"])
    return screen_text(v, what) or v  # recorded verbatim: no taxpayer identifier in it


def _now(app: App) -> datetime:
    return as_utc(app.clock.now())


# -- one-time codes -------------------------------------------------------------------------


def consume_otp(app: App, employee_id: int, otp: str) -> int:
    """Check a freshly entered one-time code of the employee and consume its time step.

    Raises BadCode (wrong, too old or already used). The step is consumed atomically (a
    conditional update), so the same code can never serve twice (sign-in, signature, approval).
    """
    now = _now(app)
    with session_scope(app.engine) as s:
        emp = s.get(Employee, employee_id)
        if emp is None or emp.totp_secret_enc is None or not emp.active:
            raise totp.BadCode
        secret = app.keyring.decrypt(emp.totp_secret_enc, "employee.totp_secret")
        step = totp.check_code(secret, otp or "", now, emp.totp_last_step)
        done = s.execute(update(Employee)
                         .where(Employee.id == employee_id, Employee.totp_last_step < step)
                         .values(totp_last_step=step))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise totp.BadCode
    return step


def _otp_or_deny(app: App, emp: Employee, otp: str, event: GrantEvent, actor: Actor,
                 obj: dict[str, Any]) -> int:
    try:
        return consume_otp(app, emp.id, otp)
    except totp.BadCode:
        raise _deny(app, event, actor, obj, "AUTH_FAILED",
                    "the one-time code was not accepted (wrong, expired or already used)") from None


# -- clearance ------------------------------------------------------------------------------


def verify_clearance(app: App, *, seid: str, by: str, actor: Actor,
                     note: str | None = None) -> ClearanceVerified:
    """Record that ``seid``'s security clearance was verified by ``by`` (an employee), now."""
    with session_scope(app.engine) as s:
        emp = _employee(s, seid)
        verifier = _employee(s, by, "verifier")
        if verifier.id == emp.id:
            raise ValidationFailed(["by: nobody verifies their own clearance"])
        emp_id, emp_seid, by_seid = emp.id, emp.seid, verifier.seid
    now = _now(app)
    idx = log.record(app, GrantEvent.CLEARANCE_VERIFY, actor, {"seid": emp_seid},
                  {"verified_by": by_seid})
    with session_scope(app.engine) as s:
        row = ClearanceVerification(employee_id=emp_id, verified_by=by_seid, recorded_by=actor.seid,
                                    verified_at=now, note=(note or None))
        s.add(row)
    return ClearanceVerified(seid=emp_seid, verified_by=by_seid, verified_at=now.isoformat(),
                             audit_index=idx)


# -- agreements -----------------------------------------------------------------------------


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_agreement(app: App, *, title: str, text: str, actor: Actor) -> AgreementAdded:
    """Store a new version of the agreement ``title``; it becomes the one current version."""
    title = _text(title, "title")
    if len(title) > 200:
        raise ValidationFailed(["title: at most 200 characters"])
    if not (text or "").strip():
        raise ValidationFailed(["file: the agreement text is empty"])
    digest = sha256_text(text)
    with session_scope(app.engine) as s:
        version = int(s.scalar(select(func.max(Agreement.version))
                               .where(Agreement.title == title)) or 0) + 1
    idx = log.record(app, GrantEvent.AGREEMENT_ADD, actor, {"title": title, "version": version},
                  {"sha256": digest})
    with session_scope(app.engine) as s:
        s.execute(update(Agreement).where(Agreement.title == title).values(current=False))
        row = Agreement(title=title, version=version, text=text, sha256=digest, current=True,
                        added_by=actor.seid, added_at=_now(app))
        s.add(row)
        s.flush()
        agreement_id = row.id
    return AgreementAdded(agreement_id=agreement_id, sha256=digest, title=title, version=version,
                          audit_index=idx)


def current_agreement(session: Session, title: str) -> Agreement | None:
    return session.scalar(select(Agreement).where(Agreement.title == title,
                                                  Agreement.current.is_(True)))


def sign_agreement(app: App, signer: Employee, *, agreement_id: int, otp: str,
                   actor: Actor | None = None) -> AgreementSigned:
    """The signer signs agreement version ``agreement_id`` with a fresh one-time code.

    Only the current version of a title can be signed; a version already signed by the same
    person cannot be signed again (signatures are immutable).
    """
    actor = actor or Actor(signer.seid)
    obj = {"agreement_id": agreement_id, "seid": signer.seid}
    with session_scope(app.engine) as s:
        ag = s.get(Agreement, agreement_id)
        if ag is None:
            raise NotFound(f"no agreement {agreement_id}")
        if not ag.current:
            raise Conflict(f"agreement {agreement_id} ({ag.title} v{ag.version}) is not the current "
                           "version; sign the current one")
        if s.scalar(select(AgreementSignature.id).where(
                AgreementSignature.agreement_id == ag.id,
                AgreementSignature.employee_id == signer.id)) is not None:
            raise Conflict(f"agreement {agreement_id} is already signed by {signer.seid}")
        digest, title, version = ag.sha256, ag.title, ag.version
    step = _otp_or_deny(app, signer, otp, GrantEvent.AGREEMENT_SIGN, actor, obj)
    now = _now(app)
    idx = log.record(app, GrantEvent.AGREEMENT_SIGN, actor, obj,
                  {"sha256": digest, "title": title, "version": version})
    with session_scope(app.engine) as s:
        row = AgreementSignature(agreement_id=agreement_id, employee_id=signer.id, sha256=digest,
                                 signed_at=now, otp_step=step)
        s.add(row)
        s.flush()
        sig_id = row.id
    return AgreementSigned(signature_id=sig_id, agreement_id=agreement_id, sha256=digest,
                           signed_at=now.isoformat(), audit_index=idx)


# -- training -------------------------------------------------------------------------------


def attest_training(app: App, employee: Employee, *, otp: str,
                    actor: Actor | None = None) -> TrainingAttested:
    """The employee attests UNAX training with a fresh one-time code (valid 365 days)."""
    actor = actor or Actor(employee.seid)
    obj = {"seid": employee.seid, "course": "UNAX"}
    step = _otp_or_deny(app, employee, otp, GrantEvent.TRAINING_ATTEST, actor, obj)
    return _attest(app, employee.id, obj, actor, step)


def record_training(app: App, *, seid: str, actor: Actor) -> TrainingAttested:
    """Operator path: record a UNAX attestation taken elsewhere (e.g. the learning system)."""
    with session_scope(app.engine) as s:
        emp = _employee(s, seid)
        emp_id, emp_seid = emp.id, emp.seid
    return _attest(app, emp_id, {"seid": emp_seid, "course": "UNAX"}, actor, None)


def _attest(app: App, emp_id: int, obj: dict[str, Any], actor: Actor,
            step: int | None) -> TrainingAttested:
    now = _now(app)
    valid = app.settings.grant_training_valid_days
    idx = log.record(app, GrantEvent.TRAINING_ATTEST, actor, obj, {"otp": step is not None})
    with session_scope(app.engine) as s:
        s.add(TrainingAttestation(employee_id=emp_id, course="UNAX", attested_at=now,
                                  otp_step=step))
    return TrainingAttested(seid=obj["seid"], attested_at=now.isoformat(),
                            valid_until=(now + timedelta(days=valid)).isoformat(),
                            audit_index=idx)


# -- grants ---------------------------------------------------------------------------------


def _agreement_title(session: Session, title: str | None) -> str:
    if title:
        if session.scalar(select(Agreement.id).where(Agreement.title == title)) is None:
            raise ValidationFailed([f"agreement: no agreement titled {title!r}"])
        return title
    titles = sorted(set(session.scalars(select(Agreement.title))))
    if len(titles) == 1:
        return titles[0]
    if not titles:
        raise ValidationFailed(["agreement: no confidentiality agreement exists yet "
                                "(idrs agreement add)"])
    raise ValidationFailed(["agreement: several agreements exist; name one with --agreement"])


def request_grant(app: App, *, principal: str, purpose: str, basis: str,
                  commands: str | list[str] | None, classes: str | list[str] | None,
                  population: str | None = None,
                  start: date, days: int | None = None, end: date | None = None,
                  allow_changes: bool = False, renewal_of: int | None = None,
                  daily_limit: int | None = None, agreement: str | None = None,
                  kind: str | None = None, k: int | None = None,
                  epsilon: float | None = None, delta: float | None = None,
                  actor: Actor) -> GrantRequested:
    """Request a grant for ``principal``; it starts ``pending_approval``. Records it.

    ``kind`` is ``records`` (population cases or all), ``anonymized`` (population
    anonymized, with its ``k``, default 10) or ``statistics`` (differentially private
    statistics only: its privacy budget ``epsilon`` in all, required, and ``delta``; it runs
    no command and sees no class, so ``commands`` and ``classes`` must be empty).
    """
    purpose = _text(purpose, "purpose")
    basis = _text(basis, "basis")
    kind, population, k = rules.check_kind(kind, population, k, epsilon)
    eps, dlt = rules.check_budget(kind, epsilon, delta)
    if kind == "statistics":
        given = [n for n, v in (("commands", commands), ("classes", classes)) if v]
        if given:
            raise ValidationFailed([f"{n}: a statistics grant runs no command and sees no "
                                    "record; leave it out" for n in given])
        cmds: list[str] = []
        cls: list[str] = []
    else:
        cmds = rules.parse_commands(commands or [])
        cls = rules.parse_classes(classes or [])
    if daily_limit is not None and daily_limit < 1:
        raise ValidationFailed(["daily_limit: at least 1"])
    term = rules.check_term(start, days, end, renewal_of is not None, app.settings)
    if not allow_changes and any(c in ADJUSTMENT_CODES for c in cmds):
        raise ValidationFailed(["commands: adjustment codes need --allow-changes"])
    with session_scope(app.engine) as s:
        emp = _employee(s, principal, "principal")
        if renewal_of is not None:
            prev = s.get(Grant, renewal_of)
            if prev is None:
                raise ValidationFailed([f"renewal_of: no grant {renewal_of}"])
            if prev.principal_id != emp.id:
                raise ValidationFailed([f"renewal_of: grant {renewal_of} is another principal's"])
            if prev.renewal_of_id is not None:
                raise ValidationFailed([f"renewal_of: grant {renewal_of} is itself a renewal; "
                                        "a grant is renewable once"])
        title = _agreement_title(s, agreement)
        emp_id, emp_seid = emp.id, emp.seid
    detail = {"purpose": purpose, "legal_basis": basis, "commands": cmds, "classes": cls,
              "population": population, "allow_changes": allow_changes,
              "start": start.isoformat(), "term_days": term, "renewal_of": renewal_of,
              "daily_limit": daily_limit, "agreement": title, "kind": kind, "k": k}
    if kind == "statistics":
        detail.update(epsilon=eps, delta=dlt)
    idx = log.record(app, GrantEvent.GRANT_REQUEST, actor, {"principal": emp_seid}, detail)
    with session_scope(app.engine) as s:
        g = Grant(principal_id=emp_id, requested_by=actor.seid, purpose=purpose,
                  legal_basis=basis, commands=",".join(cmds), classes=",".join(cls),
                  population=population, allow_changes=allow_changes, start_date=start,
                  term_days=term, renewal_of_id=renewal_of, daily_limit=daily_limit,
                  agreement_title=title, status=rules.PENDING, requested_at=_now(app),
                  kind=kind, anon_k=k, key_version=1, dp_epsilon=eps, dp_delta=dlt,
                  dp_epsilon_spent=0.0, dp_delta_spent=0.0)
        s.add(g)
        s.flush()
        gid = g.id
    return GrantRequested(grant_id=gid, status=rules.PENDING, principal=emp_seid,
                          start=start.isoformat(), term_days=term,
                          end=(start + timedelta(days=term)).isoformat(), audit_index=idx)


def _grant(session: Session, grant_id: int) -> Grant:
    g = session.get(Grant, int(grant_id))
    if g is None:
        raise NotFound(f"no grant {grant_id}")
    return g


def _rule(app: App, rule: rules.ApprovalRule | None) -> rules.ApprovalRule:
    return rule or rules.ApprovalRule.from_settings(app.settings)


def approve_grant(app: App, approver: Employee, *, grant_id: int, otp: str,
                  actor: Actor | None = None,
                  rule: rules.ApprovalRule | None = None) -> GrantApproved:
    """One approval by the holder of an approving role, with a re-entered one-time code.

    The role is checked before the grant is looked up (refused and recorded whether or not
    the grant exists). Refused: an approver without a (still missing) approving role, the
    requester, the principal, a person who already approved, a second approval by the same
    role, a grant no longer pending. When every role of the rule has approved, the grant is
    ``approved``.
    """
    rule = _rule(app, rule)
    actor = actor or Actor(approver.seid)
    obj = {"grant_id": int(grant_id), "seid": approver.seid}
    # the role first: a stranger learns nothing of the grant (not even whether it exists)
    held = [r for r in rule.roles if r in approver.role_set]
    if not held:
        raise _deny(app, GrantEvent.GRANT_APPROVE, actor, obj, "NOT_IN_PROFILE",
                    "approving a grant needs one of the roles " + ", ".join(rule.roles))
    now = _now(app)
    with session_scope(app.engine) as s:
        g = _grant(s, grant_id)
        state = rules.state_of(g.status, g.start_date, g.term_days, now)
        if state != rules.PENDING:
            raise Conflict(f"grant {grant_id} is {state}, not pending approval")
        done = {a.role: a.approver_id for a in s.scalars(
            select(GrantApproval).where(GrantApproval.grant_id == g.id))}
        principal_id, requested_by = g.principal_id, g.requested_by
    if approver.id == principal_id or approver.seid == requested_by:
        raise _deny(app, GrantEvent.GRANT_APPROVE, actor, obj, "SELF_APPROVAL",
                    "neither the requester nor the principal may approve the grant")
    if approver.id in done.values():
        raise _deny(app, GrantEvent.GRANT_APPROVE, actor, obj, "TWO_PERSON_REQUIRED",
                    "you already approved this grant; the next approval must be someone else's")
    open_roles = [r for r in held if r not in done]
    if not open_roles:
        missing = [r for r in rule.roles if r not in done]
        raise Conflict(f"grant {grant_id} already has the {', '.join(held)} approval; "
                       f"still needed: {', '.join(missing)}")
    role = open_roles[0]
    step = _otp_or_deny(app, approver, otp, GrantEvent.GRANT_APPROVE, actor, obj)
    complete = set(done) | {role} >= set(rule.roles)
    status = rules.APPROVED if complete else rules.PENDING
    idx = log.record(app, GrantEvent.GRANT_APPROVE, actor, obj,
                  {"role": role, "complete": complete, "rule": list(rule.roles)})
    try:
        with session_scope(app.engine) as s:
            s.add(GrantApproval(grant_id=int(grant_id), approver_id=approver.id, role=role,
                                approved_at=now, otp_step=step))
            if complete:
                s.execute(update(Grant).where(Grant.id == int(grant_id),
                                              Grant.status == rules.PENDING)
                          .values(status=rules.APPROVED, approved_at=now))
    except IntegrityError:
        raise Conflict(f"grant {grant_id} already has the {role} approval") from None
    return GrantApproved(grant_id=int(grant_id), status=status, role=role,
                         approvals=sorted(set(done) | {role}), audit_index=idx)


def _close(app: App, who: Employee, grant_id: int, reason: str, *, revoke: bool,
           actor: Actor | None, rule: rules.ApprovalRule | None) -> GrantClosed:
    rule = _rule(app, rule)
    actor = actor or Actor(who.seid)
    event = GrantEvent.GRANT_REVOKE if revoke else GrantEvent.GRANT_END
    obj = {"grant_id": int(grant_id), "seid": who.seid}
    # the role first: a stranger learns nothing of the grant (not even whether it exists)
    if not any(r in who.role_set for r in rule.roles):
        raise _deny(app, event, actor, obj, "NOT_IN_PROFILE",
                    "only " + " or ".join(rule.roles) + " may revoke or end a grant")
    reason = _text(reason, "reason")
    now = _now(app)
    with session_scope(app.engine) as s:
        g = _grant(s, grant_id)
        state = rules.state_of(g.status, g.start_date, g.term_days, now)
    if state in (rules.REVOKED, rules.ENDED, rules.EXPIRED):
        raise Conflict(f"grant {grant_id} is already {state}")
    idx = log.record(app, event, actor, obj, {"reason": reason, "previous_state": state})
    new = rules.REVOKED if revoke else rules.ENDED
    with session_scope(app.engine) as s:
        values: dict[str, Any] = ({"status": new, "revoked_at": now, "revoked_by": who.seid,
                                   "revoke_reason": reason} if revoke else
                                  {"status": new, "ended_at": now, "ended_by": who.seid,
                                   "revoke_reason": reason})
        s.execute(update(Grant).where(Grant.id == int(grant_id)).values(**values))
    check_outstanding(app)
    return GrantClosed(grant_id=int(grant_id), status=new, audit_index=idx)


def revoke_grant(app: App, who: Employee, *, grant_id: int, reason: str,
                 actor: Actor | None = None,
                 rule: rules.ApprovalRule | None = None) -> GrantClosed:
    """Revoke by the holder of either approving role; effective on the principal's next request."""
    return _close(app, who, grant_id, reason, revoke=True, actor=actor, rule=rule)


def end_grant(app: App, who: Employee, *, grant_id: int, reason: str,
              actor: Actor | None = None,
              rule: rules.ApprovalRule | None = None) -> GrantClosed:
    """End a grant early (the detail is over) — by the holder of an approving role."""
    return _close(app, who, grant_id, reason, revoke=False, actor=actor, rule=rule)


def _outstanding(session: Session, grant_id: int) -> list[str]:
    return list(session.scalars(select(Export.id).where(
        Export.grant_id == grant_id, Export.certified_at.is_(None)).order_by(Export.id)))


def check_outstanding(app: App) -> list[OutstandingAlert]:
    """Raise the "exports outstanding" alert (once per grant) for every grant that is over
    while exports made under it are not certified destroyed. Records each alert.

    Callers: grant show/list/revoke/end, the oversight report, ``idrs grant alerts``.
    """
    now = _now(app)
    raised: list[OutstandingAlert] = []
    with session_scope(app.engine) as s:
        grants = s.scalars(select(Grant).where(Grant.outstanding_alert_at.is_(None))).all()
        todo = []
        for g in grants:
            state = rules.state_of(g.status, g.start_date, g.term_days, now)
            if state in (rules.EXPIRED, rules.REVOKED, rules.ENDED):
                ids = _outstanding(s, g.id)
                if ids:
                    seid = s.get(Employee, g.principal_id).seid  # type: ignore[union-attr]
                    todo.append((g.id, seid, state, ids))
    for gid, seid, state, ids in todo:
        idx = log.record(app, GrantEvent.EXPORTS_OUTSTANDING, Actor("system", "system"),
                      {"grant_id": gid, "seid": seid}, {"state": state, "exports": ids},
                      outcome="alert")
        with session_scope(app.engine) as s:
            s.execute(update(Grant).where(Grant.id == gid).values(outstanding_alert_at=now))
        raised.append(OutstandingAlert(grant_id=gid, seid=seid, exports=ids, audit_index=idx))
    return raised


def budget_view(g: Grant) -> dict[str, Any]:
    """A statistics grant's budget and spend (``epsilon``, ``delta``, ``epsilon_spent``,
    ``delta_spent``, ``budget_left``); None for any other grant."""
    if g.kind != "statistics" or g.dp_epsilon is None:
        return {"epsilon": None, "delta": None, "epsilon_spent": None, "delta_spent": None,
                "budget_left": None}
    spent = float(g.dp_epsilon_spent or 0.0)
    return {"epsilon": g.dp_epsilon, "delta": g.dp_delta, "epsilon_spent": round(spent, 9),
            "delta_spent": float(g.dp_delta_spent or 0.0),
            "budget_left": round(max(0.0, g.dp_epsilon - spent), 9)}


def access_in_words(g: Grant) -> str:
    """What the grant lets its principal do, in plain words (the grant page, the API, the
    CLI and the oversight report's potential access)."""
    if g.kind == "statistics":
        return (f"could count, with ε = {g.dp_epsilon:g} in all (δ = {g.dp_delta or 0:g}), "
                "never see a record")
    if g.kind == "anonymized":
        return (f"could see generalized records with at least k = {g.anon_k} look-alikes each, "
                "by pseudonym, never a TIN, name or address")
    reach = "every taxpayer" if g.population == "all" else "the taxpayers of assigned cases"
    return f"could open the records of {reach} with {g.commands.replace(',', ', ')}"


def grant_view(session: Session, app: App, g: Grant, now: datetime) -> dict[str, Any]:
    """The full description of one grant (no taxpayer data)."""
    emp = session.get(Employee, g.principal_id)
    approvals = session.execute(
        select(GrantApproval.role, Employee.seid, GrantApproval.approved_at)
        .join(Employee, Employee.id == GrantApproval.approver_id)
        .where(GrantApproval.grant_id == g.id).order_by(GrantApproval.id)).all()
    exports = session.execute(
        select(Export.id, Export.created_at, Export.format, Export.taxpayers, Export.certified_at,
               Export.method, Export.destroyed_by, Export.witness)
        .where(Export.grant_id == g.id).order_by(Export.created_at)).all()
    state = rules.state_of(g.status, g.start_date, g.term_days, now)
    outstanding = [e.id for e in exports if e.certified_at is None]
    over = state in (rules.EXPIRED, rules.REVOKED, rules.ENDED)
    return {
        "grant_id": g.id, "principal": emp.seid if emp else None,
        "principal_kind": emp.kind if emp else None,
        "home_org": emp.home_org if emp else None,
        "status": state, "stored_status": g.status, "requested_by": g.requested_by,
        "requested_at": as_utc(g.requested_at).isoformat(), "purpose": g.purpose,
        "legal_basis": g.legal_basis, "commands": [c for c in g.commands.split(",") if c],
        "classes": [c for c in g.classes.split(",") if c], "population": g.population,
        "kind": g.kind, "k": g.anon_k, "key_version": g.key_version,
        **budget_view(g), "access": access_in_words(g),
        "allow_changes": g.allow_changes, "start": g.start_date.isoformat(),
        "term_days": g.term_days,
        "end": (g.start_date + timedelta(days=g.term_days)).isoformat(),
        "renewal_of": g.renewal_of_id, "daily_limit": g.daily_limit,
        "agreement": g.agreement_title,
        "approved_at": as_utc(g.approved_at).isoformat() if g.approved_at else None,
        "revoked_at": as_utc(g.revoked_at).isoformat() if g.revoked_at else None,
        "revoked_by": g.revoked_by, "ended_at": as_utc(g.ended_at).isoformat() if g.ended_at else None,
        "ended_by": g.ended_by, "reason": g.revoke_reason,
        "approvals": [{"role": r, "seid": seid, "at": as_utc(t).isoformat()}
                      for r, seid, t in approvals],
        "exports": [{"export_id": e.id, "created_at": as_utc(e.created_at).isoformat(),
                     "format": e.format, "taxpayers": e.taxpayers,
                     "destroyed": e.certified_at is not None, "method": e.method,
                     "holder": e.destroyed_by, "witness": e.witness} for e in exports],
        "exports_outstanding": bool(outstanding) and over,
        "outstanding_exports": outstanding,
    }


def prerequisites(session: Session, app: App, employee_id: int, title: str | None,
                  now: datetime) -> dict[str, Any]:
    """Clearance, agreement and training status of one principal."""
    clear = session.execute(select(ClearanceVerification.verified_by,
                                   ClearanceVerification.verified_at)
                            .where(ClearanceVerification.employee_id == employee_id)
                            .order_by(ClearanceVerification.id.desc()).limit(1)).first()
    last = session.scalar(select(func.max(TrainingAttestation.attested_at))
                          .where(TrainingAttestation.employee_id == employee_id))
    emp = session.get(Employee, employee_id)
    if emp is not None and emp.training_attested_at is not None:
        last = max(as_utc(last), as_utc(emp.training_attested_at)) if last else emp.training_attested_at
    signed = False
    if title:
        ag = current_agreement(session, title)
        signed = ag is not None and session.scalar(select(AgreementSignature.id).where(
            AgreementSignature.agreement_id == ag.id, AgreementSignature.employee_id == employee_id,
            AgreementSignature.sha256 == ag.sha256)) is not None
    return {
        "clearance_verified": clear is not None,
        "clearance": ({"verified_by": clear[0], "verified_at": as_utc(clear[1]).isoformat()}
                      if clear else None),
        "agreement_signed": signed,
        "training_current": rules.training_current(as_utc(last) if last else None, now),
        "training_attested_at": as_utc(last).isoformat() if last else None,
    }


def show_grant(app: App, grant_id: int) -> dict[str, Any]:
    """One grant with its state (from the clock), approvals, prerequisites and exports."""
    check_outstanding(app)
    now = _now(app)
    with session_scope(app.engine) as s:
        g = _grant(s, grant_id)
        out = grant_view(s, app, g, now)
        out["prerequisites"] = prerequisites(s, app, g.principal_id, g.agreement_title, now)
    return out


def list_grants(app: App, *, principal: str | None = None,
                state: str | None = None) -> list[dict[str, Any]]:
    """Every grant (optionally one principal's, or in one state), newest first."""
    if state is not None and state not in rules.STATES:
        raise ValidationFailed([f"state: one of {', '.join(rules.STATES)}"])
    check_outstanding(app)
    now = _now(app)
    with session_scope(app.engine) as s:
        q = select(Grant).order_by(Grant.id.desc())
        if principal:
            q = q.where(Grant.principal_id == _employee(s, principal, "principal").id)
        rows = [grant_view(s, app, g, now) for g in s.scalars(q)]
    return [r for r in rows if state is None or r["status"] == state]


def as_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
