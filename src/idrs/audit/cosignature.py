"""C2SP ``tlog-cosignature`` (cosignature/v1, Ed25519): witness keys, cosigning, checking.

A cosignature is a signed-note signature line ``— NAME base64(keyid || timestamp || sig)``
added under a checkpoint. ``keyid`` is the first 4 bytes of SHA-256(name || "\\n" || 0x04 ||
public key); ``timestamp`` is a big-endian u64 of POSIX seconds; ``sig`` is Ed25519 over::

    cosignature/v1
    time <timestamp>
    <the checkpoint body, with its final newline>

A cosigner's verifier key is ``NAME+KEYID+base64(0x04 || public key)``; its private key file
``PRIVATE+KEY+NAME+KEYID+base64(0x04 || seed)`` (0600). Pure helpers: no database, no I/O
beyond the key file.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idrs.audit.checkpoint import EM_DASH, CheckpointError, split_note
from idrs.errors import ConfigurationError

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise ConfigurationError(
            f"invalid witness name {name!r}: no spaces, no '+', printable characters only"
        )


def message(body: str, timestamp: int) -> bytes:
    """The signed message of a cosignature/v1 over the checkpoint ``body``."""
    return f"{HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public key (what a verifier configures)."""

    name: str
    key_id: int
    public: bytes

    def vkey(self) -> str:
        b64 = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    @classmethod
    def parse(cls, vkey: str) -> CosignerKey:
        """``NAME+KEYID+base64(0x04||KEY)``; CheckpointError if malformed or not cosignature/v1."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("witness key is not NAME+KEYID+KEY")
        name, kid, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            kid_int = int(kid, 16)
        except ValueError:
            raise CheckpointError("witness key is not NAME+KEYID+KEY") from None
        if len(kid) != 8 or len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise CheckpointError("witness key is not an Ed25519 cosignature/v1 key (type 0x04)")
        if key_id(name, raw[1:]) != kid_int:
            raise CheckpointError("witness key id does not match its name and key")
        return cls(name, kid_int, raw[1:])

    def timestamp_of(self, body: str, blob: bytes) -> int | None:
        """The timestamp of ``blob`` (keyid||timestamp||sig) if it is this key's valid cosignature."""
        if len(blob) != 4 + 8 + 64 or int.from_bytes(blob[:4], "big") != self.key_id:
            return None
        ts = int.from_bytes(blob[4:12], "big")
        if ts > MAX_TIMESTAMP:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(blob[12:], message(body, ts))
        except InvalidSignature:
            return None
        return ts

    def check_line(self, body: str, line: str) -> int | None:
        """The timestamp if ``line`` is a valid signature line of this key over ``body``."""
        parts = line.rstrip("\n").split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or parts[1] != self.name:
            return None
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            return None
        return self.timestamp_of(body, blob)


@dataclass(frozen=True)
class Cosigner:
    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def key(self) -> CosignerKey:
        return CosignerKey(self.name, key_id(self.name, self.public), self.public)

    def cosign(self, body: str, timestamp: int) -> str:
        """One signature line (with its newline) cosigning the checkpoint ``body``."""
        sig = self.private.sign(message(body, timestamp))
        blob = self.key().key_id.to_bytes(4, "big") + timestamp.to_bytes(8, "big") + sig
        return f"{EM_DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def cosigned_by(note: str, keys: list[CosignerKey]) -> set[str]:
    """Verifier keys (as vkeys) among ``keys`` with a valid cosignature on ``note``'s body."""
    body, sigs = split_note(note)
    found: set[str] = set()
    for key in keys:
        for name, blob in sigs:
            if name == key.name and key.timestamp_of(body, blob) is not None:
                found.add(key.vkey())
                break
    return found


def check_policy(note: str, keys: list[CosignerKey], minimum: int) -> int:
    """Raise CheckpointError unless ``note`` carries cosignatures by ``minimum`` of ``keys``."""
    if minimum < 1 or minimum > len(keys):
        raise CheckpointError(
            f"witness policy asks for {minimum} of {len(keys)} witness keys; "
            "give between 1 and the number of keys"
        )
    got = len(cosigned_by(note, keys))
    if got < minimum:
        raise CheckpointError(
            f"checkpoint is cosigned by {got} of the {len(keys)} witness keys, "
            f"the policy needs {minimum}"
        )
    return got


# ---------------------------------------------------------------- key file


def create_key(path: Path, name: str) -> Cosigner:
    """Write a new witness key to ``path`` (0600, refusing to replace one)."""
    check_name(name)
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    cosigner = Cosigner(name, Ed25519PrivateKey.from_private_bytes(seed))
    blob = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + seed).decode()
    line = f"PRIVATE+KEY+{name}+{cosigner.key().key_id:08x}+{blob}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: a witness key is never replaced") from None
    with os.fdopen(fd, "w") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return cosigner


def load_key(path: Path) -> Cosigner:
    try:
        raw = path.read_text().strip()
    except OSError:
        raise ConfigurationError(f"witness key missing ({path}); run `idrs witness init`") from None
    parts = raw.split("+", 4)
    try:
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise ValueError
        blob = base64.b64decode(parts[4], validate=True)
        if len(blob) != 33 or blob[0] != ALG_COSIGNATURE_V1:
            raise ValueError
        cosigner = Cosigner(parts[2], Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if cosigner.key().key_id != int(parts[3], 16):
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"witness key {path} is malformed") from None
    return cosigner
