"""One unit of work: a change and its audit entry commit together through the ONE appender.

The attack: someone with write access to the database truncates the audit log below its
last signed checkpoint (and rebuilds the node cache so the shortened tree looks clean), then
lets the system keep writing. The appender of ``audit/log.py`` refuses to write onto such a
log (its checkpoint floor); before the unit of work, adjustments had a second appender of
their own that skipped that check and wrote onto the truncated log, and people committed
their change first and recorded it afterwards (a change without its entry). Both are now
refused with nothing written, on SQLite and PostgreSQL. So are sign-ins and machine
sessions (they committed the session, then ended it when the entry failed, and a new
sign-in had already ended the older session), a machine principal's creation and its
secret's rotation; a failed sign-in's count still stands (a refusal is never weakened).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from idrs.adjustments import service as adjust
from idrs.audit import log
from idrs.audit import service as audit
from idrs.audit.models import AuditEntry
from idrs.context import App
from idrs.errors import AccessDenied
from idrs.people import admin, auth, systems, totp
from idrs.people import service as people
from idrs.people.models import Employee, SignInSession, SystemPrincipal, SystemSession, Unit
from tests.integration import adjust_world as aw
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture
from tests.integration.test_admin import (
    WIAM_CEILING,
    w,  # noqa: F401 - the administration fixture
)

from .audit_helpers import drop_triggers, prepare, rebuild_nodes


def truncate_below_checkpoint(app: App, cut: int = 2) -> int:
    """Sign a checkpoint over the whole log, then delete its last ``cut`` entries as an
    attacker would (triggers dropped, node cache rebuilt): returns the new size."""
    prepare(app)
    audit.checkpoint_now(app)
    size = log_size(app)
    drop_triggers(app)
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE idx >= :n"), {"n": size - cut})
    rebuild_nodes(app)
    assert log_size(app) == size - cut
    return size - cut


def log_size(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def test_plain_append_is_refused_on_a_truncated_log(app: App) -> None:
    """The reference behaviour the unit of work must share (audit/log.py's floor check)."""
    people.create_unit(app, "U1")
    people.create_unit(app, "U2")
    people.create_unit(app, "U3")
    truncate_below_checkpoint(app)
    with pytest.raises(log.AuditUnavailable):
        people.record(app, people.EventType.ADMIN_UNIT_CREATE, actor="os:test", obj={"unit": "X"})


def test_adjustment_onto_a_truncated_log_is_refused_and_writes_nothing(app: App, tmp_path) -> None:  # noqa: ANN001
    tok = aw.build(app, tmp_path)
    aw.look(app, tok["EX1"], "TXMOD", year=2023)
    size = truncate_below_checkpoint(app)
    before = aw.counts(app)
    version = aw.module_version(app, aw.CARTER, 2023)
    with pytest.raises(AccessDenied) as exc:
        adjust.request(app, token=tok["EX1"], tin=aw.CARTER, command="ADJ54", case="C-1",
                       reason="correcting the math", interface="test", tax_year=2023,
                       tc="291", amount="250.00")
    assert exc.value.codes == ["AUDIT_UNAVAILABLE"]
    # fail closed: no request, no transaction, no entry, no version bump, no balance change
    assert aw.counts(app) == before
    assert log_size(app) == size
    assert aw.module_version(app, aw.CARTER, 2023) == version
    assert aw.balance(app, aw.CARTER, 2023) == "0.00"


def test_people_change_onto_a_truncated_log_is_refused_and_writes_nothing(app: App) -> None:
    people.create_unit(app, "U1")
    people.create_unit(app, "U2")
    people.create_unit(app, "U3")
    size = truncate_below_checkpoint(app)
    with pytest.raises(log.AuditUnavailable):
        people.create_unit(app, "U4")
    with pytest.raises(log.AuditUnavailable):
        people.create_employee(app, seid="E77", name="Test Employee", tin=None,
                               roles="examiner", unit="U1", actor="os:test")
    with pytest.raises(log.AuditUnavailable):  # the unit HQ would be created on the way
        people.create_employee(app, seid="E78", name="Test Employee", tin=None,
                               roles="examiner", actor="os:test")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Employee)).scalar_one() == 0
        units = set(conn.execute(select(Unit.code)).scalars())
    assert units == {"U1", "U2", "U3"}
    assert log_size(app) == size


def test_people_change_and_entry_commit_together(app: App) -> None:
    """The happy path: the employee and their entry are both there, the entry last."""
    people.create_employee(app, seid="E77", name="Test Employee", tin=None,
                           roles="examiner", actor="os:test")
    with app.engine.connect() as conn:
        types = [bytes(r[0]) for r in conn.execute(
            text("SELECT leaf_input FROM audit_entry ORDER BY idx"))]
        assert conn.execute(select(func.count()).select_from(Employee)).scalar_one() == 1
    assert [b'"admin:unit:create"' in t for t in types] == [True, False]
    assert b'"admin:employee:create"' in types[1]
    assert aw.log_consistent(app)


