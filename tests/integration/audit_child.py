"""A child process for the audit-log process tests: appends entries and acknowledges each index.

Usage: python -m tests.integration.audit_child URL HOME COUNT THREADS
(COUNT 0 = forever). Prints one acknowledged index per line, flushed, only after append()
returned, i.e. after the entry's transaction committed.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from idrs.audit import log
from idrs.audit.events import EventType, make_event
from idrs.config import Settings
from idrs.db import make_engine


def main() -> None:
    url, home, count, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    engine = make_engine(url)
    log.configure(engine, Settings(database_url=url, home=home, checkpoint_every_entries=7))
    out_lock = threading.Lock()
    pid = os.getpid()

    def worker(w: int) -> None:
        n = 0
        while count == 0 or n < count:
            e = make_event(
                EventType.ACCESS_RESEARCH_DECIDE,
                time=datetime.now(UTC),
                actor=f"P{pid}.{w}.{n}",
                outcome="allowed",
                interface="test",
            )
            idx = log.append(engine, e)
            with out_lock:
                sys.stdout.write(f"{idx}\n")
                sys.stdout.flush()
            n += 1

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


if __name__ == "__main__":
    main()
