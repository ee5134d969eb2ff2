"""The log's side of witnessing: configured witnesses, submitting checkpoints, cosignatures.

* ``idrs witness add`` stores a witness (name, URL, cosignature/v1 verifier key) in
  ``audit_witness`` (and records the change in the audit log).
* :func:`after_signing` is called once a checkpoint is stored (:func:`idrs.audit.log.sign_checkpoint`
  calls it). It hands the checkpoint to one background thread per database, never the
  caller's: the commit path does not wait on any witness. That thread submits the newest
  pending checkpoint to every witness (C2SP tlog-witness ``POST <url>/add-checkpoint``, the
  consistency proof from the size that witness cosigned last, a short timeout) and stores
  each cosignature line only after checking it against the witness's key.
* :func:`submit` does the same synchronously (``idrs audit checkpoint``, ``audit export``,
  ``audit verify`` with a witness policy).
* :func:`cosigned_note` is the checkpoint with its cosignature lines appended: what
  ``GET /api/v1/audit/checkpoint`` serves.

A witness that answers 409 names the size it cosigned last; the log retries once from that
size (a witness that lost nothing and a log that forked nothing then agree). A witness that
refuses (409 again, 422) is reported and logged: a forked log gets no cosignature, and a
"k of these witness keys" policy (``audit verify``, ``audit verify-export``) then fails.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import CheckpointError, split_note
from idrs.audit.cosignature import CosignerKey, check_name
from idrs.audit.store import Raw, raw
from idrs.errors import ConfigurationError, Conflict, IdrsError

log = logging.getLogger(__name__)

#: seconds a witness has to answer one add-checkpoint request
TIMEOUT = 5.0
SIZE_TYPE = "text/x.tlog.size"
#: the longest answer read from a witness (a few signature lines are ~150 bytes)
MAX_ANSWER = 16 * 1024


class WitnessInvalid(IdrsError):
    status_code = 400


# ---------------------------------------------------------------- configuration


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessInvalid(f"witness URL {url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise WitnessInvalid("witness URL must not carry a query or fragment")
    return url.strip().rstrip("/")


def add(engine: Engine, name: str, url: str, vkey: str) -> dict[str, Any]:
    """Configure a witness; WitnessInvalid (nothing stored) on a bad name, URL or key."""
    try:
        check_name(name)
    except ConfigurationError as exc:
        raise WitnessInvalid(str(exc)) from None
    try:
        key = CosignerKey.parse(vkey)
    except CheckpointError as exc:
        raise WitnessInvalid(f"--vkey: {exc}") from None
    if key.name != name:
        raise WitnessInvalid(f"--vkey names the witness {key.name!r}, not {name!r}")
    url = check_url(url)
    with raw(engine) as db:
        db.begin_write()
        if db.one("SELECT 1 FROM audit_witness WHERE name = ?", (name,)) is not None:
            db.rollback()
            raise Conflict(f"a witness named {name!r} is already configured")
        db.execute(
            "INSERT INTO audit_witness (name, url, vkey, created_at) VALUES (?, ?, ?, ?)",
            (name, url, key.vkey(), _now(db)),
        ).close()
        db.commit()
    return {"name": name, "url": url, "vkey": key.vkey()}


def configured(engine: Engine) -> list[dict[str, str]]:
    with raw(engine) as db:
        cur = db.execute("SELECT name, url, vkey FROM audit_witness ORDER BY name")
        rows = [{"name": n, "url": u, "vkey": v} for n, u, v in cur.fetchall()]
        cur.close()
    return rows


def _now(db: Raw) -> Any:
    now = datetime.now(UTC)
    return now if db.pg else now.replace(tzinfo=None).isoformat(sep=" ")


# ---------------------------------------------------------------- published checkpoint


def _cosignature_lines(db: Raw, checkpoint_id: int) -> list[str]:
    cur = db.execute(
        "SELECT line FROM audit_cosignature WHERE checkpoint_id = ? ORDER BY witness",
        (checkpoint_id,),
    )
    lines = [str(r[0]) for r in cur.fetchall()]
    cur.close()
    return lines


def cosigned_note(engine: Engine, checkpoint_id: int | None = None) -> str | None:
    """The checkpoint (default: the latest) followed by its stored cosignature lines."""
    with raw(engine) as db:
        db.begin_read()
        if checkpoint_id is None:
            last = db.latest_checkpoint()
        else:
            row = db.one("SELECT id, note FROM audit_checkpoint WHERE id = ?", (checkpoint_id,))
            last = None if row is None else (int(row[0]), 0, b"", str(row[1]))
        if last is None:
            db.rollback()
            return None
        lines = _cosignature_lines(db, last[0])
        db.rollback()
    return last[3] + "".join(lines)


# ---------------------------------------------------------------- submitting

_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_for(engine: Engine) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(engine, threading.Lock())


def _request_body(old: int, proof: list[bytes], note: str) -> bytes:
    import base64

    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


def _consistency(db: Raw, old: int, size: int) -> list[bytes]:
    if old == 0 or old == size:
        return []
    plan = merkle.consistency_plan(old, size)
    return merkle.evaluate(plan, db.nodes(merkle.plan_nodes(plan)))


def _submit_one(
    engine: Engine, client: Any, witness: dict[str, str], ckpt: tuple[int, int, bytes, str]
) -> dict[str, Any]:
    cid, size, _root, note = ckpt
    key = CosignerKey.parse(witness["vkey"])
    body_text, _ = split_note(note)
    with raw(engine) as db:
        row = db.one(
            "SELECT MAX(tree_size) FROM audit_cosignature WHERE witness = ?", (witness["name"],)
        )
        old = 0 if row is None or row[0] is None else int(row[0])
        if db.one(
            "SELECT 1 FROM audit_cosignature WHERE witness = ? AND checkpoint_id = ?",
            (witness["name"], cid),
        ):
            return {"witness": witness["name"], "status": 200, "detail": "already cosigned"}
    for attempt in (1, 2):
        if old > size:
            return {
                "witness": witness["name"],
                "status": 409,
                "detail": f"the witness cosigned size {old}, beyond this checkpoint's {size}",
            }
        with raw(engine) as db:
            db.begin_read()
            try:
                proof = _consistency(db, old, size)
            except KeyError:
                return {"witness": witness["name"], "status": None, "detail": "no proof"}
            finally:
                db.rollback()
        try:
            resp = client.post(
                witness["url"] + "/add-checkpoint", content=_request_body(old, proof, note)
            )
        except Exception as exc:  # noqa: BLE001 - an unreachable witness is reported, not fatal
            return {"witness": witness["name"], "status": None, "detail": f"unreachable: {exc}"}
        if resp.status_code == 409 and attempt == 1:
            ctype = resp.headers.get("content-type", "").split(";")[0].strip()
            text = resp.text.strip()
            if ctype == SIZE_TYPE and text.isdigit() and int(text) != old:
                old = int(text)  # the witness's own record of what it cosigned last
                continue
        if resp.status_code != 200:
            detail = resp.text.strip()[:200]
            log.warning(
                "witness %s refused checkpoint of size %s: %s %s",
                witness["name"],
                size,
                resp.status_code,
                detail,
            )
            return {"witness": witness["name"], "status": resp.status_code, "detail": detail}
        if len(resp.content) > MAX_ANSWER:
            return {"witness": witness["name"], "status": 200, "detail": "answer too large"}
        good = [ln + "\n" for ln in resp.text.splitlines() if key.check_line(body_text, ln)]
        if not good:
            return {
                "witness": witness["name"],
                "status": 200,
                "detail": "no valid cosignature by the configured key in the answer",
                "valid": False,
            }
        with raw(engine) as db:
            db.begin_write()
            db.execute(
                "INSERT INTO audit_cosignature (checkpoint_id, witness, tree_size, line, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (cid, witness["name"], size, good[0], _now(db)),
            ).close()
            db.commit()
        return {"witness": witness["name"], "status": 200, "detail": "cosigned"}
    raise AssertionError("unreachable")  # pragma: no cover


def submit(
    engine: Engine, checkpoint_id: int | None = None, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """Submit a stored checkpoint (default: the latest) to every configured witness, now.

    Returns one ``{"witness", "status", "detail"}`` per witness (status None: unreachable).
    """
    import httpx

    witnesses = configured(engine)
    if not witnesses:
        return []
    with _lock_for(engine):
        with raw(engine) as db:
            if checkpoint_id is None:
                ckpt = db.latest_checkpoint()
            else:
                row = db.one(
                    "SELECT id, tree_size, root_hash, note FROM audit_checkpoint WHERE id = ?",
                    (checkpoint_id,),
                )
                ckpt = (
                    None if row is None else (int(row[0]), int(row[1]), bytes(row[2]), str(row[3]))
                )
        if ckpt is None:
            return []
        with httpx.Client(timeout=timeout) as client:
            return [_submit_one(engine, client, w, ckpt) for w in witnesses]


class _Worker:
    """The background submitter of one engine: a thread that lives while there is work."""

    def __init__(self) -> None:
        self.pending = False
        self.running = False

    def kick(self, engine: Engine) -> None:
        with _workers_guard:
            self.pending = True
            if self.running:
                return
            self.running = True
        threading.Thread(
            target=self._loop, args=(engine,), name="idrs-witness-submit", daemon=True
        ).start()

    def _loop(self, engine: Engine) -> None:
        while True:
            with _workers_guard:
                if not self.pending:
                    self.running = False
                    return
                self.pending = False
            try:
                submit(engine)
            except Exception:  # noqa: BLE001 - the next checkpoint is tried again
                log.warning("submitting the checkpoint to the witnesses failed", exc_info=True)


#: by engine, weakly: a disposed engine's worker goes with it
_workers: weakref.WeakKeyDictionary[Engine, _Worker] = weakref.WeakKeyDictionary()
_workers_guard = threading.Lock()


def after_signing(engine: Engine, note: str | None = None) -> None:
    """A checkpoint was just stored: have it cosigned in the background (never blocks).

    The one hook for every place that signs a checkpoint. Submissions are coalesced: the
    worker always submits the latest stored checkpoint, so a burst of signatures costs one
    round of requests. The thread ends when nothing is pending.
    """
    with _workers_guard:
        worker = _workers.get(engine)
        if worker is None:
            worker = _workers[engine] = _Worker()
    worker.kick(engine)


def _forget_after_fork() -> None:
    global _workers_guard, _locks_guard
    _workers.clear()
    _locks.clear()
    _workers_guard = threading.Lock()
    _locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def idle(engine: Engine) -> bool:
    """True when no background submission for ``engine`` is pending or running."""
    with _workers_guard:
        worker = _workers.get(engine)
        return worker is None or not (worker.pending or worker.running)
