"""Anonymized grants: records that cannot be linked back to a taxpayer.

An anonymized principal (anyone holding an anonymized grant that is not over) never names a
taxpayer: no TIN, name or address is accepted from them anywhere (:func:`refuse_identifier`,
enforced for every HTTP route by ``idrs.api.anonymized.no_identifiers`` and for research by
``idrs.research``). They reach records by listing or sampling with filters on generalized
attributes, and address a record by its pseudonym under their grant.

- **Pseudonyms** are per grant: AES-SIV of the return's row id under a key derived (HKDF) from
  ``anon.key``, the grant id and the grant's key version (``crypto.Keyring.record_pseudonym``).
  They differ between grants, between key versions, and from the audit log's keyed taxpayer
  pseudonyms; only :func:`reidentify` (security staff, recorded) maps one back.
- **Records** are returns (taxpayer × tax year): each year of one taxpayer has its own
  unrelated pseudonym, so years cannot be joined into a rarer profile.
- **Quasi-identifiers** (tax year, filing status, state, ZIP3, AGI band, wages band, years of
  birth) are generalized along :data:`LEVELS`; nothing else is released (no name, TIN,
  street, city, exact amount, date, marker: high-profile, employee and adoption markers never
  reach the principal).
- **k-anonymity** over the whole master file: a record is released only when at least ``k``
  *other* returns of the population share its generalized combination (class size ≥ k+1).
  The level is the finest one at which at most :data:`MAX_SUPPRESSED` of the population is
  suppressed; records in smaller classes are suppressed. The level a grant has been answered
  at is stored and only rises, so answers of one grant are all cut from one k-anonymous
  table (or a coarser one): combining them yields nothing finer than what was checked.

- **The population** (every return's raw quasi-identifiers, years of birth decrypted) is held
  as Polars columns and cached per engine for one *data version* of the master file
  (:func:`data_version`: counts, highest ids, latest times of returns, taxpayers, addresses,
  W-2s; checked before every answer). Class sizes are counted vectorized per level on band
  codes (one code per released band, so the classes are those of the released strings) and
  kept with the population; only the records released are generalized into strings, by
  :func:`generalize`. Openings (:func:`reproduce`) read the population as of the entry's time,
  uncached.

Callers: api/anonymized.py, cli/anonymized.py, cli/grants.py (reidentify), research.py,
bench/bench_anonymized.py, the tests.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from idrs.audit import commitment, log
from idrs.audit.events import Actor, make_event
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, IdrsError, NotFound, Reason, ValidationFailed
from idrs.grants import rules
from idrs.grants.events import GrantEvent
from idrs.grants.models import Grant
from idrs.grants.results import KeyRotated, Reidentified
from idrs.grants.service import prerequisites
from idrs.identifiers import normalize_tin
from idrs.masterfile.models import W2, AddressRecord, Taxpayer, TaxReturn
from idrs.people.models import Employee
from idrs.people.roles import REIDENTIFIERS

#: The reason code of a TIN, name or address submitted by an anonymized principal.
NO_IDENTIFIER = "ANONYMIZED_NO_IDENTIFIER"
#: The reason code of a record call by someone without an active anonymized grant.
NO_ANONYMIZED_GRANT = "NO_ANONYMIZED_GRANT"

#: the share of the population a level may suppress before a coarser level is taken
MAX_SUPPRESSED = 0.05
MAX_LIMIT = 1000
#: money is top-coded: every amount at or above this is one band
TOP_CODE = 200_000
QUASI_IDENTIFIERS = (
    "tax_year",
    "filing_status",
    "state",
    "zip3",
    "agi_band",
    "wages_band",
    "birth_years",
)
FILTERS = ("tax_year", "filing_status", "state", "zip3", "agi_band")


@dataclass(frozen=True)
class Level:
    """One step of generalization (global recoding); None drops the attribute."""

    state: bool  # the state released
    zip3: bool  # the first three ZIP digits released
    money: int  # width of the AGI (and wages) bands, dollars
    wages: bool  # the wages band released
    birth: int | None  # width of the years-of-birth bands


#: From finest to coarsest: ZIP3 → state → none, bands widen, year of birth → decade →
#: 20 years → none, wages dropped; the last level keeps only year, filing status and AGI in
#: three bands (negative, under the top code, at or above it).
LEVELS: tuple[Level, ...] = (
    Level(True, True, 25_000, True, 5),
    Level(True, False, 25_000, True, 10),
    Level(True, False, 50_000, True, 10),
    Level(True, False, 100_000, True, 20),
    Level(False, False, 100_000, True, 20),
    Level(False, False, 100_000, False, 20),
    Level(False, False, 100_000, False, None),
    Level(False, False, TOP_CODE, False, None),
)


def _band(cents: int | None, width: int) -> str | None:
    if cents is None:
        return None
    dollars = cents // 100
    if dollars < 0:
        return "<0"
    if dollars >= TOP_CODE:
        return f"{TOP_CODE}+"
    lo = dollars // width * width
    return f"{lo}-{min(lo + width, TOP_CODE) - 1}"


def _years(year: int | None, width: int | None) -> str | None:
    if year is None or width is None:
        return None
    lo = year // width * width
    return f"{lo}-{lo + width - 1}"


@dataclass(frozen=True, slots=True)
class PopRow:
    """One return of the population, with its raw quasi-identifiers (never released)."""

    return_id: int
    tax_year: int
    filing_status: str
    state: str | None
    zip3: str | None
    agi_cents: int
    wages_cents: int | None
    birth_year: int | None


def generalize(row: PopRow, level: Level) -> tuple[Any, ...]:
    """The released quasi-identifiers of ``row`` at ``level`` (in QUASI_IDENTIFIERS order)."""
    return (
        row.tax_year,
        row.filing_status,
        row.state if level.state else None,
        row.zip3 if level.zip3 else None,
        _band(row.agi_cents, level.money),
        _band(row.wages_cents, level.money) if level.wages else None,
        _years(row.birth_year, level.birth),
    )


def _birth_year(app: App, dob: bytes | None) -> int | None:
    if dob is None:
        return None
    with contextlib.suppress(IdrsError, ValueError):
        text_ = app.keyring.decrypt(dob, "taxpayer.dob")
        return int(text_[:4]) if text_[:4].isdigit() else None
    return None


#: the columns of a population frame, one row per return (raw quasi-identifiers; never
#: released as such: only their generalization at a level, for the rows released)
_POP_SCHEMA = {
    "return_id": "Int64",
    "tax_year": "Int64",
    "filing_status": "Utf8",
    "state": "Utf8",
    "zip3": "Utf8",
    "agi_cents": "Int64",
    "wages_cents": "Int64",
    "birth_year": "Int64",
}


def _schema() -> dict[str, Any]:
    import polars as pl

    return {c: getattr(pl, t) for c, t in _POP_SCHEMA.items()}


class Population:
    """Every return of the master file with its raw quasi-identifiers, held column by column
    (a Polars frame), and the size of each return's equivalence class at
    each level once asked for (computed vectorized, then kept: a population is never changed).
    """

    def __init__(self, frame: Any) -> None:
        import numpy as np

        self.frame = frame
        self._ids = frame.get_column("return_id").to_numpy()
        self._order = np.argsort(self._ids, kind="stable")
        self._sorted = self._ids[self._order]
        self._sizes: dict[int, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_rows(cls, rows: list[PopRow]) -> Population:
        import polars as pl

        cols = {c: [getattr(r, c) for r in rows] for c in _POP_SCHEMA}
        return cls(pl.DataFrame(cols, schema=_schema()))

    def __len__(self) -> int:
        return int(self.frame.height)

    def __iter__(self) -> Iterator[PopRow]:
        for r in self.frame.iter_rows(named=True):
            yield PopRow(**r)

    def row(self, i: int) -> PopRow:
        r = self.frame.row(int(i), named=True)
        return PopRow(**r)

    def return_id(self, i: int) -> int:
        return int(self._ids[i])

    def index_of(self, return_id: int | None) -> int | None:
        """The row of one return (None: not in the population)."""
        import numpy as np

        if return_id is None or not len(self):
            return None
        j = int(np.searchsorted(self._sorted, int(return_id)))
        if j < len(self) and int(self._sorted[j]) == int(return_id):
            return int(self._order[j])
        return None

    def sizes(self, level: int) -> Any:
        """The size of every return's class at ``level`` (a numpy array, in row order)."""
        with self._lock:
            hit = self._sizes.get(level)
        if hit is not None:
            return hit
        out = (
            self.frame.select(_class_size(LEVELS[level])).to_series().to_numpy()
            if len(self)
            else _empty()
        )
        with self._lock:
            self._sizes[level] = out
        return out

    def matching(self, filters: dict[str, Any], level: int) -> Any:
        """Which rows match ``filters`` (as :func:`parse_filters` returns them) at ``level``,
        a numpy boolean array: the same rows as comparing their generalized values."""
        import polars as pl

        if not len(self):
            return _empty().astype(bool)
        expr = pl.col("return_id").is_not_null()  # every row (a literal would be one row)
        lv = LEVELS[level]
        for name, value in filters.items():
            if name == "agi_band":
                expr = expr & (_band_code(pl.col("agi_cents"), lv.money) == _code_of_band(value))
            else:
                expr = expr & (pl.col(name) == value).fill_null(False)
        return self.frame.select(expr.alias("m")).to_series().to_numpy()


