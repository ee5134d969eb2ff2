"""Several processes appending at once keep one gap-free order; kill -9 loses no acknowledged entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from idrs.audit import service
from idrs.context import App

from .audit_helpers import prepare

ROOT = Path(__file__).resolve().parents[2]


def _child(app: App, count: int, threads: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.audit_child",
            app.settings.database_url,
            str(app.settings.home),
            str(count),
            str(threads),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_indexes(app: App) -> list[int]:
    with app.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT idx FROM audit_entry ORDER BY idx"))]


def test_several_processes_append_one_total_order(app: App) -> None:
    prepare(app)
    procs = [_child(app, 25, 2) for _ in range(3)]
    acked: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked += [int(x) for x in out.split()]
    assert sorted(acked) == list(range(150))  # no duplicate, no gap
    assert _stored_indexes(app) == list(range(150))
    with app.engine.connect() as conn:
        ckpts = conn.execute(text("SELECT id, tree_size FROM audit_checkpoint ORDER BY id")).all()
    assert ckpts, "automatic checkpoints were signed"
    assert [c[0] for c in ckpts] == list(range(1, len(ckpts) + 1))
    sizes = [c[1] for c in ckpts]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    result = service.verify(app, "os:test")
    assert result["ok"], result


def test_kill_9_loses_no_acknowledged_entry_and_log_verifies(app: App) -> None:
    prepare(app)
    p = _child(app, 0, 3)
    acked: list[int] = []
    assert p.stdout is not None
    while len(acked) < 300:  # however slow the machine: pytest-timeout guards a hang
        line = p.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    os.kill(p.pid, signal.SIGKILL)
    rest, _ = p.communicate(timeout=30)
    acked += [
        int(x) for x in rest.split() if x.strip().isdigit()
    ]  # lines already written count too
    assert p.returncode == -signal.SIGKILL
    assert len(acked) >= 300
    stored = set(_stored_indexes(app))
    assert set(acked) <= stored
    assert sorted(stored) == list(range(len(stored)))
    result = service.verify(app, "os:test")
    assert result["ok"], result
