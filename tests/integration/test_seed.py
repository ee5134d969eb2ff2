"""idrs seed: deterministic, realistic households, synthetic identifiers only, employees linked."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from idrs import migrate
from idrs.clock import FakeClock, as_utc
from idrs.config import Settings
from idrs.context import App
from idrs.crypto import Keyring
from idrs.db import make_engine
from idrs.errors import IdrsError
from idrs.identifiers import aba_checksum_ok, is_synthetic_ein, is_synthetic_tin
from idrs.masterfile import models as m
from idrs.masterfile.rotate import encrypted_tables
from idrs.masterfile.seed import seed
from idrs.people.models import Employee

N = 800
SEED = 42


@pytest.fixture
def seeded(app):
    result = seed(app, taxpayers=N, employees=6, seed=SEED, actor="os:tester")
    return app, result


def _decrypt(ring, blob, table, column):
    try:
        return ring.decrypt(blob, f"{table}.{column.removesuffix('_enc')}")
    except Exception:  # noqa: BLE001
        return ring.decrypt(blob, f"{table}.{column}")


def _value(v):
    if isinstance(v, datetime):
        return as_utc(v).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


SKIP = {"created_at", "updated_at", "posted_at", "totp_secret_enc", "password_hash"}


def plaintext_dump(app) -> dict[str, list[tuple]]:
    """Every row of the master file and employees, decrypted, without keyed or clock values."""
    tables = {t.name: t for t, _ in encrypted_tables()}
    tables.update(
        {
            t.name: t
            for t in (
                m.Marker.__table__,
                m.AddressRecord.__table__,
                m.TaxModule.__table__,
                m.Transaction.__table__,
            )
        }
    )
    out = {}
    with app.engine.connect() as conn:
        for name, table in sorted(tables.items()):
            if name not in {
                "taxpayer",
                "taxpayer_marker",
                "address_record",
                "business",
                "tax_return",
                "dependent",
                "w2",
                "k1",
                "schedule_c",
                "tax_module",
                "txn",
                "information_return",
                "employee",
            }:
                continue
            cols = [
                c for c in table.columns if c.name not in SKIP and not c.name.endswith("_index")
            ]
            rows = []
            for row in conn.execute(select(*cols).order_by(*table.primary_key.columns)):
                rows.append(
                    tuple(
                        _decrypt(app.keyring, v, name, c.name)
                        if c.name.endswith("_enc") and v is not None
                        else _value(v)
                        for c, v in zip(cols, row, strict=True)
                    )
                )
            out[name] = rows
    return out


def fresh_sqlite_app(tmp_path: Path, clock) -> App:
    url = f"sqlite:///{tmp_path / 'second.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    home = tmp_path / "home2"
    Keyring.create(home)
    return App(
        settings=Settings(database_url=url, home=home),
        engine=engine,
        keyring=Keyring.load(home),
        clock=FakeClock(clock.now()),
    )


def test_same_seed_same_plaintext_other_seed_differs(seeded, tmp_path, clock):
    app, _ = seeded
    first = plaintext_dump(app)
    other = fresh_sqlite_app(tmp_path, clock)
    try:
        assert other.keyring.index_key != app.keyring.index_key
        seed(other, taxpayers=N, employees=6, seed=SEED, actor="os:tester")
        assert plaintext_dump(other) == first
    finally:
        other.engine.dispose()
    third_dir = tmp_path / "third"
    third_dir.mkdir()
    third = fresh_sqlite_app(third_dir, clock)
    try:
        seed(third, taxpayers=200, employees=0, seed=SEED + 1, actor="os:tester")
        tins = {r[1] for r in plaintext_dump(third)["taxpayer"]}
        assert not tins & {r[1] for r in first["taxpayer"]}
    finally:
        third.engine.dispose()


def _population_size_and_synthetic_identifiers_only(app, result):
    ring = app.keyring
    assert result.taxpayers == N
    with app.engine.connect() as conn:
        tins = [
            ring.decrypt(b, "taxpayer.tin")
            for b in conn.execute(select(m.Taxpayer.tin_enc)).scalars()
        ]
        assert len(tins) == len(set(tins)) == N
        assert all(is_synthetic_tin(t) for t in tins)
        eins = [
            ring.decrypt(b, "business.ein")
            for b in conn.execute(select(m.Business.ein_enc)).scalars()
        ]
        assert eins and all(is_synthetic_ein(e) for e in eins)
        routings = [
            ring.decrypt(b, "tax_return.routing")
            for b in conn.execute(
                select(m.TaxReturn.routing_enc).where(m.TaxReturn.routing_enc.is_not(None))
            ).scalars()
        ]
        assert routings and all(r.startswith("80") and aba_checksum_ok(r) for r in routings)
        years = set(conn.execute(select(m.TaxReturn.tax_year)).scalars())
        assert years == {2022, 2023, 2024}


def _households_are_realistic(app, result):
    with app.engine.connect() as conn:
        statuses = Counter(conn.execute(select(m.TaxReturn.filing_status)).scalars())
        assert {"S", "MFJ", "MFS", "HOH", "QSS"} <= set(statuses)
        rels = Counter(conn.execute(select(m.Dependent.relationship)).scalars())
        assert rels["son"] and rels["daughter"] and rels["parent"]
        assert conn.execute(
            select(func.count()).where(m.Dependent.adoption_pending.is_(True))
        ).scalar_one()
        markers = Counter(conn.execute(select(m.Marker.marker)).scalars())
        for marker in ("high_profile", "identity_theft", "deceased", "employee"):
            assert markers[marker] >= 1, marker
        # MFS: both spouses file, each naming the other
        mfs = conn.execute(
            select(
                m.TaxReturn.taxpayer_id, m.TaxReturn.spouse_tin_index, m.TaxReturn.tax_year
            ).where(m.TaxReturn.filing_status == "MFS")
        ).all()
        tin_of = dict(conn.execute(select(m.Taxpayer.id, m.Taxpayer.tin_index)).all())
        id_of = {v: k for k, v in tin_of.items()}
        pairs = {(t, id_of[s], y) for t, s, y in mfs}
        assert all((b, a, y) in pairs for a, b, y in pairs)
        # divorce: a joint 2022 return, then the former spouse files alone elsewhere
        joint22 = conn.execute(
            select(m.TaxReturn.taxpayer_id, m.TaxReturn.spouse_tin_index).where(
                m.TaxReturn.tax_year == 2022, m.TaxReturn.filing_status == "MFJ"
            )
        ).all()
        divorced = [
            (a, id_of.get(s))
            for a, s in joint22
            if conn.execute(
                select(m.TaxReturn.filing_status).where(
                    m.TaxReturn.taxpayer_id == a, m.TaxReturn.tax_year == 2023
                )
            ).scalar()
            in ("S", "HOH")
            and conn.execute(
                select(m.TaxReturn.filing_status).where(
                    m.TaxReturn.taxpayer_id == id_of.get(s), m.TaxReturn.tax_year == 2023
                )
            ).scalar()
            == "S"
        ]
        assert divorced
        a, b = divorced[0]
        moved = conn.execute(
            select(func.count()).where(
                m.AddressRecord.taxpayer_id == b, m.AddressRecord.source == "entity"
            )
        ).scalar_one()
        assert moved >= 2
        # shared bank accounts between different taxpayers' returns
        banks = defaultdict(set)
        for tid, bank in conn.execute(
            select(m.TaxReturn.taxpayer_id, m.TaxReturn.bank_index).where(
                m.TaxReturn.bank_index.is_not(None)
            )
        ):
            banks[bank].add(tid)
        assert any(len(v) >= 2 for v in banks.values())
        # partnerships: one EIN on the K-1s of two different taxpayers
        partners = defaultdict(set)
        for ein, tid in conn.execute(
            select(m.K1.entity_ein_index, m.TaxReturn.taxpayer_id).join(
                m.TaxReturn, m.TaxReturn.id == m.K1.return_id
            )
        ):
            partners[ein].add(tid)
        assert any(len(v) == 2 for v in partners.values())
        # sole proprietors who employ people: a W-2 EIN that is someone's Schedule C EIN
        sole = set(conn.execute(select(m.ScheduleC.ein_index)).scalars())
        assert sole & set(conn.execute(select(m.W2.employer_ein_index)).scalars())
        # roommates: one dwelling (norm_key), several surnames
        dwell = defaultdict(set)
        for key, last in conn.execute(
            select(m.AddressRecord.norm_key, m.Taxpayer.last_name)
            .join(m.Taxpayer, m.Taxpayer.id == m.AddressRecord.taxpayer_id)
            .where(m.AddressRecord.source == "entity")
        ):
            dwell[key].add(last)
        assert any(len(v) >= 2 for v in dwell.values())
        # information returns for IRPTR
        forms = set(conn.execute(select(m.InformationReturn.form)).scalars())
        assert {"W-2", "1099-INT"} <= forms


def _transactions_agree_with_returns(app, result):
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.total_tax_cents, r.refund_cents, "
                " (SELECT sum(amount_cents) FROM txn t WHERE t.module_id = mo.id AND t.tc = '150'),"
                " (SELECT sum(amount_cents) FROM txn t WHERE t.module_id = mo.id AND t.tc = '846'),"
                " (SELECT -sum(amount_cents) FROM txn t WHERE t.module_id = mo.id AND t.tc = '806'),"
                " (SELECT sum(w.withholding_cents) FROM w2 w WHERE w.return_id = r.id)"
                " FROM tax_return r JOIN tax_module mo"
                " ON mo.taxpayer_id = r.taxpayer_id AND mo.tax_year = r.tax_year"
            )
        ).all()
    assert len(rows) > 500
    for tax, refund, tc150, tc846, tc806, withheld in rows:
        assert tc150 == tax
        assert (tc846 or 0) == (refund or 0)
        assert (tc806 or 0) == (withheld or 0)


def _employees_are_seeded_taxpayers_with_roles(app, result):
    ring = app.keyring
    assert len(result.employees) == 6
    with app.engine.connect() as conn:
        emps = conn.execute(
            select(
                Employee.seid,
                Employee.tin_index,
                Employee.tin_enc,
                Employee.roles,
                Employee.profile,
                Employee.password_hash,
                Employee.unit_id,
            )
        ).all()
        assert len(emps) == 6
        roles = {r for e in emps for r in e.roles.split(",")}
        assert roles == {
            "csr",
            "examiner",
            "manager",
            "security_admin",
            "privacy_analyst",
            "auditor",
        }
        assert len({e.unit_id for e in emps}) >= 3
        for e in emps:
            assert e.password_hash is None  # no credentials asked for: no usable password
            tid = conn.execute(
                select(m.Taxpayer.id).where(m.Taxpayer.tin_index == e.tin_index)
            ).scalar_one()
            assert conn.execute(
                select(m.Marker.marker).where(
                    m.Marker.taxpayer_id == tid, m.Marker.marker == "employee"
                )
            ).scalar_one()
            assert ring.tin_index(ring.decrypt(e.tin_enc, "employee.tin")) == e.tin_index
            if "csr" in e.roles.split(","):
                assert "ENMOD" in e.profile
            if e.roles in ("auditor", "privacy_analyst", "security_admin"):
                assert e.profile == ""


def _same_seed_twice_is_refused(app, result):
    with pytest.raises(IdrsError, match="already exist"):
        seed(app, taxpayers=50, employees=0, seed=SEED, actor="os:tester")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Taxpayer)).scalar_one() == N


def test_seeded_population(seeded):
    """One seed per database, every property checked on it (seeding is the slow part)."""
    app, result = seeded
    _population_size_and_synthetic_identifiers_only(app, result)
    _households_are_realistic(app, result)
    _transactions_agree_with_returns(app, result)
    _employees_are_seeded_taxpayers_with_roles(app, result)
    _same_seed_twice_is_refused(app, result)


def test_credentials_file(app, tmp_path):
    out = tmp_path / "creds.json"
    result = seed(app, taxpayers=120, employees=2, seed=9, credentials_out=out, actor="os:tester")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    creds = json.loads(out.read_text())
    assert [c["seid"] for c in creds] == [e["seid"] for e in result.employees]
    for c in creds:
        assert set(c) == {"seid", "password", "totp_secret", "roles", "tin"}
        assert is_synthetic_tin(c["tin"].replace("-", ""))
    with app.engine.connect() as conn:
        hashes = conn.execute(select(Employee.password_hash)).scalars().all()
    assert len(hashes) == 2 and all(h and h.startswith("$argon2id$") for h in hashes)
    with app.engine.connect() as conn:
        entries = [
            json.loads(b)
            for b in conn.execute(text("SELECT leaf_input FROM audit_entry")).scalars()
        ]
    seeds = [e for e in entries if e["type"] == "data:seed:run"]
    assert len(seeds) == 1 and seeds[0]["detail"]["taxpayers"] == 120


def test_seeded_employee_is_created_and_recorded_as_people_service_creates_one(app):
    """The seed has no employee-creation path of its own: a seeded employee's row and its
    ``admin:employee:create`` entry are those of ``people.service.create_employee`` (the seed
    once wrote the row itself, without the conflict index, with an entry of another shape)."""
    from idrs.access.models import ConflictState
    from idrs.people import service
    from idrs.people.models import Unit

    result = seed(app, taxpayers=80, employees=2, seed=SEED + 2, actor="os:tester")
    assert len(result.employees) == 2
    seeded_seid = result.employees[0]["seid"]
    with app.engine.connect() as conn:
        seeded_unit = conn.execute(
            select(Unit.code)
            .join(Employee, Employee.unit_id == Unit.id)
            .where(Employee.seid == seeded_seid)
        ).scalar_one()
    service.create_employee(
        app,
        seid="ZZ9",
        name="Other Person",
        tin="999-49-0001",
        roles=result.employees[0]["roles"],
        unit=seeded_unit,
        actor="os:tester",
        unax_attested_at=app.clock.now(),
    )
    with app.engine.connect() as conn:
        entries = [
            json.loads(b)
            for b in conn.execute(text("SELECT leaf_input FROM audit_entry")).scalars()
        ]
        rows = {
            e.seid: e
            for e in conn.execute(select(Employee).where(Employee.seid.in_([seeded_seid, "ZZ9"])))
        }
        states = set(conn.execute(select(ConflictState.employee_id)).scalars())
    creates = {
        e["object"]["seid"]: e
        for e in entries
        if e["type"] == "admin:employee:create" and e["object"]["seid"] in (seeded_seid, "ZZ9")
    }
    ours, theirs = creates[seeded_seid], creates["ZZ9"]
    for key in ("v", "actor", "outcome", "origin", "detail"):
        assert ours[key] == theirs[key], key
    assert set(ours) == set(theirs)
    seeded_row, service_row = rows[seeded_seid], rows["ZZ9"]
    for col in ("kind", "unit_id", "roles", "profile", "authorities", "active", "home_org"):
        assert getattr(seeded_row, col) == getattr(service_row, col), col
    assert seeded_row.training_attested_at is not None
    assert seeded_row.password_hash is None and seeded_row.totp_secret_enc is None
    assert {seeded_row.id, service_row.id} <= states  # both have a computed conflict index
