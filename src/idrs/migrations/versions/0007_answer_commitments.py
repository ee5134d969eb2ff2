"""audit_answer: the encrypted salt and reproduction recipe of each answer commitment (issue 14)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_answer",
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("salt_enc", sa.LargeBinary(), nullable=False),
        sa.Column("recipe_enc", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_answer")),
    )


def downgrade() -> None:
    op.drop_table("audit_answer")
