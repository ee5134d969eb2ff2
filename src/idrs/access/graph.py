"""Pure graph walks of the conflict index (no database): relatives by claim links.

A *claim edge* joins a filer and a dependent they claimed on a return (either direction).
Relatives of an employee are everyone reachable from the employee or their spouses over
claim edges in at most ``depth`` links: children and parents (1), grandchildren, siblings
(through the parent who claimed both), grandparents, co-claimers (2), and so on.
Callers: ``access.conflicts`` (with a database-backed neighbour function) and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

N = TypeVar("N", bound=Hashable)


@dataclass(frozen=True)
class Edge:
    """One link found from ``src`` to ``dst`` with the evidence that made it."""

    src: Any
    dst: Any
    evidence: dict[str, Any]


def bfs_relatives(
    start: Iterable[N],
    neighbours: Callable[[set[N]], Iterable[Edge]],
    depth: int,
    exclude: Iterable[N] = (),
) -> dict[N, tuple[int, list[dict[str, Any]]]]:
    """Everyone within ``depth`` links of ``start``: node → (distance, evidence of the last link).

    ``neighbours(frontier)`` returns the edges leaving a whole frontier at once (one query a
    level). Nodes in ``start`` and ``exclude`` are never reported. Shortest distance wins;
    evidence of every edge reaching a node at that distance is kept.
    """
    seen: set[N] = set(start)
    excluded = set(exclude) | seen
    found: dict[N, tuple[int, list[dict[str, Any]]]] = {}
    frontier: set[N] = set(seen)
    for level in range(1, depth + 1):
        if not frontier:
            break
        nxt: set[N] = set()
        for edge in neighbours(frontier):
            node = edge.dst
            if node in seen and node not in nxt:
                continue
            if node not in excluded:
                dist_ev = found.setdefault(node, (level, []))
                dist_ev[1].append(edge.evidence)
            if node not in seen:
                seen.add(node)
                nxt.add(node)
        frontier = nxt
    return found


def neighbourhood(
    start: Iterable[N], neighbours: Callable[[set[N]], Iterable[Edge]], depth: int
) -> set[N]:
    """Every node within ``depth`` links of ``start`` (start included)."""
    seen: set[N] = set(start)
    frontier = set(seen)
    for _ in range(depth):
        if not frontier:
            break
        nxt = {e.dst for e in neighbours(frontier)} - seen
        seen |= nxt
        frontier = nxt
    return seen
