"""Shared helpers of the audit-log integration tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from idrs.audit import log, merkle
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import EventType, make_event
from idrs.audit.models import node_key
from idrs.context import App


def prepare(app: App) -> None:
    """Create the signing key under the test's IDRS_HOME and register the checkpoint policy."""
    ensure_signing_key(app.settings.home, name=app.settings.audit_origin)
    log.configure(app.engine, app.settings)


def entry(app: App, n: int) -> dict[str, Any]:
    return make_event(
        EventType.ACCESS_RESEARCH_DECIDE,
        time=app.clock.now(),
        actor=f"E{n}",
        outcome="allowed",
        interface="test",
        obj={"taxpayer": app.keyring.pseudonym("900-00-0001"), "n": n},
    )


def all_leaves(app: App) -> list[bytes]:
    with app.engine.connect() as conn:
        return [
            bytes(r[0])
            for r in conn.execute(text("SELECT leaf_input FROM audit_entry ORDER BY idx"))
        ]


def drop_triggers(app: App) -> None:
    """What an attacker with write access to the database file (or owner rights) can do."""
    with app.engine.begin() as conn:
        if app.engine.dialect.name == "sqlite":
            names = [
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            ]
            for name in names:
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        else:
            for table in ("audit_entry", "audit_node", "audit_checkpoint"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def rebuild_nodes(app: App) -> None:
    """Rewrite the node cache from the stored leaves, as a forger who edited leaves would.

    Only the signed checkpoints (and the copies kept with them) can then tell the edit.
    """
    with app.engine.begin() as conn:
        leaves = [
            bytes(r[0])
            for r in conn.execute(text("SELECT leaf_input FROM audit_entry ORDER BY idx"))
        ]
        conn.execute(text("DELETE FROM audit_node"))
        made = merkle.append_nodes(0, [merkle.leaf_hash(x) for x in leaves], lambda n: b"")
        for (lvl, i), h in made:
            if lvl >= 2:
                conn.execute(
                    text("INSERT INTO audit_node (id, hash) VALUES (:k, :h)"),
                    {"k": node_key(lvl, i), "h": h},
                )
