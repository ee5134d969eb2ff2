"""CLI of the masterfile domain: ``import FILE``, ``seed``, ``keys rotate``.

Operator commands: they act with the local operator's authority and are recorded in the
audit log under ``os:<user>`` (one entry per run, counts only).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, err_console, open_app, operator_actor, print_json
from idrs.errors import IdrsError, ValidationFailed

keys_app = typer.Typer(cls=Group, help="Data-encryption keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="JSON Lines file, one taxpayer a line (format: docs/interface.md)"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="worker processes (1: this process; default: 2 to 4 on PostgreSQL for a file of "
        "8 MiB or more, else 1); same outcome either way",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Load taxpayers from JSON Lines: all or nothing; re-importing a taxpayer and year replaces it."""
    from idrs.masterfile.importer import default_workers, import_file

    application = open_app()
    if workers is None:
        workers = default_workers(application, file)
    size = file.stat().st_size if file.exists() else 0
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("import", total=size or None)
        try:
            result = import_file(
                application,
                file,
                operator_actor(),
                progress=lambda n: bar.advance(task, n),
                workers=workers,
            )
        except ValidationFailed as exc:
            bar.stop()
            for problem in exc.problems:
                err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
            # an IdrsError (not typer.Exit): main() turns it into one line and exit status 1
            raise IdrsError(f"{len(exc.problems)} problem(s); nothing was imported") from None
    if as_json:
        print_json(result.as_dict())
        return
    s = result.stats
    console.print(
        f"imported {result.lines} line(s): {s.taxpayers_created} new taxpayer(s), "
        f"{s.taxpayers_updated} updated, {s.returns} return(s), {s.transactions} transaction(s), "
        f"{s.information_returns} information return(s) (audit index {result.audit_index})"
    )


@app.command("seed")
def seed_cmd(
    taxpayers: int = typer.Option(..., "--taxpayers", min=1, help="how many taxpayer records"),
    employees: int = typer.Option(20, "--employees", min=0, help="employees among them"),
    seed_value: int = typer.Option(1, "--seed", help="same seed, same data"),
    credentials_out: Path | None = typer.Option(
        None,
        "--credentials-out",
        help="write the employees' SEIDs, passwords and TOTP secrets here (mode 0600); "
        "without it seeded employees get no usable password",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="processes generating and writing the population (PostgreSQL only; "
        "default: several on PostgreSQL with 4 cores or more, else 1); same data either way",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Add a deterministic synthetic population (households, businesses, employees)."""
    from idrs.masterfile.seed import seed

    application = open_app()
    with Progress(
        TextColumn("seeding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("seed", total=taxpayers)
        result = seed(
            application,
            taxpayers=taxpayers,
            employees=employees,
            seed=seed_value,
            credentials_out=credentials_out,
            actor=operator_actor(),
            progress=lambda n: bar.advance(task, n),
            workers=workers,
        )
    if as_json:
        print_json(
            {
                **result.as_dict(),
                "seconds": round(result.seconds, 1),
                "credentials_out": str(credentials_out) if credentials_out else None,
            }
        )
        return
    s = result.stats
    console.print(
        f"seeded {result.taxpayers} taxpayer(s) (seed {seed_value}): {s.returns} return(s), "
        f"{s.transactions} transaction(s), {s.information_returns} information return(s), "
        f"{s.businesses} business(es), {len(result.employees)} employee(s) "
        f"in {result.seconds:.1f}s"
    )
    if credentials_out:
        console.print(f"employee credentials written to {credentials_out} (mode 0600)")


@keys_app.command("rotate")
def rotate_cmd(as_json: bool = JsonOpt) -> None:
    """New data key; re-encrypt every encrypted value; retire the old key (stop the service first)."""
    from idrs.masterfile.rotate import rotate

    application = open_app()
    with Progress(
        TextColumn("re-encrypting {task.description}"),
        TextColumn("{task.completed} rows"),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(table: str, n: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=None)
            bar.advance(tasks[table], n)

        result = rotate(application, actor=operator_actor(), progress=advance)
    if as_json:
        print_json(result.as_dict())
        return
    console.print(
        f"new key {result.new_kid} active; {result.reencrypted} value(s) re-encrypted; "
        f"retired key(s): {', '.join(map(str, result.retired)) or 'none'} "
        f"(audit index {result.audit_index})"
    )
