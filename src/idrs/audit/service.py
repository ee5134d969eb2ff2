"""Audit-log service functions behind the HTTP API and the CLI.

* :func:`latest_checkpoint`, :func:`inclusion_proof`, :func:`consistency_proof` are public
  (hashes and sizes only; nothing about any person).
* :func:`entries` is for a signed-in ``auditor`` only (entries name employees) and is itself
  recorded in the audit log.
* :func:`checkpoint_now` signs a checkpoint on demand (operator).

Bad input raises IdrsError subclasses: 400 (malformed), 404 (beyond the tree / no
checkpoint yet), 422 (first > second); nothing is changed by a refused request.
"""

from __future__ import annotations

import base64
from typing import Any

from idrs.audit import merkle
from idrs.audit.events import Actor, EventType, make_event
from idrs.audit.log import append, configure, record, sign_checkpoint
from idrs.audit.store import raw
from idrs.context import App
from idrs.errors import AccessDenied, IdrsError, NotFound, Reason
from idrs.vocabulary import Role

#: ``idrs audit export --format``
EXPORT_FORMATS = ("jsonl", "parquet")
#: Largest number of entries one ``entries`` call returns.
MAX_ENTRIES = 10_000


class BadProofRequest(IdrsError):
    status_code = 400


class BadExportRequest(IdrsError):
    status_code = 400


class InconsistentRange(IdrsError):
    status_code = 422


def latest_checkpoint(app: App) -> str:
    """The newest signed checkpoint note with the witnesses' cosignature lines gathered so far
    (NotFound before the first one is signed)."""
    from idrs.audit.witnesses import cosigned_note

    note = cosigned_note(app.engine)
    if note is None:
        raise NotFound("no checkpoint has been signed yet")
    return note


def tree_size(app: App) -> int:
    with raw(app.engine) as db:
        return db.size()


def _check_int(name: str, value: int) -> None:
    if value < 0:
        raise BadProofRequest(f"{name} must be a non-negative integer")


