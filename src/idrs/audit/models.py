"""Audit-log storage: the entries (leaf inputs) in one gap-free order.

The Merkle tree, node cache and checkpoints are added by the audit package.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from idrs.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_entry"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf_input: Mapped[bytes] = mapped_column(LargeBinary)
