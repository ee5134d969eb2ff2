"""``idrs init``, ``idrs serve`` and ``idrs demo``.

``init`` migrates the schema, creates the keys (and the audit-log signing key) if absent and
creates the first security administrator, printing its credentials once as JSON.
``demo`` does the same, adds a small synthetic population and demo employees (an examiner
with an open case, a CSR, a manager, an auditor), writes their credentials to
``IDRS_HOME/demo-credentials.json`` (0600), prints how to sign in, and serves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import select

from idrs import migrate
from idrs.access import policy
from idrs.audit import log
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import EventType, make_event
from idrs.cli import app
from idrs.cli.common import console, open_app, operator_actor, print_json
from idrs.config import get_settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import check_reachable, engine_for
from idrs.errors import IdrsError
from idrs.people import service

DEMO_FILE = "demo-credentials.json"
DEMO_TAXPAYERS = 2000


def initialize() -> tuple[App, dict[str, str] | None]:
    """Migrate, create keys, the signing key and the first administrator (idempotent)."""
    settings = get_settings()
    engine = engine_for(settings.database_url)
    check_reachable(engine)
    migrate.upgrade(engine)
    keyring = Keyring.create(settings.home)
    ensure_signing_key(settings.home)  # the audit log's Ed25519 key, never in the database
    a = App(settings=settings, engine=engine, keyring=keyring)
    # A policy file that does not parse or validate stops the system here, not at the first
    # request; a new policy version is itself recorded.
    policy.loaded()
    policy.record_version(a)
    actor = operator_actor()
    log.append(engine, make_event(EventType.SYSTEM_SCHEMA_INIT, time=a.clock.now(), actor=actor,
                                  outcome="success", interface="cli"))
    return a, service.ensure_first_admin(a, actor=actor)


@app.command("init")
def init() -> None:
    """Create or upgrade the schema, create keys if absent, create the first security admin."""
    _, creds = initialize()
    if creds is not None:
        print_json(creds)
        sys.stderr.write("first security administrator created: keep these credentials; "
                         "they are not shown again\n")
    else:
        sys.stderr.write("schema and keys ready; a security administrator already exists\n")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Run the HTTP API (/api/v1, OpenAPI at /api/v1/docs) and the web interface."""
    import uvicorn

    from idrs.api.app import create_app

    api = create_app(open_app())
    uvicorn.run(api, host=host, port=port, log_level="info")


