"""The ``idrs`` command line (Typer). Thin: parse, identify the actor, call one service.

Exit status: 0 success, 1 refused or bad input (one line on stderr), 2 usage error.
``--db URL`` is accepted anywhere on the line and wins over IDRS_DATABASE_URL.

Start-up is kept short: a subcommand's module (and with it SQLAlchemy, the services, the
settings) is imported only when that subcommand runs. ``COMMANDS`` names every top-level
command, the module that registers it and its one-line help, so ``idrs --help`` lists them
all without importing any of them; tests/unit/test_cli_lazy.py keeps the table true.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click  # the Click that Typer vendors (and its commands are made of)
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import TyperCommand, TyperGroup, TyperOption, _TyperParameter

from idrs.errors import AccessDenied, IdrsError

#: top-level command -> (module under idrs.cli that registers it, its one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("setup", "Create or upgrade the schema, create keys if absent, create the first security admin."),
    "demo": ("setup", "One command for a newcomer: init, seed a demo population, print how to sign in, serve."),
    "serve": ("setup", "Run the HTTP API (/api/v1, OpenAPI at /api/v1/docs) and the web interface."),
    "login": ("people", "Sign in as an employee; the session token is kept in IDRS_HOME/session.token (0600)."),
    "logout": ("people", "End the session kept under IDRS_HOME and delete its token file."),
    "employee": ("people", "Employees: create, list, change profiles (two-person), deactivate, unlock."),
    "unit": ("people", "Units and their ceiling profiles."),
    "system": ("people", "Machine principals (the contact feed, other agencies' systems): create, rotate, list."),
    "research": ("research", "Run a research command code as the employee signed in with 'idrs login'."),
    "case": ("access", "Open and close case assignments (the need-to-know basis)."),
    "contact": ("access", "Open and close taxpayer contacts (calls, letters, visits)."),
    "relationship": ("access", "Relationships employees declared (blocks access)."),
    "access": ("access", "Explain decisions; who can open an account; what an employee can open."),
    "adjust": ("adjust", "Adjustments: request, approve, reject, list pending, reverse."),
    "import": ("masterfile", "Load taxpayers from JSON Lines: all or nothing; re-importing a taxpayer and year replaces it."),
    "seed": ("masterfile", "Add a deterministic synthetic population (households, businesses, employees)."),
    "keys": ("masterfile", "Data-encryption keys."),
    "audit": ("audit", "The tamper-evident audit log: verify, export, checkpoints."),
    "witness": ("witness", "Witnesses that cosign the audit log's checkpoints: run one, or configure the log's."),
    "detect": ("detect", "Unauthorized-access detection over the audit log."),
    "alerts": ("detect", "The privacy analysts' alert queue."),
    "investigations": ("detect", "Investigations of referred alerts: open, record outcomes, close."),
    "reports": ("detect", "Weekly security reports and their certification."),
    "taxpayer": ("detect", "The taxpayer's side: accounting of accesses, §7431(e) notices."),
    "simulate": ("detect", "Simulate the agency's work (and labeled browsing) through the real service path."),
    "self-report": ("detect", "Report your own accidental access (a mistyped TIN) within a day of it."),
    "clearance": ("grants", "Security clearance verifications."),
    "agreement": ("grants", "Confidentiality agreements and signatures."),
    "training": ("grants", "UNAX training attestations."),
    "grant": ("grants", "Time-limited access grants and their approvals."),
    "export": ("grants", "Registered exports and their destruction."),
    "oversight": ("grants", "Reports for oversight bodies."),
    "disclosure": ("disclosure", "Disclosures to other agencies under a statute: agreements, bulk requests, approvals."),
    "anonymized": ("grants", "Anonymized records under your anonymized grant, by pseudonym."),
    "statistics": ("grants", "Differentially private statistics under your statistics grant."),
}  # fmt: skip


def _modules() -> list[str]:
    return sorted({module for module, _ in COMMANDS.values()})


class Group(TyperGroup):
    """Every ``idrs`` group (``cls=Group`` on each ``typer.Typer``): its ``--help`` flag is
    False, not None, when it is not given.

    Typer coerces a parameter's value through a Pydantic adapter unless it is already a bool,
    so an absent help flag (None) on a group that only routes to a subcommand imported
    Pydantic (~100 ms of CPU) for nothing: ``idrs audit verify --help`` paid for it on the
    way through ``idrs`` and ``audit``. A real command still imports Pydantic when it parses
    its own options.
    """

    def get_help_option(self, ctx: _click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False  # the same "not asked for help", already a bool
        return option


class Command(TyperCommand):
    """A command whose ``--help`` flag is False, not None, when it is not given (as
    :class:`Group`'s): an absent flag needs no Pydantic adapter either. Every command
    becomes one when the root group loads it (:func:`light_coercion`)."""

    def get_help_option(self, ctx: _click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


@dataclass(frozen=True)
class _PlainValue(RuntimeParam):
    """Typer's coercion of a plain ``str`` or ``int`` parameter, without Pydantic for the
    values whose answer is plain: a ``str`` is itself, an ``int`` written in ASCII digits
    is ``int(value)`` (what Typer's Pydantic adapters answer for them). Any other value (a
    sign, spaces, underscores, not a number) goes to Typer's own coercion, which imports
    Pydantic and answers (or words the usage error) as before.

    Typer builds a Pydantic ``TypeAdapter`` per parameter the first time it coerces a
    value: Pydantic and those adapters cost a command's start-up ~120 ms of CPU before it
    reaches the database. tests/unit/test_cli_lazy.py holds the answers equal.
    """

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        if type(value) is str:
            if self.annotation is str:
                return value
            if value.isascii() and value.isdigit():
                return int(value)
        full = build_runtime_param(self.descriptor)
        param._runtime_param = full  # the next value goes there directly
        return full._coerce_value(value, param=param, ctx=ctx)


def _plain(param: _click.Parameter) -> bool:
    """Whether Typer would coerce this parameter with a bare ``str`` or ``int`` adapter."""
    desc: TypeDescriptor | None = getattr(param, "type_descriptor", None)
    if desc is None or getattr(param, "_runtime_param", True) is not None:
        return False  # not Typer's, or already coerced once
    info = desc.parameter_info
    if info.parser is not None or desc.file_annotation is not None:
        return False
    if desc.annotation is str:
        return True
    return desc.annotation is int and info.min is None and info.max is None and not info.clamp


def light_coercion(cmd: _click.Command) -> None:
    """Give every plain ``str``/``int`` parameter of ``cmd`` and its subcommands a
    :class:`_PlainValue` and every command a bool ``--help`` default (:class:`Command`):
    Typer asks for Pydantic only when a value needs it."""
    if type(cmd) is TyperCommand:
        cmd.__class__ = Command  # the same command; only its help flag's default differs
    for param in cmd.params:
        if isinstance(param, _TyperParameter) and _plain(param):
            desc = param.type_descriptor
            param._runtime_param = _PlainValue(desc.parameter_info, desc.annotation, desc)
    for sub in getattr(cmd, "commands", {}).values():
        light_coercion(sub)


class LazyGroup(Group):
    """The root group: lists ``COMMANDS`` and imports a command's module when it is used.

    While it writes its own help it answers with light stand-ins carrying the table's help
    line, so listing the commands imports none of them.
    """

    _listing = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name in self.commands:  # registered before this group was made (tests)
            light_coercion(self.commands[cmd_name])
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            # Not in the table: a typo, or a command whose line was forgotten (the unit test
            # fails then); the command modules are light, so look in all of them.
            return None if self._listing else self._load(cmd_name, _modules())
        module, help_line = COMMANDS[cmd_name]
        if self._listing:
            return TyperCommand(
                name=cmd_name, help=help_line, rich_markup_mode=self.rich_markup_mode
            )
        cmd = self._load(cmd_name, [module])
        if cmd is None:
            raise RuntimeError(f"idrs.cli.{module} does not register {cmd_name!r} (see COMMANDS)")
        return cmd

    def _load(self, cmd_name: str, modules: list[str]) -> _click.Command | None:
        for module in modules:
            importlib.import_module(f"idrs.cli.{module}")  # registers its commands on ``app``
        root = typer.main.get_command(app)  # a group of what is registered so far
        assert isinstance(root, TyperGroup)
        cmd: _click.Command | None = root.commands.get(cmd_name)
        if cmd is not None:
            light_coercion(cmd)
            self.commands[cmd_name] = cmd
        return cmd

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        try:
            return self._click_resolve_command(ctx, args)
        except _click.exceptions.UsageError as e:
            from difflib import get_close_matches  # a mistyped command only

            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                e.message = (
                    f"{e.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
                )
            raise


app = typer.Typer(
    name="idrs",
    cls=LazyGroup,
    help="idrs — taxpayer accounts behind need-to-know access and a verifiable audit log.\n\n"
    "Every command accepts --db URL (wins over IDRS_DATABASE_URL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: Rich's help renderer (markdown-it, Pygments, ...) alone doubled the
    # start-up of `idrs --help`. Command output still uses Rich tables.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    # A callback keeps the root a group whatever (little) has been registered so far.
    pass


def _fold_db_option(argv: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(range(len(argv)))
    skip = False
    for i in it:
        if skip:
            skip = False
            continue
        arg = argv[i]
        if arg == "--db":
            if i + 1 >= len(argv):
                sys.stderr.write("error: --db needs a URL\n")
                raise SystemExit(2)
            os.environ["IDRS_DATABASE_URL"] = argv[i + 1]
            skip = True
        elif arg.startswith("--db="):
            os.environ["IDRS_DATABASE_URL"] = arg.split("=", 1)[1]
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every IdrsError into one line on stderr and exit 1."""
    args = _fold_db_option(list(sys.argv[1:] if argv is None else argv))
    config = sys.modules.get("idrs.config")  # not imported yet: nothing cached to forget
    if config is not None:
        config.get_settings.cache_clear()
    try:
        # With standalone_mode=False a command's typer.Exit(n) comes back as a return value.
        rc = app(args=args, prog_name="idrs", standalone_mode=False)
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except AccessDenied as exc:
        reasons = "; ".join(f"{r.code}: {r.message}" for r in exc.reasons)
        where = f" (audit index {exc.audit_index})" if exc.audit_index is not None else ""
        sys.stderr.write(f"refused{where}: {reasons}\n")
        raise SystemExit(1) from None
    except IdrsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:  # database errors, click usage errors and the like
        _exit_for(exc)
        raise


def _exit_for(exc: Exception) -> None:
    """Exit with one line for a database or usage error; return for anything else."""
    sa_exc = sys.modules.get("sqlalchemy.exc")  # not imported: no database error can occur
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):  # no traceback, one line
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if "no such table" in reason or "does not exist" in reason and "relation" in reason:
            sys.stderr.write(f"error: database not initialized ({reason}); run 'idrs init'\n")
        elif isinstance(exc, sa_exc.OperationalError):
            sys.stderr.write(f"error: database unreachable: {reason}\n")
        else:
            sys.stderr.write(f"error: database error: {reason}\n")
        raise SystemExit(1) from None
    # Typer's own (vendored) Click, and the installed Click where something raised its errors.
    kinds = [_click.exceptions]
    click = sys.modules.get("click")
    if click is not None and click.exceptions is not _click.exceptions:
        kinds.append(click.exceptions)
    for k in kinds:
        if isinstance(exc, k.UsageError):
            exc.show()
            raise SystemExit(2) from None
        abort = getattr(k, "Abort", None)  # Typer's vendored Click has none
        if abort is not None and isinstance(exc, abort):
            sys.stderr.write("aborted\n")
            raise SystemExit(1) from None
        if isinstance(exc, k.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