def _empty() -> Any:
    import numpy as np

    return np.zeros(0, dtype=np.int64)


def _band_code(cents: Any, width: int) -> Any:
    """The AGI / wages band of :func:`_band` as a number (one number per band, so classes
    counted on codes are the classes of the released strings): −1 for "<0", TOP_CODE for the
    top code, else the band's lower bound."""
    import polars as pl

    dollars = cents.floordiv(100)
    return (
        pl.when(dollars < 0)
        .then(pl.lit(-1, dtype=pl.Int64))
        .when(dollars >= TOP_CODE)
        .then(pl.lit(TOP_CODE, dtype=pl.Int64))
        .otherwise(dollars.floordiv(width) * width)
    )


def _code_of_band(text_: str) -> int:
    if text_ == "<0":
        return -1
    return int(text_.split("-")[0].rstrip("+"))


def _class_size(level: Level) -> Any:
    """Per row: how many returns share its generalized combination at ``level`` (nulls are
    one value, as None is in :func:`generalize`)."""
    import polars as pl

    none = pl.lit(None, dtype=pl.Int64)
    keys = [
        pl.col("tax_year"),
        pl.col("filing_status"),
        pl.col("state") if level.state else pl.lit(None, dtype=pl.Utf8),
        pl.col("zip3") if level.zip3 else pl.lit(None, dtype=pl.Utf8),
        _band_code(pl.col("agi_cents"), level.money),
        _band_code(pl.col("wages_cents"), level.money) if level.wages else none,
        pl.col("birth_year").floordiv(level.birth) if level.birth is not None else none,
    ]
    named = [e.alias(f"k{i}") for i, e in enumerate(keys)]
    return pl.len().over(named).cast(pl.Int64).alias("size")


