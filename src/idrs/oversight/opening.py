"""Opening an answer commitment (issue 14.2): ``idrs audit open INDEX`` and ``check-opening``.

:func:`open_answer` (security staff; itself recorded, before anything is shown) reads the
entry at ``INDEX``, decrypts its salt and recipe (``audit_answer``), *reproduces* the answer
from the master file's history as of the entry's time (:func:`reproduce`), and compares
``SHA-256(salt ‖ JCS(answer))`` with the digest in the leaf. The master file is append-only
where it matters (transactions are posted, never edited; a taxpayer exists from its
``created_at``), so the same reads bounded by the entry's time give the same answer; if they
do not, the history the answer was drawn from was altered, and the opening says so.

The opening document (``--json``) is ``{"index", "answer", "salt", "commitment",
"matches"}`` plus what a third party needs to check it with SHA-256 alone: ``leaf_input``
(base64 of the entry's leaf bytes), ``checkpoint`` (a signed checkpoint note covering the
entry), ``proof`` (the RFC 9162 inclusion proof, hex) and ``vkey`` (the log's verifier key).
:func:`check_opening` is that check (docs/interface.md gives it by hand).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, with_loader_criteria

from idrs.audit import commitment, log, merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier, load_signer
from idrs.audit.events import Actor, EventType
from idrs.audit.store import raw
from idrs.context import App
from idrs.errors import AccessDenied, IdrsError, NotFound, Reason
from idrs.vocabulary import Role

#: Who may open an answer commitment (it shows the taxpayer data of that answer): security staff.
ANSWER_OPENERS: frozenset[Role] = frozenset({Role.SECURITY_ADMIN})


class NoCommitment(IdrsError):
    """The entry exists but carries no answer commitment (a denial, or not an answer)."""

    status_code = 404


class OpeningInvalid(IdrsError):
    """``check-opening``: the opening does not verify (the first problem named)."""

    status_code = 409


def _entry(app: App, index: int) -> tuple[bytes, dict[str, Any], tuple[bytes, bytes] | None]:
    with raw(app.engine) as db:
        db.begin_read()
        row = db.one("SELECT leaf_input FROM audit_entry WHERE idx = ?", (index,))
        kept = db.one("SELECT salt_enc, recipe_enc FROM audit_answer WHERE idx = ?", (index,))
        db.rollback()
    if row is None:
        raise NotFound(f"no audit entry {index}")
    leaf = bytes(row[0])
    return leaf, json.loads(leaf), (bytes(kept[0]), bytes(kept[1])) if kept else None


def _bounded(session: Session, bound: datetime) -> None:
    """Every ORM read of this session sees the master file as it stood at ``bound``:
    transactions posted by then, taxpayers created by then."""
    from idrs.masterfile.models import Taxpayer, Transaction

    @event.listens_for(session, "do_orm_execute")
    def _as_of(state: Any) -> None:
        if state.is_select:
            state.statement = state.statement.options(
                with_loader_criteria(Transaction, Transaction.posted_at <= bound),
                with_loader_criteria(Taxpayer, Taxpayer.created_at <= bound),
            )


def reproduce(app: App, recipe: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The answer of ``entry`` rebuilt from history (None: its taxpayer no longer exists)."""
    if recipe.get("kind") == "adjustment":
        return _adjustment(app, recipe, entry)
    if recipe.get("kind") == "anonymized":
        return _anonymized(app, recipe, entry)
    if recipe.get("kind") == "statistics":
        # differentially private noise cannot be drawn again: the opening keeps the answer
        # itself (encrypted), and opening it shows it matches the leaf (grants.statistics)
        answer = recipe.get("answer")
        return answer if isinstance(answer, dict) else None
    if recipe.get("kind") != "research":
        raise NoCommitment(
            f"entry {entry.get('index')}: no reproduction for {recipe.get('kind')!r}"
        )
    from idrs import research
    from idrs.access import masking
    from idrs.access.decision import Obligations
    from idrs.adjustments import history
    from idrs.grants.anonymize import anonymize
    from idrs.masterfile.commands import COMMANDS
    from idrs.masterfile.screens import Sensitivity
    from idrs.vocabulary import CommandCode

    bound = datetime.fromisoformat(entry["time"])
    obligations = Obligations(
        frozenset(Sensitivity(v) for v in recipe["visible"]), bool(recipe["anonymize"])
    )
    command, params = recipe["command"], recipe["params"]
    withheld: list[str] = []
    with Session(app.engine) as s:
        _bounded(s, bound)
        if command == CommandCode.NAMES:
            tree = COMMANDS[command](s, app.keyring, None, **params)
            shown = set(entry["object"].get("matches") or [])
            tree["matches"] = [
                m
                for m in tree["matches"]
                if app.keyring.pseudonym(_canonical_tin(m["tin"].value)) in shown
            ]
        else:
            taxpayer = research.lookup(s, app, recipe["tin"])
            if taxpayer is None:
                return None
            if recipe.get("as_of"):
                tree = history.AS_OF[command](
                    s, app.keyring, taxpayer, **params, as_of=date.fromisoformat(recipe["as_of"])
                )
            else:
                tree = COMMANDS[command](s, app.keyring, taxpayer, **params)
            hidden = set(recipe.get("hidden") or [])
            if hidden:
                tree, withheld = masking.withhold(tree, hidden)
            if obligations.anonymize:
                tree = anonymize(tree, app.keyring.pseudonym)
    data, masked = masking.apply(tree, obligations)
    return {"command": command, "data": data, "masked": masked, "withheld": withheld}


