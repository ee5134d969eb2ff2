"""Audit-log storage: entries in one gap-free order, the Merkle node cache, signed checkpoints.

* ``audit_entry``: the leaf input (canonical JSON) and its RFC 6962 leaf hash, by index.
* ``audit_node``: hashes of perfect subtrees at level >= 2, keyed by ``level << 48 | index``
  (about n/2 rows for n entries; level-1 nodes are recomputed from two leaf hashes). Appends
  add O(log n) rows and read O(log n); proofs read O(log n). This is a cache of the entries: ``idrs audit verify``
  recomputes it and checks it, so tampering with it is caught like tampering with entries.
* ``audit_checkpoint``: every signed checkpoint (C2SP tlog-checkpoint signed note), with a
  copy of the leaf hashes it newly covers (authenticated by its root; see ``verify``).

Integer keys are ``INTEGER PRIMARY KEY`` on SQLite (the rowid itself: no second index).
Append-only is enforced by triggers in migration 0002; the proofs are the guarantee.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base

BigKey = BigInteger().with_variant(Integer(), "sqlite")

#: ``audit_node.id = level << LEVEL_SHIFT | index``.
LEVEL_SHIFT = 48
#: Lowest level kept in ``audit_node``. Level 0 is ``audit_entry.leaf_hash``; a level-1 node is
#: recomputed from its two leaf hashes when needed (one hash), which halves the node storage.
MIN_STORED_LEVEL = 2


def node_key(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


class AuditEntry(Base):
    __tablename__ = "audit_entry"

    idx: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    leaf_input: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditNode(Base):
    __tablename__ = "audit_node"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The leaf hashes of the entries this checkpoint newly covers (previous size .. tree_size
    #: - 1), 32 bytes each: authenticated by the signed root, they let verification name the
    #: exact entry changed inside a signed range (NULL before migration 0005).
    leaf_hashes: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class AuditWitness(Base):
    """A witness the log submits its checkpoints to (``idrs witness add``)."""

    __tablename__ = "audit_witness"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    vkey: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditCosignature(Base):
    """A witness's cosignature line on one stored checkpoint (verified before it is stored)."""

    __tablename__ = "audit_cosignature"

    checkpoint_id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(Text, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditAnswer(Base):
    """The opening of one entry's answer commitment, kept outside the leaf (issue 14.1).

    ``salt_enc``: the 32-byte salt, encrypted with the keyring (column ``audit_answer.salt``).
    ``recipe_enc``: what reproduces the answer from the master file's history (the TIN, the
    command's parameters, the obligations the masking honoured, the withheld relatives),
    encrypted (column ``audit_answer.recipe``). Written in the entry's own commit.
    """

    __tablename__ = "audit_answer"

    idx: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    salt_enc: Mapped[bytes] = mapped_column(LargeBinary)
    recipe_enc: Mapped[bytes] = mapped_column(LargeBinary)
