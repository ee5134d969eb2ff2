"""CLI of the people domain: employees, units, ``login``, ``logout``.

Operator commands (``employee add``, ``employee unlock``, ``unit add``) act with the local
operator's authority and are recorded under ``os:<user>``. ``login`` keeps the session token
in ``IDRS_HOME/session.token`` (mode 0600); ``research`` then runs as that employee.

Security administration (``employee list|show|set-profile|changes|confirm-change|
reject-change|deactivate|reactivate``, ``unit list|set-ceiling``) acts as the security
administrator signed in with ``idrs login``: each calls one function of
``idrs.people.admin``, which checks the role, the administrator's units, the ban on
administering oneself and the two-person rule, and records every step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from idrs.audit.events import Actor
from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, lazy, open_app, operator_actor, print_json

if TYPE_CHECKING:
    from idrs.context import App
    from idrs.people import admin, auth, service
else:  # imported when a command runs (see common.lazy)
    admin, auth = lazy("idrs.people.admin"), lazy("idrs.people.auth")
    service = lazy("idrs.people.service")

employee_app = typer.Typer(
    cls=Group,
    help="Employees: create, list, change profiles (two-person), deactivate, unlock.",
    no_args_is_help=True,
)
unit_app = typer.Typer(cls=Group, help="Units and their ceiling profiles.", no_args_is_help=True)
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
    print_json(creds)  # the credentials are JSON either way (docs/interface.md)
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


# -- security administration (as the signed-in security administrator) ----------------------


def _admin_actor(a: App) -> Actor:
    """The security administrator signed in here (``idrs login``); AUTH_REQUIRED otherwise."""
    emp = auth.authenticate(a, read_token(a.settings.home), interface="cli")
    return Actor(emp.seid, "cli")


def _codes_text(codes: list[str]) -> str:
    return ",".join(codes) or "-"


def _show_change(ch: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(ch)
        return
    what = ", ".join([f"+{x}" for x in ch["added"]] + [f"-{x}" for x in ch["removed"]])
    line = f"change {ch['change_id']} for {ch['seid']}: {ch['status']} ({what})"
    if ch["status"] == "pending":
        line += (f"; a second security administrator must confirm {', '.join(ch['restricted'])}"
                 f" by {ch['expires_at']}")
    console.print(line, markup=False, highlight=False)


@employee_app.command("list")
def employee_list(
    unit: str | None = typer.Option(None, "--unit", help="only this unit (one you administer)"),
    active_only: bool = typer.Option(False, "--active-only", help="leave out inactive employees"),
    json_out: bool = JsonOpt,
) -> None:
    """Employees of the units you administer (never a TIN, password or TOTP secret)."""
    a = open_app()
    rows = admin.list_employees(a, _admin_actor(a), unit=unit, include_inactive=not active_only)
    if json_out:
        print_json({"employees": rows})
        return
    from rich.table import Table  # only to show one

    table = Table("seid", "name", "unit", "roles", "profile", "authorities", "state", "pending")
    for e in rows:
        state = "inactive" if not e["active"] else ("locked" if e["locked"] else "active")
        table.add_row(e["seid"], e["name"], e["unit"], ",".join(e["roles"]),
                      _codes_text(e["profile"]), ",".join(e["authorities"]), state,
                      str(e["pending_change"] or ""))
    console.print(table)


@employee_app.command("show")
def employee_show(seid: str = typer.Option(..., "--seid"), json_out: bool = JsonOpt) -> None:
    """One employee: roles, profile, authorities, the unit's ceiling and the change history."""
    a = open_app()
    e = admin.show_employee(a, _admin_actor(a), seid)
    if json_out:
        print_json(e)
        return
    for key in ("seid", "name", "kind", "unit", "roles", "profile", "authorities", "ceiling",
                "active", "locked", "pending_change"):
        value = e[key]
        console.print(f"{key:>15}: {','.join(value) if isinstance(value, list) else value}",
                      markup=False, highlight=False)
    for ch in e["changes"]:
        _show_change(ch, False)


@employee_app.command("set-profile")
def employee_set_profile(
    seid: str = typer.Option(..., "--seid", help="whose profile (never your own)"),
    codes: str | None = typer.Option(
        None, "--codes", help="the new command-code profile, comma-separated ('' for none)"
    ),
    roles: str | None = typer.Option(None, "--roles", help="the new roles, comma-separated"),
    authorities: str | None = typer.Option(
        None, "--authorities",
        help="the new authorities: adoption,employee_accounts,sensitive_accounts,admin:UNIT",
    ),
    note: str | None = typer.Option(None, "--note", help="why (kept with the change)"),
    json_out: bool = JsonOpt,
) -> None:
    """Change roles, profile and/or authorities; restricted additions wait for a second admin."""
    a = open_app()
    ch = admin.request_change(a, _admin_actor(a), seid=seid, roles=roles, codes=codes,
                              authorities=authorities, note=note)
    _show_change(ch, json_out)


@employee_app.command("changes")
def employee_changes(
    status: str = typer.Option("pending", "--status",
                               help="pending|applied|confirmed|rejected|expired|all"),
    json_out: bool = JsonOpt,
) -> None:
    """Profile changes in your units (default: those waiting for confirmation)."""
    a = open_app()
    rows = admin.list_changes(a, _admin_actor(a), status=status)
    if json_out:
        print_json({"changes": rows})
        return
    for ch in rows:
        _show_change(ch, False)
    if not rows:
        console.print(f"no {status} changes" if status != "all" else "no changes")


