"""Checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` notes, Ed25519.

The signing key lives in ``IDRS_HOME/audit-signing.key`` (0600, never in the database), in the
signed-note private key format ``PRIVATE+KEY+<name>+<keyid>+<base64(0x01 || seed)>``. Its
verifier key ``<name>+<keyid>+<base64(0x01 || public key)>`` is what ``key.vkey`` publishes.
Key ID: the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key), big-endian.

Pure helpers only (no database): signing, parsing, verifying. Storing checkpoints and
deciding when to sign is in :mod:`idrs.audit.log`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idrs.errors import ConfigurationError, IdrsError

KEY_FILE = "audit-signing.key"
#: The latest checkpoint this installation signed, kept outside the database so that a
#: database rolled back to an older state no longer verifies.
WITNESS_FILE = "audit-checkpoint.latest"
ALG_ED25519 = 0x01
DEFAULT_NAME = "idrs.example/audit-log"
EM_DASH = "\u2014"


class CheckpointError(IdrsError):
    """A checkpoint or note that does not parse or does not verify."""

    status_code = 422


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise ConfigurationError(f"invalid signed-note key name {name!r}")


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.public)

    def vkey(self) -> str:
        return self.verifier().vkey()

    def sign(self, text: str) -> str:
        """A signed note: ``text`` (ending in a newline), a blank line, one signature line."""
        _check_text(text)
        sig = self.private.sign(text.encode())
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + sig).decode()
        return f"{text}\n{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: int
    public: bytes

    def vkey(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``NAME+KEYID+BASE64(0x01||KEY)``; CheckpointError if malformed or inconsistent."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("verifier key is not NAME+KEYID+KEY")
        name, kid, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            kid_int = int(kid, 16)
        except ValueError:
            raise CheckpointError("verifier key is not NAME+KEYID+KEY") from None
        if len(kid) != 8 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("verifier key is not an Ed25519 signed-note key")
        if key_id(name, raw[1:]) != kid_int:
            raise CheckpointError("verifier key id does not match its name and key")
        return cls(name, kid_int, raw[1:])

    def open(self, note: str) -> str:
        """Return the note's text if it carries a valid signature by this key, else raise."""
        text, sigs = split_note(note)
        pub = Ed25519PublicKey.from_public_bytes(self.public)
        for name, blob in sigs:
            if (
                name != self.name
                or len(blob) != 68
                or int.from_bytes(blob[:4], "big") != self.key_id
            ):
                continue
            try:
                pub.verify(blob[4:], text.encode())
            except InvalidSignature:
                raise CheckpointError(f"signature by {self.name} does not verify") from None
            return text
        raise CheckpointError(f"note carries no signature by {self.name}")


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise CheckpointError("note text must end with one newline and hold no blank line")


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (name, keyid||signature) lines."""
    if not note.endswith("\n"):
        raise CheckpointError("note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("note has no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    sigs: list[tuple[str, bytes]] = []
    for line in block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise CheckpointError("malformed signature line")
        try:
            sigs.append((parts[1], base64.b64decode(parts[2], validate=True)))
        except ValueError:
            raise CheckpointError("malformed signature line") from None
    if not sigs:
        raise CheckpointError("note has no signature")
    return text, sigs


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("checkpoint body is not origin, size, root hash")
        origin, size_s, root_s = lines[0], lines[1], lines[2]
        decimal = size_s.isascii() and size_s.isdigit()  # ASCII digits only
        if not origin or not decimal or (size_s != "0" and size_s.startswith("0")):
            raise CheckpointError("checkpoint size is not a decimal number")
        try:
            root = base64.b64decode(root_s, validate=True)
        except ValueError:
            raise CheckpointError("checkpoint root is not base64") from None
        if len(root) != 32:
            raise CheckpointError("checkpoint root is not 32 bytes")
        return cls(origin, int(size_s), root)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body (CheckpointError on any failure)."""
    return Checkpoint.parse(verifier.open(note))


# ---------------------------------------------------------------- key file under IDRS_HOME


def ensure_signing_key(home: Path, name: str | None = None) -> Path:
    """Create ``home/audit-signing.key`` (0600, home 0700) if absent; return its path.

    Called by ``idrs init``. ``name`` defaults to the configured audit origin.
    """
    if name is None:
        from idrs.config import get_settings

        name = get_settings().audit_origin
    _check_name(name)
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / KEY_FILE
    if path.exists():
        load_signer(home)  # refuse a damaged key rather than silently replacing it
        return path
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    signer = Signer(name, Ed25519PrivateKey.from_private_bytes(seed))
    line = f"PRIVATE+KEY+{name}+{signer.key_id:08x}+{base64.b64encode(bytes([ALG_ED25519]) + seed).decode()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line)
    return path


def load_signer(home: Path) -> Signer:
    """The audit signing key from ``home``; ConfigurationError if missing or malformed."""
    path = Path(home) / KEY_FILE
    try:
        raw = path.read_text().strip()
    except OSError:
        raise ConfigurationError(f"audit signing key missing ({path}); run `idrs init`") from None
    parts = raw.split("+", 4)
    try:
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise ValueError
        name, kid, blob = parts[2], int(parts[3], 16), base64.b64decode(parts[4], validate=True)
        if len(blob) != 33 or blob[0] != ALG_ED25519:
            raise ValueError
        signer = Signer(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
    except ValueError:
        raise ConfigurationError(f"audit signing key {path} is malformed") from None
    if signer.key_id != kid:
        raise ConfigurationError(f"audit signing key {path} has a wrong key id")
    return signer


def has_signing_key(home: Path) -> bool:
    return (Path(home) / KEY_FILE).exists()


def write_witness(home: Path, note: str) -> None:
    """Record the newest signed checkpoint outside the database (atomic replace, 0600).

    The temporary file is unique to this call: two signers at once (the tail signer's thread
    and a command signing in the same process, or two processes) each replace the file with a
    whole note, never one renaming the other's half-written file away."""
    path = Path(home) / WITNESS_FILE
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    tmp = Path(name)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(note)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_witness(home: Path) -> str | None:
    try:
        return (Path(home) / WITNESS_FILE).read_text()
    except OSError:
        return None