def test_role_change_onto_a_truncated_log_is_refused_and_changes_nothing(w) -> None:  # noqa: ANN001, F811
    """A security administrator's profile change, activation and ceiling: refused, unchanged."""
    app = w.app
    full = w.emp("CS1").profile_set
    size = truncate_below_checkpoint(app)
    profile, changes = w.emp("CS1").profile, w.changes()
    with pytest.raises(log.AuditUnavailable):
        admin.request_change(app, w.actor("SA2"), seid="CS1",
                             codes=sorted(full - {"ENREQ", "REQ77"}), note="moved to phones")
    with pytest.raises(log.AuditUnavailable):
        admin.set_active(app, w.actor("SA1"), seid="SA3", active=False)
    with pytest.raises(log.AuditUnavailable):
        admin.set_ceiling(app, w.actor("SA2"), unit="WIAM", codes="ENMOD")
    assert (w.emp("CS1").profile, w.changes()) == (profile, changes)
    assert w.emp("SA3").active
    with app.engine.connect() as conn:
        ceiling = conn.execute(select(Unit.ceiling).where(Unit.code == "WIAM")).scalar_one()
    assert set(ceiling.split(",")) == set(WIAM_CEILING.split(","))
    assert log_size(app) == size


def _rows(app: App, *tables: type) -> tuple[object, ...]:
    """Every column of every row of ``tables``: any write shows."""
    with app.engine.connect() as conn:
        return tuple(
            tuple(tuple(r) for r in conn.execute(select(t.__table__).order_by(t.id)))  # type: ignore[attr-defined]
            for t in tables
        )


def test_sign_in_onto_a_truncated_log_is_refused_and_writes_nothing(app: App) -> None:
    creds = people.create_employee(app, seid="EX100", name="Ann Examiner", tin=None,
                                   roles="examiner", unax_attested_at=app.clock.now())
    people.create_unit(app, "U1")
    live = auth.sign_in(app, "EX100", creds["password"],
                        totp.code_at(creds["totp_secret"], app.clock.now()), "test")
    app.clock.advance(seconds=60)  # a new TOTP step
    size = truncate_below_checkpoint(app)
    before = _rows(app, Employee, SignInSession)
    with pytest.raises(AccessDenied) as exc:
        auth.sign_in(app, "EX100", creds["password"],
                     totp.code_at(creds["totp_secret"], app.clock.now()), "test")
    assert exc.value.codes == ["AUDIT_UNAVAILABLE"]
    # no new session, the older one not superseded, the TOTP step not used, no entry
    assert _rows(app, Employee, SignInSession) == before
    assert auth.authenticate(app, live.token).seid == "EX100"
    assert log_size(app) == size
    # a wrong password is still counted (its entry cannot be written: the refusal stands)
    with pytest.raises(AccessDenied) as exc:
        auth.sign_in(app, "EX100", "wrong", totp.code_at(creds["totp_secret"],
                                                         app.clock.now()), "test")
    assert exc.value.codes == ["AUTH_FAILED"]
    with app.engine.connect() as conn:
        assert conn.execute(select(Employee.failed_logins)).scalar_one() == 1
    assert log_size(app) == size


def test_machine_principal_changes_onto_a_truncated_log_are_refused_and_write_nothing(
    app: App,
) -> None:
    feed = systems.add_system(app, name="phones", kind=systems.CONTACT_FEED, actor="os:test")
    people.create_unit(app, "U1")
    people.create_unit(app, "U2")
    size = truncate_below_checkpoint(app)
    before = _rows(app, SystemPrincipal, SystemSession)
    with pytest.raises(AccessDenied) as exc:
        systems.start_session(app, name="phones", secret=feed["secret"])
    assert exc.value.codes == ["AUDIT_UNAVAILABLE"]
    with pytest.raises(log.AuditUnavailable):
        systems.add_system(app, name="letters", kind=systems.CONTACT_FEED, actor="os:test")
    with pytest.raises(log.AuditUnavailable):
        systems.rotate_secret(app, name="phones", actor="os:test")
    assert _rows(app, SystemPrincipal, SystemSession) == before
    assert log_size(app) == size


def test_sign_in_and_machine_session_commit_with_their_entries(app: App) -> None:
    """The happy path: each session and its entry are both there, the entry last."""
    creds = people.create_employee(app, seid="EX100", name="Ann Examiner", tin=None,
                                   roles="examiner", unax_attested_at=app.clock.now())
    signed = auth.sign_in(app, "EX100", creds["password"],
                          totp.code_at(creds["totp_secret"], app.clock.now()), "test")
    feed = systems.add_system(app, name="phones", kind=systems.CONTACT_FEED, actor="os:test")
    systems.start_session(app, name="phones", secret=feed["secret"])
    assert auth.sign_out(app, signed.token, interface="test")
    with app.engine.connect() as conn:
        types = [bytes(r[0]) for r in conn.execute(
            text("SELECT leaf_input FROM audit_entry ORDER BY idx"))]
    assert [t.split(b'"type":"')[1].split(b'"')[0].decode() for t in types][-4:] == [
        "auth:signin:success", "admin:system:create", "auth:system:success", "auth:session:end"]
    assert aw.log_consistent(app)