@app.command("demo")
def demo(
    taxpayers: int = typer.Option(DEMO_TAXPAYERS, "--taxpayers", help="size of the demo population"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve when ready"),
) -> None:
    """One command for a newcomer: init, seed a demo population, print how to sign in, serve."""
    a, admin = initialize()
    path = a.settings.home / DEMO_FILE
    if path.exists():
        people = json.loads(path.read_text())
        console.print(f"demo already set up; credentials in {path}")
    else:
        _populate(a, taxpayers)
        people = _demo_employees(a)
        if admin is not None:
            people.insert(0, {**admin, "roles": ["security_admin"]})
        _write_private(path, json.dumps(people, indent=2) + "\n")
        # A first signed checkpoint, so the audit page and GET /audit/checkpoint have one.
        from idrs.audit.service import checkpoint_now

        checkpoint_now(a)
    _print_how_to(a, people, path, host, port)
    if serve_after:
        serve(host=host, port=port)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _populate(a: App, taxpayers: int) -> None:
    """Seed the demo population (deterministic, seed 1) unless the database has taxpayers."""
    from idrs.masterfile.models import Taxpayer
    from idrs.masterfile.seed import seed

    with a.engine.connect() as conn:
        if conn.execute(select(Taxpayer.id).limit(1)).first() is not None:
            return
    console.print(f"seeding {taxpayers} synthetic taxpayers …")
    seed(a, taxpayers=taxpayers, seed=1, employees=0, actor=operator_actor())


DEMO_PEOPLE = [
    ("DEMOEX1", "Dana Examiner", "999-49-9001", "examiner"),
    ("DEMOCS1", "Chris Service", "999-49-9002", "csr"),
    ("DEMOMG1", "Morgan Manager", "999-49-9003", "manager"),
    ("DEMOAU1", "Alex Auditor", "999-49-9004", "auditor"),
    ("DEMOPA1", "Robin Analyst", "999-49-9005", "privacy_analyst"),
]


def _demo_employees(a: App) -> list[dict[str, Any]]:
    """Create the demo employees and open a case for the examiner on one seeded taxpayer."""
    people: list[dict[str, Any]] = []
    for seid, name, tin, role in DEMO_PEOPLE:
        creds = service.create_employee(
            a, unax_attested_at=a.clock.now(), seid=seid, name=name, tin=tin, roles=role,
                                        unit="DEMO" if _ensure_unit(a) else None,
                                        actor=operator_actor())
        people.append({**creds, "roles": [role], "tin": tin})
    case_tin = _pick_case_tin(a)
    if case_tin is not None:
        from idrs.access.service import Actor, assign_case

        assign_case(a, seid="DEMOEX1", tin=case_tin, case_id="DEMO-1",
                    actor=Actor(operator_actor()))
        people[0]["case"] = {"case_id": "DEMO-1", "tin": case_tin}
    # The outside engineer on a 120-day detail (issue 6), grant requested, not yet approved.
    from idrs.grants.demo import seed_outside_detail

    detail = seed_outside_detail(a, actor=operator_actor())
    for seid, creds in detail["people"].items():
        roles = creds.pop("roles")
        people.append({**creds, "seid": seid, "roles": [roles], "grant_id": detail["grant_id"]})
    return people


def _ensure_unit(a: App) -> bool:
    from idrs.people.models import Unit

    with a.engine.connect() as conn:
        if conn.execute(select(Unit.id).where(Unit.code == "DEMO")).first() is None:
            service.create_unit(a, "DEMO", "Demonstration unit", actor=operator_actor())
    return True


def _pick_case_tin(a: App) -> str | None:
    """The first taxpayer without markers who is not an employee (no conflict, no marker)."""
    from idrs.identifiers import format_tin
    from idrs.masterfile.models import Marker, Taxpayer
    from idrs.people.models import Employee

    with a.engine.connect() as conn:
        employees = {bytes(r) for r in conn.execute(select(Employee.tin_index)).scalars() if r}
        marked = select(Marker.taxpayer_id)
        rows = conn.execute(
            select(Taxpayer.tin_index, Taxpayer.tin_enc)
            .where(Taxpayer.id.not_in(marked)).order_by(Taxpayer.id).limit(200)
        ).all()
    for idx, enc in rows:
        if bytes(idx) not in employees:
            return format_tin(a.keyring.decrypt(enc, "taxpayer.tin"))
    return None


def _print_how_to(a: App, people: list[dict[str, Any]], path: Path, host: str, port: int) -> None:
    ex = next((p for p in people if p["seid"] == "DEMOEX1"), None)
    if ex is None:
        raise IdrsError(f"demo credentials in {path} lack the examiner")
    code_cmd = f"{sys.executable} -c \"import pyotp; print(pyotp.TOTP('{ex['totp_secret']}').now())\""
    db = "" if a.settings.database_url == "sqlite:///idrs.db" else f" --db {a.settings.database_url}"
    case = ex.get("case") or {}
    exe = str(Path(sys.executable).parent / "idrs")  # the venv's console script, by full path
    lines = [
        "",
        "idrs demo is ready",
        f"credentials of every demo employee: {path} (0600)",
        "sign in as the demo examiner (the TOTP code changes every 30 s):",
        f"  {exe}{db} login --seid {ex['seid']} --password '{ex['password']}' --otp $({code_cmd})",
    ]
    if case:
        lines.append(f"  {exe}{db} research ENMOD {case['tin']} --case {case['case_id']}")
    lines.append(f"web: http://{host}:{port}/ (SEID, password and the TOTP code above)")
    lines.append(f"HTTP API: http://{host}:{port}/api/v1/docs (POST /api/v1/sessions, then "
                 "GET /api/v1/accounts/{tin}/{command})")
    # Plain writes, not Rich: the commands must stay on one line to be copied.
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
