"""audit: each checkpoint keeps a copy of the leaf hashes it newly covers

``audit_checkpoint.leaf_hashes``: the 32-byte leaf hashes of entries ``previous size ..
tree_size - 1``, concatenated, stored by the signer next to the signed root. The signed root
authenticates them (they must fold to it), so ``idrs audit verify`` can name the exact entry
whose content changed even when an attacker recomputed its stored leaf hash and every Merkle
node above it. NULL for checkpoints signed before this revision.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_checkpoint", sa.Column("leaf_hashes", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_checkpoint", "leaf_hashes")  # SQLite >= 3.35: in place, triggers kept
