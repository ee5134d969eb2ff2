"""The audit signing key file under IDRS_HOME (file system only; no database)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from idrs.audit import checkpoint as ck
from idrs.errors import ConfigurationError


def test_signing_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = ck.ensure_signing_key(home, name="test.example/log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    first = path.read_text()
    assert first.startswith("PRIVATE+KEY+test.example/log+")
    ck.ensure_signing_key(home, name="test.example/log")
    assert path.read_text() == first  # never replaced


def test_damaged_key_is_refused(tmp_path: Path) -> None:
    ck.ensure_signing_key(tmp_path, name="x.example/log")
    (tmp_path / ck.KEY_FILE).write_text("PRIVATE+KEY+x.example/log+00000000+AAAA\n")
    with pytest.raises(ConfigurationError):
        ck.load_signer(tmp_path)
