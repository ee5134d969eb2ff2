"""grants: the kind of a grant, its k, its pseudonym key version and its generalization level

``kind`` is records | anonymized (statistics is refused until it exists); an anonymized
grant has ``anon_k`` (the k of k-anonymity, default 10), ``key_version`` (its record
pseudonyms are derived from the master key, the grant id and this version; rotating bumps
it) and ``anon_level`` (the coarsest generalization level released so far: it only rises,
so that no two answers of one grant combine into a finer view than either was checked at).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grant_grant") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=12), nullable=False, server_default="records")
        )
        batch.add_column(sa.Column("anon_k", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("key_version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("anon_level", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE grant_grant SET kind = 'anonymized', anon_k = 10 WHERE population = 'anonymized'"
    )


def downgrade() -> None:
    with op.batch_alter_table("grant_grant") as batch:
        for col in ("anon_level", "key_version", "anon_k", "kind"):
            batch.drop_column(col)
