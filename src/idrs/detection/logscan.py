"""Reading the audit log into DuckDB: one columnar table of the entries detection needs.

Leaf inputs are streamed from the database in chunks (``audit.store.raw``) and parsed by
DuckDB's JSON reader (``from_json`` with a fixed structure), so tens of millions of entries
are parsed in C rather than in Python. Only the fields detection uses are kept.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from idrs.audit.store import raw
from idrs.context import App

CHUNK = 200_000
_STRUCT = (
    '{"index":"BIGINT","type":"VARCHAR","actor":"VARCHAR","outcome":"VARCHAR","time":"VARCHAR",'
    '"object":{"command":"VARCHAR","taxpayer":"VARCHAR","matches":["VARCHAR"],"seid":"VARCHAR",'
    '"case_id":"VARCHAR","contact_id":"VARCHAR","channel":"VARCHAR","audit_index":"BIGINT"},'
    '"reasons":["VARCHAR"],"detail":{"basis":"VARCHAR"},"origin":{"interface":"VARCHAR"}}'
)
_SELECT = """
SELECT j.index AS idx, j.type AS type, j.actor AS actor, j.outcome AS outcome,
       CAST(j.time AS TIMESTAMPTZ) AS t, j.object.command AS command,
       j.object.taxpayer AS taxpayer, j.object.matches AS matches, j.reasons AS reasons,
       j.detail.basis AS basis, j.object.seid AS obj_seid, j.object.case_id AS case_id,
       j.object.contact_id AS contact_id, j.object.channel AS channel,
       j.object.audit_index AS obj_index
FROM (SELECT from_json(leaf, '{struct}') AS j FROM chunk) AS s
WHERE j.type IN ('access:research:decide', 'admin:case:assign', 'admin:contact:open',
                 'access:research:self-report')
"""


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    return con


def load(app: App, con: duckdb.DuckDBPyConnection, start: int, end: int) -> int:
    """Load entries ``start <= idx < end`` into table ``ev``; return how many were read."""
    con.execute("DROP TABLE IF EXISTS ev")
    created = False
    n = 0
    sql = _SELECT.replace("{struct}", _STRUCT)
    with raw(app.engine) as db:
        cur = db.execute("SELECT leaf_input FROM audit_entry WHERE idx >= ? AND idx < ? ORDER BY idx",
                         (start, end))
        while True:
            rows = cur.fetchmany(CHUNK)
            if not rows:
                break
            n += len(rows)
            arr = np.array([bytes(r[0]).decode() for r in rows], dtype=object)
            con.register("chunk", {"leaf": arr})
            if created:
                con.execute(f"INSERT INTO ev {sql}")
            else:
                con.execute(f"CREATE TABLE ev AS {sql}")
                created = True
            con.unregister("chunk")
        cur.close()
    if not created:
        con.register("chunk", {"leaf": np.array([], dtype=object)})
        con.execute(f"CREATE TABLE ev AS {sql}")
        con.unregister("chunk")
    return n


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()
