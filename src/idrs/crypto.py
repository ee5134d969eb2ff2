"""Field encryption (AES-256-GCM with a key id per value), keyed blind indexes, pseudonyms.

Key material lives only in files under IDRS_HOME (mode 0700, files 0600), never in the
database. Layout::

    IDRS_HOME/keyring.json        {"active": KID, "keys": {KID: {"status", "created"}}}
    IDRS_HOME/dek-KID.key         32 random bytes, base64 (data-encryption keys)
    IDRS_HOME/index.key           HMAC key for blind indexes (TIN, EIN, bank account lookups)
    IDRS_HOME/pseudonym.key       HMAC key for the taxpayer pseudonyms in the audit log
    IDRS_HOME/anon.key            master key of the anonymized grants' record pseudonyms
                                  (one key per grant and key version is derived from it
                                  with HKDF; never the audit log's pseudonym key)

A ciphertext is ``0x01 || kid (4 bytes, big-endian) || nonce (12) || ct+tag``; the column
name is the associated data, so a value copied into another column does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from idrs.errors import ConfigurationError

FORMAT_V1 = 1
_HEADER = struct.Struct(">BI")


def _write_secret(path: Path, data: bytes) -> None:
    """Write a key file with 0600 permissions, atomically (no window where it is world-readable)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_secret(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"key file missing: {path} (run 'idrs init')") from None
    except OSError as exc:
        raise ConfigurationError(f"key file unreadable: {path}: {exc.strerror}") from None
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        raise ConfigurationError(f"key file corrupt: {path}") from None
    if len(key) != 32:
        raise ConfigurationError(f"key file corrupt: {path} (expected 32 bytes)")
    return key


