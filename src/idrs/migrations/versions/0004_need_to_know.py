"""need to know from the agency's records: machine principals and the origin of a contact

``system_principal`` (a contact feed, another agency's system: its own credentials, the
secret stored as an argon2id hash) and ``system_session`` (its bearer tokens, SHA-256
only); ``taxpayer_contact.origin`` (``inbound`` from a feed, ``declared`` by an employee)
and ``recorded_by`` (the feed). Contacts that existed before were opened by hand: they
become ``declared``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_principal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("agency", sa.String(length=120), nullable=True),
        sa.Column("secret_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_principal")),
        sa.UniqueConstraint("name", name=op.f("uq_system_principal_name")),
    )
    op.create_table(
        "system_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["system_principal.id"],
            name=op.f("fk_system_session_principal_id_system_principal"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_system_session_token_hash")),
    )
    op.create_index(
        op.f("ix_system_session_principal_id"), "system_session", ["principal_id"], unique=False
    )
    with op.batch_alter_table("taxpayer_contact") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=8), nullable=False, server_default="declared")
        )
        batch.add_column(sa.Column("recorded_by", sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("taxpayer_contact") as batch:
        batch.drop_column("recorded_by")
        batch.drop_column("origin")
    op.drop_index(op.f("ix_system_session_principal_id"), table_name="system_session")
    op.drop_table("system_session")
    op.drop_table("system_principal")
