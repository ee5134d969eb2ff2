"""audit log on PostgreSQL: the append guard, and audit_entry partitioned by entry range

PostgreSQL only (SQLite is unchanged):

* ``idrs_audit_expect(next_idx)``: raises unless the stored log ends exactly before
  ``next_idx`` and no signed checkpoint covers more. The appender runs it under the log's
  write lock on its one-round-trip path (lock, guard, inserts, commit in one pipeline),
  with the size it cached after its previous batch; if the guard raises, nothing is
  committed and the appender re-reads the size under the lock.
* ``audit_entry`` becomes a table partitioned by RANGE (idx), with partitions of
  ``PARTITION_ENTRIES`` (2^22) entries each: a partition is one complete Merkle subtree,
  whose root hash stays in ``audit_node`` after the partition is detached and archived, so
  an archived partition can be verified later against any checkpoint that covers it
  (``idrs.audit.partitions``; docs/operations.md). The append-only triggers are
  recreated on the partitioned table (they apply to every partition).

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

GUARD = """
CREATE OR REPLACE FUNCTION idrs_audit_expect(next_idx bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last_idx bigint;
    covered bigint;
BEGIN
    SELECT idx INTO last_idx FROM audit_entry ORDER BY idx DESC LIMIT 1;
    SELECT tree_size INTO covered FROM audit_checkpoint ORDER BY id DESC LIMIT 1;
    IF COALESCE(last_idx + 1, 0) <> next_idx OR COALESCE(covered, 0) > next_idx THEN
        RAISE EXCEPTION 'the audit log does not end before entry %', next_idx
            USING ERRCODE = 'serialization_failure';
    END IF;
END;
$$
"""


#: Entries per partition (2**LEVEL); idrs.audit.partitions.DEFAULT_LEVEL, fixed here so that
#: this migration means the same thing forever
LEVEL = 24
AHEAD = 2


def _triggers(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION idrs_audit_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION idrs_audit_append_only()"
    )
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE audit_entry RENAME TO audit_entry_flat")
    op.execute("ALTER TABLE audit_entry_flat RENAME CONSTRAINT pk_audit_entry TO pk_audit_entry_flat")
    op.execute(
        "CREATE TABLE audit_entry (idx bigint NOT NULL, leaf_input bytea NOT NULL,"
        " leaf_hash bytea NOT NULL, CONSTRAINT pk_audit_entry PRIMARY KEY (idx))"
        " PARTITION BY RANGE (idx)"
    )
    size = bind.exec_driver_sql("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entry_flat").scalar()
    end = 0
    while end < ((int(size or 0) >> LEVEL) + 1 + AHEAD) << LEVEL:
        name = f"audit_entry_p{end >> LEVEL:06d}"
        op.execute(
            f"CREATE TABLE {name} PARTITION OF audit_entry"
            f" FOR VALUES FROM ({end}) TO ({end + (1 << LEVEL)})"
        )
        op.execute(  # row triggers are inherited; a statement trigger is per table
            f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name} "
            "FOR EACH STATEMENT EXECUTE FUNCTION idrs_audit_append_only()"
        )
        end += 1 << LEVEL
    op.execute("INSERT INTO audit_entry SELECT idx, leaf_input, leaf_hash FROM audit_entry_flat")
    op.execute("DROP TABLE audit_entry_flat")
    _triggers("audit_entry")
    op.execute(GUARD)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS idrs_audit_expect(bigint)")
    op.execute("ALTER TABLE audit_entry RENAME TO audit_entry_parted")
    op.execute(
        "ALTER TABLE audit_entry_parted RENAME CONSTRAINT pk_audit_entry TO pk_audit_entry_parted"
    )
    op.execute(
        "CREATE TABLE audit_entry (idx bigint NOT NULL, leaf_input bytea NOT NULL,"
        " leaf_hash bytea NOT NULL, CONSTRAINT pk_audit_entry PRIMARY KEY (idx))"
    )
    op.execute("INSERT INTO audit_entry SELECT idx, leaf_input, leaf_hash FROM audit_entry_parted")
    op.execute("DROP TABLE audit_entry_parted")  # its partitions go with it
    _triggers("audit_entry")
