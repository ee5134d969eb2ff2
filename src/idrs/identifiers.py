"""TINs, EINs and routing numbers: parsing, canonical forms, synthetic ranges; the formats of
case and contact ids; the screen every free text passes before it reaches an audit entry
(docs/interface.md, "Case and contact ids, and free text").

Identifiers take ASCII digits only: ``\\d`` (and ``str.isdigit``, ``int``) also accept
Arabic-Indic and other digits, so a TIN typed in them would parse to a string whose blind
index matches nothing (an import derived no conflict from such a spouse TIN). The free-text
screen is the other way round: it counts digits of every script, so an identifier typed in
other digits is refused too.
"""

from __future__ import annotations

import re

from idrs.errors import ValidationFailed

_TIN = re.compile(r"^([0-9]{3})-?([0-9]{2})-?([0-9]{4})$")
_EIN = re.compile(r"^([0-9]{2})-?([0-9]{7})$")
_ROUTING = re.compile(r"^[0-9]{9}$")
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
    return bool(re.fullmatch(r"9[0-9]{2}[0-4][0-9][0-9]{4}", tin))


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
    if not _ROUTING.match(routing):
        return False
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


# -- case and contact ids ---------------------------------------------------------------------

#: a case or contact id: a series of 1 to 4 letters, an optional dash, 1 to 8 digits (``C-1``,
#: ``K-20417``, ``DEMO-1``, ``CS1``). No TIN, EIN, routing or account number fits (at most 8
#: digits) and no name beyond four letters; it is recorded verbatim in audit entries.
_CASE_ID = re.compile(r"[A-Z]{1,4}-?[0-9]{1,8}")
ID_FORMAT = "1 to 4 letters, an optional '-', then 1 to 8 digits (e.g. C-1042)"


def check_case_id(raw: str | None, field: str) -> str:
    """The canonical (upper-case) case or contact id; ValidationFailed naming ``field``.

    The value is never echoed: a refused id may be the very TIN or name it must keep out.
    """
    value = raw.strip().upper() if isinstance(raw, str) else ""
    if not value:
        raise ValidationFailed([f"{field}: required ({ID_FORMAT})"])
    if not _CASE_ID.fullmatch(value):
        screen_text(value, field)  # a TIN typed here is told as such
        raise ValidationFailed([f"{field}: not a valid id: {ID_FORMAT}"])
    return value


def optional_case_id(raw: str | None, field: str) -> str | None:
    """:func:`check_case_id` for a basis that may be absent (None or blank → None)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return check_case_id(raw, field)


# -- the free-text screen -----------------------------------------------------------------------

#: digits of any script, joined across up to three spaces, dots, dashes, slashes or underscores
#: (``123-45-6789``, ``123 45 6789``, ``1 2 3 4 5 6 7 8 9``, ``١٢٣٤٥٦٧٨٩``)
_DIGIT_RUN = re.compile(r"\d(?:[\s./_-]{0,3}\d)*")
#: TINs, EINs and routing numbers have 9 digits; bank accounts 9 to 17 as a rule
_MAX_DIGITS = 8
#: a number labelled as an identifier (``acct 4471``, ``SSN: 1234``, ``routing no. 8000``)
_LABELLED = re.compile(
    r"\b(?:ssn|tin|itin|atin|ein|acct|account|a/c|routing|rtn|aba|iban)s?\b[\s#:.no]{0,6}[0-9]{4}",
    re.IGNORECASE,
)
IDENTIFIER_IN_TEXT = (
    "holds what looks like a TIN, EIN, routing or bank account number; never type a "
    "taxpayer's identifier here (nothing was recorded)"
)


def screen_text(value: str | None, field: str) -> str | None:
    """Refuse free text that carries a taxpayer identifier before it reaches any record.

    Every free text an interface passes toward an audit entry (case and contact ids, reasons,
    purposes, notes, titles) goes through this one function. Refused: a run of 9 or more
    digits of any script, whatever spaces, dots, dashes or slashes separate them (a TIN, an
    EIN, a routing number, most account numbers); a number of 4 or more digits labelled as an
    account, routing number, SSN, TIN or EIN. ValidationFailed names ``field`` and never
    echoes the value. Returns ``value`` unchanged.
    """
    if not value:
        return value
    if not isinstance(value, str):
        raise ValidationFailed([f"{field}: must be text"])
    for m in _DIGIT_RUN.finditer(value):
        if sum(c.isdecimal() for c in m.group()) > _MAX_DIGITS:
            raise ValidationFailed([f"{field}: {IDENTIFIER_IN_TEXT}"])
    if _LABELLED.search(_ascii_digits(value)):
        raise ValidationFailed([f"{field}: {IDENTIFIER_IN_TEXT}"])
    return value


def _ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of any script as its ASCII digit (for matching only)."""
    import unicodedata

    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
