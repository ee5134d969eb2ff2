"""Explain each research access by its basis: assigned or routed by someone else (case,
contact), a walk-in the employee declared, the unit's review workflow, collaboration; what no
basis explains (refusals, name searches, unexplained accesses) is left for scoring (DuckDB
table ``acc2``).
"""

from __future__ import annotations

from typing import Any


def explain_accesses(con: Any, start: int) -> dict[str, int]:
    """View ``acc`` (research entries), table ``judged`` (each one's explanation, if any),
    table ``acc2`` (those no basis explains: refusals, name searches, unexplained accesses,
    with their basis); count them (entries from ``start`` on: the context read again is not
    counted)."""
    con.execute("""
        CREATE OR REPLACE VIEW acc AS
        SELECT idx, actor AS seid, t, day, command, taxpayer, outcome, reasons, matches, bkind, bid
        FROM ev WHERE type = 'access:research:decide' AND actor <> 'anonymous'""")
    # the unit's review workflow: a manager's own case on a taxpayer on whom a member of the
    # unit already had a case assigned by someone else
    con.execute("""
        CREATE OR REPLACE TABLE workflow AS
        SELECT DISTINCT a.idx FROM acc a
        JOIN basis b ON b.kind = 'case' AND b.basis_id = a.bid AND b.opened_by = a.seid
        JOIN emp e1 ON e1.seid = a.seid AND e1.manager
        JOIN basis b2 ON b2.kind = 'case' AND b2.taxpayer = a.taxpayer AND b2.seid <> a.seid
             AND b2.opened_by <> b2.seid AND b2.open_index < a.idx
        JOIN emp e2 ON e2.seid = b2.seid AND e2.unit = e1.unit
        WHERE a.outcome = 'allow' AND a.command <> 'NAMES' AND a.bkind = 'case'""")
    con.execute("""
        CREATE OR REPLACE TABLE judged AS
        SELECT a.idx, b.opened_by, b.channel, b.open_index,
          CASE
            WHEN a.outcome <> 'allow' OR a.command = 'NAMES' THEN NULL
            WHEN b.basis_id IS NULL THEN 'unknown_basis'
            WHEN b.opened_by <> a.seid AND a.bkind = 'case' THEN 'case'
            WHEN b.opened_by <> a.seid THEN 'contact'
            WHEN a.bkind = 'contact' AND b.channel = 'visit' THEN 'walk_in'
            WHEN w.idx IS NOT NULL THEN 'unit_workflow'
            ELSE NULL END AS explained,
          a.outcome = 'allow' AS allowed, a.command = 'NAMES' AS names
        FROM acc a LEFT JOIN basis b ON b.kind = a.bkind AND b.basis_id = a.bid
        LEFT JOIN workflow w ON w.idx = a.idx""")
    (n, case, contact, walk_in, workflow, names, unexplained, refused) = con.execute("""
        SELECT count(*), count(*) FILTER (explained = 'case'), count(*) FILTER (explained = 'contact'),
               count(*) FILTER (explained = 'walk_in'),
               count(*) FILTER (explained = 'unit_workflow'),
               count(*) FILTER (explained IS NULL AND allowed AND names),
               count(*) FILTER (explained IS NULL AND allowed AND NOT names),
               count(*) FILTER (NOT allowed)
        FROM judged WHERE idx >= ?""", [start]).fetchone()
    # collaboration: a case access on a taxpayer someone else also has a case on
    collab = con.execute("""
        WITH tc AS (SELECT taxpayer, count(DISTINCT seid) AS seids, min(seid) AS one FROM basis
                    WHERE kind = 'case' GROUP BY 1),
        x AS (SELECT a.taxpayer, a.seid, count(*) AS n FROM judged j JOIN acc a ON a.idx = j.idx
              WHERE j.explained = 'case' AND j.idx >= ? GROUP BY 1, 2)
        SELECT COALESCE(sum(n), 0) FROM x JOIN tc ON tc.taxpayer = x.taxpayer
        WHERE tc.seids > 1 OR tc.one <> x.seid""", [start]).fetchone()[0]
    con.execute("""
        CREATE OR REPLACE TABLE acc2 AS
        SELECT a.*, j.opened_by, j.channel, j.open_index, j.explained
        FROM acc a JOIN judged j ON j.idx = a.idx WHERE j.explained IS NULL""")
    return {"accesses": int(n), "explained_case": int(case), "explained_contact": int(contact),
            "explained_walk_in": int(walk_in),
            "explained_unit_workflow": int(workflow), "explained_collaboration": int(collab),
            "name_searches": int(names), "unexplained": int(unexplained), "refused": int(refused)}

