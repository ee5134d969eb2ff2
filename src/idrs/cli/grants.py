"""CLI of outside access: clearance, agreements, training, grants, exports, oversight report.

Operator commands (``clearance verify``, ``agreement add``, ``grant request``, ``training
attest --seid``) act with the local operator's authority (``os:<user>``). Signing, approving,
revoking, attesting one's own training and exporting act as the employee signed in with
``idrs login``, and take a freshly entered one-time code where the issue asks for one.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import typer

from idrs.audit.events import Actor
from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, lazy, open_app, operator_actor, print_json
from idrs.errors import IdrsError, NotFound, ValidationFailed

if TYPE_CHECKING:
    from idrs.context import App
    from idrs.grants import anonymized, exports, service, statistics
    from idrs.people import auth
    from idrs.people.models import Employee
else:  # imported when a command runs (see common.lazy)
    exports, service = lazy("idrs.grants.exports"), lazy("idrs.grants.service")
    anonymized = lazy("idrs.grants.anonymized")
    statistics = lazy("idrs.grants.statistics")
    auth = lazy("idrs.people.auth")

clearance_app = typer.Typer(cls=Group, help="Security clearance verifications.", no_args_is_help=True)
agreement_app = typer.Typer(cls=Group, help="Confidentiality agreements and signatures.", no_args_is_help=True)
training_app = typer.Typer(cls=Group, help="UNAX training attestations.", no_args_is_help=True)
grant_app = typer.Typer(cls=Group, help="Time-limited access grants and their approvals.", no_args_is_help=True)
export_app = typer.Typer(cls=Group, help="Registered exports and their destruction.", no_args_is_help=True)
oversight_app = typer.Typer(cls=Group, help="Reports for oversight bodies.", no_args_is_help=True)
anonymized_app = typer.Typer(cls=Group, help="Anonymized records under your anonymized grant, by pseudonym.",
                             no_args_is_help=True)
app.add_typer(clearance_app, name="clearance")
app.add_typer(agreement_app, name="agreement")
app.add_typer(training_app, name="training")
app.add_typer(grant_app, name="grant")
app.add_typer(export_app, name="export")
app.add_typer(oversight_app, name="oversight")
app.add_typer(anonymized_app, name="anonymized")
statistics_app = typer.Typer(cls=Group, help="Differentially private statistics under your statistics grant.",
                             no_args_is_help=True)
app.add_typer(statistics_app, name="statistics")


def _operator() -> Actor:
    return Actor(operator_actor(), "cli")


def _token(a: App) -> str | None:
    from idrs.cli.people import read_token

    return read_token(Path(a.settings.home))


def _signed_in(a: App) -> Employee:
    """The employee signed in here (``idrs login``); AccessDenied AUTH_REQUIRED otherwise."""
    return auth.authenticate(a, _token(a), interface="cli")


def _otp(otp: str | None) -> str:
    return otp if otp else typer.prompt("one-time code", hide_input=False)


@overload
def _day(value: str, what: str) -> date: ...
@overload
def _day(value: None, what: str) -> None: ...
@overload
def _day(value: str | None, what: str) -> date | None: ...
def _day(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed([f"{what}: not a date (YYYY-MM-DD): {value!r}"]) from None


def _show(obj: dict[str, Any], json_out: bool, line: str) -> None:
    if json_out:
        print_json(obj)
    else:
        console.print(line, markup=False, highlight=False)


# -- clearance, agreements, training -----------------------------------------------------------


@clearance_app.command("verify")
def clearance_verify(
    seid: str = typer.Option(..., "--seid", help="whose clearance was verified"),
    by: str = typer.Option(..., "--by", help="SEID of the person who verified it"),
    note: str | None = typer.Option(None, "--note"),
    json_out: bool = JsonOpt,
) -> None:
    """Record a security clearance as verified (by whom, now)."""
    out = service.verify_clearance(open_app(), seid=seid, by=by, actor=_operator(), note=note)
    _show(out.as_dict(), json_out, f"clearance of {out.seid} verified by {out.verified_by}")


@agreement_app.command("add")
def agreement_add(
    title: str = typer.Option(..., "--title"),
    file: Path = typer.Option(..., "--file", help="the agreement text (UTF-8)"),
    json_out: bool = JsonOpt,
) -> None:
    """Store a new version of an agreement; prints {"agreement_id", "sha256"} with --json."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdrsError(f"cannot read {file}: {exc}") from None
    out = service.add_agreement(open_app(), title=title, text=text, actor=_operator())
    _show(out.as_dict(), json_out, f"agreement {out.agreement_id} ({out.title} v{out.version}) "
                                   f"sha256 {out.sha256}")


