"""The seed's bulk load on PostgreSQL by several worker processes (``--workers N``).

Same seed, same rows as the serial load (``load.py``), whatever the number of workers:

1. **Survey** (workers in parallel): every household of the population is generated once,
   without writing, to learn how many people, returns and tax modules it holds, whether its
   head is an employee candidate, and the businesses it names (first occurrence first).
   Household ``h`` draws from ``random.Random(seed, h)`` only, so a worker can start at any
   household; only the people's numbers (``tin_for(seed, i)``) run across households, and
   the survey gives every block its first person number.
2. **Plan** (this process): the households are cut into one contiguous block a worker,
   with about the same number of people each. The last block runs to the end of the
   population (its last households are the ones shortened by ``remaining``). The primary
   keys are reserved from each table's sequence in one contiguous range, and each block
   gets the part the serial load would have given it, so ids, like data, do not depend on
   the number of workers. Every business the blocks name (shared between blocks: employers,
   banks, sole proprietors employing their neighbours) is written by this process, in the
   serial order, so no two workers ever insert the same business.
3. **Write** (workers in parallel): each worker generates its block again, with the right
   person numbers, and writes it with ``MasterFileWriter`` (COPY) in ONE transaction on its
   own connection, then reports ``ready`` and waits. Only when every worker is ready does
   this process commit its businesses and tell every worker to commit; if any worker fails
   (an existing TIN, a database error, a crash), every transaction is rolled back and the
   seed raises one ``IdrsError`` naming the worker and the reason: nothing is written.
   (A commit that itself fails after others succeeded, e.g. the server going away between
   two commits, is the one case this cannot undo; the error says so.)

Workers are started with the "spawn" context (never forked from a parent that may run
threads); they get the database URL, the keyring's directory, the clock's time and their
block, never an open connection.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import IdrsError
from idrs.masterfile.seed.population import Generator, Pools, SeedPlan, as_record, make_pools
from idrs.masterfile.seed.records import Person
from idrs.masterfile.store import MasterFileWriter, WriteStats, _Rows

#: tables whose primary keys the writer assigns itself (``IdAllocator``), in that order
KEYED = ("taxpayer", "tax_return", "tax_module")
#: a household never holds more people than this (``population._Household``)
MAX_HOUSEHOLD = 6
#: fewer people than this a worker: not worth a process (the seed loads serially)
MIN_PER_WORKER = 500
#: people between two progress reports of a worker
PROGRESS_EVERY = 2000


def default_workers(app: App) -> int:
    """Workers when none are asked for: PostgreSQL on 4 cores or more, else 1 (serial)."""
    cores = os.cpu_count() or 1
    if app.engine.dialect.name != "postgresql" or cores < 4:
        return 1
    return min(8, cores // 2)  # the server needs the other half


# -- 1. the survey ---------------------------------------------------------------------------


@dataclass
class Survey:
    """Per household of a range: people, returns, modules, employee candidate; businesses."""

    h0: int
    people: list[int] = field(default_factory=list)
    returns: list[int] = field(default_factory=list)
    modules: list[int] = field(default_factory=list)
    candidate: list[bool] = field(default_factory=list)
    #: (household, ein, name, kind) of each business the first time the range names it
    businesses: list[tuple[int, str, str, str]] = field(default_factory=list)


def _businesses(p: Person) -> list[tuple[str, str, str]]:
    """The businesses a person's records name, in the writer's order (``store._return_rows``)."""
    out: list[tuple[str, str, str]] = []
    for ret in p.returns:
        out.extend((w.employer_ein, w.employer_name, "employer") for w in ret.w2)
        out.extend((k.entity_ein, k.entity_name, "partnership") for k in ret.k1)
        out.extend((c.ein, c.business_name, "sole_prop") for c in ret.schedule_c if c.ein)
    out.extend((i.payer_ein, i.payer_name, "payer") for i in p.information_returns)
    return out


def _modules(p: Person) -> int:
    return len({r.tax_year for r in p.returns} | {t.tax_year for t in p.transactions})


def survey(plan: SeedPlan, pools: Pools | None, h0: int, h1: int) -> Survey:
    """Generate households ``h0 <= h < h1`` (unshortened) and count what they hold."""
    gen = Generator(plan, pools or make_pools(plan.seed))
    out = Survey(h0)
    seen: set[str] = set()
    for h in range(h0, h1):
        gen.employees = []  # the cap is applied by the plan, from the candidates before
        people = gen.household(h, 1 << 30)
        out.people.append(len(people))
        out.returns.append(sum(len(p.returns) for p in people))
        out.modules.append(sum(_modules(p) for p in people))
        out.candidate.append(bool(gen.employees))
        for p in people:
            for ein, name, kind in _businesses(p):
                if ein not in seen:
                    seen.add(ein)
                    out.businesses.append((h, ein, name, kind))
    return out


# -- 2. the plan -----------------------------------------------------------------------------


@dataclass
class Block:
    """One worker's part: households ``h0 <= h < h1`` (``h1`` None: to the end)."""

    number: int
    h0: int
    h1: int | None
    first_person: int
    employees_before: int
    #: per keyed table: the first id of this block and the first id past it (None: unbounded)
    ids: dict[str, tuple[int, int | None]] = field(default_factory=dict)


