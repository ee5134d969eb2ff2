"""THE research service: the one path from an interface to the master file (docs/architecture.md).

Every research call from the CLI, the HTTP API and the web pages goes through :func:`run`:

1. authenticate the session token (an unauthenticated call is decided and recorded too);
2. facts   = access.facts.gather(...)     (the PIP)
3. verdict = access.policy.decide(facts)  (the PDP)
4. if allowed: data = masterfile.commands.<CODE>(...) read in the same snapshot; related
   people's TINs the employee's own decision would refuse are withheld (``_withhold_related``)
5. masking.apply(data, verdict.obligations) → the answer document
   ``{"command", "data", "masked", "withheld"}``, committed to (``audit.commitment``: salted
   SHA-256 of its RFC 8785 form)
6. audit.log.append(entry carrying the commitment, + the encrypted salt)  committed before
   anything leaves; if it fails the answer is a denial with AUDIT_UNAVAILABLE and the
   rendered answer is dropped
7. a denial raises AccessDenied(reasons, audit_index); an allowed call returns the very
   document committed to, with the entry's index (ResearchAnswer)

An unknown TIN is decided and recorded like any other before NotFound is raised, so that
someone not allowed learns nothing about whether the account exists. The entry names the
taxpayer only by its keyed pseudonym, never by TIN or name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import rfc8785
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from idrs.access import masking, sqlraw
from idrs.access.decision import Verdict
from idrs.audit import commitment, log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.errors import AccessDenied, IdrsError, NotFound, Reason
from idrs.identifiers import BadIdentifier, normalize_tin, optional_case_id, screen_text
from idrs.masterfile.commands import COMMANDS, NEEDS_YEAR
from idrs.people import auth
from idrs.people.models import Employee
from idrs.vocabulary import CommandCode

AUDIT_UNAVAILABLE = Reason(
    "AUDIT_UNAVAILABLE", "the access log cannot be written; nothing was shown"
)
_PLACE = re.compile(r"^\s*(?:([A-Za-z]{2})\b)?[\s,]*([0-9]{5}(?:-[0-9]{4})?)?\s*$")


@dataclass(frozen=True)
class ResearchAnswer:
    """What an allowed research call returns: masked data, what was masked, the audit index,
    and the related people's TINs withheld (``withheld``: their paths, no reason given)."""

    command: str
    data: Any
    masked: list[str]
    audit_index: int
    withheld: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The answer as committed in its entry (``object.answer``): all but the index."""
        return {
            "command": self.command,
            "data": self.data,
            "masked": self.masked,
            "withheld": self.withheld,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.document(), "audit_index": self.audit_index}


@dataclass(frozen=True)
class _Request:
    command: str
    tin: str | None
    year: int | None
    params: dict[str, Any]


def valid_commands() -> list[str]:
    return list(COMMANDS)


def _parse(
    command: str, tin: str | None, year: int | None, name: str | None, place: str | None, limit: int
) -> _Request:
    """Check the input before anything else; IdrsError with one clear line."""
    code = (command or "").strip().upper()
    if code not in COMMANDS:
        raise IdrsError(f"unknown command code {command!r}; valid: {', '.join(COMMANDS)}")
    if year is not None and not (1900 <= int(year) <= 2999):
        raise IdrsError(f"tax year out of range: {year}")
    if code in NEEDS_YEAR and year is None:
        raise IdrsError(f"{code} needs a tax year (--year YYYY / year=YYYY)")
    if code == CommandCode.NAMES:
        return _Request(code, None, year, _names_params(name, place, limit))
    if not tin:
        raise IdrsError(f"{code} needs a TIN")
    try:
        canonical = normalize_tin(tin)
    except BadIdentifier as exc:
        raise IdrsError(str(exc)) from None
    return _Request(code, canonical, year, {"year": year} if year is not None else {})


def _names_params(name: str | None, place: str | None, limit: int) -> dict[str, Any]:
    """``name`` is ``LAST`` or ``LAST,FIRST``; ``place`` is ``ST``, ``ZIP`` or ``ST ZIP``."""
    last, _, first = (name or "").partition(",")
    last, first = last.strip(), first.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z' .-]{0,59}", last):
        raise IdrsError("NAMES needs a last name (LAST or LAST,FIRST)")
    if first and not re.fullmatch(r"[A-Za-z][A-Za-z' .-]{0,39}", first):
        raise IdrsError("NAMES: the first name may hold only letters, spaces, ' . -")
    params: dict[str, Any] = {"last": last, "first": first or None, "limit": limit}
    if place:
        m = _PLACE.match(place)
        if not m or not (m.group(1) or m.group(2)):
            raise IdrsError("NAMES: place must be a state (OH), a ZIP (45402) or both (OH 45402)")
        params["state"] = m.group(1).upper() if m.group(1) else None
        params["zip"] = m.group(2)[:5] if m.group(2) else None
    return params


@dataclass(frozen=True)
class _Call:
    """One research call as the audit entry describes it (never a TIN or a name)."""

    req: _Request
    pseudonym: str | None
    interface: str
    address: str | None
    case: str | None
    contact: str | None
    reason: str | None


def _record(
    app: App,
    call: _Call,
    *,
    actor: str,
    outcome: str,
    verdict: Verdict | None,
    codes: list[str],
    matches: list[str] | None = None,
    as_of: date | None = None,
    also: list[log.Write] | None = None,
    via: Any = None,
    answer: commitment.Commitment | None = None,
) -> int:
    """Append the one entry of this call; AccessDenied AUDIT_UNAVAILABLE if it cannot be.

    ``also``: the writes that commit with the entry (the daily-ceiling count, the research
    trail). If they fail while the entry is committed, the call is refused all the same
    (nothing is shown) and the refusal names the entry.

    ``answer``: an allowed answer's commitment: its digest goes into the entry's object and
    its encrypted salt and recipe into ``audit_answer``, in the same commit.
    """
    obj: dict[str, Any] = {"command": call.req.command}
    if as_of is not None:
        obj["as_of"] = as_of.isoformat()
    if call.pseudonym is not None:
        obj["taxpayer"] = call.pseudonym
    if call.req.year is not None:
        obj["year"] = call.req.year
    if matches is not None:
        obj["matches"] = matches  # NAMES: every taxpayer the answer reveals counts as an access
    if answer is not None:
        obj["answer"] = answer.hex
        also = [*(also or []), *answer.writes(app.keyring)]
    detail: dict[str, Any] = {
        "case": call.case,
        "contact": call.contact,
        "reason_given": bool(call.reason),
    }
    if verdict is not None and verdict.basis:
        detail["basis"] = verdict.basis
    entry = make_event(
        EventType.ACCESS_RESEARCH_DECIDE,
        time=app.clock.now(),
        actor=actor,
        outcome=outcome,
        interface=call.interface,
        address=call.address,
        obj=obj,
        reasons=codes,
        policy=verdict.policy_version if verdict is not None else None,
        detail={k: v for k, v in detail.items() if v is not None},
    )
    try:
        return log.append(app.engine, entry, also=also, via=via)
    except log.AlsoFailed as exc:  # recorded, but not counted: nothing is shown
        raise AccessDenied([AUDIT_UNAVAILABLE], exc.index) from None
    except IdrsError:  # AuditUnavailable and friends: no entry, no data
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None


@dataclass
class _Decided:
    """What the read phase of a call found (see :func:`run`)."""

    employee: Employee | None = None
    signin_session_id: int | None = None
    denied: AccessDenied | None = None
    taxpayer: TaxpayerRow | None = None
    verdict: Verdict | None = None
    #: NAMES only: the answer tree and the matches it reveals (read before recording)
    names: tuple[Any, list[bytes], list[str]] | None = None
    #: an allowed call on a known taxpayer: the command's tree (read before recording), the
    #: withheld paths and the related TINs withheld
    tree: Any = None
    withheld: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    #: the sign-in session's last-seen update, when due: committed with the audit entry
    touches: list[log.Write] = field(default_factory=list)


def run(
    app: App,
    *,
    token: str | None,
    command: str,
    tin: str | None,
    year: int | None = None,
    case: str | None = None,
    contact: str | None = None,
    reason: str | None = None,
    name: str | None = None,
    place: str | None = None,
    interface: str,
    address: str | None = None,
    as_of: date | None = None,
) -> ResearchAnswer:
    """Run one research command code for the employee behind ``token``.

    ``as_of`` (ENMOD and TXMOD only) shows the account as it stood at the end of that day.

    Callers: cli/research.py, api/research.py, the web pages. Records exactly one
    ``access:research:decide`` entry per call that gets past input validation, allowed or
    denied, and returns its index (in the answer or in AccessDenied.audit_index).
    Raises IdrsError (bad input), AccessDenied (refused), NotFound (allowed, no such TIN).
    """
    req = _parse(command, tin, year, name, place, app.settings.names_max_matches)
    # the basis goes into the entry verbatim: the id format and the screen keep a TIN, an
    # account number or a name out of the append-only log (refused before anything is written)
    case = optional_case_id(case, "case")
    contact = optional_case_id(contact, "contact")
    reason = screen_text(reason, "reason")
    if as_of is not None:
        from idrs.adjustments import history

        if req.command not in history.AS_OF:
            raise IdrsError(f"--as-of works with {', '.join(sorted(history.AS_OF))} only")
    pseudonym = app.keyring.pseudonym(req.tin) if req.tin else None
    call = _Call(req, pseudonym, interface, address, case, contact, reason)
    # One pooled connection for the whole request. Phase 1 reads in ONE snapshot: the session
    # check, the lookup, the facts (and NAMES' search). That read transaction ends BEFORE the
    # audit append commits: a snapshot held open across a commit keeps SQLite from ever
    # checkpointing the WAL back to the start (it then grows without bound, and every commit
    # pays an fsync). An allowed call's command reads happen in that snapshot too: the answer
    # is rendered and masked in memory and committed to in the entry. Phase 2: the one commit
    # (entry with its commitment + salt + counter + trail). Only then does the answer leave.
    with app.engine.connect() as conn:
        conn.begin()
        with Session(bind=conn) as s:
            got = _read_phase(s, conn, app, call, token, as_of)
        conn.rollback()
        # the entry is committed on this request's own (now idle) connection when it leads
        # the batch: SQLite then keeps its page cache for the reads that follow
        via = conn.connection.driver_connection
        verdict, employee = got.verdict, got.employee
        if got.denied is not None or employee is None or verdict is None:
            exc = got.denied or AccessDenied([auth.AUTH_REQUIRED])
            # an expired or ended session's token still names its employee: theirs, the call
            idx = _record(
                app, call, actor=exc.seid or "anonymous", outcome="deny", verdict=None,
                codes=exc.codes, via=via,
            )
            raise AccessDenied(exc.reasons, idx) from None
        if not verdict.allowed:
            idx = _record(
                app, call, actor=employee.seid, outcome="deny", verdict=verdict,
                codes=verdict.codes, also=got.touches or None, via=via,
            )
            raise AccessDenied(verdict.reasons, idx)
        if got.names is not None:
            return _names_answer(app, employee, verdict, call, got.names, via, got.touches)
        taxpayer = got.taxpayer
        if taxpayer is None:
            _record(
                app,
                call,
                actor=employee.seid,
                outcome="not_found",
                verdict=verdict,
                codes=verdict.codes,
                also=got.touches or None,
                via=via,
            )
            raise NotFound("no taxpayer with that TIN")
        also = _counted(app, employee.id, [taxpayer.tin_index]) + got.touches
        if got.signin_session_id is not None:
            from idrs.adjustments import trail

            also.append(
                trail.research_write(
                    conn.dialect.name,
                    signin_session_id=got.signin_session_id,
                    employee_id=employee.id,
                    tin_index=taxpayer.tin_index,
                    command=req.command,
                    tax_year=req.year,
                    at=app.clock.now(),
                )
            )
        tree = got.tree
        if verdict.obligations.anonymize:  # an anonymized grant: identity removed first
            from idrs.grants.anonymize import anonymize

            tree = anonymize(tree, app.keyring.pseudonym)
        data, masked = masking.apply(tree, verdict.obligations)
        doc = ResearchAnswer(req.command, data, masked, -1, got.withheld)
        answer = _commitment(doc, recipe(req, as_of, verdict, got.hidden))
        idx = _record(
            app, call, actor=employee.seid, outcome="allow", verdict=verdict, codes=verdict.codes,
            as_of=as_of, also=also, via=via, answer=answer,
        )
    return ResearchAnswer(req.command, data, masked, idx, got.withheld)


def recipe(
    req: _Request, as_of: date | None, verdict: Verdict, hidden: list[str]
) -> dict[str, Any]:
    """What reproduces a research answer from history (kept encrypted, off the leaf)."""
    return {
        "kind": "research",
        "command": req.command,
        "tin": req.tin,
        "params": req.params,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "visible": sorted(str(c) for c in verdict.obligations.visible),
        "anonymize": verdict.obligations.anonymize,
        "hidden": sorted(hidden),
    }


def _commitment(doc: ResearchAnswer, how: dict[str, Any]) -> commitment.Commitment:
    """The answer's commitment; an answer that cannot be committed is not shown."""
    try:
        return commitment.commit(doc.document(), how)
    except (TypeError, ValueError, rfc8785.CanonicalizationError):
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None


