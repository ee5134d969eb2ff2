"""CLI commands of witnessing: ``idrs witness init|trust|serve`` (run a witness, no database)
and ``idrs witness add|list`` (the log's side: which witnesses its checkpoints go to).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, open_app, operator_actor, print_json

witness_app = typer.Typer(
    cls=Group,
    help="Witnesses that cosign the audit log's checkpoints: run one, or configure the log's.",
    no_args_is_help=True,
)
app.add_typer(witness_app, name="witness")

DirOpt = typer.Option(..., "--dir", help="the witness's directory (key and state; 0700)")


@witness_app.command("init")
def init_cmd(
    name: str = typer.Option(..., "--name", help="the witness's key name, e.g. oig.example/w1"),
    directory: Path = DirOpt,
    log: list[str] | None = typer.Option(
        None, "--log", metavar="VKEY", help="a log's verifier key to witness (repeatable)"
    ),
) -> None:
    """Create a witness: its key (DIR/witness.key, 0600) and state; print {"vkey"} as JSON."""
    from idrs.audit import witness

    print_json({"vkey": witness.init(directory, name, log or [])})


@witness_app.command("trust")
def trust_cmd(
    directory: Path = DirOpt,
    log: str = typer.Option(..., "--log", metavar="VKEY", help="the log's verifier key"),
) -> None:
    """Witness one more log (its key name is its origin). Restart the witness afterwards."""
    from idrs.audit import witness

    print_json(witness.trust(directory, log))


@witness_app.command("serve")
def serve_cmd(
    directory: Path = DirOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8780, "--port", help="TCP port to listen on"),
) -> None:
    """Run the witness: C2SP tlog-witness POST /add-checkpoint."""
    import uvicorn

    from idrs.audit import witness

    asgi = witness.create_app(directory)
    sys.stderr.write(f"witness {asgi.state.witness.vkey()} on http://{host}:{port}\n")
    uvicorn.run(asgi, host=host, port=port, log_level="warning")


@witness_app.command("add")
def add_cmd(
    name: str = typer.Option(..., "--name", help="the witness's key name"),
    url: str = typer.Option(..., "--url", help="its submission prefix, e.g. https://w.example"),
    vkey: str = typer.Option(..., "--vkey", help="its verifier key (from `idrs witness init`)"),
    as_json: bool = JsonOpt,
) -> None:
    """Send every new checkpoint to this witness and publish its cosignatures (recorded)."""
    from idrs.audit import service

    out = service.add_witness(open_app(), name, url, vkey, operator_actor())
    if as_json:
        print_json(out)
    else:
        sys.stdout.write(f"witness {out['name']} at {out['url']} added\n")


@witness_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """The witnesses the log submits its checkpoints to."""
    from idrs.audit import witnesses

    rows = witnesses.configured(open_app().engine)
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            sys.stdout.write(f"{r['name']}\t{r['url']}\t{r['vkey']}\n")
