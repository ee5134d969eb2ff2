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
    _today(con)
    return con


def _today(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE today AS SELECT seid, day, count(*) AS calls, "
                "count(DISTINCT taxpayer) AS n FROM acc GROUP BY 1, 2")


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


def test_two_sweepers_of_one_unit_on_one_day_do_not_hide_each_other() -> None:
    """Peers who worked only routed calls count 0; left out, the peer p90 was the other
    sweeper's sitting (the simulator's two sweeps of one day in unit U01 were both missed)."""
    con = _con("self", "visit")
    t0 = datetime(2026, 4, 7, 11, 0)
    idx = 1000
    for k in range(10):  # W4 sweeps too, under walk-ins it declares
        idx += 1
        con.execute("INSERT INTO basis VALUES ('contact', ?, 'W4', 'W4', 'visit')", [f"Q{k}"])
        con.execute("INSERT INTO acc VALUES (?, 'W4', ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                    [idx, DAY, t0 + timedelta(seconds=60 * k), f"Q{k}", f"Q{k}"])
    con.execute("INSERT INTO emp VALUES ('W4', 'FRB', 'csr')")
    for peer in (f"R{i}" for i in range(10)):  # ten colleagues answering routed calls
        con.execute("INSERT INTO emp VALUES (?, 'FRB', 'csr')", [peer])
        for k in range(3):
            idx += 1
            bid = f"{peer}-{k}"
            con.execute("INSERT INTO basis VALUES ('contact', ?, ?, 'system:callcenter', 'phone')", [bid, peer])
            con.execute("INSERT INTO acc VALUES (?, ?, ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                        [idx, peer, DAY, t0 + timedelta(minutes=20 * k), f"T{peer}{k}", bid])
    _today(con)
    key = DAY.isoformat()
    assert _sweeps(con) == {("W1", key): ["contact_sweep"], ("W4", key): ["contact_sweep"]}


def test_two_sweepers_in_an_office_of_eight_do_not_hide_each_other() -> None:
    """With the p90 of seven peers (the busiest of them) as the baseline, W1 and W4 each set
    the other's limit at twice their own sitting (the independent workload, seed 3: both
    sweeps of a front office of eight missed). The median of the peers does not move."""
    con = _con("self", "visit")
    t0 = datetime(2026, 4, 7, 11, 0)
    idx = 1000
    for k in range(10):
        idx += 1
        con.execute("INSERT INTO basis VALUES ('contact', ?, 'W4', 'W4', 'visit')", [f"Q{k}"])
        con.execute("INSERT INTO acc VALUES (?, 'W4', ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                    [idx, DAY, t0 + timedelta(seconds=60 * k), f"Q{k}", f"Q{k}"])
    con.execute("INSERT INTO emp VALUES ('W4', 'FRB', 'csr')")
    for peer in ("R1", "R2", "R3", "R4"):  # with W2 and W3: eight in the office
        con.execute("INSERT INTO emp VALUES (?, 'FRB', 'csr')", [peer])
        for k in range(2):
            idx += 1
            bid = f"{peer}-{k}"
            con.execute("INSERT INTO basis VALUES ('contact', ?, ?, ?, 'visit')", [bid, peer, peer])
            con.execute("INSERT INTO acc VALUES (?, ?, ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                        [idx, peer, DAY, t0 + timedelta(minutes=40 * k), f"T{peer}{k}", bid])
    _today(con)
    key = DAY.isoformat()
    assert _sweeps(con) == {("W1", key): ["contact_sweep"], ("W4", key): ["contact_sweep"]}


def test_a_whole_office_working_a_fast_queue_is_not_a_sweep() -> None:
    """Every one of eight representatives works 9 walk-ins in a quarter of an hour (a
    counter queue): the median rises with them and nobody is singled out."""
    con = _con("self", "visit")
    t0 = datetime(2026, 4, 7, 9, 0)
    idx = 1000
    for peer in ("W2", "W3", "R1", "R2", "R3", "R4", "R5"):
        if peer.startswith("R"):
            con.execute("INSERT INTO emp VALUES (?, 'FRB', 'csr')", [peer])
        for k in range(9):
            idx += 1
            bid = f"{peer}-q{k}"
            con.execute("INSERT INTO basis VALUES ('contact', ?, ?, ?, 'visit')", [bid, peer, peer])
            con.execute("INSERT INTO acc VALUES (?, ?, ?, ?, ?, 'ENMOD', 'allow', 'contact', ?)",
                        [idx, peer, DAY, t0 + timedelta(seconds=90 * k), f"V{peer}{k}", bid])
    _today(con)
    assert _sweeps(con) == {}
