"""A C2SP ``tlog-witness``: cosigns a log's checkpoints only along one append-only history.

Run by someone other than the agency (an inspector general, a court, another agency):
``idrs witness init --name NAME --dir DIR --log LOG_VKEY`` then ``idrs witness serve --dir DIR``.
It speaks the specification's HTTP protocol, so any client of it (and any other witness
implementation in its place) interoperates:

``POST /add-checkpoint`` with body ``old <size>\\n`` + up to 63 base64 consistency-proof lines
+ an empty line + the signed checkpoint note. Answers:

* 200, the cosignature line(s) (``text/plain``): the witness verified the log's signature,
  that ``old`` is the size it cosigned last and the RFC 6962 consistency proof from that
  tree to the new one; it stored the new size and root *before* answering;
* 400 malformed body, or ``old`` above the checkpoint's size;
* 403 no signature by a log key the witness trusts for that origin;
* 404 an origin the witness does not know;
* 409 ``old`` is not the size it cosigned last (body: that size and a newline,
  ``Content-Type: text/x.tlog.size``), or the same size with a different root (a split view);
* 422 the consistency proof does not verify (a fork: the log was rewritten);
* 413 a body over 64 KiB.

State in DIR (0700): ``witness.key`` (0600, never leaves DIR); ``state.json`` (per origin: the
trusted log keys and a snapshot of the size and root last cosigned; replaced atomically,
fsynced, 0600); ``cosigned.jsonl`` (one line per cosigned checkpoint, appended and
fdatasynced *before* the cosignature leaves: one sync per checkpoint instead of the two an
atomic replace costs; replayed over the snapshot at start, then folded into it); and
``refused.jsonl`` (every refused checkpoint that carried a valid log signature: evidence of
misbehaviour). A torn last journal line (a crash mid-write) was never answered and is
ignored. One lock makes "check old size, verify, store, cosign" atomic, so two concurrent
requests can never both advance (or roll back) the stored size.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier, split_note
from idrs.audit.cosignature import Cosigner, check_name, create_key, load_key
from idrs.errors import ConfigurationError

KEY_FILE = "witness.key"
STATE_FILE = "state.json"
REFUSED_FILE = "refused.jsonl"
JOURNAL_FILE = "cosigned.jsonl"
MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class BadRequest(ValueError):
    pass


# ---------------------------------------------------------------- files in DIR


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"{path} missing; run `idrs witness init`") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} is unreadable: {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("logs"), dict):
        raise ConfigurationError(f"{path} is not a witness state file")
    return state


def init(directory: Path, name: str, logs: list[str] | None = None) -> str:
    """Create DIR with a new witness key and an empty state; return the witness's vkey."""
    directory = Path(directory)
    parsed = [_log_key(v) for v in logs or []]  # bad input: nothing is created
    check_name(name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / KEY_FILE).exists() or (directory / STATE_FILE).exists():
        raise ConfigurationError(f"{directory} already holds a witness; it is never replaced")
    cosigner = create_key(directory / KEY_FILE, name)
    state: dict[str, Any] = {"version": 1, "logs": {}}
    for v in parsed:
        _add_log(state, v)
    _write_atomic(directory / STATE_FILE, json.dumps(state, indent=1, sort_keys=True))
    return cosigner.key().vkey()


def _log_key(vkey: str) -> Verifier:
    try:
        return Verifier.parse(vkey)
    except CheckpointError as exc:
        raise ConfigurationError(f"log key: {exc}") from None


def _add_log(state: dict[str, Any], verifier: Verifier) -> None:
    # The origin line of idrs's checkpoints is the name of its signing key.
    entry = state["logs"].setdefault(verifier.name, {"vkeys": [], "size": 0, "root": None})
    if verifier.vkey() not in entry["vkeys"]:
        entry["vkeys"].append(verifier.vkey())


def trust(directory: Path, vkey: str) -> dict[str, Any]:
    """Trust one more log key (its name is the log's origin). Run while the witness is stopped."""
    directory = Path(directory)
    verifier = _log_key(vkey)
    state = _read_state(directory)
    _add_log(state, verifier)
    _write_atomic(directory / STATE_FILE, json.dumps(state, indent=1, sort_keys=True))
    return {"origin": verifier.name, "vkey": verifier.vkey()}


def vkey_of(directory: Path) -> str:
    return load_key(Path(directory) / KEY_FILE).key().vkey()


# ---------------------------------------------------------------- the protocol


