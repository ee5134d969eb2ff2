"""The research prompt's one input line, parsed (pure: no I/O), and the session's history.

``ENMOD 950-10-0001`` · ``TXMOD 950-10-0001 2023`` · ``TXMOD 950101001 year=2023 case=C-1``
· ``IMFOL 950-10-0001 contact=K-7 reason="caller asked about a refund"`` ·
``NAMES CARTER,ANN OH 45402 reason="caller gave name only"``.

The history is kept in this process's memory only, keyed by a hash of the session token,
shown back only to the same session; it is not a record (the audit log is the record).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime

from idrs.errors import IdrsError
from idrs.vocabulary import CommandCode

_TIN = re.compile(r"^[0-9]{3}-?[0-9]{2}-?[0-9]{4}$")
_YEAR = re.compile(r"^[0-9]{4}$")
_KEYS = ("case", "contact", "reason", "year")
MAX_LINE = 600


class PromptError(IdrsError):
    """The line cannot be understood (nothing was run, nothing recorded)."""

    status_code = 400


@dataclass(frozen=True)
class Command:
    command: str
    tin: str | None = None
    year: int | None = None
    case: str | None = None
    contact: str | None = None
    reason: str | None = None
    name: str | None = None
    place: str | None = None


def _words(line: str) -> list[str]:
    if len(line) > MAX_LINE:
        raise PromptError(f"the line is too long (at most {MAX_LINE} characters)")
    try:
        return shlex.split(line)
    except ValueError:
        raise PromptError("unbalanced quotes in the line") from None


def _split_options(words: list[str]) -> tuple[list[str], dict[str, str]]:
    plain: list[str] = []
    opts: dict[str, str] = {}
    for w in words:
        key, eq, value = w.partition("=")
        if eq and key.lower() in _KEYS:
            if key.lower() in opts:
                raise PromptError(f"{key.lower()}= given twice")
            opts[key.lower()] = value.strip()
        elif eq:
            raise PromptError(f"unknown option {key!r}; use case=, contact=, reason= or year=")
        else:
            plain.append(w)
    return plain, opts


def _year(text: str) -> int:
    if not _YEAR.match(text):
        raise PromptError(f"tax year must be four digits, not {text!r}")
    return int(text)


def parse_line(line: str) -> Command:
    """``COMMAND [TIN] [YEAR] [case=ID] [contact=ID] [reason=TEXT] [year=YYYY]``; PromptError."""
    plain, opts = _split_options(_words(line.strip()))
    if not plain:
        raise PromptError("type a command code and a TIN, e.g. ENMOD 950-10-0001")
    code, rest = plain[0].upper(), plain[1:]
    year = _year(opts["year"]) if "year" in opts else None
    common = {k: (opts.get(k) or None) for k in ("case", "contact", "reason")}
    if code == CommandCode.NAMES:
        if not rest:
            raise PromptError("NAMES needs a last name: NAMES LAST[,FIRST] [ST] [ZIP]")
        return Command(code, None, year, name=rest[0], place=" ".join(rest[1:]) or None, **common)
    if not rest:
        raise PromptError(f"{code} needs a TIN, e.g. {code} 950-10-0001")
    tin = rest[0]
    if not _TIN.match(tin):
        raise PromptError("the TIN must be nine digits, with or without dashes")
    extra = rest[1:]
    if extra:
        if len(extra) > 1 or year is not None:
            raise PromptError("after the TIN only a tax year may follow (or options like case=)")
        year = _year(extra[0])
    return Command(code, tin, year, **common)


@dataclass(frozen=True)
class HistoryItem:
    line: str
    outcome: str  # allowed | refused | error
    audit_index: int | None
    at: datetime


@dataclass
class History:
    """Per-session command history, bounded in sessions and lines (memory only)."""

    per_session: int = 25
    sessions: int = 5000
    _items: OrderedDict[str, deque[HistoryItem]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(("web-history:" + token).encode()).hexdigest()

    def add(self, token: str, item: HistoryItem) -> None:
        k = self.key(token)
        with self._lock:
            q = self._items.pop(k, None) or deque(maxlen=self.per_session)
            q.appendleft(item)
            self._items[k] = q
            while len(self._items) > self.sessions:
                self._items.popitem(last=False)

    def of(self, token: str) -> list[HistoryItem]:
        with self._lock:
            return list(self._items.get(self.key(token), ()))

    def forget(self, token: str) -> None:
        with self._lock:
            self._items.pop(self.key(token), None)
