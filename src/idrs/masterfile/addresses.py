"""Address normalization: two spellings of one dwelling get the same ``norm_key``.

Pure (no I/O). Callers: the import/seed writer (``masterfile.store``) when it stores an
``AddressRecord``, and anyone who must compare an address typed by a person with stored
ones (the household conflict rules compare ``norm_key``; detection compares ``street_key``).

Rules: upper case; punctuation dropped; street suffixes and directionals abbreviated the
USPS way (Avenue/Ave/AVE. → AVE, North → N); unit designators (Apt, Apartment, #, Unit,
Suite, Ste, Room, Floor …) folded into one ``#`` form; ZIP+4 reduced to ZIP5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

SUFFIXES: dict[str, str] = {
    "ALLEY": "ALY",
    "ALY": "ALY",
    "AVENUE": "AVE",
    "AVE": "AVE",
    "AV": "AVE",
    "AVEN": "AVE",
    "AVN": "AVE",
    "BOULEVARD": "BLVD",
    "BLVD": "BLVD",
    "BOUL": "BLVD",
    "CIRCLE": "CIR",
    "CIR": "CIR",
    "CIRC": "CIR",
    "COURT": "CT",
    "CT": "CT",
    "COVE": "CV",
    "CV": "CV",
    "CRESCENT": "CRES",
    "CRES": "CRES",
    "DRIVE": "DR",
    "DR": "DR",
    "DRV": "DR",
    "EXPRESSWAY": "EXPY",
    "EXPY": "EXPY",
    "HIGHWAY": "HWY",
    "HWY": "HWY",
    "LANE": "LN",
    "LN": "LN",
    "LOOP": "LOOP",
    "PARKWAY": "PKWY",
    "PKWY": "PKWY",
    "PKY": "PKWY",
    "PLACE": "PL",
    "PL": "PL",
    "PLAZA": "PLZ",
    "PLZ": "PLZ",
    "ROAD": "RD",
    "RD": "RD",
    "ROUTE": "RTE",
    "RTE": "RTE",
    "SQUARE": "SQ",
    "SQ": "SQ",
    "STREET": "ST",
    "ST": "ST",
    "STR": "ST",
    "STRT": "ST",
    "TERRACE": "TER",
    "TER": "TER",
    "TERR": "TER",
    "TRAIL": "TRL",
    "TRL": "TRL",
    "TURNPIKE": "TPKE",
    "TPKE": "TPKE",
    "WAY": "WAY",
    "WY": "WAY",
}

DIRECTIONALS: dict[str, str] = {
    "NORTH": "N",
    "N": "N",
    "SOUTH": "S",
    "S": "S",
    "EAST": "E",
    "E": "E",
    "WEST": "W",
    "W": "W",
    "NORTHEAST": "NE",
    "NE": "NE",
    "NORTHWEST": "NW",
    "NW": "NW",
    "SOUTHEAST": "SE",
    "SE": "SE",
    "SOUTHWEST": "SW",
    "SW": "SW",
}

ORDINALS: dict[str, str] = {
    "FIRST": "1ST",
    "SECOND": "2ND",
    "THIRD": "3RD",
    "FOURTH": "4TH",
    "FIFTH": "5TH",
    "SIXTH": "6TH",
    "SEVENTH": "7TH",
    "EIGHTH": "8TH",
    "NINTH": "9TH",
    "TENTH": "10TH",
}

#: every designator of a secondary unit; all fold into '#' (Apt 4 = Unit 4 = #4 = Suite 4)
UNIT_DESIGNATORS = frozenset(
    {
        "APT",
        "APARTMENT",
        "UNIT",
        "STE",
        "SUITE",
        "#",
        "NO",
        "NUMBER",
        "RM",
        "ROOM",
        "FL",
        "FLOOR",
        "BLDG",
        "BUILDING",
        "LOT",
        "SPC",
        "SPACE",
        "TRLR",
        "DEPT",
    }
)

_PUNCT = re.compile(r"[.,;:'\"()]")
_SPACES = re.compile(r"\s+")
_HASH = re.compile(r"#\s*")
_ZIP = re.compile(r"^([0-9]{5})(?:-?[0-9]{4})?$")


@dataclass(frozen=True, slots=True)
class NormalizedAddress:
    street: str  # without the unit
    unit: str  # "" when none
    city: str
    state: str
    zip5: str

    @property
    def norm_key(self) -> str:
        """Same dwelling ⇔ same key: street with unit, city, state, ZIP5."""
        street = f"{self.street} #{self.unit}" if self.unit else self.street
        return f"{street}|{self.city}|{self.state}|{self.zip5}"[:200]

    @property
    def street_key(self) -> str:
        """Same building or street: street without the unit, city, state."""
        return f"{self.street}|{self.city}|{self.state}"[:200]


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.upper())).strip()


def split_street(street: str) -> tuple[str, str]:
    """Normalized (street without unit, unit) of one street line."""
    text = _HASH.sub(" # ", _clean(street))
    tokens = text.split()
    out: list[str] = []
    unit_parts: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        # a designator after the house number and at least one street word starts the unit
        if tok in UNIT_DESIGNATORS and len(out) >= 2 and i + 1 < len(tokens):
            unit_parts = [t for t in tokens[i + 1 :] if t not in UNIT_DESIGNATORS]
            break
        out.append(SUFFIXES.get(tok) or DIRECTIONALS.get(tok) or ORDINALS.get(tok) or tok)
        i += 1
    return " ".join(out), "".join(unit_parts)


def normalize_zip(raw: str) -> str:
    """ZIP5 of ``12345``, ``12345-6789`` or ``123456789``; the cleaned input otherwise."""
    text = raw.strip()
    m = _ZIP.match(text)
    return m.group(1) if m else text.upper()


@lru_cache(maxsize=65536)
def normalize(street: str, city: str, state: str, zip_code: str) -> NormalizedAddress:
    """Normalize one postal address (pure; never raises on odd input)."""
    base, unit = split_street(street)
    return NormalizedAddress(
        street=base, unit=unit, city=_clean(city), state=_clean(state), zip5=normalize_zip(zip_code)
    )


def keys(street: str, city: str, state: str, zip_code: str) -> tuple[str, str]:
    """``(norm_key, street_key)`` of one address: what ``AddressRecord`` stores."""
    addr = normalize(street, city, state, zip_code)
    return addr.norm_key, addr.street_key
