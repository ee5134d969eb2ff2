"""``idrs import --workers N`` on PostgreSQL: worker processes prepare COPY-ready rows.

The writing process (``importer.import_file``) keeps ONE connection and ONE transaction, as
in a serial import; what moves to the workers is everything that costs CPU per taxpayer:
parsing and validating the line (``schema.parse_line``, the same problems), the blind
indexes, the encryption of every identifier (``store.MasterFileWriter``'s own row builders,
so the rows are those of a serial import) and the encoding of each table's rows in COPY
text format (psycopg's own formatter). A worker answers a block of lines with one buffer a
table; the writing process only checks the block against the database and sends each
buffer with one ``COPY`` a table. Workers are spawned like the seed's
(``masterfile.seed.parallel``): they get the database URL, the keyring's directory, the
clock's time and the bytes of the lines, never an open connection or a key.

Primary keys: a worker takes the ids its block needs from the tables' sequences (its own
connection, outside any transaction: sequences are not transactional), so children name
their parents without a round trip to the writing process. Ids are unique but not in file
order across blocks (they are in file order within a block).

A block goes the serial way instead (the writing process validates and writes its lines
itself with ``MasterFileWriter``, exactly as ``--workers 1`` does) when it is not made of
new taxpayers only: a TIN already in the database (a re-import: years replaced, entity
updated; the query runs in the import's transaction, so it also sees the blocks written
before it) or a TIN twice in the block (file order decides). Ids a worker took for such a
block stay unused (a gap in the sequence, as after any rollback).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from idrs.crypto import Keyring
from idrs.masterfile.schema import LineInvalid, parse_line
from idrs.masterfile.store import (
    BUSINESS_COLS,
    ROW_TABLES,
    MasterFileWriter,
    WriteStats,
    _Pending,
    _Rows,
)


@dataclass
class WorkerSetup:
    """What a worker process is started with (picklable: no connection, no key)."""

    url: str
    home: str
    now: datetime
    actor: str
    synthetic: bool


@dataclass
class Prepared:
    """A worker's answer for one block of lines."""

    #: non-blank lines in the block
    lines: int
    #: problems of each bad line, in file order (empty: every line is valid)
    problems: list[list[str]]
    #: blind index of each taxpayer, in file order (empty when there are problems)
    tins: list[bytes]
    #: False: the block names a TIN twice; the writing process does it serially
    fast: bool = False
    #: per table of ``store.ROW_TABLES``: its rows in COPY text format
    copies: dict[str, bytes] | None = None
    #: (ein_index, ein_enc, name, kind) of each business the block names, first time first
    businesses: list[tuple[Any, ...]] | None = None
    stats: dict[str, int] | None = None


class _State:
    """One worker process's keyring, row builder and id connection (made once)."""

    def __init__(self, setup: WorkerSetup) -> None:
        from psycopg._copy_base import TextFormatter
        from psycopg.adapt import Transformer

        from idrs.db import make_engine
        from idrs.masterfile.store import IdAllocator

        self.setup = setup
        self.keyring = Keyring.load(Path(setup.home))
        self.engine = make_engine(setup.url)
        self.conn = self.engine.connect()
        self.ids = IdAllocator(self.conn)
        self.formatter = TextFormatter(Transformer(_adapters()))
        self.writer = MasterFileWriter(
            self.keyring, cast(Any, None), now=setup.now, source="import", actor=setup.actor,
            dialect="postgresql",
        )
        self.writer.ids = self.ids

    def encode(self, rows: list[tuple[Any, ...]]) -> bytes:
        out = bytearray()
        fmt = self.formatter
        for row in rows:
            out += fmt.write_row(row)
        out += fmt.end()
        return bytes(out)


def _adapters() -> Any:
    """psycopg's adapters with bytea written in hex (``\\x…``), as a connection writes it:
    without a connection psycopg falls back to the longer octal escape format."""
    import psycopg
    from psycopg.adapt import AdaptersMap, Dumper

    class HexBytes(Dumper):
        oid = psycopg.postgres.types["bytea"].oid

        def dump(self, obj: Any) -> bytes:
            return b"\\x" + bytes(obj).hex().encode()

    adapters = AdaptersMap(psycopg.postgres.adapters)
    for kind in (bytes, bytearray, memoryview):
        adapters.register_dumper(kind, HexBytes)
    return adapters


_STATE: _State | None = None


def init_worker(setup: WorkerSetup) -> None:
    """``ProcessPoolExecutor`` initializer: load the keys and connect, once per process."""
    global _STATE
    _STATE = _State(setup)


def prepare_block(block: list[tuple[int, bytes]], validate_only: bool) -> Prepared:
    """Validate a block; when every line is valid (and not ``validate_only``), build its rows."""
    st = _STATE
    assert st is not None, "init_worker was not called"
    recs = []
    problems: list[list[str]] = []
    for lineno, raw in block:
        try:
            recs.append(parse_line(raw, lineno, st.setup.synthetic))
        except LineInvalid as bad:
            problems.append(bad.problems)
    out = Prepared(lines=len(block), problems=problems, tins=[])
    if problems or validate_only:
        return out
    w = st.writer
    out.tins = [w.blind(r.tin, "tin") for r in recs]
    if len(set(out.tins)) != len(out.tins):
        return out  # not fast: the writing process does this block itself
    w.stats = WriteStats()
    w._known_eins = set()
    try:
        pending = [_Pending(r, idx, None) for r, idx in zip(recs, out.tins, strict=True)]
        tp_id = dict(zip(out.tins, st.ids.take("taxpayer", len(recs)), strict=True))
        rows = _Rows()
        for p in pending:
            w._entity_rows(p, tp_id[p.idx], rows, created=True)
        w._return_rows(pending, tp_id, {}, rows)
    finally:
        st.conn.rollback()  # nextval outlives it; no transaction left open between blocks
    out.fast = True
    out.copies = {attr: st.encode(getattr(rows, attr)) for attr, _t, _c in ROW_TABLES}
    out.businesses = rows.business
    w.stats.taxpayers_created = len(recs)
    out.stats = w.stats.as_dict()
    return out


def write_prepared(writer: MasterFileWriter, block: Prepared) -> None:
    """In the writing process: the block's new businesses, then one COPY a table."""
    conn = writer.conn
    if block.businesses:
        known = writer._known_eins
        fresh = [b for b in block.businesses if b[0] not in known]
        if fresh:
            have = {
                bytes(r[0])
                for r in conn.exec_driver_sql(
                    "SELECT ein_index FROM business WHERE ein_index = ANY(%s)",
                    ([b[0] for b in fresh],),
                )
            }
            known.update(b[0] for b in fresh)
            fresh = [b for b in fresh if b[0] not in have]
            writer.insert("business", BUSINESS_COLS, fresh)
            writer.stats.businesses += len(fresh)
    assert block.copies is not None and block.stats is not None
    for attr, table, cols in ROW_TABLES:
        writer.copy_encoded(table, cols, block.copies[attr])
    for name, value in block.stats.items():
        if name != "businesses":
            setattr(writer.stats, name, getattr(writer.stats, name) + value)
    for idx in block.tins:
        writer.touch(idx)


def existing(writer: MasterFileWriter, tins: list[bytes]) -> bool:
    """Whether any of these taxpayers is already stored (this transaction's rows included)."""
    row = writer.conn.exec_driver_sql(
        "SELECT 1 FROM taxpayer WHERE tin_index = ANY(%s) LIMIT 1", (tins,)
    ).first()
    return row is not None

