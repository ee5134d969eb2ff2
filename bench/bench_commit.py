"""Answer commitments: what committing one research answer adds to the call (issue 14.1).

Per answer: RFC 8785 canonical JSON of the masked answer (``rfc8785``), a fresh 32-byte
salt, SHA-256, and the encryption of the salt and of the reproduction recipe under the
keyring (AES-GCM) for ``audit_answer`` — everything :func:`idrs.research.run` does for a
commitment besides the one row inserted in the entry's existing commit. Measured in
process on typical answers shaped like the research service's (an ENMOD entity; a TXMOD
module with a dozen transactions). Target: under 50 µs a call, beside the HTTP figures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "Answer commitments: canonicalize + hash + salt-encrypt per research answer"
CALLS = {"full": 20_000, "quick": 2_000}
TARGET_US = 50.0
BATCH = 50


def _enmod() -> dict[str, Any]:
    return {
        "command": "ENMOD",
        "data": {
            "tin": "***-**-3456",
            "name": {"first": "Ann", "middle": "", "last": "Carter", "suffix": ""},
            "name_control": "CART",
            "date_of_birth": "1980-02-01",
            "phone": None,
            "markers": ["identity_theft"],
            "filing_status_history": [
                {"tax_year": 2023, "filing_status": "MFJ"},
                {"tax_year": 2022, "filing_status": "S"},
            ],
            "address_history": [
                {
                    "street": "12 Elm St",
                    "city": "Dayton",
                    "state": "OH",
                    "zip": "45402",
                    "valid_from": "2024-04-15",
                    "source": s,
                }
                for s in ("entity", "return")
            ],
        },
        "masked": ["tin"],
        "withheld": [],
    }


def _txmod() -> dict[str, Any]:
    txns = [
        {
            "id": 1000 + i,
            "tc": tc,
            "date": f"2024-0{1 + i % 9}-15",
            "amount": f"{4100 + i}.00",
            "action_code": None,
            "source": "import",
            "posted_at": "2025-04-15T12:00:00+00:00",
            "posted_by": None,
            "reverses": None,
        }
        for i, tc in enumerate(
            ["150", "806", "846", "290", "291", "570", "571", "300", "420", "421", "670", "971"]
        )
    ]
    return {
        "command": "TXMOD",
        "data": {
            "tin": "***-**-3456",
            "name_control": "CART",
            "tax_year": 2023,
            "module_exists": True,
            "balance": "-3000.00",
            "status": "credit",
            "transactions": txns,
        },
        "masked": ["tin"],
        "withheld": [],
    }


def _per_call_us(doc: dict[str, Any], keyring: Any, n: int, clock: Any) -> list[float]:
    """µs per commitment, measured over batches of 50 (``clock``: wall or this thread's CPU)."""
    from idrs.audit import commitment

    recipe = {
        "kind": "research",
        "command": doc["command"],
        "tin": "900123456",
        "params": {"year": 2023},
        "as_of": None,
        "visible": ["address", "identity", "other", "return"],
        "anonymize": False,
        "hidden": [],
    }
    samples = []
    for _ in range(max(1, n // BATCH)):
        t0 = clock()
        for _ in range(BATCH):
            commitment.commit(doc, recipe).writes(keyring)
        samples.append((clock() - t0) / 1000 / BATCH)
    return samples


def run(scale: str) -> list[dict[str, Any]]:
    from idrs.crypto import Keyring

    n = CALLS[scale]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        keyring = Keyring.create(Path(tmp) / "home")
        for name, doc in (("ENMOD", _enmod()), ("TXMOD, 12 transactions", _txmod())):
            _per_call_us(doc, keyring, 500, time.perf_counter_ns)  # warm-up
            for how, clock in (("CPU", time.thread_time_ns), ("wall", time.perf_counter_ns)):
                med = statistics.median(_per_call_us(doc, keyring, n, clock))
                figures.append(
                    {
                        "what": f"{name}: commitment per answer, median {how} time"
                        f" ({n} calls, batches of {BATCH})",
                        "value": round(med, 1),
                        "unit": "µs",
                        "target": f"< {TARGET_US:.0f} µs",
                        "met": med < TARGET_US,
                    }
                )
    return figures
