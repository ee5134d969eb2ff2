"""Stateful property test: random imports, cases, contacts, declarations, role and unit
changes and access attempts, checked against an independent oracle computed from the raw
imported records (no code of idrs.access is used by the oracle).

Shows that no sequence lets an employee open a conflicted or unassigned account, and that
unrelated taxpayers are never refused: the oracle's reason set must equal the verdict's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, update

from idrs.access import conflicts, facts, policy, service
from idrs.audit.events import Actor
from idrs.db import session_scope
from idrs.identifiers import synthetic_routing
from idrs.masterfile.importer import import_file
from idrs.models import Base
from idrs.people.models import Employee, Unit
from idrs.people.roles import ROLE_CODES
from idrs.vocabulary import Role

N = 10
TINS = [f"900-20-{3000 + i:04d}" for i in range(N)]
EMPLOYEES = {"S0": 0, "S1": 1, "S2": 2}  # SEID -> index of their own TIN
# dwelling -> several spellings (same dwelling); D1 is another apartment of D0's building
DWELLINGS = {
    0: [
        ("1 Main Street Apt 2", "45402"),
        ("1 MAIN ST #2", "45402-0001"),
        ("1 main st, apartment 2", "45402"),
    ],
    1: [("1 Main St Apt 3", "45402"), ("1 MAIN STREET UNIT 3", "45402-9999")],
    2: [("9 Oak Avenue", "43004"), ("9 OAK AVE", "43004")],
}
EINS = {"P": "00-3000001", "BOSS": "00-3000002", "BIG": "00-3000003"}
COMMANDS = ["ENMOD", "RTVUE", "IRPTR"]
DEPTH = 2
KEEP = {"audit_entry", "audit_checkpoint", "database_meta", "access_policy_version"}


def _reset(app) -> None:
    with session_scope(app.engine) as s:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEEP and not table.name.startswith("audit"):
                s.execute(delete(table))


class Oracle:
    """What the raw records say, computed from scratch at every question."""

    def __init__(self) -> None:
        self.returns: dict[tuple[int, int], dict] = {}  # (filer, year) -> return facts
        self.declared: set[tuple[str, int]] = set()

    def spouse_pairs(self) -> set[frozenset[int]]:
        return {
            frozenset((f, r["spouse"]))
            for (f, _y), r in self.returns.items()
            if r["spouse"] is not None
        }

    def codes(self, seid: str, unit: dict[str, str], target: int) -> set[str]:
        me = EMPLOYEES[seid]
        out: set[str] = set()
        if target == me:
            out.add("CONFLICT_SELF")
        spouses = {x for pair in self.spouse_pairs() if me in pair for x in pair if x != me}
        if target in spouses:
            out.add("CONFLICT_SPOUSE")
        # relatives: claim edges, both directions, from me and my spouses, DEPTH links
        edges: dict[int, set[int]] = defaultdict(set)
        for (f, _y), r in self.returns.items():
            for d in r["deps"]:
                edges[f].add(d)
                edges[d].add(f)
        start = {me} | spouses
        seen, frontier = set(start), set(start)
        for _ in range(DEPTH):
            frontier = {n for x in frontier for n in edges[x]} - seen
            seen |= frontier
        if target in seen - start:
            out.add("CONFLICT_RELATIVE")
        for (f, y), r in self.returns.items():
            if f == me and r["dwelling"] is not None:
                other = self.returns.get((target, y))
                if target != me and other and other["dwelling"] == r["dwelling"]:
                    out.add("CONFLICT_HOUSEHOLD")
        mine = [r for (f, _y), r in self.returns.items() if f == me]
        theirs = [r for (f, _y), r in self.returns.items() if f == target] if target != me else []
        if {r["bank"] for r in mine if r["bank"]} & {r["bank"] for r in theirs if r["bank"]}:
            out.add("CONFLICT_FINANCIAL")
        if any(r["k1"] for r in mine) and any(r["k1"] for r in theirs):
            out.add("CONFLICT_BUSINESS")
        for a, b in ((mine, theirs), (theirs, mine)):
            if any(r["w2"] == "BOSS" for r in a) and any(r["schc"] for r in b):
                out.add("CONFLICT_BUSINESS")
        if (seid, target) in self.declared:
            out.add("CONFLICT_DECLARED")
        for other_seid, idx in EMPLOYEES.items():
            if idx == target and other_seid != seid:
                out.add("PROTECTED_EMPLOYEE_ACCOUNT")
                if unit[other_seid] == unit[seid]:
                    out.add("CONFLICT_COWORKER")
        return out


def make_machine(app, tmp: Path):
    class AccessMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            _reset(app)
            self.oracle = Oracle()
            self.cases: dict[str, tuple[str, int]] = {}
            self.contacts: dict[str, tuple[str, int]] = {}
            self.roles = {"S0": "examiner", "S1": "examiner", "S2": "csr"}
            self.unit = {"S0": "U1", "S1": "U1", "S2": "U2"}
            self.n = 0
            recs = [
                {
                    "tin": t,
                    "name": {"first": "P", "last": f"N{i}"},
                    "address": {
                        "street": f"{i} Elm St",
                        "city": "Dayton",
                        "state": "OH",
                        "zip": "45402",
                    },
                }
                for i, t in enumerate(TINS)
            ]
            self._import(recs)
            with session_scope(app.engine) as s:
                units = {}
                for code in ("U1", "U2"):
                    u = Unit(code=code, name=code, ceiling="")
                    s.add(u)
                    s.flush()
                    units[code] = u.id
                for seid, idx in EMPLOYEES.items():
                    s.add(
                        Employee(
                            seid=seid,
                            name=seid,
                            unit_id=units[self.unit[seid]],
                            tin_index=app.keyring.tin_index(TINS[idx].replace("-", "")),
                            roles=self.roles[seid],
                            profile=self._profile(self.roles[seid]),
                            authorities="",
                            created_at=app.clock.now(),
                            training_attested_at=app.clock.now(),
                        )
                    )
            conflicts.rebuild_all(app)

        def _profile(self, role: str) -> str:
            return ",".join(sorted(ROLE_CODES[Role(role)]))

        def _import(self, recs: list[dict]) -> None:
            self.n = getattr(self, "n", 0) + 1
            path = tmp / f"in-{self.n}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in recs))
            import_file(app, path, actor="test")

        @rule(
            filer=st.integers(0, N - 1),
            year=st.sampled_from([2022, 2023]),
            spouse=st.one_of(st.none(), st.integers(0, N - 1)),
            deps=st.sets(st.integers(0, N - 1), max_size=2),
            dwelling=st.sampled_from([0, 1, 2]),
            spelling=st.integers(0, 2),
            bank=st.sampled_from([None, 1, 2]),
            k1=st.booleans(),
            w2=st.sampled_from([None, "BOSS", "BIG"]),
            schc=st.booleans(),
            preparer=st.booleans(),
        )
        def import_return(
            self, filer, year, spouse, deps, dwelling, spelling, bank, k1, w2, schc, preparer
        ) -> None:
            if spouse == filer:
                spouse = None
            deps = sorted(d for d in deps if d not in (filer, spouse))
            street, zip_code = DWELLINGS[dwelling][spelling % len(DWELLINGS[dwelling])]
            ret = {
                "tax_year": year,
                "filing_status": "MFJ" if spouse is not None else "S",
                "agi": 100.0,
                "total_tax": 10.0,
                "address": {"street": street, "city": "Dayton", "state": "OH", "zip": zip_code},
                "dependents": [
                    {"tin": TINS[d], "relationship": "other", "name": {"first": "D", "last": "X"}}
                    for d in deps
                ],
            }
            if spouse is not None:
                ret["spouse_tin"] = TINS[spouse]
            if bank:
                ret["refund"] = {
                    "amount": 1.0,
                    "direct_deposit": {
                        "routing": synthetic_routing(bank),
                        "account": f"{bank:012d}",
                    },
                }
            if k1:
                ret["k1"] = [{"entity_ein": EINS["P"], "entity_name": "P LLP", "share_pct": 10.0}]
            if w2:
                ret["w2"] = [
                    {
                        "employer_ein": EINS[w2],
                        "employer_name": w2,
                        "wages": 1.0,
                        "withholding": 0.0,
                    }
                ]
            if schc:
                ret["schedule_c"] = [{"business_name": "Shop", "ein": EINS["BOSS"]}]
            if preparer:
                ret["preparer_ptin"] = "P00000009"
            self._import(
                [
                    {
                        "tin": TINS[filer],
                        "name": {"first": "P", "last": f"N{filer}"},
                        "address": {
                            "street": f"{filer} Elm St",
                            "city": "Dayton",
                            "state": "OH",
                            "zip": "45402",
                        },
                        "returns": [ret],
                    }
                ]
            )
            with session_scope(app.engine) as s:
                conflicts.refresh_for_taxpayers(s, app, [facts.tin_index_of(app, TINS[filer])])
            self.oracle.returns[(filer, year)] = {
                "spouse": spouse,
                "deps": deps,
                "dwelling": dwelling,
                "bank": bank,
                "k1": k1,
                "w2": w2,
                "schc": schc,
            }

        @rule(seid=st.sampled_from(sorted(EMPLOYEES)), who=st.integers(0, N - 1))
        def assign_case(self, seid, who) -> None:
            self.seq = getattr(self, "seq", 0) + 1
            cid = f"C{self.seq}"
            service.assign_case(
                app, seid=seid, tin=TINS[who], case_id=cid, actor=Actor("t")
            )
            self.cases[cid] = (seid, who)

        @rule(data=st.data())
        def close_case(self, data) -> None:
            if self.cases:
                cid = data.draw(st.sampled_from(sorted(self.cases)))
                service.close_case(app, case_id=cid, actor=Actor("t"))
                del self.cases[cid]

        @rule(seid=st.sampled_from(sorted(EMPLOYEES)), who=st.integers(0, N - 1))
        def open_contact(self, seid, who) -> None:
            self.seq = getattr(self, "seq", 0) + 1
            cid = f"K{self.seq}"
            service.record_inbound(  # routed by the intake feed (any role may hold one)
                app, seid=seid, tin=TINS[who], contact_id=cid, actor=Actor("system:t")
            )
            self.contacts[cid] = (seid, who)

        @rule(data=st.data())
        def close_contact(self, data) -> None:
            if self.contacts:
                cid = data.draw(st.sampled_from(sorted(self.contacts)))
                service.close_contact(app, contact_id=cid, actor=Actor("t"))
                del self.contacts[cid]

        @rule(
            seid=st.sampled_from(sorted(EMPLOYEES)),
            who=st.integers(0, N - 1),
            kind=st.sampled_from(service.KINDS),
        )
        def declare(self, seid, who, kind) -> None:
            service.declare_relationship(
                app, seid=seid, tin=TINS[who], kind=kind, actor=Actor("t")
            )
            self.oracle.declared.add((seid, who))

        @rule(
            seid=st.sampled_from(sorted(EMPLOYEES)),
            role=st.sampled_from(["csr", "examiner", "auditor"]),
        )
        def change_role(self, seid, role) -> None:
            with session_scope(app.engine) as s:
                s.execute(
                    update(Employee)
                    .where(Employee.seid == seid)
                    .values(roles=role, profile=self._profile(role))
                )
            self.roles[seid] = role

        @rule(seid=st.sampled_from(sorted(EMPLOYEES)), unit=st.sampled_from(["U1", "U2"]))
        def change_unit(self, seid, unit) -> None:
            with session_scope(app.engine) as s:
                uid = s.scalar(select(Unit.id).where(Unit.code == unit))
                s.execute(update(Employee).where(Employee.seid == seid).values(unit_id=uid))
            self.unit[seid] = unit

        @rule(
            seid=st.sampled_from(sorted(EMPLOYEES)),
            who=st.integers(0, N - 1),
            command=st.sampled_from(COMMANDS),
            name_basis=st.booleans(),
        )
        def attempt(self, seid, who, command, name_basis) -> None:
            mine = sorted(c for c, (s_, t) in self.cases.items() if s_ == seid and t == who)
            named = mine[0] if (name_basis and mine) else None
            with session_scope(app.engine) as s:
                emp = s.scalar(select(Employee).where(Employee.seid == seid))
                f = facts.gather(s, app, employee=emp, command=command, tin=TINS[who], case=named)
            verdict = policy.decide(f)
            expected = self.oracle.codes(seid, self.unit, who)
            if command not in ROLE_CODES[Role(self.roles[seid])]:
                expected.add("NOT_IN_PROFILE")
            has_basis = any(s_ == seid and t == who for s_, t in self.cases.values()) or any(
                s_ == seid and t == who for s_, t in self.contacts.values()
            )
            if not has_basis:
                expected.add("NO_BUSINESS_NEED")
            assert set(verdict.codes) == expected, (seid, who, command, verdict.codes, expected)
            assert verdict.allowed is (not expected)

        @invariant()
        def index_matches_oracle_for_relationship_codes(self) -> None:
            if not hasattr(self, "oracle"):
                return
            stored_codes = {
                "CONFLICT_SELF",
                "CONFLICT_SPOUSE",
                "CONFLICT_RELATIVE",
                "CONFLICT_HOUSEHOLD",
                "CONFLICT_FINANCIAL",
                "CONFLICT_BUSINESS",
                "CONFLICT_DECLARED",
            }
            with session_scope(app.engine) as s:
                for seid in EMPLOYEES:
                    eid = s.scalar(select(Employee.id).where(Employee.seid == seid))
                    for target in range(N):
                        got = set(
                            conflicts.stored_for(s, eid, facts.tin_index_of(app, TINS[target]))
                        )
                        want = self.oracle.codes(seid, self.unit, target) & stored_codes
                        assert got == want, (seid, target, got, want)

    return AccessMachine


def test_no_sequence_opens_a_conflicted_or_unassigned_account(app, tmp_path):
    machine = make_machine(app, tmp_path)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