@agreement_app.command("sign")
def agreement_sign(
    agreement_id: int = typer.Option(..., "--id", help="the agreement version to sign"),
    otp: str | None = typer.Option(None, "--otp", help="a fresh one-time code"),
    json_out: bool = JsonOpt,
) -> None:
    """Sign the current version of an agreement as the signed-in employee."""
    a = open_app()
    out = service.sign_agreement(a, _signed_in(a), agreement_id=agreement_id, otp=_otp(otp))
    _show(out.as_dict(), json_out, f"signed agreement {agreement_id} (sha256 {out.sha256})")


@training_app.command("attest")
def training_attest(
    otp: str | None = typer.Option(None, "--otp", help="a fresh one-time code (signed in)"),
    seid: str | None = typer.Option(None, "--seid",
                                    help="operator: record an attestation taken elsewhere"),
    json_out: bool = JsonOpt,
) -> None:
    """Attest UNAX training (yourself, with a code; or --seid as the operator)."""
    a = open_app()
    if seid:
        out = service.record_training(a, seid=seid, actor=_operator())
    else:
        out = service.attest_training(a, _signed_in(a), otp=_otp(otp))
    _show(out.as_dict(), json_out, f"UNAX training of {out.seid} valid until {out.valid_until}")


# -- grants ----------------------------------------------------------------------------------


@grant_app.command("request")
def grant_request(
    principal: str = typer.Option(..., "--principal"),
    purpose: str = typer.Option(..., "--purpose"),
    basis: str = typer.Option(..., "--basis", help="legal basis (the provision cited)"),
    commands: str | None = typer.Option(None, "--commands",
                                        help="e.g. ENMOD,IMFOL (none for --kind statistics)"),
    classes: str | None = typer.Option(None, "--classes",
                                       help="e.g. identity,return (none for --kind statistics)"),
    population: str | None = typer.Option(None, "--population",
                                          help="cases|all|anonymized (implied by --kind anonymized)"),
    kind: str | None = typer.Option(None, "--kind", help="records|anonymized|statistics"),
    k: int | None = typer.Option(None, "--k", help="anonymized grants: k of k-anonymity (10)"),
    epsilon: float | None = typer.Option(None, "--epsilon",
                                         help="statistics grants: the privacy budget ε in all"),
    delta: float | None = typer.Option(None, "--delta",
                                       help="statistics grants: δ in all (default 1e-6)"),
    allow_changes: bool = typer.Option(False, "--allow-changes"),
    start: str = typer.Option(..., "--start", help="YYYY-MM-DD (UTC)"),
    days: int | None = typer.Option(None, "--days", help="term in days (default 120)"),
    end: str | None = typer.Option(None, "--end", help="YYYY-MM-DD, instead of --days"),
    renewal_of: int | None = typer.Option(None, "--renewal-of"),
    daily_limit: int | None = typer.Option(None, "--daily-limit"),
    agreement: str | None = typer.Option(None, "--agreement", help="agreement title"),
    json_out: bool = JsonOpt,
) -> None:
    """Request a grant; prints {"grant_id", "status"} with --json."""
    out = service.request_grant(
        open_app(), principal=principal, purpose=purpose, basis=basis, commands=commands,
        classes=classes, population=population, allow_changes=allow_changes,
        start=_day(start, "start"), days=days, end=_day(end, "end"),
        renewal_of=renewal_of, daily_limit=daily_limit, agreement=agreement, kind=kind, k=k,
        epsilon=epsilon, delta=delta, actor=_operator())
    _show(out.as_dict(), json_out, f"grant {out.grant_id} {out.status} ({out.start} to {out.end})")


@grant_app.command("show")
def grant_show(grant_id: int = typer.Argument(...), json_out: bool = JsonOpt) -> None:
    """One grant: state, scope, term, approvals, prerequisites, exports."""
    out = service.show_grant(open_app(), grant_id)
    if json_out:
        print_json(out)
        return
    console.print(f"grant {out['grant_id']} for {out['principal']} ({out['principal_kind']}): "
                  f"{out['status']}", markup=False)
    for key in ("purpose", "legal_basis", "commands", "classes", "population", "kind", "k",
                "epsilon", "delta", "epsilon_spent", "budget_left", "access", "allow_changes", "start", "end", "approvals", "prerequisites",
                "exports_outstanding"):
        console.print(f"  {key}: {out[key]}", markup=False, highlight=False)


