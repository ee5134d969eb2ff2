"""Checkpoints (C2SP tlog-checkpoint in a C2SP signed-note, Ed25519) checked by a from-scratch verifier.

The verifier below shares no code with idrs nor with the ``cryptography`` package: it
parses the note and the verifier key per https://c2sp.org/signed-note and
https://c2sp.org/tlog-checkpoint, and checks the Ed25519 signature with a transcription of
the RFC 8032 section 5.1.7 verification equations over plain Python integers.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from idrs.audit import checkpoint as ck

# ------------------------------------------------------------------ RFC 8032 Ed25519 (verify only)

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    aa = (a[1] - a[0]) * (b[1] - b[0]) % P
    bb = (a[1] + a[0]) * (b[1] + b[0]) % P
    cc = a[3] * 2 * D * b[3] % P
    dd = a[2] * 2 * b[2] % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s: int, pt: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    acc = (0, 1, 1, 0)
    while s:
        if s & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        s >>= 1
    return acc


def _decode(b: bytes) -> tuple[int, int, int, int] | None:
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
assert _GX is not None
G = (_GX, _GY, 1, _GX * _GY % P)


def ed25519_verify(public: bytes, msg: bytes, sig: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    a, r = _decode(public), _decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= Q:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % Q
    left, right = _mul(s, G), _add(r, _mul(h, a))
    return (left[0] * right[2] - right[0] * left[2]) % P == 0 and (
        left[1] * right[2] - right[1] * left[2]
    ) % P == 0


# ------------------------------------------------------------------ C2SP signed-note + tlog-checkpoint


def independent_open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Return (origin, size, root) or raise AssertionError."""
    name, kid_hex, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and len(key) == 33, "not an Ed25519 verifier key"
    kid = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    assert kid.hex() == kid_hex, "key id mismatch"
    text, _, sigblock = note.rpartition("\n\n")
    text += "\n"
    ok = False
    for line in sigblock.strip("\n").split("\n"):
        dash, who, blob_b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(blob_b64)
        if who == name and blob[:4] == kid:
            ok = ed25519_verify(key[1:], text.encode(), blob[4:])
    assert ok, "no valid signature"
    origin, size, root_b64, rest = text.split("\n", 3)
    assert rest == ""
    return origin, int(size), base64.b64decode(root_b64)


def _signer(name: str = "idrs.example/audit-log") -> ck.Signer:
    return ck.Signer(name, Ed25519PrivateKey.generate())


def test_checkpoint_verified_by_independent_verifier() -> None:
    signer = _signer()
    root = hashlib.sha256(b"some root").digest()
    note = signer.sign(ck.Checkpoint("idrs.example/audit-log", 12345, root).text())
    vkey = signer.vkey()
    assert independent_open_checkpoint(note, vkey) == ("idrs.example/audit-log", 12345, root)
    # and by our own verifier
    assert ck.open_checkpoint(note, ck.Verifier.parse(vkey)) == ck.Checkpoint(
        "idrs.example/audit-log", 12345, root
    )


def test_forged_checkpoints_rejected_by_both_verifiers() -> None:
    signer = _signer()
    root = hashlib.sha256(b"r").digest()
    note = signer.sign(ck.Checkpoint("idrs.example/audit-log", 7, root).text())
    forged = note.replace("\n7\n", "\n8\n", 1)
    by_other = _signer().sign(ck.Checkpoint("idrs.example/audit-log", 7, root).text())
    v = ck.Verifier.parse(signer.vkey())
    for bad in (forged, by_other):
        with pytest.raises(AssertionError):
            independent_open_checkpoint(bad, signer.vkey())
        with pytest.raises(ck.CheckpointError):
            ck.open_checkpoint(bad, v)


def test_malformed_inputs() -> None:
    for vk in (
        "",
        "a+b",
        "name+zzzzzzzz+AAAA",
        "name+00000000+" + base64.b64encode(b"\x01" + b"k" * 32).decode(),
    ):
        with pytest.raises(ck.CheckpointError):
            ck.Verifier.parse(vk)
    for body in (
        "origin\n12\n",
        "origin\n012\n" + base64.b64encode(b"x" * 32).decode() + "\n",
        "o\n1\nAAAA\n",
    ):
        with pytest.raises(ck.CheckpointError):
            ck.Checkpoint.parse(body)
