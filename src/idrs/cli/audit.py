"""CLI commands of the audit domain (registered on the root app when imported)."""

from __future__ import annotations

from idrs.cli import app  # noqa: F401
