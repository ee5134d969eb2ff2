"""Posting an adjustment: the version check and the new rows, inside the caller's transaction.

Nothing here edits or deletes a posted row: a transaction, an entity address and a name are
each a new dated row; a reversal is a new row pointing at what it reverses. The taxpayer's
current-name columns are updated together with a new ``taxpayer_name_history`` row (the
history keeps every earlier name).

Callers: the adjustment service only (``adjustments.request``, ``approval``, ``reversal``),
inside one :class:`~idrs.adjustments.tx.Tx`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from idrs.adjustments import rules
from idrs.adjustments.tx import INTEGRITY_ERRORS, Tx
from idrs.crypto import Keyring
from idrs.errors import Conflict
from idrs.masterfile.addresses import keys
from idrs.masterfile.store import name_control
from idrs.vocabulary import CommandCode

PAYLOAD_COLUMN = "adjustment_request.payload"


class VersionConflict(Conflict):
    """The module or entity changed since the version the change was based on (HTTP 409)."""

    audit_index: int | None = None

    def __init__(self, what: str, base: int, current: int | None,
                 audit_index: int | None = None) -> None:
        self.base = base
        self.current = current
        self.audit_index = audit_index
        now = "unknown" if current is None else str(current)
        super().__init__(f"conflict: the {what} changed since version {base} (now {now}); "
                         "research it again and resubmit")


@dataclass(frozen=True)
class Target:
    """What a change applies to, as the service looked it up."""

    taxpayer_id: int
    module_id: int | None
    tax_year: int | None


def bump_module(tx: Tx, module_id: int, base: int) -> int:
    """``UPDATE tax_module SET version=version+1 WHERE id=? AND version=?``; VersionConflict on 0 rows."""
    n = tx.execute("UPDATE tax_module SET version = version + 1 WHERE id = ? AND version = ?",
                   (module_id, base))
    if n != 1:
        row = tx.one("SELECT version FROM tax_module WHERE id = ?", (module_id,))
        raise VersionConflict("tax module", base, None if row is None else int(row[0]))
    return base + 1


def bump_entity(tx: Tx, taxpayer_id: int, base: int) -> int:
    """The same for the entity (``entity_version``; an absent row is version 0)."""
    n = tx.execute("UPDATE entity_version SET version = version + 1"
                   " WHERE taxpayer_id = ? AND version = ?", (taxpayer_id, base))
    if n == 1:
        return base + 1
    row = tx.one("SELECT version FROM entity_version WHERE taxpayer_id = ?", (taxpayer_id,))
    current = 0 if row is None else int(row[0])
    if row is None and base == 0:
        try:
            tx.execute("INSERT INTO entity_version (taxpayer_id, version) VALUES (?, 1)",
                       (taxpayer_id,))
        except INTEGRITY_ERRORS:
            raise VersionConflict("entity", base, None) from None
        return 1
    raise VersionConflict("entity", base, current)


def check_version(tx: Tx, target: Target, command: str, base: int) -> None:
    """For a request left pending: refuse at once if its base is already stale."""
    current: int | None  # None: the tax module is gone
    if command == CommandCode.ENREQ:
        row = tx.one("SELECT version FROM entity_version WHERE taxpayer_id = ?",
                     (target.taxpayer_id,))
        current = 0 if row is None else int(row[0])
        what = "entity"
    else:
        row = tx.one("SELECT version FROM tax_module WHERE id = ?", (target.module_id,))
        current = None if row is None else int(row[0])
        what = "tax module"
    if current != base:
        raise VersionConflict(what, base, current)


def post_txn(tx: Tx, *, module_id: int, tc: str, when: date, amount_cents: int,
             action_code: str | None, now: datetime, seid: str,
             reverses_id: int | None = None) -> int:
    return tx.insert("txn", {
        "module_id": module_id, "tc": tc, "txn_date": when, "amount_cents": amount_cents,
        "action_code": action_code, "source": "adjustment", "posted_at": now, "posted_by": seid,
        "reverses_id": reverses_id,
    })


def post_address(tx: Tx, taxpayer_id: int, addr: dict[str, str], when: date) -> int:
    norm, street = keys(addr["street"], addr["city"], addr["state"], addr["zip"])
    return tx.insert("address_record", {
        "taxpayer_id": taxpayer_id, "tax_year": None, "source": "entity",
        "street": addr["street"], "city": addr["city"], "state": addr["state"],
        "zip": addr["zip"], "norm_key": norm, "street_key": street, "valid_from": when,
    })


def post_name(tx: Tx, taxpayer_id: int, name: dict[str, str], when: date, now: datetime,
              adjustment_id: int, source: str) -> int:
    """A new name: keep the current one in the history first (once), then switch to ``name``."""
    has = tx.one("SELECT 1 FROM taxpayer_name_history WHERE taxpayer_id = ? LIMIT 1",
                 (taxpayer_id,))
    if has is None:
        cur = tx.one("SELECT first_name, middle_name, last_name, suffix, name_control, created_at"
                     " FROM taxpayer WHERE id = ?", (taxpayer_id,))
        created = cur[5]
        created_day = created.date() if isinstance(created, datetime) else date.fromisoformat(
            str(created)[:10])
        tx.insert("taxpayer_name_history", {
            "taxpayer_id": taxpayer_id, "first_name": cur[0], "middle_name": cur[1],
            "last_name": cur[2], "suffix": cur[3], "name_control": cur[4],
            "valid_from": created_day, "recorded_at": created if tx.pg else str(created),
            "source": "original", "adjustment_id": None,
        })
    control = name_control(name["last"])
    tx.execute("UPDATE taxpayer SET first_name = ?, middle_name = ?, last_name = ?, suffix = ?,"
               " name_control = ?, updated_at = ? WHERE id = ?",
               (name["first"], name.get("middle", ""), name["last"], name.get("suffix", ""),
                control, tx.p(now), taxpayer_id))
    return tx.insert("taxpayer_name_history", {
        "taxpayer_id": taxpayer_id, "first_name": name["first"],
        "middle_name": name.get("middle", ""), "last_name": name["last"],
        "suffix": name.get("suffix", ""), "name_control": control, "valid_from": when,
        "recorded_at": now, "source": source, "adjustment_id": adjustment_id,
    })


def posting(tx: Tx, *, adjustment_id: int, taxpayer_id: int, kind: str, now: datetime,
            seid: str, approver: str | None, case_id: str | None, **ref: int | None) -> int:
    return tx.insert("adjustment_posting", {
        "adjustment_id": adjustment_id, "taxpayer_id": taxpayer_id, "kind": kind,
        "txn_id": ref.get("txn_id"), "address_record_id": ref.get("address_record_id"),
        "name_history_id": ref.get("name_history_id"), "posted_at": now, "posted_by": seid,
        "approved_by": approver, "case_id": case_id,
    })


def encrypt_payload(keyring: Keyring, identity: dict[str, Any]) -> bytes | None:
    """The new name/address, encrypted (taxpayer identity is never stored in clear here)."""
    if not identity:
        return None
    return keyring.encrypt(json.dumps(identity, sort_keys=True), PAYLOAD_COLUMN)


def decrypt_payload(keyring: Keyring, blob: bytes | None) -> dict[str, Any]:
    if blob is None:
        return {}
    return json.loads(keyring.decrypt(bytes(blob), PAYLOAD_COLUMN))  # type: ignore[no-any-return]


def apply_txn_pg(tx: Tx, row: dict[str, Any], target: Target, base: int, now: datetime,
                 seid: str, case: str | None, sid: int, employee_id: int,
                 tin_index: bytes) -> tuple[int, int]:
    """PostgreSQL: an ADJ54/REQ77 change applied in ONE statement (data-modifying CTEs).

    The version bump gates everything: when ``version = base`` does not hold, no row is
    written and VersionConflict is raised. Returns (adjustment id, new version).
    """
    row = {**row, "decided_at": now}
    # NULL columns are left out: in INSERT ... SELECT an untyped NULL parameter would be text
    cols = [c for c in row if c != "applied_version" and row[c] is not None]
    values = [tx.p(row[c]) for c in cols]
    sql = (  # column names are ours, values are parameters
        "WITH bump AS (UPDATE tax_module SET version = version + 1"  # noqa: S608
        " WHERE id = %s AND version = %s RETURNING version),"
        " req AS (INSERT INTO adjustment_request (" + ", ".join(cols) + ", applied_version)"
        " SELECT " + ", ".join(["%s"] * len(cols)) + ", bump.version FROM bump RETURNING id),"
        " t AS (INSERT INTO txn (module_id, tc, txn_date, amount_cents, action_code, source,"
        " posted_at, posted_by) SELECT %s, %s, %s, %s, %s, 'adjustment', %s, %s FROM bump"
        " RETURNING id),"
        " p AS (INSERT INTO adjustment_posting (adjustment_id, taxpayer_id, kind, txn_id,"
        " posted_at, posted_by, case_id) SELECT req.id, %s, 'txn', t.id, %s, %s, %s"
        " FROM req, t),"
        " tr AS (UPDATE research_trail SET version_seen = (SELECT version FROM bump)"
        " WHERE EXISTS (SELECT 1 FROM bump) AND id = (SELECT MAX(id) FROM research_trail"
        " WHERE signin_session_id = %s AND employee_id = %s AND tin_index = %s"
        " AND command = 'TXMOD' AND tax_year = %s))"
        " SELECT (SELECT id FROM req), (SELECT version FROM bump)"
    )
    params = [target.module_id, base, *values, target.module_id, row["tc"],
              row["effective_date"], row["amount_cents"] or 0, row["action_code"], now, seid,
              target.taxpayer_id, now, seid, case, sid, employee_id, tin_index, target.tax_year]
    cur = tx.conn.cursor()
    try:
        cur.execute(sql, params)
        adj_id, version = cur.fetchone()
    finally:
        cur.close()
    if adj_id is None:
        got = tx.one("SELECT version FROM tax_module WHERE id = ?", (target.module_id,))
        raise VersionConflict("tax module", base, None if got is None else int(got[0]))
    return int(adj_id), int(version)


def bump_version(tx: Tx, change: rules.Change, target: Target, base: int) -> int:
    """The optimistic-concurrency step: the new version, or VersionConflict on a stale base."""
    if change.command == CommandCode.ENREQ:
        return bump_entity(tx, target.taxpayer_id, base)
    return bump_module(tx, target.module_id, base)  # type: ignore[arg-type]


def post_change(tx: Tx, adj_id: int, change: rules.Change, target: Target, now: datetime,
                seid: str, approver: str | None, case: str | None,
                reversal: dict[str, Any] | None) -> None:
    """Write the postings of an applied change (after :func:`bump_version`)."""
    common = dict(adjustment_id=adj_id, taxpayer_id=target.taxpayer_id, now=now, seid=seid,
                  approver=approver, case_id=case)
    if change.command == CommandCode.ENREQ:
        if change.address is not None:
            rid = post_address(tx, target.taxpayer_id, change.address, change.effective_date)
            posting(tx, kind="address", address_record_id=rid, **common)  # type: ignore[arg-type]
        if change.name is not None:
            hid = post_name(tx, target.taxpayer_id, change.name, change.effective_date, now,
                            adj_id, "reversal" if reversal else "adjustment")
            posting(tx, kind="name", name_history_id=hid, **common)  # type: ignore[arg-type]
        return
    if reversal is not None:
        for txn_id, tc, amount, action in reversal["txns"]:
            tid = post_txn(tx, module_id=target.module_id, tc=rules.REVERSING_TC[tc],  # type: ignore[arg-type]
                           when=change.effective_date, amount_cents=amount,
                           action_code=action, now=now, seid=seid, reverses_id=txn_id)
            posting(tx, kind="txn", txn_id=tid, **common)  # type: ignore[arg-type]
        return
    tid = post_txn(tx, module_id=target.module_id, tc=change.tc,  # type: ignore[arg-type]
                   when=change.effective_date, amount_cents=change.amount_cents or 0,
                   action_code=change.action_code, now=now, seid=seid)
    posting(tx, kind="txn", txn_id=tid, **common)  # type: ignore[arg-type]