def population(session: Session, app: App) -> Population:
    """Every return of the master file ``session`` reads, with its raw quasi-identifiers.

    The year of birth is encrypted at rest, so it is decrypted here (one value per taxpayer:
    the year is all that is kept) and the classes are counted in Polars rather than in SQL.
    The reads are ORM selects, so a session bounded in time (``oversight.opening``) reads the
    population as it stood then. Uncached: :func:`current_population` is the cached one.
    """
    import polars as pl

    tids: list[int] = []
    years: list[int | None] = []
    for tid, dob in session.execute(select(Taxpayer.id, Taxpayer.dob_enc)):
        tids.append(int(tid))
        years.append(_birth_year(app, dob))
    births = pl.DataFrame(
        {"taxpayer_id": tids, "birth_year": years},
        schema={"taxpayer_id": pl.Int64, "birth_year": pl.Int64},
    )
    addr = session.execute(
        select(AddressRecord.taxpayer_id, AddressRecord.state, AddressRecord.zip).order_by(
            AddressRecord.taxpayer_id, AddressRecord.valid_from, AddressRecord.id
        )
    ).all()
    places = pl.DataFrame(
        addr, schema={"taxpayer_id": pl.Int64, "state": pl.Utf8, "zip": pl.Utf8}, orient="row"
    ).unique(subset="taxpayer_id", keep="last", maintain_order=True)  # the latest wins
    wages = pl.DataFrame(
        session.execute(
            select(W2.return_id, func.sum(W2.wages_cents)).group_by(W2.return_id)
        ).all(),
        schema={"return_id": pl.Int64, "wages_cents": pl.Int64},
        orient="row",
    )
    returns = pl.DataFrame(
        session.execute(
            select(
                TaxReturn.id,
                TaxReturn.taxpayer_id,
                TaxReturn.tax_year,
                TaxReturn.filing_status,
                TaxReturn.agi_cents,
            )
        ).all(),
        schema={"return_id": pl.Int64, "taxpayer_id": pl.Int64, "tax_year": pl.Int64,
                "filing_status": pl.Utf8, "agi_cents": pl.Int64},
        orient="row",
    )
    zip3 = pl.col("zip").fill_null("").str.replace_all(r"[^0-9]", "").str.slice(0, 3)
    frame = (
        returns.join(places, on="taxpayer_id", how="left")
        .join(wages, on="return_id", how="left")
        .join(births, on="taxpayer_id", how="left")
        .select(
            pl.col("return_id"),
            pl.col("tax_year"),
            pl.col("filing_status"),
            pl.when(pl.col("state") == "").then(None).otherwise(pl.col("state")).alias("state"),
            pl.when(zip3 == "").then(None).otherwise(zip3).alias("zip3"),
            pl.col("agi_cents"),
            pl.col("wages_cents"),
            pl.col("birth_year"),
        )
    )
    return Population(frame)