@dataclass
class Plan:
    blocks: list[Block]
    #: (ein, name, kind) of every business the surveyed households name, in serial order
    businesses: list[tuple[str, str, str]]
    #: people, returns, modules of the households before the last block's shortened tail
    totals: dict[str, int]


def make_plan(gen: Generator, surveys: list[Survey], workers: int) -> Plan | None:
    """Cut the surveyed households into ``workers`` blocks; None when too small to split."""
    n = gen.plan.taxpayers
    people: list[int] = []
    returns: list[int] = []
    modules: list[int] = []
    candidate: list[bool] = []
    for s in surveys:
        people += s.people
        returns += s.returns
        modules += s.modules
        candidate += s.candidate
    # the exact part: households before the first one the serial loop would shorten
    made = 0
    tail = None
    for h, size in enumerate(people):
        remaining = n - made
        if remaining < MAX_HOUSEHOLD or size > remaining:
            tail = h
            break
        made += size
    if tail is None:
        return None  # the survey fell short (the caller surveys more)
    if made < workers * MIN_PER_WORKER:
        return None
    cuts = [0]
    acc = 0
    for h in range(tail):
        acc += people[h]
        if len(cuts) < workers and acc >= made * len(cuts) / workers:
            cuts.append(h + 1)
    cuts = sorted(set(cuts))
    blocks: list[Block] = []
    before = {"people": 0, "taxpayer": 0, "tax_return": 0, "tax_module": 0, "candidates": 0}
    for k, h0 in enumerate(cuts):
        h1 = cuts[k + 1] if k + 1 < len(cuts) else None
        block = Block(k, h0, h1, before["people"], min(gen.plan.employees, before["candidates"]))
        stop = h1 if h1 is not None else tail
        sizes = {
            "taxpayer": sum(people[h0:stop]),
            "tax_return": sum(returns[h0:stop]),
            "tax_module": sum(modules[h0:stop]),
        }
        for table in KEYED:
            start = before[table]
            block.ids[table] = (start, start + sizes[table] if h1 is not None else None)
            before[table] += sizes[table]
        before["people"] += sizes["taxpayer"]
        before["candidates"] += sum(candidate[h0:stop])
        blocks.append(block)
    seen: set[str] = set()
    businesses: list[tuple[str, str, str]] = []
    for s in surveys:
        for h, ein, name, kind in s.businesses:
            if h < tail and ein not in seen:
                seen.add(ein)
                businesses.append((ein, name, kind))
    totals = {t: before[t] for t in KEYED}
    return Plan(blocks, businesses, totals)


class RangeIds:
    """``IdAllocator`` for one block: ids from the block's reserved range, in order.

    Past the range (only the last block, whose shortened tail the survey did not count)
    ids come from the sequence like ``IdAllocator``'s; a bounded block that needs more ids
    than it was given means the survey and the write disagree: an error, never a collision.
    """

    def __init__(self, conn: Connection, ranges: dict[str, tuple[int, int | None]]) -> None:
        self.conn = conn
        self.next = {t: r[0] for t, r in ranges.items()}
        self.stop = {t: r[1] for t, r in ranges.items()}
        self.reserved_end: dict[str, int] = {}

    def take(self, table: str, n: int) -> list[int]:
        if n <= 0:
            return []
        start, stop = self.next[table], self.stop[table]
        end = self.reserved_end.get(table)
        if stop is not None:
            if start + n > stop:
                raise IdrsError(f"seed plan mismatch: the block needs more {table} ids than surveyed")
            self.next[table] = start + n
            return list(range(start, start + n))
        assert end is not None
        own = list(range(start, min(start + n, end)))
        self.next[table] = start + len(own)
        rest = n - len(own)
        if rest:
            rows = self.conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table, "n": rest},
            )
            own += [int(r[0]) for r in rows]
        return own

    def reset(self) -> None:
        """Nothing cached to forget (the interface of ``IdAllocator``)."""


