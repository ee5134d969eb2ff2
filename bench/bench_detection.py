"""Detection quality per work profile (issue 17.7): precision and recall per violation type.

For every profile of :mod:`idrs.detection.profiles` the benchmark simulates the profile's
work twice through the real service path, each in its own SQLite database: once honest
(false alerts per 1,000 employee-days) and once with its hidden violations (a relative under
someone else's case or an intake contact, a neighbour under an intake contact, a sweep of
accounts under contacts). ``detection.service.run`` then raises the alerts and
``detection.evaluate.score_alerts`` measures them. The ``mixed`` profile is one world whose
units each work another profile (at least 40 employees: a unit of 5 per profile); the
"pooled" row adds up every run (the alerts and violations of all of them together); the
precision-recall curve of the pooled alerts is drawn to docs/detection_profiles_pr.png and the per-profile table is kept in
docs/detection_profiles.json (docs/detection.md quotes it).

Scale: full 8 days x 30 employees per run (the mixed month 40); quick 5 days x 20.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench import figure

TITLE = "Detection quality per work profile (precision, recall, false alerts per 1,000 employee-days)"
SIZES = {"full": (8, 30), "quick": (5, 20)}
ROOT = Path("/tmp/idrs-bench-detection")
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _one(profile: str, violations: bool, days: int, employees: int, seed: int) -> dict[str, Any]:
    from bench.bench_detect import _app
    from idrs.detection import evaluate, profiles, service

    d = ROOT / f"{profile}-{'v' if violations else 'h'}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    app = _app(d)
    t = time.perf_counter()
    sim = profiles.run_profile(app, profile, days=days, employees=employees, seed=seed,
                               violations=violations, truth_out=d / "truth.json")
    service.run(app)
    truth = evaluate.load_truth(d / "truth.json")
    alerts = evaluate._alerts(app)
    result = evaluate.score_alerts(truth, alerts)
    app.engine.dispose()
    return {"profile": profile, "violations": violations, "seconds": round(time.perf_counter() - t, 1),
            "accesses": sim["accesses"], "employee_days": truth["employee_days"],
            "truth": truth["violations"],
            "alerts": [{**a, "indexes": sorted(a["indexes"])} for a in alerts],
            "result": {k: v for k, v in result.items() if k != "curve"}}


def measure(days: int, employees: int, seed: int = 3,
            only: tuple[str, ...] | None = None) -> dict[str, Any]:
    return pool(simulate_runs(days, employees, seed, only), days, employees, seed)


def simulate_runs(days: int, employees: int, seed: int = 3,
                  only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Each profile's honest run and run with violations (no file written)."""
    from idrs.detection import profiles

    runs = []
    for p in only or (*profiles.PROFILES, profiles.MIXED):
        for v in (False, True):
            # the mixed month has a unit per profile: at least 5 employees in each
            n = max(employees, 5 * len(profiles.PROFILES)) if p == profiles.MIXED else employees
            runs.append(_one(p, v, days, n, seed))
    return runs


def pool(runs: list[dict[str, Any]], days: int, employees: int, seed: int) -> dict[str, Any]:
    """The pooled evaluation of ``runs``; writes docs/detection_profiles.json and the curve."""
    from idrs.detection import evaluate

    # pooled ("mixed"): employee ids repeat across runs, so they are prefixed with the run
    pooled_truth: dict[str, Any] = {"violations": [], "employee_days": 0}
    pooled_alerts: list[dict[str, Any]] = []
    for r in runs:
        tag = f"{r['profile']}-{int(r['violations'])}:"
        pooled_truth["employee_days"] += r["employee_days"]
        pooled_truth["violations"] += [{**v, "seid": tag + v["seid"]} for v in r["truth"]]
        pooled_alerts += [{**a, "seid": tag + a["seid"], "indexes": set(a["indexes"])} for a in r["alerts"]]
    DOCS.mkdir(exist_ok=True)
    mixed = evaluate.score_alerts(pooled_truth, pooled_alerts, plot=DOCS / "detection_profiles_pr.png")
    table = {"days": days, "employees": employees, "seed": seed, "runs": [
        {k: r[k] for k in ("profile", "violations", "seconds", "accesses", "employee_days", "result")}
        for r in runs], "mixed": {k: v for k, v in mixed.items() if k not in ("curve", "plot")},
        "curve": mixed["curve"]}
    (DOCS / "detection_profiles.json").write_text(json.dumps(table, indent=1))
    return table