def _decimal(s: str, what: str) -> int:
    if not (s.isascii() and s.isdigit()) or (s != "0" and s.startswith("0")):
        raise BadRequest(f"{what} is not a decimal number without leading zeroes")
    return int(s)


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """(old size, proof hashes, checkpoint note) of an add-checkpoint body; BadRequest if malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise BadRequest("body has no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise BadRequest("first line is not 'old <size>'")
    old = _decimal(lines[0][4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for i, line in enumerate(lines[1:], start=2):
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise BadRequest(f"line {i}: not base64") from None
        if len(h) != 32:
            raise BadRequest(f"line {i}: not a 32-byte hash")
        proof.append(h)
    return old, proof, note


def _replay(directory: Path, state: dict[str, Any]) -> bool:
    """Apply the journal's records to ``state``; True if there were any."""
    try:
        lines = (directory / JOURNAL_FILE).read_text().split("\n")
    except FileNotFoundError:
        return False
    applied = False
    for line in lines:
        try:
            rec = json.loads(line)
            log = state["logs"][rec["origin"]]
            log["size"], log["root"] = int(rec["size"]), str(rec["root"])
            applied = True
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line: that checkpoint was never answered
    return applied


def current_state(directory: Path) -> dict[str, Any]:
    """The state of DIR as a running witness sees it (snapshot + journal); writes nothing."""
    state = _read_state(Path(directory))
    _replay(Path(directory), state)
    return state


class Witness:
    """The witness of one DIR. Thread-safe: one lock around check-verify-store-cosign."""

    def __init__(self, directory: Path, clock: Any = time.time) -> None:
        self.dir = Path(directory)
        self.cosigner: Cosigner = load_key(self.dir / KEY_FILE)
        self.state = _read_state(self.dir)
        if _replay(self.dir, self.state):
            # fold the journal into the snapshot, then start a new journal
            _write_atomic(self.dir / STATE_FILE, json.dumps(self.state, indent=1, sort_keys=True))
            os.unlink(self.dir / JOURNAL_FILE)
        self.journal = os.open(
            self.dir / JOURNAL_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self.clock = clock
        self.lock = threading.Lock()

    def close(self) -> None:
        os.close(self.journal)

    def _persist(self, origin: str, size: int, root: bytes) -> None:
        b64 = base64.b64encode(root).decode()
        line = json.dumps({"origin": origin, "size": size, "root": b64}, sort_keys=True)
        os.write(self.journal, (line + "\n").encode())
        os.fdatasync(self.journal)
        self.state["logs"][origin].update(size=size, root=b64)

    def vkey(self) -> str:
        return self.cosigner.key().vkey()

    def _refused(self, origin: str, status: int, old: int, ck: Checkpoint, why: str) -> None:
        record = {
            "time": int(self.clock()),
            "origin": origin,
            "status": status,
            "old": old,
            "size": ck.size,
            "root": base64.b64encode(ck.root).decode(),
            "why": why,
        }
        fd = os.open(self.dir / REFUSED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            old, proof, note = parse_request(body)
            text, _sigs = split_note(note)
            ck = Checkpoint.parse(text)
        except (BadRequest, CheckpointError) as exc:
            return Answer(400, f"bad request: {exc}\n")
        log = self.state["logs"].get(ck.origin)
        if log is None:
            return Answer(404, "unknown log origin\n")
        if not any(_signed_by(note, v) for v in log["vkeys"]):
            return Answer(403, "no valid signature by a trusted key of this log\n")
        if old > ck.size:
            return Answer(400, "bad request: old size is above the checkpoint's size\n")
        with self.lock:
            log = self.state["logs"][ck.origin]
            size = int(log["size"])
            root = merkle.EMPTY_ROOT if log["root"] is None else base64.b64decode(log["root"])
            if old != size:
                self._refused(ck.origin, 409, old, ck, f"old size {old}, cosigned {size}")
                return Answer(409, f"{size}\n", SIZE_TYPE)
            if old == ck.size and ck.root != root:
                self._refused(ck.origin, 409, old, ck, "same size, different root: split view")
                return Answer(409, f"{size}\n", SIZE_TYPE)
            if old == 0 and proof:
                return Answer(422, "the proof must be empty from size 0\n")
            try:
                merkle.verify_consistency(old, ck.size, proof, root, ck.root)
            except merkle.ProofError as exc:
                self._refused(ck.origin, 422, old, ck, f"consistency proof: {exc}")
                return Answer(422, f"consistency proof does not verify: {exc}\n")
            self._persist(ck.origin, ck.size, ck.root)  # durable before the cosignature leaves
            return Answer(200, self.cosigner.cosign(text, int(self.clock())))


def _signed_by(note: str, vkey: str) -> bool:
    try:
        Verifier.parse(vkey).open(note)
    except CheckpointError:
        return False
    return True


def create_app(directory: Path) -> Any:
    """The witness as a small ASGI application (Starlette)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    witness = Witness(directory)

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return PlainTextResponse("body too large\n", status_code=413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY:
                return PlainTextResponse("body too large\n", status_code=413)
            chunks.append(chunk)
        # in the event loop itself: every request takes the one lock anyway, and a thread
        # hand-off per request cost more than the work (one verify, one sign, one fdatasync)
        answer = witness.add_checkpoint(b"".join(chunks))
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
    app.state.witness = witness
    return app
