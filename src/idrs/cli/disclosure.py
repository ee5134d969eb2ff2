"""CLI of disclosures to other agencies (issue 16): agreements, bulk requests, the officer's
queue, approvals, proofs.

- ``idrs disclosure agreement add|list|revoke``: operator commands (``os:<user>``);
- ``idrs disclosure submit FILE --basis B --system NAME --secret-file PATH``: the agency
  system's own submission (its credentials are exchanged for a system session first; the
  CLI never submits as an employee);
- ``approve``, ``reject``, ``queue``, ``list``, ``show``, ``proof``: as the employee signed in
  with ``idrs login`` (the disclosure officer; auditors read).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, fail, lazy, open_app, operator_actor, print_json

if TYPE_CHECKING:
    from idrs.context import App
    from idrs.disclosure import service
    from idrs.people import auth, systems
    from idrs.people.models import Employee
else:  # imported when a command runs (see common.lazy)
    service = lazy("idrs.disclosure.service")
    auth, systems = lazy("idrs.people.auth"), lazy("idrs.people.systems")

disclosure_app = typer.Typer(
    cls=Group,
    help="Disclosures to other agencies under a statute: agreements, bulk requests, approvals.",
    no_args_is_help=True,
)
agreement_app = typer.Typer(cls=Group, help="Agency systems' disclosure agreements.", no_args_is_help=True)
disclosure_app.add_typer(agreement_app, name="agreement")
app.add_typer(disclosure_app, name="disclosure")


def _signed_in(a: App) -> Employee:
    from idrs.cli.people import read_token

    return auth.authenticate(a, read_token(Path(a.settings.home)), interface="cli")


def _reader(a: App) -> service.Viewer:
    return service.Viewer(employee=_signed_in(a))


@agreement_app.command("add")
def agreement_add(
    system: str = typer.Option(..., "--system", help="the agency system (idrs system add)"),
    basis: str = typer.Option(..., "--basis", help="the statutory basis, e.g. 6103i2"),
    agency: str = typer.Option(..., "--agency", help="the agency the agreement names"),
    federal: bool = typer.Option(True, "--federal/--not-federal", help="a federal agency?"),
    ranks: str = typer.Option(..., "--ranks", help="comma-separated ranks that may sign"),
    cap_official: int = typer.Option(..., "--cap-official", help="records per named official"),
    cap_investigation: int = typer.Option(..., "--cap-investigation",
                                          help="records per investigation"),
    window_days: int = typer.Option(30, "--window-days", help="the caps' window (days)"),
    start: str | None = typer.Option(None, "--start", help="first day (YYYY-MM-DD; today)"),
    days: int = typer.Option(365, "--days", help="term in days"),
) -> None:
    """Record an agency system's agreement for one basis; prints it as JSON."""
    try:
        first = date.fromisoformat(start) if start else None
    except ValueError:
        fail("--start: a date (YYYY-MM-DD)")
    print_json(service.add_agreement(
        open_app(), system=system, basis=basis, agency=agency, federal=federal,
        ranks=ranks.split(","), cap_official=cap_official, cap_investigation=cap_investigation,
        window_days=window_days, start=first, days=days, actor=operator_actor()))


@agreement_app.command("list")
def agreement_list(system: str | None = typer.Option(None, "--system"),
                   json_out: bool = JsonOpt) -> None:
    """Disclosure agreements with their state (active, not_started, expired, revoked)."""
    rows = service.list_agreements(open_app(), system=system)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    t = Table("id", "system", "basis", "agency", "federal", "ranks", "caps", "term", "state")
    for r in rows:
        t.add_row(str(r["agreement_id"]), r["system"], r["basis"], r["agency"],
                  str(r["federal"]), ",".join(r["ranks"]),
                  f"{r['cap_official']}/{r['cap_investigation']} per {r['window_days']}d",
                  f"{r['start']}..{r['end']}", r["state"])
    console.print(t)


@agreement_app.command("revoke")
def agreement_revoke(agreement_id: int = typer.Argument(...)) -> None:
    """Revoke an agreement: the system's next batch under it is refused (AGREEMENT_REVOKED)."""
    print_json(service.revoke_agreement(open_app(), agreement_id=agreement_id,
                                        actor=operator_actor()))