@grant_app.command("list")
def grant_list(
    principal: str | None = typer.Option(None, "--principal"),
    state: str | None = typer.Option(None, "--state"),
    json_out: bool = JsonOpt,
) -> None:
    """Every grant (newest first)."""
    rows = service.list_grants(open_app(), principal=principal, state=state)
    if json_out:
        print_json({"grants": rows})
        return
    for r in rows:
        flag = "  EXPORTS OUTSTANDING" if r["exports_outstanding"] else ""
        console.print(f"{r['grant_id']:>5} {r['principal']:<8} {r['status']:<17} {r['start']} "
                      f"{r['end']} {r['population']}{flag}", markup=False, highlight=False)


@grant_app.command("approve")
def grant_approve(
    grant_id: int = typer.Argument(...),
    otp: str | None = typer.Option(None, "--otp", help="a freshly entered one-time code"),
    json_out: bool = JsonOpt,
) -> None:
    """Approve a grant as the signed-in privacy officer or authorizing official."""
    a = open_app()
    out = service.approve_grant(a, _signed_in(a), grant_id=grant_id, otp=_otp(otp))
    _show(out.as_dict(), json_out, f"grant {grant_id}: {out.role} approval recorded; {out.status}")


@grant_app.command("revoke")
def grant_revoke(
    grant_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason"),
    json_out: bool = JsonOpt,
) -> None:
    """Revoke a grant (either approving role); effective on the principal's next request."""
    a = open_app()
    out = service.revoke_grant(a, _signed_in(a), grant_id=grant_id, reason=reason)
    _show(out.as_dict(), json_out, f"grant {grant_id} revoked")


@grant_app.command("end")
def grant_end(
    grant_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason"),
    json_out: bool = JsonOpt,
) -> None:
    """End a grant early (the detail is over)."""
    a = open_app()
    out = service.end_grant(a, _signed_in(a), grant_id=grant_id, reason=reason)
    _show(out.as_dict(), json_out, f"grant {grant_id} ended")


@grant_app.command("alerts")
def grant_alerts(json_out: bool = JsonOpt) -> None:
    """Raise (and list) "exports outstanding" alerts for grants that are over."""
    raised = service.check_outstanding(open_app())
    _show({"alerts": [a.as_dict() for a in raised]}, json_out, f"{len(raised)} new alert(s)")


# -- exports ---------------------------------------------------------------------------------


@export_app.command("create")
def export_create(
    command: str = typer.Option(..., "--command"),
    tins: str = typer.Option(..., "--tins", help="comma-separated TINs"),
    fmt: str = typer.Option("csv", "--format", help="csv|pdf"),
    out: Path = typer.Option(..., "--out", help="file to write"),
    year: int | None = typer.Option(None, "--year"),
    case: str | None = typer.Option(None, "--case"),
    reason: str | None = typer.Option(None, "--reason"),
    json_out: bool = JsonOpt,
) -> None:
    """Export research results (each TIN decided and recorded) as a registered file."""
    a = open_app()
    if out.exists():
        raise IdrsError(f"{out} exists; choose a new file")
    f = exports.create_export(a, token=_token(a), command=command,
                              tins=[t for t in tins.split(",") if t.strip()], fmt=fmt, year=year,
                              case=case, reason=reason, interface="cli")
    out.write_bytes(f.content)
    out.chmod(0o600)
    _show({**f.summary(), "out": str(out)}, json_out,
          f"export {f.export_id}: {f.taxpayers} taxpayer(s) written to {out}")


@export_app.command("destroy")
def export_destroy(
    export_id: str = typer.Argument(...),
    method: str = typer.Option(..., "--method", help="e.g. 'shredded', 'crypto-erase'"),
    witness: str = typer.Option(..., "--witness", help="SEID of the witness"),
    at: str | None = typer.Option(None, "--at", help="ISO 8601 time of destruction (default now)"),
    json_out: bool = JsonOpt,
) -> None:
    """Certify, as the holder signed in, that an export was destroyed (with a witness)."""
    a = open_app()
    when = None
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise ValidationFailed([f"at: not an ISO 8601 time: {at!r}"]) from None
    res = exports.destroy_export(a, _signed_in(a), export_id=export_id, method=method,
                                 witness_seid=witness, destroyed_at=when)
    _show(res.as_dict(), json_out, f"export {export_id} certified destroyed")


@export_app.command("show")
def export_show(export_id: str = typer.Argument(...), json_out: bool = JsonOpt) -> None:
    """One export's register entry (counts and pseudonyms, never TINs)."""
    from idrs.db import session_scope

    with session_scope(open_app().engine) as s:
        out = exports.export_view(s, export_id)
    _show(out, json_out, f"export {export_id}: {out['taxpayers']} taxpayer(s), "
                         f"{'destroyed' if out['destroyed'] else 'outstanding'}")


