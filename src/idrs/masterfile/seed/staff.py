"""The seed's employees: seeded taxpayers (marker ``employee``) given SEIDs, roles and units.

Every employee is created by ``people.service.create_employee``, the one creation path (the
same checks, the same row, the same ``admin:employee:create`` entry as any other employee).
Only with a credentials file are passwords and TOTP secrets made (argon2 is slow); otherwise
the accounts have none and a security administrator resets them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from idrs.context import App
from idrs.errors import Conflict
from idrs.masterfile.seed.population import Generator, dashed
from idrs.vocabulary import ADJUSTMENT_CODES, RESEARCH_CODES, CommandCode, Role

ROLE_PATTERN: tuple[tuple[Role, ...], ...] = (
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.MANAGER,),
    (Role.SECURITY_ADMIN,),
    (Role.PRIVACY_ANALYST,),
    (Role.AUDITOR,),
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.CSR, Role.EXAMINER),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.MANAGER,),
    (Role.CSR,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.SECURITY_ADMIN,),
    (Role.EXAMINER,),
    (Role.CSR,),
    (Role.PRIVACY_ANALYST,),
)
#: units the seed creates when absent: code → (name, ceiling, roles that land there)
UNITS: dict[str, tuple[str, str]] = {
    "WIAM": (
        "Wage & Investment Accounts Management",
        ",".join((*RESEARCH_CODES, CommandCode.ENREQ, CommandCode.REQ77)),
    ),
    "SBEX": (
        "Small Business/Self-Employed Examination",
        ",".join(RESEARCH_CODES + ADJUSTMENT_CODES),
    ),
    "PGLD": ("Privacy, Governmental Liaison and Disclosure", CommandCode.ENMOD),
    "AUDT": ("Internal Audit", CommandCode.ENMOD),
}


def _unit_of(roles: tuple[str, ...], k: int) -> str:
    if Role.PRIVACY_ANALYST in roles:
        return "PGLD"
    if Role.AUDITOR in roles:
        return "AUDT"
    if Role.EXAMINER in roles:
        return "SBEX"
    if Role.CSR in roles:
        return "WIAM"
    return "WIAM" if k % 2 == 0 else "SBEX"  # managers and unit security representatives


def seid_for(seed: int, k: int) -> str:
    """Deterministic SEID: 'S', two base-36 characters of the seed, four digits."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    s = seed % 1296
    return f"S{digits[s // 36]}{digits[s % 36]}{k:04d}"


def _ensure_units(app: App, actor: str, interface: str) -> None:
    from idrs.people import service
    from idrs.people.models import Unit

    with app.engine.connect() as conn:
        have = set(conn.execute(select(Unit.code)).scalars())
    for code, (name, ceiling) in UNITS.items():
        if code not in have:
            service.create_unit(app, code, name, ceiling, actor=actor, interface=interface)


def create_employees(
    app: App,
    gen: Generator,
    seed_value: int,
    credentials_out: Path | None,
    actor: str,
    interface: str,
) -> list[dict[str, Any]]:
    """Create the employees ``gen`` picked, in order; with ``credentials_out``, write their
    credentials there (mode 0600). Returns one dict per employee (SEID, roles, dashed TIN,
    and the credentials when made)."""
    from idrs.people import service

    if not gen.employees:
        return []
    _ensure_units(app, actor, interface)
    made: list[dict[str, Any]] = []
    for k, (tin, name) in enumerate(gen.employees):
        seid = seid_for(seed_value, k)
        roles = ROLE_PATTERN[k % len(ROLE_PATTERN)]
        try:
            creds = service.create_employee(
                app,
                # a working agency: UNAX training attested (learning-system record)
                unax_attested_at=app.clock.now(),
                seid=seid,
                name=name,
                tin=tin,
                roles=list(roles),
                unit=_unit_of(roles, k),
                actor=actor,
                interface=interface,
                credentials=credentials_out is not None,
            )
        except Conflict as exc:
            raise Conflict(f"{exc} (this seed was loaded before?)") from None
        if credentials_out is not None:
            made.append({**creds, "roles": list(roles), "tin": dashed(tin)})
        else:
            made.append({"seid": seid, "roles": list(roles), "tin": dashed(tin)})
    if credentials_out is not None:
        _write_credentials(credentials_out, made)
    return made


def _write_credentials(path: Path, creds: list[dict[str, Any]]) -> None:
    """Write the credentials file with mode 0600 (never world-readable, even briefly)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
        fh.write("\n")
