"""``idrs init``, ``idrs serve`` and ``idrs demo``.

``init`` migrates the schema, creates the keys (and the audit-log signing key) if absent and
creates the first security administrator, printing its credentials once as JSON.
``demo`` does the same, adds a small synthetic population and demo employees (an examiner
with an open case, a CSR, a manager, an auditor), writes their credentials to
``IDRS_HOME/demo-credentials.json`` (0600), prints how to sign in, and serves.
``serve --tls-cert FILE --tls-key FILE`` serves HTTPS (checked before anything starts);
``--workers N`` runs N uvicorn worker processes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from idrs.audit.events import EventType, make_event
from idrs.cli import app
from idrs.cli.common import (
    console,
    lazy,
    load_lazy_modules,
    open_app,
    operator_actor,
    print_json,
)
from idrs.errors import IdrsError
from idrs.vocabulary import Role

if TYPE_CHECKING:
    from idrs import migrate
    from idrs.access import policy
    from idrs.audit import log
    from idrs.context import App
    from idrs.people import service
else:  # imported when a command runs (see common.lazy)
    migrate, policy = lazy("idrs.migrate"), lazy("idrs.access.policy")
    log, service = lazy("idrs.audit.log"), lazy("idrs.people.service")

DEMO_FILE = "demo-credentials.json"
#: How long a ``--workers`` process may take to answer its supervisor while starting.
WORKER_STARTUP_SECONDS = 60
DEMO_TAXPAYERS = 2000


def initialize() -> tuple[App, dict[str, str] | None]:
    """Migrate, create keys, the signing key and the first administrator (idempotent)."""
    from idrs.audit.checkpoint import ensure_signing_key
    from idrs.config import get_settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import check_reachable, engine_for

    load_lazy_modules()  # before anything may start a thread (see common.load_lazy_modules)
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
    log.append(
        engine,
        make_event(
            EventType.SYSTEM_SCHEMA_INIT,
            time=a.clock.now(),
            actor=actor,
            outcome="success",
            interface="cli",
        ),
    )
    return a, service.ensure_first_admin(a, actor=actor)


@app.command("init")
def init() -> None:
    """Create or upgrade the schema, create keys if absent, create the first security admin."""
    _, creds = initialize()
    if creds is not None:
        print_json(creds)
        sys.stderr.write(
            "first security administrator created: keep these credentials; "
            "they are not shown again\n"
        )
    else:
        sys.stderr.write("schema and keys ready; a security administrator already exists\n")


TLS_HELP_CERT = "PEM certificate (chain) to serve HTTPS; needs --tls-key"
TLS_HELP_KEY = "PEM private key (unencrypted) of --tls-cert; needs --tls-cert"


def check_tls(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """The (certificate, key) files to serve HTTPS with, or None for plain HTTP.

    Both or neither. Each must be a readable PEM file; the key must be unencrypted and belong
    to the certificate (the check Python's TLS layer makes at start-up, made before anything
    starts). Raises IdrsError naming the option at fault.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing, given = ("--tls-key", "--tls-cert") if key is None else ("--tls-cert", "--tls-key")
        raise IdrsError(
            f"{given} needs {missing}: give both --tls-cert FILE and --tls-key FILE "
            "(or neither for plain HTTP)"
        )
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    def read(path: Path, option: str) -> bytes:
        if not path.is_file():
            raise IdrsError(f"{option}: {path} does not exist or is not a file")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise IdrsError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None

    cert_pem, key_pem = read(cert, "--tls-cert"), read(key, "--tls-key")
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise IdrsError(f"--tls-cert: {cert} is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise IdrsError(
            f"--tls-key: {key} is encrypted; give an unencrypted key (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise IdrsError(f"--tls-key: {key} is not a PEM private key this server can use") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*raw) != private.public_key().public_bytes(*raw):
        raise IdrsError(
            f"--tls-key: {key} is not the key of the certificate in --tls-cert ({cert})"
        )
    import ssl

    try:  # what uvicorn will do, so a start-up failure cannot come later
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise IdrsError(f"--tls-cert/--tls-key: the TLS layer refuses them: {exc}") from None
    now = datetime.now(UTC)
    if certificate.not_valid_after_utc < now:
        sys.stderr.write(
            f"warning: the certificate in --tls-cert expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}; clients will refuse it\n"
        )
    if key.stat().st_mode & 0o077:
        sys.stderr.write(f"warning: --tls-key {key} is readable by other users; chmod 600 it\n")
    return cert, key


def served_app() -> Any:
    """The ASGI application each ``--workers`` process builds (uvicorn factory).

    Also redacts this process's access log: a worker configures logging afresh, and this
    factory runs after that (and after the worker answers its supervisor's health checks,
    which a slow import before that point would miss).

    Last, everything built so far (the modules, the application, the route table, the
    models' validators) is moved out of the garbage collector's sight (:func:`freeze_heap`).
    """
    from idrs.api.app import create_app

    redact_access_log()
    api = create_app(open_app())
    freeze_heap()
    return api


def freeze_heap() -> None:
    """``gc.freeze()`` after a collection: the objects of a started server live as long as
    it does, and the cyclic collector's full passes no longer walk them.

    Without it, a server process's full collection walked its whole start-up heap (the
    framework, SQLAlchemy, the models, the application) about every ten seconds under
    load: 94-112 ms with every thread of the process stopped, once inside an audit batch
    that held the log's write lock, so the other process's appenders waited too (measured
    with two workers at 1M taxpayers; after it the longest full collection took 6 ms and
    the longest batch 11.5 ms instead of 113 ms). What the server allocates afterwards is
    collected as before; the frozen objects are still freed by reference counting.
    """
    import gc

    gc.collect()
    gc.freeze()


#: a path segment that may hold a TIN: 9 digits with or without dashes, or any run of 9 or
#: more digits (any script: a TIN typed in other digits is hidden too)
_MAY_BE_TIN = re.compile(r"\d{3}-?\d{2}-?\d{4}|\d{9,}")


def redact_path(full_path: str) -> str:
    """A request path as the access log may show it: no identifier, no query.

    API paths keep ``/api/v1/RESOURCE`` (``/api/v1/accounts/*`` for any TIN or name and
    command), pages keep their first segment (``/research``, ``/static/*``); a query becomes
    ``?*``; a kept segment that may be a TIN becomes ``:tin``. Paths carry TINs, names and
    case numbers, which never go into a log.
    """
    path, query = full_path.partition("?")[::2]
    parts = [p for p in path.split("/") if p]
    keep = 3 if parts[:2] == ["api", "v1"] else 1
    shown = "/" + "/".join(":tin" if _MAY_BE_TIN.search(p) else p for p in parts[:keep])
    if len(parts) > keep:
        shown += "/*"
    return shown + ("?*" if query else "")


class RedactedAccessLog(logging.Filter):
    """Rewrites uvicorn's access-log records with :func:`redact_path`; a record of another
    shape (a future uvicorn) is dropped rather than written unredacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return False
        record.args = (args[0], args[1], redact_path(str(args[2])), args[3], args[4])
        return True


def redact_access_log() -> None:
    """Put :class:`RedactedAccessLog` on uvicorn's access logger (once per process)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactedAccessLog) for f in logger.filters):
        logger.addFilter(RedactedAccessLog())


def uvicorn_options(
    host: str,
    port: int,
    *,
    tls: tuple[Path, Path] | None = None,
    access_log: bool = True,
    forwarded_allow_ips: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments ``idrs serve`` gives ``uvicorn.run`` (the load benchmark serves
    its bare comparison app with the same ones).

    Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only from the
    peers named in ``forwarded_allow_ips`` (comma-separated addresses or networks, as
    uvicorn takes them); with none named, none is believed, from loopback neither: the
    recorded origin and the per-address limits are then the peer's own address.
    """
    allowed = (forwarded_allow_ips or "").strip()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        "proxy_headers": bool(allowed),
        "forwarded_allow_ips": allowed or "",
    }
    if tls is not None:
        options.update(ssl_certfile=str(tls[0]), ssl_keyfile=str(tls[1]))
    return options


def run_server(
    host: str,
    port: int,
    *,
    tls: tuple[Path, Path] | None = None,
    workers: int = 1,
    access_log: bool = True,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve the API and the web interface with uvicorn (HTTPS when ``tls`` is given).

    The application is built here first, in this process, so a database, key or policy
    problem stops the command before it listens (and the policy version is recorded once,
    not by every worker). With several workers uvicorn starts that many processes, each
    building its own application from the same settings (IDRS_* in the environment).
    """
    api = served_app()
    options = uvicorn_options(
        host, port, tls=tls, access_log=access_log, forwarded_allow_ips=forwarded_allow_ips
    )
    run_uvicorn(api if workers == 1 else "idrs.cli.setup:served_app", options, workers=workers)


def run_uvicorn(target: Any, options: dict[str, Any], *, workers: int = 1) -> None:
    """``uvicorn.run`` as ``idrs serve`` needs it (the load benchmark serves its bare app so).

    ``target`` is the ASGI app, or with ``workers > 1`` the import string of a factory.
    Differences from ``uvicorn.run``: the access log is redacted; a worker gets
    ``WORKER_STARTUP_SECONDS`` to answer its supervisor; and the shared listening socket is
    marked TCP, so that asyncio sets TCP_NODELAY on each connection. uvicorn binds it with
    protocol 0, asyncio then leaves Nagle's algorithm on, and every answer written in two
    pieces (head, then body) waits for the client's delayed ACK: about 40 ms a request.
    """
    import inspect
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers == 1:
        config = uvicorn.Config(target, **options)  # configures logging ...
        redact_access_log()  # ... so the filter goes on afterwards
        server = uvicorn.Server(config)
        server.run()
        if not server.started:  # e.g. the port is taken: uvicorn logged why
            raise IdrsError(
                f"the server did not start on {options.get('host')}:{options.get('port')}"
            )
        return
    extra: dict[str, Any] = {"factory": True, "workers": workers}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # A worker imports idrs and opens the database before it serves; on a busy machine
        # that outlasts uvicorn's default 5 s and the supervisor kills and restarts it forever.
        extra["timeout_worker_healthcheck"] = WORKER_STARTUP_SECONDS
    config = uvicorn.Config(target, **options, **extra)
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        sock.set_inheritable(True)
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn
        run = uvicorn.Server(config).run
        Multiprocess(config, target=run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help=TLS_HELP_CERT),
    tls_key: Path | None = typer.Option(None, "--tls-key", help=TLS_HELP_KEY),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="worker processes (SQLite and PostgreSQL both allow several)",
    ),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="log one line per request on stdout"
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="the reverse proxies (comma-separated addresses or networks) whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; default: none, not even loopback",
    ),
) -> None:
    """Run the HTTP API (/api/v1, OpenAPI at /api/v1/docs) and the web interface.

    With --tls-cert and --tls-key it serves HTTPS: session cookies are then Secure and every
    answer carries Strict-Transport-Security. Behind a reverse proxy, name it with
    --forwarded-allow-ips so that the recorded origin is the client's address.
    """
    tls = check_tls(tls_cert, tls_key)  # before anything opens or starts
    run_server(host, port, tls=tls, workers=workers, access_log=access_log,
               forwarded_allow_ips=forwarded_allow_ips)