#: what the population is read from: a change to any of it is a new population (a return,
#: taxpayer, address or W-2 added or removed; a taxpayer's entity re-imported or adjusted)
_VERSION_SQL = (
    "SELECT (SELECT COUNT(*) FROM tax_return), (SELECT MAX(id) FROM tax_return),"
    " (SELECT MAX(received_at) FROM tax_return),"
    " (SELECT COUNT(*) FROM taxpayer), (SELECT MAX(id) FROM taxpayer),"
    " (SELECT MAX(updated_at) FROM taxpayer),"
    " (SELECT COUNT(*) FROM address_record), (SELECT MAX(id) FROM address_record),"
    " (SELECT COUNT(*) FROM w2), (SELECT MAX(id) FROM w2)"
)
_cache: weakref.WeakKeyDictionary[Engine, tuple[tuple[Any, ...], Population]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()
_build_lock = threading.Lock()


def data_version(app: App) -> tuple[Any, ...]:
    """What identifies the master file's population now (counts, highest ids, latest times)."""
    with app.engine.connect() as conn:
        return tuple(str(v) for v in conn.execute(sql_text(_VERSION_SQL)).one())


def current_population(app: App) -> Population:
    """The population now, cached per engine while its :func:`data_version` is unchanged
    (the years of birth are decrypted once per change, the classes counted once per level).
    A version read before the population and again after: a write in between is never
    cached under the earlier version."""
    version = data_version(app)
    with _cache_lock:
        hit = _cache.get(app.engine)
    if hit is not None and hit[0] == version:
        return hit[1]
    with _build_lock:  # concurrent callers after a change wait for one read, not each their own
        with _cache_lock:
            hit = _cache.get(app.engine)
        if hit is not None and hit[0] == version:
            return hit[1]
        with session_scope(app.engine) as s:
            pop = population(s, app)
        if data_version(app) == version:
            with _cache_lock:
                _cache[app.engine] = (version, pop)
    return pop


@dataclass
class Table:
    """The population generalized at one level, with the size of each return's class."""

    level: int
    pop: Population
    sizes: Any  # numpy array: the class size of each row
    k: int

    @property
    def released(self) -> Any:
        """Which rows may be released: at least k others share the combination."""
        return self.sizes >= self.k + 1

    def releasable(self, i: int) -> bool:
        """At least k others share the combination (class size ≥ k+1)."""
        return bool(self.sizes[i] >= self.k + 1)

    def key(self, i: int) -> tuple[Any, ...]:
        """The released quasi-identifiers of row ``i`` (:func:`generalize`)."""
        return generalize(self.pop.row(i), LEVELS[self.level])

    @property
    def suppressed_share(self) -> float:
        if not len(self.pop):
            return 0.0
        return float((~self.released).sum()) / len(self.pop)


def _as_population(rows: Population | list[PopRow]) -> Population:
    return rows if isinstance(rows, Population) else Population.of_rows(rows)


def table_at(rows: Population | list[PopRow], level: int, k: int) -> Table:
    pop = _as_population(rows)
    return Table(level, pop, pop.sizes(level), k)


def choose_table(rows: Population | list[PopRow], k: int, floor: int = 0) -> Table:
    """The finest level from ``floor`` up that suppresses at most MAX_SUPPRESSED of the
    population (else the coarsest); records in classes under k+1 are suppressed in any case."""
    pop = _as_population(rows)
    t = table_at(pop, floor, k)
    for level in range(floor + 1, len(LEVELS)):
        if t.suppressed_share <= MAX_SUPPRESSED:
            break
        t = table_at(pop, level, k)
    return t


# -- who is an anonymized principal -------------------------------------------------------


def _anonymized_grants(session: Session, employee_id: int, now: datetime) -> list[Grant]:
    """The principal's anonymized grants that are not over (pending ones included)."""
    grants = session.scalars(
        select(Grant).where(
            Grant.principal_id == employee_id,
            (Grant.kind == "anonymized") | (Grant.population == "anonymized"),
            Grant.status.in_((rules.PENDING, rules.APPROVED)),
        )
    ).all()
    return [
        g
        for g in grants
        if rules.state_of(g.status, g.start_date, g.term_days, now)
        not in (rules.EXPIRED, rules.REVOKED, rules.ENDED)
    ]


#: anonymized and statistics grants alike: neither principal may ever name a taxpayer
_ANONYMIZED_GRANTS = (
    "SELECT status, start_date, term_days FROM grant_grant WHERE principal_id = :e"
    " AND (kind IN ('anonymized', 'statistics') OR population IN ('anonymized', 'statistics'))"
    " AND status IN ('pending_approval', 'approved')"
)


def is_anonymized_principal(session: Session, app: App, employee_id: int) -> bool:
    """Whether the employee holds an anonymized or statistics grant that is not over (fail
    closed: a
    pending or not yet started one counts too, so that nobody can name taxpayers now and
    read their pseudonymized records later). On every research call: one indexed query
    straight to the driver."""
    from idrs.access import sqlraw

    now = as_utc(app.clock.now())
    for status, start, term in sqlraw.fetch(session, _ANONYMIZED_GRANTS, {"e": employee_id}):
        day = start if isinstance(start, date) else date.fromisoformat(str(start)[:10])
        if rules.state_of(status, day, int(term), now) not in (
            rules.EXPIRED,
            rules.REVOKED,
            rules.ENDED,
        ):
            return True
    return False


def anonymized_principal_of_token(app: App, token: str | None) -> Employee | None:
    """The employee a session token names (whatever the session's state) when they are an
    anonymized principal; None otherwise. Reads only (the route authenticates as usual)."""
    if not token:
        return None
    from idrs.people.auth import employee_of_token

    with app.engine.connect() as conn:
        emp = employee_of_token(conn, token)
        if emp is None:
            return None
        with Session(bind=conn) as s:
            return emp if is_anonymized_principal(s, app, emp.id) else None


def refuse_identifier(
    app: App, who: Employee, what: str, *, interface: str = "api", address: str | None = None
) -> AccessDenied:
    """Record (outcome denied) and return the AccessDenied for an identifier submitted by an
    anonymized principal. ``what`` names the field(s), never their values."""
    idx = None
    with contextlib.suppress(IdrsError):  # the refusal stands even if it cannot be recorded
        idx = log.append(
            app.engine,
            make_event(
                GrantEvent.ANON_IDENTIFIER_REFUSED,
                time=app.clock.now(),
                actor=who.seid,
                outcome="denied",
                interface=interface,
                address=address,
                obj={"seid": who.seid},
                reasons=[NO_IDENTIFIER],
                detail={"fields": what},
            ),
        )
    return AccessDenied(
        [
            Reason(
                NO_IDENTIFIER,
                "an anonymized principal reaches records by "
                f"pseudonym only; no TIN, name or address is accepted ({what})",
            )
        ],
        idx,
    )


def check_principal(
    app: App, who: Employee, what: str, *, interface: str = "api", address: str | None = None
) -> None:
    """Raise the recorded refusal when ``who`` is an anonymized principal."""
    with session_scope(app.engine) as s:
        anonymized = is_anonymized_principal(s, app, who.id)
    if anonymized:
        raise refuse_identifier(app, who, what, interface=interface, address=address)


#: Field names that carry a taxpayer identifier, name or address.
IDENTIFIER_FIELD = re.compile(
    r"^(tin|tins|ssn|ssns|ein|eins|itin|[a-z_]*_tin|[a-z_]*_ssn|[a-z_]*_ein|name|names|"
    r"first_name|last_name|taxpayer|taxpayers|street|address|city|place|"
    r"zip|q|query)$"
)
#: A value that looks like a TIN (SSN/ITIN 9 digits, with or without dashes; an EIN).
TIN_VALUE = re.compile(r"(?<!\d)(\d{3}-?\d{2}-?\d{4}|\d{2}-\d{7})(?!\d)")
#: a grant's record pseudonym (``an_`` + base32): what an analyst is meant to send back. Its
#: digits 2-7 can run nine long by chance, which is not a TIN.
RECORD_PSEUDONYM = re.compile(r"an_[a-z2-7]{8,64}")


def identifier_fields(values: Mapping[str, Any] | list[Any] | Any, prefix: str = "") -> list[str]:
    """The names of the fields in ``values`` (a JSON-like tree) that carry an identifier."""
    found: list[str] = []
    if isinstance(values, Mapping):
        for key, value in values.items():
            name = str(key).lower()
            path = f"{prefix}.{name}" if prefix else name
            if IDENTIFIER_FIELD.match(name) and value not in (None, "", [], {}):
                found.append(path)
            else:
                found.extend(identifier_fields(value, path))
    elif isinstance(values, list):
        for i, value in enumerate(values):
            found.extend(identifier_fields(value, f"{prefix}[{i}]"))
    elif (isinstance(values, str) and TIN_VALUE.search(values)
          and not RECORD_PSEUDONYM.fullmatch(values)):
        found.append(prefix or "value")
    return found


# -- the principal's grant ---------------------------------------------------------------


@dataclass(frozen=True)
class GrantKey:
    grant_id: int
    key_version: int
    k: int
    level: int


def _active_grant(app: App, who: Employee, grant_id: int | None, actor: Actor) -> GrantKey:
    """The anonymized grant the call runs under: active, the principal's, prerequisites met."""
    now = as_utc(app.clock.now())
    with session_scope(app.engine) as s:
        grants = [
            g
            for g in _anonymized_grants(s, who.id, now)
            if rules.state_of(g.status, g.start_date, g.term_days, now) == rules.ACTIVE
        ]
        if grant_id is not None:
            grants = [g for g in grants if g.id == grant_id]
        chosen = grants[0] if len(grants) == 1 else None
        pre = prerequisites(s, app, who.id, chosen.agreement_title, now) if chosen else None
        # the coarsest level any anonymized grant of this principal (a renewal, an earlier or
        # a parallel grant) was answered at: their answers must not combine into a finer view
        floor = s.scalar(
            select(func.max(Grant.anon_level)).where(
                Grant.principal_id == who.id,
                (Grant.kind == "anonymized") | (Grant.population == "anonymized"),
            )
        )
    if chosen is None:
        if len(grants) > 1:
            raise ValidationFailed(["grant: you hold several active anonymized grants; name one"])
        raise _deny(
            app,
            who,
            actor,
            grant_id,
            NO_ANONYMIZED_GRANT,
            "anonymized records need an active anonymized grant of yours",
        )
    assert pre is not None
    for ok, code, text in (
        (pre["clearance_verified"], "CLEARANCE_NOT_VERIFIED", "your clearance is not verified"),
        (
            pre["agreement_signed"],
            "AGREEMENT_NOT_SIGNED",
            "you have not signed the current agreement",
        ),
        (pre["training_current"], "TRAINING_NOT_CURRENT", "your UNAX training is not current"),
    ):
        if not ok:
            raise _deny(app, who, actor, chosen.id, code, text)
    return GrantKey(
        chosen.id,
        chosen.key_version,
        chosen.anon_k or rules.DEFAULT_K,
        max(chosen.anon_level or 0, int(floor or 0)),
    )


def _deny(
    app: App, who: Employee, actor: Actor, grant_id: int | None, code: str, text: str
) -> AccessDenied:
    idx = None
    with contextlib.suppress(IdrsError):
        idx = log.record(
            app,
            GrantEvent.ANON_RECORDS,
            actor,
            {"grant_id": grant_id, "seid": who.seid},
            {},
            outcome="denied",
            reasons=[code],
        )
    return AccessDenied([Reason(code, text)], idx)


def _commit(doc: dict[str, Any], call: str, gk: GrantKey, t: Table, return_ids: list[int],
            **extra: Any) -> commitment.Commitment:
    """The commitment of an anonymized answer (issue 14.1), and what reproduces it: the call,
    the grant's key version, the level and k it was cut at, and the returns released
    (row ids, kept encrypted with the salt; a sample is random, so it is named)."""
    return commitment.commit(doc, {
        "kind": "anonymized", "call": call, "grant_id": gk.grant_id,
        "key_version": gk.key_version, "k": gk.k, "level": t.level,
        "return_ids": return_ids, **extra,
    })


def reproduce(app: App, session: Session, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """An anonymized answer rebuilt from the master file ``session`` reads (the opener bounds
    it by the entry's time): the same table cut, the same returns, the same counts."""
    t = table_at(population(session, app), int(recipe["level"]), int(recipe["k"]))
    gid, version = int(recipe["grant_id"]), int(recipe["key_version"])
    chosen = [t.pop.index_of(int(rid)) for rid in recipe["return_ids"]]
    if any(i is None or not t.releasable(i) for i in chosen):
        return None  # a return it released is gone, or no longer k-anonymous at that cut
    ring = app.keyring
    named = sorted(
        (ring.record_pseudonym(gid, version, t.pop.return_id(i)), i)
        for i in chosen if i is not None
    )
    if recipe["call"] == "show":
        if len(named) != 1:
            return None
        p, i = named[0]
        return {"grant_id": gid, "k": t.k, "level": t.level, "record": _record_view(t, i, p)}
    hits = t.pop.matching(recipe["filters"], t.level)
    released = int((hits & t.released).sum())
    return {
        "grant_id": gid,
        "k": t.k,
        "level": t.level,
        "suppressed": int(hits.sum()) - released,
        "matched": released,
        "records": [_record_view(t, i, p) for p, i in named],
    }


def _table(app: App, gk: GrantKey) -> Table:
    """The grant's k-anonymous table now; its level is stored when it rose."""
    t = choose_table(current_population(app), gk.k, gk.level)
    if t.level > gk.level:
        with session_scope(app.engine) as s:
            s.execute(
                update(Grant)
                .where(Grant.id == gk.grant_id, func.coalesce(Grant.anon_level, 0) < t.level)
                .values(anon_level=t.level)
            )
    return t


def _record_view(t: Table, i: int, pseudonym: str) -> dict[str, Any]:
    out: dict[str, Any] = {"pseudonym": pseudonym}
    out.update(zip(QUASI_IDENTIFIERS, t.key(i), strict=True))
    return out


# -- filters --------------------------------------------------------------------------------


def parse_filters(raw: Mapping[str, Any], level: Level) -> dict[str, Any]:
    """Filters on the generalized attributes as released at ``level`` (a finer filter than
    the release would reveal what the release hides: refused)."""
    out: dict[str, Any] = {}
    unknown = sorted(set(raw) - set(FILTERS))
    if unknown:
        raise ValidationFailed(
            [f"{u}: not a filter; filters: {', '.join(FILTERS)}" for u in unknown]
        )
    for name, value in raw.items():
        if value is None or value == "":
            continue
        text = str(value).strip()
        if name == "tax_year":
            if not (text.isascii() and text.isdigit()) or not 1900 <= int(text) <= 2100:
                raise ValidationFailed(["tax_year: a year such as 2023"])
            out[name] = int(text)
        elif name == "filing_status":
            if not re.fullmatch(r"[A-Za-z]{1,3}", text):
                raise ValidationFailed(["filing_status: a filing status code such as MFJ"])
            out[name] = text.upper()
        elif name == "state":
            if not re.fullmatch(r"[A-Za-z]{2}", text):
                raise ValidationFailed(["state: a two-letter state code"])
            if not level.state:
                raise ValidationFailed(["state: generalized away for this grant"])
            out[name] = text.upper()
        elif name == "zip3":
            if not re.fullmatch(r"[0-9]{3}", text):
                raise ValidationFailed(["zip3: the first three digits of a ZIP code"])
            if not level.zip3:
                raise ValidationFailed(
                    ["zip3: generalized to the state for this grant; filter by state"]
                )
            out[name] = text
        elif name == "agi_band":
            lo = text.split("-")[0].rstrip("+")
            ok = lo.isascii() and lo.isdigit() and _band(int(lo) * 100, level.money) == text
            if not ok and text != "<0":
                raise ValidationFailed(
                    [
                        f"agi_band: a band as released for this grant "
                        f"({level.money}-dollar bands, e.g. 0-{level.money - 1})"
                    ]
                )
            out[name] = text
    return out


def _matches(key: tuple[Any, ...], filters: dict[str, Any]) -> bool:
    return all(key[QUASI_IDENTIFIERS.index(n)] == v for n, v in filters.items())


# -- the principal's calls ------------------------------------------------------------------


def list_records(
    app: App,
    who: Employee,
    *,
    filters: Mapping[str, Any],
    limit: int = 100,
    sample: bool = False,
    grant_id: int | None = None,
    actor: Actor,
) -> dict[str, Any]:
    """Released records matching ``filters``: listed (in pseudonym order) or a random sample.

    ``{"records", "k", "suppressed", "level", "matched", "grant_id"}``; ``suppressed`` counts
    the matching returns withheld because fewer than k others share their combination.
    Recorded (filters, counts, level; never the taxpayers' audit pseudonyms, which would tie
    the answer to the audit log).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed([f"limit: from 1 to {MAX_LIMIT}"])
    gk = _active_grant(app, who, grant_id, actor)
    parsed = parse_filters(filters, LEVELS[gk.level])  # bad input refused before any work
    t = _table(app, gk)
    parsed = parse_filters(filters, LEVELS[t.level])
    hits = t.pop.matching(parsed, t.level)
    released = [int(i) for i in (hits & t.released).nonzero()[0]]
    suppressed = int(hits.sum()) - len(released)
    ring = app.keyring
    if sample:
        chosen = secrets.SystemRandom().sample(released, min(limit, len(released)))
        named = sorted(
            (ring.record_pseudonym(gk.grant_id, gk.key_version, t.pop.return_id(i)), i)
            for i in chosen
        )
    else:
        named = sorted(
            (ring.record_pseudonym(gk.grant_id, gk.key_version, t.pop.return_id(i)), i)
            for i in released
        )[:limit]
    records = [_record_view(t, i, p) for p, i in named]
    doc = {
        "grant_id": gk.grant_id,
        "k": gk.k,
        "level": t.level,
        "suppressed": suppressed,
        "matched": len(released),
        "records": records,
    }
    committed = _commit(doc, "list", gk, t, [t.pop.return_id(i) for _, i in named],
                        filters=parsed)
    idx = log.record(
        app,
        GrantEvent.ANON_RECORDS,
        actor,
        {"grant_id": gk.grant_id, "seid": who.seid, "answer": committed.hex},
        {
            "filters": parsed,
            "limit": limit,
            "sample": sample,
            "k": gk.k,
            "level": t.level,
            "returned": len(records),
            "suppressed": suppressed,
        },
        also=committed.writes(app.keyring),  # the salt and recipe, in the entry's commit
    )
    return {**doc, "audit_index": idx}


def show_record(
    app: App, who: Employee, pseudonym: str, *, grant_id: int | None = None, actor: Actor
) -> dict[str, Any]:
    """One released record addressed by its pseudonym under the principal's grant.

    Another grant's pseudonym, a forged one and a record now suppressed all answer the same
    404 (no oracle). Recorded.
    """
    gk = _active_grant(app, who, grant_id, actor)
    rid = app.keyring.record_of_pseudonym(gk.grant_id, gk.key_version, pseudonym)
    t = _table(app, gk)
    found = t.pop.index_of(rid)
    ok = found is not None and t.releasable(found)
    doc: dict[str, Any] | None = None
    committed = None
    if ok and found is not None and rid is not None:
        out = _record_view(
            t, found, app.keyring.record_pseudonym(gk.grant_id, gk.key_version, rid)
        )
        doc = {"grant_id": gk.grant_id, "k": gk.k, "level": t.level, "record": out}
        committed = _commit(doc, "show", gk, t, [rid])
    log.record(
        app,
        GrantEvent.ANON_RECORD,
        actor,
        {"grant_id": gk.grant_id, "seid": who.seid,
         **({"answer": committed.hex} if committed else {})},
        {"found": ok, "level": t.level, "k": gk.k},
        outcome="success" if ok else "not_found",
        also=committed.writes(app.keyring) if committed else None,
    )
    if doc is None:  # no such record, another grant's, or suppressed: one answer for all
        raise NotFound("no released record with that pseudonym under your grant")
    return doc


# -- security staff ---------------------------------------------------------------------------


def reidentify(
    app: App, who: Employee, *, grant_id: int, pseudonym: str, reason: str, actor: Actor
) -> Reidentified:
    """The taxpayer and return behind one pseudonym of one grant (security staff only).

    Recorded before the answer (with the taxpayer's audit-log pseudonym, never the TIN); a
    refusal by role is recorded too.
    """
    from idrs.grants.service import _text

    obj = {"grant_id": int(grant_id), "seid": who.seid}
    if not (who.role_set & REIDENTIFIERS):
        raise _deny_reid(
            app,
            actor,
            obj,
            "NOT_IN_PROFILE",
            "re-identification needs one of the roles " + ", ".join(sorted(REIDENTIFIERS)),
        )
    reason = _text(reason, "reason")
    with session_scope(app.engine) as s:
        g = s.get(Grant, int(grant_id))
        if g is None or g.kind != "anonymized":
            raise NotFound(f"no anonymized grant {grant_id}")
        version = g.key_version
    rid = app.keyring.record_of_pseudonym(int(grant_id), version, pseudonym)
    with session_scope(app.engine) as s:
        row = (
            s.execute(
                select(TaxReturn.tax_year, Taxpayer.tin_enc)
                .join(Taxpayer, Taxpayer.id == TaxReturn.taxpayer_id)
                .where(TaxReturn.id == rid)
            ).first()
            if rid is not None
            else None
        )
    if row is None:
        raise NotFound(f"no record of grant {grant_id} with that pseudonym")
    tin = app.keyring.decrypt(row.tin_enc, "taxpayer.tin")
    taxpayer = app.keyring.pseudonym(normalize_tin(tin))
    idx = log.record(
        app,
        GrantEvent.REIDENTIFY,
        actor,
        obj,
        {"pseudonym": pseudonym, "taxpayer": taxpayer, "tax_year": row.tax_year, "reason": reason},
    )
    return Reidentified(
        grant_id=int(grant_id),
        pseudonym=pseudonym,
        tin=tin,
        taxpayer=taxpayer,
        tax_year=row.tax_year,
        audit_index=idx,
    )


def _deny_reid(app: App, actor: Actor, obj: dict[str, Any], code: str, text: str) -> AccessDenied:
    idx = None
    with contextlib.suppress(IdrsError):
        idx = log.record(app, GrantEvent.REIDENTIFY, actor, obj, {}, outcome="denied", reasons=[code])
    return AccessDenied([Reason(code, text)], idx)


def rotate_key(app: App, who: Employee, *, grant_id: int, actor: Actor) -> KeyRotated:
    """A new pseudonym key version for one anonymized grant (the grant staff): every
    pseudonym handed out before no longer addresses anything. Recorded."""
    from idrs.people.roles import GRANT_STAFF

    obj = {"grant_id": int(grant_id), "seid": who.seid}
    if not (who.role_set & GRANT_STAFF):
        raise _deny_reid(
            app,
            actor,
            obj,
            "NOT_IN_PROFILE",
            "rotating a grant's key needs one of the roles " + ", ".join(sorted(GRANT_STAFF)),
        )
    with session_scope(app.engine) as s:
        g = s.get(Grant, int(grant_id))
        if g is None or g.kind != "anonymized":
            raise NotFound(f"no anonymized grant {grant_id}")
        new = g.key_version + 1
    idx = log.record(app, GrantEvent.KEY_ROTATE, actor, obj, {"key_version": new})
    with session_scope(app.engine) as s:
        s.execute(update(Grant).where(Grant.id == int(grant_id)).values(key_version=new))
    return KeyRotated(grant_id=int(grant_id), key_version=new, audit_index=idx)
