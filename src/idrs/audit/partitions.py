"""PostgreSQL: ``audit_entry`` partitioned by entry range, and archived partitions verified later.

Migration 0012 makes ``audit_entry`` a table partitioned by RANGE (idx). Every partition
holds ``2**level`` entries starting at a multiple of ``2**level``: it is exactly one perfect
Merkle subtree, node ``(level, start >> level)``, whose hash stays in ``audit_node`` (which
is not partitioned: about 1/10 of the log's bytes) after the partition is detached.

Archiving (docs/operations.md): once a signed checkpoint covers a partition,
:func:`archive_partition` writes a directory holding the partition's entries, the signed
checkpoint, the log's verifier key and the subtree's audit path to that checkpoint's root
(RFC 9162 inclusion path of the subtree node). The partition is then detached
(``ALTER TABLE audit_entry DETACH PARTITION ...``), dumped with ``pg_dump`` and dropped or
moved to cheaper storage. :func:`verify_archive` needs nothing but the directory (and,
better, the log's key from elsewhere): it checks the signature, rehashes every entry,
folds them into the subtree hash and the audit path into the signed root.

New partitions are created ahead of the log (``AHEAD`` of them past the current size) by
:func:`ensure_partitions`, which the appender calls after a commit when the log nears the
end of the last partition; it creates a plain table and ATTACHes it (SHARE UPDATE
EXCLUSIVE on ``audit_entry``: appends and reads go on).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier
from idrs.audit.export import read_entries
from idrs.audit.store import Raw, raw
from idrs.errors import Conflict, IdrsError, NotFound

#: Entries per partition on a new database: 2**24 (16,777,216, about 7 GB of leaves).
DEFAULT_LEVEL = 24
#: Empty partitions kept ready past the log's end.
AHEAD = 2
#: Advisory lock serializing partition DDL between processes ("idrspart").
PG_PART_LOCK = 0x6964727370617274

ENTRIES = "entries.jsonl"
CHECKPOINT = "checkpoint"
VKEY = "key.vkey"
PROOF = "subtree.json"

_NAME = re.compile(r"^audit_entry_p\d{6,}$")
_BOUND = re.compile(r"FOR VALUES FROM \('?(\d+)'?\) TO \('?(\d+)'?\)")


class ArchiveInvalid(IdrsError):
    """An archived partition does not verify."""

    status_code = 422


@dataclass(frozen=True)
class Partition:
    name: str
    start: int
    end: int

    @property
    def level(self) -> int:
        return (self.end - self.start).bit_length() - 1


def partition_name(start: int, level: int) -> str:
    return f"audit_entry_p{start >> level:06d}"


def is_partitioned(db: Raw) -> bool:
    if not db.pg:
        return False
    row = db.one("SELECT relkind FROM pg_class WHERE oid = to_regclass('audit_entry')")
    return row is not None and row[0] == "p"


def list_partitions(db: Raw) -> list[Partition]:
    """The partitions attached to ``audit_entry``, in entry order (empty if not partitioned)."""
    if not is_partitioned(db):
        return []
    cur = db.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_entry'::regclass"
    )
    out = []
    for name, bound in cur.fetchall():
        m = _BOUND.search(bound or "")
        if m:
            out.append(Partition(str(name), int(m.group(1)), int(m.group(2))))
    cur.close()
    return sorted(out, key=lambda p: p.start)


def create_partition(db: Raw, start: int, level: int) -> Partition:
    """Create and attach the partition of entries [start, start + 2**level) (in db's transaction)."""
    if start % (1 << level):
        raise ValueError(f"a partition starts at a multiple of 2**{level}")
    end = start + (1 << level)
    name = partition_name(start, level)
    db.execute(
        f"CREATE TABLE {name} (LIKE audit_entry INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"  # noqa: S608 - our name
        f" CONSTRAINT {name}_range CHECK (idx >= {start} AND idx < {end}))"
    ).close()
    db.execute(
        f"ALTER TABLE audit_entry ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
    ).close()
    db.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range").close()
    # the append-only row trigger is inherited from audit_entry; TRUNCATE's is per table
    db.execute(
        f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION idrs_audit_append_only()"
    ).close()
    return Partition(name, start, end)


def ensure_partitions(engine: Engine, size: int, level: int | None = None) -> int:
    """Keep ``AHEAD`` empty partitions past entry ``size``; return the entry index from
    which to call again (when the log has entered the next partition).

    Returns 0 on a database whose ``audit_entry`` is not partitioned (SQLite, or before
    migration 0012). The partition size is that of the last partition (``level`` for the
    first one, default ``DEFAULT_LEVEL``).
    """
    with raw(engine) as db:
        if not is_partitioned(db):
            db.rollback()
            return 0
        db.execute("SELECT pg_advisory_xact_lock(?)", (PG_PART_LOCK,)).close()
        parts = list_partitions(db)
        lvl = parts[-1].level if parts else (DEFAULT_LEVEL if level is None else level)
        end = parts[-1].end if parts else 0
        want = ((size >> lvl) + 1 + AHEAD) << lvl
        while end < want:
            create_partition(db, end, lvl)
            end += 1 << lvl
        db.commit()
        return ((size >> lvl) + 1) << lvl


def set_partition_level(engine: Engine, level: int) -> None:
    """Re-cut an EMPTY partitioned log into partitions of ``2**level`` entries (a new
    installation choosing its partition size; tests use small ones)."""
    with raw(engine) as db:
        if not is_partitioned(db):
            raise Conflict("audit_entry is not partitioned (PostgreSQL, migration 0012)")
        db.execute("SELECT pg_advisory_xact_lock(?)", (PG_PART_LOCK,)).close()
        if db.one("SELECT 1 FROM audit_entry LIMIT 1") is not None:
            raise Conflict("the audit log is not empty: its partitions cannot be re-cut")
        for p in list_partitions(db):
            db.execute(f"ALTER TABLE audit_entry DETACH PARTITION {p.name}").close()
            db.execute(f"DROP TABLE {p.name}").close()
        end = 0
        while end < ((1 + AHEAD) << level):
            create_partition(db, end, level)
            end += 1 << level
        db.commit()


# ---------------------------------------------------------------- archive and verify


def _subtree_proof(db: Raw, part: Partition, size: int) -> list[bytes]:
    """The audit path from the subtree node of ``part`` to the root of the tree of ``size``."""
    plan = merkle.inclusion_plan(part.start, size)[part.level :]
    nodes = db.nodes(merkle.plan_nodes(plan))
    return merkle.evaluate(plan, nodes)


def archive_partition(engine: Engine, name: str, out: Path, vkey: str) -> dict[str, Any]:
    """Write the archive of partition ``name`` into the new directory ``out``.

    The partition must be complete and covered by the newest signed checkpoint, which is
    the one written (its signature and root make the archive verifiable on its own).
    """
    if not _NAME.match(name):
        raise NotFound(f"{name!r} is not an audit_entry partition name")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(f"{out} exists and is not an empty directory; choose a new one")
    with raw(engine) as db:
        db.begin_read()
        part = next((p for p in list_partitions(db) if p.name == name), None)
        if part is None:
            # a detached partition is a plain table with the same rows
            row = db.one("SELECT to_regclass(?)::text", (name,))
            if row is None or row[0] is None:
                raise NotFound(f"no partition {name}")
            lo_hi = db.one(f"SELECT min(idx), max(idx) FROM {name}")  # noqa: S608 - checked name
            if lo_hi[0] is None:
                raise Conflict(f"{name} is empty")
            level = (int(lo_hi[1]) - int(lo_hi[0]) + 1).bit_length() - 1
            part = Partition(name, int(lo_hi[0]), int(lo_hi[0]) + (1 << level))
        last = db.latest_checkpoint()
        if last is None or last[1] < part.end:
            raise Conflict(
                f"{name} (entries {part.start}..{part.end - 1}) is not covered by a signed "
                "checkpoint yet: sign one first (idrs audit checkpoint)"
            )
        note, size = last[3], last[1]
        proof = _subtree_proof(db, part, size)
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        count = 0
        with open(out / ENTRIES, "w", encoding="ascii") as f:
            cur = db.execute(
                f"SELECT idx, leaf_input FROM {name} ORDER BY idx"  # noqa: S608 - checked name
            )
            while rows := cur.fetchmany(10_000):
                for idx, leaf in rows:
                    f.write(
                        json.dumps(
                            {"index": int(idx), "leaf_input": base64.b64encode(bytes(leaf)).decode()}
                        )
                        + "\n"
                    )
                    count += 1
            cur.close()
        db.rollback()
    if count != part.end - part.start:
        raise Conflict(f"{name} holds {count} entries, not {part.end - part.start}")
    (out / CHECKPOINT).write_text(note, encoding="utf-8")
    (out / VKEY).write_text(vkey.strip() + "\n", encoding="utf-8")
    (out / PROOF).write_text(
        json.dumps(
            {
                "partition": name,
                "start": part.start,
                "level": part.level,
                "tree_size": size,
                "path": [h.hex() for h in proof],
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return {"partition": name, "start": part.start, "end": part.end, "tree_size": size}


@dataclass(frozen=True)
class ArchiveReport:
    partition: str
    start: int
    end: int
    tree_size: int
    root: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "partition": self.partition,
            "entries": f"{self.start}..{self.end - 1}",
            "checkpoint_size": self.tree_size,
            "root": self.root.hex(),
        }


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchiveInvalid(f"cannot read {path.name}: {exc}") from None


def verify_archive(directory: Path, key: str | None = None) -> ArchiveReport:
    """Verify an archived partition from its files alone; raise ArchiveInvalid naming the problem.

    ``key``: the log's verifier key obtained elsewhere (recommended: the archive's own
    ``key.vkey`` only proves the archive is self-consistent); must equal the archive's.
    """
    directory = Path(directory)
    vkey = _read(directory / VKEY).strip()
    if key is not None and key.strip() != vkey:
        raise ArchiveInvalid("the archive is signed for another key than the one given")
    try:
        verifier = Verifier.parse(vkey)
        ck = Checkpoint.parse(verifier.open(_read(directory / CHECKPOINT)))
    except CheckpointError as exc:
        raise ArchiveInvalid(f"checkpoint: {exc}") from None
    try:
        meta = json.loads(_read(directory / PROOF))
        start, level, size = int(meta["start"]), int(meta["level"]), int(meta["tree_size"])
        path = [bytes.fromhex(h) for h in meta["path"]]
        name = str(meta["partition"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveInvalid(f"{PROOF}: {exc}") from None
    if size != ck.size:
        raise ArchiveInvalid(f"{PROOF} is for a tree of {size} entries, the checkpoint {ck.size}")
    if level < 0 or start < 0 or start % (1 << level) or start + (1 << level) > size:
        raise ArchiveInvalid(f"{PROOF}: entries from {start}, 2**{level} of them: not a subtree")
    hashes = [merkle.leaf_hash(leaf) for leaf in read_entries(directory, start, ArchiveInvalid)]
    if len(hashes) != 1 << level:
        raise ArchiveInvalid(f"{ENTRIES} holds {len(hashes)} entries, the partition {1 << level}")
    sub = merkle.subtree_hash(hashes)
    count = (size + (1 << level) - 1) >> level  # the tree seen with level-`level` nodes as leaves
    try:
        merkle.verify_inclusion(start >> level, count, sub, path, ck.root)
    except merkle.ProofError as exc:
        raise ArchiveInvalid(
            f"the entries do not hash into the checkpoint's root ({exc}): an entry was altered,"
            " added or removed"
        ) from None
    return ArchiveReport(name, start, start + (1 << level), ck.size, ck.root)
