"""The seed's export in the import format (benchmarks, tests, fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from idrs.masterfile.seed.population import Generator, SeedPlan, dashed, generate, make_pools
from idrs.masterfile.seed.records import Addr, Person, Ret


def _money(cents: int) -> float | int:
    return cents // 100 if cents % 100 == 0 else cents / 100


def _addr_dict(a: Addr) -> dict[str, str]:
    return {"street": a.street, "city": a.city, "state": a.state, "zip": a.zip}


def to_import_dict(p: Person) -> dict[str, Any]:
    """One seeded person as a line of the import format (docs/interface.md, with its extensions)."""

    def ret(r: Ret) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tax_year": r.tax_year,
            "filing_status": r.filing_status,
            "address": _addr_dict(r.address),
            "dependents": [
                {
                    "tin": dashed(d.tin),
                    "relationship": d.relationship,
                    "name": {"first": d.name.first, "last": d.name.last},
                    "adoption_pending": d.adoption_pending,
                }
                for d in r.dependents
            ],
            "w2": [
                {
                    "employer_ein": f"{w.employer_ein[:2]}-{w.employer_ein[2:]}",
                    "employer_name": w.employer_name,
                    "wages": _money(w.wages),
                    "withholding": _money(w.withholding),
                }
                for w in r.w2
            ],
            "k1": [
                {
                    "entity_ein": f"{k.entity_ein[:2]}-{k.entity_ein[2:]}",
                    "entity_name": k.entity_name,
                    "share_pct": k.share_pct,
                }
                for k in r.k1
            ],
            "schedule_c": [
                {
                    "business_name": c.business_name,
                    "ein": f"{c.ein[:2]}-{c.ein[2:]}" if c.ein else None,
                }
                for c in r.schedule_c
            ],
            "agi": _money(r.agi),
            "total_tax": _money(r.total_tax),
        }
        if r.spouse_tin:
            out["spouse_tin"] = dashed(r.spouse_tin)
        if r.preparer_ptin:
            out["preparer_ptin"] = r.preparer_ptin
        if r.refund is not None:
            dd = r.refund.direct_deposit
            out["refund"] = {
                "amount": _money(r.refund.amount),
                "direct_deposit": ({"routing": dd.routing, "account": dd.account} if dd else None),
            }
        return out

    rec: dict[str, Any] = {
        "tin": dashed(p.tin),
        "name": {
            "first": p.name.first,
            "middle": p.name.middle,
            "last": p.name.last,
            "suffix": p.name.suffix,
        },
        "date_of_birth": p.date_of_birth.isoformat(),
        "address": _addr_dict(p.address),
        "markers": sorted(set(p.markers)),
        "returns": [ret(r) for r in p.returns],
        "transactions": [
            {
                "tax_year": t.tax_year,
                "tc": t.tc,
                "date": t.date.isoformat(),
                "amount": _money(t.amount),
                **({"action_code": t.action_code} if t.action_code else {}),
            }
            for t in p.transactions
        ],
        "information_returns": [
            {
                "tax_year": i.tax_year,
                "form": i.form,
                "payer_ein": f"{i.payer_ein[:2]}-{i.payer_ein[2:]}",
                "payer_name": i.payer_name,
                "amount": _money(i.amount),
                "withholding": _money(i.withholding),
            }
            for i in p.information_returns
        ],
    }
    if p.phone:
        rec["phone"] = p.phone
    return rec


def export_jsonl(path: Path, *, taxpayers: int, seed_value: int = 1) -> int:
    """Write the population of ``seed_value`` as an import file; returns the line count."""
    gen = Generator(SeedPlan(seed_value, taxpayers, 0), make_pools(seed_value))
    n = 0
    with Path(path).open("w") as fh:
        for p in generate(gen):
            fh.write(json.dumps(to_import_dict(p), separators=(",", ":")) + "\n")
            n += 1
    return n
