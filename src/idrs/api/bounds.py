"""Bounds of the numbers the API takes: every integer and date an interface passes on is one
the databases and Python's dates can hold, so an extreme value is a 422 naming the field,
never a 500 from deep inside (SQLite and PostgreSQL store at most a signed 64-bit integer;
``date.max`` plus a day overflows).

Callers: the route signatures and request models of ``idrs.api`` (and the pages' forms).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from annotated_types import Interval
from fastapi import Path
from pydantic import Field

#: the largest integer SQLite's INTEGER and PostgreSQL's BIGINT hold
MAX_DB_INT = 2**63 - 1
#: the dates a request may name: wide enough for any tax record, narrow enough that a day or
#: a year either side of it stays a date
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)

#: a row id in a path (adjustment, grant, agreement, notice, profile change)
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="a positive 64-bit id")]
#: an integer field of a request body stored as such
DbInt = Annotated[int, Field(ge=-MAX_DB_INT, le=MAX_DB_INT)]
#: a count or index in a request body (never negative)
DbCount = Annotated[int, Field(ge=0, le=MAX_DB_INT)]
#: a date a request names (a field or a query parameter)
BoundedDate = Annotated[date, Interval(ge=MIN_DATE, le=MAX_DATE)]
#: a moment a request names
BoundedDatetime = Annotated[
    datetime,
    Interval(ge=datetime(1900, 1, 1, tzinfo=UTC), le=datetime(2999, 12, 31, tzinfo=UTC)),
]

