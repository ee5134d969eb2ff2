"""CLI of the detection domain (registered on the root app when imported).

``idrs simulate`` · ``idrs detect run|evaluate`` · ``idrs alerts list|show|assign|review|
dismiss|refer`` · ``idrs investigations list|show|open|outcome|close`` · ``idrs self-report`` · ``idrs reports weekly|certify|certification-rate`` ·
``idrs taxpayer accesses|notice``.

Who acts: ``simulate``, ``detect``, ``reports weekly`` and ``taxpayer`` are operator commands
(recorded under the OS user name); the alert queue acts as the signed-in privacy analyst, investigations as the signed-in
investigator,
``self-report`` as the signed-in employee, ``reports certify`` as the signed-in manager
(``idrs login`` first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import typer
from rich.table import Table

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, open_app, operator_actor, print_json
from idrs.cli.people import read_token
from idrs.errors import IdrsError

if TYPE_CHECKING:
    from idrs.context import App

detect_app = typer.Typer(cls=Group, help="Unauthorized-access detection over the audit log.", no_args_is_help=True)
alerts_app = typer.Typer(cls=Group, help="The privacy analysts' alert queue.", no_args_is_help=True)
investigations_app = typer.Typer(cls=Group, help="Investigations of referred alerts: open, record outcomes, close.",
                                  no_args_is_help=True)
reports_app = typer.Typer(cls=Group, help="Weekly security reports and their certification.", no_args_is_help=True)
taxpayer_app = typer.Typer(cls=Group, help="The taxpayer's side: accounting of accesses, §7431(e) notices.",
                           no_args_is_help=True)
app.add_typer(detect_app, name="detect")
app.add_typer(alerts_app, name="alerts")
app.add_typer(investigations_app, name="investigations")
app.add_typer(reports_app, name="reports")
app.add_typer(taxpayer_app, name="taxpayer")


def _signed_in(a: App) -> str:
    """The SEID behind the saved session (AccessDenied AUTH_REQUIRED otherwise)."""
    from idrs.people import auth

    return auth.authenticate(a, read_token(a.settings.home), interface="cli").seid


@overload
def _day(text: str, what: str) -> date: ...
@overload
def _day(text: None, what: str) -> None: ...
@overload
def _day(text: str | None, what: str) -> date | None: ...
def _day(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise IdrsError(f"{what}: expected YYYY-MM-DD, got {text!r}") from None


def _kv(result: Mapping[str, Any]) -> None:
    console.print(", ".join(f"{k}: {v}" for k, v in result.items()), highlight=False)


@app.command("simulate")
def simulate_cmd(
    days: int = typer.Option(30, "--days", help="simulated calendar days"),
    employees: int = typer.Option(500, "--employees"),
    seed: int = typer.Option(7, "--seed"),
    violation_rate: float = typer.Option(0.01, "--violation-rate",
                                         help="violations per employee-day"),
    truth_out: Path = typer.Option(..., "--truth-out", help="ground truth (JSON); never stored in the database"),
    start: str = typer.Option("2026-03-02", "--start", help="first simulated day (YYYY-MM-DD)"),
    workers: int = typer.Option(2, "--workers", help="processes sharing the simulation (1-16)"),
    profile: str = typer.Option(None, "--profile",
                                help="a work profile (docs/detection.md): routed, intake, bulk_assign, "
                                     "batch, team_lead, night_shift, new_employee, small_town, seasonal_peak, or "
                                     "mixed (a unit per profile); one process, its hidden violations "
                                     "instead of --violation-rate"),
    per_type: int = typer.Option(2, "--per-type", help="with --profile: hidden violations of each "
                                 "type (0: an honest run)"),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate the agency's work (and labeled browsing) through the real service path."""
    from idrs.detection import simulator

    first = _day(start, "--start")
    if profile is not None:
        from idrs.detection import profiles

        if profile not in (*profiles.PROFILES, profiles.MIXED):
            raise IdrsError(f"--profile: one of {', '.join(profiles.PROFILES)}, mixed (got {profile!r})")
        if per_type < 0:
            raise IdrsError("--per-type must not be negative")
        a = simulator.simulated_app(None, first)
        result = profiles.run_profile(a, profile, days=days, employees=employees, seed=seed,
                                      violations=per_type > 0, per_type=per_type,
                                      truth_out=truth_out,
                                      start=datetime(first.year, first.month, first.day, tzinfo=UTC))
        print_json(result) if as_json else _kv(result)
        return
    a = simulator.simulated_app(None, first)
    result = simulator.simulate(a, days=days, employees=employees, seed=seed,
                                violation_rate=violation_rate, truth_out=truth_out,
                                workers=workers,
                                start=datetime(first.year, first.month, first.day, tzinfo=UTC)
                                )
    print_json(result) if as_json else _kv(result)


