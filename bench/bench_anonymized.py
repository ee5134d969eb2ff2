"""Anonymized records: a sample of 1,000 with k-anonymity enforced (issue 15, target < 2 s).

A synthetic master file (``idrs seed``; full: 20,000 taxpayers, quick: 3,000; about two
returns each), one principal with an active anonymized grant (k = 10) and its prerequisites.
Timed end to end: ``grants.anonymized.list_records(limit=1000, sample=True)`` — the grant
check, the whole population read (year of birth decrypted), the equivalence classes at each
level tried, the sample, 1,000 per-grant pseudonyms and the audit entry. Also reported: the
level chosen and the share of the population suppressed at k = 10. The database lives under
/tmp/idrs-bench-anonymized (SQLite).
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

TITLE = "Anonymized records (k-anonymous sample)"
BASE = Path("/tmp/idrs-bench-anonymized")
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
SIZES = {"full": 20_000, "quick": 3_000}
TARGET_S = 2.0


def _app(db: Path) -> Any:
    from idrs.audit.checkpoint import ensure_signing_key
    from idrs.clock import FakeClock
    from idrs.config import Settings
    from idrs.context import App
    from idrs.crypto import Keyring
    from idrs.db import make_engine

    home = BASE / "home"
    if not home.exists():
        Keyring.create(home)
    settings = Settings(
        database_url=f"sqlite:///{db}",
        home=home,
        checkpoint_every_entries=10**9,
        checkpoint_every_seconds=10**9,
    )
    ensure_signing_key(home, settings.audit_origin)
    return App(
        settings=settings,
        engine=make_engine(settings.database_url),
        keyring=Keyring.load(home),
        clock=FakeClock(NOW),
    )


def outside_principal(app: Any, seid: str = "AN001", name: str = "Analyst",
                      **grant: Any) -> None:
    """One detailee with clearance, training, a signed agreement and an active grant
    (written directly: the approval workflow is not what is measured). ``grant``: the
    grant's kind and its fields (default: an anonymized grant at k = 10)."""
    from idrs.db import session_scope
    from idrs.grants.models import (
        Agreement,
        AgreementSignature,
        ClearanceVerification,
        Grant,
        TrainingAttestation,
    )
    from idrs.people.models import Employee, Unit

    fields = grant or {"commands": "ENMOD", "classes": "return", "population": "anonymized",
                       "kind": "anonymized", "anon_k": 10}
    with session_scope(app.engine) as s:
        unit = Unit(code="RSCH", name="Research", ceiling="ENMOD")
        s.add(unit)
        s.flush()
        ag = Agreement(title="NDA", version=1, text="x", sha256="0" * 64, current=True,
                       added_by="bench", added_at=NOW)
        e = Employee(seid=seid, name=name, kind="detailee", unit_id=unit.id,
                     roles="examiner", profile="ENMOD", authorities="", created_at=NOW,
                     active=True)
        s.add_all([ag, e])
        s.flush()
        s.add(TrainingAttestation(employee_id=e.id, attested_at=NOW))
        s.add(ClearanceVerification(employee_id=e.id, verified_by="SA001", recorded_by="bench",
                                    verified_at=NOW))
        s.add(AgreementSignature(agreement_id=ag.id, employee_id=e.id, sha256="0" * 64,
                                 signed_at=NOW, otp_step=1))
        s.add(Grant(principal_id=e.id, requested_by="bench", purpose="p", legal_basis="b",
                    key_version=1, allow_changes=False, start_date=date(2026, 3, 1),
                    term_days=120, agreement_title="NDA", status="approved",
                    requested_at=NOW, approved_at=NOW, **fields))


def _ensure(n: int) -> tuple[Any, float]:
    db = BASE / f"pop-{n}.db"
    marker = BASE / f"pop-{n}.ready"
    if marker.exists():
        return _app(db), 0.0
    if BASE.exists():
        shutil.rmtree(BASE)
    BASE.mkdir(parents=True)
    from idrs import migrate
    from idrs.masterfile import seed

    app = _app(db)
    migrate.upgrade(app.engine)
    t0 = time.perf_counter()
    seed.seed(app, taxpayers=n, employees=0, seed=15)
    outside_principal(app)
    marker.write_text("ok")
    return app, time.perf_counter() - t0


def run(scale: str) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    from idrs.audit.events import Actor
    from idrs.db import session_scope
    from idrs.grants import anonymized
    from idrs.masterfile.models import TaxReturn
    from idrs.people.models import Employee

    n = SIZES[scale]
    app, _ = _ensure(n)
    with session_scope(app.engine) as s:
        who = s.scalar(select(Employee).where(Employee.seid == "AN001"))
        s.expunge(who)
        returns = int(s.scalar(select(func.count()).select_from(TaxReturn)) or 0)
    actor = Actor("AN001", "api")
    times, out = [], {}
    for _ in range(3):
        t0 = time.perf_counter()
        out = anonymized.list_records(app, who, filters={}, limit=1000, sample=True, actor=actor)
        times.append(time.perf_counter() - t0)
    with session_scope(app.engine) as s:
        rows = anonymized.population(s, app)
    share = anonymized.table_at(rows, out["level"], out["k"]).suppressed_share
    median = statistics.median(times)
    return [
        {"what": f"sample of 1,000 records, k=10, population {returns:,} returns ({n:,} "
                 "taxpayers), median of 3", "value": round(median, 3), "unit": "s",
         "target": f"< {TARGET_S} s", "met": median < TARGET_S and len(out["records"]) == 1000},
        {"what": "generalization level chosen (0 finest)", "value": out["level"], "unit": "",
         "target": "-", "met": None},
        {"what": "share of the population suppressed at k=10", "value": round(100 * share, 2),
         "unit": "%", "target": "≤ 5 % (else the coarsest level)", "met": share <= 0.05},
    ]
