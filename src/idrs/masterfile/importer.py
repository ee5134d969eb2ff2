"""``idrs import FILE``: load taxpayers from JSON Lines, all or nothing.

Callers: the CLI (``idrs import``) and tests. Streams the file line by line (constant
memory), validates every line (``masterfile.schema``) and writes valid records in batches
inside ONE transaction. After the first bad line nothing more is written, but validation
goes on so that every bad line is reported; then the transaction is rolled back and
``ValidationFailed(["line N: field: reason", ...])`` raised: nothing is stored.

Records one audit entry ``data:import:run`` (counts only, never identities) after the
outcome is known: a successful import is committed first, then recorded; a refused one is
recorded as a failure with the number of bad lines.

Worker processes (``workers`` > 1): blocks of ``BLOCK_LINES`` lines go to a pool of worker
processes (spawned: no connection or key is shared; they get only the bytes of the lines)
while this process writes, in file order, on its ONE connection and transaction. At most
``2 × workers`` blocks are in flight, so memory stays bounded. All or nothing and the
reported problems are exactly those of a serial run.

- PostgreSQL (``importer_pg``): a worker validates its block AND builds its rows (blind
  indexes, encryption, addresses) encoded for COPY; this process checks the block against
  the database and sends one COPY a table. A block naming a TIN already stored (re-import)
  or twice is written by this process as a serial run writes it.
- SQLite: workers only validate; this process builds and inserts the rows. Handing the
  validated records back costs this process about as much CPU as validating them itself
  (bench_pgscale), so there workers only help where the writer is short of a core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from idrs.access import conflicts
from idrs.audit import log as audit_log
from idrs.audit.events import Actor, EventType
from idrs.context import App
from idrs.errors import IdrsError, ValidationFailed
from idrs.masterfile.schema import LineInvalid, TaxpayerIn, parse_line
from idrs.masterfile.store import MasterFileWriter, WriteStats, lock_for_write

#: problems kept in full; beyond this only the count is reported (a wrong file can be huge)
MAX_PROBLEMS = 10_000
#: lines per block handed to a validation worker
BLOCK_LINES = 1000

#: smaller files are imported by one process (starting workers costs about a second)
PARALLEL_MIN_BYTES = 8 * 2**20

#: one line's outcome: (line number, the record) or (line number, its problems)
_Parsed = tuple[int, TaxpayerIn | list[str]]


def _validate_block(block: list[tuple[int, bytes]], synthetic: bool) -> list[_Parsed]:
    """Validate lines in a worker process (picklable results only)."""
    out: list[_Parsed] = []
    for lineno, raw in block:
        try:
            out.append((lineno, parse_line(raw, lineno, synthetic)))
        except LineInvalid as bad:
            out.append((lineno, bad.problems))
    return out


def _blocks(fh: Any, progress: Callable[[int], None] | None) -> Iterator[list[tuple[int, bytes]]]:
    block: list[tuple[int, bytes]] = []
    for lineno, raw in enumerate(fh, start=1):
        if progress is not None:
            progress(len(raw))
        if not raw.strip():
            continue
        block.append((lineno, raw))
        if len(block) >= BLOCK_LINES:
            yield block
            block = []
    if block:
        yield block


def _parsed(
    fh: Any, synthetic: bool, workers: int, progress: Callable[[int], None] | None
) -> Iterator[_Parsed]:
    """Every non-blank line's outcome in file order, validated here or by ``workers`` processes."""
    if workers <= 1:
        for block in _blocks(fh, progress):
            yield from _validate_block(block, synthetic)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        window: deque[Future[list[_Parsed]]] = deque()
        try:
            for block in _blocks(fh, progress):
                window.append(pool.submit(_validate_block, block, synthetic))
                if len(window) >= 2 * workers:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:
            for f in window:
                f.cancel()


