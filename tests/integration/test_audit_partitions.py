"""PostgreSQL: audit_entry partitioned by entry range (migration 0012); a partition is
archived, detached and dropped, and the archive still verifies against the signed checkpoint,
while any change to it is caught (issue 18.1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from idrs.audit import log, partitions
from idrs.audit.checkpoint import load_signer
from idrs.audit.store import raw
from idrs.context import App
from idrs.errors import Conflict, IdrsError

from .audit_helpers import entry, prepare
from .test_audit_export import cli_env  # noqa: F401 - fixture

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def _names(app: App) -> list[tuple[str, int, int]]:
    with raw(app.engine) as db:
        out = [(p.name, p.start, p.end) for p in partitions.list_partitions(db)]
        db.rollback()
    return out


def test_partitions_follow_the_log(app: App) -> None:
    prepare(app)
    partitions.set_partition_level(app.engine, 3)  # 8 entries each (production: 2**24)
    assert [s for _, s, _ in _names(app)] == [0, 8, 16]
    for i in range(30):
        log.append(app.engine, entry(app, i))
    starts = [s for _, s, _ in _names(app)]
    # the partition holding entry 29 and AHEAD empty ones after it
    assert starts[-1] >= 24 + partitions.AHEAD * 8
    with app.engine.connect() as conn:
        idx = conn.execute(text("SELECT array_agg(idx ORDER BY idx) FROM audit_entry")).scalar()
    assert idx == list(range(30))  # gap-free across partition boundaries
    with pytest.raises(Conflict):  # never re-cut a log that holds entries
        partitions.set_partition_level(app.engine, 4)


def test_append_only_on_every_partition(app: App) -> None:
    prepare(app)
    partitions.set_partition_level(app.engine, 2)
    for i in range(5):
        log.append(app.engine, entry(app, i))
    for sql in (
        "UPDATE audit_entry SET leaf_input = 'x' WHERE idx = 1",
        "DELETE FROM audit_entry_p000001",
        "TRUNCATE audit_entry_p000000",
        "TRUNCATE audit_entry",
    ):
        with pytest.raises(Exception, match="append-only"), app.engine.begin() as conn:
            conn.execute(text(sql))


def _fill_and_archive(app: App, out: Path) -> tuple[str, str]:
    prepare(app)
    partitions.set_partition_level(app.engine, 3)
    for i in range(21):
        log.append(app.engine, entry(app, i))
    from idrs.audit import service

    summary = service.archive_partition(app, "audit_entry_p000001", out, "operator")
    assert (summary["start"], summary["end"]) == (8, 16)
    assert summary["tree_size"] >= 22  # the archive's own record is covered too
    return "audit_entry_p000001", load_signer(app.settings.home).vkey()


def test_detached_partition_verifies_against_the_checkpoint(app: App, tmp_path: Path) -> None:
    out = tmp_path / "p1"
    name, vkey = _fill_and_archive(app, out)
    # the operator's steps (docs/operations.md): detach, dump elsewhere, drop
    with app.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE audit_entry DETACH PARTITION {name}"))
    with app.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    assert name not in [n for n, _, _ in _names(app)]
    report = partitions.verify_archive(out, vkey)
    assert (report.start, report.end) == (8, 16)
    # the live log goes on: appends, the guard, checkpoints over the remaining partitions
    before = report.tree_size
    for i in range(5):
        log.append(app.engine, entry(app, 100 + i))
    note = log.sign_checkpoint(app.engine, app.settings.home, app.settings.audit_origin)
    assert note is not None and f"\n{before + 5}\n" in note


def test_archive_of_a_detached_table(app: App, tmp_path: Path) -> None:
    prepare(app)
    partitions.set_partition_level(app.engine, 2)
    for i in range(9):
        log.append(app.engine, entry(app, i))
    log.sign_checkpoint(app.engine, app.settings.home, app.settings.audit_origin)
    with app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_entry DETACH PARTITION audit_entry_p000000"))
    vkey = load_signer(app.settings.home).vkey()
    partitions.archive_partition(app.engine, "audit_entry_p000000", tmp_path / "a", vkey)
    assert partitions.verify_archive(tmp_path / "a", vkey).end == 4


def test_tampered_archives_fail(app: App, tmp_path: Path) -> None:
    good = tmp_path / "good"
    _name, vkey = _fill_and_archive(app, good)

    def copy(tag: str) -> Path:
        d = tmp_path / tag
        shutil.copytree(good, d)
        return d

    lines = (good / partitions.ENTRIES).read_text().splitlines()
    # an altered entry
    d = copy("altered")
    obj = json.loads(lines[3])
    obj["leaf_input"] = obj["leaf_input"][:-4] + ("AAAA" if obj["leaf_input"][-4:] != "AAAA" else "BBBB")
    (d / partitions.ENTRIES).write_text("\n".join([*lines[:3], json.dumps(obj), *lines[4:]]) + "\n")
    with pytest.raises(partitions.ArchiveInvalid, match="do not hash"):
        partitions.verify_archive(d, vkey)
    # a removed entry
    d = copy("removed")
    (d / partitions.ENTRIES).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(partitions.ArchiveInvalid, match="holds 7 entries"):
        partitions.verify_archive(d, vkey)
    # two entries swapped
    d = copy("swapped")
    (d / partitions.ENTRIES).write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(partitions.ArchiveInvalid, match="missing or reordered"):
        partitions.verify_archive(d, vkey)
    # the path claims another place in the tree
    d = copy("moved")
    meta = json.loads((d / partitions.PROOF).read_text())
    meta["start"] = 0
    (d / partitions.PROOF).write_text(json.dumps(meta))
    with pytest.raises(partitions.ArchiveInvalid):
        partitions.verify_archive(d, vkey)
    # a forged checkpoint under a key of the forger's own
    d = copy("forged")
    from idrs.audit.checkpoint import ensure_signing_key

    other = tmp_path / "other-home"
    ensure_signing_key(other, name=app.settings.audit_origin)
    (d / partitions.VKEY).write_text(load_signer(other).vkey() + "\n")
    with pytest.raises(partitions.ArchiveInvalid):
        partitions.verify_archive(d)  # the archive's own key: the old signature fails
    with pytest.raises(partitions.ArchiveInvalid, match="another key"):
        partitions.verify_archive(d, vkey)  # the log's real key, given from elsewhere


def test_archive_refuses_what_it_cannot_prove(app: App, tmp_path: Path) -> None:
    prepare(app)
    partitions.set_partition_level(app.engine, 3)
    for i in range(3):
        log.append(app.engine, entry(app, i))
    vkey = load_signer(app.settings.home).vkey()
    log.sign_checkpoint(app.engine, app.settings.home, app.settings.audit_origin)
    with pytest.raises(IdrsError):  # incomplete partition: not a subtree of the checkpoint yet
        partitions.archive_partition(app.engine, "audit_entry_p000000", tmp_path / "x", vkey)
    with pytest.raises(IdrsError, match="partition name"):
        partitions.archive_partition(app.engine, "pg_class; --", tmp_path / "y", vkey)


def test_cli_archive_and_verify(
    app: App, tmp_path: Path, cli_env: dict[str, str]  # noqa: F811 - the fixture
) -> None:
    from idrs.cli import app as cli

    prepare(app)
    partitions.set_partition_level(app.engine, 2)
    for i in range(9):
        log.append(app.engine, entry(app, i))
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "partitions", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["partitions"][0] == {
        "name": "audit_entry_p000000", "first": 0, "last": 3}
    out = tmp_path / "arch"
    res = runner.invoke(cli, ["audit", "archive-partition", "audit_entry_p000001", "--out", str(out)],
                        env=cli_env)
    assert res.exit_code == 0, res.output
    key = tmp_path / "log.vkey"
    key.write_text(load_signer(app.settings.home).vkey() + "\n")
    res = runner.invoke(cli, ["audit", "verify-archive", str(out), "--key", str(key), "--json"],
                        env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["entries"] == "4..7"
    (out / partitions.ENTRIES).write_text("")
    res = runner.invoke(cli, ["audit", "verify-archive", str(out)], env=cli_env)
    assert res.exit_code != 0
