"""``idrs seed``: a deterministic synthetic population of households, businesses and employees.

Callers: the CLI (``idrs seed``, ``idrs demo``), benchmarks and tests. Same ``seed`` → same
plaintext data (names, TINs, addresses, returns, transactions, employees' SEIDs and roles);
only ciphertexts (random nonces) and generated passwords differ. Identifiers come only from
the synthetic ranges: TIN area 900–999 group 00–49, EIN prefix 00, routing prefix 80.

What the population holds (over tax years 2022–2024, transactions consistent with the
returns: 000, 150, 806, 846 or 610, sometimes 420/290/421 and 570/971/571):
single filers; married couples filing jointly (MFJ) and separately (MFS, same address and
bank account); heads of household; divorces (a joint return in 2022, then separate
addresses, the former spouse still on the 2022 return); widows (QSS, the late spouse marked
``deceased``); children and elderly parents as dependents; pending adoptions; roommates
at one address (spelled differently: ``Apt 4`` / ``#4``), some sharing a bank account;
two-partner partnerships (K-1); sole proprietors who employ people (the W-2 EIN is the
owner's Schedule C EIN); large employers; banks filing 1099-INT; high-profile taxpayers
and identity-theft victims (markers); people who moved. Every person with a TIN (children
and dependent parents too) has a taxpayer record; ``--taxpayers N`` counts them all.

Employees (``--employees M``, default 20) are seeded taxpayers (marker ``employee``)
spread over four units with the roles csr, examiner, manager, security_admin,
privacy_analyst and auditor, created through ``people.service.create_employee`` like any
other employee. Only with ``credentials_out`` are passwords and TOTP secrets made (argon2
is slow); otherwise the accounts have none (a security administrator resets them).

Records one audit entry ``data:seed:run`` (counts only) after the population is committed,
and the ``admin:*`` entries of the units and employees it creates.

The package, one concern a module (this module runs them and keeps every public name):

- ``records``: the records generated (``Person``, ``Ret``, ``Txn``, ...);
- ``population``: identifiers, Faker pools, households (``Generator``, ``generate``);
- ``load``: the bulk load into the master file;
- ``parallel``: the same load by several worker processes on PostgreSQL (``--workers``);
- ``staff``: the employees, their units and the credentials file;
- ``export``: the population as an import file (``export_jsonl``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idrs.access import conflicts
from idrs.audit import log as audit_log
from idrs.audit.events import Actor, EventType
from idrs.context import App
from idrs.errors import IdrsError
from idrs.masterfile.seed.export import export_jsonl, to_import_dict
from idrs.masterfile.seed.load import COMMIT_EVERY, load_population
from idrs.masterfile.seed.parallel import default_workers, load_parallel
from idrs.masterfile.seed.population import (
    EIN_SPACE,
    TIN_SPACE,
    TRADES,
    YEARS,
    Generator,
    Pools,
    SeedPlan,
    as_record,
    ein_for,
    generate,
    income_tax,
    make_pools,
    routing_for,
    tin_for,
)
from idrs.masterfile.seed.records import (
    K1,
    W2,
    Addr,
    Dep,
    DirectDeposit,
    Info,
    Name,
    Person,
    Refund,
    Ret,
    SchC,
    Txn,
)
from idrs.masterfile.seed.staff import ROLE_PATTERN, UNITS, create_employees, seid_for
from idrs.masterfile.store import WriteStats

__all__ = [
    "COMMIT_EVERY",
    "EIN_SPACE",
    "K1",
    "ROLE_PATTERN",
    "TIN_SPACE",
    "TRADES",
    "UNITS",
    "W2",
    "YEARS",
    "Addr",
    "Dep",
    "DirectDeposit",
    "Generator",
    "Info",
    "Name",
    "Person",
    "Pools",
    "Refund",
    "Ret",
    "SchC",
    "SeedPlan",
    "SeedResult",
    "Txn",
    "as_record",
    "ein_for",
    "export_jsonl",
    "generate",
    "income_tax",
    "make_pools",
    "routing_for",
    "seed",
    "seid_for",
    "tin_for",
    "to_import_dict",
]


@dataclass
class SeedResult:
    taxpayers: int
    stats: WriteStats
    employees: list[dict[str, Any]]
    audit_index: int
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "taxpayers": self.taxpayers,
            **self.stats.as_dict(),
            "employees": len(self.employees),
            "audit_index": self.audit_index,
        }


def seed(
    app: App,
    *,
    taxpayers: int,
    employees: int = 20,
    seed: int = 1,
    credentials_out: Path | None = None,
    actor: str = "system",
    progress: Callable[[int], None] | None = None,
    interface: str = "cli",
    workers: int | None = None,
) -> SeedResult:
    """Add the synthetic population of ``seed`` (see the module docstring).

    Refuses (IdrsError, nothing new written) when a generated TIN already exists: the same
    seed was loaded before. ``progress`` gets the number of taxpayers written since last call.
    ``workers``: processes generating and writing the population (PostgreSQL only; see
    ``seed.parallel``); None: several on PostgreSQL with 4 cores or more, else 1 (serial).
    """
    if taxpayers < 1:
        raise IdrsError("--taxpayers must be at least 1")
    if employees < 0 or employees > taxpayers:
        raise IdrsError("--employees must be between 0 and the number of taxpayers")
    if workers is None:
        workers = default_workers(app)
    if workers < 1:
        raise IdrsError("--workers must be at least 1")
    if workers > 1 and app.engine.dialect.name != "postgresql":
        raise IdrsError(
            "--workers above 1 needs PostgreSQL (SQLite lets one process write at a time)"
        )
    t0 = time.perf_counter()
    gen = Generator(SeedPlan(seed, taxpayers, employees), make_pools(seed))
    stats = load_parallel(app, gen, actor, progress, workers) if workers > 1 else None
    if stats is None:  # serial, or too small a population to split
        stats = load_population(app, gen, actor, progress)
    index = audit_log.record(
        app, EventType.DATA_SEED_RUN, Actor(actor, interface), obj={"kind": "seed"},
        detail={"seed": seed, "taxpayers": taxpayers, **stats.as_dict()},
    )
    made = create_employees(app, gen, seed, credentials_out, actor, interface)
    conflicts.rebuild_all(app)  # the new population links new people to every employee
    return SeedResult(taxpayers, stats, made, index, time.perf_counter() - t0)