@dataclass
class Keyring:
    """The data-encryption keys, the blind-index key and the pseudonym key of one IDRS_HOME."""

    home: Path
    active_kid: int
    deks: dict[int, AESGCM] = field(repr=False)
    index_key: bytes = field(repr=False)
    pseudonym_key: bytes = field(repr=False)
    #: master key of the anonymized grants' pseudonyms (``anon.key``)
    anon_key: bytes = field(default=b"", repr=False)

    # -- loading and creating ------------------------------------------------------------

    @classmethod
    def create(cls, home: Path) -> Keyring:
        """Create IDRS_HOME and its keys if absent (idempotent); returns the loaded keyring."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        for name in ("index.key", "pseudonym.key", ANON_KEY_FILE):
            if not (home / name).exists():
                _write_secret(home / name, base64.b64encode(secrets.token_bytes(32)))
        if not (home / "keyring.json").exists():
            kid = secrets.randbelow(2**31)
            _write_secret(home / f"dek-{kid}.key", base64.b64encode(secrets.token_bytes(32)))
            _write_keyring(home, kid, {kid: {"status": "active", "created": _now()}})
        return cls.load(home)

    @classmethod
    def load(cls, home: Path) -> Keyring:
        """Load keys from ``home``; ConfigurationError (one line) when any is missing or bad."""
        ring_path = home / "keyring.json"
        try:
            ring = json.loads(ring_path.read_text())
            active = int(ring["active"])
            kids = [int(k) for k, meta in ring["keys"].items() if meta["status"] == "active"]
        except FileNotFoundError:
            raise ConfigurationError(f"keyring missing: {ring_path} (run 'idrs init')") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"keyring unreadable: {ring_path}: {exc}") from None
        deks = {kid: AESGCM(_read_secret(home / f"dek-{kid}.key")) for kid in kids}
        if active not in deks:
            raise ConfigurationError(f"keyring corrupt: active key {active} has no key file")
        return cls(
            home=home,
            active_kid=active,
            deks=deks,
            index_key=_read_secret(home / "index.key"),
            pseudonym_key=_read_secret(home / "pseudonym.key"),
            anon_key=_anon_key(home),
        )

    # -- encryption ------------------------------------------------------------------------

    def encrypt(self, plaintext: str, column: str) -> bytes:
        """Encrypt ``plaintext`` for ``column`` (the associated data) under the active key."""
        nonce = os.urandom(12)
        ct = self.deks[self.active_kid].encrypt(nonce, plaintext.encode(), column.encode())
        return _HEADER.pack(FORMAT_V1, self.active_kid) + nonce + ct

    def encrypt_opt(self, plaintext: str | None, column: str) -> bytes | None:
        return None if plaintext is None else self.encrypt(plaintext, column)

    def decrypt(self, blob: bytes, column: str) -> str:
        """Decrypt a value written by :meth:`encrypt`; raises ConfigurationError if its key is gone."""
        version, kid = _HEADER.unpack_from(blob)
        if version != FORMAT_V1:
            raise ConfigurationError(f"unknown ciphertext format {version} in {column}")
        aead = self.deks.get(kid)
        if aead is None:
            raise ConfigurationError(f"no key {kid} for a value in {column} (retired or missing)")
        nonce = bytes(blob[5:17])
        return aead.decrypt(nonce, bytes(blob[17:]), column.encode()).decode()

    def decrypt_opt(self, blob: bytes | None, column: str) -> str | None:
        return None if blob is None else self.decrypt(blob, column)

    @staticmethod
    def kid_of(blob: bytes) -> int:
        return int(_HEADER.unpack_from(blob)[1])

    # -- lookups without plaintext ---------------------------------------------------------

    def blind_index(self, value: str, kind: str) -> bytes:
        """Keyed HMAC-SHA256 (16 bytes) of a canonical value, for equality lookups."""
        # hmac.digest is the one-shot C path: ~10x faster than hmac.new(...).digest()
        return hmac.digest(self.index_key, f"{kind}:{value}".encode(), "sha256")[:16]

    def tin_index(self, tin: str) -> bytes:
        return self.blind_index(tin, "tin")

    def pseudonym(self, tin: str) -> str:
        """The stable keyed pseudonym of a taxpayer, as written in the audit log."""
        mac = hmac.digest(self.pseudonym_key, f"taxpayer:{tin}".encode(), "sha256")
        return "tp_" + base64.b32encode(mac[:15]).decode().lower()

    # -- anonymized grants -------------------------------------------------------------------

    def grant_record_key(self, grant_id: int, key_version: int) -> bytes:
        """The pseudonym key of one anonymized grant at one key version (HKDF-SHA256 from the
        anonymization master key; 64 bytes for AES-SIV). Independent of the audit log's key."""
        if not self.anon_key:
            raise ConfigurationError("anonymization master key missing (anon.key)")
        info = f"idrs anonymized grant {int(grant_id)} key v{int(key_version)}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=64, salt=b"idrs-anon-records",
                    info=info).derive(self.anon_key)

    def record_pseudonym(self, grant_id: int, key_version: int, record_id: int) -> str:
        """The pseudonym, under one grant's key, of the record ``record_id`` (a return id).

        Deterministic authenticated encryption (AES-SIV): stable within the grant and key
        version, unrelated across grants, and only idrs (holding the master key) can turn it
        back into the record, for the grant's own lookups and for the security staff's
        re-identification command.
        """
        siv = AESSIV(self.grant_record_key(grant_id, key_version))
        ct = siv.encrypt(struct.pack(">Q", int(record_id)), [_ANON_AD])
        return "an_" + base64.b32encode(ct).decode().rstrip("=").lower()

    def record_of_pseudonym(self, grant_id: int, key_version: int, pseudonym: str) -> int | None:
        """The record id behind a pseudonym of this grant and key version, or None (another
        grant's, another key version's, forged or malformed)."""
        text = (pseudonym or "").strip()
        if not text.startswith("an_") or len(text) > 64:
            return None
        body = text[3:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
            if base64.b32encode(raw).decode().rstrip("=") != body:
                return None  # one spelling per pseudonym (the last character's spare bits)
            plain = AESSIV(self.grant_record_key(grant_id, key_version)).decrypt(raw, [_ANON_AD])
        except (ValueError, InvalidTag):
            return None
        return int(struct.unpack(">Q", plain)[0]) if len(plain) == 8 else None

    # -- rotation --------------------------------------------------------------------------

    def add_key(self) -> int:
        """Create a new data-encryption key and make it active (old ones stay usable)."""
        kid = secrets.randbelow(2**31)
        while kid in self.deks:
            kid = secrets.randbelow(2**31)
        _write_secret(self.home / f"dek-{kid}.key", base64.b64encode(secrets.token_bytes(32)))
        ring = json.loads((self.home / "keyring.json").read_text())
        keys = {int(k): v for k, v in ring["keys"].items()}
        keys[kid] = {"status": "active", "created": _now()}
        _write_keyring(self.home, kid, keys)
        self.deks[kid] = AESGCM(_read_secret(self.home / f"dek-{kid}.key"))
        self.active_kid = kid
        return kid

    def retire(self, kid: int) -> None:
        """Mark ``kid`` retired and destroy its key file; call only once nothing uses it."""
        if kid == self.active_kid:
            raise ConfigurationError("refusing to retire the active key")
        ring = json.loads((self.home / "keyring.json").read_text())
        keys = {int(k): v for k, v in ring["keys"].items()}
        keys[kid]["status"] = "retired"
        keys[kid]["retired"] = _now()
        _write_keyring(self.home, self.active_kid, keys)
        path = self.home / f"dek-{kid}.key"
        if path.exists():
            _write_secret(path, b"0" * 64)  # overwrite before unlinking
            path.unlink()
        self.deks.pop(kid, None)


ANON_KEY_FILE = "anon.key"
_ANON_AD = b"idrs anonymized record"


def _anon_key(home: Path) -> bytes:
    """``anon.key``, created on first use in a home made before anonymized grants existed."""
    path = home / ANON_KEY_FILE
    if not path.exists():
        _write_secret(path, base64.b64encode(secrets.token_bytes(32)))
    return _read_secret(path)


def _write_keyring(home: Path, active: int, keys: dict[int, dict[str, str]]) -> None:
    body = {"active": active, "keys": {str(k): v for k, v in sorted(keys.items())}}
    _write_secret(home / "keyring.json", json.dumps(body, indent=2).encode())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()