EngineOpt = typer.Option(
    "duckdb", "--engine",
    help="where the log's queries run: duckdb (this machine) or spark (local mode, or the "
         "cluster IDRS_SPARK_MASTER names); the same queries on both")


@detect_app.command("run")
def detect_run(since: str = typer.Option(None, "--since", help="ISO 8601: analyse entries from this time"),
               engine: str = EngineOpt, as_json: bool = JsonOpt) -> None:
    """Explain every access, score the rest, raise alerts (continues from the last run)."""
    from idrs.analytics import engines
    from idrs.detection import service

    engine = engines.check_engine(engine)

    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise IdrsError(f"--since: not an ISO 8601 time: {since!r}") from None
    a = open_app()
    result = service.run(a, since=when, actor=operator_actor(), engine=engine)
    if as_json:
        print_json(result.as_dict())
        return
    _kv(result.summary.as_dict())
    t = Table("alert", "seid", "day", "score", "category", "signals")
    for al in result.alerts:
        t.add_row(al.alert_id, al.seid, al.day, f"{al.score:.1f}", al.category,
                  ", ".join(sorted({s['name'] for s in al.signals})))
    console.print(t)


@detect_app.command("evaluate")
def detect_evaluate(truth: Path = typer.Option(..., "--truth"),
                    plot: Path = typer.Option(None, "--plot", help="write the precision-recall curve (PNG)"),
                    as_json: bool = JsonOpt) -> None:
    """Precision, recall and F1 of the stored alerts against a simulator's ground truth."""
    from idrs.detection import evaluate

    result = evaluate.evaluate(open_app(), truth, plot=plot)
    if as_json:
        print_json(result)
        return
    t = Table("type", "violations", "found", "alerts", "precision", "recall", "F1")
    for row in evaluate.table(result):
        t.add_row(*row)
    console.print(t)
    console.print(f"alerts per 1,000 employee-days: {result['alerts_per_1000_employee_days']}; "
                  f"false alerts per 1,000 employee-days: {result['false_alerts_per_1000_employee_days']}",
                  highlight=False)
    fa = result["false_alerts_per_1000_employee_days"]
    if result["overall"]["violations"] == 0 and fa is not None:  # issue 17.2
        up = result["false_alerts_upper_95_per_1000_employee_days"]
        console.print(f"violation-free month: {fa} false alerts per 1,000 employee-days, 95% upper "
                      f"bound {up} over {result['employee_days']} employee-days "
                      f"(goal <= 1: {result['goal']})", highlight=False)
    if result.get("plot"):
        console.print(f"precision-recall curve: {result['plot']}", highlight=False)


@alerts_app.command("list")
def alerts_list(state: str = typer.Option(None, "--state"), as_json: bool = JsonOpt) -> None:
    """Alerts by score; as a signed-in analyst, only those you may work."""
    from idrs.detection import triage

    a = open_app()
    token = read_token(a.settings.home)
    analyst = _signed_in(a) if token else None
    rows = triage.list_alerts(a, state=state, analyst=analyst)
    if as_json:
        print_json({"alerts": [r.as_dict() for r in rows]})
        return
    t = Table("alert", "seid", "unit", "day", "score", "category", "state", "assignee", "self-reported")
    for r in rows:
        t.add_row(r["alert_id"], r["seid"], r["unit"], r["day"], f"{r['score']:.1f}", r["category"],
                  r["state"], r["assignee"] or "", "yes" if r["self_reported"] else "")
    console.print(t)


@alerts_app.command("show")
def alerts_show(alert: str = typer.Option(..., "--alert"), as_json: bool = JsonOpt) -> None:
    from idrs.detection import triage

    a = open_app()
    data = triage.show(a, alert, analyst=_signed_in(a)).as_dict()
    if as_json:
        print_json(data)
    else:
        console.print_json(json.dumps(data, default=str))


@alerts_app.command("assign")
def alerts_assign(alert: str = typer.Option(..., "--alert"), as_json: bool = JsonOpt) -> None:
    """Take an open alert (as the signed-in privacy analyst)."""
    from idrs.detection import triage

    a = open_app()
    r = triage.assign(a, alert_id=alert, analyst=_signed_in(a))
    print_json(r.as_dict()) if as_json else _kv(r)


@alerts_app.command("review")
def alerts_review(alert: str = typer.Option(..., "--alert"), note: str = typer.Option(..., "--note"),
                  as_json: bool = JsonOpt) -> None:
    from idrs.detection import triage

    a = open_app()
    r = triage.review(a, alert_id=alert, analyst=_signed_in(a), note=note)
    print_json(r.as_dict()) if as_json else _kv(r)


