"""Writing validated taxpayer records into the master file, in bulk (import and seed).

Callers: ``masterfile.importer`` and ``masterfile.seed`` only, inside a transaction they own
(``MasterFileWriter`` never commits). It records nothing itself: the caller appends one
audit entry for the whole run.

Protection at rest: TINs, EINs, dates of birth, phone numbers and bank numbers are written
only encrypted (``keyring.encrypt(value, "table.column")``, the column named without its
``_enc`` suffix, e.g. ``"taxpayer.tin"``) plus a keyed blind index where lookups need one.

Re-import: a record's tax years (those of its returns and transactions) replace what is
stored for that taxpayer and year: the return (with its dependents, W-2s, K-1s, Schedule Cs
and return address) and the transactions an import or seed posted; adjustments stay. The
years of ``information_returns`` replace that payee's information returns of those years.
The entity (name, date of birth, phone) is overwritten; markers are added, never removed; a
changed entity address is appended to the address history.

Speed: rows go in with PostgreSQL ``COPY`` (SQLite: DBAPI ``executemany``; no per-row ORM);
parents get explicit ids from :class:`IdAllocator` so children can reference them without a
round trip.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, cast

from sqlalchemy import Connection, select, text

from idrs.crypto import Keyring
from idrs.db import db_datetime
from idrs.errors import IdrsError
from idrs.masterfile import models as m
from idrs.masterfile.addresses import normalize
from idrs.masterfile.schema import AddressIn, TaxpayerIn

TAXPAYER_COLS = (
    "id",
    "tin_index",
    "tin_enc",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "name_control",
    "dob_enc",
    "phone_enc",
    "created_at",
    "updated_at",
)
MARKER_COLS = ("taxpayer_id", "marker")
ADDRESS_COLS = (
    "taxpayer_id",
    "tax_year",
    "source",
    "street",
    "city",
    "state",
    "zip",
    "norm_key",
    "street_key",
    "valid_from",
)
BUSINESS_COLS = ("ein_index", "ein_enc", "name", "kind")
RETURN_COLS = (
    "id",
    "taxpayer_id",
    "tax_year",
    "filing_status",
    "spouse_tin_index",
    "spouse_tin_enc",
    "agi_cents",
    "total_tax_cents",
    "preparer_ptin",
    "refund_cents",
    "routing_enc",
    "account_enc",
    "bank_index",
    "received_at",
)
DEPENDENT_COLS = (
    "return_id",
    "tin_index",
    "tin_enc",
    "relationship",
    "first_name",
    "last_name",
    "adoption_pending",
)
W2_COLS = (
    "return_id",
    "employer_ein_index",
    "employer_ein_enc",
    "employer_name",
    "wages_cents",
    "withholding_cents",
)
K1_COLS = ("return_id", "entity_ein_index", "entity_ein_enc", "entity_name", "share_pct")
SCHEDULE_C_COLS = ("return_id", "business_name", "ein_index", "ein_enc")
MODULE_COLS = ("id", "taxpayer_id", "tax_year", "version")
TXN_COLS = (
    "module_id",
    "tc",
    "txn_date",
    "amount_cents",
    "action_code",
    "source",
    "posted_at",
    "posted_by",
)
INFO_COLS = (
    "payee_tin_index",
    "tax_year",
    "form",
    "payer_ein_index",
    "payer_ein_enc",
    "payer_name",
    "amount_cents",
    "withholding_cents",
)

#: the tables a batch writes after ``business``, parents first: (``_Rows`` field, table, columns)
ROW_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("taxpayer", "taxpayer", TAXPAYER_COLS),
    ("marker", "taxpayer_marker", MARKER_COLS),
    ("address", "address_record", ADDRESS_COLS),
    ("tax_return", "tax_return", RETURN_COLS),
    ("dependent", "dependent", DEPENDENT_COLS),
    ("w2", "w2", W2_COLS),
    ("k1", "k1", K1_COLS),
    ("schedule_c", "schedule_c", SCHEDULE_C_COLS),
    ("module", "tax_module", MODULE_COLS),
    ("txn", "txn", TXN_COLS),
    ("info", "information_return", INFO_COLS),
)


#: (table, column) of every value the import writes encrypted; AAD is "table.<column sans _enc>"
def aad(table: str, column: str) -> str:
    """The associated data of an encrypted column: ``"taxpayer.tin"`` for ``taxpayer.tin_enc``."""
    return f"{table}.{column.removesuffix('_enc')}"


def name_control(last: str) -> str:
    """First four letters of the last name, upper case (IRS name control)."""
    letters = "".join(c for c in last.upper() if c.isalpha())
    return letters[:4]


def bank_key(routing: str, account: str) -> str:
    """The canonical value behind ``tax_return.bank_index`` (blind index kind ``bank``)."""
    return f"{routing}:{account.upper()}"



TOUCHED_LIMIT = 5000  # above this many taxpayers, keep no list: refresh every employee

class IdAllocator:
    """Explicit primary keys for bulk inserts, safe against concurrent writers.

    SQLite: the caller's transaction holds the write lock (``lock_for_write``), so
    ``max(id)+1`` onwards is ours. PostgreSQL: ids come from the column's sequence.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self._next: dict[str, int] = {}

    def take(self, table: str, n: int) -> list[int]:
        if self.sqlite:
            if table not in self._next:
                top = self.conn.exec_driver_sql(f"SELECT max(id) FROM {table}").scalar()  # noqa: S608
                self._next[table] = int(top or 0) + 1
            start = self._next[table]
            self._next[table] = start + n
            return list(range(start, start + n))
        if n <= 0:
            return []
        rows = self.conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table, "n": n},
        )
        return [int(r[0]) for r in rows]

    def reset(self) -> None:
        """Forget cached SQLite maxima (call after each commit: the lock was released)."""
        self._next.clear()


