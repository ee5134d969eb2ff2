"""The CLI loads lazily: ``idrs --help`` and a command's start-up import none of the heavy parts.

``idrs.cli.COMMANDS`` is a hand-kept table (name -> module, help line); these tests keep it
equal to what the command modules register, so it cannot drift when a command is added.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from typing import Any

import typer
from typer.testing import CliRunner

from idrs import cli

#: what a command pays for only when it runs (just before it touches the database)
HEAVY = (
    "sqlalchemy",
    "fastapi",
    "pydantic_settings",
    "idrs.config",
    "idrs.context",
    "uvicorn",
    "cedarpy",
    "argon2",
    "idrs.models",
    "weasyprint",
    "duckdb",
    "polars",
    "matplotlib",
    "jinja2",
)
#: help needs no parsing of values either: Typer coerces values through Pydantic, so a
#: usage error may import it, a help page must not (idrs.cli.Group)
HELP_HEAVY = (*HEAVY, "pydantic", "pydantic_core")

PROBE = """
import json, sys
from idrs.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main(args)
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_after(*command_lines: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """Heavy modules a fresh interpreter holds after running ``idrs`` with these lines."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(command_lines))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    return [m for m in heavy if m in loaded]


def _registered() -> dict[str, Any]:
    """Every top-level command the command modules register: name -> Click command."""
    for module in {m for m, _ in cli.COMMANDS.values()}:
        importlib.import_module(f"idrs.cli.{module}")
    return dict(typer.main.get_command(cli.app).commands)  # type: ignore[attr-defined]


def _origins() -> dict[str, str]:
    """name -> the idrs.cli module whose code registered it."""
    out = {}
    for info in cli.app.registered_commands:
        out[info.name or info.callback.__name__] = info.callback.__module__
    for group in cli.app.registered_groups:
        sub = group.typer_instance
        callbacks = [c.callback for c in sub.registered_commands] + [
            c.callback for g in sub.registered_groups for c in g.typer_instance.registered_commands
        ]
        out[group.name] = callbacks[0].__module__
    return out


def _command_paths() -> list[list[str]]:
    """Every command and group below the root, as the words that name it."""
    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(cli.app), [])
    _registered()
    walk(typer.main.get_command(cli.app), [])
    return sorted({tuple(p): p for p in paths}.values())


def test_idrs_help_imports_no_database_web_pdf_or_validation_library() -> None:
    assert _loaded_after(["--help"], heavy=HELP_HEAVY) == []
    assert _loaded_after([], heavy=HELP_HEAVY) == []  # no arguments: the same help


def test_the_help_of_every_group_and_command_imports_none_of_it_either() -> None:
    """``idrs audit verify --help`` passes through ``idrs`` and ``audit``: neither may parse
    anything that imports Pydantic on the way (each group is an ``idrs.cli.Group``)."""
    paths = _command_paths()
    assert len(paths) > 100 and ["disclosure", "agreement", "add"] in paths
    lines = [[*p, "--help"] for p in paths if len(p) == 1]
    # one command under each group: the group's own options are parsed on the way to it
    parents = {tuple(p[:-1]): p for p in sorted(paths, reverse=True) if len(p) > 1}
    lines += [[*p, "--help"] for p in parents.values()]
    assert any(line[:2] == ["disclosure", "agreement"] for line in lines)  # two levels down
    assert _loaded_after(*lines, heavy=HELP_HEAVY) == []


def test_usage_errors_import_no_database_web_or_pdf_library() -> None:
    lines = [["research"], ["research", "ENMOD"], ["audit", "verify", "--bogus"], ["no-such"]]
    lines += [["case", "assign"], ["init", "--nope"], ["research", "ENMOD", "1", "--as-of", "x"]]
    assert _loaded_after(*lines) == []


def test_every_group_below_the_root_is_an_idrs_group() -> None:
    """A new ``typer.Typer(...)`` without ``cls=Group`` would bring Pydantic back into help."""
    _registered()
    root = typer.main.get_command(cli.app)
    assert isinstance(root, cli.LazyGroup)
    groups = []

    def walk(cmd: Any, path: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            if hasattr(sub, "commands"):
                groups.append((f"{path} {name}", type(sub)))
                walk(sub, f"{path} {name}")

    walk(root, "idrs")
    assert len(groups) > 20
    assert [(p, t) for p, t in groups if not issubclass(t, cli.Group)] == []


def test_every_command_the_lazy_group_lists_resolves_to_the_real_one() -> None:
    """What ``idrs --help`` lists (the table) is what runs: each name the root group lists
    loads a real command or group of that very name, not a stand-in and not another one."""
    root = typer.main.get_command(cli.app)
    ctx = root.make_context("idrs", ["--help"], resilient_parsing=True)
    listed = root.list_commands(ctx)  # type: ignore[attr-defined]
    assert sorted(listed) == sorted(cli.COMMANDS)
    for name in listed:
        cmd = root.get_command(ctx, name)  # type: ignore[attr-defined]
        assert cmd is not None and cmd.name == name, name
        assert cmd.callback is not None or getattr(cmd, "commands", None), name
        assert cmd.help, name
    real = _registered()
    for name in listed:
        assert root.get_command(ctx, name) is not None  # type: ignore[attr-defined]
        assert real[name].name == name


def test_the_table_names_exactly_the_registered_commands_with_their_help() -> None:
    real = _registered()
    assert sorted(cli.COMMANDS) == sorted(real)
    for name, (_, help_line) in cli.COMMANDS.items():
        first = inspect.cleandoc(real[name].help or "").split("\n\n")[0].replace("\n", " ")
        assert help_line == first, name


def test_each_table_entry_points_at_the_module_that_registers_it() -> None:
    _registered()
    origins = _origins()
    assert {n: f"idrs.cli.{m}" for n, (m, _) in cli.COMMANDS.items()} == origins


def test_the_root_help_lists_every_command_with_its_help_line() -> None:
    res = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    for name, (_, help_line) in cli.COMMANDS.items():
        assert name in res.output
        assert help_line.split()[0] in res.output


def test_a_mistyped_command_is_a_usage_error_with_a_suggestion(capsys: Any) -> None:
    try:
        cli.main(["reserch", "ENMOD", "123456789"])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    assert "No such command 'reserch'" in err and "'research'" in err


def test_a_table_entry_whose_module_does_not_register_it_fails_loudly(monkeypatch: Any) -> None:
    monkeypatch.setitem(cli.COMMANDS, "phantom", ("audit", "Nothing registers this."))
    root = typer.main.get_command(cli.app)
    ctx = root.make_context("idrs", ["phantom"], resilient_parsing=True)
    try:
        root.get_command(ctx, "phantom")  # type: ignore[attr-defined]
    except RuntimeError as exc:
        assert "does not register 'phantom'" in str(exc)
    else:
        raise AssertionError("a missing command must not pass silently")


def test_importing_the_password_module_hashes_nothing() -> None:
    code = "import idrs.people.passwords as p; print(p._DUMMY_HASH is None)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "True"


def test_the_first_password_check_costs_the_same_whether_or_not_the_seid_exists(
    monkeypatch: Any,
) -> None:
    """The dummy hash is made lazily; an unknown SEID must not be told by that extra work."""
    from argon2 import PasswordHasher

    from idrs.people import passwords

    calls: list[str] = []

    class Counting(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            calls.append("hash")
            return super().hash(password, salt=salt)

        def verify(self, hash: str | bytes, password: str | bytes) -> Any:  # noqa: A002
            calls.append("verify")
            return super().verify(hash, password)

    cheap = Counting(time_cost=1, memory_cost=8, parallelism=1)
    stored = cheap.hash("right")
    work = {}
    for case, run in {
        "known SEID": lambda: passwords.check_password(stored, "wrong"),
        "unknown SEID": lambda: passwords.check_password(None, "wrong"),
        "unknown SEID, burn_time": lambda: passwords.burn_time("wrong"),
    }.items():
        monkeypatch.setattr(passwords, "_HASHER", cheap)
        monkeypatch.setattr(passwords, "_DUMMY_HASH", None)  # a fresh process
        calls.clear()
        with contextlib.suppress(passwords.BadPassword):
            run()
        work[case] = list(calls)
    assert work["known SEID"] == work["unknown SEID"] == work["unknown SEID, burn_time"]
    assert work["known SEID"] == ["hash", "verify"]


def test_simulated_staff_do_not_leave_a_cheap_dummy_hash_behind(monkeypatch: Any) -> None:
    from argon2 import PasswordHasher

    from idrs.people import passwords

    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=64))
    monkeypatch.setattr(passwords, "_DUMMY_HASH", None)
    with passwords.weak_hashing_for_simulated_staff_only():
        passwords.burn_time("x")
    # made with the parameters in force outside the block (m=64), not the simulated staff's (m=8)
    assert passwords._DUMMY_HASH is not None and "m=64," in passwords._DUMMY_HASH


def test_a_command_missing_from_the_table_still_runs(monkeypatch: Any) -> None:
    """A merge that adds a top-level command but not its table line breaks nothing for users
    (the table test above fails instead)."""
    _registered()
    extra = typer.Typer()

    @extra.command("phantom-report")
    def phantom() -> None:
        """Nothing but a test."""
        typer.echo("phantom ran")

    monkeypatch.setattr(
        cli.app, "registered_commands", [*cli.app.registered_commands, *extra.registered_commands]
    )
    res = CliRunner().invoke(cli.app, ["phantom-report"])
    assert res.exit_code == 0 and "phantom ran" in res.output


def test_a_command_loads_every_lazily_named_module_before_it_can_start_a_thread(
    tmp_path: Any,
) -> None:
    """3.11's LazyLoader takes no lock: the modules must not first run inside a server thread."""
    code = """
import sys, os
import idrs.cli.access, idrs.cli.setup
from idrs.cli import common
lazy = lambda: sorted(n for n in ("idrs.access.service", "idrs.access.policy", "idrs.audit.log",
                                  "idrs.people.service", "idrs.migrate")
                      if type(sys.modules[n]).__name__ == "_LazyModule")
print(lazy())
try:
    common.open_app()
except Exception as exc:
    print(type(exc).__name__)
print(lazy())
"""
    env = {**os.environ, "IDRS_HOME": str(tmp_path / "no-keys")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    before, error, after = r.stdout.strip().splitlines()
    assert before != "[]" and error == "ConfigurationError" and after == "[]"


def test_an_unexpected_error_escapes_as_itself_not_as_a_broken_handler() -> None:
    """A bug in a command surfaces as its own exception: the exit handler must not fail on
    the Click that Typer vendors (it has no ``Abort``), hiding it behind an AttributeError."""
    import pytest

    from idrs import cli

    class Unexpected(Exception):
        pass

    with pytest.raises(Unexpected):
        try:
            raise Unexpected("a bug")
        except Unexpected as exc:
            cli._exit_for(exc)
            raise


#: what ``idrs research`` needs only once the session is known, or never on its way there
#: (issue 12: its start-up before the database); Pydantic itself still comes with the settings
NOT_BEFORE_THE_DATABASE = (
    "idrs.models",  # every package's models: the CLI's App registers only those it imports
    "idrs.detection.models",
    "idrs.disclosure.models",
    "idrs.grants.models",
    "idrs.adjustments.models",
    "idrs.access.facts",
    "idrs.access.policy",
    "idrs.access.conflicts",
    "idrs.grants.anonymized",
    "idrs.adjustments.history",
    "cedarpy",
    "rich",
    "typer._adapters",  # Typer's Pydantic adapters: plain values need none (cli._PlainValue)
)


def test_research_reaches_the_database_without_what_it_needs_only_after(tmp_path: Any) -> None:
    """``idrs research`` against a port nobody listens on: everything it imports before the
    refused connection is its start-up; the decision, the answer and the other packages'
    models are not part of it."""
    from idrs.crypto import Keyring

    home = tmp_path / "home"
    Keyring.create(home)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IDRS_")},
        "IDRS_HOME": str(home),
        "IDRS_DATABASE_URL": "postgresql+psycopg://idrs@127.0.0.1:9/none?connect_timeout=2",
    }
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([["research", "ENMOD", "123456789"]])],
        capture_output=True, text=True, timeout=120, check=True, env=env,
    )  # fmt: skip
    assert "database unreachable" in r.stderr  # it did get as far as the connection
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert "sqlalchemy.orm" in loaded and "idrs.people.models" in loaded
    assert sorted(m for m in NOT_BEFORE_THE_DATABASE if m in loaded) == []


