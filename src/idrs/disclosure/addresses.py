"""Is the address a requester gave an address? Pure (no I/O).

The 2025 requests carried "Failed to Provide", "Unknown Address", "NA NA", "Don't Care 12345"
and ZIP codes of 00000 where the statute needs the taxpayer's address. :func:`status` says
``given`` only for an address with a street line that has a house (or box) number and a
word, a city, a USPS state or territory code and a ZIP code that exists in form; anything
made of placeholder words, or with a placeholder ZIP, is ``placeholder`` (refused as
missing); an empty address is ``missing``; one lacking a part is ``incomplete``.

A ``given`` address is then compared with the master file's by the master file's own
normalization (``masterfile.addresses.normalize``: USPS suffixes, directionals, units,
ZIP5): :func:`norm_key`.
"""

from __future__ import annotations

import re
from typing import Any

from idrs.masterfile.addresses import normalize

#: USPS codes of the states, DC, the territories and the military post offices
STATES = frozenset(
    ["AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI", "UM", "FM", "MH", "PW", "AA", "AE", "AP"]
)

#: words (after upper-casing and dropping punctuation) that say "no address" in some form
PLACEHOLDER_WORDS = frozenset(
    ["NA", "N", "A", "NONE", "NULL", "NIL", "UNKNOWN", "UNK", "UNKN", "FAILED", "FAIL", "TO", "PROVIDE", "PROVIDED", "NOT", "GIVEN", "NO", "ADDRESS", "ADDR", "ADRESS", "DONT", "DON", "T", "CARE", "TBD", "TBA", "XXX", "XX", "X", "TEST", "DUMMY", "FAKE", "BLANK", "EMPTY", "MISSING", "REFUSED", "DECLINED", "UNAVAILABLE", "AVAILABLE", "NOADDRESS", "NOTPROVIDED", "PENDING", "VARIOUS", "ANY", "ANYWHERE", "NOWHERE", "SAME", "STREET", "CITY", "STATE", "ZIP"]
)
#: ZIP codes that stand for "none": one digit five times (00000, 99999, ...)
PLACEHOLDER_ZIPS = frozenset(d * 5 for d in "0123456789")

_WORD = re.compile(r"[A-Z0-9]+")
_ZIP = re.compile(r"^[0-9]{5}(?:-?[0-9]{4})?$")
FIELDS = ("street", "city", "state", "zip")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.upper().replace("'", ""))


def _only_placeholder(text: str) -> bool:
    words = _words(text)
    return bool(words) and all(w in PLACEHOLDER_WORDS or w.isdigit() for w in words) and any(
        w in PLACEHOLDER_WORDS for w in words
    )


def parts(address: Any) -> dict[str, str] | None:
    """The four parts of an address object (strings, stripped); None when not an object."""
    if not isinstance(address, dict):
        return None
    return {k: str(address.get(k) or "").strip()[:120] for k in FIELDS}


def status(address: Any) -> str:
    """``given``, ``missing``, ``placeholder`` or ``incomplete`` (see the module docstring)."""
    p = parts(address)
    if p is None or not any(p.values()):
        return "missing"
    zip_code = p["zip"]
    z5 = zip_code[:5]
    if any(_only_placeholder(p[k]) for k in ("street", "city")) or (
        zip_code and (not _ZIP.match(zip_code) or z5 in PLACEHOLDER_ZIPS)
    ):
        return "placeholder"
    if _only_placeholder(" ".join(p.values())):
        return "placeholder"
    if not all(p.values()):
        return "incomplete"
    words = _words(p["street"])
    has_number = any(any(c.isdigit() for c in w) for w in words)
    has_word = any(w.isalpha() and len(w) >= 2 and w not in PLACEHOLDER_WORDS for w in words)
    if not has_word:
        return "placeholder"
    if not has_number:
        return "incomplete"
    if p["state"].upper() not in STATES:
        return "placeholder" if _only_placeholder(p["state"]) else "incomplete"
    if not any(w.isalpha() and w not in PLACEHOLDER_WORDS for w in _words(p["city"])):
        return "placeholder"
    return "given"


def norm_key(address: dict[str, str]) -> str:
    """The master file's normalized key of a ``given`` address."""
    return normalize(address["street"], address["city"], address["state"], address["zip"]).norm_key
