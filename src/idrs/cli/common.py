"""Shared CLI plumbing: opening the app, printing JSON or tables, failing with one line."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from idrs.context import App

console = Console()
err_console = Console(stderr=True)


def open_app() -> App:
    """The App for this invocation (``--db`` was folded into IDRS_DATABASE_URL by main)."""
    return App.open()


def operator_actor() -> str:
    """Operator commands act with the local operator's authority, recorded by OS user name."""
    try:
        return "os:" + getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is still an actor we must record
        return "os:unknown"


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


JsonOpt = typer.Option(False, "--json", help="print one JSON document instead of tables")
