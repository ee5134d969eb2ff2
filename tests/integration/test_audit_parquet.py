"""``idrs audit export --format parquet``: partitioned Parquet that DuckDB reads back, with the
checkpoint covering it; ``verify-export`` checks the leaves and every decoded column."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from idrs.audit import log, parquet, service
from idrs.audit.checkpoint import Checkpoint, load_signer
from idrs.audit.events import EventType, make_event
from idrs.audit.export import ExportInvalid, verify_export
from idrs.context import App
from idrs.errors import Conflict, IdrsError

from .audit_helpers import entry, prepare
from .test_audit_export import cli_env  # noqa: F401 - fixture

TIN = "900-00-0001"


def fill(app: App, n: int) -> None:
    """n entries over three UTC days, some with reason codes, a policy and a detail."""
    prepare(app)
    for i in range(n):
        if i and i % 10 == 0:
            app.clock.advance(hours=20)
        if i % 3 == 0:
            log.append(
                app.engine,
                make_event(
                    EventType.ACCESS_RESEARCH_DECIDE,
                    time=app.clock.now(),
                    actor=f"E{i}",
                    outcome="denied",
                    interface="api",
                    address="10.0.0.7",
                    obj={"taxpayer": app.keyring.pseudonym(TIN), "command": "TXMOD", "year": 2024},
                    reasons=["NO_ASSIGNMENT", "NOT_IN_PROFILE"],
                    policy="2026.1",
                    detail={"case": None, "reason_given": False},
                ),
            )
        else:
            log.append(app.engine, entry(app, i))


def _read(out: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(
            sql.replace("{T}", f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)")
        ).fetchall()
    finally:
        con.close()


def test_parquet_export_round_trips_through_duckdb(app: App, tmp_path: Path) -> None:
    fill(app, 25)
    old_note = service.checkpoint_now(app)
    out = tmp_path / "pq"
    summary = service.export(app, out, "os:test", fmt="parquet")
    size = summary["tree_size"]
    assert summary["entries"] == size == 26  # 25 entries + the export's own record
    ck = Checkpoint.parse(
        load_signer(app.settings.home).verifier().open((out / "checkpoint").read_text())
    )
    assert ck.size == size and ck.root.hex() == summary["root"]
    # counts and indices equal the log; the checkpoint covers the last index
    assert _read(
        out, 'SELECT count(*), min("index"), max("index"), count(DISTINCT "index") FROM {T}'
    ) == [(size, 0, size - 1, size)]
    days = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert days == ["date=2026-03-02", "date=2026-03-03", "date=2026-03-04"] or len(days) == 3, days
    per_day = _read(out, 'SELECT "date", count(*) FROM {T} GROUP BY ALL ORDER BY 1')
    assert sum(n for _, n in per_day) == size and len(per_day) == 3
    # decoded columns: the leaf's fields, taxpayers as their pseudonym only
    pseudonym = app.keyring.pseudonym(TIN)
    row = _read(
        out,
        "SELECT actor, outcome, interface, address, reasons, policy, taxpayer, object, type, "
        'leaf_input FROM {T} WHERE "index" = 3',
    )[0]
    assert row[:7] == (
        "E3",
        "denied",
        "api",
        "10.0.0.7",
        ["NO_ASSIGNMENT", "NOT_IN_PROFILE"],
        "2026.1",
        pseudonym,
    )
    assert row[7] == {"taxpayer": pseudonym, "command": "TXMOD", "year": "2024"}
    assert row[8] == "access:research:decide"
    assert json.loads(bytes(row[9]))["index"] == 3
    everything = json.dumps(_read(out, "SELECT * EXCLUDE (leaf_input) FROM {T}"), default=str)
    assert TIN not in everything and TIN.replace("-", "") not in everything
    assert pseudonym in everything
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tree_size"] == size and sum(f["rows"] for f in manifest["files"]) == size
    # a third party verifies it with the files only, and against an older checkpoint
    report = verify_export(out)
    assert report.size == size and report.root == ck.root
    assert verify_export(out, old_note).against_size == 25


def test_verify_export_catches_altered_columns_leaves_and_files(app: App, tmp_path: Path) -> None:
    fill(app, 12)
    out = tmp_path / "pq"
    service.export(app, out, "os:test", fmt="parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    target = out / manifest["files"][0]["path"]
    original = target.read_bytes()

    def rewrite(sql: str) -> None:
        con = duckdb.connect()
        tmp = tmp_path / "tmp.parquet"
        con.execute(f"COPY ({sql.format(f=target)}) TO '{tmp}' (FORMAT PARQUET)")
        con.close()
        target.write_bytes(tmp.read_bytes())
        manifest["files"][0]["sha256"] = parquet._sha256_file(target)  # noqa: SLF001
        (out / "manifest.json").write_text(json.dumps(manifest))

    # a decoded column changed (the leaf kept): the analyst would read a lie
    rewrite(
        "SELECT * REPLACE (CASE WHEN \"index\" = 1 THEN 'E999' ELSE actor END AS actor) FROM '{f}'"
    )
    with pytest.raises(ExportInvalid, match="row 1: column actor differs"):
        verify_export(out)
    # the leaf changed too, consistently: the root no longer matches the signed checkpoint
    target.write_bytes(original)
    rewrite(
        'SELECT * REPLACE (CASE WHEN "index" = 1 THEN '
        "encode(replace(decode(leaf_input), '\"E1\"', '\"E9\"')) "
        "ELSE leaf_input END AS leaf_input, CASE WHEN \"index\" = 1 THEN 'E9' ELSE actor END AS actor) "
        "FROM '{f}'"
    )
    with pytest.raises(ExportInvalid, match="do not hash to the checkpoint's root"):
        verify_export(out)
    # a row removed
    target.write_bytes(original)
    rewrite("SELECT * FROM '{f}' WHERE \"index\" <> 2")
    with pytest.raises(ExportInvalid, match="index 3, expected 2"):
        verify_export(out)
    # a file swapped without updating the manifest
    target.write_bytes(original)
    manifest["files"][0]["sha256"] = parquet._sha256_file(target)  # noqa: SLF001
    (out / "manifest.json").write_text(json.dumps(manifest))
    verify_export(out)
    (out / "date=2026-03-02" / "extra.parquet").write_bytes(original)
    with pytest.raises(ExportInvalid, match="does not list"):
        verify_export(out)


def test_parquet_export_refuses_and_writes_nothing(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(app, 5)
    work = tmp_path / "exports"
    busy = work / "busy"
    busy.mkdir(parents=True)
    (busy / "x").write_text("x")
    with pytest.raises(Conflict):
        service.export(app, busy, "os:test", fmt="parquet")
    with pytest.raises(IdrsError) as bad:
        service.export(app, work / "new", "os:test", fmt="csv")
    assert bad.value.status_code == 400 and "--format" in str(bad.value)
    assert not (work / "new").exists()
    # an entry that is not what the log writes stops the export: nothing is left behind
    real = parquet.decode

    def broken(index: int, leaf: bytes) -> list:
        if index == 3:
            raise ExportInvalid("entry 3 cannot be decoded: test")
        return real(index, leaf)

    monkeypatch.setattr(parquet, "decode", broken)
    out = work / "pq"
    with pytest.raises(ExportInvalid, match="entry 3"):
        service.export(
            app,
            out,
            "os:test",
            fmt="parquet",
        )
    assert sorted(p.name for p in work.iterdir()) == ["busy"]


def test_cli_export_parquet_and_verify_export(
    app: App,
    tmp_path: Path,
    cli_env: dict[str, str],  # noqa: F811
) -> None:
    from idrs.cli import app as cli

    fill(app, 7)
    runner = CliRunner()
    out = tmp_path / "pq"
    res = runner.invoke(
        cli, ["audit", "export", "--format", "parquet", "--out", str(out), "--json"], env=cli_env
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["format"] == "parquet" and doc["entries"] == 8
    res = runner.invoke(cli, ["audit", "verify-export", str(out), "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["tree_size"] == 8