def reserve(conn: Connection, totals: dict[str, int]) -> dict[str, int]:
    """Take ``totals[table]`` consecutive ids from each keyed table's sequence; the first ids.

    Another writer's ``nextval`` between the two calls would land inside the range: its
    insert or ours then fails on the primary key (an error, never a silent overlap).
    """
    base: dict[str, int] = {}
    for table in KEYED:
        n = totals[table]
        first = int(
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id'))"), {"t": table}
            ).scalar_one()
        )
        if n > 1:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :last)"),
                {"t": table, "last": first + n - 1},
            )
        base[table] = first
    return base


class _Aborted(Exception):
    """The parent told this worker to stop (another worker failed)."""


# -- 3. the write ----------------------------------------------------------------------------


@dataclass
class Job:
    """What a writing worker gets (picklable: no connection, no key)."""

    url: str
    home: str
    now: datetime
    actor: str
    plan: SeedPlan
    block: Block
    base: dict[str, int]
    #: ids reserved for the keyed tables in all (the last block's range ends there)
    totals: dict[str, int]
    known_eins: list[str]


def _worker(pipe: Pipe) -> None:
    """A worker process: survey the households it is given, then write the block it is given.

    The Faker pools are made once for both steps. Any word from the parent other than the
    one expected (``None``, ``"abort"``) stops the worker; its transaction is rolled back.
    """
    try:
        task = pipe.recv()
        if task is None:
            return
        plan, h0, h1 = task
        pools = make_pools(plan.seed)
        pipe.send(("survey", survey(plan, pools, h0, h1)))
        job = pipe.recv()
    except EOFError:
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        pipe.send(("error", _describe(exc)))
        return
    if isinstance(job, Job):
        _write_block(job, pools, pipe)


def _describe(exc: BaseException) -> str:
    """An unexpected error as its type and place (never its message: it may hold values)."""
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}{where}"


