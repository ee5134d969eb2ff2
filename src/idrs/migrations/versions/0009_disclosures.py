"""disclosures: agency systems' agreements per statutory basis, bulk batches, per-record decisions

``disclosure_agreement`` (an agency_system's agreement for one basis: agency, federal, the
ranks that may sign, the caps per official and per investigation and their window, the
term), ``disclosure_batch`` (one bulk request: held / decided / rejected, the encrypted
request, the counts, the audit entry committing the Merkle root of its decisions) and
``disclosure_decision`` (one record's decision document, its leaf hash, the taxpayer's
pseudonym for the accounting of disclosures).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disclosure_agreement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("system_id", sa.Integer(), sa.ForeignKey("system_principal.id"), nullable=False),
        sa.Column("basis", sa.String(length=20), nullable=False),
        sa.Column("agency", sa.String(length=120), nullable=False),
        sa.Column("federal", sa.Boolean(), nullable=False),
        sa.Column("ranks", sa.Text(), nullable=False),
        sa.Column("cap_official", sa.Integer(), nullable=False),
        sa.Column("cap_investigation", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoked_by", sa.String(length=120), nullable=True),
    )
    op.create_index("ix_disclosure_agreement_system_id", "disclosure_agreement", ["system_id"])
    op.create_table(
        "disclosure_batch",
        sa.Column("id", sa.String(length=24), primary_key=True),
        sa.Column("system_id", sa.Integer(), sa.ForeignKey("system_principal.id"), nullable=False),
        sa.Column(
            "agreement_id", sa.Integer(), sa.ForeignKey("disclosure_agreement.id"), nullable=True
        ),
        sa.Column("basis", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("disclosed", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("submitted_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("request_enc", sa.LargeBinary(), nullable=False),
        sa.Column("hold_index", sa.Integer(), nullable=True),
        sa.Column("approved_by", sa.String(length=120), nullable=True),
        sa.Column("approval_index", sa.Integer(), nullable=True),
        sa.Column("audit_index", sa.Integer(), nullable=True),
        sa.Column("root", sa.String(length=64), nullable=True),
        sa.Column("blocks", sa.LargeBinary(), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_disclosure_batch_system_id", "disclosure_batch", ["system_id"])
    op.create_index("ix_disclosure_batch_status", "disclosure_batch", ["status"])
    op.create_table(
        "disclosure_decision",
        sa.Column(
            "batch_id", sa.String(length=24), sa.ForeignKey("disclosure_batch.id"),
            primary_key=True,
        ),
        sa.Column("line", sa.Integer(), primary_key=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("taxpayer_pseudonym", sa.String(length=40), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
    )
    op.create_index(
        "ix_disclosure_decision_taxpayer", "disclosure_decision", ["taxpayer_pseudonym"]
    )


def downgrade() -> None:
    op.drop_table("disclosure_decision")
    op.drop_table("disclosure_batch")
    op.drop_table("disclosure_agreement")
