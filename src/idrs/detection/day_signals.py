"""The day-level signals of an employee-day, over the DuckDB tables of a run: repeated
refusals, many employees on one taxpayer, volume against the employee's own days and the
role's, quick sequences, name searches no case or contact followed (and sweeps).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from idrs.detection.signals import VOLUME_MIN, WEIGHTS, Signal, volume_signal

SEQUENCE_GAP_SECONDS = 15
SEQUENCE_MIN = 10
#: how many matches NAMES answers at most (masterfile.commands.names' limit)
NAMES_LIMIT = 25
MANY_WINDOW = timedelta(hours=6)
MANY_MIN = 3
HISTORY_DAYS = 90



def repeated_refusals(con: Any, day0: date, level: dict[tuple[str, str], list[Signal]]) -> None:
    """Three or more refusals on one taxpayer in a day (self-reported ones count too)."""
    for seid, d, tp, idxs in con.execute("""
            SELECT seid, day, taxpayer, idxs FROM (
              SELECT seid, day, taxpayer, list(idx ORDER BY t, idx) AS idxs, min(t) AS first
              FROM cand WHERE outcome = 'deny' AND taxpayer IS NOT NULL AND taxpayer <> ''
                AND day >= ?
              GROUP BY 1, 2, 3 HAVING count(*) >= 3) ORDER BY first, idxs[1]""",
                                         [day0]).fetchall():
        level[(seid, d.isoformat())].append(Signal(
            "repeated_refusals", WEIGHTS["repeated_refusals"],
            {"refusals": len(idxs), "audit_indexes": list(idxs)[:20]}, tp))


def many_employees(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Three or more employees on one taxpayer within six hours, unexplained: once per
    employee-day and taxpayer, at the first such access (linear time per taxpayer)."""
    rows = con.execute("""
        SELECT taxpayer, seid, epoch_us(t), idx, day FROM cand
        WHERE taxpayer IS NOT NULL AND taxpayer IN (
          SELECT taxpayer FROM cand WHERE taxpayer IS NOT NULL
          GROUP BY 1 HAVING count(DISTINCT seid) >= ?)
        ORDER BY taxpayer, t, idx""", [MANY_MIN]).fetchall()
    window = MANY_WINDOW // timedelta(microseconds=1)
    found: list[tuple[int, int, str, date, str, int]] = []
    i = 0
    while i < len(rows):
        tp = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == tp:
            j += 1
        items = rows[i:j]
        i = j
        seen: Counter[str] = Counter()
        lo = 0
        marked = -1
        crowd: dict[int, int] = {}
        for hi, cur in enumerate(items):
            seen[cur[1]] += 1
            while cur[2] - items[lo][2] > window:
                seen[items[lo][1]] -= 1
                if seen[items[lo][1]] == 0:
                    del seen[items[lo][1]]
                lo += 1
            if len(seen) >= MANY_MIN:
                for k in range(max(lo, marked + 1), hi + 1):
                    crowd[k] = len(seen)
                marked = hi
        done: set[tuple[str, date]] = set()
        for k, n in crowd.items():
            _, seid, t_us, idx, d = items[k]
            if d < day0 or (seid, d) in done:
                continue
            done.add((seid, d))
            found.append((t_us, idx, seid, d, tp, n))
    for _, idx, seid, d, tp, n in sorted(found):
        by_day[(seid, d.isoformat())].append(Signal(
            "many_employees", WEIGHTS["many_employees"],
            {"audit_index": idx, "employees_within_6h": n}, tp))