def _withhold_related(
    s: Session, app: App, employee: Employee, own: str | None, tree: Any
) -> tuple[Any, list[str], list[str]]:
    """Withhold each related person's TIN (spouse, dependent, claimant) that the employee's
    own decision would refuse for who that person is (issue 13.10; the screen NAMES uses):
    an answer about an allowed taxpayer must not hand out a conflicted relative's TIN.
    Returns the tree, the withheld paths and the TINs withheld."""
    related = masking.related_tins(tree, own or "")
    if not related:
        return tree, [], []
    from idrs.access import facts as pip

    by_index = {app.keyring.tin_index(t): t for t in related}
    blocked = pip.screen_matches(s, app, employee, list(by_index))
    hidden = {by_index[i] for i in blocked if i in by_index}
    tree, paths = masking.withhold(tree, hidden)
    return tree, paths, sorted(hidden)


def _read_phase(
    s: Session, conn: Connection, app: App, call: _Call, token: str | None, as_of: date | None
) -> _Decided:
    """Authenticate, look up, decide; if allowed, read the command's tree (NAMES: search and
    screen): reads only, nothing leaves before the entry is committed."""
    req = call.req
    touches: list[log.Write] = []
    try:
        employee, sid = auth.authenticate_session(
            app, token, interface=call.interface, address=call.address, conn=conn,
            touches=touches,
        )
    except AccessDenied as exc:
        return _Decided(denied=exc)
    # what the decision and the answer need is imported once the session is known (a command
    # that never reaches the database does not pay for it: issue 12, start-up)
    from idrs.grants import anonymized

    if anonymized.is_anonymized_principal(s, app, employee.id):
        # an anonymized principal names no taxpayer: records by pseudonym only (no lookup)
        return _Decided(denied=AccessDenied([Reason(
            anonymized.NO_IDENTIFIER, "an anonymized principal reaches records by pseudonym "
            "only; no TIN, name or address is accepted")], seid=employee.seid))
    taxpayer = lookup(s, app, req.tin)
    verdict = _decide(s, app, employee, req, call.case, call.contact, call.reason)
    got = _Decided(employee, sid, None, taxpayer, verdict, touches=touches)
    if verdict.allowed and req.command == CommandCode.NAMES:
        got.names = _names_search(s, app, employee, call)
    elif verdict.allowed and taxpayer is not None:
        if as_of is not None:
            from idrs.adjustments import history

            tree = history.AS_OF[req.command](s, app.keyring, taxpayer, **req.params, as_of=as_of)
        else:
            tree = COMMANDS[req.command](s, app.keyring, taxpayer, **req.params)
        got.tree, got.withheld, got.hidden = _withhold_related(s, app, employee, req.tin, tree)
    return got


