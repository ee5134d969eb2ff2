"""``idrs keys rotate``: re-encrypt every encrypted value under a new data key, retire the old.

Callers: the CLI (an operator, ``os:<user>``) and tests. Run it with the service stopped:
processes that loaded the keyring before the rotation keep writing under the old key, and
the final check then refuses to retire it (run the rotation again afterwards).

Steps: (1) a new data-encryption key becomes active (``Keyring.add_key``); (2) every column
named ``*_enc`` of every table in the schema (master file, employees' TINs and TOTP
secrets, adjustment payloads …) is re-encrypted in batches of committed transactions,
keyset-paginated by primary key: an interrupted run loses nothing (old and new keys are
both still on file) and can simply be run again; (3) a full scan counts the values per key
id; an old key is retired (``Keyring.retire``: key file overwritten and removed) only when
no value uses it any more, otherwise IdrsError says how many still do.

Associated data: ``"table.column"`` with the column named without its ``_enc`` suffix
(the project's convention); a value written with the full column name is accepted too and
keeps its associated data.

Records one audit entry ``system:keys:rotate`` (key ids and counts; never values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Table, bindparam, select, update

from idrs.audit import log as audit_log
from idrs.audit.events import Actor, EventType
from idrs.context import App
from idrs.crypto import Keyring
from idrs.errors import ConfigurationError, IdrsError

BATCH = 2000


@dataclass
class RotateResult:
    new_kid: int
    retired: list[int]
    reencrypted: int
    columns: list[str]
    audit_index: int = -1
    per_kid: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new_kid": self.new_kid,
            "retired": self.retired,
            "reencrypted": self.reencrypted,
            "columns": self.columns,
            "audit_index": self.audit_index,
        }


def encrypted_tables() -> list[tuple[Table, list[str]]]:
    """Every table with ``*_enc`` columns, with those columns (the whole schema, all packages:
    registered here: a CLI command's App registers only the models it imports)."""
    from idrs.context import register_models
    from idrs.db import Base

    register_models()

    out = []
    for table in Base.metadata.sorted_tables:
        cols = [c.name for c in table.columns if c.name.endswith("_enc")]
        if cols:
            out.append((table, cols))
    return out


def _aads(table: str, column: str) -> tuple[str, str]:
    return f"{table}.{column.removesuffix('_enc')}", f"{table}.{column}"


def reencrypt(keyring: Keyring, blob: bytes, table: str, column: str) -> bytes:
    """The value of ``blob`` encrypted under the active key, with the same associated data."""
    for ad in _aads(table, column):
        try:
            return keyring.encrypt(keyring.decrypt(blob, ad), ad)
        except InvalidTag:
            continue
    raise ConfigurationError(
        f"a value in {table}.{column} does not decrypt: rotation stopped, no key was retired"
    )


def rotate(
    app: App,
    *,
    actor: str,
    interface: str = "cli",
    progress: Callable[[str, int], None] | None = None,
) -> RotateResult:
    """Rotate the data key (see the module docstring). Raises IdrsError if a key stays in use."""
    ring = app.keyring
    old_kids = sorted(ring.deks)
    new_kid = ring.add_key()
    tables = encrypted_tables()
    total = 0
    for table, cols in tables:
        total += _rotate_table(app, table, cols, new_kid, progress)
    per_kid = count_by_kid(app)
    still = {k: n for k, n in per_kid.items() if k != new_kid}
    result = RotateResult(
        new_kid, [], total, [f"{t.name}.{c}" for t, cs in tables for c in cs], per_kid=per_kid
    )
    if still:
        _record(app, actor, interface, "failure", result, still)
        raise IdrsError(
            "old key still in use by "
            + ", ".join(f"{n} value(s) under key {k}" for k, n in sorted(still.items()))
            + "; not retired (stop other idrs processes and run 'idrs keys rotate' again)"
        )
    for kid in old_kids:
        ring.retire(kid)
    result.retired = old_kids
    result.audit_index = _record(app, actor, interface, "success", result, {})
    return result


def _rotate_table(
    app: App,
    table: Table,
    cols: list[str],
    new_kid: int,
    progress: Callable[[str, int], None] | None,
) -> int:
    pk_cols = list(table.primary_key.columns)
    if len(pk_cols) != 1:
        raise ConfigurationError(f"table {table.name}: rotation needs a single-column primary key")
    pk = pk_cols[0]
    stmt = update(table).where(pk == bindparam("_pk")).values({c: bindparam(f"_{c}") for c in cols})
    last: Any = None
    done = 0
    while True:
        with app.engine.begin() as conn:
            q = select(pk, *[table.c[c] for c in cols]).order_by(pk).limit(BATCH)
            if last is not None:
                q = q.where(pk > last)
            rows = conn.execute(q).all()
            if not rows:
                return done
            params = []
            for row in rows:
                values: dict[str, Any] = {"_pk": row[0]}
                changed = False
                for i, c in enumerate(cols, start=1):
                    blob = row[i]
                    if blob is not None and Keyring.kid_of(blob) != new_kid:
                        blob = reencrypt(app.keyring, bytes(blob), table.name, c)
                        changed = True
                        done += 1
                    values[f"_{c}"] = blob
                if changed:
                    params.append(values)
            if params:
                conn.execute(stmt, params)
            last = rows[-1][0]
        if progress is not None:
            progress(table.name, len(rows))


def count_by_kid(app: App) -> dict[int, int]:
    """How many stored values each key id encrypts (a full scan of every ``*_enc`` column)."""
    counts: dict[int, int] = {}
    with app.engine.connect() as conn:
        for table, cols in encrypted_tables():
            for c in cols:
                col = table.c[c]
                for (blob,) in conn.execute(select(col).where(col.is_not(None))).yield_per(10_000):
                    kid = Keyring.kid_of(blob)
                    counts[kid] = counts.get(kid, 0) + 1
    return counts


def _record(
    app: App, actor: str, interface: str, outcome: str, result: RotateResult, still: dict[int, int]
) -> int:
    detail: dict[str, Any] = {
        "new_kid": result.new_kid,
        "reencrypted": result.reencrypted,
        "retired": result.retired,
    }
    if still:
        detail["still_in_use"] = {str(k): n for k, n in still.items()}
    return audit_log.record(app, EventType.SYSTEM_KEYS_ROTATE, Actor(actor, interface),
                            {"kind": "data_keys"}, detail, outcome=outcome)