def markdown(table: dict[str, Any]) -> str:
    """The per-profile table docs/detection.md shows."""
    lines = ["| profile | run | employee-days | alerts | false alerts / 1,000 employee-days | "
             "95% upper bound | type | violations | found | precision | recall |", "|" + " --- |" * 11]
    for r in table["runs"]:
        res = r["result"]
        run = "with violations" if r["violations"] else "honest"
        head = (f"| {r['profile']} | {run} | {r['employee_days']} | {res['overall']['alerts']} | "
                f"{res['false_alerts_per_1000_employee_days']} | "
                f"{res.get('false_alerts_upper_95_per_1000_employee_days', '-')} |")
        types = [(t, m) for t, m in res["by_type"].items() if m["violations"] or m["alerts"]]
        if not r["violations"] or not types:
            lines.append(head + " - | - | - | - | - |")
            continue
        for t, m in types:
            lines.append(f"{head} {t} | {m['violations']} | {m['found']} | "
                         f"{_f(m['precision'])} | {_f(m['recall'])} |")
    mx = table["mixed"]
    lines.append(f"| **all runs pooled** | all | {mx['employee_days']} | {mx['overall']['alerts']} | "
                 f"{mx['false_alerts_per_1000_employee_days']} | "
                 f"{mx.get('false_alerts_upper_95_per_1000_employee_days', '-')} | all | {mx['overall']['violations']} | "
                 f"{mx['overall']['found']} | {_f(mx['overall']['precision'])} | "
                 f"{_f(mx['overall']['recall'])} |")
    for t, m in mx["by_type"].items():
        lines.append(f"| all runs pooled | | | | | | {t} | {m['violations']} | {m['found']} | "
                     f"{_f(m['precision'])} | {_f(m['recall'])} |")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def run(scale: str) -> list[dict[str, Any]]:
    days, employees = SIZES[scale]
    table = measure(days, employees)
    out = []
    for r in table["runs"]:
        res = r["result"]
        if r["violations"]:
            for t, m in res["by_type"].items():
                if m["violations"]:
                    out.append(figure(f"{r['profile']}: recall, {t}", m["recall"] or 0.0, "", ">= 0.95",
                                      (m["recall"] or 0.0) >= 0.95))
                if m["alerts"]:
                    out.append(figure(f"{r['profile']}: precision, {t}", m["precision"] or 0.0, "",
                                      ">= 0.9", (m["precision"] or 0.0) >= 0.9))
        else:
            fa = res["false_alerts_per_1000_employee_days"] or 0.0
            # met only when the 95% upper bound is within the goal; "not shown" is no verdict
            goal = res.get("goal")
            out.append(figure(f"{r['profile']}, honest: false alerts per 1,000 employee-days", fa, "",
                              "<= 1", {"met": True, "missed": False}.get(goal or ""),
                              f"{res['overall']['alerts']} alerts over {r['employee_days']} "
                              f"employee-days; 95% upper bound "
                              f"{res.get('false_alerts_upper_95_per_1000_employee_days')}: goal {goal}"))
    mx = table["mixed"]["overall"]
    out.append(figure("all runs pooled: precision", mx["precision"] or 0.0, "", ">= 0.9",
                      (mx["precision"] or 0.0) >= 0.9))
    out.append(figure("all runs pooled: recall", mx["recall"] or 0.0, "", ">= 0.95",
                      (mx["recall"] or 0.0) >= 0.95))
    return out


if __name__ == "__main__":  # python -m bench.bench_detection [days employees [profile...]]
    import sys

    a = sys.argv[1:]
    tbl = measure(int(a[0]) if a else 5, int(a[1]) if len(a) > 1 else 20,
                  only=tuple(a[2:]) or None)
    print(markdown(tbl))