def _counted(app: App, employee_id: int, tin_indexes: list[bytes]) -> list[log.Write]:
    """The daily-ceiling count of an allowed access, written with its audit entry."""
    from idrs.access import ratelimit

    return ratelimit.counter_writes(
        app.engine.dialect.name, employee_id, app.clock.now().date(), tin_indexes
    )


@dataclass(frozen=True, slots=True)
class TaxpayerRow:
    """The taxpayer columns the command codes read (attribute access like the model)."""

    id: int
    tin_index: bytes
    tin_enc: bytes
    first_name: str
    middle_name: str
    last_name: str
    suffix: str
    name_control: str
    dob_enc: bytes | None
    phone_enc: bytes | None


# Hot path of every research call: straight to the driver on the request's own connection.
_TAXPAYER_BY_INDEX = (
    "SELECT id, tin_index, tin_enc, first_name, middle_name, last_name, suffix, name_control,"
    " dob_enc, phone_enc FROM taxpayer WHERE tin_index = :t"
)


def lookup(session: Session, app: App, tin: str | None) -> TaxpayerRow | None:
    """The taxpayer by blind index, or None."""
    if tin is None:
        return None
    rows = sqlraw.fetch(session, _TAXPAYER_BY_INDEX, {"t": app.keyring.tin_index(tin)})
    if not rows:
        return None
    r = rows[0]
    dob, phone = (None if b is None else bytes(b) for b in r[8:10])
    return TaxpayerRow(
        int(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4], r[5], r[6], r[7], dob, phone
    )


