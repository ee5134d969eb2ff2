"""grants: the privacy budget of a statistics grant, and every spend from it

A statistics grant (kind ``statistics``, population ``statistics``) carries ``dp_epsilon``
and ``dp_delta``, its total privacy budget (ε, and δ for the queries whose group keys are not
public), set at request and approved with the grant; ``dp_epsilon_spent`` and
``dp_delta_spent`` only grow, by one conditional UPDATE per query (the budget is reserved
before anything is computed: two concurrent queries cannot both take the last of it).
``grant_dp_spend`` keeps each spend (append-only by convention: nothing updates or deletes it).

Revision ID: 0011
Revises: 0008 (the lead re-chains it at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grant_grant") as batch:
        batch.add_column(sa.Column("dp_epsilon", sa.Float(), nullable=True))
        batch.add_column(sa.Column("dp_delta", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("dp_epsilon_spent", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("dp_delta_spent", sa.Float(), nullable=False, server_default="0")
        )
    op.create_table(
        "grant_dp_spend",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("grant_id", sa.Integer(), sa.ForeignKey("grant_grant.id"), nullable=False),
        sa.Column("employee_id", sa.Integer(), sa.ForeignKey("employee.id"), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("query_sha256", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_grant_dp_spend_grant_id", "grant_dp_spend", ["grant_id"])


def downgrade() -> None:
    op.drop_index("ix_grant_dp_spend_grant_id", table_name="grant_dp_spend")
    op.drop_table("grant_dp_spend")
    with op.batch_alter_table("grant_grant") as batch:
        for col in ("dp_delta_spent", "dp_epsilon_spent", "dp_delta", "dp_epsilon"):
            batch.drop_column(col)
