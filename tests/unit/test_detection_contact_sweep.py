"""Issue 17.3/17.4: the shape of the work under contacts (``relations.add_contact_sweeps``).

A surge of calls the phone system routes to one representative of a small office (a dozen
quick refund-status calls in a quarter of an hour) is the queue's shape: the caller was chosen
by the queue. It raised ``contact_sweep`` on the independent workload (a false alert). The same
shape under contacts the employee declared is still a sweep.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

import duckdb

from idrs.detection import relations

DAY = date(2026, 4, 7)


def _con(opened_by: str, channel: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE acc (idx BIGINT, seid VARCHAR, day DATE, t TIMESTAMP, taxpayer VARCHAR, "
                "command VARCHAR, outcome VARCHAR, bkind VARCHAR, bid VARCHAR)")
    con.execute("CREATE TABLE basis (kind VARCHAR, basis_id VARCHAR, seid VARCHAR, opened_by VARCHAR, "
                "channel VARCHAR)")
    con.execute("CREATE TABLE emp (seid VARCHAR, unit VARCHAR, role VARCHAR)")
    t0 = datetime(2026, 4, 7, 10, 0)
    idx = 0
    # the surge: 11 accounts, one look each, 70 s apart, for W1
    for k in range(11):
        idx += 1
        by = "W1" if opened_by == "self" else opened_by
        con.execute("INSERT INTO basis VALUES ('contact', ?, 'W1', ?, ?)", [f"K{k}", by, channel])
        con.execute("INSERT INTO acc VALUES (?, 'W1', ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                    [idx, DAY, t0 + timedelta(seconds=70 * k), f"T{k}", f"K{k}"])
    # two peers of the office with an ordinary day (two calls an hour)
    for peer in ("W2", "W3"):
        con.execute("INSERT INTO emp VALUES (?, 'FRB', 'csr')", [peer])
        for k in range(4):
            idx += 1
            bid = f"{peer}-{k}"
            con.execute("INSERT INTO basis VALUES ('contact', ?, ?, 'system:callcenter', 'phone')", [bid, peer])
            con.execute("INSERT INTO acc VALUES (?, ?, ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                        [idx, peer, DAY, t0 + timedelta(minutes=30 * k), f"P{peer}{k}", bid])
    con.execute("INSERT INTO emp VALUES ('W1', 'FRB', 'csr')")
    return con


def _sweeps(con: duckdb.DuckDBPyConnection) -> dict:
    out: dict = defaultdict(list)
    relations.add_contact_sweeps(con, DAY, out, defaultdict(list))
    return {k: [s.name for s in v] for k, v in out.items()}


def test_a_surge_of_routed_calls_is_the_queue_not_a_sweep() -> None:
    assert _sweeps(_con("system:callcenter", "phone")) == {}


def test_the_same_shape_under_contacts_the_employee_could_choose_is_a_sweep() -> None:
    assert _sweeps(_con("self", "visit")) == {("W1", DAY.isoformat()): ["contact_sweep"]}
    # an intake desk's records (a visit someone recorded for the employee) still count
    assert _sweeps(_con("system:intake", "visit")) == {("W1", DAY.isoformat()): ["contact_sweep"]}
