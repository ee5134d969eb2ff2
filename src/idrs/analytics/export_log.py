"""The audit log read from a Parquet export (``idrs audit export --format parquet``), verified.

Detection reads the live log by index: its size, the time of an entry, and the entries of an
index range decoded into the columns of table ``ev`` (``detection.logscan.load``). An
:class:`ExportLog` answers the same three questions from an export directory instead, once
the export has been checked against its signed checkpoint (:func:`open_export`): the
checkpoint's signature, the manifest's files and their SHA-256, every row's index, every
leaf's hash up to the checkpoint's root, and every decoded column against its leaf
(``audit.export.verify_export``); with ``vkey``, the checkpoint must also be signed by that
key (the live log's own), so that an export signed by anyone else is refused.

``ev`` is built from the export's columns by one DuckDB statement, the same columns and
types as ``logscan.load`` gives from the leaves (tests/integration/test_export_log.py
requires identical rows); on Spark it is handed over as Parquet (:func:`engines.staged`).

Not wired to ``idrs detect run`` yet: detection's run reads the live log in
``detection/runner.py`` (its size, ``first_index_at``, ``time_of`` of ``detection/cursor.py``,
``logscan.load``), which needs a ``source`` parameter taking an :class:`ExportLog`.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from idrs.analytics import engines
from idrs.audit.export import VKEY, ExportInvalid, verify_export
from idrs.audit.parquet import MANIFEST, is_parquet_export

#: ``ev`` from the export's columns (``object`` is a map of text: non-strings as JSON text)
_EV = """
CREATE OR REPLACE TABLE ev AS
SELECT *, CAST(t AS DATE) AS day, split_part(basis, ':', 1) AS bkind,
       CASE WHEN basis IS NULL THEN NULL ELSE substr(basis, strpos(basis, ':') + 1) END AS bid
FROM (SELECT "index" AS idx, type::VARCHAR AS type,
             CASE WHEN type = 'admin:contact:open'
                       AND TRY_CAST(object['declared'] AS BOOLEAN)
                  THEN object['seid'] ELSE actor END::VARCHAR AS actor,
             outcome::VARCHAR AS outcome, "time"::TIMESTAMPTZ AS t,
             object['command']::VARCHAR AS command, object['taxpayer']::VARCHAR AS taxpayer,
             from_json(object['matches'], '["VARCHAR"]') AS matches,
             reasons::VARCHAR[] AS reasons,
             from_json(detail, '{"basis":"VARCHAR"}').basis::VARCHAR AS basis,
             object['seid']::VARCHAR AS obj_seid, object['case_id']::VARCHAR AS case_id,
             object['contact_id']::VARCHAR AS contact_id,
             object['channel']::VARCHAR AS channel,
             TRY_CAST(object['audit_index'] AS BIGINT) AS obj_index
      FROM read_parquet(?, hive_partitioning = true)
      WHERE "index" >= ? AND "index" < ? AND type IN (SELECT unnest(?)))
ORDER BY idx"""


#: ``ev``'s columns, for an export without entries
_SCHEMA = """(idx BIGINT, type VARCHAR, actor VARCHAR, outcome VARCHAR, t TIMESTAMPTZ,
              command VARCHAR, taxpayer VARCHAR, matches VARCHAR[], reasons VARCHAR[],
              basis VARCHAR, obj_seid VARCHAR, case_id VARCHAR, contact_id VARCHAR,
              channel VARCHAR, obj_index BIGINT, day DATE, bkind VARCHAR, bid VARCHAR)"""


@dataclass
class ExportLog:
    """A verified Parquet export: the first ``size`` entries of the log."""

    directory: Path
    size: int
    origin: str
    files: list[str]
    _times: list[datetime] = field(default_factory=list, repr=False)

    def times(self) -> list[datetime]:
        """Every entry's time, in index order (read once)."""
        if not self._times and self.size:
            con = engines.duckdb_connect()
            try:
                rows = con.execute('SELECT "time" FROM read_parquet(?) ORDER BY "index"',
                                   [self.files]).fetchall()
            finally:
                con.close()
            self._times = [r[0].astimezone(UTC) for r in rows]
        return self._times

    def time_of(self, index: int) -> datetime:
        if not 0 <= index < self.size:
            raise ExportInvalid(f"entry {index} is not in the export (0..{self.size - 1})")
        return self.times()[index]

    def first_index_at(self, since: datetime, size: int | None = None) -> int:
        """The first entry whose time is >= ``since`` (binary search, as on the live log)."""
        return bisect_left(self.times(), since, 0, min(self.size, size if size is not None
                                                        else self.size))

    def load(self, con: Any, start: int, end: int, types: Sequence[str]) -> int:
        """Table ``ev`` of ``con`` (DuckDB or Spark): the entries ``start <= index < end`` of
        the given types, decoded as ``detection.logscan.load`` decodes them; how many rows."""
        with engines.staged(con, "ev") as duck:
            if self.files:
                duck.execute(_EV, [self.files, start, min(end, self.size), list(types)])
            else:  # an export of an empty log
                duck.execute(f"CREATE OR REPLACE TABLE ev {_SCHEMA}")
            row = duck.execute("SELECT count(*) FROM ev").fetchone()
        return int(row[0]) if row else 0


def open_export(directory: Path, vkey: str | None = None) -> ExportLog:
    """The export at ``directory``, verified against its checkpoint (and signed by ``vkey``
    when given); ExportInvalid naming what does not match."""
    directory = Path(directory)
    if not is_parquet_export(directory):
        raise ExportInvalid(f"{directory}: not a Parquet export (no {MANIFEST}; write one with "
                            "`idrs audit export --format parquet --out DIR`)")
    if vkey is not None:
        try:
            theirs = (directory / VKEY).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ExportInvalid(f"cannot read {VKEY}: {exc}") from None
        if theirs != vkey.strip():
            raise ExportInvalid(f"{VKEY}: the export is signed by another key than this log's")
    report = verify_export(directory)
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    files = [str(directory / f["path"]) for f in manifest["files"]]
    return ExportLog(directory, int(report.size), str(manifest.get("origin", "")), files)
