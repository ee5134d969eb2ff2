"""The ``idrs`` command line (Typer). Thin: parse, identify the actor, call one service.

Exit status: 0 success, 1 refused or bad input (one line on stderr), 2 usage error.
``--db URL`` is accepted anywhere on the line and wins over IDRS_DATABASE_URL.
"""

from __future__ import annotations

import os
import sys

import typer
from sqlalchemy.exc import DBAPIError, OperationalError

from idrs.errors import AccessDenied, IdrsError

app = typer.Typer(
    name="idrs",
    help="idrs — taxpayer accounts behind need-to-know access and a verifiable audit log.\n\n"
    "Every command accepts --db URL (wins over IDRS_DATABASE_URL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each domain owns its CLI module; importing it registers its commands on ``app``.
    from idrs.cli import (  # noqa: F401
        access,
        adjust,
        audit,
        detect,
        grants,
        masterfile,
        people,
        research,
        setup,
    )


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
    from idrs.config import get_settings

    get_settings.cache_clear()
    _register()
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
    except DBAPIError as exc:  # OperationalError and friends: no traceback, one line
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if "no such table" in reason or "does not exist" in reason and "relation" in reason:
            sys.stderr.write(f"error: database not initialized ({reason}); run 'idrs init'\n")
        elif isinstance(exc, OperationalError):
            sys.stderr.write(f"error: database unreachable: {reason}\n")
        else:
            sys.stderr.write(f"error: database error: {reason}\n")
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors and the like
        import click

        usage_errors: tuple[type[BaseException], ...] = (click.exceptions.UsageError,)
        try:  # newer Typer vendors its own click; its UsageError is a different class
            from typer._click import exceptions as typer_click_exceptions  # type: ignore

            usage_errors += (typer_click_exceptions.UsageError,)
        except ImportError:
            pass
        if isinstance(exc, usage_errors):
            exc.show()
            raise SystemExit(2) from None
        if isinstance(exc, click.exceptions.Abort):
            sys.stderr.write("aborted\n")
            raise SystemExit(1) from None
        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
