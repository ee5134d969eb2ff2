"""The application context handed to every service function: settings, engine, keys, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import configure_mappers

from idrs.clock import Clock, SystemClock
from idrs.config import Settings, get_settings
from idrs.crypto import Keyring
from idrs.db import engine_for, unavailable_errors

__all__ = ["App", "unavailable_errors"]


@dataclass
class App:
    settings: Settings
    engine: Engine
    keyring: Keyring
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def open(cls, db_url: str | None = None, home: Path | None = None, clock: Clock | None = None) -> App:
        """Load settings, keys and the engine. Raises ConfigurationError (one line) on failure."""
        settings = get_settings()
        if db_url:
            settings = settings.model_copy(update={"database_url": db_url})
        if home:
            settings = settings.model_copy(update={"home": home})
        keyring = Keyring.load(settings.home)
        # Resolve every mapper now (a fresh process may otherwise meet an unconfigured one).
        import idrs.models  # noqa: F401

        configure_mappers()
        engine = engine_for(settings.database_url)
        from idrs.audit import log  # checkpoints of this engine are signed with this IDRS_HOME

        log.configure(engine, settings)
        return cls(settings=settings, engine=engine, keyring=keyring, clock=clock or SystemClock())
