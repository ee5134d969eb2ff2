"""idrs keys rotate: every encrypted value under the new key, nothing lost, old key retired."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text, update

from idrs.crypto import Keyring
from idrs.errors import IdrsError
from idrs.masterfile import models as m
from idrs.masterfile.rotate import count_by_kid, encrypted_tables, rotate
from idrs.masterfile.seed import seed
from idrs.people.models import Employee

from .test_seed import plaintext_dump


@pytest.fixture
def populated(app, tmp_path):
    seed(
        app,
        taxpayers=150,
        employees=2,
        seed=5,
        credentials_out=tmp_path / "c.json",
        actor="os:tester",
    )
    return app


def totp_secrets(app):
    with app.engine.connect() as conn:
        blobs = conn.execute(
            select(Employee.seid, Employee.totp_secret_enc).order_by(Employee.seid)
        ).all()
    return [(s, app.keyring.decrypt(b, "employee.totp_secret")) for s, b in blobs]


def test_rotation_reencrypts_everything_and_retires_the_old_key(populated):
    app = populated
    old_kid = app.keyring.active_kid
    before = plaintext_dump(app)
    secrets_before = totp_secrets(app)
    assert set(count_by_kid(app)) == {old_kid}
    result = rotate(app, actor="os:tester")
    assert result.new_kid != old_kid and result.retired == [old_kid]
    counts = count_by_kid(app)
    assert set(counts) == {result.new_kid}
    assert result.reencrypted == counts[result.new_kid]
    # nothing lost: the same plaintext, read with a keyring loaded fresh from disk
    fresh = Keyring.load(app.settings.home)
    assert old_kid not in fresh.deks
    assert not (app.settings.home / f"dek-{old_kid}.key").exists()
    app.keyring = fresh
    assert plaintext_dump(app) == before
    assert totp_secrets(app) == secrets_before
    # every *_enc column of the schema was covered, employees' too
    covered = set(result.columns)
    assert {
        "employee.tin_enc",
        "employee.totp_secret_enc",
        "taxpayer.tin_enc",
        "tax_return.account_enc",
        "tax_return.routing_enc",
    } <= covered
    assert covered == {f"{t.name}.{c}" for t, cs in encrypted_tables() for c in cs}
    with app.engine.connect() as conn:
        leaf = conn.execute(text("SELECT leaf_input FROM audit_entry ORDER BY idx DESC")).first()[0]
    entry = json.loads(leaf)
    assert entry["type"] == "system:keys:rotate" and entry["outcome"] == "success"
    assert entry["detail"]["retired"] == [old_kid]
    # and a second rotation works on top of the first
    again = rotate(app, actor="os:tester")
    assert set(count_by_kid(app)) == {again.new_kid}


def test_refuses_to_retire_a_key_still_in_use(populated):
    app = populated
    old_kid = app.keyring.active_kid
    stale = Keyring.load(app.settings.home)  # another process that loaded keys before rotation
    with app.engine.connect() as conn:
        tid = conn.execute(select(m.Taxpayer.id).order_by(m.Taxpayer.id)).scalars().first()

    def write_behind(table: str, _n: int) -> None:
        # during the rotation, the stale process writes a phone number with the old key
        if table == "taxpayer":
            with app.engine.begin() as conn:
                conn.execute(
                    update(m.Taxpayer)
                    .where(m.Taxpayer.id == tid)
                    .values(phone_enc=stale.encrypt("555-555-0199", "taxpayer.phone"))
                )

    with pytest.raises(IdrsError, match="still in use"):
        rotate(app, actor="os:tester", progress=write_behind)
    # the old key was kept: the value it encrypts still reads
    assert (app.settings.home / f"dek-{old_kid}.key").exists()
    fresh = Keyring.load(app.settings.home)
    assert old_kid in fresh.deks
    with app.engine.connect() as conn:
        blob = conn.execute(select(m.Taxpayer.phone_enc).where(m.Taxpayer.id == tid)).scalar_one()
    assert Keyring.kid_of(blob) == old_kid
    assert fresh.decrypt(blob, "taxpayer.phone") == "555-555-0199"
    # run again once the other process is gone: now it completes
    app.keyring = fresh
    result = rotate(app, actor="os:tester")
    assert old_kid in result.retired
    assert set(count_by_kid(app)) == {result.new_kid}
