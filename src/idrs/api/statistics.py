"""Differentially private statistics (``/api/v1/statistics``) under a statistics grant.

``POST /statistics`` takes ``{"group_by", "aggregate", "column", "bounds", "filters",
"epsilon", "grant"}`` and answers ``{"rows", "epsilon_spent", "delta_spent", "budget_left",
"accuracy", ...}``; 403 ``BUDGET_EXHAUSTED`` once the grant's budget cannot pay, 403
``NO_STATISTICS_GRANT`` without an active statistics grant. ``GET /statistics/budget`` shows
the budget left. The logic lives in ``idrs.grants.statistics``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from idrs.api.answers import Answer
from idrs.api.deps import AppDep, EmployeeDep, client_address
from idrs.audit.events import Actor
from idrs.errors import NotFound
from idrs.grants import statistics

router = APIRouter(tags=["statistics"])
SIGNED_IN = {"x-authorization": "signed-in"}


class StatisticsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_by: list[str] = Field(default_factory=list, max_length=statistics.MAX_GROUP_BY,
                                description=", ".join(statistics.GROUP_BY))
    aggregate: Literal["count", "sum", "mean"]
    column: str | None = Field(None, max_length=20, description=", ".join(statistics.COLUMNS))
    bounds: list[int] | None = Field(None, min_length=2, max_length=2,
                                     description="[lo, hi] in whole dollars (sum, mean)")
    filters: dict[str, Any] = Field(default_factory=dict, max_length=12)
    epsilon: float | None = Field(None, description="this query's ε (default 0.1)")
    grant: int | None = Field(None, ge=1, le=2**31 - 1, description="if you hold several")


class StatisticsAnswer(Answer):
    """A differentially private answer. ``query``: the query as parsed (group_by, aggregate,
    column, bounds, filters, epsilon); ``rows``: one per group (the group's values, the noisy
    ``value``, its ``low``/``high`` interval); ``accuracy``: the confidence, each aggregate's
    noise distribution, scale and accuracy, the release threshold and what they mean."""

    grant_id: int
    query: dict[str, Any]
    rows: list[dict[str, Any]]
    epsilon_spent: float
    delta_spent: float
    budget_left: float
    accuracy: dict[str, Any]
    audit_index: int


class Budget(Answer):
    grant_id: int
    epsilon: float
    delta: float | None
    epsilon_spent: float
    delta_spent: float
    budget_left: float


@router.post("/statistics", response_model=StatisticsAnswer, openapi_extra=SIGNED_IN)
def run_statistics(body: StatisticsIn, request: Request, app: AppDep,
                   emp: EmployeeDep) -> dict[str, Any]:
    """One differentially private query over the master file, spent from your grant."""
    actor = Actor(emp.seid, "api", client_address(request))
    return statistics.run(app, emp, body.model_dump(exclude_none=True), actor=actor)


@router.get("/statistics/budget", response_model=Budget, openapi_extra=SIGNED_IN)
def statistics_budget(
    app: AppDep, emp: EmployeeDep,
    grant: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """Your active statistics grant's budget: ε in all, spent and left (δ likewise)."""
    out = statistics.budget(app, emp, grant_id=grant)
    if out is None:
        raise NotFound("you hold no active statistics grant")
    return out.as_dict()
