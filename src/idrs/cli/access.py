"""CLI commands of the access domain (registered on the root app when imported).

``idrs case assign|close``, ``idrs contact open|close``, ``idrs relationship declare`` (operator
commands, recorded under the operator's OS user name) and ``idrs access explain|who-can|
what-can|rebuild`` (for security staff and oversight; each question is recorded too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from idrs.audit.events import Actor, EventType, make_event
from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, console, lazy, open_app, operator_actor, print_json
from idrs.results import Record

if TYPE_CHECKING:
    from idrs.access import conflicts, explain, policy, service
    from idrs.audit import log
    from idrs.context import App
else:  # imported when a command runs (see common.lazy)
    conflicts, explain = lazy("idrs.access.conflicts"), lazy("idrs.access.explain")
    policy, service = lazy("idrs.access.policy"), lazy("idrs.access.service")
    log = lazy("idrs.audit.log")

case_app = typer.Typer(
    cls=Group,
    help="Open and close case assignments (the need-to-know basis).", no_args_is_help=True
)
contact_app = typer.Typer(
    cls=Group,
    help="Open and close taxpayer contacts (calls, letters, visits).", no_args_is_help=True
)
relationship_app = typer.Typer(
    cls=Group,
    help="Relationships employees declared (blocks access).", no_args_is_help=True
)
access_app = typer.Typer(
    cls=Group,
    help="Explain decisions; who can open an account; what an employee can open.",
    no_args_is_help=True,
)
app.add_typer(case_app, name="case")
app.add_typer(contact_app, name="contact")
app.add_typer(relationship_app, name="relationship")
app.add_typer(access_app, name="access")

# Event types not (yet) in idrs.audit.events.EventType; make_event only needs their string.
EXPLAIN_EVENT = EventType.ACCESS_EXPLAIN
REBUILD_EVENT = EventType.ACCESS_INDEX_REBUILD


def _actor() -> Actor:
    return Actor(seid=operator_actor(), interface="cli")


def _app() -> App:
    a = open_app()
    policy.record_version(a)
    return a


def _show(result: Record | dict[str, Any], as_json: bool) -> None:
    if as_json:  # a record as the plain dict it replaced (json.dumps takes no mapping)
        print_json(result.as_dict() if isinstance(result, Record) else result)
    else:
        console.print(", ".join(f"{k}: {v}" for k, v in result.items()), highlight=False)


@case_app.command("assign")
def case_assign(
    seid: str = typer.Option(..., "--seid"),
    tin: str = typer.Option(..., "--tin"),
    case_id: str = typer.Option(..., "--case-id"),
    as_json: bool = JsonOpt,
) -> None:
    """Open a case on TIN assigned to SEID."""
    _show(service.assign_case(_app(), seid=seid, tin=tin, case_id=case_id, actor=_actor()), as_json)


@case_app.command("close")
def case_close(case_id: str = typer.Option(..., "--case-id"), as_json: bool = JsonOpt) -> None:
    """Close a case (access on its basis ends at once)."""
    _show(service.close_case(_app(), case_id=case_id, actor=_actor()), as_json)


@contact_app.command("open")
def contact_open(
    seid: str = typer.Option(..., "--seid"),
    tin: str = typer.Option(None, "--tin"),
    contact_id: str = typer.Option(..., "--contact-id"),
    channel: str = typer.Option("phone", "--channel", help="phone|letter|visit"),
    as_json: bool = JsonOpt,
) -> None:
    """Declare a walk-in contact handled by SEID for TIN (no intake record: marked declared).

    Only an employee of a walk-in role may hold one (NO_INBOUND_RECORD otherwise, recorded);
    calls, letters and visits the intake systems recorded come from the contact feed
    (POST /api/v1/contacts/inbound)."""
    _show(
        service.open_contact(
            _app(), seid=seid, tin=tin, contact_id=contact_id, channel=channel, actor=_actor()
        ),
        as_json,
    )


@contact_app.command("close")
def contact_close(
    contact_id: str = typer.Option(..., "--contact-id"), as_json: bool = JsonOpt
) -> None:
    """Close a taxpayer contact."""
    _show(service.close_contact(_app(), contact_id=contact_id, actor=_actor()), as_json)


@relationship_app.command("declare")
def relationship_declare(
    seid: str = typer.Option(..., "--seid"),
    tin: str = typer.Option(..., "--tin"),
    kind: str = typer.Option(
        ..., "--kind", help="friend|relative|neighbor|business|former_spouse|other"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Record a relationship SEID declared with TIN (the account is blocked for them)."""
    _show(
        service.declare_relationship(_app(), seid=seid, tin=tin, kind=kind, actor=_actor()), as_json
    )


