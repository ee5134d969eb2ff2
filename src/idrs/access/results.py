"""Typed results of the access service's changes to the need-to-know bases (issue 12.5):
cases, contacts and declared relationships, as records (:class:`idrs.results.Record`) that
read as the dicts they replaced, in the same key order, so the API, the CLI's ``--json``
(``as_dict()``) and the simulator answer as before."""

from __future__ import annotations

from dataclasses import dataclass

from idrs.results import Record


@dataclass(frozen=True, slots=True)
class CaseChanged(Record):
    """A case assigned (``status`` open) or closed (``status`` closed), and its entry."""

    case_id: str
    #: the employee the case is assigned to
    seid: str
    status: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class ContactOpened(Record):
    """A contact opened: by the intake feed (``origin`` inbound) or declared (walk-in)."""

    contact_id: str
    seid: str
    #: phone, letter or visit
    channel: str
    origin: str
    status: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class ContactClosed(Record):
    """A contact closed, and its entry."""

    contact_id: str
    seid: str
    status: str
    audit_index: int


@dataclass(frozen=True, slots=True)
class RelationshipDeclared(Record):
    """A relationship an employee declared (the account is blocked for them)."""

    seid: str
    kind: str
    audit_index: int