@alerts_app.command("dismiss")
def alerts_dismiss(alert: str = typer.Option(..., "--alert"), reason: str = typer.Option(..., "--reason"),
                   as_json: bool = JsonOpt) -> None:
    from idrs.detection import triage

    a = open_app()
    r = triage.dismiss(a, alert_id=alert, analyst=_signed_in(a), reason=reason)
    print_json(r.as_dict()) if as_json else _kv(r)


@alerts_app.command("refer")
def alerts_refer(alert: str = typer.Option(..., "--alert"), note: str = typer.Option("", "--note"),
                 out: Path = typer.Option(None, "--out", help="write the referral package (JSON) here"),
                 as_json: bool = JsonOpt) -> None:
    """Refer to the inspector general: evidence + entries with inclusion proofs."""
    from idrs.detection import triage

    a = open_app()
    r = triage.refer(a, alert_id=alert, analyst=_signed_in(a), note=note)
    if out is not None:
        out.write_text(json.dumps(r["package"], indent=1))
    summary = {k: v for k, v in r.items() if k != "package"}
    summary["entries_with_proofs"] = len(r["package"]["entries"])
    print_json(summary) if as_json else _kv(summary)


@investigations_app.command("list")
def investigations_list(state: str = typer.Option(None, "--state", help="referred, opened or closed"),
                        as_json: bool = JsonOpt) -> None:
    """The cases the signed-in investigator may work (never their own, their unit's)."""
    from idrs.detection import investigations

    a = open_app()
    rows = investigations.list_cases(a, investigator=_signed_in(a), state=state)
    if as_json:
        print_json({"investigations": [r.as_dict() for r in rows]})
        return
    t = Table("case", "alert", "subject", "unit", "state", "finding", "investigator", "outcomes")
    for r in rows:
        t.add_row(r["case_id"], r["alert_id"], r["subject"], r["unit"], r["state"], r["finding"] or "",
                  r["investigator"] or "", ", ".join(r["outcomes"]))
    console.print(t)


@investigations_app.command("show")
def investigations_show(case: str = typer.Option(..., "--case"), as_json: bool = JsonOpt) -> None:
    """One case: its steps, what may be done next, the notices sent (recorded)."""
    from idrs.detection import investigations

    a = open_app()
    data = investigations.show(a, case_id=case, investigator=_signed_in(a)).as_dict()
    if as_json:
        print_json(data)
    else:
        console.print_json(json.dumps(data, default=str))


@investigations_app.command("open")
def investigations_open(case: str = typer.Option(..., "--case"), reason: str = typer.Option(..., "--reason"),
                        as_json: bool = JsonOpt) -> None:
    """Take a referred case as the signed-in investigator (referred → opened)."""
    from idrs.detection import investigations

    a = open_app()
    r = investigations.open_case(a, case_id=case, investigator=_signed_in(a), reason=reason)
    print_json(r.as_dict()) if as_json else _kv(r)


@investigations_app.command("outcome")
def investigations_outcome(
    case: str = typer.Option(..., "--case"),
    outcome: str = typer.Option(..., "--outcome", help="unsubstantiated, substantiated, "
                                "adverse_action_proposed, criminal_charge or resigned"),
    reason: str = typer.Option(..., "--reason"), as_json: bool = JsonOpt,
) -> None:
    """Record an outcome; a criminal charge or a proposed adverse action issues the notices."""
    from idrs.detection import investigations
    from idrs.detection.results import CaseTriggerStep

    a = open_app()
    r = investigations.record_outcome(a, case_id=case, outcome=outcome, investigator=_signed_in(a),
                                      reason=reason)
    if as_json:
        print_json(r.as_dict())
        return
    _kv({k: v for k, v in r.items() if k != "notices"})
    if isinstance(r, CaseTriggerStep):
        sent = r.notices.sent
        console.print(f"IRC 7431(e) notices sent: {len(sent)}"
                      + (f" ({r.notices.why_none})" if not sent else ""), highlight=False)


@investigations_app.command("close")
def investigations_close(case: str = typer.Option(..., "--case"), reason: str = typer.Option(..., "--reason"),
                         as_json: bool = JsonOpt) -> None:
    """End an opened case that is substantiated or whose subject resigned."""
    from idrs.detection import investigations

    a = open_app()
    r = investigations.close(a, case_id=case, investigator=_signed_in(a), reason=reason)
    print_json(r.as_dict()) if as_json else _kv(r)


@app.command("self-report")
def self_report_cmd(audit_index: int = typer.Option(..., "--audit-index"),
                    reason: str = typer.Option(..., "--reason"), as_json: bool = JsonOpt) -> None:
    """Report your own accidental access (a mistyped TIN) within a day of it."""
    from idrs.detection import triage

    a = open_app()
    r = triage.self_report(a, token=read_token(a.settings.home), audit_index=audit_index,
                           reason=reason, interface="cli")
    print_json(r.as_dict()) if as_json else _kv(r)


