"""Reading the audit log into DuckDB: one columnar table of the entries detection needs.

The leaf inputs (canonical JSON, one line each: no raw newline can occur in them) are read
from the database in chunks of :data:`CHUNK` entries, each chunk as *one* value that the
database itself joins with newlines (SQLite ``group_concat``, PostgreSQL ``string_agg``),
so that no Python object is made per entry. A reader thread spools each chunk to a private
temporary file (in ``/dev/shm`` when there is one) while DuckDB's JSON reader parses the
previous one on its own threads; the database driver and DuckDB both release the GIL, so
the two overlap on two cores. Only the fields detection uses are kept; the nested parts
are decoded with ``from_json``, which turns a value of an unexpected type into NULL rather
than failing the run (as parsing each entry with ``from_json`` always did).

The entries are read through ``app.read_engine`` (a streaming replica when
``IDRS_REPLICA_URL`` is set): callers wait for it first (``App.await_replica``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from idrs.analytics import engines
from idrs.audit.store import raw
from idrs.context import App

CHUNK = 250_000
TYPES = ("access:research:decide", "admin:case:assign", "admin:contact:open",
         "access:research:self-report",
         # a refused attempt to open a basis (relations.add_refused_bases, issue 17)
         "access:basis:deny")
_COLUMNS = ("{'index': 'BIGINT', 'type': 'VARCHAR', 'actor': 'VARCHAR', 'outcome': 'VARCHAR', "
            "'time': 'VARCHAR', 'object': 'JSON', 'reasons': 'JSON', 'detail': 'JSON'}")
_OBJECT = ('{"command":"VARCHAR","taxpayer":"VARCHAR","matches":["VARCHAR"],"seid":"VARCHAR",'
           '"case_id":"VARCHAR","contact_id":"VARCHAR","channel":"VARCHAR","audit_index":"BIGINT",'
           '"declared":"BOOLEAN"}')
#: ``day`` is the UTC date of ``t``; ``bkind`` and ``bid`` split ``basis`` ("case:C01")
_SCHEMA = """(idx BIGINT, type VARCHAR, actor VARCHAR, outcome VARCHAR, t TIMESTAMPTZ,
              command VARCHAR, taxpayer VARCHAR, matches VARCHAR[], reasons VARCHAR[],
              basis VARCHAR, obj_seid VARCHAR, case_id VARCHAR, contact_id VARCHAR,
              channel VARCHAR, obj_index BIGINT, day DATE, bkind VARCHAR, bid VARCHAR)"""
_SELECT = """
SELECT *, CAST(t AS DATE), split_part(basis, ':', 1),
       CASE WHEN basis IS NULL THEN NULL ELSE substr(basis, strpos(basis, ':') + 1) END
FROM (SELECT idx, type,
             -- a declared contact (no intake record) counts as opened by its handler, whoever
             -- typed it: research under it is judged like a self-opened contact's
             CASE WHEN type = 'admin:contact:open' AND o.declared THEN o.seid ELSE actor END,
             outcome, CAST(time AS TIMESTAMPTZ) AS t, o.command, o.taxpayer,
             o.matches, from_json(reasons, '["VARCHAR"]'),
             from_json(detail, '{"basis":"VARCHAR"}').basis AS basis, o.seid, o.case_id,
             o.contact_id, o.channel, o.audit_index
      FROM (SELECT "index" AS idx, type, actor, outcome, time, from_json(object, '{object}') AS o,
                   reasons, detail
            FROM read_json(?, format = 'newline_delimited', columns = {columns})
            WHERE type IN ({types})))
""".replace("{object}", _OBJECT).replace("{columns}", _COLUMNS).replace(
    "{types}", ", ".join(f"'{t}'" for t in TYPES))


def connect(engine: str | None = None) -> Any:
    """A connection on the analytics engine (``duckdb``, the default, or ``spark``)."""
    return engines.connect(engine)


def _spool_root() -> str | None:
    shm = Path("/dev/shm")  # noqa: S108 - memory-backed; mkdtemp makes a private (0700) directory
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _chunk_sql(pg: bool) -> str:
    if pg:
        return ("SELECT count(*), string_agg(leaf_input, decode('0a', 'hex') ORDER BY idx) "
                "FROM audit_entry WHERE idx >= ? AND idx < ?")
    return ("SELECT count(*), CAST(group_concat(leaf_input, x'0a') AS BLOB) "
            "FROM audit_entry WHERE idx >= ? AND idx < ?")


def load(app: App, con: Any, start: int, end: int, *, append: bool = False) -> int:
    """Load entries ``start <= idx < end`` into table ``ev`` (added to it when ``append``);
    return how many entries were read.

    On Spark the entries are decoded by the same DuckDB statement, written to Parquet in the
    connection's scratch directory and read by Spark from there (the same columns and types)."""
    if engines.is_spark(con):
        local = engines.duckdb_connect()
        try:
            n = load(app, local, start, end)
            path = con.scratch / f"ev-{start:012d}-{end:012d}.parquet"
            local.execute(f"COPY ev TO '{str(path).replace(chr(39), chr(39) * 2)}' "  # noqa: S608
                          "(FORMAT PARQUET)")
        finally:
            local.close()
        con.read_parquet("ev", [path], append=append)
        return n
    if not append:
        con.execute("DROP TABLE IF EXISTS ev")
    con.execute(f"CREATE TABLE IF NOT EXISTS ev {_SCHEMA}")
    if start >= end:
        return 0
    spool = tempfile.mkdtemp(prefix="idrs-detect-", dir=_spool_root())
    chunks: queue.Queue[tuple[str, int] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def reader() -> None:
        try:
            with raw(app.read_engine) as db:  # a replica when configured
                sql = _chunk_sql(db.pg)
                for k, a in enumerate(range(start, end, CHUNK)):
                    if stop.is_set():
                        return
                    row = db.one(sql, (a, min(a + CHUNK, end)))
                    if not row or not row[0]:
                        continue
                    path = os.path.join(spool, f"{k}.json")
                    with open(path, "wb") as f:
                        f.write(bytes(row[1]))
                    chunks.put((path, int(row[0])))
            chunks.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            chunks.put(exc)

    thread = threading.Thread(target=reader, name="idrs-logscan", daemon=True)
    thread.start()
    n = 0
    try:
        while True:
            item = chunks.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            path, count = item
            con.execute(f"INSERT INTO ev {_SELECT}", [path])  # noqa: S608 - constant text
            os.remove(path)
            n += count
    finally:
        stop.set()
        while thread.is_alive():  # let a blocked reader finish its put, then stop
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.1)
        shutil.rmtree(spool, ignore_errors=True)
    return n


def rows(con: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = con.execute(sql, params or []).fetchall()
    return out
