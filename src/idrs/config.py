"""Settings from the environment (prefix ``IDRS_``).

No secret has a default here: keys live in files under ``IDRS_HOME`` created by
``idrs init``; this module only says where to find them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from idrs.vocabulary import Role


class Settings(BaseSettings):
    """Operator-tunable settings. Read once per process; override with IDRS_* variables."""

    model_config = SettingsConfigDict(env_prefix="IDRS_", extra="ignore")

    database_url: str = "sqlite:///idrs.db"
    #: A streaming (physical) replica of the PostgreSQL primary, for the heavy reads of
    #: oversight, the weekly reports and detection (``App.read_engine``); empty: the primary.
    #: Opened read-only. A report that must cover the log up to an entry waits until the
    #: replica has replayed the primary's WAL up to then, at most ``replica_wait_seconds``.
    replica_url: str = ""
    replica_wait_seconds: float = Field(default=30.0, gt=0, le=3600)
    home: Path = Path(".idrs")
    #: Consecutive failed sign-ins that lock an account. The lock lapses by itself after
    #: ``lockout_seconds``, doubled for each further failure up to ``lockout_max_seconds``
    #: (progressive delays: a stranger cannot keep an employee out for long); a security
    #: administrator may unlock it sooner. A locked account answers like a wrong password.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=60, ge=1, le=86_400)
    lockout_max_seconds: int = Field(default=900, ge=1, le=86_400)
    session_idle_minutes: int = Field(default=15, ge=1)
    session_absolute_hours: int = Field(default=8, ge=1)
    #: Allow more than one live session per employee (default: a new sign-in ends the old one).
    concurrent_sessions: bool = False
    #: Largest number of matches one NAMES search may reveal.
    names_max_matches: int = Field(default=25, ge=1)
    #: How many links CONFLICT_RELATIVE follows (parent→child→grandchild is two).
    relative_depth: int = Field(default=2, ge=1, le=4)
    #: Daily ceiling of distinct taxpayers per employee (by role; the highest of the roles wins).
    daily_limit_default: int = Field(default=200, ge=1)
    #: A checkpoint is signed at least every N entries or T seconds.
    checkpoint_every_entries: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: int = Field(default=60, ge=1)
    #: No unsigned tail: a checkpoint covering a committed entry is signed within this many
    #: seconds of its commit, whether or not anything is appended after it (background
    #: signer in each process; a one-shot command signs before it exits).
    checkpoint_max_unsigned_seconds: float = Field(default=1.0, gt=0, le=3600)
    #: Origin line of audit checkpoints (C2SP tlog-checkpoint).
    audit_origin: str = "idrs.example/audit-log"
    #: Refuse non-synthetic TINs on import (the project never holds real data).
    synthetic_only: bool = True
    #: HTTP rate limits (``idrs.api.throttle``), each ``COUNT/SECONDS``: at most COUNT
    #: requests in any SECONDS (whole seconds, rounded up); ``off`` disables it. Sign-in
    #: attempts (``POST /api/v1/sessions``, ``POST /signin``) per client address and per SEID:
    signin_rate: str = "60/60"
    signin_seid_rate: str = "10/60"
    #: Research calls (API and web prompt) per sign-in session (per address without one).
    #: The load benchmark sets ``IDRS_RESEARCH_RATE=off`` (or e.g. ``100000/1``).
    research_rate: str = "600/60"
    #: Adjustments: two-person thresholds (money in cents) and how long a request waits
    #: for its second person (``IDRS_ADJ_*``; ``adjustments.rules.Thresholds``). The amount
    #: thresholds apply to the sum of the changes of a kind over ``adj_window_days`` (0: each
    #: change alone).
    adj_abatement_cents: int = Field(default=100_000, ge=0)
    adj_increase_cents: int = Field(default=1_000_000, ge=0)
    adj_refund_window_days: int = Field(default=60, ge=0)
    adj_pending_hours: int = Field(default=72, ge=1)
    adj_window_days: int = Field(default=30, ge=0)
    #: Grants of access to outside people (``IDRS_GRANT_*``). ``grant_approval_roles``: the
    #: approving roles whose holders must each approve (default: the privacy officer and the
    #: authorizing official: two approvals from two different roles; an empty list is refused
    #: where the rule is read, ``grants.rules.ApprovalRule``). Never the clock.
    grant_approval_roles: str = f"{Role.PRIVACY_OFFICER},{Role.AUTHORIZING_OFFICIAL}"
    grant_max_days: int = Field(default=120, ge=1)
    grant_renewal_max_days: int = Field(default=240, ge=1)
    grant_training_valid_days: int = Field(default=365, ge=1)
    #: Research calls refused for want of a live session (no token, an unknown or expired
    #: one), per client address; once spent, every research call from that address is
    #: refused before its token is looked at.
    unauthenticated_rate: str = "10/60"
    #: Where the throttles keep their counts (a ``limits`` storage URI): ``memory://`` is
    #: per process; several workers or hosts share ``redis://HOST:6379`` (or memcached).
    throttle_storage: str = "memory://"
    #: Research calls run at once per process, each in a worker thread (the rest queue):
    #: a call waiting on the database never holds up the other routes.
    research_threads: int = Field(default=2, ge=1, le=256)
    #: Seconds a request waits for another process's database lock before it gives up
    #: (research then answers 503 AUDIT_UNAVAILABLE). SQLite busy timeout; PostgreSQL
    #: lock_timeout.
    db_lock_timeout: float = Field(default=5.0, gt=0, le=600)

    @field_validator("signin_rate", "signin_seid_rate", "research_rate", "unauthenticated_rate")
    @classmethod
    def _rate_spec(cls, value: str) -> str:
        parse_rate(value)
        return value.strip().lower()


def parse_rate(spec: str) -> tuple[int, float] | None:
    """``"COUNT/SECONDS"`` → (COUNT, SECONDS); ``"off"`` → None; ValueError otherwise."""
    text = (spec or "").strip().lower()
    if text in ("off", "0", "none", "unlimited"):
        return None
    count, sep, seconds = text.partition("/")
    try:
        n, t = int(count), float(seconds) if sep else 1.0
    except ValueError:
        n, t = 0, 0.0
    if n < 1 or not t > 0 or t > 86_400:
        raise ValueError(f"a rate is COUNT/SECONDS (e.g. 60/60) or 'off', not {spec!r}")
    return n, t


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
