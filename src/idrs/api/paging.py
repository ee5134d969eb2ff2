"""Pagination for every list answer of the API: ``?limit=&offset=``, with ``next_offset``.

A list route takes ``page: PageDep`` and answers ``paged(items, page, key="alerts")``, which
keeps the route's own list key (the contract's shape) and adds ``"limit"``, ``"offset"``,
``"total"`` and ``"next_offset"`` (null on the last page). ``limit`` is 1..1000 (default 100);
a value outside that range is a 422 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10**9, description="items to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(page_params)]


def paged(items: Sequence[Any], page: Page, *, key: str, **extra: Any) -> dict[str, Any]:
    """``{key: items[offset:offset+limit], "limit", "offset", "total", "next_offset", **extra}``."""
    total = len(items)
    window = list(items[page.offset : page.offset + page.limit])
    nxt = page.offset + len(window)
    return {
        key: window,
        "limit": page.limit,
        "offset": page.offset,
        "total": total,
        "next_offset": nxt if nxt < total else None,
        **extra,
    }
