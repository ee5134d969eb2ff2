"""The anonymized population is cached per version of the master file (issue 15 performance):
a new taxpayer, a new return, a re-imported entity each change what is released at once, and
an unchanged master file is not read again. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from idrs.audit.events import Actor
from idrs.db import session_scope
from idrs.grants import anonymized
from idrs.masterfile import seed
from idrs.masterfile.models import AddressRecord, Taxpayer, TaxReturn
from tests.integration.grants_world import make_world
from tests.integration.test_anonymized_records import _anon_grant, _ready

ANALYST = Actor("DT001", "api")
K = 10


@pytest.fixture
def world(app, monkeypatch):
    w = make_world(app, monkeypatch)
    seed.seed(app, taxpayers=300, employees=0, seed=11)
    _ready(w, "DT001")
    return w


def _list(w: Any, **filters: Any) -> dict[str, Any]:
    return anonymized.list_records(w.app, w.emp("DT001"), filters=filters, limit=1000,
                                   actor=ANALYST)


def _uncached(app: Any, level: int) -> anonymized.Table:
    with session_scope(app.engine) as s:
        return anonymized.table_at(anonymized.population(s, app), level, K)


def _new_taxpayers(app: Any, n: int, year: int) -> list[int]:
    """``n`` new taxpayers alike in every quasi-identifier, each with one return of ``year``."""
    now = app.clock.now()
    ids = []
    with session_scope(app.engine) as s:
        for i in range(n):
            tin = f"900-77-{1000 + i:04d}"
            tp = Taxpayer(
                tin_index=app.keyring.tin_index(tin.replace("-", "")),
                tin_enc=app.keyring.encrypt(tin, "taxpayer.tin"),
                first_name="Alike", middle_name="", last_name=f"Alike{i}", suffix="",
                name_control="ALIK", dob_enc=app.keyring.encrypt("1971-05-05", "taxpayer.dob"),
                phone_enc=None, created_at=now, updated_at=now,
            )
            s.add(tp)
            s.flush()
            s.add(AddressRecord(taxpayer_id=tp.id, tax_year=None, source="entity",
                                street="1 Elm St", city="Dayton", state="OH", zip="45402",
                                norm_key=f"k{i}", street_key=f"s{i}", valid_from=date(2020, 1, 1)))
            s.add(TaxReturn(taxpayer_id=tp.id, tax_year=year, filing_status="S",
                            agi_cents=4_200_000, total_tax_cents=400_000, received_at=now))
            ids.append(tp.id)
    return ids


def test_a_change_of_the_master_file_changes_what_is_released(world):
    w = world
    app = w.app
    _anon_grant(w, "DT001", k=K)
    before = _list(w, tax_year=2017)
    assert before["matched"] == 0 and before["suppressed"] == 0
    # nothing changed: the cached population is the one used again (not read a second time)
    assert anonymized.current_population(app) is anonymized.current_population(app)

    # k+1 new taxpayers alike, each with a return: one class of k+1, released at once
    new = _new_taxpayers(app, K + 1, 2017)
    after = _list(w, tax_year=2017)
    assert after["matched"] == K + 1 and after["suppressed"] == 0
    assert all(r["tax_year"] == 2017 for r in after["records"])

    # a new return alone (no new taxpayer): one more in the class, seen at once
    app.clock.advance(seconds=1)
    with session_scope(app.engine) as s:
        other = s.scalar(select(Taxpayer.id).where(Taxpayer.id.not_in(new)).limit(1))
        s.add(TaxReturn(taxpayer_id=other, tax_year=2016, filing_status="S",
                        agi_cents=4_200_000, total_tax_cents=0, received_at=app.clock.now()))
    lone = _list(w, tax_year=2016)
    assert lone["matched"] == 0 and lone["suppressed"] == 1  # a class of one: suppressed

    # one taxpayer's entity re-imported with another date of birth (updated in place): the
    # population read again, and the answer is the one the uncached population gives (at a
    # level that releases years of birth, the class of k+1 falls to k: none released)
    with session_scope(app.engine) as s:
        s.execute(update(Taxpayer).where(Taxpayer.id == new[0]).values(
            dob_enc=app.keyring.encrypt("1999-01-01", "taxpayer.dob"),
            updated_at=app.clock.now() + timedelta(seconds=5)))
        rid = s.scalar(select(TaxReturn.id).where(TaxReturn.taxpayer_id == new[0]))
    pop = anonymized.current_population(app)
    i = pop.index_of(rid)
    assert i is not None and pop.row(i).birth_year == 1999
    now = _list(w, tax_year=2017)
    t = _uncached(app, now["level"])
    hits = t.pop.matching({"tax_year": 2017}, t.level)
    assert now["matched"] == int((hits & t.released).sum())
    assert now["suppressed"] == int(hits.sum()) - now["matched"]
    if anonymized.LEVELS[now["level"]].birth is not None:
        assert now["matched"] == 0 and now["suppressed"] == K + 1
    cached = anonymized.table_at(pop, now["level"], K)
    assert (t.sizes == cached.sizes).all()


def test_a_read_interleaved_with_a_write_is_not_cached_under_the_old_version(world, monkeypatch):
    """A write landing while the population is read (the version read after differs from the
    one read before) must not be cached: the next call would serve a stale population."""
    app = world.app
    versions = iter([("before",), ("after",)])
    monkeypatch.setattr(anonymized, "data_version", lambda _app: next(versions))
    during = anonymized.current_population(app)
    monkeypatch.setattr(anonymized, "data_version", lambda _app: ("after",))
    again = anonymized.current_population(app)
    assert again is not during  # read again, not served from a cache under "before"
    assert anonymized.current_population(app) is again  # now cached under "after"