def volume(con: Any, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Distinct taxpayers per employee-day against the employee's own days in the
    HISTORY_DAYS before it and the other employees of the role in those days and that day
    (only days above VOLUME_MIN can fire). The p99 is :func:`signals.percentile`'s."""
    rows = con.execute(f"""
        WITH c AS (SELECT t.seid, t.day, t.n, COALESCE(e.role, '') AS role FROM today t
                   LEFT JOIN emp e ON e.seid = t.seid WHERE t.n > {VOLUME_MIN}),
        own AS (SELECT c.seid, c.day, list(h.n) AS own FROM c JOIN hist h ON h.seid = c.seid
                AND h.day BETWEEN c.day - {HISTORY_DAYS} AND c.day - 1 GROUP BY 1, 2),
        peer AS (SELECT c.seid, c.day, list_sort(list(h.n)) AS v FROM c
                 JOIN hist h ON h.role = c.role AND h.seid <> c.seid
                  AND h.day BETWEEN c.day - {HISTORY_DAYS} AND c.day GROUP BY 1, 2)
        SELECT c.seid, c.day, c.n, own.own,
               CAST(p.v[least(array_length(p.v), greatest(1, CAST(ceil(0.99::DOUBLE * array_length(p.v)) AS BIGINT)))]
                    AS DOUBLE) AS p99
        FROM c LEFT JOIN own ON own.seid = c.seid AND own.day = c.day
        LEFT JOIN peer p ON p.seid = c.seid AND p.day = c.day
        ORDER BY c.day, c.seid""").fetchall()  # noqa: S608 - constants
    for seid, d, n, own, p99 in rows:
        sig = volume_signal(int(n), [int(x) for x in own or []], float(p99 or 0.0))
        if sig is not None:
            by_day[(seid, d.isoformat())].append(sig)


def sequences(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]]) -> None:
    """Ten or more accounts in a day, each within seconds of the previous one."""
    for seid, d, n, first, last in con.execute(f"""
            SELECT seid, day, count(*), min(idx), max(idx) FROM (
              SELECT seid, t, day, idx, taxpayer,
                     t - lag(t) OVER (PARTITION BY seid ORDER BY t, idx) AS gap,
                     lag(taxpayer) OVER (PARTITION BY seid ORDER BY t, idx) AS prev
              FROM acc WHERE command <> 'NAMES' AND idx NOT IN (
                SELECT idx FROM judged WHERE explained IN ('case', 'unit_workflow')))
            WHERE gap < INTERVAL {SEQUENCE_GAP_SECONDS} SECOND AND taxpayer IS DISTINCT FROM prev
              AND day >= ?
            GROUP BY 1, 2 HAVING count(*) >= {SEQUENCE_MIN} ORDER BY 2, 1""",  # noqa: S608
                                             [day0]).fetchall():
        by_day[(seid, d.isoformat())].append(Signal(
            "sequence", WEIGHTS["sequence"], {"quick_accounts": int(n), "from_index": int(first),
                                              "to_index": int(last)}))


def name_searches(con: Any, day0: date, by_day: dict[tuple[str, str], list[Signal]],
                  idx_day: dict[tuple[str, str], list[int]]) -> None:
    """Name searches no case or contact followed; sweeps: looking at their matches after."""
    rows = con.execute("""
        WITH nm AS (SELECT idx, seid, t, day, unnest(matches) AS m FROM acc2
                    WHERE command = 'NAMES' AND outcome = 'allow' AND day >= ?),
        searched AS (
          SELECT nm.idx, nm.seid, nm.t, nm.day, bool_or(b.basis_id IS NOT NULL) AS followed,
                 list(DISTINCT nm.m) AS ms
          FROM nm LEFT JOIN basis b ON b.seid = nm.seid AND b.taxpayer = nm.m
               AND b.opened_at BETWEEN nm.t - INTERVAL 1 MINUTE AND nm.t + INTERVAL 20 MINUTE
          GROUP BY 1, 2, 3, 4),
        -- a search whose matches filled the list (NAMES answers at most NAMES_LIMIT: a common
        -- name in a small town) may have missed the caller: any basis the employee opened in
        -- the window counts as its follow-up
        lone AS (SELECT * FROM searched s WHERE NOT followed AND NOT (
          array_length(s.ms) >= ? AND EXISTS (SELECT 1 FROM basis b WHERE b.seid = s.seid
            AND b.opened_at BETWEEN s.t - INTERVAL 1 MINUTE AND s.t + INTERVAL 20 MINUTE))),
        hits AS (
          SELECT l.idx, list(c.idx ORDER BY c.t, c.idx) AS hits
          FROM (SELECT idx, seid, t, unnest(ms) AS m FROM lone) l
          JOIN cand c ON c.seid = l.seid AND c.taxpayer = l.m
               AND c.t >= l.t AND c.t - l.t <= INTERVAL 1 HOUR
          GROUP BY 1)
        SELECT l.idx, l.seid, l.day, array_length(l.ms), h.hits FROM lone l LEFT JOIN hits h ON h.idx = l.idx
        ORDER BY l.t, l.idx""", [day0, NAMES_LIMIT]).fetchall()
    for idx, seid, d, matches, hits in rows:
        key = (seid, d.isoformat())
        by_day[key].append(Signal("name_search_no_followup", WEIGHTS["name_search_no_followup"],
                                  {"audit_index": idx, "matches": int(matches)}))
        idx_day[key].append(idx)
        if hits:
            by_day[key].append(Signal("sweep", WEIGHTS["sweep"],
                                      {"audit_index": idx, "looked_at_matches": list(hits)[:20]}))

