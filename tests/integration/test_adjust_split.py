"""Two-person integrity cannot be split (issue 13.1), on SQLite and PostgreSQL.

The amount thresholds apply to the SUM of the changes of one kind on a module and on a
taxpayer within IDRS_ADJ_WINDOW_DAYS, every employee's, pending ones included: the change
that reaches the threshold waits and its reasons name the earlier adjustments. Shown through
the service, the HTTP API and the CLI (they share ``adjustments.service``). Each test here
fails on the code before the change (where every change was judged alone).
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from idrs.adjustments import service
from idrs.adjustments.apply import VersionConflict
from idrs.adjustments.rules import Thresholds
from tests.integration import access_fixtures as af
from tests.integration import adjust_world as w
from tests.integration import factories as f

CARTER = w.CARTER
PENDING = "pending_approval"


@pytest.fixture
def world(app, tmp_path):
    return app, w.build(app, tmp_path)


def abate(app, token, amount, year=2023, case="C-1", tc="291", **more):
    return service.request(
        app,
        token=token,
        tin=CARTER,
        command="ADJ54",
        case=case,
        reason="split test",
        interface="test",
        tax_year=year,
        tc=tc,
        amount=amount,
        **more,
    )


def statuses(app) -> dict[int, str]:
    with app.engine.connect() as conn:
        return {
            int(i): s
            for i, s in conn.execute(
                text("SELECT id, status FROM adjustment_request ORDER BY id")
            ).all()
        }


def test_five_abatements_of_999_99_on_one_module_cannot_all_apply(world):
    """The attack of the issue: five abatements of $999.99, each under the $1,000 threshold."""
    app, tok = world
    assert app.settings.adj_abatement_cents == 100_000
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    results = [abate(app, tok["EX1"], "999.99") for _ in range(5)]
    first, *rest = results
    assert first.status == "applied"
    assert [r.status for r in rest] == [PENDING] * 4
    for n, r in enumerate(rest, start=1):
        assert r.requires == ["TWO_PERSON_REQUIRED", "ABATEMENT_THRESHOLD"]
        (reason,) = r.reasons
        # every earlier change counts, the pending ones included
        assert reason["with"] == [x.adjustment_id for x in results[:n]]
        assert reason["scope"] == "module" and reason["total_cents"] == 99_999 * (n + 1)
        assert str(first.adjustment_id) in reason["message"]
    assert w.balance(app, CARTER, 2023) == "-999.99"  # only the first took effect
    # the approvers see why, and the audit entry names the earlier changes
    listed = service.pending(app, token=tok["MG1"], interface="test")["adjustments"]
    assert listed[0]["reasons"][0]["with"] == [first.adjustment_id]
    entry = w.entry(app, rest[0].audit_index)
    assert entry["detail"]["thresholds"]["ABATEMENT_THRESHOLD"]["with"] == [first.adjustment_id]


def test_the_change_that_crosses_the_sum_waits_not_the_ones_below(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    below = [abate(app, tok["EX1"], "300") for _ in range(3)]  # $900 in all: below $1,000
    assert [r.status for r in below] == ["applied"] * 3
    crossing = abate(app, tok["EX1"], "100")  # exactly $1,000: the threshold is reached
    assert crossing.status == PENDING
    assert crossing.reasons[0]["with"] == [r.adjustment_id for r in below]
    assert crossing.reasons[0]["total_cents"] == 100_000
    assert (
        "adjustments " + ", ".join(str(r.adjustment_id) for r in below)
        in crossing.reasons[0]["message"]
    )


def test_split_across_employees_is_summed(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    w.look(app, tok["EX2"], "TXMOD", year=2023, case="C-5")
    mine = abate(app, tok["EX1"], "600")
    assert mine.status == "applied"
    theirs = abate(app, tok["EX2"], "600", case="C-5", base_version=mine.version)
    assert theirs.status == PENDING and theirs.reasons[0]["with"] == [mine.adjustment_id]


def test_split_across_modules_of_one_taxpayer_is_summed(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    w.look(app, tok["EX1"], "TXMOD", year=2022)
    one = abate(app, tok["EX1"], "600", year=2023)
    other = abate(app, tok["EX1"], "600", year=2022)
    assert one.status == "applied" and other.status == PENDING
    (reason,) = other.reasons
    assert reason["scope"] == "taxpayer" and reason["with"] == [one.adjustment_id]
    assert "taxpayer's modules" in reason["message"]


def test_increases_are_summed_too_and_kinds_are_apart(world):
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    up = [abate(app, tok["EX1"], "6000", tc="290") for _ in range(2)]
    assert [r.status for r in up] == ["applied", PENDING]
    assert up[1].requires == ["TWO_PERSON_REQUIRED", "INCREASE_THRESHOLD"]
    # an abatement is another kind: the increases do not count towards it
    assert abate(app, tok["EX1"], "10").status == "applied"


def test_a_reversal_counts_by_its_effect(world):
    """Reversing an increase is an abatement: it counts with the abatements."""
    app, tok = world
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    inc = abate(app, tok["EX1"], "900", tc="290")
    ab = abate(app, tok["EX1"], "900")
    assert (inc.status, ab.status) == ("applied", "applied")
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    back = service.reverse(
        app,
        token=tok["EX1"],
        adjustment_id=inc.adjustment_id,
        case="C-1",
        reason="assessed in error",
        interface="test",
    )
    assert back.status == PENDING and back.reasons[0]["with"] == [ab.adjustment_id]


def test_changes_outside_the_window_do_not_count(world):
    app, tok = world
    app.settings = app.settings.model_copy(update={"adj_window_days": 5})
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    old = abate(app, tok["EX1"], "600")
    app.clock.advance(days=5, minutes=1)
    new = abate(app, tok["EX1"], "600")
    assert (old.status, new.status) == ("applied", "applied")
    app.clock.advance(days=1)  # within 5 days of the second: it counts again
    assert abate(app, tok["EX1"], "600").reasons[0]["with"] == [new.adjustment_id]


def test_rejected_and_expired_requests_do_not_count_applied_ones_still_do(world):
    """Decision: a rejected or expired request never changed the account, so it leaves the
    sum; the applied ones stay in it, so a rejected split cannot be retried piecemeal."""
    app, tok = world
    service.configure(app, Thresholds(pending_hours=1))
    try:
        w.look(app, tok["EX1"], "TXMOD", year=2023)
        big = abate(app, tok["EX1"], "5000")
        assert big.status == PENDING
        small = abate(app, tok["EX1"], "10")  # the pending $5,000 counts
        assert small.status == PENDING and small.reasons[0]["with"] == [big.adjustment_id]
        service.reject(app, token=tok["MG1"], adjustment_id=big.adjustment_id, interface="test")
        app.clock.advance(minutes=61)
        service.expire_due(app)
        assert statuses(app)[small.adjustment_id] == "expired"
        first = abate(app, tok["EX1"], "600")
        assert first.status == "applied"  # neither the rejected nor the expired one counts
        retry = abate(app, tok["EX1"], "600")
        assert retry.status == PENDING and retry.reasons[0]["with"] == [first.adjustment_id]
    finally:
        service.configure(app, Thresholds())


def test_window_zero_judges_each_change_alone(world):
    app, tok = world
    app.settings = app.settings.model_copy(update={"adj_window_days": 0})
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    app.clock.advance(seconds=1)
    a = abate(app, tok["EX1"], "600")
    app.clock.advance(seconds=1)
    assert (a.status, abate(app, tok["EX1"], "600").status) == ("applied", "applied")


def test_concurrent_changes_on_two_modules_cannot_both_slip_under(world):
    """Writers race on the two modules of one taxpayer (no version conflict between them):
    under the per-taxpayer lock the applied abatements never reach the threshold together."""
    app, tok = world
    writers = 6
    tokens = []
    for i in range(writers):
        seid = f"S{i:02d}"
        af.add_employee(app, seid, f"900-42-{i + 1:04d}", "examiner", "HQ")
        f.open_case(app, seid, CARTER, f"S-{i}")
        tokens.append(w.new_session(app, seid))
    years = [2023 if i % 2 else 2022 for i in range(writers)]
    for i, t in enumerate(tokens):
        w.look(app, t, "TXMOD", year=years[i], case=f"S-{i}")
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            start.wait()
            with contextlib.suppress(VersionConflict):
                abate(app, tokens[i], "600", year=years[i], case=f"S-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    with app.engine.connect() as conn:
        applied = conn.execute(
            text(
                "SELECT COALESCE(SUM(amount_cents), 0), count(*) FROM adjustment_request"
                " WHERE status = 'applied'"
            )
        ).one()
        pending = conn.execute(
            text("SELECT count(*) FROM adjustment_request WHERE status = 'pending_approval'")
        ).scalar()
    assert applied[0] < 100_000 and applied[1] >= 1
    assert applied[1] + pending >= 2  # the others waited (or met a version conflict)
    assert w.log_consistent(app)


# ----------------------------------------------------------------------------- the API and the CLI


def test_api_the_crossing_change_waits_with_its_reasons(world):
    from idrs.api.app import create_app

    app, tok = world
    client = TestClient(create_app(app))
    h = {"Authorization": f"Bearer {tok['EX1']}"}
    w.look(app, tok["EX1"], "TXMOD", year=2023)
    body = {
        "command": "ADJ54",
        "case": "C-1",
        "reason": "x",
        "tax_year": 2023,
        "tc": "291",
        "amount": "999.99",
    }
    one = client.post("/api/v1/accounts/900123456/adjustments", headers=h, json=body)
    assert one.status_code == 201 and one.json()["status"] == "applied", one.text
    two = client.post("/api/v1/accounts/900123456/adjustments", headers=h, json=body)
    assert two.status_code == 201, two.text
    out = two.json()
    assert out["status"] == PENDING
    assert out["requires"] == ["TWO_PERSON_REQUIRED", "ABATEMENT_THRESHOLD"]
    assert out["reasons"][0]["code"] == "ABATEMENT_THRESHOLD"
    assert out["reasons"][0]["with"] == [one.json()["adjustment_id"]]
    listed = client.get(
        "/api/v1/adjustments?status=pending", headers={"Authorization": f"Bearer {tok['MG1']}"}
    ).json()
    assert listed["adjustments"][0]["reasons"][0]["with"] == [one.json()["adjustment_id"]]
    assert w.balance(app, CARTER, 2023) == "-999.99"


def test_cli_the_crossing_change_waits_with_its_reasons(world, monkeypatch, capsys):
    import idrs.cli.adjust  # noqa: F401 - registers `idrs adjust`
    from idrs.cli import main
    from idrs.cli.people import write_token
    from idrs.clock import SystemClock
    from idrs.config import get_settings

    app, _ = world
    app.clock = SystemClock()  # the CLI runs on the system clock: sessions made for now
    tok = w.new_session(app, "EX1")
    w.look(app, tok, "TXMOD", year=2023)
    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    get_settings.cache_clear()
    write_token(app.settings.home, tok)
    args = [
        "adjust",
        "request",
        "ADJ54",
        "900-12-3456",
        "--case",
        "C-1",
        "--reason",
        "fix",
        "--year",
        "2023",
        "--tc",
        "291",
        "--amount",
        "999.99",
    ]
    try:
        main([*args, "--json"])
        first = json.loads(capsys.readouterr().out)
        assert first["status"] == "applied"
        main([*args, "--json"])
        second = json.loads(capsys.readouterr().out)
        assert second["status"] == PENDING
        assert second["reasons"][0]["with"] == [first["adjustment_id"]]
        main(args)  # the text form says why in words
        said = capsys.readouterr().out
        assert "ABATEMENT_THRESHOLD" in said and str(first["adjustment_id"]) in said
    finally:
        get_settings.cache_clear()
    assert w.balance(app, CARTER, 2023) == "-999.99"
