"""``idrs audit export --format parquet``: the log as partitioned Parquet, for analysis.

Each entry becomes one row whose columns are decoded from its leaf (the canonical JSON the
log hashed); nothing is joined in, so the columns hold exactly what the entry holds:
employees by SEID, taxpayers by their keyed pseudonym, never a TIN or a name. The leaf
bytes themselves are kept (``leaf_input``), so the export verifies against the signed
checkpoint written beside it, and :func:`verify_parquet_export` also checks that every
decoded column is what its leaf says.

Layout (hive-style, one directory per UTC day of the entries' time)::

    DIR/date=2026-03-02/entries-000000000000-0.parquet
    DIR/checkpoint      the signed checkpoint covering exactly entries 0..size-1
    DIR/key.vkey        the verifier key
    DIR/manifest.json   format, tree size, root, columns, and every file with its rows,
                        first and last index and SHA-256

Written with DuckDB (already a dependency): rows are decoded in Python a chunk at a time and
copied out per chunk, so memory stays O(chunk). Everything is written into a staging
directory beside DIR and moved into place only when complete: a failed export leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint
from idrs.audit.export import CHECKPOINT, VKEY, ExportInvalid, check_out_dir
from idrs.audit.store import raw

MANIFEST = "manifest.json"
FORMAT = "idrs-audit-parquet/1"
CHUNK = 100_000

#: Output columns (name, DuckDB type, SQL over the staged Python columns). ``date`` is the
#: hive partition (the UTC day of ``time``); it is a directory name, not a column in the files.
COLUMNS: list[tuple[str, str, str]] = [
    ("index", "BIGINT", "i"),
    ("time", "TIMESTAMPTZ", "CAST(t AS TIMESTAMPTZ)"),
    ("type", "VARCHAR", "CAST(ty AS VARCHAR)"),
    ("actor", "VARCHAR", "CAST(a AS VARCHAR)"),
    ("outcome", "VARCHAR", "CAST(o AS VARCHAR)"),
    ("interface", "VARCHAR", "CAST(itf AS VARCHAR)"),
    ("address", "VARCHAR", "CAST(ad AS VARCHAR)"),
    ("reasons", "VARCHAR[]", "CAST(CAST(r AS JSON) AS VARCHAR[])"),
    ("policy", "VARCHAR", "CAST(p AS VARCHAR)"),
    ("taxpayer", "VARCHAR", "CAST(tp AS VARCHAR)"),
    ("object", "MAP(VARCHAR, VARCHAR)", "CAST(CAST(ob AS JSON) AS MAP(VARCHAR, VARCHAR))"),
    ("detail", "VARCHAR", "CAST(de AS VARCHAR)"),
    ("v", "INTEGER", "CAST(v AS INTEGER)"),
    ("leaf_input", "BLOB", "CAST(li AS BLOB)"),
]
_STAGED = ["i", "t", "ty", "a", "o", "itf", "ad", "r", "p", "tp", "ob", "de", "v", "li", "day"]
_SELECT = (
    ", ".join(f'{sql} AS "{name}"' for name, _, sql in COLUMNS) + ', CAST(day AS DATE) AS "date"'
)


def _text(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
    )


def decode(index: int, leaf: bytes) -> list[Any]:
    """One entry's staged values (see ``_STAGED``); ExportInvalid naming the entry if not an entry."""
    try:
        e = json.loads(leaf)
        if not isinstance(e, dict):
            raise ValueError("not a JSON object")
        if e.get("index", index) != index:
            raise ValueError(f"it claims index {e.get('index')!r}")
        t = datetime.fromisoformat(e["time"])
        if t.tzinfo is None:
            raise ValueError("time has no UTC offset")
        obj = e.get("object") or {}
        origin = e.get("origin") or {}
        reasons = e.get("reasons")
        if not isinstance(obj, dict) or not isinstance(origin, dict):
            raise ValueError("object/origin is not a JSON object")
        if reasons is not None and not (
            isinstance(reasons, list) and all(isinstance(x, str) for x in reasons)
        ):
            raise ValueError("reasons is not a list of codes")
        tp = obj.get("taxpayer")
        return [
            index,
            e["time"],
            e["type"],
            e["actor"],
            e.get("outcome"),
            origin.get("interface"),
            origin.get("address"),
            json.dumps(reasons) if reasons is not None else None,
            e.get("policy"),
            tp if isinstance(tp, str) else None,
            json.dumps({k: _text(v) for k, v in obj.items() if v is not None}),
            json.dumps(e["detail"], sort_keys=True, separators=(",", ":"))
            if "detail" in e
            else None,
            e.get("v"),
            leaf,
            t.astimezone(UTC).date().isoformat(),
        ]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ExportInvalid(f"entry {index} cannot be decoded: {exc}") from None


