"""Sign-in: lockout, TOTP replay, one session per employee, idle and absolute expiry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from idrs.audit.models import AuditEntry
from idrs.errors import AccessDenied
from idrs.people import auth, service, totp
from idrs.people.models import Employee, SignInSession
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture


@pytest.fixture
def ann(app):
    return service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid="EX100",
        name="Ann Examiner",
        tin="900-41-0001",
        roles="examiner",
    )


def _code(app, creds, **shift):
    return totp.code_at(creds["totp_secret"], app.clock.now() + timedelta(**shift))


def _events(app) -> list[dict]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx)).scalars().all()
    return [json.loads(bytes(r)) for r in rows]


def _types(app) -> list[str]:
    return [e["type"] for e in _events(app)]


def test_sign_in_and_authenticate(app, ann):
    token, expires, ended = auth.sign_in(app, "ex100", ann["password"], _code(app, ann), "test")
    assert ended is False
    assert expires == app.clock.now() + timedelta(hours=app.settings.session_absolute_hours)
    emp = auth.authenticate(app, token)
    assert emp.seid == "EX100"
    with app.engine.connect() as conn:
        stored = conn.execute(select(SignInSession.token_hash)).scalars().all()
    assert token not in stored and len(stored[0]) == 64  # only the SHA-256 is kept
    assert "auth:signin:success" in _types(app)


def _refused(app, seid: str, password: str, code: str) -> list[str]:
    with pytest.raises(AccessDenied) as exc:
        auth.sign_in(app, seid, password, code, "test")
    return exc.value.codes


def test_repeated_failures_lock_for_a_growing_time_never_for_good(app, ann):
    threshold = app.settings.lockout_threshold
    base = app.settings.lockout_seconds
    for i in range(threshold):
        app.clock.advance(seconds=1)
        assert _refused(app, "EX100", f"wrong-{i}", _code(app, ann)) == ["AUTH_FAILED"]
    lockouts = [e for e in _events(app) if e["type"] == "auth:signin:lockout"]
    assert len(lockouts) == 1 and lockouts[0]["reasons"] == ["ACCOUNT_LOCKED"]
    assert lockouts[0]["detail"]["locked_seconds"] == base
    # While locked the right password and code are refused, exactly like a wrong password;
    # only the audit entry says why.
    app.clock.advance(seconds=base // 2)
    assert _refused(app, "EX100", ann["password"], _code(app, ann)) == ["AUTH_FAILED"]
    assert _events(app)[-1]["reasons"] == ["ACCOUNT_LOCKED"]
    # Once it lapses, one more failure locks it again for twice as long ...
    app.clock.advance(seconds=base)
    assert _refused(app, "EX100", "wrong-again", _code(app, ann)) == ["AUTH_FAILED"]
    assert _events(app)[-1]["detail"]["locked_seconds"] == 2 * base
    app.clock.advance(seconds=base + 1)
    assert _refused(app, "EX100", ann["password"], _code(app, ann)) == ["AUTH_FAILED"]
    # ... and no longer: the employee gets in without anyone's help.
    app.clock.advance(seconds=base)
    token, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    assert auth.authenticate(app, token).seid == "EX100"
    with app.engine.connect() as conn:
        row = conn.execute(select(Employee.failed_logins, Employee.locked_at)).first()
    assert tuple(row) == (0, None)


def test_the_lock_grows_to_its_ceiling_only(app, ann):
    for failures, expected in [(4, 0), (5, 60), (6, 120), (9, 900), (60, 900)]:
        assert auth.lock_seconds(app, failures) == expected


def test_a_security_administrator_can_unlock_sooner(app, ann):
    for i in range(app.settings.lockout_threshold):
        _refused(app, "EX100", f"wrong-{i}", _code(app, ann))
    admin = service.ensure_first_admin(app)
    assert admin is not None
    with pytest.raises(AccessDenied):
        service.unlock(app, "EX100", seid="EX100")  # not a security administrator
    service.unlock(app, admin["seid"], seid="EX100")
    assert "admin:employee:unlock" in _types(app)
    app.clock.advance(seconds=31)
    token, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    assert auth.authenticate(app, token).seid == "EX100"


def test_failures_do_not_say_which_factor_was_wrong(app, ann):
    with pytest.raises(AccessDenied) as bad_pw:
        auth.sign_in(app, "EX100", "nope", _code(app, ann), "test")
    with pytest.raises(AccessDenied) as bad_code:
        auth.sign_in(
            app,
            "EX100",
            ann["password"],
            "000000" if _code(app, ann) != "000000" else "111111",
            "test",
        )
    with pytest.raises(AccessDenied) as bad_seid:
        auth.sign_in(app, "NOSUCH", ann["password"], _code(app, ann), "test")
    assert bad_pw.value.reasons == bad_code.value.reasons == bad_seid.value.reasons


def test_success_resets_the_failure_count(app, ann):
    threshold = app.settings.lockout_threshold
    for _ in range(threshold - 1):
        with pytest.raises(AccessDenied):
            auth.sign_in(app, "EX100", "wrong", _code(app, ann), "test")
    auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    app.clock.advance(seconds=31)
    with pytest.raises(AccessDenied) as exc:
        auth.sign_in(app, "EX100", "wrong", _code(app, ann), "test")
    assert exc.value.codes == ["AUTH_FAILED"]  # counting started again


def test_a_totp_code_cannot_be_replayed(app, ann):
    code = _code(app, ann)
    auth.sign_in(app, "EX100", ann["password"], code, "test")
    app.clock.advance(seconds=5)  # same 30-second window
    with pytest.raises(AccessDenied) as exc:
        auth.sign_in(app, "EX100", ann["password"], code, "test")
    assert exc.value.codes == ["AUTH_FAILED"]
    # An older code (previous window, still within drift) is refused after a newer one was used.
    app.clock.advance(seconds=30)
    with pytest.raises(AccessDenied):
        auth.sign_in(app, "EX100", ann["password"], _code(app, ann, seconds=-60), "test")
    auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")


def test_one_session_per_employee(app, ann):
    first, _, ended1 = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    app.clock.advance(seconds=31)
    second, _, ended2 = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    assert (ended1, ended2) == (False, True)
    with pytest.raises(AccessDenied) as exc:
        auth.authenticate(app, first)
    assert exc.value.codes == ["AUTH_REQUIRED"] and "newer sign-in" in exc.value.reasons[0].message
    assert auth.authenticate(app, second).seid == "EX100"


def test_concurrent_sessions_when_configured(app, ann):
    app.settings = app.settings.model_copy(update={"concurrent_sessions": True})
    first, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    app.clock.advance(seconds=31)
    second, _, ended = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    assert ended is False
    assert auth.authenticate(app, first).seid == auth.authenticate(app, second).seid == "EX100"


def test_idle_expiry(app, ann):
    token, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    idle = app.settings.session_idle_minutes
    app.clock.advance(minutes=idle - 1)
    auth.authenticate(app, token)  # used: the idle timer restarts
    app.clock.advance(minutes=idle - 1)
    auth.authenticate(app, token)
    app.clock.advance(minutes=idle)
    with pytest.raises(AccessDenied) as exc:
        auth.authenticate(app, token)
    assert exc.value.codes == ["SESSION_EXPIRED"]
    with pytest.raises(AccessDenied) as again:
        auth.authenticate(app, token)
    assert again.value.codes == ["SESSION_EXPIRED"]
    expiries = [e for e in _events(app) if e["type"] == "auth:session:expire"]
    assert len(expiries) == 1 and expiries[0]["detail"]["why"] == "idle"


def test_absolute_expiry(app, ann):
    started = app.clock.now()
    token, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    for _ in range(app.settings.session_absolute_hours * 6 + 1):
        app.clock.advance(minutes=10)  # busy all day: never idle
        try:
            auth.authenticate(app, token)
        except AccessDenied as exc:
            assert exc.codes == ["SESSION_EXPIRED"]
            break
    else:
        pytest.fail("the session outlived its absolute lifetime")
    assert app.clock.now() - started >= timedelta(hours=app.settings.session_absolute_hours)
    expiries = [e for e in _events(app) if e["type"] == "auth:session:expire"]
    assert expiries[-1]["detail"]["why"] == "absolute"


def test_sign_out_ends_the_session(app, ann):
    token, _, _ = auth.sign_in(app, "EX100", ann["password"], _code(app, ann), "test")
    assert auth.sign_out(app, token) is True
    with pytest.raises(AccessDenied) as exc:
        auth.authenticate(app, token)
    assert exc.value.codes == ["AUTH_REQUIRED"]
    assert auth.sign_out(app, token) is False
    assert "auth:session:end" in _types(app)


def test_first_admin_is_created_once_and_opens_no_account(app):
    creds = service.ensure_first_admin(app)
    assert creds is not None and set(creds) == {"seid", "password", "totp_secret"}
    assert service.ensure_first_admin(app) is None
    with app.engine.connect() as conn:
        emp = conn.execute(select(Employee.roles, Employee.profile)).one()
    assert emp.roles == "security_admin" and emp.profile == ""


def test_totp_secret_and_tin_are_stored_encrypted(app, ann):
    with app.engine.connect() as conn:
        row = conn.execute(select(Employee.totp_secret_enc, Employee.tin_enc)).one()
    assert ann["totp_secret"].encode() not in bytes(row.totp_secret_enc)
    assert b"900410001" not in bytes(row.tin_enc)
    assert app.keyring.decrypt(row.totp_secret_enc, "employee.totp_secret") == ann["totp_secret"]
