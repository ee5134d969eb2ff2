"""Differentially private statistics under a statistics grant (issue 15.2).

A statistics principal never sees a record: they send a declarative query (filters, a
group-by from :data:`GROUP_BY`, ``count`` / ``sum`` / ``mean`` of a column from
:data:`COLUMNS` with stated ``bounds``) and get an answer computed by OpenDP over the master
file (``opendp.extras.polars``: the noise, its calibration check, the key-set protection and
the accuracy are OpenDP's; nothing here draws a random number).

- **Privacy unit**: one taxpayer. A taxpayer has at most one return per tax year (the unique
  constraint of ``tax_return``), so they contribute at most one row per tax year and at most
  as many rows as there are tax years on file (``Bound(per_group=years)`` and
  ``Bound(by=[tax_year], per_group=1)``). The number of tax years on file is treated as public.
- **Budget**: each grant has ε (and δ) in all, set at request and approved with the grant.
  A query spends its ε (default :data:`DEFAULT_EPSILON`) and, when its group keys are not
  public, :data:`QUERY_DELTA` of δ. The spend is reserved by one conditional UPDATE
  (:func:`spend`) before anything is released: two concurrent queries cannot both take the
  last of it; a query that fails after the reservation keeps it spent (fail closed).
  Composition across queries is the basic one (ε and δ add up).
- **Group keys**: filing status, state and AGI band have public key sets (the domain's codes,
  fixed bands): their groups are released with those keys (``with_keys``), every key present
  even when empty. Tax year and ZIP3 are not public: a query grouping by either is released
  through OpenDP's key-set protection (a noisy count must pass OpenDP's threshold), so a rare
  group's existence is not itself disclosed. That needs δ.
- **Accuracy**: OpenDP's accuracy at :data:`CONFIDENCE` for each noisy aggregate; every row
  carries ``low`` and ``high``. A mean is a noisy sum over a noisy count: its interval comes
  from both accuracies, each at half the significance (a union bound), so it holds at the
  stated confidence too.
- **Audit**: every query (allowed or refused) is recorded with the ε and δ spent; an allowed
  answer is committed in its entry (``audit.commitment``; its opening keeps the answer itself,
  since noise cannot be reproduced).

Callers: api/statistics.py, cli/grants.py (``idrs statistics run``), web/analysis_pages.py,
bench/bench_statistics.py, the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

from idrs.audit import commitment, log
from idrs.audit.events import Actor
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import AccessDenied, IdrsError, Reason, ValidationFailed
from idrs.grants import rules
from idrs.grants.events import GrantEvent
from idrs.grants.models import DpSpend, Grant
from idrs.grants.results import StatisticsBudget
from idrs.grants.service import prerequisites
from idrs.masterfile.schema import FILING_STATUSES, STATES
from idrs.people.models import Employee

#: The reason code of a query refused because the grant's budget cannot pay for it.
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
#: The reason code of a statistics call by someone without an active statistics grant.
NO_STATISTICS_GRANT = "NO_STATISTICS_GRANT"

#: the generalized columns a query may group by (and filter on)
GROUP_BY = ("tax_year", "filing_status", "state", "zip3", "agi_band")
#: AGI bands (dollars): public, fixed
AGI_BREAKS = (0, 25_000, 50_000, 100_000, 200_000)
AGI_BANDS = ("<0", "0-24999", "25000-49999", "50000-99999", "100000-199999", "200000+")
#: group columns whose key sets are public (released with every key, no threshold)
PUBLIC_KEYS: dict[str, tuple[str, ...]] = {
    "filing_status": tuple(FILING_STATUSES),
    "state": tuple(sorted(STATES)),
    "agi_band": AGI_BANDS,
}
#: the columns a sum or mean may aggregate (whole dollars; no wages or no refund is 0)
COLUMNS = ("agi", "wages", "refund", "total_tax")
#: a boolean a query may filter on
FLAGS = ("adoption_pending",)
AGGREGATES = ("count", "sum", "mean")
MAX_GROUP_BY = 3
#: the bounds of a sum or mean (dollars)
MAX_BOUND = 10**9
#: the ε a query spends when it names none, and the most one query may spend
DEFAULT_EPSILON, MIN_QUERY_EPSILON, MAX_QUERY_EPSILON = 0.1, 0.001, 1.0
#: the δ a query spends when a group key set is not public
QUERY_DELTA = 1e-8
#: the confidence of the accuracy stated with every answer
CONFIDENCE = 0.95
#: a public upper bound on the number of returns (OpenDP needs one for sums)
MAX_ROWS = 1_000_000_000
#: a float tolerance when comparing spends with budgets
_SLACK = 1e-9


# -- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    group_by: tuple[str, ...]
    aggregate: str
    column: str | None
    bounds: tuple[int, int] | None
    filters: tuple[tuple[str, Any], ...]
    epsilon: float

    @property
    def public(self) -> bool:
        """Every group key set is public (no threshold, no δ)."""
        return all(c in PUBLIC_KEYS for c in self.group_by)

    @property
    def delta(self) -> float:
        return 0.0 if self.public else QUERY_DELTA

    def document(self) -> dict[str, Any]:
        return {
            "group_by": list(self.group_by),
            "aggregate": self.aggregate,
            "column": self.column,
            "bounds": list(self.bounds) if self.bounds else None,
            "filters": {k: v for k, v in self.filters},
            "epsilon": self.epsilon,
        }

    def sha256(self) -> str:
        return hashlib.sha256(commitment.canonical(self.document())).hexdigest()


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed([f"{where}: a whole number of dollars"])
    if value != int(value):
        raise ValidationFailed([f"{where}: a whole number of dollars"])
    if abs(int(value)) > MAX_BOUND:
        raise ValidationFailed([f"{where}: at most {MAX_BOUND} in absolute value"])
    return int(value)


def _key_value(name: str, value: Any) -> Any:
    """One filter value of a group column, checked against its domain."""
    where = f"filters.{name}"
    text_ = str(value).strip() if not isinstance(value, bool) else ""
    if name == "tax_year":
        if isinstance(value, bool) or not text_.isascii() or not text_.isdigit() \
                or not 1900 <= int(text_) <= 2100:
            raise ValidationFailed([f"{where}: a year such as 2023"])
        return int(text_)
    if name == "zip3":
        if not (len(text_) == 3 and text_.isascii() and text_.isdigit()):
            raise ValidationFailed([f"{where}: the first three digits of a ZIP code"])
        return text_
    allowed = PUBLIC_KEYS[name]
    up = text_.upper() if name != "agi_band" else text_
    if up not in allowed:
        raise ValidationFailed([f"{where}: one of {', '.join(allowed)}"])
    return up


def parse_query(body: Mapping[str, Any]) -> Query:
    """The query of ``body`` (the API's JSON), or ValidationFailed naming each bad field."""
    if not isinstance(body, Mapping):
        raise ValidationFailed(["query: a JSON object"])
    known = {"group_by", "aggregate", "column", "bounds", "filters", "epsilon", "grant"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValidationFailed([f"{u}: not a field; fields: {', '.join(sorted(known))}"
                                for u in unknown])
    problems: list[str] = []
    group_by = body.get("group_by") or []
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise ValidationFailed(["group_by: a list of column names"])
    bad = [g for g in group_by if g not in GROUP_BY]
    if bad:
        problems.append(f"group_by: {', '.join(bad)} not allowed; allowed: {', '.join(GROUP_BY)}")
    if len(set(group_by)) != len(group_by):
        problems.append("group_by: a column named twice")
    if len(group_by) > MAX_GROUP_BY:
        problems.append(f"group_by: at most {MAX_GROUP_BY} columns")
    aggregate = body.get("aggregate")
    if aggregate not in AGGREGATES:
        problems.append(f"aggregate: one of {', '.join(AGGREGATES)}")
    column = body.get("column")
    bounds_raw = body.get("bounds")
    bounds: tuple[int, int] | None = None
    if aggregate == "count":
        if column is not None:
            problems.append("column: a count takes no column")
        if bounds_raw is not None:
            problems.append("bounds: a count takes no bounds")
    elif aggregate in ("sum", "mean"):
        if column not in COLUMNS:
            problems.append(f"column: required for a {aggregate}; one of {', '.join(COLUMNS)}")
        if not isinstance(bounds_raw, list) or len(bounds_raw) != 2:
            problems.append(f"bounds: required for a {aggregate}: [lo, hi] in dollars")
        else:
            try:
                lo = _whole(bounds_raw[0], "bounds[0]")
                hi = _whole(bounds_raw[1], "bounds[1]")
            except ValidationFailed as exc:
                problems.extend(exc.problems)
            else:
                if lo >= hi:
                    problems.append("bounds: lo must be below hi")
                else:
                    bounds = (lo, hi)
    eps_raw = body.get("epsilon")
    epsilon = DEFAULT_EPSILON
    if eps_raw is not None:
        if isinstance(eps_raw, bool) or not isinstance(eps_raw, (int, float)) \
                or not math.isfinite(eps_raw) \
                or not MIN_QUERY_EPSILON <= float(eps_raw) <= MAX_QUERY_EPSILON:
            problems.append(f"epsilon: from {MIN_QUERY_EPSILON} to {MAX_QUERY_EPSILON}")
        else:
            epsilon = float(eps_raw)
    filters_raw = body.get("filters") or {}
    filters: dict[str, Any] = {}
    if not isinstance(filters_raw, Mapping):
        problems.append("filters: an object of column → value")
        filters_raw = {}
    for name, value in filters_raw.items():
        try:
            filters[name] = _filter(str(name), value)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationFailed(problems)
    assert isinstance(aggregate, str)
    return Query(
        tuple(group_by),
        aggregate,
        column if aggregate != "count" else None,
        bounds,
        tuple(sorted(filters.items())),
        epsilon,
    )


def _filter(name: str, value: Any) -> Any:
    if name in GROUP_BY:
        if isinstance(value, list):
            if not 1 <= len(value) <= 60:
                raise ValidationFailed([f"filters.{name}: from 1 to 60 values"])
            return sorted({_key_value(name, v) for v in value}, key=str)
        return _key_value(name, value)
    if name in COLUMNS:
        if not isinstance(value, Mapping) or not set(value) <= {"min", "max"} or not value:
            raise ValidationFailed([f"filters.{name}: {{\"min\": dollars, \"max\": dollars}}"])
        out = {k: _whole(v, f"filters.{name}.{k}") for k, v in value.items() if v is not None}
        return dict(sorted(out.items()))
    if name in FLAGS:
        if not isinstance(value, bool):
            raise ValidationFailed([f"filters.{name}: true or false"])
        return value
    raise ValidationFailed([
        f"filters.{name}: not a filter; filters: {', '.join(GROUP_BY + COLUMNS + FLAGS)}"
    ])


# -- the master file as a frame -----------------------------------------------------------------

_FRAME_SQL = """
WITH addr AS (
  SELECT taxpayer_id, state, zip,
         ROW_NUMBER() OVER (PARTITION BY taxpayer_id ORDER BY valid_from DESC, id DESC) AS rn
  FROM address_record
), wages AS (
  SELECT return_id, CAST(SUM(wages_cents) AS BIGINT) AS cents FROM w2 GROUP BY return_id
), adopt AS (
  SELECT DISTINCT return_id FROM dependent WHERE adoption_pending
)
SELECT r.tax_year, r.filing_status, a.state, a.zip, r.agi_cents, w.cents, r.refund_cents,
       r.total_tax_cents, CASE WHEN ad.return_id IS NULL THEN 0 ELSE 1 END
FROM tax_return r
LEFT JOIN addr a ON a.taxpayer_id = r.taxpayer_id AND a.rn = 1
LEFT JOIN wages w ON w.return_id = r.id
LEFT JOIN adopt ad ON ad.return_id = r.id
"""
_VERSION_SQL = (
    "SELECT (SELECT COUNT(*) FROM tax_return), (SELECT MAX(id) FROM tax_return),"
    " (SELECT MAX(id) FROM address_record), (SELECT MAX(id) FROM w2),"
    " (SELECT MAX(id) FROM dependent)"
)
_cache: dict[str, tuple[tuple[Any, ...], Any]] = {}
_cache_lock = threading.Lock()


def master_frame(engine: Engine) -> Any:
    """The master file as a Polars DataFrame of returns, with generalized keys and amounts
    (no identifier of any kind). Cached per database while the returns, addresses, W-2s and
    dependents have not changed (their counts and highest ids)."""
    import polars as pl

    with engine.connect() as conn:
        version = tuple(conn.execute(text(_VERSION_SQL)).one())
        key = str(engine.url)
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
        rows = conn.exec_driver_sql(_FRAME_SQL).fetchall()
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(9)]
    raw = pl.DataFrame(
        {
            "tax_year": pl.Series(cols[0], dtype=pl.Int64),
            "filing_status": pl.Series(cols[1], dtype=pl.Utf8),
            "state": pl.Series(cols[2], dtype=pl.Utf8),
            "zip": pl.Series(cols[3], dtype=pl.Utf8),
            "agi_cents": pl.Series(cols[4], dtype=pl.Int64),
            "wages_cents": pl.Series(cols[5], dtype=pl.Int64),
            "refund_cents": pl.Series(cols[6], dtype=pl.Int64),
            "tax_cents": pl.Series(cols[7], dtype=pl.Int64),
            "adoption": pl.Series(cols[8], dtype=pl.Int64),
        }
    )
    frame = frame_of(raw)
    with _cache_lock:
        _cache[key] = (version, frame)
    return frame


def frame_of(raw: Any) -> Any:
    """The released columns from the raw ones (cents → whole dollars, ZIP → ZIP3, AGI band)."""
    import polars as pl

    agi = pl.col("agi_cents").floordiv(100)
    band = pl.lit(AGI_BANDS[-1])
    for brk, label in reversed(list(zip(AGI_BREAKS, AGI_BANDS, strict=False))):
        band = pl.when(agi < brk).then(pl.lit(label)).otherwise(band)
    return raw.select(
        pl.col("tax_year"),
        pl.col("filing_status").fill_null(""),
        pl.col("state").fill_null(""),
        pl.col("zip").fill_null("").str.replace_all(r"[^0-9]", "").str.slice(0, 3).alias("zip3"),
        band.alias("agi_band"),
        agi.alias("agi"),
        pl.col("wages_cents").fill_null(0).floordiv(100).alias("wages"),
        pl.col("refund_cents").fill_null(0).floordiv(100).alias("refund"),
        pl.col("tax_cents").fill_null(0).floordiv(100).alias("total_tax"),
        (pl.col("adoption") == 1).alias("adoption_pending"),
    )


# -- OpenDP ----------------------------------------------------------------------------------


def _opendp() -> Any:
    """``opendp.prelude`` with its contrib features on (imported on first use: it is heavy)."""
    import importlib

    dp = importlib.import_module("opendp.prelude")
    dp.enable_features("contrib")
    return dp


@dataclass
class Release:
    """A query resolved into an OpenDP measurement, ready to be released once."""

    context: Any
    measurement: Any
    summary: list[dict[str, Any]]
    path: str

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _filter_expr(name: str, value: Any) -> Any:
    import polars as pl

    col = pl.col(name)
    if name in COLUMNS:
        expr = pl.lit(True)
        if "min" in value:
            expr = expr & (col >= value["min"])
        if "max" in value:
            expr = expr & (col <= value["max"])
        return expr
    if isinstance(value, list):
        # OpenDP 0.16 refuses is_in; a disjunction of equalities is the same filter
        expr = col == value[0]
        for v in value[1:]:
            expr = expr | (col == v)
        return expr
    return col == value


def _aggregations(q: Query) -> list[Any]:
    """A count is ``count``; a sum is ``sum`` (with ``count`` when the keys need OpenDP's
    threshold, which reads a count); a mean is ``sum`` over ``count``, both released and
    divided here (post-processing), so its interval follows from their two accuracies."""
    dp = _opendp()
    import polars as pl

    out: list[Any] = []
    if q.aggregate in ("count", "mean") or not q.public:
        out.append(dp.len(signed=False).alias("count"))
    if q.aggregate in ("sum", "mean"):
        assert q.column is not None and q.bounds is not None
        col: Any = pl.col(q.column)  # the .dp namespace is registered by OpenDP at runtime
        out.append(col.dp.sum(q.bounds).alias("sum"))
    return out


def _public_keys(group_by: tuple[str, ...], filters: dict[str, Any]) -> Any:
    """Every combination of the public keys, narrowed by the query's own filters."""
    import polars as pl

    sets = []
    for c in group_by:
        keys = PUBLIC_KEYS[c]
        if c in filters:
            f = filters[c]
            keys = tuple(k for k in keys if k in (f if isinstance(f, list) else [f]))
        sets.append(keys)
    combos = list(itertools.product(*sets))
    return pl.LazyFrame(
        {c: [combo[i] for combo in combos] for i, c in enumerate(group_by)},
        schema={c: pl.Utf8 for c in group_by},
    )


def prepare(frame: Any, q: Query, *, alpha: float = 1 - CONFIDENCE) -> Release:
    """The OpenDP measurement of ``q`` over ``frame``, its accuracy summary, nothing released.

    The frame is written to a private temporary Parquet file (mode 0600, deleted by
    :meth:`Release.close`) and scanned: OpenDP then serializes a path, not a million rows.
    """
    dp = _opendp()
    import polars as pl

    years = max(1, int(frame.get_column("tax_year").n_unique())) if frame.height else 1
    fd, path = tempfile.mkstemp(prefix="idrs-dp-", suffix=".parquet")
    os.close(fd)
    try:
        frame.write_parquet(path, compression="uncompressed", statistics=False)
        loss = (
            dp.loss_of(epsilon=q.epsilon)
            if q.public
            else dp.loss_of(epsilon=q.epsilon, delta=q.delta)
        )
        ctx = dp.Context.compositor(
            data=pl.scan_parquet(path),
            privacy_unit=dp.unit_of(
                contributions=[
                    dp.polars.Bound(per_group=years),
                    dp.polars.Bound(by=[pl.col("tax_year")], per_group=1),
                ]
            ),
            privacy_loss=loss,
            split_evenly_over=1,
            margins=[dp.polars.Margin(by=[], max_length=MAX_ROWS)],
        )
        query = ctx.query()
        filters = dict(q.filters)
        for name, value in filters.items():
            query = query.filter(_filter_expr(name, value))
        aggs = _aggregations(q)
        if q.group_by:
            query = query.group_by(*q.group_by).agg(*aggs)
            if q.public:
                query = query.with_keys(_public_keys(q.group_by, filters))
        else:
            query = query.select(*aggs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            m = _measurement(query)
        from opendp.accuracy import summarize_polars_measurement

        split = alpha / 2 if q.aggregate == "mean" else alpha
        summary = summarize_polars_measurement(m, split).to_dicts()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return Release(ctx, m, summary, path)


def _measurement(query: Any) -> Any:
    """The query's measurement, at exactly the context's privacy loss.

    OpenDP's ``resolve`` searches the noise scale by bisection (some sixty measurement
    constructions, seconds on a loaded machine). The privacy loss of these mechanisms is
    inversely proportional to the scale, so the scale is read off one construction at scale 1
    and then *checked by OpenDP's own privacy map*; the threshold (non-public keys) is found
    the same way (:func:`_threshold`: extrapolated, then checked by OpenDP's map, the one
    below it refused by it too). Anything unexpected falls back to ``resolve``.
    """
    dp = _opendp()
    from opendp.measurements import make_private_lazyframe

    try:
        inner = object.__getattribute__(query, "_query")
        plan = object.__getattribute__(query, "polars_plan")
        domain, metric = inner._chain
        d_in, d_out = inner._d_in, inner._d_out
        approximate = isinstance(d_out, tuple)
        top = (1 << 32) - 1 if approximate else None

        def make(scale: float, threshold: int | None) -> Any:
            return make_private_lazyframe(
                input_domain=domain,
                input_metric=metric,
                output_measure=inner._output_measure,
                lazyframe=plan,
                global_scale=scale,
                threshold=threshold,
            )

        def eps(m: Any) -> float:
            loss = m.map(d_in)
            return float(loss[0] if approximate else loss)

        target = float(d_out[0] if approximate else d_out)
        at_one = eps(make(1.0, top))
        scale = at_one / target * (1 + 1e-9)
        if not eps(make(scale, top)) <= target:
            raise ValueError("scale check")
        if not approximate:
            return make(scale, None)
        try:
            m = make(scale, None)
        except dp.OpenDPException:
            m = make(scale, _threshold(lambda t: make(scale, t).map(d_in)[1], d_out[1], scale))
        loss = m.map(d_in)
        if not (loss[0] <= d_out[0] and loss[1] <= d_out[1]):
            raise ValueError("loss check")
        return m
    except (AttributeError, TypeError, ValueError, dp.OpenDPException):
        return query.resolve()


#: how many thresholds the local search around the extrapolated one may try
_THRESHOLD_STEPS = 8


def _threshold(delta_at: Any, target: float, scale: float) -> int:
    """The smallest threshold whose δ (read by OpenDP's privacy map, ``delta_at``) is under
    ``target``: the same threshold as OpenDP's ``binary_search`` over the same predicate,
    found with a handful of privacy maps instead of some thirty (each map is tens of ms).

    The δ of a noisy threshold decays geometrically with the threshold at the noise scale,
    so one map at a first guess is extrapolated to a candidate; the candidate is then
    *checked by OpenDP's map* — it passes and the threshold one below fails — walking one
    step at a time when the extrapolation is off. Nothing here decides privacy: a threshold
    is only ever accepted on OpenDP's own δ, and when the walk does not settle within
    :data:`_THRESHOLD_STEPS` maps, OpenDP's bisection decides.
    """
    dp = _opendp()

    def ok(t: int) -> bool:
        return bool(delta_at(t) < target)

    guess = max(1, math.ceil(scale * math.log(1 / target)))
    d = float(delta_at(guess))
    if 0.0 < d < 1.0:
        guess = max(1, guess + math.ceil(scale * math.log(d / target)))
    t = guess
    for _ in range(_THRESHOLD_STEPS):
        if ok(t):
            if t <= 1 or not ok(t - 1):
                return t
            t -= 1
        else:
            t += 1
    return int(dp.binary_search(ok, T=int))


def _interval(q: Query, count: float, total: float, acc: dict[str, float]) -> tuple[
    float | None, float | None, float | None
]:
    """(value, low, high) of one row at the stated confidence (see the module docstring)."""
    if q.aggregate == "count":
        return count, max(0.0, count - acc["count"]), count + acc["count"]
    if q.aggregate == "sum":
        return total, total - acc["sum"], total + acc["sum"]
    assert q.bounds is not None
    lo_b, hi_b = float(q.bounds[0]), float(q.bounds[1])
    if count <= 0:
        return None, lo_b, hi_b
    value = min(hi_b, max(lo_b, total / count))
    if count - acc["count"] <= 0:
        return value, lo_b, hi_b
    cands = [
        (total + a) / (count + b)
        for a in (-acc["sum"], acc["sum"])
        for b in (-acc["count"], acc["count"])
    ]
    return value, max(lo_b, min(cands)), min(hi_b, max(cands))


def _accuracy(q: Query, summary: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, float]]:
    acc: dict[str, float] = {"count": 0.0, "sum": 0.0}
    threshold = None
    aggregates = []
    for row in summary:
        name = str(row.get("column"))
        a = float(row.get("accuracy") or 0.0)
        if row.get("threshold") is not None:
            threshold = int(row["threshold"])
        acc[name] = a
        aggregates.append(
            {
                "column": name,
                "aggregate": row.get("aggregate"),
                "distribution": row.get("distribution"),
                "scale": row.get("scale"),
                "accuracy": a,
                "confidence": CONFIDENCE if q.aggregate != "mean" else 1 - (1 - CONFIDENCE) / 2,
            }
        )
    note = {
        "count": "each count is within ± accuracy of the true count",
        "sum": "each sum is within ± accuracy of the true sum of the clamped values",
        "mean": "each mean (of the clamped values) lies in [low, high]: a noisy sum over a "
        "noisy count, each stated at half the significance (a union bound)",
    }[q.aggregate]
    out = {
        "confidence": CONFIDENCE,
        "aggregates": aggregates,
        "threshold": threshold,
        "meaning": f"With {CONFIDENCE:.0%} confidence {note}"
        + (
            f"; a group whose noisy count is under {threshold} is not released (its "
            "existence is not disclosed)"
            if threshold is not None
            else ""
        ),
    }
    return out, acc


def release_rows(rel: Release, q: Query) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Release (once) and shape the rows: the group keys, ``value``, ``low``, ``high`` (and
    ``count`` when the query released one beside a sum or mean)."""
    released = rel.context(rel.measurement).collect()
    accuracy, acc = _accuracy(q, rel.summary)
    if q.group_by:
        released = released.sort(list(q.group_by))
    rows = []
    for r in released.iter_rows(named=True):
        row: dict[str, Any] = {c: r[c] for c in q.group_by}
        count = float(r["count"]) if r.get("count") is not None else 0.0
        total = float(r["sum"]) if r.get("sum") is not None else 0.0
        value, low, high = _interval(q, count, total, acc)
        if q.aggregate == "count":
            row["value"] = int(count)
        elif q.aggregate == "sum":
            row["value"] = int(total)
        else:
            row["value"] = round(value, 2) if value is not None else None
        if q.aggregate != "count" and "count" in r:
            row["count"] = int(count)
        row["low"] = round(low, 2) if low is not None else None
        row["high"] = round(high, 2) if high is not None else None
        rows.append(row)
    return rows, accuracy


# -- the grant and its budget ----------------------------------------------------------------


@dataclass(frozen=True)
class StatsGrant:
    grant_id: int
    epsilon: float
    delta: float
    epsilon_spent: float
    delta_spent: float

    @property
    def left(self) -> float:
        return max(0.0, self.epsilon - self.epsilon_spent)


def _statistics_grant(app: App, who: Employee, grant_id: int | None, actor: Actor) -> StatsGrant:
    now = as_utc(app.clock.now())
    with session_scope(app.engine) as s:
        grants = [
            g
            for g in s.scalars(
                select(Grant).where(Grant.principal_id == who.id, Grant.kind == "statistics")
            ).all()
            if rules.state_of(g.status, g.start_date, g.term_days, now) == rules.ACTIVE
        ]
        if grant_id is not None:
            grants = [g for g in grants if g.id == grant_id]
        chosen = grants[0] if len(grants) == 1 else None
        pre = prerequisites(s, app, who.id, chosen.agreement_title, now) if chosen else None
        found = (
            StatsGrant(
                chosen.id,
                float(chosen.dp_epsilon or 0.0),
                float(chosen.dp_delta or 0.0),
                float(chosen.dp_epsilon_spent or 0.0),
                float(chosen.dp_delta_spent or 0.0),
            )
            if chosen
            else None
        )
    if found is None:
        if len(grants) > 1:
            raise ValidationFailed(["grant: you hold several active statistics grants; name one"])
        raise _deny(app, actor, who, grant_id, NO_STATISTICS_GRANT,
                    "statistics need an active statistics grant of yours", {})
    assert pre is not None
    for ok, code, words in (
        (pre["clearance_verified"], "CLEARANCE_NOT_VERIFIED", "your clearance is not verified"),
        (pre["agreement_signed"], "AGREEMENT_NOT_SIGNED",
         "you have not signed the current agreement"),
        (pre["training_current"], "TRAINING_NOT_CURRENT", "your UNAX training is not current"),
    ):
        if not ok:
            raise _deny(app, actor, who, found.grant_id, code, words, {})
    return found


def budget(app: App, who: Employee, *,
           grant_id: int | None = None) -> StatisticsBudget | None:
    """The principal's active statistics grant and its budget (None without one); reads only."""
    now = as_utc(app.clock.now())
    with session_scope(app.engine) as s:
        for g in s.scalars(
            select(Grant).where(Grant.principal_id == who.id, Grant.kind == "statistics")
        ).all():
            if grant_id is not None and g.id != grant_id:
                continue
            if rules.state_of(g.status, g.start_date, g.term_days, now) == rules.ACTIVE:
                eps = float(g.dp_epsilon or 0.0)
                spent = float(g.dp_epsilon_spent or 0.0)
                return StatisticsBudget(grant_id=g.id, epsilon=eps, delta=g.dp_delta,
                                        epsilon_spent=round(spent, 9),
                                        delta_spent=float(g.dp_delta_spent or 0.0),
                                        budget_left=round(max(0.0, eps - spent), 9))
    return None


def spend(app: App, who: Employee, gk: StatsGrant, q: Query) -> bool:
    """Reserve ``q``'s ε and δ from the grant in one conditional UPDATE (with the spend row,
    in one transaction). False when the budget left cannot pay for it."""
    with session_scope(app.engine) as s:
        res = s.execute(
            update(Grant)
            .where(
                Grant.id == gk.grant_id,
                Grant.kind == "statistics",
                Grant.dp_epsilon_spent + q.epsilon <= Grant.dp_epsilon + _SLACK,
                Grant.dp_delta_spent + q.delta <= Grant.dp_delta + _SLACK * 1e-6,
            )
            .values(
                dp_epsilon_spent=Grant.dp_epsilon_spent + q.epsilon,
                dp_delta_spent=Grant.dp_delta_spent + q.delta,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(res, "rowcount", 0) != 1:
            return False
        s.add(
            DpSpend(
                grant_id=gk.grant_id,
                employee_id=who.id,
                spent_at=app.clock.now(),
                epsilon=q.epsilon,
                delta=q.delta,
                query_sha256=q.sha256(),
            )
        )
    return True


def _deny(app: App, actor: Actor, who: Employee, grant_id: int | None, code: str, words: str,
          detail: dict[str, Any]) -> AccessDenied:
    idx = None
    with contextlib.suppress(IdrsError):  # the refusal stands even if it cannot be recorded
        idx = log.record(app, GrantEvent.STATS_QUERY, actor,
                         {"grant_id": grant_id, "seid": who.seid},
                         {**detail, "epsilon_spent": 0.0}, outcome="denied", reasons=[code])
    return AccessDenied([Reason(code, words)], idx)


# -- the principal's call ------------------------------------------------------------------------


def run(app: App, who: Employee, body: Mapping[str, Any], *, actor: Actor) -> dict[str, Any]:
    """Answer one statistics query under the caller's statistics grant.

    ``{"rows", "epsilon_spent", "delta_spent", "budget_left", "accuracy", "grant_id",
    "query", "audit_index"}``. Bad input: 400 naming the field, nothing spent or written.
    No active statistics grant: 403 NO_STATISTICS_GRANT; a budget that cannot pay: 403
    BUDGET_EXHAUSTED (both recorded, nothing spent).
    """
    q = parse_query(body)
    grant_raw = body.get("grant")
    if grant_raw is not None and (
        isinstance(grant_raw, bool) or not isinstance(grant_raw, int) or grant_raw < 1
    ):
        raise ValidationFailed(["grant: a grant id"])
    gk = _statistics_grant(app, who, grant_raw, actor)
    obj = {"grant_id": gk.grant_id, "seid": who.seid}
    detail = {"query": q.document(), "epsilon": q.epsilon, "delta": q.delta}
    if gk.left + _SLACK < q.epsilon or gk.delta_spent + q.delta > gk.delta + _SLACK * 1e-6:
        raise _budget_refused(app, actor, who, gk, detail)
    frame = master_frame(app.engine)
    try:
        rel = prepare(frame, q)  # nothing released yet, nothing spent
    except _opendp().OpenDPException as exc:
        # a query OpenDP cannot make private (it says why): refused, nothing spent
        raise ValidationFailed([f"query: OpenDP cannot answer it privately ({exc.message})"
                                if hasattr(exc, "message") else
                                "query: OpenDP cannot answer it privately"]) from None
    try:
        if not spend(app, who, gk, q):
            raise _budget_refused(app, actor, who, gk, detail)
        rows, accuracy = release_rows(rel, q)
    finally:
        rel.close()
    after = budget(app, who, grant_id=gk.grant_id)
    left = after.budget_left if after else 0.0
    answer = {
        "grant_id": gk.grant_id,
        "query": q.document(),
        "rows": rows,
        "epsilon_spent": q.epsilon,
        "delta_spent": q.delta,
        "budget_left": left,
        "accuracy": accuracy,
    }
    com = commitment.commit(answer, {"kind": "statistics", "answer": answer})
    idx = log.record(
        app,
        GrantEvent.STATS_QUERY,
        actor,
        {**obj, "answer": com.hex},
        {**detail, "epsilon_spent": q.epsilon, "delta_spent": q.delta, "budget_left": left,
         "rows": len(rows)},
        also=com.writes(app.keyring),
    )
    return {**answer, "audit_index": idx}


def _budget_refused(app: App, actor: Actor, who: Employee, gk: StatsGrant,
                    detail: dict[str, Any]) -> AccessDenied:
    return _deny(
        app, actor, who, gk.grant_id, BUDGET_EXHAUSTED,
        f"the grant's privacy budget cannot pay for this query (ε left "
        f"{max(0.0, gk.left):g}, asked {detail['epsilon']:g})",
        {**detail, "budget_left": round(gk.left, 9)},
    )