@employee_app.command("confirm-change")
def employee_confirm_change(
    change_id: int = typer.Argument(..., help="the change's number"),
    note: str | None = typer.Option(None, "--note"),
    json_out: bool = JsonOpt,
) -> None:
    """Confirm a pending change (a second security administrator: not requester, not subject)."""
    a = open_app()
    _show_change(admin.confirm_change(a, _admin_actor(a), change_id, note), json_out)


@employee_app.command("reject-change")
def employee_reject_change(
    change_id: int = typer.Argument(..., help="the change's number"),
    note: str | None = typer.Option(None, "--note"),
    json_out: bool = JsonOpt,
) -> None:
    """Reject (or, as its requester, withdraw) a pending change; nothing is applied."""
    a = open_app()
    _show_change(admin.reject_change(a, _admin_actor(a), change_id, note), json_out)


def _set_active(seid: str, active: bool, json_out: bool) -> None:
    a = open_app()
    out = admin.set_active(a, _admin_actor(a), seid=seid, active=active)
    if json_out:
        print_json(out.as_dict())
    else:
        extra = f"; {out.sessions_ended} session(s) ended" if out.sessions_ended else ""
        console.print(f"{out.seid} {'reactivated' if active else 'deactivated'}{extra}")


@employee_app.command("deactivate")
def employee_deactivate(seid: str = typer.Option(..., "--seid"), json_out: bool = JsonOpt) -> None:
    """Deactivate an employee of your units (ends their sessions at once)."""
    _set_active(seid, False, json_out)


@employee_app.command("reactivate")
def employee_reactivate(seid: str = typer.Option(..., "--seid"), json_out: bool = JsonOpt) -> None:
    """Reactivate a deactivated employee of your units."""
    _set_active(seid, True, json_out)


@unit_app.command("list")
def unit_list(json_out: bool = JsonOpt) -> None:
    """Every unit with its ceiling, its active headcount and whether you administer it."""
    a = open_app()
    rows = admin.list_units(a, _admin_actor(a))
    if json_out:
        print_json({"units": rows})
        return
    from rich.table import Table  # only to show one

    table = Table("code", "name", "ceiling", "headcount", "yours")
    for u in rows:
        table.add_row(u["code"], u["name"], _codes_text(u["ceiling"]), str(u["headcount"]),
                      "yes" if u["administered"] else "")
    console.print(table)


@unit_app.command("set-ceiling")
def unit_set_ceiling(
    code: str = typer.Option(..., "--code", help="a unit you administer"),
    ceiling: str = typer.Option(..., "--ceiling", help="comma-separated command codes ('' for none)"),
    json_out: bool = JsonOpt,
) -> None:
    """Set a unit's ceiling; lowering it trims the unit's profiles at once."""
    a = open_app()
    out = admin.set_ceiling(a, _admin_actor(a), unit=code, codes=ceiling)
    if json_out:
        print_json(out.as_dict())
        return
    console.print(f"unit {out.code} ceiling: {_codes_text(out.ceiling)}")
    for seid, removed in sorted(out.trimmed.items()):
        console.print(f"  {seid}: removed {', '.join(removed)}")


# -- machine principals ----------------------------------------------------------------------

system_app = typer.Typer(
    cls=Group,
    help="Machine principals (the contact feed, other agencies' systems): create, rotate, list.",
    no_args_is_help=True,
)
app.add_typer(system_app, name="system")


@system_app.command("add")
def system_add(
    name: str = typer.Option(..., "--name", help="lowercase letters, digits and '-'"),
    kind: str | None = typer.Option(
        None, "--kind", help="contact_feed or agency_system (default: agency_system when "
        "--agency is given, else contact_feed)"),
    agency: str | None = typer.Option(None, "--agency", help="its agency (agency_system)"),
) -> None:
    """Create a machine principal; prints JSON {"system", "kind", "agency", "secret"} (shown once)."""
    from idrs.people import systems

    if kind is None:  # `idrs system add --name N --agency A` is another agency's system
        kind = systems.AGENCY_SYSTEM if agency else systems.CONTACT_FEED
    print_json(systems.add_system(open_app(), name=name, kind=kind, agency=agency,
                                  actor=operator_actor()))


@system_app.command("rotate")
def system_rotate(name: str = typer.Option(..., "--name")) -> None:
    """A new secret for a machine principal (shown once); the old one and its tokens stop at once."""
    from idrs.people import systems

    print_json(systems.rotate_secret(open_app(), name=name, actor=operator_actor()))


@system_app.command("list")
def system_list(json_out: bool = JsonOpt) -> None:
    """Machine principals (never a secret)."""
    from idrs.people import systems

    rows = systems.list_systems(open_app())
    if json_out:
        print_json(rows)
        return
    from rich.table import Table  # only to show one

    table = Table("system", "kind", "agency", "active", "created", "rotated")
    for r in rows:
        table.add_row(r["system"], r["kind"], r["agency"] or "", str(r["active"]),
                      r["created_at"][:19], (r["rotated_at"] or "")[:19])
    console.print(table)