def _record_question(a: App, what: str, obj: dict[str, Any]) -> None:
    # Asking who could see whom reveals links between people: the question itself is recorded.
    log.record(a, EXPLAIN_EVENT, Actor(operator_actor(), "cli"), obj, {"question": what})


@access_app.command("explain")
def access_explain(
    seid: str = typer.Option(..., "--seid"),
    tin: str = typer.Option(..., "--tin"),
    command: str = typer.Option(..., "--command"),
    case: str = typer.Option(None, "--case"),
    contact: str = typer.Option(None, "--contact"),
    reason: str = typer.Option(None, "--reason"),
    as_json: bool = JsonOpt,
) -> None:
    """Every rule, fact and piece of evidence behind one decision (security staff)."""
    a = _app()
    from idrs.db import session_scope

    with session_scope(a.engine) as s:
        result = explain.explain(
            s, a, seid=seid, tin=tin, command=command, case=case, contact=contact, reason=reason
        )
    _record_question(
        a,
        "explain",
        {"seid": result["seid"], "taxpayer": result["taxpayer"], "command": result["command"]},
    )
    if as_json:
        print_json(result)
        return
    console.print(
        f"{result['decision'].upper()}  {result['seid']} {result['command']} "
        f"{result['taxpayer']}  policy {result['policy_version'][:12]}",
        highlight=False,
    )
    for r in result["reasons"]:
        console.print(f"  {r['code']}: {r['message']}", highlight=False)
    table = Table("rule", "effect", "reason", "applies")
    for rule in result["rules"]:
        table.add_row(
            rule["policy"], rule["effect"], rule["reason"] or "", "yes" if rule["applies"] else ""
        )
    console.print(table)
    facts_table = Table("fact", "value")
    for k, v in result["facts"].items():
        facts_table.add_row(k, str(v))
    console.print(facts_table)
    for code, items in result["evidence"].items():
        for item in items:
            console.print(f"  evidence {code}: {item}", highlight=False)


@access_app.command("who-can")
def access_who_can(
    tin: str = typer.Option(..., "--tin"),
    command: str = typer.Option(None, "--command"),
    as_json: bool = JsonOpt,
) -> None:
    """The employees who could open this account now, and why."""
    a = _app()
    from idrs.db import session_scope

    with session_scope(a.engine) as s:
        result = explain.who_can(s, a, tin=tin, command=command)
    _record_question(a, "who-can", {"taxpayer": result["taxpayer"], "command": command})
    if as_json:
        print_json(result)
        return
    table = Table("seid", "unit", "basis", "commands / refused")
    for row in result["can"]:
        table.add_row(row["seid"], row["unit"] or "", row["basis"] or "", ",".join(row["commands"]))
    for row in result["refused"]:
        table.add_row(
            row["seid"],
            row["unit"] or "",
            row["basis"] or "",
            "; ".join(f"{c}: {','.join(v)}" for c, v in row["refused"].items()),
        )
    console.print(table)


@access_app.command("what-can")
def access_what_can(seid: str = typer.Option(..., "--seid"), as_json: bool = JsonOpt) -> None:
    """Per command code and sensitivity class, how many taxpayers SEID could open now."""
    a = _app()
    from idrs.db import session_scope

    with session_scope(a.engine) as s:
        result = explain.what_can(s, a, seid=seid)
    _record_question(a, "what-can", {"seid": result["seid"]})
    if as_json:
        print_json(result)
        return
    table = Table("command", "kind", "taxpayers", "case", "contact", "visible classes")
    for row in result["commands"]:
        bb = row.get("by_basis", {})
        table.add_row(
            row["command"],
            row["kind"],
            str(
                row["taxpayers"]
                if row["taxpayers"] is not None
                else f"NAMES ≤{row['per_search_limit']}/search"
            ),
            str(bb.get("case", "")),
            str(bb.get("contact", "")),
            ",".join(row["visible_classes"]),
        )
    console.print(table)


@access_app.command("rebuild")
def access_rebuild(as_json: bool = JsonOpt) -> None:
    """Recompute the whole conflict index (after a bulk load)."""
    a = _app()
    n = conflicts.rebuild_all(a)
    log.append(
        a.engine,
        make_event(
            REBUILD_EVENT,
            time=a.clock.now(),
            actor=operator_actor(),
            outcome="success",
            interface="cli",
            obj={"kind": "conflict_index"},
            detail={"employees": n},
        ),
    )
    _show({"employees": n}, as_json)
