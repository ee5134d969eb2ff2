"""Run a coroutine to completion from synchronous test code, whatever the calling thread holds.

Playwright's synchronous API keeps an event loop running in the main thread for as long as
its session-scoped browser is open, and pytest-xdist may run a browser test file and an
HTTP test file in the same worker; ``asyncio.run`` refuses to start a loop there. Each
coroutine therefore gets a fresh loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(factory())`` on a fresh loop in a new thread; its result or its error."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
