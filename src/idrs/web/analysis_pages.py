"""The analyst's page (issue 15.4): ``/analysis``.

An outside analyst under an anonymized grant samples k-anonymous records (by pseudonym, with
filters on generalized attributes); under a statistics grant they run a differentially
private query with the budget left shown, and see the answer as a table and a chart with its
error bars (OpenDP's accuracy at the stated confidence). The form fields never carry an
identifier: no TIN, name or address is asked for, and the app-wide guard refuses one from an
anonymized or statistics principal all the same (api/anonymized.no_identifiers).

Each call goes through ``grants.anonymized.list_records`` or ``grants.statistics.run``,
which check the grant, spend, record and commit exactly as over the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from idrs.audit.events import Actor
from idrs.errors import AccessDenied, IdrsError, ValidationFailed
from idrs.grants import anonymized, statistics
from idrs.web.render import WebRoute, page, posted
from idrs.web.security import WebUser, app_of, client_address, current_user

router = APIRouter(route_class=WebRoute, include_in_schema=False)
SIGNED_IN = {"x-authorization": "signed-in"}
#: the record filters of the sampling form (form field → filter)
RECORD_FIELDS = {"r_year": "tax_year", "r_status": "filing_status", "r_state": "state",
                 "r_zip3": "zip3", "r_band": "agi_band"}
#: the statistics form's filters (form field → filter)
STAT_FILTERS = {"s_year": "tax_year", "s_status": "filing_status", "s_state": "state",
                "s_band": "agi_band"}


def _actor(request: Request, user: WebUser) -> Actor:
    return Actor(user.seid, "web", client_address(request))


def _context(request: Request, user: WebUser, **extra: Any) -> dict[str, Any]:
    app = app_of(request)
    return {
        "budget": statistics.budget(app, user.employee),
        "group_by": statistics.GROUP_BY,
        "columns": statistics.COLUMNS,
        "aggregates": statistics.AGGREGATES,
        "statuses": statistics.PUBLIC_KEYS["filing_status"],
        "bands": statistics.AGI_BANDS,
        "default_epsilon": statistics.DEFAULT_EPSILON,
        "records": None,
        "answer": None,
        "chart": None,
        "problem": None,
        "form": {},
        **extra,
    }


@router.get("/analysis", openapi_extra=SIGNED_IN)
async def analysis_page(request: Request) -> HTMLResponse:
    user = current_user(request)
    ctx = await run_in_threadpool(lambda: _context(request, user))
    return page(request, "analysis.html", user, **ctx)


def _int(form: dict[str, str], field: str, default: int, lo: int, hi: int) -> int:
    text = (form.get(field) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not lo <= int(text) <= hi:
        raise ValidationFailed([f"{field}: a whole number from {lo} to {hi}"])
    return int(text)


@router.post("/analysis/records", openapi_extra=SIGNED_IN)
async def analysis_records(request: Request) -> HTMLResponse:
    """A random sample of released records of the caller's anonymized grant."""
    user, form = await posted(request)
    app = app_of(request)
    filters = {f: form.get(field, "").strip() or None for field, f in RECORD_FIELDS.items()}

    def work() -> dict[str, Any]:
        limit = _int(form, "r_limit", 20, 1, anonymized.MAX_LIMIT)
        return anonymized.list_records(app, user.employee, filters=filters, limit=limit,
                                       sample=True, actor=_actor(request, user))

    return await _answer(request, user, form, work, "records")


@router.post("/analysis/statistics", openapi_extra=SIGNED_IN)
async def analysis_statistics(request: Request) -> HTMLResponse:
    """One differentially private query; the answer as a table and a chart with error bars."""
    user, form = await posted(request)
    app = app_of(request)

    def work() -> dict[str, Any]:
        body: dict[str, Any] = {
            "aggregate": form.get("s_aggregate", ""),
            "group_by": [c for c in statistics.GROUP_BY if form.get(f"g_{c}")],
            "filters": {f: form[field].strip() for field, f in STAT_FILTERS.items()
                        if form.get(field, "").strip()},
        }
        if body["aggregate"] != "count":
            body["column"] = form.get("s_column") or None
            lo, hi = form.get("s_lo", "").strip(), form.get("s_hi", "").strip()
            if lo or hi:
                if not all(x.lstrip("-").isdigit() for x in (lo, hi)):
                    raise ValidationFailed(["bounds: two whole numbers of dollars"])
                body["bounds"] = [int(lo), int(hi)]
        eps = form.get("s_epsilon", "").strip()
        if eps:
            try:
                body["epsilon"] = float(eps)
            except ValueError:
                raise ValidationFailed(["epsilon: a number such as 0.1"]) from None
        return statistics.run(app, user.employee, body, actor=_actor(request, user))

    return await _answer(request, user, form, work, "answer")


async def _answer(request: Request, user: WebUser, form: dict[str, str], work: Any,
                  key: str) -> HTMLResponse:
    status, extra = 200, {}
    try:
        out = await run_in_threadpool(work)
        extra[key] = out
        if key == "answer":
            extra["chart"] = await run_in_threadpool(lambda: answer_chart(out))
    except AccessDenied as exc:
        status = 403
        extra["problem"] = "; ".join(f"{r.code}: {r.message}" for r in exc.reasons)
    except IdrsError as exc:
        if not isinstance(exc, ValidationFailed):
            raise
        status = exc.status_code
        extra["problem"] = str(exc)
    ctx = await run_in_threadpool(lambda: _context(request, user, form=form, **extra))
    return page(request, "analysis.html", user, status=status, **ctx)


def answer_chart(answer: dict[str, Any]) -> str | None:
    """The answer's values with their error bars ([low, high]) as a PNG ``data:`` URI."""
    from idrs.documents.charts import png_data_uri, pyplot

    rows = [r for r in answer["rows"] if r.get("value") is not None][:60]
    if not rows:
        return None
    group_by = answer["query"]["group_by"]
    labels = [" ".join(str(r[c]) for c in group_by) or "all" for r in rows]
    values = [float(r["value"]) for r in rows]
    below = [max(0.0, v - float(r["low"])) for v, r in zip(values, rows, strict=True)]
    above = [max(0.0, float(r["high"]) - v) for v, r in zip(values, rows, strict=True)]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.28 * len(rows) + 2), 3.2))
    xs = list(range(len(rows)))
    ax.bar(xs, values, color="#5b7fa6")
    ax.errorbar(xs, values, yerr=[below, above], fmt="none", ecolor="#222", capsize=3)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=90 if len(rows) > 8 else 0, fontsize=7)
    q = answer["query"]
    what = q["aggregate"] + (f" of {q['column']}" if q.get("column") else "")
    conf = answer["accuracy"]["confidence"]
    ax.set_title(f"{what} (ε = {q['epsilon']:g}); bars: {conf:.0%} interval", fontsize=9)
    return png_data_uri(fig)
