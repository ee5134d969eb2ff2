"""``idrs detect evaluate --truth FILE``: precision, recall and F1 of the stored alerts.

Matching: a violation is *found* when an alert about the same employee cites at least one
of the violation's audit entries; an alert is *true* when it cites an entry of some
violation of that employee. Per type, recall counts the violations of that type found,
precision the alerts whose category (the most specific signal) is that type and that are
true. ``alerts_per_1000_employee_days`` counts every alert; ``false_alerts_per_1000_...``
the false ones. ``false_alerts_upper_95_per_1000_employee_days`` is the one-sided 95% upper
bound of that rate (the exact Poisson bound, ``chi2.ppf(0.95, 2k + 2) / 2`` false alerts over
the employee-days, from scipy): zero false alerts in 900 employee-days bound the rate below
3.3 per 1,000, not below 1. ``goal`` says of the violation-free goal (at most
:data:`GOAL_PER_1000` false alerts per 1,000 employee-days, issue 17.2) whether it is
``met`` (the upper bound at most the goal), ``missed`` (the rate itself above it) or
``not shown`` (the rate within it, the upper bound above: too few employee-days to tell).

The truth file must match the log: every cited entry must exist and be the named employee's
research or contact entry, otherwise IdrsError (nothing is computed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from scipy.stats import chi2
from sqlalchemy import select

from idrs.audit.store import raw
from idrs.context import App
from idrs.db import session_scope
from idrs.detection.models import Alert
from idrs.documents.charts import pyplot
from idrs.errors import IdrsError

#: issue 17.2: false alerts per 1,000 employee-days on a violation-free month
GOAL_PER_1000 = 1.0
CONFIDENCE = 0.95


def poisson_upper(count: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper confidence bound of a Poisson mean after ``count`` events."""
    if count < 0:
        raise IdrsError(f"a count of events cannot be negative ({count})")
    return float(chi2.ppf(confidence, 2 * count + 2) / 2.0)


def false_alert_rate(false_alerts: int, employee_days: int | None) -> dict[str, Any]:
    """The rate per 1,000 employee-days, its 95% upper bound and the goal's verdict."""
    if not employee_days:
        return {"false_alerts_per_1000_employee_days": None,
                "false_alerts_upper_95_per_1000_employee_days": None, "goal": None}
    rate = 1000.0 * false_alerts / employee_days
    upper = 1000.0 * poisson_upper(false_alerts) / employee_days
    goal = "missed" if rate > GOAL_PER_1000 else "met" if upper <= GOAL_PER_1000 else "not shown"
    return {"false_alerts_per_1000_employee_days": round(rate, 3),
            "false_alerts_upper_95_per_1000_employee_days": round(upper, 3), "goal": goal}


