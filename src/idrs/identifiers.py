"""TINs, EINs and routing numbers: parsing, canonical forms, synthetic ranges (docs/interface.md)."""

from __future__ import annotations

import re

_TIN = re.compile(r"^(\d{3})-?(\d{2})-?(\d{4})$")
_EIN = re.compile(r"^(\d{2})-?(\d{7})$")
_ROUTING = re.compile(r"^\d{9}$")
_ACCOUNT = re.compile(r"^[0-9A-Za-z]{1,17}$")


class BadIdentifier(ValueError):
    """An identifier that does not parse; the message says what is wrong."""


def normalize_tin(raw: str) -> str:
    """Canonical 9-digit TIN from ``123-45-6789`` or ``123456789``; BadIdentifier otherwise."""
    m = _TIN.match(raw.strip()) if isinstance(raw, str) else None
    if not m:
        raise BadIdentifier(f"not a TIN (9 digits, dashes optional): {_safe(raw)}")
    return "".join(m.groups())


def format_tin(tin: str) -> str:
    return f"{tin[:3]}-{tin[3:5]}-{tin[5:]}"


def mask_tin(tin: str) -> str:
    return f"***-**-{tin[-4:]}"


def is_synthetic_tin(tin: str) -> bool:
    """Area 900–999 and group 00–49: neither an SSN nor an ITIN/ATIN can look like this."""
    return tin[0] == "9" and int(tin[3:5]) <= 49


def normalize_ein(raw: str) -> str:
    m = _EIN.match(raw.strip()) if isinstance(raw, str) else None
    if not m:
        raise BadIdentifier(f"not an EIN (NN-NNNNNNN): {_safe(raw)}")
    return "".join(m.groups())


def format_ein(ein: str) -> str:
    return f"{ein[:2]}-{ein[2:]}"


def is_synthetic_ein(ein: str) -> bool:
    return ein.startswith("00")


def aba_checksum_ok(routing: str) -> bool:
    d = [int(c) for c in routing]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])
    return total % 10 == 0


def check_routing(raw: str) -> str:
    if not isinstance(raw, str) or not _ROUTING.match(raw):
        raise BadIdentifier("routing number must be 9 digits")
    if not aba_checksum_ok(raw):
        raise BadIdentifier("routing number fails the ABA checksum")
    return raw


def is_synthetic_routing(routing: str) -> bool:
    return routing.startswith("80")


def check_account(raw: str) -> str:
    if not isinstance(raw, str) or not _ACCOUNT.match(raw):
        raise BadIdentifier("bank account must be 1 to 17 letters or digits")
    return raw


def mask_account(account: str) -> str:
    return "****" + account[-4:]


def synthetic_routing(n: int) -> str:
    """The n-th routing number with prefix 80 whose ABA checksum holds (deterministic)."""
    body = f"80{n % 1_000_000:06d}"
    for check in range(10):
        candidate = body + str(check)
        if aba_checksum_ok(candidate):
            return candidate
    raise AssertionError("unreachable: one check digit always fits")


def _safe(raw: object) -> str:
    # Echo at most a short, sanitised fragment of bad input; never a whole (possibly real) TIN.
    text = str(raw)
    return repr(text[:3] + "…") if len(text) > 3 else repr(text)
