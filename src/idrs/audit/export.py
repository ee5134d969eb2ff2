"""``idrs audit export --out DIR`` and ``idrs audit verify-export DIR [--against OLD]``.

An export is what a third party needs, with no access to the database:

* ``entries.jsonl``: one ``{"index": I, "leaf_input": BASE64}`` per line, indexes 0..size-1;
* ``checkpoint``: the signed checkpoint (C2SP tlog-checkpoint note) covering exactly them;
* ``key.vkey``: the verifier key ``NAME+KEYID+BASE64(0x01||KEY)``.

:func:`verify_export` reads only those files (and optionally an older checkpoint an overseer
kept): it checks the signature, recomputes the root (RFC 6962) and, given the old
checkpoint, that the log's first ``old.size`` entries still have the old root: the log only
grew since.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier
from idrs.audit.cosignature import CosignerKey, check_policy
from idrs.audit.store import raw
from idrs.errors import Conflict, IdrsError

ENTRIES = "entries.jsonl"
CHECKPOINT = "checkpoint"
VKEY = "key.vkey"


class ExportInvalid(IdrsError):
    """The export (or the old checkpoint) does not verify."""

    status_code = 422


def check_out_dir(out: Path) -> None:
    """Refuse an existing non-empty directory (or a file) before anything is written or recorded."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(f"{out} exists and is not an empty directory; choose a new one")


def write_export(engine: Engine, out: Path, note: str, vkey: str) -> dict[str, Any]:
    """Write the three files for the checkpoint ``note`` (entries 0..size-1). Returns a summary."""
    check_out_dir(out)
    ck = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    count = 0
    with raw(engine) as db, open(out / ENTRIES, "w", encoding="ascii") as f:
        db.begin_read()
        if db.pg:
            cur = db.conn.cursor(name="idrs_audit_export")
            cur.itersize = 10_000
            cur.execute(
                "SELECT idx, leaf_input FROM audit_entry WHERE idx < %s ORDER BY idx", (ck.size,)
            )
        else:
            cur = db.execute(
                "SELECT idx, leaf_input FROM audit_entry WHERE idx < ? ORDER BY idx", (ck.size,)
            )
        b64 = base64.b64encode
        while rows := cur.fetchmany(10_000):
            f.writelines(
                f'{{"index":{int(i)},"leaf_input":"{b64(bytes(li)).decode()}"}}\n' for i, li in rows
            )
            count += len(rows)
        cur.close()
        db.rollback()
        f.flush()
        os.fsync(f.fileno())
    (out / CHECKPOINT).write_text(note)
    (out / VKEY).write_text(vkey + "\n")
    if count != ck.size:
        raise ExportInvalid(f"exported {count} entries but the checkpoint covers {ck.size}")
    return {"out": str(out), "entries": count, "tree_size": ck.size, "root": ck.root.hex()}


@dataclass
class ExportReport:
    size: int
    root: bytes
    against_size: int | None = None
    #: how many of the policy's witness keys cosigned (None: no witness policy given)
    cosigned_by: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": True,
            "tree_size": self.size,
            "root": self.root.hex(),
            "against_size": self.against_size,
        }
        if self.cosigned_by is not None:
            out["cosigned_by"] = self.cosigned_by
        return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportInvalid(f"cannot read {path.name}: {exc}") from None


def verify_export(
    directory: Path,
    against: str | None = None,
    witness_keys: list[CosignerKey] | None = None,
    witness_min: int | None = None,
) -> ExportReport:
    """Verify an export using only its files; raise ExportInvalid naming the first problem.

    With ``witness_keys``, the checkpoint must also carry valid cosignature/v1 lines by at
    least ``witness_min`` (default: all) of those witnesses.
    """
    directory = Path(directory)
    try:
        verifier = Verifier.parse(_read(directory / VKEY))
        note = _read(directory / CHECKPOINT)
        ck = Checkpoint.parse(verifier.open(note))
        cosigned = (
            check_policy(note, witness_keys, witness_min or len(witness_keys))
            if witness_keys
            else None
        )
    except CheckpointError as exc:
        raise ExportInvalid(f"checkpoint: {exc}") from None
    old: Checkpoint | None = None
    if against is not None:
        try:
            old = Checkpoint.parse(verifier.open(against))
        except CheckpointError as exc:
            raise ExportInvalid(f"old checkpoint: {exc}") from None
        if old.origin != ck.origin:
            raise ExportInvalid(f"old checkpoint is for another log ({old.origin!r})")
        if old.size > ck.size:
            raise ExportInvalid(
                f"rolled back: the old checkpoint covers {old.size} entries, the export {ck.size}"
            )
    from idrs.audit import parquet

    if parquet.is_parquet_export(directory):
        old_root = parquet.verify_parquet_export(directory, ck, old)
        if old is not None and old_root != old.root:
            raise ExportInvalid(
                f"not append-only: the first {old.size} entries no longer hash to the old checkpoint's root"
            )
        return ExportReport(ck.size, ck.root, old.size if old else None, cosigned)
    cr = merkle.CompactRange()
    old_root = merkle.EMPTY_ROOT if old is not None and old.size == 0 else None
    sha = merkle.leaf_hash
    for leaf in read_entries(directory, 0, ExportInvalid):
        cr.append(sha(leaf))
        if old is not None and cr.size == old.size:
            old_root = cr.root()
    if cr.size != ck.size:
        raise ExportInvalid(f"{ENTRIES} holds {cr.size} entries, the checkpoint covers {ck.size}")
    if cr.root() != ck.root:
        raise ExportInvalid(
            "entries do not hash to the checkpoint's root (an entry was altered, added or removed)"
        )
    if old is not None and old_root != old.root:
        raise ExportInvalid(
            f"not append-only: the first {old.size} entries no longer hash to the old checkpoint's root"
        )
    return ExportReport(ck.size, ck.root, old.size if old else None, cosigned)


def read_entries(directory: Path, first: int, error: type[IdrsError]) -> Iterator[bytes]:
    """The leaves of ``directory/entries.jsonl`` in order, the first one being entry ``first``.

    Each line is ``{"index", "leaf_input"}`` (base64); a line that is not, or an index out of
    sequence (missing or reordered), raises ``error`` naming the line."""
    try:
        f = open(directory / ENTRIES, encoding="ascii")  # noqa: SIM115
    except OSError as exc:
        raise error(f"cannot read {ENTRIES}: {exc}") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            try:
                obj = json.loads(line)
                if set(obj) != {"index", "leaf_input"} or not isinstance(obj["index"], int):
                    raise ValueError("not {index, leaf_input}")
                leaf = base64.b64decode(obj["leaf_input"], validate=True)
            except (ValueError, TypeError, binascii.Error) as exc:
                raise error(f"{ENTRIES} line {lineno}: {exc}") from None
            expected = first + lineno - 1
            if obj["index"] != expected:
                raise error(f"{ENTRIES} line {lineno}: index {obj['index']}, expected "
                            f"{expected} (missing or reordered)")
            yield leaf
