"""Answer commitments (issue 14.1): every allowed answer is committed in its audit entry.

The entry's object carries ``answer`` = lowercase hex of
``SHA-256(salt ‖ RFC 8785 canonical JSON of the answer)``, where the answer is exactly the
JSON document that leaves the process after masking (over HTTP the response body without its
``audit_index``). The salt is 32 fresh random bytes per answer: without it nobody can test a
guessed answer against the leaf (a TIN or a balance has few enough values to guess). It is
kept *outside* the leaf, encrypted with the keyring, in ``audit_answer`` keyed by the entry's
index, together with the *recipe*: what :mod:`idrs.oversight.opening` needs to reproduce the
answer from the master file's history (the TIN, the command's parameters, the classes the
masking showed, the related people withheld). Both are written in the entry's own commit
(``log.append(..., also=...)`` with :data:`idrs.audit.log.ENTRY_INDEX`), so an answer never
has an entry without its opening, nor an opening without its entry.

The canonical form is the ``rfc8785`` package (a maintained RFC 8785 / JCS implementation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import rfc8785

from idrs.audit import log
from idrs.crypto import Keyring

SALT_BYTES = 32
SALT_COLUMN = "audit_answer.salt"
RECIPE_COLUMN = "audit_answer.recipe"

_INSERT = "INSERT INTO audit_answer (idx, salt_enc, recipe_enc) VALUES (:idx, :salt, :recipe)"


#: the C encoder of the standard library with JCS's separators; see :func:`canonical`
_FAST = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    sort_keys=True,
    separators=(",", ":"),
)
#: for :func:`_float_or_long`: every ASCII digit becomes "0", every place a value starts
#: (":", ",", "[") becomes ":", "." and an exponent's "e"/"E" become "."; "-" is deleted
_SHAPES = bytes.maketrans(b"123456789,[eE", b"000000000::..")
#: an integer of 16 digits or more (JCS refuses those beyond 2**53)
_LONG = b"0" * 16
#: a float where a value starts: Python's repr writes a digit before "." and before an
#: exponent (``1.5``, ``1e+16``, ``-0.0``, ``5e-324``). The same text inside a string only
#: sends the answer down the slow path.
_FLOAT = re.compile(rb":0+\.")
#: a character whose UTF-16 order differs from its code-point order (key sorting)
_ASTRAL_ORDER = re.compile("[\ue000-\U0010ffff]")


def canonical(answer: Any) -> bytes:
    """The RFC 8785 (JCS) canonical JSON of ``answer``.

    The ``rfc8785`` package is the reference and is used whenever the answer holds a float,
    an integer of 16 digits or more, or a character at or above U+E000 (where UTF-16 key
    order differs from Python's). For every other document — research answers carry
    strings, small integers, booleans and nulls under string keys — JCS *is* the standard library's compact
    sorted output with ``ensure_ascii=False`` (same string escapes: ``\\b \\t \\n \\f \\r``,
    other controls as lowercase ``\\u00xx``, nothing else escaped), which the C encoder
    writes several times faster; ``tests/unit/test_commitment.py`` checks the two agree on
    arbitrary documents.
    """
    try:
        out = _FAST.encode(answer)
    except (TypeError, ValueError):
        return rfc8785.dumps(answer)  # raises its own CanonicalizationError / TypeError
    if out[:1] in "-0123456789":  # a bare number
        return rfc8785.dumps(answer)
    try:
        data = out.encode()
    except UnicodeEncodeError:  # a lone surrogate: not JSON text
        return rfc8785.dumps(answer)
    if _float_or_long(data) or (not out.isascii() and _ASTRAL_ORDER.search(out)):
        return rfc8785.dumps(answer)
    return data


def _float_or_long(data: bytes) -> bool:
    """Whether compact JSON ``data`` may hold a float or an integer of 16 digits or more.

    One ``translate`` first folds every shape a float can start with into ``:0+.`` (a
    literal-prefixed pattern the regex engine finds with a fast scan): a regex over the raw
    text (a value start, digits, then "." or an exponent) cost a third of a TXMOD commitment.
    """
    shapes = data.translate(_SHAPES, b"-")
    return _LONG in shapes or _FLOAT.search(shapes) is not None


def digest(salt: bytes, answer: Any) -> str:
    """``hex(SHA-256(salt ‖ JCS(answer)))``: the value of an entry's ``object.answer``."""
    return hashlib.sha256(salt + canonical(answer)).hexdigest()


@dataclass(frozen=True)
class Commitment:
    """One answer's commitment, and what its opening needs (kept encrypted, off the leaf)."""

    hex: str
    salt: bytes
    recipe: dict[str, Any]

    def row(self, keyring: Keyring) -> tuple[bytes, bytes]:
        """``(salt_enc, recipe_enc)`` of the ``audit_answer`` row."""
        salt_enc = keyring.encrypt(base64.b64encode(self.salt).decode(), SALT_COLUMN)
        recipe_enc = keyring.encrypt(
            json.dumps(self.recipe, sort_keys=True, separators=(",", ":")), RECIPE_COLUMN
        )
        return salt_enc, recipe_enc

    def writes(self, keyring: Keyring) -> list[log.Write]:
        """The ``audit_answer`` row, committed with the entry (its index bound in the batch)."""
        salt_enc, recipe_enc = self.row(keyring)
        return [(_INSERT, {"idx": log.ENTRY_INDEX, "salt": salt_enc, "recipe": recipe_enc})]


def commit(answer: Any, recipe: dict[str, Any]) -> Commitment:
    """Commit to ``answer`` with a fresh salt (raises if the answer is not plain JSON)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return Commitment(digest(salt, answer), salt, recipe)


def stored(keyring: Keyring, salt_enc: bytes, recipe_enc: bytes) -> tuple[bytes, dict[str, Any]]:
    """Decrypt an ``audit_answer`` row: (salt, recipe)."""
    salt = base64.b64decode(keyring.decrypt(bytes(salt_enc), SALT_COLUMN))
    recipe = json.loads(keyring.decrypt(bytes(recipe_enc), RECIPE_COLUMN))
    return salt, recipe