def _stage(rows: list[list[Any]]) -> dict[str, Any]:
    """The rows as one NumPy object array per staged column (DuckDB scans them in place)."""
    import numpy as np

    cols: dict[str, Any] = {}
    for name, values in zip(_STAGED, zip(*rows, strict=True), strict=True):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        cols[name] = arr
    return cols


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def write_parquet_export(
    engine: Engine, out: Path, note: str, vkey: str, chunk: int = CHUNK
) -> dict[str, Any]:
    """Write the Parquet export of the entries covered by the checkpoint ``note`` to ``out``."""
    check_out_dir(out)
    ck = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(mode=0o700)
    con = _connect()
    count = 0
    cr = merkle.CompactRange()
    try:
        with raw(engine) as db:
            db.begin_read()
            sql = "SELECT idx, leaf_input FROM audit_entry WHERE idx < ? ORDER BY idx"
            if db.pg:
                cur = db.conn.cursor(name="idrs_audit_export_parquet")
                cur.itersize = chunk
                cur.execute(sql.replace("?", "%s"), (ck.size,))
            else:
                cur = db.execute(sql, (ck.size,))
            while batch := cur.fetchmany(chunk):
                rows = []
                for idx, li in batch:
                    if int(idx) != count:
                        raise ExportInvalid(f"entry {count} is missing from the log")
                    leaf = bytes(li)
                    cr.append(merkle.leaf_hash(leaf))
                    rows.append(decode(count, leaf))
                    count += 1
                staged = _stage(rows)  # noqa: F841 - DuckDB reads the local variable by name
                target = str(stage).replace("'", "''")
                con.execute(
                    f"COPY (SELECT {_SELECT} FROM staged) TO '{target}' (FORMAT PARQUET, "  # noqa: S608
                    f"PARTITION_BY (date), FILENAME_PATTERN 'entries-{rows[0][0]:012d}-{{i}}', "
                    "OVERWRITE_OR_IGNORE, COMPRESSION zstd)"
                )
            cur.close()
            db.rollback()
        if count != ck.size:
            raise ExportInvalid(f"exported {count} entries but the checkpoint covers {ck.size}")
        if cr.root() != ck.root:
            raise ExportInvalid(
                "the stored entries do not hash to the checkpoint's root: run `idrs audit verify`"
            )
        files = _describe(con, stage)
        manifest = {
            "format": FORMAT,
            "origin": ck.origin,
            "tree_size": ck.size,
            "root": ck.root.hex(),
            "partitioning": {"date": "UTC day of time (hive-style directory date=YYYY-MM-DD)"},
            "columns": [{"name": n, "type": t} for n, t, _ in COLUMNS],
            "files": files,
        }
        (stage / CHECKPOINT).write_text(note)
        (stage / VKEY).write_text(vkey + "\n")
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above); the rename needs it gone or empty
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        con.close()
    return {
        "out": str(out),
        "format": "parquet",
        "entries": count,
        "tree_size": ck.size,
        "root": ck.root.hex(),
        "files": len(files),
    }


