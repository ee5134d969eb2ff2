"""Rendering the oversight report: JSON, CSV, and HTML or PDF through ``idrs.documents``.

Charts are matplotlib PNGs embedded as ``data:`` URIs, so the HTML is one self-contained
file a browser opens as a readable document and the PDF is the same page laid out. Pure
apart from the libraries: takes the report dict, returns bytes.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from idrs import documents
from idrs.documents.charts import png_data_uri, pyplot
from idrs.errors import ValidationFailed

FORMATS = ("html", "pdf", "json", "csv")


#: the answers an HTML or PDF report lists one by one (JSON and CSV list every one)
MAX_LISTED = 1000


def charts(report: dict[str, Any]) -> dict[str, str | None]:
    """Two charts: accesses and denials per day; data classes touched.

    A chart with nothing to show is None (the document says so in words rather than draw
    empty axes).
    """
    days = report["actual"]["per_day"]
    classes = {k: v for k, v in report["actual"]["totals"]["accesses_by_class"].items() if v}
    busy = any(d["accesses"] or d["denials"] for d in days)
    return {"per_day": _per_day_chart(days) if busy else None,
            "classes": _classes_chart(classes) if classes else None}


def _per_day_chart(days: list[dict[str, Any]]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.8))
    xs = list(range(len(days)))
    ax.bar(xs, [d["accesses"] for d in days], color="#3b6ea5", label="accesses")
    ax.bar(xs, [d["denials"] for d in days], bottom=[d["accesses"] for d in days],
           color="#c0392b", label="denials")
    step = max(1, len(days) // 10)
    ax.set_xticks(xs[::step], [d["day"][5:] for d in days][::step], fontsize=7)
    # from zero, with room above the tallest bar for the legend
    ax.set_ylim(0, max(d["accesses"] + d["denials"] for d in days) * 1.3)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("requests")
    ax.set_title("Accesses and denials per day (UTC)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return png_data_uri(fig)


def _classes_chart(classes: dict[str, int]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.6))
    names = sorted(classes)
    ax.barh(names, [classes[n] for n in names], color="#6c5b7b")
    ax.set_xlim(left=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("allowed answers carrying the class")
    ax.set_title("Data classes touched", fontsize=9)
    return png_data_uri(fig)


def to_json(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=2, sort_keys=False, default=str).encode()


def to_csv(report: dict[str, Any]) -> bytes:
    """One row per figure: section, principal, measure, key, value."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "seid", "measure", "key", "value"])
    ck = report["checkpoint"]
    w.writerow(["checkpoint", "", "tree_size", "", ck["tree_size"]])
    w.writerow(["checkpoint", "", "root_hash", "", ck["root_hash"]])
    for p in report["potential"]:
        for c in p["commands"]:
            w.writerow(["potential", p["seid"], "taxpayers", c["command"], c["taxpayers"]])
            if c.get("reachable"):
                w.writerow(["potential", p["seid"], "population", c["command"], c["population"]])
        w.writerow(["potential", p["seid"], "can_change", "", p["can_change"]])
        w.writerow(["potential", p["seid"], "classes", "", " ".join(p["classes"])])
        for k, v in p["sensitive_reachable"].items():
            w.writerow(["potential", p["seid"], "sensitive_reachable", k, v])
        for g in p["grants"]:
            w.writerow(["potential", p["seid"], "grant", g["grant_id"],
                        f"{g['status']} {g['start']}..{g['end']} {g['population']}"])
            w.writerow(["potential", p["seid"], "grant_access", g["grant_id"], g["access"]])
            if g.get("kind") == "statistics":
                w.writerow(["potential", p["seid"], "grant_budget", g["grant_id"],
                            f"epsilon {g['epsilon']} spent {g['epsilon_spent']} "
                            f"left {g['budget_left']} delta {g['delta']} "
                            f"spent {g['delta_spent']}"])
    for p in report["actual"]["principals"]:
        for measure in ("accesses_by_command", "accesses_by_class", "denials_by_reason",
                        "sensitive_accounts_touched"):
            for k, v in p[measure].items():
                w.writerow(["actual", p["seid"], measure, k, v])
        w.writerow(["actual", p["seid"], "distinct_taxpayers", "", p["distinct_taxpayers"]])
    for d in report["actual"]["per_day"]:
        w.writerow(["per_day", "", "accesses", d["day"], d["accesses"]])
        w.writerow(["per_day", "", "denials", d["day"], d["denials"]])
    for a in report["actual"]["alerts"]:
        w.writerow(["alert", a.get("seid") or "", a["category"], a["alert_id"], a["status"]])
    for e in report["actual"]["exports"]:
        w.writerow(["export", e["holder"] or "", "destroyed" if e["destroyed"] else "outstanding",
                    e["export_id"], e["taxpayers"]])
    _answer_rows(w, report)
    for x in report.get("systems", []):
        for k in ("batches", "records", "disclosed", "refused", "distinct_taxpayers_disclosed"):
            w.writerow(["disclosures", x["system"], k, "", x["actual"][k]])
        for code, n in x["actual"]["refusals_by_reason"].items():
            w.writerow(["disclosures", x["system"], "refusals_by_reason", code, n])
        w.writerow(["potential_disclosures", x["system"], "taxpayers_reachable", "",
                    x["potential"]["taxpayers_reachable"]])
    return buf.getvalue().encode()


def _answer_rows(w: Any, report: dict[str, Any]) -> None:
    """CSV: one ``answer`` row per committed answer (key: entry index; value: commitment)
    and the witnesses' cosignatures on the checkpoint covering them."""
    answers = report.get("answers")
    if not answers:
        return
    for wit in answers["checkpoint"]["witnesses"]:
        w.writerow(["witness", "", "cosigned", wit["name"], wit["cosigned"]])
    for a in answers["items"]:
        w.writerow(["answer", a["seid"], a["command"] or a["type"], a["index"], a["commitment"]])


def _document(report: dict[str, Any]) -> documents.OversightReport:
    return documents.OversightReport(report=report, charts=charts(report),
                                     max_listed=MAX_LISTED)


def to_html(report: dict[str, Any]) -> bytes:
    return documents.html(_document(report)).encode()


def to_pdf(report: dict[str, Any]) -> bytes:
    return documents.pdf(_document(report))


def render(report: dict[str, Any], fmt: str) -> bytes:
    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise ValidationFailed([f"format: one of {', '.join(FORMATS)}"])
    return {"html": to_html, "pdf": to_pdf, "json": to_json, "csv": to_csv}[fmt](report)
