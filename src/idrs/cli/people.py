"""CLI of the people domain: ``employee add|unlock``, ``unit add``, ``login``, ``logout``.

Operator commands (``employee add``, ``employee unlock``, ``unit add``) act with the local
operator's authority and are recorded under ``os:<user>``. ``login`` keeps the session token
in ``IDRS_HOME/session.token`` (mode 0600); ``research`` then runs as that employee.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from idrs.cli import app
from idrs.cli.common import JsonOpt, console, open_app, operator_actor, print_json
from idrs.people import auth, service

employee_app = typer.Typer(help="Create employees and unlock locked accounts.", no_args_is_help=True)
unit_app = typer.Typer(help="Units and their ceiling profiles.", no_args_is_help=True)
app.add_typer(employee_app, name="employee")
app.add_typer(unit_app, name="unit")

TOKEN_FILE = "session.token"  # noqa: S105 - a file name, not a secret


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE


def read_token(home: Path) -> str | None:
    """The saved session token, or None when nobody is signed in here."""
    try:
        return token_path(home).read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError:
        return None


def write_token(home: Path, token: str) -> None:
    path = token_path(home)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)


@employee_app.command("add")
def employee_add(
    seid: str = typer.Option(..., "--seid", help="the employee's SEID (letters and digits)"),
    name: str = typer.Option(..., "--name"),
    tin: str = typer.Option(..., "--tin", help="the employee's own TIN (never shown)"),
    roles: str = typer.Option(..., "--roles", help="comma-separated: csr,examiner,manager,…"),
    unit: str | None = typer.Option(None, "--unit", help="unit code (default HQ)"),
    kind: str = typer.Option("employee", "--kind", help="employee|detailee|contractor|appointee"),
    home_org: str | None = typer.Option(
        None, "--home-org", help="outside people: their home organization"
    ),
    authorities: str = typer.Option(
        "", "--authorities", help="comma-separated: adoption,employee_accounts,sensitive_accounts"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Create an employee; prints JSON {"seid", "password", "totp_secret"} (shown once)."""
    a = open_app()
    creds = service.create_employee(
        a, seid=seid, name=name, tin=tin, roles=roles, unit=unit, kind=kind, home_org=home_org,
        authorities=[x for x in authorities.split(",") if x.strip()], actor=operator_actor(),
    )
    print_json(creds)  # the credentials are JSON either way (CONTRACT.md)
    del json_out


@employee_app.command("unlock")
def employee_unlock(seid: str = typer.Option(..., "--seid")) -> None:
    """Unlock an account locked after repeated failed sign-ins (operator authority)."""
    a = open_app()
    service.unlock(a, seid=seid, actor=operator_actor())
    console.print(f"unlocked {seid.upper()}")


@unit_app.command("add")
def unit_add(
    code: str = typer.Option(..., "--code"),
    name: str | None = typer.Option(None, "--name"),
    ceiling: str | None = typer.Option(
        None, "--ceiling", help="comma-separated command codes (default: all)"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Create a unit with its ceiling profile."""
    a = open_app()
    unit = service.create_unit(a, code, name, ceiling, actor=operator_actor())
    out = {"code": unit.code, "name": unit.name, "ceiling": [c for c in unit.ceiling.split(",") if c]}
    if json_out:
        print_json(out)
    else:
        console.print(f"unit {out['code']} created; ceiling: {', '.join(out['ceiling']) or '(none)'}")


@app.command("login")
def login(
    seid: str = typer.Option(..., "--seid"),
    password: str | None = typer.Option(None, "--password", help="prompted (hidden) if absent"),
    otp: str | None = typer.Option(None, "--otp", help="TOTP code; prompted if absent"),
    json_out: bool = JsonOpt,
) -> None:
    """Sign in as an employee; the session token is kept in IDRS_HOME/session.token (0600)."""
    a = open_app()
    if password is None:
        password = typer.prompt("password", hide_input=True)
    if otp is None:
        otp = typer.prompt("TOTP code", hide_input=True)
    result = auth.sign_in(a, seid, password, otp, "cli", None)
    write_token(a.settings.home, result.token)
    if json_out:
        print_json({"seid": seid.upper(), "expires_at": result.expires_at.isoformat(),
                    "ended_previous": result.ended_previous})
        return
    console.print(f"signed in as {seid.upper()}; the session ends by {result.expires_at:%Y-%m-%d %H:%M} UTC")
    if result.ended_previous:
        console.print("your earlier session was ended (one session per employee)")


@app.command("logout")
def logout() -> None:
    """End the session kept under IDRS_HOME and delete its token file."""
    a = open_app()
    token = read_token(a.settings.home)
    ended = auth.sign_out(a, token, interface="cli") if token else False
    path = token_path(a.settings.home)
    if path.exists():
        path.unlink()
    console.print("signed out" if ended else "no live session here")
