"""grants: signatures, approvals, clearance verifications and training attestations are immutable

Triggers refusing UPDATE and DELETE on the append-only grant records (as 0002 does for the
audit tables). Agreement texts are not covered: a new version is a new row, and only the
``current`` flag of older versions changes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("grant_signature", "grant_approval", "grant_clearance", "grant_training")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in TABLES:
            for what in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{what.lower()} BEFORE {what} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END"
                )
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION idrs_grants_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    for t in TABLES:
        op.execute(
            f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION idrs_grants_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    for t in TABLES:
        if bind.dialect.name == "sqlite":
            for what in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {t}_no_{what}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}")
    if bind.dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS idrs_grants_append_only()")