def _write_block(job: Job, pools: Pools, pipe: Pipe) -> None:
    """Generate and write one block in one transaction; commit only when told."""
    try:
        engine = make_engine(job.url)
        keyring = Keyring.load(Path(job.home))
        gen = Generator(job.plan, pools)
        gen.next_person = job.block.first_person
        gen.employees = [("", "")] * job.block.employees_before
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                writer = MasterFileWriter(
                    keyring, conn, now=job.now, source="seed", actor=job.actor,
                    batch_size=2000, refuse_existing=True,
                )
                ranges = {
                    t: (job.base[t] + a, None if b is None else job.base[t] + b)
                    for t, (a, b) in job.block.ids.items()
                }
                ids = RangeIds(conn, ranges)
                ids.reserved_end = {t: job.base[t] + job.totals[t] for t in KEYED}
                writer.ids = cast(Any, ids)
                writer._known_eins = {writer.blind(e, "ein") for e in job.known_eins}
                _generate_block(job, gen, writer, pipe)
                writer.flush()
                pipe.send(("ready", writer.stats.as_dict(), gen.employees[job.block.employees_before:]))
                if pipe.recv() != "commit":
                    trans.rollback()
                    return
                trans.commit()
                pipe.send(("committed",))
            except BaseException:
                if trans.is_active:
                    trans.rollback()
                raise
        engine.dispose()
    except _Aborted:
        return
    except IntegrityError as exc:
        pipe.send(("error", "the database refused a row: generated TINs already exist (this seed "
                   f"was loaded before?) or another process wrote meanwhile ({type(exc.orig).__name__})"))
    except IdrsError as exc:
        pipe.send(("error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        pipe.send(("error", _describe(exc)))


def _generate_block(job: Job, gen: Generator, writer: MasterFileWriter, pipe: Pipe) -> None:
    n = job.plan.taxpayers
    made = job.block.first_person
    h = job.block.h0
    unsent = 0
    while made < n and (job.block.h1 is None or h < job.block.h1):
        for person in gen.household(h, n - made):
            writer.add(as_record(person), history=cast(Any, person.history))
            made += 1
            unsent += 1
        if unsent >= PROGRESS_EVERY:
            pipe.send(("progress", unsent))
            unsent = 0
            if pipe.poll():  # the only word before "ready" is "abort": another worker failed
                raise _Aborted
        h += 1
    if unsent:
        pipe.send(("progress", unsent))


# -- the parent ------------------------------------------------------------------------------


def load_parallel(
    app: App,
    gen: Generator,
    actor: str,
    progress: Callable[[int], None] | None,
    workers: int,
) -> WriteStats | None:
    """Load ``gen``'s population with ``workers`` processes; None when too small to split.

    Fills ``gen.employees`` as the serial load would. Raises IdrsError (nothing written)
    when a worker fails.
    """
    ctx = multiprocessing.get_context("spawn")
    plan = gen.plan
    est = plan.taxpayers * 10 // 23 + 64  # ~2.5 people a household; the tail is re-surveyed
    step = -(-est // workers)
    pipes: list[Pipe] = []
    procs = []
    try:
        for k in range(workers):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(theirs,), name=f"idrs-seed-{k}")
            proc.start()
            theirs.close()
            pipes.append(mine)
            procs.append(proc)
            mine.send((plan, k * step, (k + 1) * step))
        surveys = [_answer(k, p, "survey") for k, p in enumerate(pipes)]
        cut = make_plan(gen, surveys, workers)
        while cut is None and sum(sum(s.people) for s in surveys) < plan.taxpayers + MAX_HOUSEHOLD:
            h0 = surveys[-1].h0 + len(surveys[-1].people)
            surveys.append(survey(plan, gen.p, h0, h0 + 256))
            cut = make_plan(gen, surveys, workers)
        if cut is None:
            return None
        with app.engine.connect() as conn:
            trans = conn.begin()
            try:
                return _run(app, conn, gen, cut, actor, progress, pipes)
            except BaseException:
                if trans.is_active:
                    trans.rollback()
                raise
    finally:
        for p in pipes:
            _send(p, None)  # no job, or stop: a worker not yet committed rolls back
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for p in pipes:
            p.close()


def _answer(k: int, pipe: Pipe, kind: str) -> Any:
    try:
        msg = pipe.recv()
    except EOFError:
        raise IdrsError(f"seed worker {k} stopped without a word (killed? out of memory?); "
                        "nothing written") from None
    if msg[0] != kind:
        raise IdrsError(f"seed worker {k} failed: {msg[1]}; nothing written")
    return msg[1]


def _run(
    app: App,
    conn: Connection,
    gen: Generator,
    cut: Plan,
    actor: str,
    progress: Callable[[int], None] | None,
    workers: list[Pipe],
) -> WriteStats:
    # the shared businesses, in the serial order, in this process's transaction
    writer = MasterFileWriter(
        app.keyring, conn, now=app.clock.now(), source="seed", actor=actor, refuse_existing=True
    )
    rows = _Rows()
    for ein, name, kind in cut.businesses:
        writer._business(rows, ein, name, kind)
    writer._flush_rows(rows)
    base = reserve(conn, cut.totals)
    url = app.engine.url.render_as_string(hide_password=False)
    pipes: dict[int, Pipe] = {}
    for block in cut.blocks:
        job = Job(
            url, str(app.settings.home), app.clock.now(), actor, gen.plan, block, base,
            cut.totals, [b[0] for b in cut.businesses],
        )
        workers[block.number].send(job)
        pipes[block.number] = workers[block.number]
    ready: dict[int, tuple[dict[str, int], list[tuple[str, str]]]] = {}
    failure: str | None = None
    try:
        waiting = dict(pipes)
        while waiting and failure is None:
            for p in wait(list(waiting.values())):
                k = next(k for k, v in waiting.items() if v is p)
                try:
                    msg = cast(Pipe, p).recv()
                except EOFError:
                    failure = f"seed worker {k} stopped without a word (killed? out of memory?)"
                    break
                if msg[0] == "progress":
                    if progress is not None:
                        progress(msg[1])
                elif msg[0] == "ready":
                    ready[k] = (msg[1], msg[2])
                    del waiting[k]
                else:
                    failure = f"seed worker {k} failed: {msg[1]}"
                    break
        if failure is not None:
            for p in pipes.values():
                _send(p, "abort")
            raise IdrsError(f"{failure}; every worker's transaction was rolled back: nothing written")
        conn.commit()  # the businesses first: then every worker's block
        unsure: list[int] = []
        for p in pipes.values():
            _send(p, "commit")
        for k, p in pipes.items():
            try:
                if p.recv()[0] != "committed":
                    unsure.append(k)
            except EOFError:
                unsure.append(k)
        if unsure:
            raise IdrsError(
                f"seed worker(s) {unsure} could not commit after the others did: the population "
                "is partly written (delete it or restore the backup)"
            )
    except BaseException:
        for p in pipes.values():
            _send(p, "abort")
        raise
    stats = WriteStats(businesses=writer.stats.businesses)
    gen.employees = []
    for k in sorted(ready):
        part, employees = ready[k]
        for name, value in part.items():
            if name != "businesses":
                setattr(stats, name, getattr(stats, name) + value)
            else:
                stats.businesses += value
        gen.employees += [tuple(e) for e in employees]  # type: ignore[misc]
    return stats


def _send(pipe: Pipe, what: object) -> None:
    with contextlib.suppress(OSError):  # a worker already gone: its transaction died with it
        pipe.send(what)
