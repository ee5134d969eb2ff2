"""Detection on the independent workload (issue 17): precision and recall per violation type.

Runs :mod:`bench.workload_independent` (a small agency written apart from the simulator)
through the real service path into a fresh SQLite database, at each pace of :data:`PACES`,
then ``detection.service.run`` and ``detection.evaluate.score_alerts``. Per type, recall
counts the violations found (an alert about the employee citing one of its entries);
precision the true alerts among those whose category is that type (the convention of
``idrs detect evaluate``). Each run also says which alerts were false and why, so a failure
points at its signal.

Scale: quick 5 weekdays at paces 0.5, 1, 2 (three runs, as the issue's); full 10 weekdays.
``python -m bench.bench_detection_independent [days [pace ...]]`` prints the table.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from bench import figure

TITLE = "Detection on the independent workload (precision, recall per violation type)"
TYPES = ("relative", "neighbour", "contact_sweep", "undeclared_relative")
PACES = (0.5, 1.0, 2.0)
SIZES = {"full": 10, "quick": 5}
ROOT = Path("/tmp/idrs-bench-independent")


def one(d: Path, *, days: int, pace: float, seed: int = 1, violations: bool = True) -> dict[str, Any]:
    """One run in directory ``d`` (made empty): the truth, the alerts and their evaluation."""
    from bench import workload_independent
    from bench.bench_detect import _app
    from idrs.detection import evaluate, service

    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    app = _app(d)
    try:
        t = time.perf_counter()
        workload_independent.run(app, seed=seed, days=days, pace=pace, violations=violations,
                                 truth_out=d / "truth.json")
        simulated = time.perf_counter() - t
        raised = service.run(app)["alerts"]
        result = evaluate.evaluate(app, d / "truth.json")
        truth = evaluate.load_truth(d / "truth.json")
    finally:
        app.engine.dispose()
    marked = {v["seid"]: [set(x["audit_indexes"]) for x in truth["violations"] if x["seid"] == v["seid"]]
              for v in truth["violations"]}
    false = [{"seid": a["seid"], "category": a["category"], "score": a["score"],
              "signals": [s["name"] for s in a["signals"]]}
             for a in raised if not any(set(a["audit_indexes"]) & s for s in marked.get(a["seid"], []))]
    missed = [v for v in truth["violations"] if not any(
        a["seid"] == v["seid"] and set(a["audit_indexes"]) & set(v["audit_indexes"]) for a in raised)]
    return {"pace": pace, "days": days, "seconds": round(simulated, 1), "truth": truth,
            "result": {k: v for k, v in result.items() if k != "curve"}, "false": false,
            "missed": missed}


def measure(days: int, paces: tuple[float, ...] = PACES, seed: int = 1) -> list[dict[str, Any]]:
    return [one(ROOT / f"pace-{p}", days=days, pace=p, seed=seed) for p in paces]


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = ["| pace | type | violations | found | alerts | precision | recall |", "|" + " --- |" * 7]
    for r in runs:
        res = r["result"]
        o = res["overall"]
        lines.append(f"| {r['pace']} | all types | {o['violations']} | {o['found']} | {o['alerts']} | "
                     f"{_f(o['precision'])} | {_f(o['recall'])} |")
        for t, m in res["by_type"].items():
            lines.append(f"| {r['pace']} | {t} | {m['violations']} | {m['found']} | {m['alerts']} | "
                         f"{_f(m['precision'])} | {_f(m['recall'])} |")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def run(scale: str) -> list[dict[str, Any]]:
    out = []
    honest = one(ROOT / "honest", days=SIZES[scale], pace=1.0, violations=False)["result"]
    fa, up = honest["false_alerts_per_1000_employee_days"], honest["false_alerts_upper_95_per_1000_employee_days"]
    out.append(figure("honest week (pace 1): false alerts per 1,000 employee-days", fa or 0.0, "", "<= 1",
                      {"met": True, "missed": False}.get(honest["goal"] or ""),
                      f"{honest['overall']['alerts']} alerts over {honest['employee_days']} employee-days; "
                      f"95% upper bound {up}: goal {honest['goal']}"))
    for r in measure(SIZES[scale]):
        for t in TYPES:
            m = r["result"]["by_type"].get(t)
            if m is None:
                continue
            rec, prec = m["recall"] or 0.0, m["precision"]
            out.append(figure(f"pace {r['pace']}: recall, {t}", rec, "", ">= 0.95", rec >= 0.95))
            if prec is not None:
                out.append(figure(f"pace {r['pace']}: precision, {t}", prec, "", ">= 0.9", prec >= 0.9))
        o = r["result"]["overall"]
        out.append(figure(f"pace {r['pace']}: precision, all types", o["precision"] or 0.0, "", ">= 0.9",
                          (o["precision"] or 0.0) >= 0.9, f"{len(r['false'])} false alerts"))
    return out


if __name__ == "__main__":  # python -m bench.bench_detection_independent [days [pace ...]]
    import json
    import sys

    a = sys.argv[1:]
    runs = measure(int(a[0]) if a else SIZES["quick"], tuple(float(x) for x in a[1:]) or PACES)
    print(markdown(runs))
    for r in runs:
        print(f"pace {r['pace']}: {r['seconds']} s simulated; false alerts: {json.dumps(r['false'])}; "
              f"missed: {json.dumps([(v['type'], v['seid']) for v in r['missed']])}")
