"""Witness servers for the tests, and a checkpoint verifier written from the C2SP texts alone.

``Served`` runs ``idrs.audit.witness.create_app`` under uvicorn in a thread of the test
process, on a socket it bound itself (no port race); ``stop`` ends it. ``SpecVerifier``
uses only the standard library and ``cryptography``'s Ed25519: none of idrs's code.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from pathlib import Path

import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from idrs.audit import witness

from ..ready import until


class Served:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.asgi = witness.create_app(directory)
        config = uvicorn.Config(self.asgi, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        until(lambda: self.server.started or not self.thread.is_alive())
        assert self.server.started, "the witness server did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()
        self.asgi.state.witness.close()


# ------------------------------------------------------------------ from the specifications


def _vkey(vkey: str, alg: int) -> tuple[str, bytes, bytes]:
    """signed-note verifier key: name+hex(keyid)+base64(alg||public key)."""
    name, kid_hex, b64 = vkey.split("+", 2)  # base64 may hold "+" too
    raw = base64.b64decode(b64)
    assert raw[0] == alg and len(raw) == 33
    kid = bytes.fromhex(kid_hex)
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] == kid
    return name, kid, raw[1:]


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """signed-note: text (ending in a newline), a blank line, lines '— name base64'."""
    assert note.endswith("\n")
    text, _, sig_block = note.rpartition("\n\n")
    sigs = []
    for line in sig_block.rstrip("\n").split("\n"):
        dash, name, b64 = line.split(" ")
        assert dash == "\u2014"
        sigs.append((name, base64.b64decode(b64)))
    return text + "\n", sigs


class SpecVerifier:
    """A client policy: the log's key and (name, key) of witnesses, k of them required."""

    def __init__(self, log_vkey: str, witness_vkeys: list[str], k: int) -> None:
        self.log = _vkey(log_vkey, 0x01)
        self.witnesses = [_vkey(v, 0x04) for v in witness_vkeys]
        self.k = k

    def verify(self, note: str) -> tuple[str, int, bytes]:
        """(origin, size, root) if the log signed and k witnesses cosigned; AssertionError if not."""
        body, sigs = _split(note)
        lines = body.split("\n")
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
        name, kid, pub = self.log
        assert any(
            n == name and s[:4] == kid and _ok(pub, s[4:], body.encode()) for n, s in sigs
        ), "no valid log signature"
        good = 0
        for wname, wkid, wpub in self.witnesses:
            for n, s in sigs:
                if n != wname or s[:4] != wkid or len(s) != 4 + 8 + 64:
                    continue
                t = int.from_bytes(s[4:12], "big")
                msg = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + body.encode()
                if _ok(wpub, s[12:], msg):
                    good += 1
                    break
        assert good >= self.k, f"{good} of the witnesses cosigned, {self.k} needed"
        return origin, size, root


def _ok(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except InvalidSignature:
        return False
    return True
