"""The bases a run needs (DuckDB table ``basis``): every case assigned and contact opened,
who opened it, for whom, on which taxpayer; the new ones stored in ``detection_basis``.
Also the employees' table ``emp`` (unit, manager, role) the explanation joins with, and the
bulk insert the run's writes use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from idrs.audit.store import raw
from idrs.clock import as_utc
from idrs.context import App
from idrs.detection.facts import chunks
from idrs.detection.models import DetectionBasis
from idrs.detection.signals import EmployeeFacts
from idrs.people.roles import UNIT_MANAGERS

#: above this many entries in the window every stored basis opened before it is loaded at once
SELECTIVE_MAX = 300_000



_BASIS_NAMES = ("kind", "basis_id", "seid", "taxpayer", "opened_by", "channel", "opened_at", "open_index")
_BASIS_COLS = ", ".join(_BASIS_NAMES)


def load_bases(app: App, con: Any, read_from: int, window: int) -> None:
    """DuckDB table ``basis``: every basis the window's accesses may need, one row per id.

    The window's own openings (the first of an id wins), and the stored bases opened before
    the window: all of them for a large window, otherwise only those its entries name and the
    other cases on the taxpayers of its case accesses (the unit's review workflow).
    """
    con.execute("""
        CREATE OR REPLACE TABLE opens AS
        SELECT kind, basis_id, o.seid, o.taxpayer, o.opened_by, o.channel, o.opened_at, o.open_index
        FROM (SELECT CASE WHEN type = 'admin:case:assign' THEN 'case' ELSE 'contact' END AS kind,
                     COALESCE(case_id, contact_id) AS basis_id,
                     arg_min({'seid': obj_seid, 'taxpayer': taxpayer, 'opened_by': actor,
                              'channel': COALESCE(channel, ''), 'opened_at': t, 'open_index': idx},
                             idx) AS o
              FROM ev WHERE type IN ('admin:case:assign', 'admin:contact:open')
                AND obj_seid IS NOT NULL AND taxpayer IS NOT NULL
                AND COALESCE(case_id, contact_id) IS NOT NULL
              GROUP BY 1, 2)""")
    rows: list[Any] = []
    if read_from > 0:
        sql = f"SELECT {_BASIS_COLS} FROM detection_basis WHERE open_index < ?"  # noqa: S608 - constant
        with raw(app.engine) as db:
            if window > SELECTIVE_MAX:
                rows = db.execute(sql, (read_from,)).fetchall()
            else:
                ids = [r[0] for r in con.execute(
                    """SELECT DISTINCT bid FROM ev
                       WHERE basis IS NOT NULL AND type = 'access:research:decide'
                       UNION SELECT basis_id FROM opens""").fetchall()]
                tps = [r[0] for r in con.execute(
                    """SELECT DISTINCT taxpayer FROM ev WHERE type = 'access:research:decide'
                       AND basis LIKE 'case:%' AND taxpayer IS NOT NULL""").fetchall()]
                seen: set[tuple[str, str]] = set()
                for col, values, extra in (("basis_id", ids, ""), ("taxpayer", tps, " AND kind = 'case'")):
                    for part in chunks(values):
                        marks = ",".join("?" * len(part))
                        for r in db.execute(f"{sql}{extra} AND {col} IN ({marks})",  # noqa: S608
                                            (read_from, *part)).fetchall():
                            if (r[0], r[1]) not in seen:
                                seen.add((r[0], r[1]))
                                rows.append(r)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    data = {n: np.array(list(c), dtype=object) for n, c in zip(_BASIS_NAMES, cols, strict=True)}
    data["opened_at"] = np.array(
        [t if isinstance(t, str) else as_utc(t).replace(tzinfo=None).isoformat(sep=" ") for t in cols[6]],
        dtype=object)
    data["open_index"] = np.array(list(cols[7]), dtype=np.int64)
    con.register("basis_in", data)
    con.execute("""
        CREATE OR REPLACE TABLE stored AS
        SELECT kind::VARCHAR AS kind, basis_id::VARCHAR AS basis_id, seid::VARCHAR AS seid,
               taxpayer::VARCHAR AS taxpayer, opened_by::VARCHAR AS opened_by,
               channel::VARCHAR AS channel,
               timezone('UTC', CAST(opened_at AS VARCHAR)::TIMESTAMP) AS opened_at,
               open_index::BIGINT AS open_index FROM basis_in""")
    con.unregister("basis_in")
    con.execute(f"""
        CREATE OR REPLACE TABLE basis AS
        SELECT {_BASIS_COLS} FROM stored
        UNION ALL
        SELECT {_BASIS_COLS} FROM opens o
        WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.kind = o.kind AND s.basis_id = o.basis_id)""")  # noqa: S608


def opened_since(con: Any, cursor: int) -> list[tuple[Any, ...]]:
    """The window's openings not stored yet (those read again for context are)."""
    fmt = "strftime(opened_at, '%Y-%m-%d %H:%M:%S.%f')"
    rows: list[tuple[Any, ...]] = con.execute(f"""
        SELECT kind, basis_id, seid, taxpayer, opened_by, channel, {fmt}, open_index
        FROM opens o WHERE open_index >= ?
          AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.kind = o.kind AND s.basis_id = o.basis_id)
        ORDER BY open_index""", [cursor]).fetchall()  # noqa: S608 - constant
    return rows


def insert_rows(s: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]],
                conflict: str = "") -> None:
    """Bulk insert through the driver (no per-row ORM or type processing)."""
    if not rows:
        return
    conn = s.connection()
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"  # noqa: S608
           f"{' ON CONFLICT ' + conflict + ' DO NOTHING' if conflict else ''}")
    for i in range(0, len(rows), 100_000):
        conn.exec_driver_sql(sql, rows[i:i + 100_000])


def write_bases(s: Any, rows: list[tuple[Any, ...]]) -> None:
    if s.connection().dialect.name != "sqlite":
        rows = [(*r[:6], datetime.fromisoformat(r[6]).replace(tzinfo=UTC), r[7]) for r in rows]
    insert_rows(s, DetectionBasis.__tablename__, _BASIS_NAMES, rows, "(kind, basis_id)")


def load_employees(con: Any, emps: dict[str, EmployeeFacts]) -> None:
    es = list(emps.values())
    con.register("emp_in", {
        "seid": np.array([e.seid for e in es], dtype=object),
        "unit": np.array([e.unit for e in es], dtype=object),
        "manager": np.array([bool(e.roles & UNIT_MANAGERS) for e in es], dtype=bool),
        "role": np.array([min(e.roles) if e.roles else "" for e in es], dtype=object)})
    con.execute("""CREATE OR REPLACE TABLE emp AS SELECT seid::VARCHAR AS seid, unit::VARCHAR AS unit,
                   manager, role::VARCHAR AS role FROM emp_in""")
    con.unregister("emp_in")

