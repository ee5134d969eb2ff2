"""detection: investigations of referred alerts, their steps, and the notice's trigger

``detection_investigation`` is one case per referred alert (referred → opened → closed,
with its finding); ``detection_investigation_step`` records each step once (opening, every
outcome, the closing); ``detection_taxpayer_notice.trigger`` names the statutory trigger a
§7431(e) notice was issued on (None: sent before this revision, at referral). Alerts
already referred get their case, in state ``referred``.

Revision ID: 0010
Revises: 0008 (the lead re-chains it after 0009 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_investigation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("alert_id", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=8), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("finding", sa.String(length=16), nullable=True),
        sa.Column("investigator", sa.String(length=8), nullable=True),
        sa.Column("referred_by", sa.String(length=64), nullable=False),
        sa.Column("referred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_investigation")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_detection_investigation_alert_id")),
        sa.UniqueConstraint("case_id", name=op.f("uq_detection_investigation_case_id")),
    )
    op.create_index(op.f("ix_detection_investigation_subject"), "detection_investigation",
                    ["subject"], unique=False)
    op.create_table(
        "detection_investigation_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_investigation_step")),
        sa.UniqueConstraint("case_id", "step", name="uq_detection_investigation_step"),
    )
    op.create_index(op.f("ix_detection_investigation_step_case_id"),
                    "detection_investigation_step", ["case_id"], unique=False)
    op.create_index("ix_detection_investigation_step_at", "detection_investigation_step",
                    ["at"], unique=False)
    with op.batch_alter_table("detection_taxpayer_notice") as batch:
        batch.add_column(sa.Column("trigger", sa.String(length=32), nullable=True))
    # the alerts already referred: their case waits for an investigator
    op.execute(
        "INSERT INTO detection_investigation (case_id, alert_id, subject, unit, state, "
        "referred_by, referred_at, updated_at) "
        "SELECT 'INV-' || alert_id, alert_id, seid, unit, 'referred', COALESCE(assignee, ''), "
        "updated_at, updated_at FROM detection_alert WHERE state = 'referred'"
    )


def downgrade() -> None:
    with op.batch_alter_table("detection_taxpayer_notice") as batch:
        batch.drop_column("trigger")
    op.drop_index("ix_detection_investigation_step_at", table_name="detection_investigation_step")
    op.drop_index(op.f("ix_detection_investigation_step_case_id"),
                  table_name="detection_investigation_step")
    op.drop_table("detection_investigation_step")
    op.drop_index(op.f("ix_detection_investigation_subject"), table_name="detection_investigation")
    op.drop_table("detection_investigation")
