"""``idrs adjust request|approve|reject|pending|reverse``: adjustments as the signed-in employee.

The session token comes from ``idrs login`` (IDRS_HOME). Each subcommand calls one function
of ``idrs.adjustments.service``; a refusal prints its reason codes and exits 1, a conflict or
bad input prints one line and exits 1. ``--json`` prints the answer as one JSON document.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, lazy, open_app, print_json
from idrs.cli.people import read_token
from idrs.errors import ValidationFailed
from idrs.vocabulary import ADJUSTMENT_CODES

if TYPE_CHECKING:
    from idrs.adjustments import service
else:  # imported when a command runs (see common.lazy)
    service = lazy("idrs.adjustments.service")

adjust_app = typer.Typer(cls=Group, help="Adjustments: request, approve, reject, list pending, reverse.",
                         no_args_is_help=True)
app.add_typer(adjust_app, name="adjust")


def _show(res: service.AdjustmentResult, json_out: bool) -> None:
    if json_out:
        print_json(res.as_dict())
        return
    extra = f" (requires {', '.join(res.requires)})" if res.requires else ""
    version = f", version {res.version}" if res.version is not None else ""
    console.print(f"adjustment {res.adjustment_id}: {res.status}{extra}{version}"
                  f" [dim](audit index {res.audit_index})[/dim]")
    for reason in res.reasons:
        console.print(f"  {reason['code']}: {reason['message']}", markup=False)


@adjust_app.command("request")
def request_cmd(
    command: str = typer.Argument(
        ..., help=", ".join(ADJUSTMENT_CODES[:-1]) + " or " + ADJUSTMENT_CODES[-1]
    ),
    tin: str = typer.Argument(..., help="the TIN (9 digits, dashes optional)"),
    case: str | None = typer.Option(None, "--case", help="case ID: the need-to-know basis"),
    contact: str | None = typer.Option(None, "--contact", help="taxpayer contact ID"),
    reason: str = typer.Option(..., "--reason", help="why (kept with the change)"),
    year: int | None = typer.Option(None, "--year", help="tax year (ADJ54, REQ77)"),
    tc: str | None = typer.Option(None, "--tc", help="ADJ54: 290|291; REQ77: 570|571|971"),
    amount: str | None = typer.Option(None, "--amount", help="ADJ54: dollars, e.g. 250.00"),
    action_code: str | None = typer.Option(None, "--action-code", help="REQ77 TC 971"),
    date: str | None = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
    base_version: int | None = typer.Option(None, "--base-version",
                                            help="version the change is based on"),
    address: str | None = typer.Option(None, "--address",
                                       help='ENREQ: JSON {"street","city","state","zip"}'),
    name: str | None = typer.Option(None, "--name",
                                    help='ENREQ: JSON {"first","middle","last","suffix"}'),
    json_out: bool = JsonOpt,
) -> None:
    """Request an adjustment; it applies at once or waits for approval."""
    name_obj = _json("name", name)  # bad JSON is refused before the app is opened
    a = open_app()
    # an option left out is None, which the service's validation treats as absent
    res = service.request(a, token=read_token(a.settings.home), tin=tin, command=command,
                          case=case, contact=contact, reason=reason, interface="cli",
                          address=_json("address", address), tax_year=year, tc=tc,
                          amount=amount, action_code=action_code, date=date,
                          base_version=base_version, name=name_obj)
    _show(res, json_out)


def _json(label: str, raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed([f"{label}: not valid JSON"]) from None
    return value  # type: ignore[no-any-return]


@adjust_app.command("approve")
def approve_cmd(adjustment_id: int = typer.Argument(...),
                note: str | None = typer.Option(None, "--note"), json_out: bool = JsonOpt) -> None:
    """Approve a pending adjustment (a manager who is neither the requester nor conflicted)."""
    a = open_app()
    _show(service.approve(a, token=read_token(a.settings.home), adjustment_id=adjustment_id,
                          note=note, interface="cli"), json_out)


@adjust_app.command("reject")
def reject_cmd(adjustment_id: int = typer.Argument(...),
               note: str | None = typer.Option(None, "--note"), json_out: bool = JsonOpt) -> None:
    """Reject a pending adjustment."""
    a = open_app()
    _show(service.reject(a, token=read_token(a.settings.home), adjustment_id=adjustment_id,
                         note=note, interface="cli"), json_out)


@adjust_app.command("reverse")
def reverse_cmd(adjustment_id: int = typer.Argument(...),
                case: str | None = typer.Option(None, "--case"),
                contact: str | None = typer.Option(None, "--contact"),
                reason: str = typer.Option(..., "--reason"),
                base_version: int | None = typer.Option(None, "--base-version"),
                json_out: bool = JsonOpt) -> None:
    """Undo an applied adjustment by a reversing posting."""
    a = open_app()
    _show(service.reverse(a, token=read_token(a.settings.home), adjustment_id=adjustment_id,
                          case=case, contact=contact, reason=reason, interface="cli",
                          base_version=base_version), json_out)


@adjust_app.command("pending")
def pending_cmd(status: str = typer.Option("pending", "--status"), json_out: bool = JsonOpt) -> None:
    """List adjustments waiting for approval (approvers)."""
    a = open_app()
    out = service.listing(a, token=read_token(a.settings.home), status=status, interface="cli")
    if json_out:
        print_json(out.as_dict())
        return
    from rich.table import Table

    table = Table(title=f"adjustments ({status})", title_justify="left")
    for col in ("id", "command", "taxpayer", "year", "tc", "amount", "requester", "case",
                "requires", "expires"):
        table.add_column(col)
    for i in out.adjustments:
        table.add_row(str(i.adjustment_id), i.command, i.taxpayer, str(i.tax_year or ""),
                      i.tc or "", i.amount or "", i.requester, i.case or "",
                      ",".join(i.requires), i.expires_at or "")
    console.print(table)
