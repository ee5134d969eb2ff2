"""One call of the adjustment service: its per-engine settings (thresholds, the SQLite
writer lock), its context and audit entry (:class:`Call`), the checks every call starts with
(input screening, sign-in), and the commit of a change with its entry in one unit of work
(:func:`committed`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from idrs.access.decision import Verdict
from idrs.adjustments import apply as post
from idrs.adjustments import rules
from idrs.adjustments.tx import Tx
from idrs.audit import commitment, log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.errors import AccessDenied, Conflict, IdrsError, Reason, ValidationFailed
from idrs.identifiers import BadIdentifier, normalize_tin, optional_case_id, screen_text
from idrs.people import auth
from idrs.people.models import Employee

_log = logging.getLogger("idrs.adjustments.service")  # the name its messages always had
AUDIT_UNAVAILABLE = Reason("AUDIT_UNAVAILABLE", "the audit log cannot be written; nothing was changed")


#: per engine (weakly: a collected engine's thresholds never pass to a new one at its address)
_configured: weakref.WeakKeyDictionary[Engine, rules.Thresholds] = weakref.WeakKeyDictionary()


def configure(app: App, thresholds: rules.Thresholds) -> None:
    """Use ``thresholds`` for ``app`` (tests, operators); default: ``IDRS_ADJ_*`` settings."""
    _configured[app.engine] = thresholds


def thresholds_for(app: App) -> rules.Thresholds:
    return _configured.get(app.engine) or rules.Thresholds.from_settings(app.settings)


@dataclass
class Call:
    """One call's context, for its audit entry."""

    app: App
    action: str
    interface: str
    origin: str | None
    command: str | None = None
    pseudonym: str | None = None
    #: the canonical TIN, for lookups only: never written to the entry
    tin: str | None = field(default=None, repr=False)
    adjustment_id: int | None = None
    tax_year: int | None = None
    tc: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def entry(self, actor: str, outcome: str, codes: list[str],
              verdict: Verdict | None = None, **more: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"action": self.action}
        for key, value in (("command", self.command), ("taxpayer", self.pseudonym),
                           ("adjustment", self.adjustment_id), ("year", self.tax_year),
                           ("tc", self.tc)):
            if value is not None:
                obj[key] = value
        detail = {**self.detail, **more}
        if verdict is not None and verdict.basis:
            detail["basis"] = verdict.basis
        return make_event(
            EventType.ACCESS_ADJUSTMENT_DECIDE, time=self.app.clock.now(), actor=actor,
            outcome=outcome, interface=self.interface, address=self.origin, obj=obj,
            reasons=codes, policy=verdict.policy_version if verdict is not None else None,
            detail={k: v for k, v in detail.items() if v is not None},
        )

    def record(self, actor: str, outcome: str, codes: list[str],
               verdict: Verdict | None = None, **more: Any) -> int:
        """Append this call's entry in its own transaction (denials, conflicts, errors)."""
        try:
            return log.append(self.app.engine, self.entry(actor, outcome, codes, verdict, **more))
        except IdrsError:
            raise AccessDenied([AUDIT_UNAVAILABLE]) from None

    def deny(self, actor: str, reasons: list[Reason], verdict: Verdict | None = None,
             **more: Any) -> AccessDenied:
        idx = self.record(actor, "deny", [r.code for r in reasons], verdict, **more)
        return AccessDenied(reasons, idx)


def canonical_tin(tin: str) -> str:
    try:
        return normalize_tin(tin)
    except BadIdentifier as exc:
        raise ValidationFailed([f"tin: {exc}"]) from None


def screened(case: str | None, contact: str | None,
             reason: str | None) -> tuple[str | None, str | None, str | None]:
    """The basis in its documented id format and a reason free of identifiers (ValidationFailed
    before anything is recorded): case and contact go into the entry verbatim."""
    return (optional_case_id(case, "case"), optional_case_id(contact, "contact"),
            screen_text(reason, "reason"))


