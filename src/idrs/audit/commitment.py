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

import orjson
import rfc8785

from idrs.audit import log
from idrs.crypto import Keyring

SALT_BYTES = 32
SALT_COLUMN = "audit_answer.salt"
RECIPE_COLUMN = "audit_answer.recipe"

_INSERT = "INSERT INTO audit_answer (idx, salt_enc, recipe_enc) VALUES (:idx, :salt, :recipe)"


#: orjson with JCS's key order for plain documents: anything that is not a plain ``dict``,
#: ``list``, ``str``, ``int``, ``bool`` or ``None`` (a subclass, a dataclass, a datetime) and
#: any integer beyond 2**53 raise, and then :func:`canonical` asks ``rfc8785`` instead
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
#: the UTF-8 lead bytes of characters at or above U+E000, whose UTF-16 order differs from
#: their code-point order (JCS sorts keys by UTF-16 code units, orjson by code points)
_ASTRAL_ORDER = re.compile(rb"[\xee\xef\xf0-\xf4]")
#: the leaves the fast path writes as JCS does (a float is not among them)
_PLAIN = frozenset({str, int, bool, type(None)})


def canonical(answer: Any) -> bytes:
    """The RFC 8785 (JCS) canonical JSON of ``answer``.

    The ``rfc8785`` package is the reference and is used whenever the answer holds a float or
    anything but plain JSON types, an integer beyond 2**53, or a character at or above U+E000
    (where UTF-16 key order differs from code-point order). For every other document —
    research answers carry strings, small integers, booleans and nulls under string keys —
    JCS *is* orjson's sorted compact output (the same string escapes: ``\\b \\t \\n \\f
    \\r``, other controls as lowercase ``\\u00xx``, nothing else escaped, UTF-8), which is
    several times faster than the reference; ``tests/unit/test_commitment.py`` checks the two
    agree on arbitrary documents. Floats are looked for in the document, not in the output:
    orjson writes NaN as ``null`` where JCS refuses it, and Enums or UUIDs as values where
    the reference refuses them.
    """
    if _needs_reference(answer):
        return rfc8785.dumps(answer)  # raises its own CanonicalizationError / TypeError
    try:
        data = orjson.dumps(answer, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a subclass, a long integer, a lone surrogate
        return rfc8785.dumps(answer)
    if not data.isascii() and _ASTRAL_ORDER.search(data):
        return rfc8785.dumps(answer)
    return data


def _needs_reference(value: Any) -> bool:
    """Whether ``value`` holds anything but plain JSON (dicts, lists, strings, integers,
    booleans, None): a float above all, whose JCS form the fast path does not write (one
    pass; plain leaves are skipped inline)."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return kind not in _PLAIN
    plain = _PLAIN
    for item in items:  # noqa: SIM110 - a plain loop: any() over a generator costs more
        if type(item) not in plain and _needs_reference(item):
            return True
    return False


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
            orjson.dumps(self.recipe, option=orjson.OPT_SORT_KEYS).decode(), RECIPE_COLUMN
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
