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
)

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


def _loaded_after(*command_lines: list[str]) -> list[str]:
    """Heavy modules a fresh interpreter holds after running ``idrs`` with these lines."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(command_lines))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    return [m for m in HEAVY if m in loaded]


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


def test_idrs_help_imports_no_database_web_or_settings_code() -> None:
    assert _loaded_after(["--help"]) == []
    assert _loaded_after([]) == []  # no arguments: the same help


def test_every_commands_help_and_usage_errors_import_none_of_it_either() -> None:
    lines = [[name, "--help"] for name in cli.COMMANDS]
    lines += [["research"], ["research", "ENMOD"], ["audit", "verify", "--bogus"], ["no-such"]]
    lines += [["case", "assign", "--help"], ["grant", "request", "--help"], ["init", "--nope"]]
    assert _loaded_after(*lines) == []


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
