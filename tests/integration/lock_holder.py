"""A child process that holds the database's write lock until its standard input closes.

Usage: python -m tests.integration.lock_holder URL
SQLite: ``BEGIN EXCLUSIVE`` on the database file; PostgreSQL: the audit log's advisory lock
(the lock every append takes). Prints ``locked`` (flushed) once it holds the lock.
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy.engine import make_url

from idrs.audit.store import PG_LOCK_KEY


def main() -> None:
    url = make_url(sys.argv[1])
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        pg = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
        pg.execute("SELECT pg_advisory_lock(%s)", (PG_LOCK_KEY,))
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our standard input


if __name__ == "__main__":
    main()
