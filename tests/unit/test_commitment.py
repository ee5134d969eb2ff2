"""The canonical form of answers is RFC 8785 exactly: the fast path agrees with ``rfc8785``."""

from __future__ import annotations

import enum
import hashlib
import uuid

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from idrs.audit import commitment


class _Kind(enum.StrEnum):
    A = "a"


class _Level(enum.IntEnum):
    HIGH = 3


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_docs = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def _reference(doc: object) -> bytes | type[BaseException]:
    try:
        return rfc8785.dumps(doc)
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(_docs)
def test_canonical_is_rfc8785_on_arbitrary_documents(doc: object) -> None:
    want = _reference(doc)
    if isinstance(want, bytes):
        assert commitment.canonical(doc) == want
    else:
        with pytest.raises((TypeError, ValueError)):
            commitment.canonical(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"b": 1, "a": [True, None, 'x\u2028\x7f\x00\x1f"\\']},
        {"\ue000": 1, "\U0001f600": 2, "z": 3},  # UTF-16 order differs from code points
        {"n": 2**53 - 1, "m": -(2**53) + 1, "f": 50.0, "g": 1e21, "h": -0.0, "i": 5e-324},
        {"amount": "4100.00", "time": "2025-04-15T12:00:00+00:00", "ok": False},
        [0.5, 1, 1234567890123456],  # a float first in a list; a long integer after ","
        {"x": [1, -2.5e-7], "y": [10, 1e+16]},  # after ","; signed exponents
        {"s": "a:1.5,2e+3[9.0", "t": "1234567890123456"},  # the shapes inside strings
        {"t": (1, "a"), "n": 2**53 - 1, "m": -(2**53 - 1)},  # a tuple; the largest integers
        {"k": _Kind.A, "i": _Level.HIGH},  # str and int subclasses (the reference decides)
        {"deep": [[[{"x": [None, 0.1]}]]]},  # a float deep inside
        {"\u00e9": 1, "e": 2, "\u20ac": {"\ud7ff": 3, "\u0080": None}},  # keys below U+E000
    ],
)
def test_canonical_edge_cases(doc: object) -> None:
    assert commitment.canonical(doc) == _reference(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"n": 2**53 + 1},
        {"n": 2**53},
        [float("nan")],
        ["\ud800"],
        # orjson alone would write these (NaN as null, a UUID as a string): never the fast path
        {"a": None, "b": {"c": [float("nan")]}},
        {"inf": float("inf")},
        {"id": uuid.UUID(int=7)},
        {1: "a non-string key"},
    ],
)
def test_what_rfc8785_refuses_is_refused(doc: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        rfc8785.dumps(doc)
    with pytest.raises((TypeError, ValueError)):
        commitment.canonical(doc)


def test_digest_is_sha256_of_salt_then_jcs() -> None:
    salt = bytes(range(32))
    doc = {"command": "ENMOD", "data": {"tin": "***-**-3456"}, "masked": ["tin"], "withheld": []}
    assert commitment.digest(salt, doc) == hashlib.sha256(salt + rfc8785.dumps(doc)).hexdigest()
    a, b = commitment.commit(doc, {}), commitment.commit(doc, {})
    assert a.salt != b.salt and a.hex != b.hex and len(a.salt) == 32
