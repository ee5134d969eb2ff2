"""``idrs research COMMAND TIN``: a research command code as the signed-in employee.

For ``NAMES`` the TIN position takes the name query ``LAST`` or ``LAST,FIRST``, and
``--place`` narrows it by state and/or ZIP (``OH``, ``45402``, ``"OH 45402"``); a stated
``--reason`` is expected. Output: Rich tables, or with ``--json`` one JSON document
``{"command", "data", "masked", "withheld", "audit_index"}``. A denial prints the reason codes on stderr
and exits 1.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import typer

from idrs.cli import app
from idrs.cli.common import JsonOpt, console, fail, lazy, open_app, print_json
from idrs.cli.people import read_token
from idrs.vocabulary import RESEARCH_CODES, CommandCode

if TYPE_CHECKING:
    from idrs import research
else:  # imported when the command runs (see common.lazy)
    research = lazy("idrs.research")


@app.command("research")
def research_cmd(
    command: str = typer.Argument(..., help=", ".join(RESEARCH_CODES)),
    tin: str = typer.Argument(..., help="the TIN (9 digits, dashes optional); for NAMES: LAST[,FIRST]"),
    case: str | None = typer.Option(None, "--case", help="case ID: the need-to-know basis"),
    contact: str | None = typer.Option(None, "--contact", help="taxpayer contact ID"),
    reason: str | None = typer.Option(None, "--reason", help="stated reason (NAMES needs one)"),
    year: int | None = typer.Option(None, "--year", help="tax year (TXMOD and RTVUE need it)"),
    place: str | None = typer.Option(None, "--place", help="NAMES only: ST, ZIP or 'ST ZIP'"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="ENMOD/TXMOD: the account as it stood at the end of YYYY-MM-DD"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Run a research command code as the employee signed in with 'idrs login'."""
    try:  # bad input is refused before anything opens
        as_of_day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        fail(f"--as-of: not a date (YYYY-MM-DD): {as_of!r}")
    a = open_app()
    is_names = command.strip().upper() == CommandCode.NAMES
    ans = research.run(
        a, token=read_token(a.settings.home), command=command, tin=None if is_names else tin,
        name=tin if is_names else None, place=place, year=year, case=case, contact=contact,
        reason=reason, interface="cli", as_of=as_of_day,
    )
    if json_out:
        print_json(ans.as_dict())
        return
    show(ans.command, ans.data)
    if ans.masked:
        console.print(f"[dim]masked: {', '.join(ans.masked)}[/dim]")
    if ans.withheld:
        console.print(f"withheld (a related person you may not see): {', '.join(ans.withheld)}",
                      markup=False, highlight=False)
    console.print(f"[dim]audit index {ans.audit_index}[/dim]")


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def show(title: str, data: dict[str, Any]) -> None:
    """Scalars and small dicts in one field/value table; each list of records as its own table."""
    from rich.table import Table  # once there is an answer to show

    fields = Table(title=title, show_header=False, title_justify="left")
    fields.add_column("field", style="bold")
    fields.add_column("value")
    lists: list[tuple[str, list[Any]]] = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lists.append((key, value))
        elif isinstance(value, list) and not value:
            fields.add_row(key, "(none)")
        else:
            fields.add_row(key, _cell(value))
    console.print(fields)
    for key, rows in lists:
        table = Table(title=key, title_justify="left")
        columns = list(rows[0].keys())
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(_cell(row.get(col)) for col in columns))
        console.print(table)