@app.command("demo")
def demo(
    taxpayers: int = typer.Option(
        DEMO_TAXPAYERS, "--taxpayers", help="size of the demo population"
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve when ready"),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help=TLS_HELP_CERT),
    tls_key: Path | None = typer.Option(None, "--tls-key", help=TLS_HELP_KEY),
) -> None:
    """One command for a newcomer: init, seed a demo population, print how to sign in, serve."""
    tls = check_tls(tls_cert, tls_key)  # bad TLS files stop the command before it writes
    a, admin = initialize()
    path = a.settings.home / DEMO_FILE
    if path.exists():
        people = json.loads(path.read_text())
        console.print(f"demo already set up; credentials in {path}")
    else:
        _populate(a, taxpayers)
        people = _demo_employees(a)
        if admin is not None:
            people.insert(0, {**admin, "roles": [Role.SECURITY_ADMIN]})
        _write_private(path, json.dumps(people, indent=2) + "\n")
        # A first signed checkpoint, so the audit page and GET /audit/checkpoint have one.
        from idrs.audit.service import checkpoint_now

        checkpoint_now(a)
    _print_how_to(a, people, path, host, port, scheme="https" if tls else "http")
    if serve_after:
        run_server(host, port, tls=tls)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _populate(a: App, taxpayers: int) -> None:
    """Seed the demo population (deterministic, seed 1) unless the database has taxpayers."""
    from sqlalchemy import select

    from idrs.masterfile.models import Taxpayer
    from idrs.masterfile.seed import seed

    with a.engine.connect() as conn:
        if conn.execute(select(Taxpayer.id).limit(1)).first() is not None:
            return
    console.print(f"seeding {taxpayers} synthetic taxpayers …")
    seed(a, taxpayers=taxpayers, seed=1, employees=0, actor=operator_actor())


DEMO_PEOPLE = [
    ("DEMOEX1", "Dana Examiner", "999-49-9001", Role.EXAMINER),
    ("DEMOCS1", "Chris Service", "999-49-9002", Role.CSR),
    ("DEMOMG1", "Morgan Manager", "999-49-9003", Role.MANAGER),
    ("DEMOAU1", "Alex Auditor", "999-49-9004", Role.AUDITOR),
    ("DEMOPA1", "Robin Analyst", "999-49-9005", Role.PRIVACY_ANALYST),
    # the unit's security representative: with SA001 (unit SEC), the second administrator a
    # restricted profile change in unit DEMO needs
    ("DEMOSA1", "Jordan Security", "999-49-9006", Role.SECURITY_ADMIN),
]
#: Everyone else is in unit DEMO. The privacy analyst works at headquarters: an analyst never
#: reviews alerts about their own unit, so in DEMO they could work none of the demo's.
DEMO_UNITS = {"DEMOPA1": "HQ"}


def _demo_employees(a: App) -> list[dict[str, Any]]:
    """Create the demo employees and open a case for the examiner on one seeded taxpayer."""
    people: list[dict[str, Any]] = []
    for seid, name, tin, role in DEMO_PEOPLE:
        creds = service.create_employee(
            a,
            unax_attested_at=a.clock.now(),
            seid=seid,
            name=name,
            tin=tin,
            roles=role,
            unit=DEMO_UNITS.get(seid, "DEMO") if _ensure_unit(a) else None,
            actor=operator_actor(),
        )
        people.append({**creds, "roles": [role], "tin": tin})
    case_tin = _pick_case_tin(a)
    if case_tin is not None:
        from idrs.access.service import assign_case
        from idrs.audit.events import Actor

        assign_case(
            a, seid="DEMOEX1", tin=case_tin, case_id="DEMO-1", actor=Actor(operator_actor())
        )
        people[0]["case"] = {"case_id": "DEMO-1", "tin": case_tin}
    # The outside engineer on a 120-day detail (issue 6), grant requested, not yet approved.
    from idrs.grants.demo import seed_outside_detail

    detail = seed_outside_detail(a, actor=operator_actor())
    for seid, creds in detail["people"].items():
        roles = creds.pop("roles")
        people.append({**creds, "seid": seid, "roles": [roles], "grant_id": detail["grant_id"]})
    return people


def _ensure_unit(a: App) -> bool:
    from sqlalchemy import select

    from idrs.people.models import Unit

    with a.engine.connect() as conn:
        if conn.execute(select(Unit.id).where(Unit.code == "DEMO")).first() is None:
            service.create_unit(a, "DEMO", "Demonstration unit", actor=operator_actor())
    return True


def _pick_case_tin(a: App) -> str | None:
    """The first taxpayer without markers who is not an employee (no conflict, no marker)."""
    from idrs.masterfile.reads import plain_taxpayer_tin

    with a.engine.connect() as conn:
        return plain_taxpayer_tin(conn, a.keyring)


def _print_how_to(
    a: App, people: list[dict[str, Any]], path: Path, host: str, port: int, scheme: str = "http"
) -> None:
    ex = next((p for p in people if p["seid"] == "DEMOEX1"), None)
    if ex is None:
        raise IdrsError(f"demo credentials in {path} lack the examiner")
    code_cmd = (
        f"{sys.executable} -c \"import pyotp; print(pyotp.TOTP('{ex['totp_secret']}').now())\""
    )
    db = (
        "" if a.settings.database_url == "sqlite:///idrs.db" else f" --db {a.settings.database_url}"
    )
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
    lines.append(f"web: {scheme}://{host}:{port}/ (SEID, password and the TOTP code above)")
    lines.append(
        f"HTTP API: {scheme}://{host}:{port}/api/v1/docs (POST /api/v1/sessions, then "
        "GET /api/v1/accounts/{tin}/{command})"
    )
    # Plain writes, not Rich: the commands must stay on one line to be copied.
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
