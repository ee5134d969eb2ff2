"""Audit event types (``scope:resource:action``, alphabetized) and the entry builder.

An entry never holds a plaintext TIN, name, address or bank number: taxpayers appear as
the keyed pseudonym from ``Keyring.pseudonym``.

Every entry names a real actor and its origin address. An HTTP request's address is set
once per request by the hardening middleware (:func:`request_address`), so an entry made
anywhere while answering it carries the client's address even where a service was not
handed it; outside a request (the command line, the seed, the system's own work) the
origin is :data:`LOCAL_ORIGIN`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias


class AuditEvent(StrEnum):
    """The one base of every audit event type (``scope:resource:action``).

    It has no members of its own: each package that records entries keeps its family of
    event types as a subclass (``EventType`` here, ``DetectionEvent``, ``GrantEvent``,
    ``NoticeEvent``, ``RecordEvent``), the way pypi's warehouse keeps its event tags, so an
    entry's type is always an ``AuditEvent`` and the audit package depends on none of them.
    Every value is unique across the families (tests/unit/test_vocabulary.py).
    """


class EventType(AuditEvent):
    ACCESS_ADJUSTMENT_DECIDE = "access:adjustment:decide"
    ACCESS_BASIS_DENY = "access:basis:deny"
    ACCESS_EXPLAIN = "access:explain:run"
    ACCESS_INDEX_REBUILD = "system:conflict-index:rebuild"
    ACCESS_RESEARCH_DECIDE = "access:research:decide"
    ACCESS_RESEARCH_THROTTLE = "access:research:throttle"
    ACCESS_SELF_REPORT = "access:research:self-report"
    ADMIN_CASE_ASSIGN = "admin:case:assign"
    ADMIN_CASE_CLOSE = "admin:case:close"
    ADMIN_CONTACT_CLOSE = "admin:contact:close"
    ADMIN_CONTACT_OPEN = "admin:contact:open"
    ADMIN_EMPLOYEE_CREATE = "admin:employee:create"
    ADMIN_EMPLOYEE_DEACTIVATE = "admin:employee:deactivate"
    ADMIN_EMPLOYEE_REACTIVATE = "admin:employee:reactivate"
    ADMIN_EMPLOYEE_UNLOCK = "admin:employee:unlock"
    ADMIN_EMPLOYEE_UPDATE = "admin:employee:update"
    ADMIN_PROFILE_CHANGE_CONFIRM = "admin:profile-change:confirm"
    ADMIN_PROFILE_CHANGE_EXPIRE = "admin:profile-change:expire"
    ADMIN_PROFILE_CHANGE_REJECT = "admin:profile-change:reject"
    ADMIN_PROFILE_CHANGE_REQUEST = "admin:profile-change:request"
    ADMIN_RELATIONSHIP_DECLARE = "admin:relationship:declare"
    ADMIN_SYSTEM_CREATE = "admin:system:create"
    ADMIN_SYSTEM_ROTATE = "admin:system:rotate"
    ADMIN_UNIT_CEILING = "admin:unit:ceiling"
    ADMIN_UNIT_CREATE = "admin:unit:create"
    AUDIT_ANSWER_OPEN = "audit:answer:open"
    AUDIT_ENTRIES_READ = "audit:entries:read"
    AUDIT_LOG_EXPORT = "audit:log:export"
    AUDIT_LOG_VERIFY = "audit:log:verify"
    AUDIT_WITNESS_ADD = "audit:witness:add"
    AUTH_SESSION_END = "auth:session:end"
    AUTH_SESSION_EXPIRE = "auth:session:expire"
    AUTH_SIGNIN_FAILURE = "auth:signin:failure"
    AUTH_SIGNIN_LOCKOUT = "auth:signin:lockout"
    AUTH_SIGNIN_SUCCESS = "auth:signin:success"
    AUTH_SYSTEM_DENY = "auth:system:deny"
    AUTH_SYSTEM_FAILURE = "auth:system:failure"
    AUTH_SYSTEM_SUCCESS = "auth:system:success"
    DATA_IMPORT_RUN = "data:import:run"
    DATA_SEED_RUN = "data:seed:run"
    SYSTEM_KEYS_ROTATE = "system:keys:rotate"
    SYSTEM_POLICY_CHANGE = "system:policy:change"
    SYSTEM_SCHEMA_INIT = "system:schema:init"
    SYSTEM_THROTTLE_BURST = "system:throttle:burst"


#: every event type an entry may have: the shared ones and each package's own family
AuditEventType: TypeAlias = AuditEvent

@dataclass(frozen=True)
class Actor:
    """Who acts, through which interface and from where: every service that records takes one.

    ``seid``: the SEID of a signed-in employee or machine principal, or ``os:<user>`` for an
    operator at the command line. ``address``: the client's address (None: the request's, else
    this host, see :func:`origin_address`).
    """

    seid: str
    interface: str = "cli"
    address: str | None = None


#: the origin address of entries made outside any HTTP request: this host
LOCAL_ORIGIN = "local"
#: the origin address of an HTTP request whose peer the server did not see (a Unix socket)
UNKNOWN_PEER = "unknown"

_request_address: ContextVar[str | None] = ContextVar("idrs_request_address", default=None)


@contextlib.contextmanager
def request_address(address: str | None) -> Iterator[None]:
    """While answering one HTTP request: entries without an explicit address get this one."""
    token = _request_address.set(address or UNKNOWN_PEER)
    try:
        yield
    finally:
        _request_address.reset(token)


def origin_address(address: str | None = None) -> str:
    """The address an entry records: the one given, else the request's, else this host."""
    return address or _request_address.get() or LOCAL_ORIGIN


def make_event(
    event_type: AuditEventType,
    *,
    time: datetime,
    actor: str,
    outcome: str,
    interface: str,
    address: str | None = None,
    obj: dict[str, Any] | None = None,
    reasons: list[str] | None = None,
    policy: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit entry: time, actor, event type, outcome, origin, object (+ reasons, policy).

    An entry without an actor is a programming error and is never written (ValueError).
    """
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError(f"an audit entry needs an actor ({event_type})")
    entry: dict[str, Any] = {
        "v": 1,
        "time": time.isoformat(timespec="microseconds"),
        "type": str(event_type),
        "actor": actor,
        "outcome": outcome,
        "origin": {"interface": interface, "address": origin_address(address)},
        "object": obj or {},
    }
    if reasons is not None:
        entry["reasons"] = reasons
    if policy is not None:
        entry["policy"] = policy
    if detail:
        entry["detail"] = detail
    return entry


def canonical(entry: dict[str, Any]) -> bytes:
    """The leaf_input bytes: UTF-8 JSON, sorted keys, no spaces (docs/interface.md)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
