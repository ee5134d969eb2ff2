"""CLI commands of the audit domain: ``idrs audit verify|export|verify-export|checkpoint|open|
check-opening|partitions|archive-partition|verify-archive``.

Exit status: 0 intact / done, 1 tampering found or bad input (one line on stderr says why).
``verify`` and ``export`` are themselves recorded in the audit log under the operator's OS
user name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from idrs.cli import Group, app
from idrs.cli.common import JsonOpt, open_app, operator_actor, print_json
from idrs.errors import IdrsError


class AuditLogBroken(IdrsError):
    """``idrs audit verify`` found tampering (exit 1 with the first bad index on stderr)."""

    status_code = 409


audit_app = typer.Typer(
    cls=Group,
    help="The tamper-evident audit log: verify, export, checkpoints.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")


WitnessOpt = typer.Option(
    "--witness",
    metavar="VKEY",
    help="a witness's verifier key (cosignature/v1); repeat for each witness of the policy",
)
WitnessMinOpt = typer.Option(
    "--witness-min",
    metavar="K",
    help="how many of the --witness keys must have cosigned (default: all of them)",
)


@audit_app.command("verify")
def verify_cmd(
    witness: Annotated[list[str] | None, WitnessOpt] = None,
    witness_min: Annotated[int | None, WitnessMinOpt] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="worker processes hashing the log (default: the CPU count; 1 = serial)",
        ),
    ] = None,
    compare_hashlib: Annotated[
        bool,
        typer.Option(
            "--compare-hashlib",
            help="also time raw hashlib.sha256 over the same leaves and print the ratio",
        ),
    ] = False,
    as_json: bool = JsonOpt,
) -> None:
    """Recompute the Merkle tree from the stored entries and check every stored checkpoint.

    Also says how many entries lie past the newest checkpoint (signed within
    IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS by the tail signer).
    """
    from idrs.audit import service
    from idrs.audit.parallel import default_workers

    result = service.verify(
        open_app(),
        operator_actor(),
        witness_keys=witness or [],
        witness_min=witness_min,
        workers=workers or default_workers(),
        compare_hashlib=compare_hashlib,
    )
    if as_json:
        print_json(result)
    elif result["ok"]:
        rate = result["entries_per_second"]
        extra = ""
        if compare_hashlib:
            extra = (
                f"; raw hashlib {result['hashlib_entries_per_second']} entries/s, "
                f"ratio {result['ratio_to_hashlib']}"
            )
        sys.stdout.write(
            f"intact: {result['entries']} entries, {result['checkpoints']} checkpoints "
            f"(latest covers {result['latest_checkpoint_size']}), {result['seconds']} s, "
            f"{rate if rate is not None else '-'} entries/s with {result['workers']} worker(s){extra}\n"
        )
    if not as_json:
        # not yet covered by any signature: deletable unnoticed until the tail signer runs
        past = result["entries_past_checkpoint"]
        sys.stdout.write(f"{past} entries past the newest checkpoint\n")
    if not result["ok"]:
        for p in result["problems"][1:10]:
            sys.stderr.write(f"  also: index {p['index']}: {p['reason']}\n")
        raise AuditLogBroken(
            f"audit log broken: first bad index {result['first_bad_index']}: {result['first_problem']}"
        )


@audit_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="a new or empty directory"),
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl (entries.jsonl) or parquet (columns decoded from the entries, "
            "partitioned by day)",
        ),
    ] = "jsonl",
    as_json: bool = JsonOpt,
) -> None:
    """Write entries.jsonl, checkpoint and key.vkey for verification by a third party."""
    from idrs.audit import service

    summary = service.export(open_app(), out, operator_actor(), fmt=fmt)
    if as_json:
        print_json(summary)
    else:
        sys.stdout.write(
            f"exported {summary['entries']} entries and a checkpoint of size {summary['tree_size']} to {out}\n"
        )


@audit_app.command("verify-export")
def verify_export_cmd(
    directory: Path = typer.Argument(..., help="a directory written by `idrs audit export`"),
    against: Path | None = typer.Option(None, "--against", help="a checkpoint saved earlier"),
    witness: Annotated[list[str] | None, WitnessOpt] = None,
    witness_min: Annotated[int | None, WitnessMinOpt] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Check an export using only its files; with --against, prove the log only grew since."""
    from idrs.audit.export import ExportInvalid, verify_export
    from idrs.audit.service import parse_witness_keys

    keys = parse_witness_keys(witness or [], witness_min)

    old = None
    if against is not None:
        try:
            old = against.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportInvalid(f"cannot read {against}: {exc}") from None
    report = verify_export(directory, old, keys, witness_min)
    if as_json:
        print_json(report.as_dict())
    else:
        extra = (
            f"; append-only since the checkpoint of size {report.against_size}"
            if old is not None
            else ""
        )
        if report.cosigned_by is not None:
            extra += f"; cosigned by {report.cosigned_by} of {len(keys)} witnesses"
        sys.stdout.write(
            f"export verifies: {report.size} entries, root {report.root.hex()}{extra}\n"
        )


