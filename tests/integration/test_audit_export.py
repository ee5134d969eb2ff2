"""``idrs audit export`` / ``verify-export`` / ``verify`` / ``checkpoint`` on both databases."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from idrs.audit import log, service
from idrs.audit.export import ExportInvalid, verify_export
from idrs.config import get_settings
from idrs.context import App
from idrs.errors import Conflict

from .audit_helpers import drop_triggers, entry, prepare


def fill(app: App, n: int) -> None:
    prepare(app)
    for i in range(n):
        log.append(app.engine, entry(app, i))


def test_export_verifies_with_only_its_files(app: App, tmp_path: Path) -> None:
    fill(app, 20)
    old_note = service.checkpoint_now(app)
    for i in range(20, 33):
        log.append(app.engine, entry(app, i))
    out = tmp_path / "export"
    summary = service.export(app, out, "os:test")
    assert summary["entries"] == summary["tree_size"] == 34  # 33 entries + the export's own record
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "entries.jsonl", "key.vkey"]
    lines = (out / "entries.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"index", "leaf_input"} and first["index"] == 0
    last = json.loads(base64.b64decode(json.loads(lines[-1])["leaf_input"]))
    assert last["type"] == "audit:log:export" and last["actor"] == "os:test"
    report = verify_export(out)
    assert report.size == 34
    report = verify_export(out, against=old_note)
    assert report.against_size == 20
    assert service.verify(app, "os:test")["ok"]


def test_export_refuses_non_empty_directory_and_records_nothing(app: App, tmp_path: Path) -> None:
    fill(app, 3)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("keep me")
    with pytest.raises(Conflict) as err:
        service.export(app, out, "os:test")
    assert err.value.status_code == 409
    assert service.tree_size(app) == 3
    assert (out / "x").read_text() == "keep me"


def _tamper_line(path: Path, index: int, new_leaf: bytes) -> None:
    lines = path.read_text().splitlines()
    lines[index] = json.dumps({"index": index, "leaf_input": base64.b64encode(new_leaf).decode()})
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "kind", ["altered", "deleted", "reordered", "forged-checkpoint", "wrong-key", "garbage"]
)
def test_tampered_export_is_refused(app: App, tmp_path: Path, kind: str) -> None:
    fill(app, 12)
    out = tmp_path / "exp"
    service.export(app, out, "os:test")
    entries = out / "entries.jsonl"
    lines = entries.read_text().splitlines()
    if kind == "altered":
        _tamper_line(entries, 4, b'{"index":4,"outcome":"denied"}')
    elif kind == "deleted":
        entries.write_text("\n".join(lines[:4] + lines[5:]) + "\n")
    elif kind == "reordered":
        lines[3], lines[4] = lines[4], lines[3]
        entries.write_text("\n".join(lines) + "\n")
    elif kind == "forged-checkpoint":
        note = (out / "checkpoint").read_text()
        (out / "checkpoint").write_text(note.replace("\n13\n", "\n12\n", 1))
    elif kind == "wrong-key":
        from idrs.audit.checkpoint import ensure_signing_key, load_signer

        ensure_signing_key(tmp_path / "other", name=app.settings.audit_origin)
        (out / "key.vkey").write_text(load_signer(tmp_path / "other").vkey() + "\n")
    else:
        entries.write_text(entries.read_text() + "not json\n")
    with pytest.raises(ExportInvalid) as err:
        verify_export(out)
    assert err.value.status_code == 422


def test_against_checkpoint_of_a_forked_history_is_refused(app: App, tmp_path: Path) -> None:
    fill(app, 10)
    old_note = service.checkpoint_now(app)
    out = tmp_path / "exp"
    service.export(app, out, "os:test")
    assert verify_export(out, against=old_note).against_size == 10
    # the export still hashes to its own (re-signed) checkpoint only if untouched; an entry
    # rewritten before the overseer's checkpoint breaks the append-only proof
    _tamper_line(out / "entries.jsonl", 2, b'{"index":2}')
    with pytest.raises(ExportInvalid):
        verify_export(out, against=old_note)


def test_signing_refuses_entries_altered_since_the_last_checkpoint(app: App) -> None:
    fill(app, 10)
    service.checkpoint_now(app)
    log.append(app.engine, entry(app, 10))
    drop_triggers(app)
    with app.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_entry SET leaf_input = :v WHERE idx = 10"), {"v": b'{"index":10}'}
        )
    with pytest.raises(log.AuditIntegrityError):
        service.checkpoint_now(app)


def test_rolled_back_export_is_refused_against_newer_checkpoint(app: App, tmp_path: Path) -> None:
    fill(app, 5)
    service.export(app, tmp_path / "a", "os:test")
    log.append(app.engine, entry(app, 99))
    newer = service.checkpoint_now(app)
    with pytest.raises(ExportInvalid, match="rolled back"):
        verify_export(tmp_path / "a", against=newer)


# ------------------------------------------------------------------ the CLI commands


@pytest.fixture
def cli_env(app: App) -> Iterator[dict[str, str]]:
    from idrs.cli import audit as _audit  # noqa: F401 - registers the commands

    env = {"IDRS_DATABASE_URL": app.settings.database_url, "IDRS_HOME": str(app.settings.home)}
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_cli_verify_export_checkpoint(app: App, tmp_path: Path, cli_env: dict[str, str]) -> None:
    from idrs.cli import app as cli

    fill(app, 6)
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "checkpoint"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert res.output.startswith(app.settings.audit_origin + "\n6\n")
    saved = tmp_path / "old-checkpoint"
    saved.write_text(res.output)
    res = runner.invoke(cli, ["audit", "verify", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ok"] and doc["entries"] == 6 and doc["first_bad_index"] is None
    out = tmp_path / "exp"
    res = runner.invoke(cli, ["audit", "export", "--out", str(out)], env=cli_env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli, ["audit", "verify-export", str(out), "--against", str(saved), "--json"], env=cli_env
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["against_size"] == 6
    res = runner.invoke(cli, ["audit", "export", "--out", str(out)], env=cli_env)
    assert res.exit_code != 0 and isinstance(res.exception, Conflict)


def test_cli_verify_exits_1_after_one_entry_is_altered_or_deleted(
    app: App, cli_env: dict[str, str]
) -> None:
    from idrs.cli import app as cli

    fill(app, 9)
    service.checkpoint_now(app)
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "verify"], env=cli_env).exit_code == 0
    drop_triggers(app)
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE idx = 4"))
    res = runner.invoke(cli, ["audit", "verify", "--json"], env=cli_env)
    assert res.exit_code == 1
    assert "first bad index 4" in str(res.exception)  # main() prints it on stderr, exit 1
    doc = json.loads(res.stdout)
    assert doc["first_bad_index"] == 4 and "missing" in doc["first_problem"] and doc["entries"] == 4