# -- oversight -------------------------------------------------------------------------------


@oversight_app.command("report")
def oversight_report(
    grant: int | None = typer.Option(None, "--grant"),
    seids: str | None = typer.Option(None, "--seids", help="S1,S2,…"),
    unit: str | None = typer.Option(None, "--unit"),
    system: str | None = typer.Option(None, "--system", help="an agency system (disclosures)"),
    start: str | None = typer.Option(None, "--from", help="YYYY-MM-DD"),
    end: str | None = typer.Option(None, "--to", help="YYYY-MM-DD"),
    fmt: str = typer.Option(..., "--format", help="html|pdf|json|csv"),
    out: Path = typer.Option(..., "--out"),
    engine: str = typer.Option(
        "duckdb", "--engine",
        help="where the actual access is computed from the log: duckdb (this machine) or "
             "spark (local mode, or the cluster IDRS_SPARK_MASTER names); the same query"),
) -> None:
    """Potential and actual access of a grant's principal, some SEIDs or a unit; potential
    and actual disclosures of an agency system."""
    from idrs.analytics import engines
    from idrs.oversight import render, report

    if fmt.lower() not in render.FORMATS:
        raise ValidationFailed([f"format: one of {', '.join(render.FORMATS)}"])
    engine = engines.check_engine(engine)
    a = open_app()
    rep = report.build(a, grant_id=grant, seids=seids.split(",") if seids else None, unit=unit,
                       system=system, start=_day(start, "from"), end=_day(end, "to"),
                       actor=_operator(), engine=engine)
    out.write_bytes(render.render(rep, fmt))
    console.print(f"report written to {out} (checkpoint tree size "
                  f"{rep['checkpoint']['tree_size']})", markup=False, highlight=False)


# -- anonymized grants -------------------------------------------------------------------------


def _signed_in_actor(a: App) -> tuple[Employee, Actor]:
    emp = _signed_in(a)
    return emp, Actor(emp.seid, "cli")


@anonymized_app.command("records")
def anonymized_records(
    limit: int = typer.Option(100, "--limit", help="at most this many records (1-1000)"),
    sample: bool = typer.Option(False, "--sample", help="a random sample instead of a listing"),
    grant: int | None = typer.Option(None, "--grant", help="which anonymized grant (if several)"),
    tax_year: int | None = typer.Option(None, "--tax-year"),
    filing_status: str | None = typer.Option(None, "--filing-status"),
    state: str | None = typer.Option(None, "--state"),
    zip3: str | None = typer.Option(None, "--zip3"),
    agi_band: str | None = typer.Option(None, "--agi-band", help="a band as released"),
    json_out: bool = JsonOpt,
) -> None:
    """Released records of your anonymized grant (k-anonymous, by pseudonym)."""
    a = open_app()
    emp, actor = _signed_in_actor(a)
    filters = {"tax_year": tax_year, "filing_status": filing_status, "state": state,
               "zip3": zip3, "agi_band": agi_band}
    out = anonymized.list_records(a, emp, filters=filters, limit=limit, sample=sample,
                                  grant_id=grant, actor=actor)
    if json_out:
        print_json(out)
        return
    console.print(f"grant {out['grant_id']}: k={out['k']} level {out['level']}, "
                  f"{len(out['records'])} shown of {out['matched']}, "
                  f"{out['suppressed']} suppressed", markup=False, highlight=False)
    for r in out["records"]:
        console.print(" ".join(str(r[k]) for k in ("pseudonym", *anonymized.QUASI_IDENTIFIERS)),
                      markup=False, highlight=False)


@anonymized_app.command("record")
def anonymized_record(
    pseudonym: str = typer.Argument(...),
    grant: int | None = typer.Option(None, "--grant", help="which anonymized grant (if several)"),
    json_out: bool = JsonOpt,
) -> None:
    """One released record by its pseudonym under your anonymized grant."""
    a = open_app()
    emp, actor = _signed_in_actor(a)
    out = anonymized.show_record(a, emp, pseudonym, grant_id=grant, actor=actor)
    _show(out, json_out, " ".join(f"{k}={v}" for k, v in out["record"].items()))


@grant_app.command("reidentify")
def grant_reidentify(
    grant_id: int = typer.Argument(...),
    pseudonym: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    json_out: bool = JsonOpt,
) -> None:
    """The taxpayer behind one pseudonym of an anonymized grant (security staff; recorded)."""
    a = open_app()
    emp, actor = _signed_in_actor(a)
    out = anonymized.reidentify(a, emp, grant_id=grant_id, pseudonym=pseudonym, reason=reason,
                                actor=actor)
    _show(out.as_dict(), json_out, f"{out.pseudonym}: TIN {out.tin}, tax year {out.tax_year}")


