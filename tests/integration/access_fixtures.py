"""A population with every relationship the conflict index must find, fed through the importer.

The employee EMP (examiner, unit U1) is linked to:

- SPOUSE      on EMP's own 2023 MFJ return;
- EXSPOUSE    only on EXSPOUSE's own 2019 MFS return (visible only from the other side);
- CHILD       claimed by EMP (2023); GRANDCHILD claimed by CHILD (2024, two links);
- PARENT      who claimed EMP (2012, only on PARENT's return); SIBLING also claimed by PARENT;
- INLAW       who claimed SPOUSE (2014); GREAT claimed by GRANDCHILD (three links: not a conflict);
- HOUSEMATE   same dwelling in 2023, written differently ("12 Elm Street, Apartment 4B",
              ZIP+4) from EMP's "12 ELM ST #4b";
- BANKMATE    refund 2024 to EMP's 2023 refund account;
- PARTNER     K-1 from the same partnership as EMP;
- BOSS        owns (Schedule C EIN) the business that issued EMP a W-2;
- FRIEND      declared by EMP (kind friend).

and NOT linked to (allowed with a case): SURNAME (same last name), NEIGHBOR (same street,
other apartment), BIGCO (W-2 from the same large employer), PREPARED (same paid preparer),
LATER (EMP's dwelling, but another year).

Other employees (SEIDs): COWORKER (same unit as EMP, also a taxpayer), OTHERU (unit U2),
AUDITOR (no command codes, U3), CSR (unit U4), HOLDER (unit U4, authorities
employee_accounts + sensitive_accounts). CELEB carries the high_profile marker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from idrs.access import conflicts, service
from idrs.audit.events import Actor
from idrs.context import App
from idrs.db import session_scope
from idrs.identifiers import synthetic_routing
from idrs.masterfile.importer import import_file
from idrs.people.models import Employee, Unit

T = {
    name: f"900-{10 + i // 100:02d}-{1000 + i:04d}"
    for i, name in enumerate(
        [
            "EMP",
            "SPOUSE",
            "EXSPOUSE",
            "CHILD",
            "GRANDCHILD",
            "GREAT",
            "PARENT",
            "SIBLING",
            "INLAW",
            "HOUSEMATE",
            "BANKMATE",
            "PARTNER",
            "BOSS",
            "FRIEND",
            "SURNAME",
            "NEIGHBOR",
            "BIGCO",
            "PREPARED",
            "LATER",
            "COWORKER",
            "OTHERUNIT",
            "CELEB",
            "UNRELATED",
            "CSRTIN",
            "HOLDERTIN",
            "AUDITORTIN",
        ]
    )
}
EXPECTED = {
    "EMP": {"CONFLICT_SELF"},
    "SPOUSE": {"CONFLICT_SPOUSE", "CONFLICT_HOUSEHOLD"},
    "EXSPOUSE": {"CONFLICT_SPOUSE"},
    "CHILD": {"CONFLICT_RELATIVE"},
    "GRANDCHILD": {"CONFLICT_RELATIVE"},
    "PARENT": {"CONFLICT_RELATIVE"},
    "SIBLING": {"CONFLICT_RELATIVE"},
    "INLAW": {"CONFLICT_RELATIVE"},
    "HOUSEMATE": {"CONFLICT_HOUSEHOLD"},
    "BANKMATE": {"CONFLICT_FINANCIAL"},
    "PARTNER": {"CONFLICT_BUSINESS"},
    "BOSS": {"CONFLICT_BUSINESS"},
    "FRIEND": {"CONFLICT_DECLARED"},
    "COWORKER": {"CONFLICT_COWORKER", "PROTECTED_EMPLOYEE_ACCOUNT"},
    "OTHERUNIT": {"PROTECTED_EMPLOYEE_ACCOUNT"},
    "CELEB": {"SENSITIVE_ACCOUNT"},
}
UNRELATED = ["SURNAME", "NEIGHBOR", "BIGCO", "PREPARED", "LATER", "UNRELATED", "GREAT"]

HOME = {"street": "12 ELM ST #4b", "city": "Dayton", "state": "OH", "zip": "45402"}
HOME_OTHER_SPELLING = {
    "street": "12 Elm Street, Apartment 4B",
    "city": "DAYTON",
    "state": "oh",
    "zip": "45402-1234",
}
NEXT_DOOR = {"street": "12 Elm St Apt 5C", "city": "Dayton", "state": "OH", "zip": "45402"}
EIN_PARTNERSHIP = "00-1000001"
EIN_BOSS = "00-1000002"
EIN_BIG = "00-1000003"
BANK = {"routing": synthetic_routing(7), "account": "000123456789"}
PTIN = "P00000077"


def _addr(n: int) -> dict[str, str]:
    return {"street": f"{100 + n} Oak Ave", "city": "Columbus", "state": "OH", "zip": "43004"}


def _ret(year: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tax_year": year,
        "filing_status": "S",
        "agi": 50000.0,
        "total_tax": 4000.0,
    }
    base.update(kw)
    return base


def _dep(tin: str, rel: str = "son") -> dict[str, Any]:
    return {"tin": tin, "relationship": rel, "name": {"first": "Dep", "last": "Endent"}}


def records() -> list[dict[str, Any]]:
    """The raw records (import format) of the population."""
    recs: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(T):
        last = "Carter" if name in ("EMP", "SURNAME") else f"Person{i}"
        recs[name] = {
            "tin": T[name],
            "name": {"first": name.title(), "last": last},
            "address": _addr(i),
            "returns": [],
        }
    recs["EMP"]["returns"] = [
        _ret(
            2023,
            filing_status="MFJ",
            spouse_tin=T["SPOUSE"],
            address=HOME,
            dependents=[_dep(T["CHILD"])],
            preparer_ptin=PTIN,
            w2=[
                {
                    "employer_ein": EIN_BOSS,
                    "employer_name": "Boss Shop",
                    "wages": 1000.0,
                    "withholding": 100.0,
                },
                {
                    "employer_ein": EIN_BIG,
                    "employer_name": "Big Co",
                    "wages": 40000.0,
                    "withholding": 4000.0,
                },
            ],
            k1=[{"entity_ein": EIN_PARTNERSHIP, "entity_name": "Elm Partners", "share_pct": 50.0}],
            refund={"amount": 300.0, "direct_deposit": BANK},
        ),
    ]
    recs["SPOUSE"]["returns"] = [_ret(2023, filing_status="MFJ", spouse_tin=T["EMP"], address=HOME)]
    recs["EXSPOUSE"]["returns"] = [_ret(2019, filing_status="MFS", spouse_tin=T["EMP"])]
    recs["CHILD"]["returns"] = [_ret(2024, dependents=[_dep(T["GRANDCHILD"], "grandchild")])]
    recs["GRANDCHILD"]["returns"] = [_ret(2024, dependents=[_dep(T["GREAT"])])]
    recs["PARENT"]["returns"] = [
        _ret(2012, filing_status="HOH", dependents=[_dep(T["EMP"]), _dep(T["SIBLING"], "daughter")])
    ]
    recs["INLAW"]["returns"] = [_ret(2014, filing_status="HOH", dependents=[_dep(T["SPOUSE"])])]
    recs["HOUSEMATE"]["returns"] = [_ret(2023, address=HOME_OTHER_SPELLING)]
    recs["NEIGHBOR"]["returns"] = [_ret(2023, address=NEXT_DOOR)]
    recs["LATER"]["returns"] = [_ret(2025, address=HOME)]
    recs["BANKMATE"]["returns"] = [_ret(2024, refund={"amount": 10.0, "direct_deposit": BANK})]
    recs["PARTNER"]["returns"] = [
        _ret(
            2023,
            k1=[{"entity_ein": EIN_PARTNERSHIP, "entity_name": "Elm Partners", "share_pct": 50.0}],
        )
    ]
    recs["BOSS"]["returns"] = [
        _ret(2023, schedule_c=[{"business_name": "Boss Shop", "ein": EIN_BOSS}])
    ]
    recs["BIGCO"]["returns"] = [
        _ret(
            2023,
            w2=[
                {
                    "employer_ein": EIN_BIG,
                    "employer_name": "Big Co",
                    "wages": 1.0,
                    "withholding": 0.0,
                }
            ],
        )
    ]
    recs["PREPARED"]["returns"] = [_ret(2023, preparer_ptin=PTIN)]
    recs["CELEB"]["markers"] = ["high_profile"]
    return list(recs.values())


def write_jsonl(path: Path, recs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def add_employee(
    app: App,
    seid: str,
    tin: str | None,
    roles: str,
    unit: str,
    authorities: str = "",
    profile: str | None = None,
) -> int:
    """Insert an employee row directly (no credentials: the decision point does not need them)."""
    from idrs.people.roles import ROLE_CODES
    from idrs.vocabulary import Role

    with session_scope(app.engine) as s:
        u = s.scalar(select(Unit).where(Unit.code == unit))
        if u is None:
            u = Unit(code=unit, name=unit, ceiling="")
            s.add(u)
            s.flush()
        if profile is None:
            codes: set[str] = set()
            for r in roles.split(","):
                codes |= ROLE_CODES.get(Role(r), frozenset())
            profile = ",".join(sorted(codes))
        emp = Employee(
            seid=seid,
            name=seid.title(),
            unit_id=u.id,
            tin_index=app.keyring.tin_index(tin.replace("-", "")) if tin else None,
            roles=roles,
            profile=profile,
            authorities=authorities,
            created_at=app.clock.now(),
            training_attested_at=app.clock.now(),  # UNAX training current
        )
        s.add(emp)
        s.flush()
        return emp.id


def build(app: App, tmp: Path) -> dict[str, int]:
    """Import the population, add the employees, build the index. Returns SEID → id."""
    import_file(app, write_jsonl(tmp / "population.jsonl", records()), actor="test")
    ids = {
        "EMP": add_employee(app, "EMP", T["EMP"], "examiner", "U1"),
        "COWORKER": add_employee(app, "COWORKER", T["COWORKER"], "examiner", "U1"),
        "OTHERUNIT": add_employee(app, "OTHERU", T["OTHERUNIT"], "examiner", "U2"),
        "CSR": add_employee(app, "CSR", T["CSRTIN"], "csr", "U4"),
        "HOLDER": add_employee(
            app,
            "HOLDER",
            T["HOLDERTIN"],
            "examiner",
            "U4",
            authorities="employee_accounts,sensitive_accounts",
        ),
        "AUDITOR": add_employee(app, "AUDITOR", T["AUDITORTIN"], "auditor", "U3"),
    }
    conflicts.rebuild_all(app)
    service.declare_relationship(
        app, seid="EMP", tin=T["FRIEND"], kind="friend", actor=Actor("os:test")
    )
    return ids
