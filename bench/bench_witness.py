"""Witness (issue 14.3): checkpoints cosigned per second by one witness.

A synthetic log (its own Ed25519 key, leaves hashed with the same RFC 6962 code) grows by a
few entries per checkpoint; each checkpoint is submitted with the consistency proof from
the previous one, in order, as a log does (a witness advances one log strictly in sequence).

* over HTTP: ``idrs witness serve`` in its own process, one keep-alive httpx client; each
  request is parsed, the log signature and the proof verified, the new state written
  (atomic replace + fsync) and the cosignature returned;
* in process: :meth:`idrs.audit.witness.Witness.add_checkpoint` alone (no HTTP), the same work.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import figure as _fig
from idrs.audit import merkle, witness
from idrs.audit.checkpoint import Checkpoint, Signer

TITLE = "Witness: cosignatures per second (issue 14)"
ORIGIN = "bench.example/log"
TARGET = 100.0


def _requests(count: int) -> tuple[list[bytes], str]:
    """``count`` add-checkpoint bodies of one growing log, each from the previous size."""
    signer = Signer(ORIGIN, Ed25519PrivateKey.generate())
    rng = random.Random(14)
    nodes: dict[merkle.Node, bytes] = {}
    cr = merkle.CompactRange()
    size, prev, prev_root = 0, 0, merkle.EMPTY_ROOT
    out: list[bytes] = []
    for _ in range(count):
        new = [merkle.leaf_hash(rng.randbytes(64)) for _ in range(rng.randint(1, 8))]
        nodes.update(merkle.append_nodes(size, new, nodes.__getitem__))
        for h in new:
            cr.append(h)
        size += len(new)
        root = cr.root()
        plan = merkle.consistency_plan(prev, size) if prev else []
        proof = merkle.evaluate(plan, nodes)
        merkle.verify_consistency(prev, size, proof, prev_root, root)
        note = signer.sign(Checkpoint(ORIGIN, size, root).text())
        head = [f"old {prev}", *(base64.b64encode(p).decode() for p in proof)]
        out.append(("\n".join(head) + "\n\n" + note).encode())
        prev, prev_root = size, root
    return out, signer.vkey()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(scale: str) -> list[dict[str, Any]]:
    count = 300 if scale == "quick" else 3000
    bodies, log_vkey = _requests(count)
    work = Path(tempfile.mkdtemp(prefix="idrs-bench-witness-"))
    try:
        # in process
        witness.init(work / "a", "bench.example/wa", [log_vkey])
        w = witness.Witness(work / "a")
        t0 = time.perf_counter()
        for b in bodies:
            assert w.add_checkpoint(b).status == 200
        local = count / (time.perf_counter() - t0)
        # over HTTP, the witness in its own process
        witness.init(work / "b", "bench.example/wb", [log_vkey])
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "idrs", "witness", "serve", "--dir", str(work / "b"),
             "--port", str(port)],
            stderr=subprocess.DEVNULL, env={**os.environ},
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/add-checkpoint"
            with httpx.Client(timeout=30) as client:
                while True:  # wait for the server (a refused connection), never for a guess
                    try:
                        client.post(url, content=b"")
                        break
                    except httpx.TransportError:
                        if proc.poll() is not None:
                            raise RuntimeError("idrs witness serve exited") from None
                        time.sleep(0.05)
                t0 = time.perf_counter()
                each = []
                for b in bodies:
                    t1 = time.perf_counter()
                    r = client.post(url, content=b)
                    each.append(time.perf_counter() - t1)
                    assert r.status_code == 200, r.text
                http = count / (time.perf_counter() - t0)
                each.sort()
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        _fig(
            f"checkpoints cosigned over HTTP (POST /add-checkpoint, {count} in sequence)",
            round(http, 1),
            "checkpoints/s",
            f">= {TARGET:.0f}/s",
            http >= TARGET,
            "each: log signature and consistency proof verified, state fdatasynced, cosignature "
            f"returned; client and server on the same machine, load average {os.getloadavg()[0]:.1f} "
            "during the run",
        ),
        _fig(
            "one add-checkpoint request over HTTP, median / p99",
            f"{each[len(each) // 2] * 1000:.2f} / {each[int(len(each) * 0.99)] * 1000:.2f}",  # type: ignore[arg-type]
            "ms",
            "-",
            None,
            "the p99 is the disk's fdatasync on a shared machine",
        ),
        _fig(
            f"checkpoints cosigned in process (Witness.add_checkpoint, {count})",
            round(local, 1),
            "checkpoints/s",
            "-",
            None,
        ),
    ]