def inclusion_proof(app: App, index: int, size: int) -> dict[str, Any]:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries (O(log n) reads)."""
    _check_int("index", index)
    _check_int("tree_size", size)
    with raw(app.engine) as db:
        db.begin_read()
        current = db.size()
        if size > current:
            raise NotFound(f"tree_size {size} is beyond the log's size {current}")
        if index >= size:
            raise NotFound(f"index {index} is not in a tree of size {size}")
        plan = merkle.inclusion_plan(index, size)
        hashes = merkle.evaluate(plan, db.nodes(merkle.plan_nodes(plan)))
        db.rollback()
    return {"index": index, "tree_size": size, "hashes": [h.hex() for h in hashes]}


def consistency_proof(app: App, first: int, second: int) -> dict[str, Any]:
    """RFC 9162 consistency proof between tree sizes ``first`` <= ``second`` (O(log n) reads)."""
    _check_int("first", first)
    _check_int("second", second)
    if first > second:
        raise InconsistentRange(f"first ({first}) must not exceed second ({second})")
    with raw(app.engine) as db:
        db.begin_read()
        current = db.size()
        if second > current:
            raise NotFound(f"second {second} is beyond the log's size {current}")
        plan = merkle.consistency_plan(first, second)
        hashes = merkle.evaluate(plan, db.nodes(merkle.plan_nodes(plan)))
        db.rollback()
    return {"first": first, "second": second, "hashes": [h.hex() for h in hashes]}


def require_auditor(employee: Any) -> None:
    """Raise AccessDenied unless ``employee`` is active and holds the ``auditor`` role.

    (``people.roles.AUDIT_READERS``, named here by its one role: audit sits below people.)
    """
    roles = getattr(employee, "role_set", None)
    if (
        employee is None
        or roles is None
        or Role.AUDITOR not in roles
        or not getattr(employee, "active", False)
    ):
        raise AccessDenied(
            reasons=[Reason("NOT_IN_PROFILE", "reading the audit log requires the auditor role")]
        )


def entries(
    app: App,
    employee: Any,
    start: int,
    end: int,
    *,
    interface: str = "api",
    address: str | None = None,
) -> dict[str, Any]:
    """Entries ``start <= index < end`` as ``{"entries": [{"index", "leaf_input"}]}`` (base64).

    Auditor only; both the refusal and the read are recorded in the audit log.
    """
    actor = getattr(employee, "seid", None) or "anonymous"
    try:
        require_auditor(employee)
    except AccessDenied as denied:
        denied.audit_index = append(
            app.engine,
            make_event(
                EventType.AUDIT_ENTRIES_READ,
                time=app.clock.now(),
                actor=actor,
                outcome="denied",
                interface=interface,
                address=address,
                obj={"start": start, "end": end},
                reasons=denied.codes,
            ),
        )
        raise
    _check_int("start", start)
    _check_int("end", end)
    if end < start:
        raise InconsistentRange(f"end ({end}) must not be below start ({start})")
    if end - start > MAX_ENTRIES:
        raise BadProofRequest(f"at most {MAX_ENTRIES} entries per request")
    with raw(app.engine) as db:
        current = db.size()
        if end > current:
            raise NotFound(f"end {end} is beyond the log's size {current}")
        cur = db.execute(
            "SELECT idx, leaf_input FROM audit_entry WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        rows = [
            {"index": int(i), "leaf_input": base64.b64encode(bytes(li)).decode()}
            for i, li in cur.fetchall()
        ]
        cur.close()
    append(
        app.engine,
        make_event(
            EventType.AUDIT_ENTRIES_READ,
            time=app.clock.now(),
            actor=actor,
            outcome="allowed",
            interface=interface,
            address=address,
            obj={"start": start, "end": end},
        ),
    )
    return {"entries": rows}


def checkpoint_now(app: App) -> str:
    """Sign a checkpoint of the current log now (even if nothing was added); return the note."""
    configure(app.engine, app.settings)
    note = sign_checkpoint(app.engine, app.settings.home, app.settings.audit_origin)
    assert note is not None
    return note


def _record(
    app: App, event: EventType, actor: str, outcome: str, interface: str, detail: dict[str, Any]
) -> int | None:
    try:
        return record(app, event, Actor(actor, interface), detail=detail, outcome=outcome)
    except IdrsError:
        return None


def verify(
    app: App,
    actor: str,
    *,
    interface: str = "cli",
    chunk: int | None = None,
    witness_keys: list[str] | None = None,
    witness_min: int | None = None,
    workers: int = 1,
    compare_hashlib: bool = False,
    min_parallel: int | None = None,
) -> dict[str, Any]:
    """Verify the whole log and every checkpoint (see :mod:`idrs.audit.verify`); record the run.

    With ``witness_keys`` (cosignature/v1 vkeys), the latest checkpoint must also carry valid
    cosignatures by at least ``witness_min`` of them (default: all). Its cosignatures are
    asked for first (the witnesses are contacted now), so a checkpoint signed a moment ago
    is not failed for being young; a checkpoint the witnesses refuse fails.

    ``workers`` > 1 hashes the log in that many processes (:mod:`idrs.audit.parallel`; the
    same report). Returns the report as a dict (``ok``, ``first_bad_index``, ``first_problem``,
    ..., ``entries_per_second``, ``workers``; with ``compare_hashlib`` also the rate of raw
    ``hashlib.sha256`` over the same leaves and the ratio) plus ``audit_index`` of the
    verification's own entry (None if the log refused the append).
    """
    from idrs.audit import parallel
    from idrs.audit.checkpoint import load_signer, read_witness
    from idrs.audit.verify import CHUNK, Problem

    keys = parse_witness_keys(witness_keys or [], witness_min)
    verifier = load_signer(app.settings.home).verifier()
    report = parallel.verify_log_parallel(
        app.engine,
        verifier,
        read_witness(app.settings.home),
        workers=max(1, workers),
        chunk=chunk or CHUNK,
        min_entries=parallel.MIN_ENTRIES if min_parallel is None else min_parallel,
    )
    if keys:
        problem = witness_problem(app, keys, witness_min or len(keys))
        if problem:
            report.problems.append(Problem(None, problem))
    out = report.as_dict()
    if keys:
        out["witness_policy"] = {"keys": len(keys), "min": witness_min or len(keys)}
    out["workers"] = max(1, workers)
    out.update(parallel.rates(report, report.size, app.engine if compare_hashlib else None))
    fields = ("ok", "entries", "checkpoints", "first_bad_index", "entries_past_checkpoint")
    detail = {k: out[k] for k in fields}
    out["audit_index"] = _record(
        app,
        EventType.AUDIT_LOG_VERIFY,
        actor,
        "intact" if report.ok else "broken",
        interface,
        detail,
    )
    return out


def export(
    app: App, out_dir: Any, actor: str, *, interface: str = "cli", fmt: str = "jsonl"
) -> dict[str, Any]:
    """Write an export (entries.jsonl, checkpoint, key.vkey) to a new or empty ``out_dir``;
    with ``fmt="parquet"`` the entries decoded to columns as partitioned Parquet
    (:mod:`idrs.audit.parquet`) with the checkpoint, key and a manifest.

    Records the export first, then signs a fresh checkpoint covering that record, then writes
    exactly the entries that checkpoint covers. Refuses a non-empty directory (409) before
    recording anything.
    """
    from pathlib import Path

    from idrs.audit.checkpoint import load_signer
    from idrs.audit.export import check_out_dir, write_export

    if fmt not in EXPORT_FORMATS:
        raise BadExportRequest(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    out = Path(out_dir)
    check_out_dir(out)
    signer = load_signer(app.settings.home)
    idx = append(
        app.engine,
        make_event(
            EventType.AUDIT_LOG_EXPORT,
            time=app.clock.now(),
            actor=actor,
            outcome="allowed",
            interface=interface,
            detail={"directory": out.name, **({"format": fmt} if fmt != "jsonl" else {})},
        ),
    )
    note = checkpoint_now(app)
    note = cosigned_now(app, note)  # the export carries whatever cosignatures come back
    if fmt == "parquet":
        from idrs.audit.parquet import write_parquet_export

        summary = write_parquet_export(app.engine, out, note, signer.vkey())
    else:
        summary = write_export(app.engine, out, note, signer.vkey())
    summary["audit_index"] = idx
    return summary


def archive_partition(
    app: App, name: str, out_dir: Any, actor: str, *, interface: str = "cli"
) -> dict[str, Any]:
    """Write the archive of one ``audit_entry`` partition (PostgreSQL) to a new or empty
    ``out_dir``: its entries, a fresh signed checkpoint covering them, the verifier key and
    the subtree's audit path to that checkpoint's root (:mod:`idrs.audit.partitions`).

    Recorded first (as an export naming the partition), then a checkpoint is signed, then the
    archive is written. The partition is left attached: detaching and dropping it is the
    operator's step with PostgreSQL's tools (docs/operations.md).
    """
    from pathlib import Path

    from idrs.audit import partitions
    from idrs.audit.checkpoint import load_signer
    from idrs.audit.export import check_out_dir

    out = Path(out_dir)
    check_out_dir(out)
    if not partitions._NAME.match(name):
        raise NotFound(f"{name!r} is not an audit_entry partition name")
    signer = load_signer(app.settings.home)
    idx = append(
        app.engine,
        make_event(
            EventType.AUDIT_LOG_EXPORT,
            time=app.clock.now(),
            actor=actor,
            outcome="allowed",
            interface=interface,
            detail={"directory": out.name, "partition": name},
        ),
    )
    checkpoint_now(app)
    summary = partitions.archive_partition(app.engine, name, out, signer.vkey())
    summary["audit_index"] = idx
    return summary


# ---------------------------------------------------------------- witnesses


def parse_witness_keys(vkeys: list[str], minimum: int | None) -> list[Any]:
    """Witness verifier keys of a policy; 400 on a malformed key or an impossible minimum."""
    from idrs.audit.checkpoint import CheckpointError
    from idrs.audit.cosignature import CosignerKey

    keys = []
    for v in vkeys:
        try:
            keys.append(CosignerKey.parse(v))
        except CheckpointError as exc:
            raise BadProofRequest(f"--witness {v[:40]!r}: {exc}") from None
    if minimum is not None and not keys:
        raise BadProofRequest("--witness-min needs at least one --witness key")
    if minimum is not None and not 1 <= minimum <= len(keys):
        raise BadProofRequest(f"--witness-min must be between 1 and {len(keys)} (the keys given)")
    return keys


def witness_problem(app: App, keys: list[Any], minimum: int) -> str | None:
    """Why the latest checkpoint fails the policy "``minimum`` of ``keys``", or None."""
    from idrs.audit import witnesses
    from idrs.audit.checkpoint import CheckpointError
    from idrs.audit.cosignature import check_policy

    with raw(app.engine) as db:
        last = db.latest_checkpoint()
    if last is None:
        return "witnesses: no checkpoint has been signed"
    # this checkpoint, not whatever is newest a moment later (a busy log signs every second)
    results = witnesses.submit(app.engine, last[0])
    note = witnesses.cosigned_note(app.engine, last[0])
    assert note is not None
    try:
        check_policy(note, keys, minimum)
    except CheckpointError as exc:
        refused = [
            f"{r['witness']}: {r['status'] or 'unreachable'}" for r in results if r["status"] != 200
        ]
        why = f" (refused or failed: {', '.join(refused)})" if refused else ""
        return f"witnesses: latest checkpoint: {exc}{why}"
    return None


def cosigned_now(app: App, note: str) -> str:
    """Submit the checkpoint ``note`` to the witnesses now; return it with the cosignatures."""
    from idrs.audit import witnesses

    with raw(app.engine) as db:
        row = db.one("SELECT id FROM audit_checkpoint WHERE note = ?", (note,))
    if row is None:
        return note
    witnesses.submit(app.engine, int(row[0]))
    return witnesses.cosigned_note(app.engine, int(row[0])) or note


def add_witness(app: App, name: str, url: str, vkey: str, actor: str) -> dict[str, Any]:
    """Configure a witness (``idrs witness add``) and record the change in the audit log."""
    from idrs.audit import witnesses

    out = witnesses.add(app.engine, name, url, vkey)
    out["audit_index"] = append(
        app.engine,
        make_event(
            EventType.AUDIT_WITNESS_ADD,
            time=app.clock.now(),
            actor=actor,
            outcome="allowed",
            interface="cli",
            detail={"name": name, "url": out["url"], "vkey": out["vkey"]},
        ),
    )
    return out
