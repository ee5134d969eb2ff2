"""Matching a request's records against the master file, in bulk. Reads only.

The rule (docs/interface.md, "Disclosures"):

- a record with a TIN matches exactly the taxpayer with that TIN (blind index); the name
  given must be the name on file (first and last, compared upper-cased with everything but
  letters dropped), else ``name_mismatch``: a TIN is never a key to someone else's record;
- a record without a TIN matches by name *and* address: the taxpayers holding the given
  address (the master file's normalized key, any address on file) whose first and last name
  are the name given. One → ``exact``; none → ``none``; more than one → ``ambiguous``,
  refused, never guessed. A name alone matches nothing.

``address_on_file``: the normalized address given is one the master file holds for the
matched taxpayer (entity history or a return's).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from idrs.context import App
from idrs.masterfile.models import AddressRecord, Taxpayer

CHUNK = 900  # under SQLite's 999 bound parameters
_LETTERS = re.compile(r"[^A-Z]")


def name_key(text: str) -> str:
    return _LETTERS.sub("", (text or "").upper())


@dataclass(frozen=True, slots=True)
class Probe:
    """What matching needs of one record (already validated and classified)."""

    tin: str | None  # normalized, only when valid
    first: str  # name_key
    last: str
    norm_key: str | None  # only when the address is ``given``


@dataclass(frozen=True, slots=True)
class Match:
    status: str  # exact|none|ambiguous|name_mismatch|not_attempted
    taxpayer_id: int | None = None
    address_on_file: bool = False


NOT_ATTEMPTED = Match("not_attempted")


def _chunks(items: Sequence[object]) -> Iterable[Sequence[object]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def match_all(app: App, conn: Connection, probes: Sequence[Probe | None]) -> list[Match]:
    """One :class:`Match` per probe (``None`` probes are not attempted), in order."""
    ring = app.keyring
    by_tin: dict[bytes, list[int]] = defaultdict(list)
    by_addr: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(probes):
        if p is None:
            continue
        if p.tin is not None:
            by_tin[ring.tin_index(p.tin)].append(i)
        elif p.norm_key is not None and p.first and p.last:
            by_addr[p.norm_key].append(i)
    names: dict[int, tuple[str, str]] = {}
    tin_owner: dict[bytes, int] = {}
    tcols = (Taxpayer.id, Taxpayer.tin_index, Taxpayer.first_name, Taxpayer.last_name)
    for chunk in _chunks(list(by_tin)):
        for tid, idx, first, last in conn.execute(
            select(*tcols).where(Taxpayer.tin_index.in_(chunk))
        ):
            tin_owner[bytes(idx)] = tid
            names[tid] = (name_key(first), name_key(last))
    holders: dict[str, set[int]] = defaultdict(set)
    for chunk in _chunks(list(by_addr)):
        for tid, key in conn.execute(
            select(AddressRecord.taxpayer_id, AddressRecord.norm_key).where(
                AddressRecord.norm_key.in_(chunk)
            )
        ):
            holders[key].add(tid)
    missing = sorted({t for ts in holders.values() for t in ts} - names.keys())
    for chunk in _chunks(missing):
        for tid, _idx, first, last in conn.execute(select(*tcols).where(Taxpayer.id.in_(chunk))):
            names[tid] = (name_key(first), name_key(last))
    # the addresses on file of every TIN-matched taxpayer
    on_file: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(set(tin_owner.values()))):
        for tid, key in conn.execute(
            select(AddressRecord.taxpayer_id, AddressRecord.norm_key).where(
                AddressRecord.taxpayer_id.in_(chunk)
            )
        ):
            on_file[tid].add(key)
    out: list[Match] = [NOT_ATTEMPTED] * len(probes)
    for idx, lines in by_tin.items():
        owner = tin_owner.get(idx)
        for i in lines:
            p = probes[i]
            assert p is not None
            if owner is None:
                out[i] = Match("none")
            elif names[owner] != (p.first, p.last):
                out[i] = Match("name_mismatch", owner)
            else:
                out[i] = Match("exact", owner, p.norm_key is not None and p.norm_key in on_file[owner])
    for key, lines in by_addr.items():
        for i in lines:
            p = probes[i]
            assert p is not None
            found = sorted(t for t in holders.get(key, ()) if names.get(t) == (p.first, p.last))
            if not found:
                out[i] = Match("none")
            elif len(found) > 1:
                out[i] = Match("ambiguous")
            else:
                out[i] = Match("exact", found[0], True)
    return out  # a name without a TIN or a usable address stays not_attempted