def lock_for_write(conn: Connection) -> None:
    """SQLite: take the database write lock now (a no-op write), so ids cannot race."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("UPDATE database_meta SET value = value WHERE key = '__lock__'")


@dataclass
class WriteStats:
    taxpayers_created: int = 0
    taxpayers_updated: int = 0
    returns: int = 0
    transactions: int = 0
    information_returns: int = 0
    businesses: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Pending:
    rec: TaxpayerIn
    idx: bytes
    history: Sequence[tuple[AddressIn, date]] | None


@dataclass
class _Rows:
    taxpayer: list[tuple[Any, ...]] = field(default_factory=list)
    marker: list[tuple[Any, ...]] = field(default_factory=list)
    address: list[tuple[Any, ...]] = field(default_factory=list)
    business: list[tuple[Any, ...]] = field(default_factory=list)
    tax_return: list[tuple[Any, ...]] = field(default_factory=list)
    dependent: list[tuple[Any, ...]] = field(default_factory=list)
    w2: list[tuple[Any, ...]] = field(default_factory=list)
    k1: list[tuple[Any, ...]] = field(default_factory=list)
    schedule_c: list[tuple[Any, ...]] = field(default_factory=list)
    module: list[tuple[Any, ...]] = field(default_factory=list)
    txn: list[tuple[Any, ...]] = field(default_factory=list)
    info: list[tuple[Any, ...]] = field(default_factory=list)


class MasterFileWriter:
    """Buffers validated records and writes them in batches on the caller's connection.

    ``refuse_existing``: the seed sets it, so a TIN already present stops the run (IdrsError)
    instead of being replaced. ``source`` is stored on posted transactions (import|seed).

    ``pipelined`` (SQLite with ``refuse_existing`` only, i.e. the seed's bulk load): batch k
    is inserted by a helper thread while batch k+1 is being built (SQLite releases the GIL
    while it works). Only the first batch is checked for existing TINs by query; later ones
    rely on the UNIQUE constraint (IntegrityError). The connection is never used by both
    threads at once: ``flush()`` waits for the insert in flight; call it before committing.
    """

    def __init__(
        self,
        keyring: Keyring,
        conn: Connection,
        *,
        now: datetime,
        source: str,
        actor: str,
        batch_size: int = 1000,
        refuse_existing: bool = False,
        pipelined: bool = False,
        dialect: str | None = None,
    ) -> None:
        self.kr = keyring
        self.conn = conn
        #: ``dialect`` without a connection: only the row builders are usable (an import
        #: worker process builds COPY rows; ``ids`` must then be set by the caller)
        self.sqlite = (dialect or conn.dialect.name) == "sqlite"
        self.ph = "?" if self.sqlite else "%s"
        self.now_value = self.dt(now)
        self.today = now.date()
        self.source = source
        self.actor = actor[:40]
        self.batch_size = batch_size
        self.refuse_existing = refuse_existing
        self.ids = IdAllocator(conn) if dialect is None else cast(Any, None)
        self.stats = WriteStats()
        self._pending: list[_Pending] = []
        self._pending_idx: set[bytes] = set()
        #: blind indexes of every taxpayer written, for the conflict index (bounded: past
        #: TOUCHED_LIMIT the caller refreshes everyone instead, so memory stays constant)
        self.touched: set[bytes] = set()
        self.touched_overflow = False
        self._known_eins: set[bytes] = set()
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._hmac = hmac.new(keyring.index_key, digestmod=hashlib.sha256)
        self._pool: ThreadPoolExecutor | None = None
        if pipelined and self.sqlite and refuse_existing:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idrs-insert")
        self._inflight: Future[None] | None = None
        self._checked = False

    def blind(self, value: str, kind: str) -> bytes:
        """``Keyring.blind_index`` from a keyed HMAC state copied per value (same bytes, faster)."""
        mac = self._hmac.copy()
        mac.update(f"{kind}:{value}".encode())
        return mac.digest()[:16]

    # -- value conversion (raw DBAPI: SQLite stores dates as text the way SQLAlchemy does) --

    def dt(self, value: datetime) -> Any:
        return db_datetime("sqlite", value) if self.sqlite else value

    def day(self, value: date) -> Any:
        return value.isoformat() if self.sqlite else value

    def flag(self, value: bool) -> Any:
        return int(value) if self.sqlite else value

    # -- public API --------------------------------------------------------------------------

    def add(self, rec: TaxpayerIn, history: Sequence[tuple[AddressIn, date]] | None = None) -> None:
        """Queue one validated record (``history``: the seed's entity address history)."""
        idx = self.blind(rec.tin, "tin")
        if idx in self._pending_idx:  # the same TIN twice in one batch: keep file order
            self.flush()
        self._pending.append(_Pending(rec, idx, history))
        self._pending_idx.add(idx)
        self.touch(idx)
        if len(self._pending) >= self.batch_size:
            self._write_pending()

    def touch(self, idx: bytes) -> None:
        """Note a taxpayer written (for the conflict index), bounded by ``TOUCHED_LIMIT``."""
        if not self.touched_overflow:
            self.touched.add(idx)
            if len(self.touched) > TOUCHED_LIMIT:
                self.touched, self.touched_overflow = set(), True

    def flush(self) -> None:
        """Write everything queued (inside the caller's transaction) and wait until written."""
        self._write_pending()
        self._wait()

    def close(self) -> None:
        """Stop the helper thread (pipelined mode); pending work is waited for, not lost."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _write_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_idx = self._pending, [], set()
        self._write(batch)

    def _wait(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.result()  # re-raises the insert's exception here, in the caller's thread

    def insert(self, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """``rows`` (tuples in ``cols`` order) into ``table``: PostgreSQL ``COPY ... FROM
        STDIN`` (one stream per batch and table, in the caller's transaction), SQLite a raw
        executemany."""
        if not rows:
            return
        if not self.sqlite:
            dbapi: Any = self.conn.connection.dbapi_connection  # psycopg's Connection
            assert dbapi is not None
            with (
                dbapi.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,  # noqa: S608 - our names
            ):
                for row in rows:
                    copy.write_row(row)
            return
        key = (table, cols)
        sql = self._sql.get(key)
        if sql is None:
            marks = ", ".join([self.ph] * len(cols))
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
            self._sql[key] = sql
        self.conn.exec_driver_sql(sql, rows)

    def execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Raw executemany of a statement written with ``?`` placeholders."""
        if rows:
            self.conn.exec_driver_sql(sql if self.sqlite else sql.replace("?", "%s"), rows)

    # -- the batch -----------------------------------------------------------------------------

    def _write(self, batch: list[_Pending]) -> None:
        if self._pool is not None and self._checked:
            existing: dict[bytes, int] = {}  # the UNIQUE constraint guards the rest
        else:
            self._wait()
            existing = self._existing_taxpayers([p.idx for p in batch])
            self._checked = True
        if existing and self.refuse_existing:
            raise IdrsError(
                f"{len(existing)} of the generated TINs already exist in this database "
                "(this seed was loaded before?); choose another --seed"
            )
        new = [p for p in batch if p.idx not in existing]
        new_ids = iter(self.ids.take("taxpayer", len(new)))
        tp_id: dict[bytes, int] = dict(existing)
        for p in new:
            tp_id[p.idx] = next(new_ids)
        rows = _Rows()
        old = [p for p in batch if p.idx in existing]
        modules = self._prepare_existing(old, tp_id, rows) if old else {}
        for p in new:
            self._entity_rows(p, tp_id[p.idx], rows, created=True)
        self._return_rows(batch, tp_id, modules, rows)
        if self._pool is not None:
            self._wait()
            self._inflight = self._pool.submit(self._flush_rows, rows)
        else:
            self._flush_rows(rows)
        self.stats.taxpayers_created += len(new)
        self.stats.taxpayers_updated += len(old)

    def _existing_taxpayers(self, idxs: list[bytes]) -> dict[bytes, int]:
        res = self.conn.execute(
            select(m.Taxpayer.tin_index, m.Taxpayer.id).where(m.Taxpayer.tin_index.in_(idxs))
        )
        return {bytes(i): int(t) for i, t in res}

    def _entity_rows(self, p: _Pending, tid: int, rows: _Rows, *, created: bool) -> None:
        rec, kr = p.rec, self.kr
        n = rec.name
        dob = (
            kr.encrypt(rec.date_of_birth.isoformat(), "taxpayer.dob") if rec.date_of_birth else None
        )
        phone = kr.encrypt(rec.phone, "taxpayer.phone") if rec.phone else None
        if created:
            rows.taxpayer.append(
                (
                    tid,
                    p.idx,
                    kr.encrypt(rec.tin, "taxpayer.tin"),
                    n.first,
                    n.middle,
                    n.last,
                    n.suffix,
                    name_control(n.last),
                    dob,
                    phone,
                    self.now_value,
                    self.now_value,
                )
            )
            for mk in rec.markers:
                rows.marker.append((tid, mk))
            for addr, since in p.history or [(rec.address, self.today)]:
                rows.address.append(self._address_row(tid, None, "entity", addr, since))
        else:
            self.execute_many(
                "UPDATE taxpayer SET first_name = ?, middle_name = ?, last_name = ?, suffix = ?, "
                "name_control = ?, dob_enc = ?, phone_enc = ?, updated_at = ? WHERE id = ?",
                [
                    (
                        n.first,
                        n.middle,
                        n.last,
                        n.suffix,
                        name_control(n.last),
                        dob,
                        phone,
                        self.now_value,
                        tid,
                    )
                ],
            )

    def _address_row(
        self, tid: int, year: int | None, source: str, addr: AddressIn, since: date
    ) -> tuple[Any, ...]:
        norm = normalize(addr.street, addr.city, addr.state, addr.zip)
        return (
            tid,
            year,
            source,
            addr.street,
            addr.city,
            addr.state,
            addr.zip,
            norm.norm_key,
            norm.street_key,
            self.day(since),
        )

    def _prepare_existing(
        self, old: list[_Pending], tp_id: dict[bytes, int], rows: _Rows
    ) -> dict[tuple[int, int], int]:
        """Re-import: update entities, drop the replaced years; returns kept module ids."""
        ids = [tp_id[p.idx] for p in old]
        markers = {
            (int(t), mk)
            for t, mk in self.conn.execute(
                select(m.Marker.taxpayer_id, m.Marker.marker).where(m.Marker.taxpayer_id.in_(ids))
            )
        }
        last_addr: dict[int, str] = {}
        for t, key in self.conn.execute(
            select(m.AddressRecord.taxpayer_id, m.AddressRecord.norm_key)
            .where(m.AddressRecord.taxpayer_id.in_(ids), m.AddressRecord.source == "entity")
            .order_by(m.AddressRecord.valid_from, m.AddressRecord.id)
        ):
            last_addr[int(t)] = key
        modules = {
            (int(t), int(y)): int(i)
            for i, t, y in self.conn.execute(
                select(m.TaxModule.id, m.TaxModule.taxpayer_id, m.TaxModule.tax_year).where(
                    m.TaxModule.taxpayer_id.in_(ids)
                )
            )
        }
        drop_years: list[tuple[int, int]] = []
        drop_info: list[tuple[bytes, int]] = []
        for p in old:
            tid = tp_id[p.idx]
            self._entity_rows(p, tid, rows, created=False)
            rows.marker.extend((tid, mk) for mk in p.rec.markers if (tid, mk) not in markers)
            norm = normalize(
                p.rec.address.street, p.rec.address.city, p.rec.address.state, p.rec.address.zip
            )
            if last_addr.get(tid) != norm.norm_key:
                rows.address.append(
                    self._address_row(tid, None, "entity", p.rec.address, self.today)
                )
            years = {r.tax_year for r in p.rec.returns} | {t.tax_year for t in p.rec.transactions}
            drop_years.extend((tid, y) for y in sorted(years))
            drop_info.extend(
                (p.idx, y) for y in sorted({i.tax_year for i in p.rec.information_returns})
            )
        self.execute_many(
            "DELETE FROM tax_return WHERE taxpayer_id = ? AND tax_year = ?", drop_years
        )
        self.execute_many(
            "DELETE FROM address_record WHERE taxpayer_id = ? AND tax_year = ? AND source = 'return'",
            drop_years,
        )
        touched = [(modules[k],) for k in drop_years if k in modules]
        self.execute_many(
            "DELETE FROM txn WHERE module_id = ? AND source IN ('import', 'seed')", touched
        )
        self.execute_many("UPDATE tax_module SET version = version + 1 WHERE id = ?", touched)
        self.execute_many(
            "DELETE FROM information_return WHERE payee_tin_index = ? AND tax_year = ?", drop_info
        )
        return modules

    def _return_rows(
        self,
        batch: list[_Pending],
        tp_id: dict[bytes, int],
        modules: dict[tuple[int, int], int],
        rows: _Rows,
    ) -> None:
        kr = self.kr
        ret_ids = iter(self.ids.take("tax_return", sum(len(p.rec.returns) for p in batch)))
        need_modules: list[tuple[int, int]] = []
        for p in batch:
            tid = tp_id[p.idx]
            years = {r.tax_year for r in p.rec.returns} | {t.tax_year for t in p.rec.transactions}
            need_modules.extend((tid, y) for y in sorted(years) if (tid, y) not in modules)
        new_mods = iter(self.ids.take("tax_module", len(need_modules)))
        for key in need_modules:
            modules[key] = next(new_mods)
            rows.module.append((modules[key], key[0], key[1], 1))
        for p in batch:
            tid, rec = tp_id[p.idx], p.rec
            filed = {t.tax_year: t.date for t in rec.transactions if t.tc == "150"}
            for ret in rec.returns:
                rid = next(ret_ids)
                received = filed.get(ret.tax_year) or date(ret.tax_year + 1, 4, 15)
                rows.tax_return.append(self._return_row(rid, tid, ret, received))
                rows.address.append(
                    self._address_row(
                        tid, ret.tax_year, "return", ret.address or rec.address, received
                    )
                )
                for d in ret.dependents:
                    rows.dependent.append(
                        (
                            rid,
                            self.blind(d.tin, "tin"),
                            kr.encrypt(d.tin, "dependent.tin"),
                            d.relationship,
                            d.name.first,
                            d.name.last,
                            self.flag(d.adoption_pending),
                        )
                    )
                for w in ret.w2:
                    idx = self._business(rows, w.employer_ein, w.employer_name, "employer")
                    rows.w2.append(
                        (
                            rid,
                            idx,
                            kr.encrypt(w.employer_ein, "w2.employer_ein"),
                            w.employer_name,
                            w.wages,
                            w.withholding,
                        )
                    )
                for k in ret.k1:
                    idx = self._business(rows, k.entity_ein, k.entity_name, "partnership")
                    rows.k1.append(
                        (
                            rid,
                            idx,
                            kr.encrypt(k.entity_ein, "k1.entity_ein"),
                            k.entity_name,
                            float(k.share_pct),
                        )
                    )
                for c in ret.schedule_c:
                    if c.ein is None:
                        rows.schedule_c.append((rid, c.business_name, None, None))
                        continue
                    idx = self._business(rows, c.ein, c.business_name, "sole_prop")
                    rows.schedule_c.append(
                        (rid, c.business_name, idx, kr.encrypt(c.ein, "schedule_c.ein"))
                    )
                self.stats.returns += 1
            for t in rec.transactions:
                rows.txn.append(
                    (
                        modules[(tid, t.tax_year)],
                        t.tc,
                        self.day(t.date),
                        t.amount,
                        t.action_code,
                        self.source,
                        self.now_value,
                        self.actor,
                    )
                )
            for i in rec.information_returns:
                idx = self._business(rows, i.payer_ein, i.payer_name, "payer")
                rows.info.append(
                    (
                        p.idx,
                        i.tax_year,
                        i.form,
                        idx,
                        kr.encrypt(i.payer_ein, "information_return.payer_ein"),
                        i.payer_name,
                        i.amount,
                        i.withholding,
                    )
                )
            self.stats.transactions += len(rec.transactions)
            self.stats.information_returns += len(rec.information_returns)

    def _return_row(self, rid: int, tid: int, ret: Any, received: date) -> tuple[Any, ...]:
        kr = self.kr
        spouse_idx = spouse_enc = routing = account = bank = None
        if ret.spouse_tin:
            spouse_idx = self.blind(ret.spouse_tin, "tin")
            spouse_enc = kr.encrypt(ret.spouse_tin, "tax_return.spouse_tin")
        refund = ret.refund
        if refund is not None and refund.direct_deposit is not None:
            dd = refund.direct_deposit
            routing = kr.encrypt(dd.routing, "tax_return.routing")
            account = kr.encrypt(dd.account, "tax_return.account")
            bank = self.blind(bank_key(dd.routing, dd.account), "bank")
        return (
            rid,
            tid,
            ret.tax_year,
            ret.filing_status,
            spouse_idx,
            spouse_enc,
            ret.agi,
            ret.total_tax,
            ret.preparer_ptin,
            refund.amount if refund else None,
            routing,
            account,
            bank,
            self.dt(datetime.combine(received, time(12), UTC)),
        )

    def _business(self, rows: _Rows, ein: str, name: str, kind: str) -> bytes:
        idx = self.blind(ein, "ein")
        if idx not in self._known_eins:
            self._known_eins.add(idx)
            rows.business.append((idx, self.kr.encrypt(ein, "business.ein"), name[:120], kind))
        return idx

    def _flush_rows(self, rows: _Rows) -> None:
        if rows.business:
            have = {
                bytes(i)
                for (i,) in self.conn.execute(
                    select(m.Business.ein_index).where(
                        m.Business.ein_index.in_([r[0] for r in rows.business])
                    )
                )
            }
            fresh = [r for r in rows.business if r[0] not in have]
            self.insert("business", BUSINESS_COLS, fresh)
            self.stats.businesses += len(fresh)
        for attr, table, cols in ROW_TABLES:
            self.insert(table, cols, getattr(rows, attr))

    def copy_encoded(self, table: str, cols: tuple[str, ...], data: bytes) -> None:
        """PostgreSQL only: rows already encoded in COPY text format (by an import worker
        process) into ``table``, one ``COPY ... FROM STDIN`` in the caller's transaction."""
        if not data:
            return
        dbapi: Any = self.conn.connection.dbapi_connection
        assert dbapi is not None
        with (
            dbapi.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,  # noqa: S608 - our names
        ):
            copy.write(data)
