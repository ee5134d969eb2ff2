"""The detection commands from the command line (a subprocess, --db and IDRS_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from idrs.context import App

# Until the lead adds ``detect`` to idrs.cli._register, import it explicitly.
SHIM = "import sys, idrs.cli, idrs.cli.detect; sys.exit(idrs.cli.main())"


def idrs(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IDRS_HOME": str(app.settings.home), "COLUMNS": "200"}
    env.pop("IDRS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", SHIM, "--db", app.settings.database_url, *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_detect_cli_contract_and_bad_input(app: App, tmp_path: Path) -> None:
    r = idrs(app, "detect", "run", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["alerts"] == [] and out["summary"]["entries_read"] >= 0

    r = idrs(app, "detect", "run", "--since", "2999-01-01T00:00:00+00:00")
    assert r.returncode == 1 and "future" in r.stderr and "Traceback" not in r.stderr

    bad = tmp_path / "truth.json"
    bad.write_text(
        json.dumps({"violations": [{"type": "self", "seid": "E1", "audit_indexes": [5]}]})
    )
    r = idrs(app, "detect", "evaluate", "--truth", str(bad), "--json")
    assert r.returncode == 1 and "does not match" in r.stderr
