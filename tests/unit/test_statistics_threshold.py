"""The key-set threshold of a statistics query (grants.statistics._threshold): the same
threshold as OpenDP's bisection, accepted only on OpenDP's δ, over real OpenDP measurements."""

from __future__ import annotations

import math

import polars as pl
import pytest

from idrs.grants import statistics


def _frame(n: int = 3000) -> pl.DataFrame:
    return statistics.frame_of(pl.DataFrame({
        "tax_year": [2022 + i % 2 for i in range(n)],
        "filing_status": ["S"] * n,
        "state": ["OH"] * n,
        "zip": [f"{450 + i % 7}01" for i in range(n)],
        "agi_cents": [i * 1000 for i in range(n)],
        "wages_cents": [None] * n, "refund_cents": [None] * n, "tax_cents": [0] * n,
        "adoption": [0] * n,
    }, schema={"tax_year": pl.Int64, "filing_status": pl.Utf8, "state": pl.Utf8,
               "zip": pl.Utf8, "agi_cents": pl.Int64, "wages_cents": pl.Int64,
               "refund_cents": pl.Int64, "tax_cents": pl.Int64, "adoption": pl.Int64}))


@pytest.mark.parametrize("body", [
    {"group_by": ["zip3"], "aggregate": "count", "epsilon": 1.0},
    {"group_by": ["zip3", "tax_year"], "aggregate": "count", "epsilon": 0.05},
    {"group_by": ["tax_year"], "aggregate": "sum", "column": "agi", "bounds": [0, 10_000],
     "epsilon": 0.3},
])
def test_the_threshold_is_opendps_bisection(monkeypatch, body):
    dp = statistics._opendp()
    seen: list[tuple[int, int]] = []
    real = statistics._threshold

    def both(delta_at, target, scale):
        t = real(delta_at, target, scale)
        seen.append((t, int(dp.binary_search(lambda x: delta_at(x) < target, T=int))))
        return t

    monkeypatch.setattr(statistics, "_threshold", both)
    q = statistics.parse_query(body)
    rel = statistics.prepare(_frame(), q)
    try:
        threshold = next(r["threshold"] for r in rel.summary if r.get("threshold") is not None)
    finally:
        rel.close()
    assert seen and all(t == ref for t, ref in seen)
    assert threshold == seen[-1][0]  # the measurement released is cut at that threshold


def test_a_threshold_far_from_the_extrapolation_is_left_to_opendp(monkeypatch):
    """δ that does not decay at the noise scale: the walk gives up and bisection decides."""
    calls: list[int] = []

    def delta_at(t: int) -> float:
        calls.append(t)
        return 1.0 if t < 5000 else 1e-12

    t = statistics._threshold(delta_at, 1e-8, 1.0)
    assert t == 5000
    # and a δ one below the answer that would pass is never skipped: the smallest wins
    assert statistics._threshold(lambda t: math.exp(-t / 3.0), 1e-8, 3.0) == math.floor(
        3.0 * math.log(1e8)) + 1
