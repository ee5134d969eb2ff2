"""``idrs import FILE``: load taxpayers from JSON Lines, all or nothing.

Callers: the CLI (``idrs import``) and tests. Streams the file line by line (constant
memory), validates every line (``masterfile.schema``) and writes valid records in batches
inside ONE transaction. After the first bad line nothing more is written, but validation
goes on so that every bad line is reported; then the transaction is rolled back and
``ValidationFailed(["line N: field: reason", ...])`` raised: nothing is stored.

Records one audit entry ``data:import:run`` (counts only, never identities) after the
outcome is known: a successful import is committed first, then recorded; a refused one is
recorded as a failure with the number of bad lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from idrs.access import conflicts
from idrs.audit import log as audit_log
from idrs.audit.events import EventType, make_event
from idrs.context import App
from idrs.errors import IdrsError, ValidationFailed
from idrs.masterfile.schema import LineInvalid, parse_line
from idrs.masterfile.store import MasterFileWriter, WriteStats, lock_for_write

#: problems kept in full; beyond this only the count is reported (a wrong file can be huge)
MAX_PROBLEMS = 10_000


@dataclass
class ImportResult:
    lines: int
    stats: WriteStats
    audit_index: int

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, **self.stats.as_dict(), "audit_index": self.audit_index}


def import_file(
    app: App,
    path: str | Path,
    actor: str,
    progress: Callable[[int], None] | None = None,
    interface: str = "cli",
) -> ImportResult:
    """Import one JSON Lines file as ``actor`` (an operator). See the module docstring.

    ``progress`` is called with the number of bytes consumed since its previous call.
    Raises ValidationFailed (nothing stored) or IdrsError (unreadable file).
    """
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise IdrsError(f"cannot read {path}: {exc.strerror}") from None
    synthetic = app.settings.synthetic_only
    problems: list[str] = []
    bad_lines = 0
    lines = 0
    with fh, app.engine.connect() as conn:
        trans = conn.begin()
        try:
            lock_for_write(conn)
            writer = MasterFileWriter(
                app.keyring, conn, now=app.clock.now(), source="import", actor=actor
            )
            for lineno, raw in enumerate(fh, start=1):
                if progress is not None:
                    progress(len(raw))
                if not raw.strip():
                    continue
                lines += 1
                try:
                    rec = parse_line(raw, lineno, synthetic)
                except LineInvalid as bad:
                    bad_lines += 1
                    if len(problems) < MAX_PROBLEMS:
                        problems.extend(bad.problems)
                    continue
                if not problems:  # after the first bad line: validate only
                    writer.add(rec)
            if not problems:
                writer.flush()
                # Keep the conflict index current in the same transaction: a newly imported
                # joint return blocks at once (issue 3).
                touched = None if writer.touched_overflow else writer.touched
                conflicts.refresh_after_write(conn, app, touched)
        except IntegrityError as exc:
            trans.rollback()
            what = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            raise IdrsError(
                f"import refused by the database ({what}): data posted since the last import "
                "(adjustments) depends on the years being replaced; nothing was stored"
            ) from None
        except BaseException:
            trans.rollback()
            raise
        if problems:
            trans.rollback()
        else:
            trans.commit()
    if problems:
        _record(app, actor, interface, "failure", {"lines": lines, "bad_lines": bad_lines})
        if bad_lines and len(problems) >= MAX_PROBLEMS:
            problems.append(f"… {bad_lines} bad lines in all (first {MAX_PROBLEMS} problems shown)")
        raise ValidationFailed(problems)
    index = _record(app, actor, interface, "success", {"lines": lines, **writer.stats.as_dict()})
    return ImportResult(lines=lines, stats=writer.stats, audit_index=index)


def _record(app: App, actor: str, interface: str, outcome: str, detail: dict[str, int]) -> int:
    entry = make_event(
        EventType.DATA_IMPORT_RUN,
        time=app.clock.now(),
        actor=actor,
        outcome=outcome,
        interface=interface,
        obj={"kind": "import"},
        detail=detail,
    )
    return audit_log.append(app.engine, entry)
