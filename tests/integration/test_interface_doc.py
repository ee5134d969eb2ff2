"""docs/interface.md stays true: everything the code offers is written down there.

Read from the code itself: every command of the Typer application (walked through Click,
so lazily loaded groups are opened too) with each of its options and arguments, every HTTP
route of ``create_app`` (API and pages, on both databases), every ``IDRS_*`` setting of
every settings class in the package, and every reason code the code can answer with.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic_settings import BaseSettings

import idrs
from idrs import cli
from idrs.api.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "interface.md").read_text()
SRC = ROOT / "src" / "idrs"
#: all-caps names in the code that are not reason codes (``ALLOW`` marks the permit policies)
NOT_REASON_CODES = {"ALLOW", "IDRS_DATABASE_URL", "IDRS_SPARK_MASTER", "JAVA_HOME", "VIOLATION_TYPES"}


def _commands() -> Iterator[tuple[str, Any]]:
    """(``idrs case assign``, its Click command) for every leaf command."""
    register = getattr(cli, "_register", None)  # eager registration, where the CLI has it
    if register is not None:
        register()
    root = typer.main.get_command(cli.app)
    context_type = type(root.make_context("idrs", ["--help"], resilient_parsing=True))

    def walk(cmd: Any, path: list[str], ctx: Any) -> Iterator[tuple[str, Any]]:
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(sub, [*path, name], context_type(sub, parent=ctx, info_name=name))
        else:
            yield " ".join(["idrs", *path]), cmd

    yield from walk(root, [], context_type(root, info_name="idrs"))


def _rows(command: str) -> list[str]:
    """The table rows of docs/interface.md that describe ``command``."""
    pattern = re.compile(rf"^\| `{re.escape(command)}(?=[ `])")
    return [line for line in DOC.splitlines() if pattern.match(line)]


def test_every_command_and_each_of_its_options_is_written_down() -> None:
    missing = []
    commands = list(_commands())
    assert len(commands) > 50  # the walk found the whole tree, not just the root
    for name, cmd in commands:
        rows = _rows(name)
        if len(rows) != 1:
            missing.append(f"{name}: {len(rows)} rows")
            continue
        for param in cmd.params:
            words = param.opts if not type(param).__name__.endswith("Argument") else [
                param.name.upper()]
            if not any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", rows[0]) for w in words):
                missing.append(f"{name}: {words[0]}")
    assert missing == []


def test_every_http_route_is_written_down(app: Any) -> None:
    api = create_app(app)
    missing = []
    for rc in iter_route_contexts(api.routes):
        if not isinstance(rc.original_route, APIRoute):
            continue  # the OpenAPI document, its viewer and the static files
        for method in sorted(rc.methods or ()):
            if f"{method} {rc.path}" not in DOC:
                missing.append(f"{method} {rc.path}")
    assert missing == []


def _settings_classes() -> list[type[BaseSettings]]:
    for info in pkgutil.walk_packages(idrs.__path__, "idrs."):
        if not info.name.startswith(("idrs.migrations", "idrs.__main__")):
            importlib.import_module(info.name)
    seen: list[type[BaseSettings]] = []
    todo = list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("idrs.") and cls not in seen:
            seen.append(cls)
    return seen


def test_every_setting_is_written_down() -> None:
    classes = _settings_classes()
    assert classes
    names = [
        (str(cls.model_config.get("env_prefix", "")) + field).upper()
        for cls in classes
        for field in cls.model_fields
    ]
    assert "IDRS_DATABASE_URL" in names
    assert [n for n in names if f"`{n}`" not in DOC] == []


def _reason_codes() -> set[str]:
    literal = re.compile(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']")
    codes: set[str] = set()
    exported = re.compile(r"__all__\s*=\s*[\[(].*?[\])]", re.S)  # names, not codes
    for path in SRC.rglob("*.py"):
        codes.update(literal.findall(exported.sub("", path.read_text())))
    for path in (SRC / "access" / "policies").glob("*.cedar"):
        codes.update(re.findall(r'@reason\("([A-Z_]+)"\)', path.read_text()))
    return codes - NOT_REASON_CODES


def test_every_reason_code_is_written_down() -> None:
    codes = _reason_codes()
    assert {"NO_BUSINESS_NEED", "CONFLICT_SELF", "AUDIT_UNAVAILABLE"} <= codes
    section = DOC[DOC.index("## Reason codes"):]
    assert sorted(c for c in codes if f"`{c}`" not in section) == []
