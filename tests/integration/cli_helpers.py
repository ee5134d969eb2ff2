"""Shared by the in-process CLI tests: run ``idrs`` and hold a session as ``idrs login`` would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from idrs.cli import main
from idrs.cli.people import write_token
from idrs.context import App
from idrs.crypto import random_token, sha256_hex
from idrs.db import session_scope
from idrs.people.models import Employee, SignInSession


def run_cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``idrs ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def sign_in_for_cli(a: App, seid: str) -> None:
    """A live session for ``seid`` saved where ``idrs login`` saves it."""
    token = random_token(32)
    now = datetime.now(UTC)
    with session_scope(a.engine) as s:
        emp_id = s.scalar(select(Employee.id).where(Employee.seid == seid))
        s.add(
            SignInSession(
                token_hash=sha256_hex(token),
                employee_id=emp_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=1),
                interface="test",
            )
        )
    write_token(a.settings.home, token)
