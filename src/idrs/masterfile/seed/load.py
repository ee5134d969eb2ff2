"""Loading the seed's population into the master file (bulk, in large transactions).

All or nothing per chunk of ``COMMIT_EVERY`` taxpayers; a generated TIN that already exists
refuses the load (``IdrsError``) and rolls back the unfinished chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from idrs.context import App
from idrs.errors import IdrsError
from idrs.masterfile.seed.population import Generator, as_record, generate
from idrs.masterfile.store import MasterFileWriter, WriteStats, lock_for_write

COMMIT_EVERY = 50_000  # taxpayers per transaction during the bulk load


def load_population(
    app: App, gen: Generator, actor: str, progress: Callable[[int], None] | None
) -> WriteStats:
    """Write every person of ``gen`` (source ``seed``); the writer's counts."""
    with app.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # bulk load: fewer fsyncs; set on the raw connection, outside a transaction
            _pragma(conn, "PRAGMA synchronous=OFF")
        writer = MasterFileWriter(
            app.keyring,
            conn,
            now=app.clock.now(),
            source="seed",
            actor=actor,
            batch_size=2000,
            refuse_existing=True,
            pipelined=True,
        )
        try:
            _load_chunks(conn, writer, gen, progress)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                writer.close()  # no insert may still run on the connection we roll back
            if conn.in_transaction():
                conn.rollback()
            if isinstance(exc, IntegrityError):
                raise IdrsError(
                    "seed refused by the database: generated TINs already exist (this seed was "
                    "loaded before?) or another process wrote during the bulk load "
                    f"({type(exc.orig).__name__}); the unfinished chunk was rolled back"
                ) from None
            raise
        finally:
            writer.close()
            if sqlite:
                _pragma(conn, "PRAGMA synchronous=NORMAL")
    return writer.stats


def _load_chunks(
    conn: Connection,
    writer: MasterFileWriter,
    gen: Generator,
    progress: Callable[[int], None] | None,
) -> None:
    """Write the population in transactions of COMMIT_EVERY taxpayers."""
    trans = conn.begin()
    lock_for_write(conn)
    done = 0
    for n, person in enumerate(generate(gen), start=1):
        writer.add(as_record(person), history=cast(Any, person.history))
        if n % COMMIT_EVERY == 0:
            writer.flush()
            trans.commit()
            writer.ids.reset()
            if progress is not None:
                progress(n - done)
            done = n
            trans = conn.begin()
            lock_for_write(conn)
    writer.flush()
    trans.commit()
    if progress is not None:
        progress(gen.plan.taxpayers - done)


def _pragma(conn: Connection, sql: str) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute(sql)
