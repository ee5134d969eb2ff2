"""Shared CLI plumbing: opening the app, printing JSON or tables, failing with one line."""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from idrs.context import App


class _LazyConsole:
    """A Rich console made when something is first printed through it: rich.console costs
    a command's start-up ~40 ms of CPU that a command failing before any output (a refused
    connection, a usage error) need not pay. It is made as it would have been when this
    module was imported (the environment of then), and reads the live one afterwards."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._environ = dict(os.environ)
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            made = Console(**self._options, _environ=self._environ)
            made._environ = os.environ
            self._console = made
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # special methods are looked up on the class, never through __getattr__: Rich's Live
    # (a progress bar) enters its console as a context manager
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)


console = cast("Console", _LazyConsole())
err_console = cast("Console", _LazyConsole(stderr=True))


#: modules named through ``lazy`` (executed by ``load_lazy_modules`` at the latest)
_LAZY: list[ModuleType] = []


def lazy(name: str) -> ModuleType:
    """Module ``name``, executed on first attribute access (importlib's LazyLoader recipe).

    The CLI modules name their services this way so that importing one (for its ``--help``,
    or to parse a command line) does not import SQLAlchemy, the models and the services: a
    command pays for them when it runs, just before it touches the database.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    _LAZY.append(module)
    return module


def load_lazy_modules() -> None:
    """Execute every module named through ``lazy`` now, in this thread.

    A command calls it (through ``open_app``) before it starts any thread: Python 3.11's
    LazyLoader takes no lock, so a first use from two threads at once could see a module
    half executed. Touching any attribute runs the module.
    """
    for module in _LAZY:
        module.__name__  # noqa: B018


def open_app() -> App:
    """The App for this invocation (``--db`` was folded into IDRS_DATABASE_URL by main)."""
    load_lazy_modules()  # the command is about to touch the database: import what it needs
    from idrs.context import App

    # only the models the command's modules import: a one-shot command does not pay for
    # every package's (key rotation registers them all itself)
    return App.open(all_models=False)


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