@disclosure_app.command("submit")
def submit(
    file: Path = typer.Argument(..., help='JSON {"request": {...}, "records": [...]}'),
    basis: str = typer.Option(..., "--basis", help="the statutory basis, e.g. 6103i2"),
    system: str = typer.Option(..., "--system", help="the requesting agency system"),
    secret_file: Path = typer.Option(..., "--secret-file",
                                     help="a file holding the system's secret"),
) -> None:
    """Submit a batch as the agency system; prints the batch and every decision as JSON."""
    try:
        body: Any = json.loads(file.read_text())
        secret = secret_file.read_text().strip()
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{file}: not JSON ({exc})")
    if not isinstance(body, dict):
        fail(f"{file}: a JSON object with request and records")
    a = open_app()
    session = systems.start_session(a, name=system, secret=secret, interface="cli")
    me = systems.authenticate(a, session["token"], kinds=frozenset({systems.AGENCY_SYSTEM}),
                              what="a disclosure request", interface="cli")
    print_json(service.submit(a, me, basis=basis, request=body.get("request"),
                              records=body.get("records"), interface="cli"))


@disclosure_app.command("approve")
def approve(batch: str = typer.Argument(...)) -> None:
    """Approve a batch held over its caps (the signed-in disclosure officer); decides it."""
    a = open_app()
    out = service.approve(a, _signed_in(a), batch, interface="cli")
    print_json({k: v for k, v in out.items() if k != "decisions"})


@disclosure_app.command("reject")
def reject(batch: str = typer.Argument(...)) -> None:
    """Reject a held batch: every record refused (CAP_NOT_APPROVED)."""
    a = open_app()
    out = service.reject(a, _signed_in(a), batch, interface="cli")
    print_json({k: v for k, v in out.items() if k != "decisions"})


@disclosure_app.command("queue")
def queue(json_out: bool = JsonOpt) -> None:
    """Held batches with their counts against the caps; refused records and why."""
    a = open_app()
    out = service.queue(a, _signed_in(a), interface="cli")
    if json_out:
        print_json(out)
        return
    for b in out["held"]:
        c = b["counts"]
        console.print(f"held {b['batch_id']} from {b['system']} ({b['basis']}): {b['records']} "
                      f"records; caps {c['cap_official']}/official, "
                      f"{c['cap_investigation']}/investigation in {c['window_days']} days",
                      highlight=False)
        for kind in ("officials", "investigations"):
            for r in c[kind]:
                if r["over"]:
                    console.print(f"  over: {kind[:-1]} {r['name']}: {r['window']} "
                                  f"(this batch {r['batch']}, cap {r['cap']})", highlight=False)
    console.print(f"refused records listed: {len(out['refused'])}", highlight=False)


@disclosure_app.command("list")
def list_batches(
    status: str | None = typer.Option(None, "--status", help="held, decided or rejected"),
    system: str | None = typer.Option(None, "--system"),
    json_out: bool = JsonOpt,
) -> None:
    """Disclosure batches, newest first."""
    a = open_app()
    out = service.list_batches(a, _reader(a), status=status, system=system, interface="cli")
    if json_out:
        print_json(out)
        return
    from rich.table import Table

    t = Table("batch", "system", "basis", "status", "records", "disclosed", "refused", "entry")
    for b in out["batches"]:
        t.add_row(b["batch_id"], b["system"], b["basis"], b["status"], str(b["records"]),
                  str(b["disclosed"]), str(b["refused"]), str(b["audit_index"]))
    console.print(t)


@disclosure_app.command("show")
def show(batch: str = typer.Argument(...),
         outcome: str | None = typer.Option(None, "--outcome", help="disclosed or refused"),
         limit: int = typer.Option(1000, "--limit"), offset: int = typer.Option(0, "--offset"),
         ) -> None:
    """One batch and its decisions as JSON."""
    a = open_app()
    print_json(service.get_batch(a, _reader(a), batch, limit=max(1, min(limit, 100_000)),
                                 offset=max(0, offset), outcome=outcome, interface="cli"))


@disclosure_app.command("proof")
def proof(batch: str = typer.Argument(...), line: int = typer.Argument(...)) -> None:
    """One record's decision document, leaf hash, inclusion proof and root, as JSON."""
    a = open_app()
    print_json(service.proof(a, _reader(a), batch, line, interface="cli"))
