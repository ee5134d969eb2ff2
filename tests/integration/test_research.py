"""Every research command code through THE service function, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idrs import research
from idrs.audit.models import AuditEntry
from idrs.errors import AccessDenied, IdrsError, NotFound
from idrs.people import auth, service, totp
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

EXAMINER_TIN = "900-40-0001"


def _sign_in(app, seid: str, roles: str, tin: str, unit: str | None = None) -> str:
    creds = service.create_employee(
        app,
        unax_attested_at=app.clock.now(),
        seid=seid,
        name=f"Employee {seid}",
        tin=tin,
        roles=roles,
        unit=unit,
    )
    code = totp.code_at(creds["totp_secret"], app.clock.now())
    token, _, _ = auth.sign_in(app, seid, creds["password"], code, "test")
    return token


@pytest.fixture
def world(app):
    f.carter_household(app)
    token = _sign_in(app, "EX001", "examiner", EXAMINER_TIN)
    f.open_case(app, "EX001", f.CARTER, "C-1")
    return app, token


def _entry(app, idx: int) -> dict:
    with app.engine.connect() as conn:
        leaf = conn.execute(select(AuditEntry.leaf_input).where(AuditEntry.idx == idx)).scalar_one()
    return json.loads(bytes(leaf))


def _run(app, token, command, tin=f.CARTER, **kw):
    return research.run(
        app, token=token, command=command, tin=tin, case="C-1", interface="test", **kw
    )


def _visible_or_masked(ans, path: str, value, expected) -> None:
    """Masking belongs to the decision point: a field is either shown as is or listed masked."""
    assert value == expected or path in ans.masked, (path, value)


def test_enmod_shows_the_entity_and_records_one_entry(world):
    app, token = world
    ans = _run(app, token, "enmod")
    assert ans.command == "ENMOD"
    d = ans.data
    _visible_or_masked(ans, "tin", d["tin"], "900-12-3456")
    _visible_or_masked(ans, "name.last", d["name"]["last"], "Carter")
    _visible_or_masked(ans, "date_of_birth", d["date_of_birth"], "1980-02-01")
    assert [r["tax_year"] for r in d["filing_status_history"]] == [2023, 2022]
    assert d["filing_status_history"][0]["filing_status"] == "MFJ"
    assert d["markers"] == ["identity_theft"]
    assert {a["source"] for a in d["address_history"]} == {"entity", "return"}
    entry = _entry(app, ans.audit_index)
    assert entry["type"] == "access:research:decide"
    assert entry["outcome"] == "allow"
    assert entry["actor"] == "EX001"
    assert entry["object"]["command"] == "ENMOD"
    assert entry["object"]["taxpayer"] == app.keyring.pseudonym("900123456")
    raw = json.dumps(entry)
    assert "900123456" not in raw and "900-12-3456" not in raw and "Carter" not in raw


def test_imfol_balances_and_status(world):
    app, token = world
    mods = {m["tax_year"]: m for m in _run(app, token, "IMFOL").data["modules"]}
    # 2023: 4,100.00 assessed − 7,100.00 withheld + 3,000.00 refunded = 0
    assert mods[2023]["balance"] == "0.00" and mods[2023]["status"] == "settled"
    assert mods[2023]["transactions"] == 3
    assert mods[2022]["status"] == "examination"  # TC 420 without 421
    assert mods[2022]["balance"] == "1000.00"


def test_txmod_needs_a_year_and_lists_transactions(world):
    app, token = world
    with pytest.raises(IdrsError, match="needs a tax year"):
        _run(app, token, "TXMOD")
    d = _run(app, token, "TXMOD", year=2023).data
    assert [t["tc"] for t in d["transactions"]] == ["150", "806", "846"]
    assert d["transactions"][1]["amount"] == "7100.00"
    assert d["module_exists"] is True
    empty = _run(app, token, "TXMOD", year=2019).data
    assert empty["module_exists"] is False and empty["transactions"] == []


def test_rtvue_shows_the_return_as_filed(world):
    app, token = world
    with pytest.raises(IdrsError, match="needs a tax year"):
        _run(app, token, "RTVUE")
    ans = _run(app, token, "RTVUE", year=2023)
    d = ans.data
    assert d["filing_status"] == "MFJ" and d["agi"] == "58000.00" and d["total_tax"] == "4100.00"
    _visible_or_masked(ans, "spouse_tin", d["spouse_tin"], "900-12-3457")
    assert d["w2"][0]["employer_name"] == "Acme Corp" and d["w2"][0]["wages"] == "61000.00"
    assert d["k1"][0]["share_pct"] == 50.0 and d["k1"][0]["entity_ein"] == "00-7654321"
    assert d["schedule_c"][0]["business_name"] == "Ann Carter Design"
    assert d["refund"]["amount"] == "3000.00"
    dd = d["refund"]["direct_deposit"]
    _visible_or_masked(ans, "refund.direct_deposit.account", dd["account"], "000123456789")
    _visible_or_masked(ans, "refund.direct_deposit.routing", dd["routing"], "800000006")
    assert len(d["dependents"]) == 2
    _visible_or_masked(ans, "dependents[0].tin", d["dependents"][0]["tin"], "900-12-3458")
    _visible_or_masked(
        ans, "dependents[1].adoption_pending", d["dependents"][1]["adoption_pending"], True
    )
    assert _run(app, token, "RTVUE", year=2018).data["return_filed"] is False


def test_inole_links_both_directions(world):
    app, token = world
    ans = _run(app, token, "INOLE")
    d = ans.data
    links = {(s["link"], s["tax_year"]) for s in d["spouses"]}
    # Ann named Ben on her 2023 return; Ben named Ann on his 2021 return.
    assert links == {("named_on_own_return", 2023), ("named_on_their_return", 2021)}
    spouse_tins = {s["tin"] for s in d["spouses"]}
    assert spouse_tins == {"900-12-3457"} or any(p.startswith("spouses") for p in ans.masked)
    assert len(d["dependents"]) == 2
    assert d["claimed_by"] == []
    f.open_case(app, "EX001", f.CARTER_CHILD, "C-2")
    child = research.run(
        app, token=token, command="INOLE", tin=f.CARTER_CHILD, case="C-2", interface="test"
    )
    assert [c["tax_year"] for c in child.data["claimed_by"]] == [2023]


def test_irptr_lists_information_returns(world):
    app, token = world
    d = _run(app, token, "IRPTR").data
    assert [(r["tax_year"], r["form"]) for r in d["information_returns"]] == [
        (2023, "W-2"),
        (2022, "1099-INT"),
    ]
    assert d["information_returns"][1]["amount"] == "123.45"
    only = _run(app, token, "IRPTR", year=2022).data
    assert [r["form"] for r in only["information_returns"]] == ["1099-INT"]


def test_names_searches_and_records_each_match(world):
    app, token = world
    ans = research.run(
        app,
        token=token,
        command="NAMES",
        tin=None,
        name="carter",
        reason="caller verification",
        interface="test",
    )
    found = ans.data["matches"]
    assert len(found) == 3
    entry = _entry(app, ans.audit_index)
    assert len(entry["object"]["matches"]) == 3
    assert app.keyring.pseudonym("900123456") in entry["object"]["matches"]
    narrowed = research.run(
        app,
        token=token,
        command="NAMES",
        tin=None,
        name="Carter,Ann",
        place="OH 45402",
        reason="caller verification",
        interface="test",
    )
    assert len(narrowed.data["matches"]) == 1
    none = research.run(
        app,
        token=token,
        command="NAMES",
        tin=None,
        name="Carter",
        place="TX",
        reason="caller verification",
        interface="test",
    )
    assert none.data["matches"] == []


def test_names_is_capped(world):
    app, token = world
    app.settings = app.settings.model_copy(update={"names_max_matches": 2})
    ans = research.run(
        app,
        token=token,
        command="NAMES",
        tin=None,
        name="Carter",
        reason="caller verification",
        interface="test",
    )
    assert len(ans.data["matches"]) == 2 and ans.data["truncated"] is True


def test_auditor_is_refused_and_the_refusal_is_recorded(world):
    app, _ = world
    token = _sign_in(app, "AU001", "auditor", "900-40-0002")
    with pytest.raises(AccessDenied) as exc:
        _run(app, token, "ENMOD")
    assert "NOT_IN_PROFILE" in exc.value.codes
    entry = _entry(app, exc.value.audit_index)
    assert entry["outcome"] == "deny" and "NOT_IN_PROFILE" in entry["reasons"]


def test_unauthenticated_calls_are_recorded(world):
    app, _ = world
    for bad in (None, "not-a-token"):
        with pytest.raises(AccessDenied) as exc:
            _run(app, bad, "ENMOD")
        assert exc.value.codes == ["AUTH_REQUIRED"]
        entry = _entry(app, exc.value.audit_index)
        assert entry["actor"] == "anonymous" and entry["outcome"] == "deny"


def test_unknown_tin_is_decided_and_recorded_before_not_found(world):
    app, token = world
    before = _count(app)
    with pytest.raises((NotFound, AccessDenied)):
        _run(app, token, "ENMOD", tin="900-49-9999")
    assert _count(app) == before + 1
    with app.engine.connect() as conn:
        leaf = conn.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx.desc())).first()[
            0
        ]
    assert json.loads(bytes(leaf))["object"]["taxpayer"] == app.keyring.pseudonym("900499999")


def _count(app) -> int:
    with app.engine.connect() as conn:
        return len(conn.execute(select(AuditEntry.idx)).all())


@pytest.mark.parametrize(
    ("command", "tin", "year", "message"),
    [
        ("ENMOD", "12345", None, "not a TIN"),
        ("ENMOD", "900-12-345x", None, "not a TIN"),
        ("XYZZY", f.CARTER, None, "ENMOD, IMFOL, TXMOD, RTVUE, INOLE, NAMES, IRPTR"),
        ("TXMOD", f.CARTER, None, "needs a tax year"),
    ],
)
def test_bad_input_is_one_clear_line_and_records_nothing(world, command, tin, year, message):
    app, token = world
    before = _count(app)
    with pytest.raises(IdrsError) as exc:
        _run(app, token, command, tin=tin, year=year)
    assert not isinstance(exc.value, AccessDenied)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert _count(app) == before


def test_audit_failure_denies_without_data(world, monkeypatch):
    app, token = world
    from idrs.audit import log

    def broken(engine, entry, **_):
        raise log.AuditUnavailable("down")

    monkeypatch.setattr(log, "append", broken)
    with pytest.raises(AccessDenied) as exc:
        _run(app, token, "ENMOD")
    assert exc.value.codes == ["AUDIT_UNAVAILABLE"]


def test_names_never_reveals_a_match_the_employee_could_not_open(world):
    """A name search is no way around the conflict rules: the spouse of the searching
    employee is left out of the answer and of the audit entry's matches."""
    app, _ = world
    token = _sign_in(app, "CS009", "csr", f.CARTER_SPOUSE)  # the employee IS Ann's spouse
    ans = research.run(
        app, token=token, command="NAMES", tin=None, name="carter", reason="caller", interface="t"
    )
    # An unrelated examiner finds the three Carters (test above); Ann's spouse finds none of
    # them: Ann (spouse), himself (self) and their child (relative) are all conflicted.
    assert ans.data["matches"] == []
    entry = _entry(app, ans.audit_index)
    assert entry["object"]["matches"] == []


def test_every_revealed_taxpayer_counts_toward_the_daily_ceiling(world):
    app, token = world
    app.settings = app.settings.model_copy(update={"daily_limit_default": 1})
    f.open_case(app, "EX001", f.CARTER_CHILD, "C-2")
    _run(app, token, "ENMOD")
    _run(app, token, "IMFOL")  # the same taxpayer again: still one distinct taxpayer
    with pytest.raises(AccessDenied) as denied:
        research.run(
            app, token=token, command="ENMOD", tin=f.CARTER_CHILD, case="C-2", interface="t"
        )
    assert denied.value.codes == ["RATE_LIMITED"]
    app.clock.advance(days=1)  # a new day, a new count (the session is renewed)
    fresh = _sign_in(app, "EX002", "examiner", "900-40-0002")
    f.open_case(app, "EX002", f.CARTER_CHILD, "C-3")
    ok = research.run(
        app, token=fresh, command="ENMOD", tin=f.CARTER_CHILD, case="C-3", interface="t"
    )
    assert ok.command == "ENMOD"