@audit_app.command("partitions")
def partitions_cmd(as_json: bool = JsonOpt) -> None:
    """List the partitions of audit_entry (PostgreSQL) with their entry ranges."""
    from idrs.audit.partitions import list_partitions
    from idrs.audit.store import raw

    with raw(open_app().engine) as db:
        parts = list_partitions(db)
        db.rollback()
    rows = [{"name": p.name, "first": p.start, "last": p.end - 1} for p in parts]
    if as_json:
        print_json({"partitions": rows})
    elif not rows:
        sys.stdout.write("audit_entry is not partitioned (SQLite, or PostgreSQL before 0012)\n")
    else:
        for r in rows:
            sys.stdout.write(f"{r['name']}\t{r['first']}\t{r['last']}\n")


@audit_app.command("archive-partition")
def archive_partition_cmd(
    name: str = typer.Argument(..., help="a partition of audit_entry (idrs audit partitions)"),
    out: Path = typer.Option(..., "--out", help="a new or empty directory"),
    as_json: bool = JsonOpt,
) -> None:
    """Write one partition's entries, a checkpoint covering them and the subtree's audit path."""
    from idrs.audit import service

    summary = service.archive_partition(open_app(), name, out, operator_actor())
    if as_json:
        print_json(summary)
    else:
        sys.stdout.write(
            f"archived {summary['partition']} (entries {summary['start']}..{summary['end'] - 1})"
            f" with a checkpoint of size {summary['tree_size']} to {out}\n"
        )


@audit_app.command("verify-archive")
def verify_archive_cmd(
    directory: Path = typer.Argument(..., help="a directory written by archive-partition"),
    key: Path | None = typer.Option(
        None, "--key", help="the log's verifier key, obtained elsewhere than the archive"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Check an archived partition using only its files against the checkpoint it carries."""
    from idrs.audit.partitions import ArchiveInvalid, verify_archive

    vkey = None
    if key is not None:
        try:
            vkey = key.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ArchiveInvalid(f"cannot read {key}: {exc}") from None
    report = verify_archive(directory, vkey)
    if as_json:
        print_json(report.as_dict())
    else:
        sys.stdout.write(
            f"archive verifies: {report.partition}, entries {report.start}..{report.end - 1},"
            f" in the checkpoint of size {report.tree_size}, root {report.root.hex()}\n"
        )


@audit_app.command("checkpoint")
def checkpoint_cmd() -> None:
    """Sign a checkpoint of the current log now, have the witnesses cosign it, and print it."""
    from idrs.audit import service

    app_ = open_app()
    sys.stdout.write(service.cosigned_now(app_, service.checkpoint_now(app_)))


@audit_app.command("open")
def open_cmd(
    index: int = typer.Argument(..., help="the audit index of an allowed answer"),
    as_json: bool = JsonOpt,
) -> None:
    """Reproduce an answer from history, with its salt, and check it against its entry's
    commitment (security staff; recorded). Exit 1 when it does not match."""
    from idrs.cli.people import read_token
    from idrs.oversight import opening
    from idrs.people import auth

    a = open_app()
    employee = auth.authenticate(a, read_token(a.settings.home), interface="cli")
    doc = opening.open_answer(a, employee, index, interface="cli")
    if as_json:
        print_json(doc)
    else:
        sys.stdout.write(json.dumps(doc["answer"], indent=2, ensure_ascii=False) + "\n")
        sys.stdout.write(f"salt (base64): {doc['salt']}\ncommitment:    {doc['commitment']}\n")
    if not doc["matches"]:
        raise opening.OpeningInvalid(
            f"entry {index}: the answer reproduced from the master file's history does not "
            "hash to the commitment in the leaf: the history (or the stored opening) was "
            "altered after the answer was given"
        )
    if not as_json:
        sys.stdout.write(f"matches: SHA-256(salt || JCS(answer)) is the digest in entry {index}\n")


@audit_app.command("check-opening")
def check_opening_cmd(
    file: Path = typer.Argument(..., help="an opening written by `idrs audit open --json`"),
    key: str | None = typer.Option(
        None, "--key", help="the log's verifier key as you know it (default: the file's)"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Check an opening independently: SHA-256, the signed checkpoint, the inclusion proof."""
    from idrs.oversight.opening import OpeningInvalid, check_opening

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OpeningInvalid(f"cannot read {file}: {exc}") from None
    report = check_opening(doc, key)
    if as_json:
        print_json(report)
    else:
        sys.stdout.write(
            f"opening verifies: entry {report['index']} commits to this answer, and is in the "
            f"signed log of {report['tree_size']} entries (root {report['root']})\n"
        )