def _import_prepared(
    app: App,
    writer: MasterFileWriter,
    fh: Any,
    workers: int,
    progress: Callable[[int], None] | None,
    problems: list[str],
) -> tuple[int, int]:
    """PostgreSQL with workers: blocks prepared by ``importer_pg`` workers, written here in
    file order (one COPY a table a block); ``problems`` filled as a serial run fills it.
    Returns (lines, bad lines)."""
    import multiprocessing

    from idrs.masterfile import importer_pg as pg

    synthetic = app.settings.synthetic_only
    setup = pg.WorkerSetup(
        url=app.engine.url.render_as_string(hide_password=False),
        home=str(app.settings.home),
        now=app.clock.now(),
        actor=writer.actor,
        synthetic=synthetic,
    )
    lines = bad_lines = 0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=pg.init_worker, initargs=(setup,)
    ) as pool:
        window: deque[tuple[list[tuple[int, bytes]], Future[pg.Prepared]]] = deque()

        def take() -> None:
            nonlocal lines, bad_lines
            block, fut = window.popleft()
            try:
                out = fut.result()
            except Exception as exc:  # a worker that failed or died: the import fails whole
                from idrs.masterfile.seed.parallel import _describe

                raise IdrsError(
                    f"import worker failed ({_describe(exc)}); nothing was stored"
                ) from None
            lines += out.lines
            if out.problems:
                bad_lines += len(out.problems)
                for found in out.problems:
                    if len(problems) < MAX_PROBLEMS:
                        problems.extend(found)
                return
            if problems:
                return  # after the first bad line: validate only
            if out.fast and not pg.existing(writer, out.tins):
                pg.write_prepared(writer, out)
                return
            # a re-import or a TIN twice in the block: this process, as a serial run does
            for lineno, raw in block:
                writer.add(parse_line(raw, lineno, synthetic))
            writer.flush()

        try:
            for block in _blocks(fh, progress):
                window.append((block, pool.submit(pg.prepare_block, block, bool(problems))))
                if len(window) >= 2 * workers:
                    take()
            while window:
                take()
        finally:
            for _b, f in window:
                f.cancel()
    return lines, bad_lines


def _touched(conn: Any, writer: MasterFileWriter) -> set[bytes] | None:
    """The taxpayers whose conflicts to refresh, or None: every employee's.

    Walking from each imported taxpayer costs several queries a taxpayer (household, bank,
    business links, relatives); recomputing an employee costs about as many. Where there are
    fewer employees than a quarter of the taxpayers written (a bulk import; none at all on a
    fresh database), recomputing every employee is cheaper and gives the same index.
    """
    if writer.touched_overflow:
        return None
    employees = conn.exec_driver_sql("SELECT count(*) FROM employee").scalar_one()
    return None if employees * 4 <= len(writer.touched) else writer.touched


def default_workers(app: App, path: str | Path) -> int:
    """Workers when none are asked for: on PostgreSQL, for a file of ``PARALLEL_MIN_BYTES``
    or more, one a core (2 to 4); else 1 (SQLite: one writer; small files: not worth it)."""
    import os

    if app.engine.dialect.name != "postgresql":
        return 1
    try:
        size = Path(path).stat().st_size
    except OSError:
        return 1  # import_file reports the unreadable file
    if size < PARALLEL_MIN_BYTES:
        return 1
    return max(2, min(4, os.cpu_count() or 1))


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
    workers: int = 1,
) -> ImportResult:
    """Import one JSON Lines file as ``actor`` (an operator). See the module docstring.

    ``progress`` is called with the number of bytes consumed since its previous call.
    ``workers``: validation processes (1: validate in this process).
    Raises ValidationFailed (nothing stored) or IdrsError (unreadable file).
    """
    path = Path(path)
    if workers < 1:
        raise IdrsError("--workers must be at least 1")
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
            if workers > 1 and conn.dialect.name == "postgresql":
                lines, bad_lines = _import_prepared(app, writer, fh, workers, progress, problems)
            else:
                for _lineno, rec in _parsed(fh, synthetic, workers, progress):
                    lines += 1
                    if isinstance(rec, list):
                        bad_lines += 1
                        if len(problems) < MAX_PROBLEMS:
                            problems.extend(rec)
                        continue
                    if not problems:  # after the first bad line: validate only
                        writer.add(rec)
            if not problems:
                writer.flush()
                # Keep the conflict index current in the same transaction: a newly imported
                # joint return blocks at once (issue 3).
                conflicts.refresh_after_write(conn, app, _touched(conn, writer))
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
    return audit_log.record(app, EventType.DATA_IMPORT_RUN, Actor(actor, interface),
                            {"kind": "import"}, detail, outcome=outcome)