@reports_app.command("weekly")
def reports_weekly(unit: str = typer.Option(..., "--unit"),
                   week: str | None = typer.Option(None, "--week", help="any day of the week (default: this week)"),
                   engine: str = EngineOpt, as_json: bool = JsonOpt) -> None:
    """Build the unit's weekly security report (refusals for conflicts, open alerts)."""
    from idrs.analytics import engines
    from idrs.detection import reports

    engine = engines.check_engine(engine)
    a = open_app()
    day = _day(week, "--week") or a.clock.now().date()
    r = reports.weekly(a, unit=unit, week=day, actor=operator_actor(), engine=engine)
    if as_json:
        print_json(r.as_dict())
        return
    rep = r.report
    console.print(f"unit {r['unit']}, week of {r['week_start']}; certified by: {r['certified_by'] or '-'}",
                  highlight=False)
    t = Table("refusals for", "count")
    for g, items in rep["conflict_refusals"].items():
        t.add_row(g, str(len(items)))
    for c, n in rep["other_refusals"].items():
        t.add_row(c, str(n))
    console.print(t)
    console.print(f"open alerts: {len(rep['open_alerts'])}", highlight=False)
    inv = rep.get("investigations")
    if inv:
        t = Table("investigation outcome", "this week", "to the week's end")
        for o, n in inv["week"]["outcomes"].items():
            t.add_row(o, str(n), str(inv["to_date"]["outcomes"].get(o, 0)))
        t.add_row("notices sent", str(inv["week"]["notices_sent"]), str(inv["to_date"]["notices_sent"]))
        console.print(t)


@reports_app.command("certify")
def reports_certify(unit: str = typer.Option(..., "--unit"), week: str = typer.Option(..., "--week"),
                    as_json: bool = JsonOpt) -> None:
    """Certify the unit's weekly report (as the signed-in manager of the unit)."""
    from idrs.detection import reports

    a = open_app()
    r = reports.certify(a, unit=unit, week=_day(week, "--week"), manager=_signed_in(a))
    print_json(r.as_dict()) if as_json else _kv({k: v for k, v in r.items() if k != "report"})


@reports_app.command("certification-rate")
def reports_rate(week: str | None = typer.Option(None, "--week"), as_json: bool = JsonOpt) -> None:
    """How many weekly reports are certified, and which units (managers) have not."""
    from idrs.detection import reports

    r = reports.certification_rate(open_app(), week=_day(week, "--week"))
    if as_json:
        print_json(r.as_dict())
        return
    console.print(f"certified {r['certified']} of {r['reports']} (rate {r['rate']})", highlight=False)
    t = Table("unit", "week", "managers")
    for m in r["not_certified"]:
        t.add_row(m["unit"], m["week_start"], ", ".join(m["managers"]))
    console.print(t)


@taxpayer_app.command("accesses")
def taxpayer_accesses(tin: str = typer.Option(..., "--tin"), as_json: bool = JsonOpt) -> None:
    """Who in the agency opened the account: date, unit, purpose (no employee identity); each
    disclosure to another agency: date, agency, basis, what."""
    from idrs.detection import taxpayer

    r = taxpayer.accesses(open_app(), tin=tin, actor=operator_actor())
    if as_json:
        print_json(r.as_dict())
        return
    t = Table("date", "unit", "purpose")
    for o in r.openings:
        t.add_row(o.date, o.unit, o.purpose)
    console.print(t)
    console.print(f"refused attempts (nothing shown): {r.refused_attempts}", highlight=False)
    d = Table("date", "agency", "basis", "disclosed")
    for x in r.disclosures:
        d.add_row(x["date"], x["agency"] or x["system"], x["statute"], x["disclosed"])
    console.print(d)


@taxpayer_app.command("notice")
def taxpayer_notice(alert: str = typer.Option(..., "--alert"),
                    out: Path = typer.Option(Path("notices"), "--out", help="folder for the HTML and PDF"),
                    as_json: bool = JsonOpt) -> None:
    """Produce the IRC §7431(e) notice(s) of an alert whose investigation recorded a criminal
    charge or a proposed adverse action (HTML + PDF), recorded as sent. The investigation
    issues them itself on the trigger; this retries one that failed (refused before it)."""
    from idrs.detection import taxpayer

    r = taxpayer.notice(open_app(), alert_id=alert, out_dir=out, actor=operator_actor())
    if as_json:
        print_json({"notices": [n.as_dict() for n in r]})
        return
    for n in r:
        console.print(f"notice {n.html} and {n.pdf} (taxpayer {n.taxpayer}, dates {', '.join(n.dates)})",
                      highlight=False)
