"""Benchmarks behind ``make bench``. Each ``bench/bench_*.py`` exposes ``run(scale) -> list[dict]``."""

from __future__ import annotations

from typing import Any


def figure(
    what: str, value: float, unit: str, target: str = "-", met: bool | None = None, note: str = ""
) -> dict[str, Any]:
    """One figure as ``python -m bench`` writes it (``note`` only when there is one)."""
    out: dict[str, Any] = {"what": what, "value": value, "unit": unit, "target": target, "met": met}
    if note:
        out["note"] = note
    return out
