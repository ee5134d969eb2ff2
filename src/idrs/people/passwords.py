"""Passwords: argon2id hashes (argon2-cffi defaults), random initial passwords.

Callers: people.service (creating employees) and people.auth (signing in). Records nothing.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
# Verified against when the SEID is unknown, so that the answer takes as long as for a real one.
# Made on first use, not at import: hashing costs as much as a sign-in, and every CLI command
# imports this module (its start-up must stay short).
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


class BadPassword(Exception):
    """The password does not match (internal: sign-in turns it into AUTH_FAILED)."""


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(stored_hash: str | None, password: str) -> None:
    """Raise BadPassword unless ``password`` matches ``stored_hash`` (None never matches)."""
    dummy = _dummy_hash()  # made (once) whether or not the SEID exists: no first-call tell
    try:
        _HASHER.verify(stored_hash or dummy, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise BadPassword from None
    if stored_hash is None:
        raise BadPassword


def burn_time(password: str) -> None:
    """Spend the time of one verification (unknown SEID); always 'fails' silently."""
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        _HASHER.verify(_dummy_hash(), password)


def generate_password() -> str:
    """A random initial password (about 128 bits), shown once to the operator."""
    return secrets.token_urlsafe(16)


def use_weak_hashing_for_tests_only() -> None:
    """UNSAFE: switch this process to cheap argon2id parameters. Tests only, never production.

    The hashes are still argon2id and still verified; only the cost drops (1 pass, 1 MiB)
    so that suites creating many employees stay fast. Nothing in src/ calls this.
    """
    global _HASHER, _DUMMY_HASH
    _HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    _DUMMY_HASH = None  # made again, with these parameters, on first use


@contextlib.contextmanager
def weak_hashing_for_simulated_staff_only() -> Iterator[None]:
    """UNSAFE: cheap argon2id parameters for the duration of the block, then the real ones.

    Only ``idrs simulate`` uses it, for simulated employees who never sign in with their
    password (their sessions are opened by the simulator). Never around real employees.
    """
    global _HASHER
    _dummy_hash()  # with the real parameters: unknown SEIDs still cost a real verification
    saved = _HASHER
    _HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    try:
        yield
    finally:
        _HASHER = saved
