"""The conflict index: per employee, the taxpayers they must never open, with evidence.

Computed from the master file in both directions (a link written only on the other
person's return counts as much as one on the employee's own):

- ``CONFLICT_SELF``      the employee's own TIN;
- ``CONFLICT_SPOUSE``    anyone on a joint/separate return with the employee in any year;
- ``CONFLICT_RELATIVE``  claim links (dependents) from the employee or a spouse, up to
                         ``settings.relative_depth`` links (children, parents, in-laws,
                         siblings, grandchildren ...);
- ``CONFLICT_HOUSEHOLD`` same normalized address (``norm_key``) in the same tax year;
- ``CONFLICT_FINANCIAL`` refund to the same bank account (``bank_index``);
- ``CONFLICT_BUSINESS``  partners in one partnership (K-1 EIN); the owner of a business
                         that employed the employee (W-2 EIN = Schedule C EIN), and the
                         reverse (people the employee's business employed). Not co-workers
                         at a large employer, not clients of the same preparer;
- ``CONFLICT_DECLARED``  relationships the employee declared.

Co-workers, protected employee accounts and sensitive accounts depend on live employee
and marker data and are decided at request time by ``access.facts``.

Callers: ``refresh_for_taxpayers`` after every write to the master file (importer, seed,
adjustments of an entity), ``refresh_for_employees`` after an employee is created or their
TIN changes and after a declaration, ``rebuild_all`` from the operator. Evidence holds
return ids, tax years, field names and pseudonyms: never a plaintext identifier.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from idrs.access.graph import Edge, bfs_relatives, neighbourhood
from idrs.access.models import ConflictEntry
from idrs.access.sqlraw import execute, execute_many, fetch
from idrs.context import App
from idrs.db import db_datetime, session_scope
from idrs.people.models import Employee

RELATIONSHIP_CODES = (
    "CONFLICT_SELF",
    "CONFLICT_SPOUSE",
    "CONFLICT_RELATIVE",
    "CONFLICT_HOUSEHOLD",
    "CONFLICT_FINANCIAL",
    "CONFLICT_BUSINESS",
    "CONFLICT_DECLARED",
)
#: evidence items kept per (taxpayer, code); the rest is counted, not stored
MAX_EVIDENCE = 8
#: list parameters per statement (well under SQLite's and PostgreSQL's limits)
CHUNK = 500
#: above this many changed taxpayers a refresh recomputes every employee (cheaper than walking)
BULK_THRESHOLD = 5000


@dataclass
class ConflictSet:
    """The computed conflicts of one employee: tin_index → code → evidence list."""

    by_tin: dict[bytes, dict[str, list[dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def add(self, tin_index: bytes, code: str, evidence: dict[str, Any]) -> None:
        items = self.by_tin[tin_index].setdefault(code, [])
        if len(items) < MAX_EVIDENCE:
            items.append(evidence)

    def codes_for(self, tin_index: bytes) -> set[str]:
        return set(self.by_tin.get(tin_index, {}))

    def rows(self, employee_id: int) -> list[dict[str, Any]]:
        return [
            {
                "employee_id": employee_id,
                "tin_index": tin,
                "code": code,
                "evidence": json.dumps(ev, sort_keys=True, separators=(",", ":")),
            }
            for tin, codes in self.by_tin.items()
            for code, ev in codes.items()
        ]


# -- the queries (plain SQL on the driver connection; each follows one indexed column) -------

Q_TAXPAYER_ID = "SELECT id FROM taxpayer WHERE tin_index = :t"
Q_SPOUSE_OWN = (
    "SELECT id, tax_year, spouse_tin_index FROM tax_return"
    " WHERE taxpayer_id = :p AND spouse_tin_index IS NOT NULL"
)
Q_SPOUSE_REV = (
    "SELECT r.id, r.tax_year, tp.tin_index FROM tax_return r"
    " JOIN taxpayer tp ON tp.id = r.taxpayer_id WHERE r.spouse_tin_index = :t"
)
Q_SPOUSE_EDGES_OWN = (
    "SELECT tp.tin_index, r.id, r.tax_year, r.spouse_tin_index FROM taxpayer tp"
    " JOIN tax_return r ON r.taxpayer_id = tp.id"
    " WHERE tp.tin_index IN ({ts}) AND r.spouse_tin_index IS NOT NULL"
)
Q_SPOUSE_EDGES_REV = (
    "SELECT tp.tin_index, r.id, r.tax_year, r.spouse_tin_index FROM tax_return r"
    " JOIN taxpayer tp ON tp.id = r.taxpayer_id WHERE r.spouse_tin_index IN ({ts})"
)
Q_CLAIMS = (
    "SELECT tp.tin_index, r.id, r.tax_year, d.tin_index FROM taxpayer tp"
    " JOIN tax_return r ON r.taxpayer_id = tp.id JOIN dependent d ON d.return_id = r.id"
    " WHERE tp.tin_index IN ({ts})"
)
Q_CLAIMED_BY = (
    "SELECT d.tin_index, r.id, r.tax_year, tp.tin_index FROM dependent d"
    " JOIN tax_return r ON r.id = d.return_id JOIN taxpayer tp ON tp.id = r.taxpayer_id"
    " WHERE d.tin_index IN ({ts})"
)
Q_HOUSEHOLD = (
    "SELECT tp.tin_index, a2.tax_year, a2.source, a2.id FROM address_record a1"
    " JOIN address_record a2 ON a2.norm_key = a1.norm_key AND a2.tax_year = a1.tax_year"
    " JOIN taxpayer tp ON tp.id = a2.taxpayer_id"
    " WHERE a1.taxpayer_id = :p AND a1.tax_year IS NOT NULL AND a2.taxpayer_id <> :p"
)
Q_FINANCIAL = (
    "SELECT tp.tin_index, r2.id, r2.tax_year, r.tax_year FROM tax_return r"
    " JOIN tax_return r2 ON r2.bank_index = r.bank_index"
    " JOIN taxpayer tp ON tp.id = r2.taxpayer_id"
    " WHERE r.taxpayer_id = :p AND r.bank_index IS NOT NULL AND r2.taxpayer_id <> :p"
)
Q_PARTNERS = (
    "SELECT tp.tin_index, r2.id, r2.tax_year FROM tax_return r"
    " JOIN k1 k ON k.return_id = r.id JOIN k1 k2 ON k2.entity_ein_index = k.entity_ein_index"
    " JOIN tax_return r2 ON r2.id = k2.return_id JOIN taxpayer tp ON tp.id = r2.taxpayer_id"
    " WHERE r.taxpayer_id = :p AND r2.taxpayer_id <> :p"
)
Q_EMPLOYER_OWNER = (
    "SELECT tp.tin_index, r2.id, r2.tax_year, r.tax_year FROM tax_return r"
    " JOIN w2 w ON w.return_id = r.id JOIN schedule_c c ON c.ein_index = w.employer_ein_index"
    " JOIN tax_return r2 ON r2.id = c.return_id JOIN taxpayer tp ON tp.id = r2.taxpayer_id"
    " WHERE r.taxpayer_id = :p AND r2.taxpayer_id <> :p"
)
Q_EMPLOYED_BY_ME = (
    "SELECT tp.tin_index, r2.id, r2.tax_year, r.tax_year FROM tax_return r"
    " JOIN schedule_c c ON c.return_id = r.id JOIN w2 w ON w.employer_ein_index = c.ein_index"
    " JOIN tax_return r2 ON r2.id = w.return_id JOIN taxpayer tp ON tp.id = r2.taxpayer_id"
    " WHERE r.taxpayer_id = :p AND c.ein_index IS NOT NULL AND r2.taxpayer_id <> :p"
)
Q_DECLARED = "SELECT tin_index, kind, id FROM declared_relationship WHERE employee_id = :e"
Q_EMPLOYEES_BY_TIN = "SELECT id FROM employee WHERE tin_index IN ({ts})"
Q_EMPLOYEES_NAMING = "SELECT DISTINCT employee_id FROM access_conflict WHERE tin_index IN ({ts})"
Q_EMPLOYEE_TINS = "SELECT id, tin_index FROM employee WHERE id IN ({ids})"


class _Links:
    """The master-file links of one person, read through ``conn`` (pseudonyms via ``app``)."""

    def __init__(self, conn: Connection | Session, app: App):
        self.conn = conn
        self.app = app

    def pn(self, tin_index: bytes) -> str:
        # evidence names people by a pseudonym of their index (no plaintext at hand or stored)
        return "tp:" + self.app.keyring.blind_index(tin_index.hex(), "evidence").hex()[:16]

    def taxpayer_id(self, tin_index: bytes) -> int | None:
        rows = fetch(self.conn, Q_TAXPAYER_ID, {"t": tin_index})
        return int(rows[0][0]) if rows else None

    def spouses(self, tin_index: bytes, pid: int | None) -> list[Edge]:
        out: list[Edge] = []
        if pid is not None:
            for rid, year, sp in fetch(self.conn, Q_SPOUSE_OWN, {"p": pid}):
                out.append(
                    Edge(
                        tin_index,
                        sp,
                        {
                            "return_id": rid,
                            "tax_year": year,
                            "field": "spouse_tin",
                            "filed_by": "employee",
                        },
                    )
                )
        for rid, year, filer in fetch(self.conn, Q_SPOUSE_REV, {"t": tin_index}):
            out.append(
                Edge(
                    tin_index,
                    filer,
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "field": "spouse_tin",
                        "filed_by": self.pn(filer),
                    },
                )
            )
        return out

    def _chunked(self, sql: str, frontier: set[bytes]) -> list[tuple[Any, ...]]:
        ts = list(frontier)
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(ts), CHUNK):
            rows.extend(fetch(self.conn, sql, lists={"ts": ts[i : i + CHUNK]}))
        return rows

    def claim_edges(self, frontier: set[bytes]) -> list[Edge]:
        out: list[Edge] = []
        for filer, rid, year, dep in self._chunked(Q_CLAIMS, frontier):
            out.append(
                Edge(
                    filer,
                    dep,
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "field": "dependents[].tin",
                        "filed_by": self.pn(filer),
                    },
                )
            )
        for dep, rid, year, filer in self._chunked(Q_CLAIMED_BY, frontier):
            out.append(
                Edge(
                    dep,
                    filer,
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "field": "dependents[].tin",
                        "filed_by": self.pn(filer),
                    },
                )
            )
        return out

    def spouse_edges(self, frontier: set[bytes]) -> list[Edge]:
        out: list[Edge] = []
        for filer, rid, year, sp in self._chunked(Q_SPOUSE_EDGES_OWN, frontier):
            out.append(Edge(filer, sp, {"return_id": rid, "tax_year": year}))
        for filer, rid, year, sp in self._chunked(Q_SPOUSE_EDGES_REV, frontier):
            out.append(Edge(sp, filer, {"return_id": rid, "tax_year": year}))
        return out

    def direct(self, pid: int) -> list[tuple[bytes, str, dict[str, Any]]]:
        """Household, financial and business links of the taxpayer ``pid`` (one hop)."""
        c = self.conn
        out: list[tuple[bytes, str, dict[str, Any]]] = []
        for tin, year, source, aid in fetch(c, Q_HOUSEHOLD, {"p": pid}):
            out.append(
                (
                    tin,
                    "CONFLICT_HOUSEHOLD",
                    {
                        "address_id": aid,
                        "tax_year": year,
                        "field": "address",
                        "source": source,
                        "filed_by": self.pn(tin),
                    },
                )
            )
        for tin, rid, year, own_year in fetch(c, Q_FINANCIAL, {"p": pid}):
            out.append(
                (
                    tin,
                    "CONFLICT_FINANCIAL",
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "own_tax_year": own_year,
                        "field": "refund.direct_deposit",
                        "filed_by": self.pn(tin),
                    },
                )
            )
        for tin, rid, year in fetch(c, Q_PARTNERS, {"p": pid}):
            out.append(
                (
                    tin,
                    "CONFLICT_BUSINESS",
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "field": "k1[].entity_ein",
                        "filed_by": self.pn(tin),
                    },
                )
            )
        for tin, rid, year, own_year in fetch(c, Q_EMPLOYER_OWNER, {"p": pid}):
            out.append(
                (
                    tin,
                    "CONFLICT_BUSINESS",
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "own_tax_year": own_year,
                        "field": "w2[].employer_ein=schedule_c[].ein",
                        "filed_by": self.pn(tin),
                    },
                )
            )
        for tin, rid, year, own_year in fetch(c, Q_EMPLOYED_BY_ME, {"p": pid}):
            out.append(
                (
                    tin,
                    "CONFLICT_BUSINESS",
                    {
                        "return_id": rid,
                        "tax_year": year,
                        "own_tax_year": own_year,
                        "field": "schedule_c[].ein=w2[].employer_ein",
                        "filed_by": self.pn(tin),
                    },
                )
            )
        return out


def conflicts_of(
    conn: Connection | Session, app: App, *, employee_id: int, tin_index: bytes | None
) -> ConflictSet:
    """Compute (without storing) the relationship conflicts of one employee. Reads only."""
    result = ConflictSet()
    links = _Links(conn, app)
    for tin, kind, did in fetch(conn, Q_DECLARED, {"e": employee_id}):
        result.add(
            tin,
            "CONFLICT_DECLARED",
            {"declared_id": did, "kind": kind, "field": "declared_relationship"},
        )
    if tin_index is None:
        return result
    result.add(tin_index, "CONFLICT_SELF", {"field": "employee.tin"})
    pid = links.taxpayer_id(tin_index)
    spouses: set[bytes] = set()
    for edge in links.spouses(tin_index, pid):
        if edge.dst != tin_index:
            spouses.add(edge.dst)
            result.add(edge.dst, "CONFLICT_SPOUSE", edge.evidence)
    relatives = bfs_relatives(
        {tin_index} | spouses, links.claim_edges, app.settings.relative_depth, exclude=()
    )
    for tin, (dist, evidence) in relatives.items():
        for ev in evidence:
            result.add(tin, "CONFLICT_RELATIVE", {**ev, "links": dist})
    # relatives reached from a spouse only are still relatives; the spouse's own claim of the
    # employee (or the reverse) is already covered by the spouse code
    if pid is not None:
        for tin, code, ev in links.direct(pid):
            if tin != tin_index:
                result.add(tin, code, ev)
    return result


def _all_edges(links: _Links) -> Callable[[set[bytes]], list[Edge]]:
    def edges(frontier: set[bytes]) -> list[Edge]:
        return links.claim_edges(frontier) + links.spouse_edges(frontier)

    return edges


def affected_employees(
    conn: Connection | Session, app: App, tin_indexes: Iterable[bytes]
) -> set[int]:
    """Employees whose conflict set may change when these taxpayers' records change.

    Everyone within relative_depth + 1 claim/spouse links, one direct link (household,
    bank, business), and everyone whose index already names one of these taxpayers.
    """
    tins = set(tin_indexes)
    if not tins:
        return set()
    links = _Links(conn, app)
    near = neighbourhood(tins, _all_edges(links), app.settings.relative_depth + 1)
    for t in tins:
        pid = links.taxpayer_id(t)
        if pid is not None:
            near |= {tin for tin, _c, _e in links.direct(pid)}
    ids: set[int] = set()
    near_list = list(near)
    for i in range(0, len(near_list), 500):
        ids |= {
            int(r[0]) for r in fetch(conn, Q_EMPLOYEES_BY_TIN, lists={"ts": near_list[i : i + 500]})
        }
    tin_list = list(tins)
    for i in range(0, len(tin_list), 500):
        ids |= {
            int(r[0]) for r in fetch(conn, Q_EMPLOYEES_NAMING, lists={"ts": tin_list[i : i + 500]})
        }
    return ids


def store_many(
    conn: Connection | Session, app: App, results: list[tuple[int, bytes | None, ConflictSet]]
) -> None:
    """Replace the stored index rows of these employees (within the caller's transaction)."""
    if not results:
        return
    ids = [eid for eid, _t, _r in results]
    execute(conn, "DELETE FROM access_conflict WHERE employee_id IN ({ids})", lists={"ids": ids})
    execute(
        conn, "DELETE FROM access_conflict_state WHERE employee_id IN ({ids})", lists={"ids": ids}
    )
    rows = [row for eid, _t, result in results for row in result.rows(eid)]
    execute_many(
        conn,
        "INSERT INTO access_conflict (employee_id, tin_index, code, evidence)"
        " VALUES (:employee_id, :tin_index, :code, :evidence)",
        rows,
    )
    now = app.clock.now()
    dialect = (conn.get_bind() if isinstance(conn, Session) else conn).dialect.name
    stamp = db_datetime(dialect, now)
    execute_many(
        conn,
        "INSERT INTO access_conflict_state (employee_id, tin_index, computed_at)"
        " VALUES (:employee_id, :tin_index, :computed_at)",
        [{"employee_id": eid, "tin_index": tin, "computed_at": stamp} for eid, tin, _r in results],
    )


def refresh_for_employees(
    session: Session | Connection, app: App, employee_ids: Iterable[int]
) -> int:
    """Recompute and store the index of these employees (caller commits). Returns how many."""
    ids = sorted(set(employee_ids))
    n = 0
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        results = [
            (int(eid), tin, conflicts_of(session, app, employee_id=int(eid), tin_index=tin))
            for eid, tin in fetch(session, Q_EMPLOYEE_TINS, lists={"ids": chunk})
        ]
        store_many(session, app, results)
        n += len(results)
    return n


def refresh_for_taxpayers(
    session: Session | Connection, app: App, tin_indexes: Iterable[bytes]
) -> int:
    """Keep the index current after the master file changed for these taxpayers.

    Call AFTER writing the new records, in the same transaction (so a newly imported joint
    return blocks at once, and a removed link is found through the rows it left behind).
    Returns the number of employees recomputed. A bulk change (more than
    ``BULK_THRESHOLD`` taxpayers) recomputes every employee instead (same transaction).
    """
    tins = set(tin_indexes)
    if len(tins) > BULK_THRESHOLD:
        all_ids = [int(r[0]) for r in fetch(session, "SELECT id FROM employee")]
        return refresh_for_employees(session, app, all_ids)
    return refresh_for_employees(session, app, affected_employees(session, app, tins))


def refresh_after_write(
    session: Session | Connection, app: App, tin_indexes: Iterable[bytes] | None
) -> int:
    """After a master-file write: refresh for these taxpayers, or everyone when ``None``."""
    if tin_indexes is None:
        all_ids = [int(r[0]) for r in fetch(session, "SELECT id FROM employee")]
        return refresh_for_employees(session, app, all_ids)
    return refresh_for_taxpayers(session, app, tin_indexes)


def rebuild_all(app: App, batch: int = 500) -> int:
    """Recompute the whole index (operator command, after bulk loads). Returns employees done."""
    with session_scope(app.engine) as session:
        ids = list(session.execute(select(Employee.id).order_by(Employee.id)).scalars())
    done = 0
    for i in range(0, len(ids), batch):
        with session_scope(app.engine) as session:
            done += refresh_for_employees(session, app, ids[i : i + batch])
    return done


def stored_for(
    conn: Connection | Session, employee_id: int, tin_index: bytes
) -> dict[str, list[Any]]:
    """The stored conflict codes (with evidence) of one employee for one taxpayer."""
    rows = conn.execute(
        select(ConflictEntry.code, ConflictEntry.evidence).where(
            ConflictEntry.employee_id == employee_id, ConflictEntry.tin_index == tin_index
        )
    )
    return {code: json.loads(ev) for code, ev in rows}
