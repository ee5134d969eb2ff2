"""Small writers of master-file rows for the tests (models + keyring, the same column names
the importer uses for encryption: "table.column" without "_enc").

Not the importer: just enough to give each command code something to show.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from idrs.access.models import CaseAssignment
from idrs.context import App
from idrs.db import session_scope
from idrs.identifiers import normalize_ein, normalize_tin
from idrs.masterfile.addresses import keys
from idrs.masterfile.models import (
    K1,
    W2,
    AddressRecord,
    Business,
    Dependent,
    InformationReturn,
    Marker,
    ScheduleC,
    TaxModule,
    Taxpayer,
    TaxReturn,
    Transaction,
)
from idrs.people.models import Employee

WHEN = datetime(2025, 4, 15, 12, 0, tzinfo=UTC)


def add_address(
    s: Session,
    tp: Taxpayer,
    addr: dict[str, str],
    *,
    year: int | None,
    source: str,
    valid_from: date,
) -> None:
    norm, street = keys(addr["street"], addr["city"], addr["state"], addr["zip"])
    s.add(
        AddressRecord(
            taxpayer_id=tp.id,
            tax_year=year,
            source=source,
            street=addr["street"],
            city=addr["city"],
            state=addr["state"],
            zip=addr["zip"],
            norm_key=norm,
            street_key=street,
            valid_from=valid_from,
        )
    )


def taxpayer(
    app: App,
    s: Session,
    tin: str,
    first: str,
    last: str,
    *,
    address: dict[str, str] | None = None,
    dob: str | None = "1980-02-01",
    phone: str | None = "937-555-0100",
    markers: tuple[str, ...] = (),
) -> Taxpayer:
    ring = app.keyring
    tin = normalize_tin(tin)
    tp = Taxpayer(
        tin_index=ring.tin_index(tin),
        tin_enc=ring.encrypt(tin, "taxpayer.tin"),
        first_name=first,
        middle_name="",
        last_name=last,
        suffix="",
        name_control=last.upper()[:4],
        dob_enc=ring.encrypt_opt(dob, "taxpayer.dob"),
        phone_enc=ring.encrypt_opt(phone, "taxpayer.phone"),
        created_at=WHEN,
        updated_at=WHEN,
    )
    s.add(tp)
    s.flush()
    if address:
        add_address(s, tp, address, year=None, source="entity", valid_from=date(2020, 1, 1))
    for m in markers:
        s.add(Marker(taxpayer_id=tp.id, marker=m))
    s.flush()
    return tp


def tax_return(
    app: App,
    s: Session,
    tp: Taxpayer,
    year: int,
    *,
    filing_status: str = "S",
    spouse_tin: str | None = None,
    agi: int = 5_800_000,
    tax: int = 410_000,
    refund: int | None = None,
    routing: str | None = None,
    account: str | None = None,
    dependents: list[dict[str, Any]] = (),
    w2: list[dict[str, Any]] = (),  # type: ignore[assignment]
    k1: list[dict[str, Any]] = (),
    schedule_c: list[dict[str, Any]] = (),  # type: ignore[assignment]
    address: dict[str, str] | None = None,
) -> TaxReturn:
    ring = app.keyring
    spouse = normalize_tin(spouse_tin) if spouse_tin else None
    ret = TaxReturn(
        taxpayer_id=tp.id,
        tax_year=year,
        filing_status=filing_status,
        spouse_tin_index=ring.tin_index(spouse) if spouse else None,
        spouse_tin_enc=ring.encrypt_opt(spouse, "tax_return.spouse_tin"),
        agi_cents=agi,
        total_tax_cents=tax,
        preparer_ptin="P00000001",
        refund_cents=refund,
        routing_enc=ring.encrypt_opt(routing, "tax_return.routing"),
        account_enc=ring.encrypt_opt(account, "tax_return.account"),
        bank_index=ring.blind_index(f"{routing}:{account}", "bank") if routing else None,
        received_at=datetime(year + 1, 4, 1, tzinfo=UTC),
    )
    s.add(ret)
    s.flush()
    for d in dependents:
        dt = normalize_tin(d["tin"])
        s.add(
            Dependent(
                return_id=ret.id,
                tin_index=ring.tin_index(dt),
                tin_enc=ring.encrypt(dt, "dependent.tin"),
                relationship=d["relationship"],
                first_name=d["first"],
                last_name=d["last"],
                adoption_pending=d.get("adoption_pending", False),
            )
        )
    for w in w2:
        ein = normalize_ein(w["ein"])
        _business(app, s, ein, w["name"], "employer")
        s.add(
            W2(
                return_id=ret.id,
                employer_ein_index=ring.blind_index(ein, "ein"),
                employer_ein_enc=ring.encrypt(ein, "w2.employer_ein"),
                employer_name=w["name"],
                wages_cents=w["wages"],
                withholding_cents=w["withholding"],
            )
        )
    for k in k1:
        ein = normalize_ein(k["ein"])
        s.add(
            K1(
                return_id=ret.id,
                entity_ein_index=ring.blind_index(ein, "ein"),
                entity_ein_enc=ring.encrypt(ein, "k1.entity_ein"),
                entity_name=k["name"],
                share_pct=k["share"],
            )
        )
    for c in schedule_c:
        ein = normalize_ein(c["ein"]) if c.get("ein") else None
        s.add(
            ScheduleC(
                return_id=ret.id,
                business_name=c["name"],
                ein_index=ring.blind_index(ein, "ein") if ein else None,
                ein_enc=ring.encrypt_opt(ein, "schedule_c.ein"),
            )
        )
    if address:
        add_address(s, tp, address, year=year, source="return", valid_from=date(year + 1, 4, 1))
    s.flush()
    return ret


def _business(app: App, s: Session, ein: str, name: str, kind: str) -> None:
    idx = app.keyring.blind_index(ein, "ein")
    if s.query(Business).filter(Business.ein_index == idx).first() is None:
        s.add(
            Business(
                ein_index=idx,
                ein_enc=app.keyring.encrypt(ein, "business.ein"),
                name=name,
                kind=kind,
            )
        )


def module(s: Session, tp: Taxpayer, year: int, txns: list[tuple[str, str, int]]) -> TaxModule:
    """``txns``: (tc, ISO date, amount in cents)."""
    mod = TaxModule(taxpayer_id=tp.id, tax_year=year, version=1)
    s.add(mod)
    s.flush()
    for tc, when, cents in txns:
        s.add(
            Transaction(
                module_id=mod.id,
                tc=tc,
                txn_date=date.fromisoformat(when),
                amount_cents=cents,
                source="import",
                posted_at=WHEN,
            )
        )
    s.flush()
    return mod


def info_return(
    app: App,
    s: Session,
    tin: str,
    year: int,
    form: str,
    payer_ein: str,
    payer: str,
    amount: int,
    withholding: int = 0,
) -> None:
    ring = app.keyring
    ein = normalize_ein(payer_ein)
    s.add(
        InformationReturn(
            payee_tin_index=ring.tin_index(normalize_tin(tin)),
            tax_year=year,
            form=form,
            payer_ein_index=ring.blind_index(ein, "ein"),
            payer_ein_enc=ring.encrypt(ein, "information_return.payer_ein"),
            payer_name=payer,
            amount_cents=amount,
            withholding_cents=withholding,
        )
    )


CARTER = "900-12-3456"
CARTER_SPOUSE = "900-12-3457"
CARTER_CHILD = "900-12-3458"
CARTER_ADOPTED = "900-12-3459"
ELM = {"street": "12 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"}


def carter_household(app: App) -> None:
    """Ann Carter (MFJ with Ben, a son, a child placed for adoption), two years, a refund."""
    with session_scope(app.engine) as s:
        ann = taxpayer(app, s, CARTER, "Ann", "Carter", address=ELM, markers=("identity_theft",))
        ben = taxpayer(app, s, CARTER_SPOUSE, "Ben", "Carter", address=ELM)
        taxpayer(app, s, CARTER_CHILD, "Cal", "Carter", address=ELM, dob="2015-06-01")
        tax_return(
            app,
            s,
            ann,
            2023,
            filing_status="MFJ",
            spouse_tin=CARTER_SPOUSE,
            refund=300_000,
            routing="800000006",
            account="000123456789",
            address=ELM,
            dependents=[
                {"tin": CARTER_CHILD, "relationship": "son", "first": "Cal", "last": "Carter"},
                {
                    "tin": CARTER_ADOPTED,
                    "relationship": "son",
                    "first": "Dee",
                    "last": "Carter",
                    "adoption_pending": True,
                },
            ],
            w2=[
                {
                    "ein": "00-1234567",
                    "name": "Acme Corp",
                    "wages": 6_100_000,
                    "withholding": 710_000,
                }
            ],
            k1=[{"ein": "00-7654321", "name": "Carter & Diaz LLP", "share": 50.0}],
            schedule_c=[{"name": "Ann Carter Design", "ein": "00-2222222"}],
        )
        tax_return(app, s, ann, 2022, filing_status="S")
        tax_return(app, s, ben, 2021, filing_status="MFS", spouse_tin=CARTER)
        module(
            s,
            ann,
            2023,
            [
                ("150", "2024-04-15", 410_000),
                ("806", "2024-04-15", 710_000),
                ("846", "2024-05-01", 300_000),
            ],
        )
        module(s, ann, 2022, [("150", "2023-04-15", 100_000), ("420", "2023-09-01", 0)])
        info_return(app, s, CARTER, 2023, "W-2", "00-1234567", "Acme Corp", 6_100_000, 710_000)
        info_return(app, s, CARTER, 2022, "1099-INT", "00-3333333", "First Bank", 12_345)


def open_case(app: App, seid: str, tin: str, case_id: str) -> None:
    """Assign a case directly (the case service belongs to another package)."""
    with session_scope(app.engine) as s:
        emp = s.query(Employee).filter(Employee.seid == seid).one()
        s.add(
            CaseAssignment(
                case_id=case_id,
                employee_id=emp.id,
                tin_index=app.keyring.tin_index(normalize_tin(tin)),
                opened_at=app.clock.now(),
            )
        )


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import into a test module to make argon2 cheap there (restored after each test)."""
    from idrs.people import passwords

    monkeypatch.setattr(passwords, "_HASHER", passwords._HASHER)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", passwords._DUMMY_HASH)
    passwords.use_weak_hashing_for_tests_only()