def _describe(con: Any, directory: Path) -> list[dict[str, Any]]:
    paths = sorted(directory.rglob("*.parquet"))
    if not paths:
        return []
    rows = con.execute(
        'SELECT filename, count(*), min("index"), max("index") FROM read_parquet(?, filename = true) '
        "GROUP BY filename",
        [[str(p) for p in paths]],
    ).fetchall()
    by_name = {Path(f): (int(n), int(lo), int(hi)) for f, n, lo, hi in rows}
    out: list[dict[str, Any]] = []
    for p in paths:
        n, lo, hi = by_name[p]
        out.append(
            {
                "path": p.relative_to(directory).as_posix(),
                "rows": n,
                "first_index": lo,
                "last_index": hi,
                "sha256": _sha256_file(p),
            }
        )
    out.sort(key=lambda f: int(f["first_index"]))
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def is_parquet_export(directory: Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def verify_parquet_export(
    directory: Path, ck: Checkpoint, old: Checkpoint | None, chunk: int = CHUNK
) -> bytes | None:
    """Check a Parquet export against its (already verified) checkpoint ``ck``.

    The manifest's files must be exactly the Parquet files present, with their SHA-256; the
    rows, in index order, must be 0..size-1; the leaves must hash to the checkpoint's root;
    and every decoded column must equal what its leaf says. Returns the root of the first
    ``old.size`` entries (None without ``old``). Raises ExportInvalid naming the problem.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        listed = {f["path"]: f["sha256"] for f in files}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportInvalid(f"{MANIFEST}: {exc}") from None
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*.parquet")}
    if present != set(listed):
        extra = sorted(present - set(listed))
        missing = sorted(set(listed) - present)
        raise ExportInvalid(
            f"{MANIFEST} does not list the Parquet files present "
            f"(not listed: {extra[:3]}, missing: {missing[:3]})"
        )
    for path, digest in listed.items():
        if _sha256_file(directory / path) != digest:
            raise ExportInvalid(f"{path} differs from its SHA-256 in {MANIFEST}")
    if manifest.get("tree_size") != ck.size or manifest.get("root") != ck.root.hex():
        raise ExportInvalid(f"{MANIFEST} names another tree than the checkpoint")
    cr = merkle.CompactRange()
    old_root = merkle.EMPTY_ROOT if old is not None and old.size == 0 else None
    if not listed:
        return _finish(cr, ck, old, old_root)
    con = _connect()
    try:
        names = ", ".join(f'"{n}"' for n, _, _ in COLUMNS)
        paths = [str(directory / p) for p in sorted(listed)]
        try:
            cur = con.execute(
                f'SELECT {names}, "date" FROM read_parquet(?, hive_partitioning = true) '  # noqa: S608
                'ORDER BY "index"',
                [paths],
            )
        except Exception as exc:  # noqa: BLE001 - duckdb raises its own error classes
            raise ExportInvalid(f"the Parquet files cannot be read: {exc}") from None
        while batch := cur.fetchmany(chunk):
            staged_rows = []
            for row in batch:
                index, leaf = row[0], row[13]
                if index != cr.size:
                    raise ExportInvalid(
                        f"row with index {index}, expected {cr.size} (missing or duplicated)"
                    )
                leaf = bytes(leaf)
                cr.append(merkle.leaf_hash(leaf))
                if old is not None and cr.size == old.size:
                    old_root = cr.root()
                staged_rows.append(decode(index, leaf))
            staged = _stage(staged_rows)  # noqa: F841 - DuckDB reads the local variable by name
            expected = con.execute(f"SELECT {_SELECT} FROM staged").fetchall()  # noqa: S608
            for got, want in zip(batch, expected, strict=True):
                if tuple(got) != tuple(want):
                    bad = next(
                        name
                        for k, name in enumerate([*(n for n, _, _ in COLUMNS), "date"])
                        if got[k] != want[k]
                    )
                    raise ExportInvalid(
                        f"row {got[0]}: column {bad} differs from what its signed leaf says"
                    )
    finally:
        con.close()
    return _finish(cr, ck, old, old_root)


def _finish(
    cr: merkle.CompactRange, ck: Checkpoint, old: Checkpoint | None, old_root: bytes | None
) -> bytes | None:
    if cr.size != ck.size:
        raise ExportInvalid(
            f"the Parquet files hold {cr.size} entries, the checkpoint covers {ck.size}"
        )
    if cr.root() != ck.root:
        raise ExportInvalid(
            "entries do not hash to the checkpoint's root (an entry was altered, added or removed)"
        )
    return old_root