def load_truth(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise IdrsError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise IdrsError(f"{path} is not JSON") from None
    if isinstance(data, list):
        data = {"violations": data}
    if not isinstance(data, dict) or not isinstance(data.get("violations"), list):
        raise IdrsError(f"{path}: expected {{'violations': [...]}} or a list of violations")
    for i, v in enumerate(data["violations"]):
        if not isinstance(v, dict) or not {"type", "seid", "audit_indexes"} <= set(v):
            raise IdrsError(f"{path}: violation {i} needs type, seid and audit_indexes")
    return data


def check_against_log(app: App, truth: dict[str, Any]) -> None:
    """Every cited entry exists and was written by (or about) the named employee."""
    wanted = {int(i): v["seid"] for v in truth["violations"] for i in v["audit_indexes"]}
    if not wanted:
        return
    with raw(app.engine) as db:
        size = int(db.size())
        bad = [i for i in wanted if i >= size or i < 0]
        if bad:
            raise IdrsError(f"truth file does not match the log: entry {bad[0]} is beyond the log ({size} entries)")
        ids = sorted(wanted)
        for k in range(0, len(ids), 500):
            part = ids[k:k + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT idx, leaf_input FROM audit_entry WHERE idx IN ({marks})"  # noqa: S608 - only '?' marks
            for idx, leaf in db.execute(sql,
                                        tuple(part)).fetchall():
                e = json.loads(bytes(leaf))
                who = {e.get("actor"), e.get("object", {}).get("seid")}
                if wanted[int(idx)] not in who:
                    raise IdrsError(f"truth file does not match the log: entry {idx} is not "
                                    f"{wanted[int(idx)]}'s")


def _alerts(app: App) -> list[dict[str, Any]]:
    with session_scope(app.engine) as s:
        return [{"alert_id": a.alert_id, "seid": a.seid, "score": a.score, "category": a.category,
                 "indexes": set(json.loads(a.audit_indexes))} for a in s.scalars(select(Alert))]


def _rnd(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _prf(tp_alerts: int, alerts: int, found: int, total: int) -> dict[str, Any]:
    p = tp_alerts / alerts if alerts else None
    r = found / total if total else None
    f1 = 2 * p * r / (p + r) if p is not None and r is not None and (p + r) > 0 else None
    return {"precision": _rnd(p), "recall": _rnd(r), "f1": _rnd(f1), "violations": total,
            "found": found, "alerts": alerts, "true_alerts": tp_alerts}


def evaluate(app: App, truth_path: str | Path, *, plot: str | Path | None = None) -> dict[str, Any]:
    """The figures of the issue, as JSON-ready dict (see the module docstring)."""
    truth = load_truth(truth_path)
    check_against_log(app, truth)
    alerts = _alerts(app)
    return score_alerts(truth, alerts, plot=plot)


def score_alerts(truth: dict[str, Any], alerts: list[dict[str, Any]], *,
                 plot: str | Path | None = None) -> dict[str, Any]:
    violations = truth["violations"]
    by_seid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alerts:
        by_seid[a["seid"]].append(a)
    v_found = [any(a["indexes"] & set(v["audit_indexes"]) for a in by_seid.get(v["seid"], []))
               for v in violations]
    v_by_seid: dict[str, list[set[int]]] = defaultdict(list)
    for v in violations:
        v_by_seid[v["seid"]].append(set(v["audit_indexes"]))
    a_true = [any(a["indexes"] & s for s in v_by_seid.get(a["seid"], [])) for a in alerts]
    overall = _prf(sum(a_true), len(alerts), sum(v_found), len(violations))
    types = sorted({v["type"] for v in violations} | {a["category"] for a in alerts})
    by_type = {}
    for t in types:
        idx_v = [i for i, v in enumerate(violations) if v["type"] == t]
        idx_a = [i for i, a in enumerate(alerts) if a["category"] == t]
        by_type[t] = _prf(sum(a_true[i] for i in idx_a), len(idx_a),
                          sum(v_found[i] for i in idx_v), len(idx_v))
    days = int(truth.get("employee_days") or 0) or None

    def per_k(n: int) -> float | None:
        return round(1000.0 * n / days, 3) if days else None

    curve = _curve(alerts, a_true, violations, v_by_seid)
    out: dict[str, Any] = {"overall": overall, "by_type": by_type,
                           "alerts_per_1000_employee_days": per_k(len(alerts)),
                           **false_alert_rate(len(alerts) - sum(a_true), days),
                           "employee_days": days, "curve": curve}
    if plot is not None:
        out["plot"] = str(plot_curve(curve, plot))
    return out


def _curve(alerts: list[dict[str, Any]], a_true: list[bool], violations: list[dict[str, Any]],
           v_by_seid: dict[str, list[set[int]]]) -> list[dict[str, float]]:
    """Precision and recall if only alerts scoring at least each threshold were raised."""
    pts = []
    for th in sorted({a["score"] for a in alerts}):
        kept = [a for a in alerts if a["score"] >= th]
        tp = sum(t for a, t in zip(alerts, a_true, strict=True) if a["score"] >= th)
        found = sum(1 for v in violations if any(
            a["seid"] == v["seid"] and a["indexes"] & set(v["audit_indexes"]) for a in kept))
        pts.append({"threshold": th, "precision": tp / len(kept) if kept else 1.0,
                    "recall": found / len(violations) if violations else 0.0})
    return pts


def plot_curve(curve: list[dict[str, float]], path: str | Path) -> Path:
    """Draw the precision-recall curve as a PNG (matplotlib, Agg backend)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot([p["recall"] for p in curve], [p["precision"] for p in curve], marker=".")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("idrs detection: precision-recall by alert threshold")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows for the printed table: type, violations, found, alerts, precision, recall, F1."""

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    rows = [["overall", str(result["overall"]["violations"]), str(result["overall"]["found"]),
             str(result["overall"]["alerts"]), fmt(result["overall"]["precision"]),
             fmt(result["overall"]["recall"]), fmt(result["overall"]["f1"])]]
    for t, m in result["by_type"].items():
        rows.append([t, str(m["violations"]), str(m["found"]), str(m["alerts"]), fmt(m["precision"]),
                     fmt(m["recall"]), fmt(m["f1"])])
    return rows