def _decide(
    session: Session,
    app: App,
    employee: Employee,
    req: _Request,
    case: str | None,
    contact: str | None,
    reason: str | None,
) -> Verdict:
    from idrs.access import facts as pip
    from idrs.access import policy

    facts = pip.gather(
        session,
        app,
        employee=employee,
        command=req.command,
        tin=req.tin,
        case=case,
        contact=contact,
        reason=reason,
    )
    return policy.decide(facts)


def _names_search(
    session: Session, app: App, employee: Employee, call: _Call
) -> tuple[Any, list[bytes], list[str]]:
    """NAMES: search in memory; keep only matches the employee could open (read phase)."""
    from idrs.access import facts as pip

    tree = COMMANDS[CommandCode.NAMES](session, app.keyring, None, **call.req.params)
    # A name search must not become a way around the conflict rules: matches the employee
    # could not open are not revealed at all (not even masked).
    tins = [normalize_tin(m["tin"].value) for m in tree["matches"]]
    indexes = [app.keyring.tin_index(t) for t in tins]
    blocked = pip.screen_matches(session, app, employee, indexes)
    keep = [i for i, ix in enumerate(indexes) if ix not in blocked]
    tree["matches"] = [tree["matches"][i] for i in keep]
    return tree, [indexes[i] for i in keep], [app.keyring.pseudonym(tins[i]) for i in keep]


def _names_answer(
    app: App,
    employee: Employee,
    verdict: Verdict,
    call: _Call,
    found: tuple[Any, list[bytes], list[str]],
    via: Any,
    touches: list[log.Write],
) -> ResearchAnswer:
    """Record every match's pseudonym (each revealed match counts toward the daily ceiling,
    in the same commit) and the answer's commitment, then release the answer."""
    tree, indexes, matches = found
    data, masked = masking.apply(tree, verdict.obligations)
    answer = _commitment(
        ResearchAnswer(call.req.command, data, masked, -1), recipe(call.req, None, verdict, [])
    )
    idx = _record(
        app,
        call,
        actor=employee.seid,
        outcome="allow",
        verdict=verdict,
        codes=verdict.codes,
        matches=matches,
        also=_counted(app, employee.id, indexes) + touches,
        via=via,
        answer=answer,
    )
    return ResearchAnswer(call.req.command, data, masked, idx)