@grant_app.command("rotate-key")
def grant_rotate_key(grant_id: int = typer.Argument(...), json_out: bool = JsonOpt) -> None:
    """A new pseudonym key version for an anonymized grant (earlier pseudonyms stop working)."""
    a = open_app()
    emp, actor = _signed_in_actor(a)
    out = anonymized.rotate_key(a, emp, grant_id=grant_id, actor=actor)
    _show(out.as_dict(), json_out, f"grant {grant_id}: pseudonym key version {out.key_version}")


# -- statistics grants ------------------------------------------------------------------------


def _filter_value(name: str, raw: str) -> Any:
    if name == "adoption_pending":
        if raw.lower() not in ("true", "false"):
            raise ValidationFailed([f"--filter {name}: true or false"])
        return raw.lower() == "true"
    if "," in raw:
        return [v.strip() for v in raw.split(",")]
    return raw


def _statistics_filters(items: list[str]) -> dict[str, Any]:
    """``--filter state=CA``, ``--filter state=CA,NY``, ``--filter refund.min=1000``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValidationFailed([f"--filter {item!r}: NAME=VALUE (or COLUMN.min=DOLLARS)"])
        if "." in name:
            col, _, end = name.partition(".")
            if end not in ("min", "max") or not raw.strip().lstrip("-").isdigit():
                raise ValidationFailed([f"--filter {item!r}: COLUMN.min=DOLLARS or .max"])
            out.setdefault(col, {})[end] = int(raw)
        else:
            out[name] = _filter_value(name, raw.strip())
    return out


@statistics_app.command("run")
def statistics_run(
    aggregate: str = typer.Option(..., "--aggregate", help="count|sum|mean"),
    group_by: str | None = typer.Option(None, "--group-by",
                                        help="e.g. state,filing_status (tax_year, filing_status, "
                                        "state, zip3, agi_band)"),
    column: str | None = typer.Option(None, "--column", help="sum/mean: agi|wages|refund|total_tax"),
    bounds: str | None = typer.Option(None, "--bounds", help="sum/mean: LO,HI in whole dollars"),
    filters: list[str] = typer.Option([], "--filter",  # noqa: B008
                                      help="NAME=VALUE[,VALUE] or COLUMN.min=DOLLARS (repeat)"),
    epsilon: float | None = typer.Option(None, "--epsilon", help="this query's ε (default 0.1)"),
    grant: int | None = typer.Option(None, "--grant", help="which statistics grant (if several)"),
    json_out: bool = JsonOpt,
) -> None:
    """One differentially private query (OpenDP), spent from your statistics grant's budget."""
    body: dict[str, Any] = {"aggregate": aggregate, "filters": _statistics_filters(filters)}
    if group_by:
        body["group_by"] = [c.strip() for c in group_by.split(",") if c.strip()]
    if column is not None:
        body["column"] = column
    if bounds is not None:
        parts = [p.strip() for p in bounds.split(",")]
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ValidationFailed(["--bounds: LO,HI in whole dollars, e.g. 0,200000"])
        body["bounds"] = [int(p) for p in parts]
    if epsilon is not None:
        body["epsilon"] = epsilon
    if grant is not None:
        body["grant"] = grant
    a = open_app()
    emp, actor = _signed_in_actor(a)
    out = statistics.run(a, emp, body, actor=actor)
    if json_out:
        print_json(out)
        return
    console.print(f"grant {out['grant_id']}: ε spent {out['epsilon_spent']:g}, "
                  f"left {out['budget_left']:g}; {out['accuracy']['meaning']}",
                  markup=False, highlight=False)
    for r in out["rows"]:
        keys = " ".join(f"{c}={r[c]}" for c in body.get("group_by", []))
        console.print(f"{keys} {r['value']} [{r['low']}, {r['high']}]".strip(),
                      markup=False, highlight=False)


@statistics_app.command("budget")
def statistics_budget(
    grant: int | None = typer.Option(None, "--grant", help="which statistics grant (if several)"),
    json_out: bool = JsonOpt,
) -> None:
    """Your active statistics grant's privacy budget: ε in all, spent, left."""
    a = open_app()
    emp, _ = _signed_in_actor(a)
    out = statistics.budget(a, emp, grant_id=grant)
    if out is None:
        raise NotFound("you hold no active statistics grant")
    _show(out.as_dict(), json_out, f"grant {out.grant_id}: ε {out.epsilon:g} in all, "
                                   f"spent {out.epsilon_spent:g}, left {out.budget_left:g}")
