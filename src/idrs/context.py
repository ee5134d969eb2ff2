"""The application context handed to every service function: settings, engine, keys, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import configure_mappers

from idrs.clock import Clock, SystemClock
from idrs.config import Settings, get_settings
from idrs.crypto import Keyring
from idrs.db import engine_for, read_engine_for, replica_caught_up, unavailable_errors
from idrs.errors import ConfigurationError

__all__ = ["App", "unavailable_errors"]


@lru_cache(maxsize=1)
def register_models() -> None:
    """Register every package's tables and resolve every mapper, once per process: a fresh
    process may otherwise meet an unconfigured attribute in its first query (seen with
    ``Employee.active``), and whole-schema walks (key rotation) need every table."""
    import idrs.models  # noqa: F401 - the registry of every package's models

    configure_mappers()


@dataclass
class App:
    settings: Settings
    engine: Engine
    keyring: Keyring
    clock: Clock = field(default_factory=SystemClock)
    #: the streaming replica's read-only engine (``IDRS_REPLICA_URL``); None: the primary's
    replica: Engine | None = None
    #: False (a one-shot CLI command): resolve the mappers of the models imported so far
    #: only, not import every package's models (~200 ms of start-up); the models a command
    #: uses are imported by the modules that use them (the models have no relationships to
    #: resolve across packages), and whole-schema walks call :func:`register_models`.
    all_models: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.all_models:
            register_models()
        else:
            configure_mappers()
        if self.replica is None and self.settings.replica_url:
            if self.engine.dialect.name != "postgresql":
                raise ConfigurationError("IDRS_REPLICA_URL is set but IDRS_DATABASE_URL is not "
                                         "PostgreSQL: a replica follows a PostgreSQL primary")
            self.replica = read_engine_for(self.settings.replica_url)

    @property
    def read_engine(self) -> Engine:
        """Where the heavy reads of oversight, the weekly reports and detection go: the
        replica when one is configured, else the primary. It may lag behind the primary:
        call :meth:`await_replica` first when the reads must see what is committed now."""
        return self.replica if self.replica is not None else self.engine

    def await_replica(self) -> str | None:
        """Wait (at most ``IDRS_REPLICA_WAIT_SECONDS``) until the replica shows everything
        committed on the primary so far; return the primary's WAL position waited for (None
        without a replica). Raises ReplicaBehind (503) when it does not catch up in time."""
        if self.replica is None:
            return None
        return replica_caught_up(self.engine, self.replica,
                                 float(self.settings.replica_wait_seconds))

    @classmethod
    def open(
        cls,
        db_url: str | None = None,
        home: Path | None = None,
        clock: Clock | None = None,
        *,
        all_models: bool = True,
    ) -> App:
        """Load settings, keys and the engine. Raises ConfigurationError (one line) on failure.
        ``all_models=False``: see :attr:`all_models`."""
        settings = get_settings()
        if db_url:
            settings = settings.model_copy(update={"database_url": db_url})
        if home:
            settings = settings.model_copy(update={"home": home})
        keyring = Keyring.load(settings.home)
        engine = engine_for(settings.database_url)
        from idrs.audit import log  # checkpoints of this engine are signed with this IDRS_HOME

        log.configure(engine, settings)
        return cls(settings=settings, engine=engine, keyring=keyring, clock=clock or SystemClock(),
                   all_models=all_models)
