"""A served application's start-up heap is frozen out of the cyclic collector's passes.

A full collection of a server process walked its whole start-up heap (framework, SQLAlchemy,
models, application): ~100 ms with every thread stopped, once inside an audit batch holding
the log's write lock (``idrs.cli.setup.freeze_heap``). This holds the wiring: the factory
each ``idrs serve`` process builds its application with leaves that heap frozen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from idrs import migrate
from idrs.db import make_engine

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import gc
from idrs.cli.setup import served_app
before = gc.get_freeze_count()
api = served_app()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_served_app_leaves_its_start_up_heap_frozen(tmp_path: Path, home: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idrs.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    env = {**os.environ, "IDRS_DATABASE_URL": url, "IDRS_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen, tracked = (int(x) for x in done.stdout.split()[-3:])
    assert before == 0
    # the application and everything it imported: far more than what is left to collect
    assert frozen > 50_000
    assert frozen > 10 * tracked