def _anonymized(app: App, recipe: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """An anonymized principal's records rebuilt from the master file as it stood at the
    entry's time (returns received by then, taxpayers created by then), cut at the level and
    k the answer was cut at (:func:`idrs.grants.anonymized.reproduce`)."""
    from idrs.grants import anonymized
    from idrs.masterfile.models import TaxReturn

    bound = datetime.fromisoformat(entry["time"])
    with Session(app.engine) as s:
        _bounded(s, bound)

        @event.listens_for(s, "do_orm_execute")
        def _returns_by_then(state: Any) -> None:
            if state.is_select:
                state.statement = state.statement.options(
                    with_loader_criteria(TaxReturn, TaxReturn.received_at <= bound)
                )

        return anonymized.reproduce(app, s, recipe)


def _adjustment(app: App, recipe: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """An adjustment's answer rebuilt from its request row: what the request got (applied at
    once with its version, or pending with what it requires and the thresholds met), or
    what the decision made of it (applied with its version, or rejected)."""
    from idrs.adjustments.models import APPLIED, PENDING, REJECTED
    from idrs.adjustments.service import AdjustmentResult

    adj_id = (entry.get("object") or {}).get("adjustment")
    with raw(app.engine) as db:
        row = db.one(
            "SELECT id, requires, applied_version, payload, request_audit_index,"
            " decision_audit_index FROM adjustment_request WHERE id = ?",
            (adj_id,),
        )
    if row is None:
        return None
    index = entry.get("index")
    requires = [r for r in (row[1] or "").split(",") if r]
    if recipe.get("action") in ("approve", "reject"):
        if row[5] != index:
            return None
        status = APPLIED if recipe["action"] == "approve" else REJECTED
        res = AdjustmentResult(int(row[0]), status, -1, [], row[2])
    else:
        if row[4] != index:
            return None
        if requires:
            reasons = json.loads(row[3] or "{}").get("thresholds") or []
            res = AdjustmentResult(int(row[0]), PENDING, -1, requires, reasons=reasons)
        else:
            res = AdjustmentResult(int(row[0]), APPLIED, -1, [], row[2])
    return res.document()


def _canonical_tin(value: str) -> str:
    from idrs.identifiers import normalize_tin

    return normalize_tin(value)


def _proof(app: App, index: int) -> tuple[str, list[str]]:
    """A fresh signed checkpoint covering ``index`` and the inclusion proof against it."""
    from idrs.audit.service import checkpoint_now

    note = checkpoint_now(app)
    size = Checkpoint.parse(note.split("\n\n")[0] + "\n").size
    with raw(app.engine) as db:
        db.begin_read()
        plan = merkle.inclusion_plan(index, size)
        hashes = merkle.evaluate(plan, db.nodes(merkle.plan_nodes(plan)))
        db.rollback()
    return note, [h.hex() for h in hashes]


def _record(
    app: App,
    actor: str,
    outcome: str,
    interface: str,
    obj: dict[str, Any],
    reasons: list[str] | None = None,
) -> int:
    return log.record(app, EventType.AUDIT_ANSWER_OPEN, Actor(actor, interface), obj,
                      outcome=outcome, reasons=reasons)


def open_answer(app: App, employee: Any, index: int, *, interface: str = "cli") -> dict[str, Any]:
    """Open the answer commitment of entry ``index`` (security staff; recorded first).

    Returns the opening document; ``matches`` False is evidence that the history the answer
    was drawn from (or its stored opening) was altered after the answer was given.
    """
    actor = getattr(employee, "seid", None) or "anonymous"
    roles = frozenset(getattr(employee, "role_set", None) or ())
    if employee is None or not getattr(employee, "active", False) or not roles & ANSWER_OPENERS:
        denied = AccessDenied(
            [
                Reason(
                    "NOT_IN_PROFILE",
                    "opening an answer commitment needs the role "
                    + ", ".join(sorted(ANSWER_OPENERS)),
                )
            ]
        )
        denied.audit_index = _record(
            app, actor, "denied", interface, {"opened": index}, denied.codes
        )
        raise denied
    if index < 0:
        raise IdrsError(f"INDEX must be a non-negative entry index, not {index}")
    leaf, entry, kept = _entry(app, index)
    committed = (entry.get("object") or {}).get("answer")
    if not isinstance(committed, str):
        raise NoCommitment(f"entry {index} carries no answer commitment (not an allowed answer)")
    if kept is None:
        raise OpeningInvalid(
            f"entry {index} commits to an answer but its salt is gone from audit_answer: "
            "the opening was removed (evidence of tampering)"
        )
    salt, recipe = commitment.stored(app.keyring, *kept)
    answer = reproduce(app, recipe, entry)
    matches = answer is not None and commitment.digest(salt, answer) == committed
    own = _record(app, actor, "allowed", interface, {"opened": index, "matches": matches})
    note, proof = _proof(app, index)
    return {
        "index": index,
        "answer": answer,
        "salt": base64.b64encode(salt).decode(),
        "commitment": committed,
        "matches": matches,
        "leaf_input": base64.b64encode(leaf).decode(),
        "checkpoint": note,
        "proof": proof,
        "vkey": load_signer(app.settings.home).verifier().vkey(),
        "audit_index": own,
    }


def check_opening(doc: Any, vkey: str | None = None) -> dict[str, Any]:
    """Check an opening with SHA-256, the signed checkpoint and the inclusion proof only.

    ``vkey``: the log's verifier key as the checker knows it (default: the one in the file).
    Raises OpeningInvalid naming the first problem; returns a short summary.
    """
    try:
        index = doc["index"]
        salt = base64.b64decode(doc["salt"], validate=True)
        leaf = base64.b64decode(doc["leaf_input"], validate=True)
        proof = [bytes.fromhex(h) for h in doc["proof"]]
        claimed, note, answer = doc["commitment"], doc["checkpoint"], doc["answer"]
        verifier = Verifier.parse(vkey or doc["vkey"])
    except (KeyError, TypeError, ValueError, binascii.Error, CheckpointError) as exc:
        raise OpeningInvalid(f"not an opening document: {type(exc).__name__}: {exc}") from None
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise OpeningInvalid("index is not a non-negative integer")
    if len(salt) != commitment.SALT_BYTES:
        raise OpeningInvalid(f"salt is {len(salt)} bytes, not {commitment.SALT_BYTES}")
    try:
        entry = json.loads(leaf)
    except ValueError:
        raise OpeningInvalid("leaf_input is not the JSON of an entry") from None
    if not isinstance(entry, dict) or entry.get("index") != index:
        raise OpeningInvalid(f"leaf_input is not entry {index}")
    in_leaf = (entry.get("object") or {}).get("answer")
    if in_leaf != claimed:
        raise OpeningInvalid("the commitment is not the one in the entry's leaf")
    try:
        recomputed = commitment.digest(salt, answer)
    except (TypeError, ValueError) as exc:
        raise OpeningInvalid(f"the answer is not JSON RFC 8785 can canonicalize: {exc}") from None
    if recomputed != claimed:
        raise OpeningInvalid(
            "SHA-256(salt || JCS(answer)) is not the commitment in the leaf: this answer is not "
            "the one given (or the history it was reproduced from was altered)"
        )
    try:
        ck = Checkpoint.parse(verifier.open(note))
        merkle.verify_inclusion(
            index, ck.size, hashlib.sha256(b"\x00" + leaf).digest(), proof, ck.root
        )
    except CheckpointError as exc:
        raise OpeningInvalid(f"checkpoint: {exc}") from None
    except merkle.ProofError as exc:
        raise OpeningInvalid(f"the entry is not in the signed log: {exc}") from None
    return {
        "ok": True,
        "index": index,
        "commitment": claimed,
        "tree_size": ck.size,
        "root": ck.root.hex(),
    }