def signed_in(app: App, call: Call, token: str | None) -> Employee:
    """The employee behind ``token`` or a recorded AccessDenied."""
    try:
        return auth.authenticate(app, token, interface=call.interface, address=call.origin)
    except AccessDenied as exc:
        raise call.deny(exc.seid or "anonymous", exc.reasons) from None


def sqlite_lock(app: App) -> threading.Lock | None:
    """In-process writers on SQLite queue here instead of sleeping in SQLite's busy handler."""
    if app.engine.dialect.name != "sqlite":
        return None
    return _LOCKS.setdefault(app.engine, threading.Lock())


#: per engine, weakly (as ``_configured``)
_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def committed(app: App, call: Call, work: Any, actor: str,
              index_column: str = "request_audit_index",
              answer: Any = None) -> tuple[Any, int]:
    """``work(tx) -> (result, entry)``: the change and its audit entry, one commit.

    Through the audit package's ONE unit of work (:func:`idrs.audit.log.unit_of_work`):
    ``work`` writes the change on the unit's transaction, then the unit appends the entry
    with the log's own appender (write lock, checkpoint floor, Merkle nodes) and commits
    both. The row's ``index_column`` is filled by a write committed with the entry
    (:data:`~idrs.audit.log.ENTRY_INDEX`). VersionConflict / Conflict: rolled back, then
    recorded on their own and re-raised. Any failure of the audit write (a database error,
    a log truncated below its last signed checkpoint) rolls everything back:
    AUDIT_UNAVAILABLE.

    ``answer(result) -> AdjustmentResult`` (issue 14.1): the answer the caller will return,
    committed in the entry (``object.answer``) with its salt written in the same transaction.
    """
    try:
        result, idx = _in_unit(app, call, work, index_column, answer)
    except post.VersionConflict as exc:
        exc.audit_index = call.record(actor, "conflict", ["VERSION_CONFLICT"],
                                      base_version=exc.base, current_version=exc.current)
        raise
    except Conflict as exc:  # decided or expired meanwhile
        exc.audit_index = call.record(actor, "conflict", [])  # type: ignore[attr-defined]
        raise
    except _AuditFailed:
        raise AccessDenied([AUDIT_UNAVAILABLE]) from None
    return result, idx


def _in_unit(app: App, call: Call, work: Any, index_column: str,
             answer: Any) -> tuple[Any, int]:
    """Run ``work`` and commit its entry in one unit of work (see :func:`committed`)."""
    if index_column not in ("request_audit_index", "decision_audit_index"):
        raise ValueError(index_column)
    lock = sqlite_lock(app)
    if lock is not None:
        lock.acquire()
    try:
        with log.unit_of_work(app.engine) as unit:
            result, entry = work(Tx(unit.conn, unit.pg))
            also: list[log.Write] = []
            if call.adjustment_id is not None:
                also.append((f"UPDATE adjustment_request SET {index_column} = :idx"  # noqa: S608
                             " WHERE id = :id", {"idx": log.ENTRY_INDEX,
                                                 "id": call.adjustment_id}))
            try:
                if answer is not None:
                    committed = commitment.commit(answer(result).document(),
                                                  {"kind": "adjustment", "action": call.action})
                    entry["object"]["answer"] = committed.hex
                    salt, recipe = committed.row(app.keyring)
                    also.append(("INSERT INTO audit_answer (idx, salt_enc, recipe_enc)"
                                 " VALUES (:idx, :salt, :recipe)",
                                 {"idx": log.ENTRY_INDEX, "salt": salt, "recipe": recipe}))
                return result, unit.commit(entry, also)
            except Exception:  # noqa: BLE001 - no entry, no change
                _log.exception("audit append inside the adjustment transaction failed")
                raise _AuditFailed from None
    finally:
        if lock is not None:
            lock.release()


class _AuditFailed(Exception):
    pass
