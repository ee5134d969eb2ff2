from __future__ import annotations

import os
import stat

import pytest

from idrs.crypto import Keyring
from idrs.errors import ConfigurationError


def test_roundtrip_and_column_binding(tmp_path):
    ring = Keyring.create(tmp_path / "h")
    blob = ring.encrypt("900123456", "taxpayer.tin")
    assert b"900123456" not in blob
    assert ring.decrypt(blob, "taxpayer.tin") == "900123456"
    with pytest.raises(Exception):  # noqa: B017 - InvalidTag: a value moved to another column
        ring.decrypt(blob, "dependent.tin")


def test_files_are_private(tmp_path):
    home = tmp_path / "h"
    Keyring.create(home)
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    for f in home.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_missing_key_file_is_a_clear_error(tmp_path):
    home = tmp_path / "h"
    Keyring.create(home)
    (home / "index.key").unlink()
    with pytest.raises(ConfigurationError, match="index.key"):
        Keyring.load(home)


def test_rotation_keeps_old_until_retired(tmp_path):
    ring = Keyring.create(tmp_path / "h")
    old = ring.encrypt("x", "c")
    old_kid = ring.active_kid
    ring.add_key()
    new = ring.encrypt("x", "c")
    assert Keyring.kid_of(new) != Keyring.kid_of(old)
    assert ring.decrypt(old, "c") == "x"
    ring.retire(old_kid)
    with pytest.raises(ConfigurationError):
        ring.decrypt(old, "c")
    assert Keyring.load(tmp_path / "h").decrypt(new, "c") == "x"


def test_blind_index_and_pseudonym_are_keyed(tmp_path):
    a = Keyring.create(tmp_path / "a")
    b = Keyring.create(tmp_path / "b")
    assert a.tin_index("900123456") == a.tin_index("900123456")
    assert a.tin_index("900123456") != b.tin_index("900123456")
    assert a.pseudonym("900123456") != b.pseudonym("900123456")
    assert "900123456" not in a.pseudonym("900123456")
