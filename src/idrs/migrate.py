"""Schema migrations (Alembic), run by ``idrs init`` and by the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def revision(engine: Engine, message: str) -> None:
    """Developer helper: autogenerate a revision against ``engine`` (already at head)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def regenerate_initial() -> Path:
    """Developer helper (pre-release only): rewrite revision 0001 from the current models.

    Run ``python -m idrs.migrate`` after changing a model while the project has no
    deployments yet; once released, add new revisions instead.
    """
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from idrs.models import Base

    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"render_as_batch": True})
        ops = produce_migrations(ctx, Base.metadata)
    # alembic types both as optional; produce_migrations always fills them in.
    if ops.upgrade_ops is None or ops.downgrade_ops is None:
        raise RuntimeError("alembic produced no upgrade/downgrade operations")
    up = render_python_code(ops.upgrade_ops, migration_context=ctx)
    down = render_python_code(ops.downgrade_ops, migration_context=ctx)
    body = (
        '"""initial schema (generated from the models by idrs.migrate.regenerate_initial)\n\n'
        'Revision ID: 0001\nRevises:\n"""\nfrom __future__ import annotations\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        'revision = "0001"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n'
        f"def upgrade() -> None:\n{up}\n\n\ndef downgrade() -> None:\n{down}\n"
    )
    target = MIGRATIONS / "versions" / "0001_initial.py"
    target.write_text(body)
    return target


if __name__ == "__main__":
    print(regenerate_initial())
