"""The research trail: which allowed research each sign-in session ran (prerequisite rule).

``ENMOD`` of a TIN must precede ``ENREQ`` on it, and ``TXMOD`` of a year must precede
``ADJ54``/``REQ77`` on that module, by the same employee in the same sign-in session. The
research service records each ALLOWED research here (:func:`note` or
:func:`record_research`); the adjustment service reads it (:func:`prerequisite`).

Each row also keeps the version of what was seen (the module version for TXMOD, the entity
version for ENMOD): an adjustment that states no ``base_version`` is based on that version,
so a change made by someone else after the research is a conflict, never overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from idrs.context import App
from idrs.crypto import sha256_hex
from idrs.db import db_datetime
from idrs.identifiers import normalize_tin
from idrs.vocabulary import CommandCode

C = CommandCode
#: the research that must precede each adjustment command
PREREQUISITE: dict[str, CommandCode] = {C.ENREQ: C.ENMOD, C.ADJ54: C.TXMOD, C.REQ77: C.TXMOD}

_VERSION_SQL: dict[str, str] = {
    C.TXMOD: "(SELECT m.version FROM tax_module m JOIN taxpayer t ON t.id = m.taxpayer_id"
             " WHERE t.tin_index = :t AND m.tax_year = :y)",
    C.ENMOD: "(SELECT COALESCE((SELECT v.version FROM entity_version v JOIN taxpayer t"
             " ON t.id = v.taxpayer_id WHERE t.tin_index = :t), 0))",
}


def _insert_sql(command: str) -> str:
    version = _VERSION_SQL.get(command, "NULL")
    return ("INSERT INTO research_trail (signin_session_id, employee_id, tin_index, command,"
            f" tax_year, version_seen, at) SELECT :s, :e, :t, :c, :y, {version}, :at")


def record_research(session: Session, *, signin_session_id: int, employee_id: int,
                    tin_index: bytes, command: str, tax_year: int | None,
                    at: datetime) -> None:
    """Record one ALLOWED research call in the caller's transaction (one INSERT…SELECT).

    Callers: the research service, after an allowed decision for a taxpayer that exists.
    Records nothing in the audit log (the research entry already names the call).
    """
    session.execute(text(_insert_sql(command)), {
        "s": signin_session_id, "e": employee_id, "t": tin_index, "c": command,
        "y": tax_year, "at": db_datetime(session.get_bind().dialect.name, at),
    })


def research_write(dialect: str, *, signin_session_id: int, employee_id: int,
                   tin_index: bytes, command: str, tax_year: int | None,
                   at: datetime) -> tuple[str, dict[str, Any]]:
    """:func:`record_research` as a write for the audit append's transaction
    (``log.append(also=)``): the research service chains an allowed research to its sign-in
    session in the same commit as the research's audit entry."""
    return _insert_sql(command), {
        "s": signin_session_id, "e": employee_id, "t": tin_index, "c": command,
        "y": tax_year, "at": db_datetime(dialect, at),
    }


def note(app: App, *, token: str | None, employee_id: int, tin: str, command: str,
         year: int | None) -> None:
    """Record an allowed research call of the session behind ``token`` (own short transaction).

    The one call the research service adds after an allowed, found research (see the
    adjustments README section in docs). Never raises for a missing session (then there is
    nothing to chain an adjustment to).
    """
    if not token:
        return
    with app.engine.begin() as conn:
        note_on(conn, app, token=token, employee_id=employee_id,
                tin_index=app.keyring.tin_index(normalize_tin(tin)), command=command, year=year)


def note_on(conn: Connection | Session, app: App, *, token: str, employee_id: int,
            tin_index: bytes, command: str, year: int | None) -> None:
    """:func:`note` inside the caller's transaction (the research service batches it)."""
    # One INSERT ... SELECT statement: on SQLite it takes the write lock at its start (no
    # read-then-upgrade race); an unknown token simply inserts nothing.
    sql = _insert_sql(command).replace(":s, ", "s.id, ") + " FROM signin_session s WHERE s.token_hash = :h"
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    conn.execute(text(sql), {
        "h": sha256_hex(token), "e": employee_id, "t": tin_index, "c": command, "y": year,
        "at": db_datetime(dialect, app.clock.now()),
    })


def prerequisite(session: Session, *, signin_session_id: int, employee_id: int,
                 tin_index: bytes, command: str, tax_year: int | None) -> tuple[bool, int | None]:
    """``(found, version_seen)`` of the latest prerequisite research for an adjustment."""
    need = PREREQUISITE[command]
    sql = ("SELECT version_seen FROM research_trail WHERE signin_session_id = :s"
           " AND tin_index = :t AND command = :c AND employee_id = :e")
    params: dict[str, Any] = {"s": signin_session_id, "t": tin_index, "c": need, "e": employee_id}
    if need == C.TXMOD:
        sql += " AND tax_year = :y"
        params["y"] = tax_year
    row = session.execute(text(sql + " ORDER BY id DESC LIMIT 1"), params).first()
    return (row is not None, None if row is None else row[0])
