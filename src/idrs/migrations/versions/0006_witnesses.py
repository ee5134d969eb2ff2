"""witnesses: the witnesses a log submits checkpoints to, and their cosignatures

``audit_witness``: name, URL and cosignature/v1 verifier key of each configured witness.
``audit_cosignature``: one verified cosignature line per (checkpoint, witness), served
under the checkpoint at ``GET /api/v1/audit/checkpoint``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_witness",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_cosignature",
        sa.Column("checkpoint_id", BigKey, primary_key=True, autoincrement=False),
        sa.Column("witness", sa.Text(), primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_cosignature_witness", "audit_cosignature", ["witness", "tree_size"])


def downgrade() -> None:
    op.drop_index("ix_audit_cosignature_witness", table_name="audit_cosignature")
    op.drop_table("audit_cosignature")
    op.drop_table("audit_witness")