def test_a_usage_error_in_a_value_imports_no_pydantic() -> None:
    lines = [["research", "ENMOD", "1", "--as-of", "soon"], ["case", "assign"]]
    assert _loaded_after(*lines, heavy=("pydantic", "typer._adapters")) == []


def test_plain_values_are_coerced_as_typer_coerces_them() -> None:
    """:class:`idrs.cli._PlainValue` answers what Typer's Pydantic adapter answers (or lets it
    answer): the same values and the same usage errors."""
    import pytest
    from typer._coercion import build_runtime_param

    _registered()
    root = typer.main.get_command(cli.app)
    ctx = root.make_context("idrs", ["research"], resilient_parsing=True)
    research = root.get_command(ctx, "research")  # type: ignore[attr-defined]
    params = {p.name: p for p in research.params}
    year, tin = params["year"], params["tin"]
    assert type(year._runtime_param).__name__ == "_PlainValue"
    assert type(tin._runtime_param).__name__ == "_PlainValue"
    sub = research.make_context("research", ["ENMOD", "1"], parent=ctx)
    values = ["2020", "0012", "+4", " 5", "1_000", "-3", "x", "", "\u0661\u0662", "12.0"]
    for param in (year, tin):
        full = build_runtime_param(param.type_descriptor)
        for value in values:
            desc = param.type_descriptor  # fresh each time: a fallback replaces it on the param
            light = cli._PlainValue(desc.parameter_info, desc.annotation, desc)
            try:
                want: Any = ("ok", full.coerce(value, param=param, ctx=sub))
            except click_errors() as exc:
                want = ("error", exc.format_message())
            try:
                got: Any = ("ok", light.coerce(value, param=param, ctx=sub))
            except click_errors() as exc:
                got = ("error", exc.format_message())
            assert got == want and type(got[1]) is type(want[1]), (param.name, value)
    year._runtime_param = None
    cli.light_coercion(research)
    with pytest.raises(click_errors()):
        year._runtime_param.coerce("x", param=year, ctx=sub)
    assert type(year._runtime_param).__name__ == "AdapterRuntimeParam"  # Typer's from now on


def click_errors() -> type[Exception]:
    from typer import _click

    return _click.exceptions.BadParameter
