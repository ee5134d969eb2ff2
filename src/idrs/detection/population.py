"""The simulator's world: a synthetic population with the relations browsing exploits.

Built through the public paths: taxpayers through ``masterfile.importer.import_file`` (a
JSON Lines file in a temporary folder), units and employees through ``people.service``,
the conflict index through ``access.conflicts.rebuild_all``. What the simulator needs to
know about who is whose neighbour or cousin stays in memory (the :class:`World`); the
database holds only what the agency would hold.

Every employee heads a household: a spouse on a joint return, children and a parent as
dependents, sometimes a roommate (same address, own return), a cousin with the same
surname elsewhere (not linked anywhere) and neighbours on the same street.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idrs.access import conflicts
from idrs.context import App
from idrs.masterfile.importer import import_file
from idrs.people import passwords
from idrs.people import service as people
from idrs.vocabulary import Role

TAX_YEAR = 2024
STATE = "OH"
_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca", "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Amy", "Jacob", "Kathleen", "Gary", "Angela", "Nicholas", "Shirley", "Eric", "Brenda", "Jonathan", "Emma", "Stephen", "Anna", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Samantha"]
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval", "Guerrero", "George", "Chapman", "Rios", "Estrada", "Ortega", "Watkins", "Greene", "Nunez", "Wheeler", "Valdez", "Harper", "Burke", "Larson", "Santiago", "Maldonado", "Morrison", "Franklin", "Carlson", "Austin", "Dominguez", "Carr", "Lawson", "Jacobs", "Obrien", "Lynch", "Singh", "Vega", "Bishop", "Montgomery", "Oliver", "Jensen", "Harvey", "Williamson", "Gilbert", "Dean", "Sims", "Espinoza", "Howell", "Li", "Wong", "Reid", "Hanson", "Le", "McCoy", "Garrett", "Burton", "Fuller", "Wang", "Weber", "Welch", "Rojas", "Lucas", "Marquez", "Fields", "Park", "Yang", "Little", "Banks", "Padilla", "Day", "Walsh"]
_STREETS = ["Elm", "Oak", "Maple", "Cedar", "Pine", "Walnut", "Cherry", "Chestnut", "Birch", "Willow", "Spruce", "Hickory", "Poplar", "Ash", "Sycamore", "Magnolia", "Dogwood", "Laurel", "Juniper", "Locust", "Hawthorn", "Linden", "Alder", "Aspen", "Beech"]
_SUFFIX = ("St", "Ave", "Rd", "Dr", "Ln", "Ct")
_CITIES = ("Dayton", "Kettering", "Xenia", "Fairborn", "Centerville", "Troy", "Piqua", "Sidney")


@dataclass
class Person:
    """One synthetic taxpayer (kept in memory by the simulator only)."""

    tin: str
    first: str
    last: str
    street: str
    street_name: str
    zip: str
    city: str
    markers: list[str] = field(default_factory=list)
    is_employee: bool = False


@dataclass
class Staff:
    seid: str
    role: str
    unit: str
    own: Person
    spouse: Person | None = None
    children: list[Person] = field(default_factory=list)
    parent: Person | None = None
    roommate: Person | None = None
    cousin: Person | None = None
    neighbours: list[Person] = field(default_factory=list)


@dataclass
class World:
    people: list[Person]
    public: list[Person]  # taxpayers who call the agency and have cases (not staff households)
    celebrities: list[Person]
    staff: list[Staff]
    units: dict[str, list[Staff]]
    analysts: list[str]
    by_zip: dict[str, list[Person]] = field(default_factory=dict)

    @property
    def ordinary(self) -> list[Person]:
        """The public without the high-profile taxpayers (whose work goes to authorized staff)."""
        cached = self.__dict__.get("_ordinary")
        if cached is None:
            cached = self.__dict__["_ordinary"] = [p for p in self.public if not p.markers]
        return cached

    def manager_of(self, unit: str) -> Staff:
        return next(s for s in self.units[unit] if s.role == Role.MANAGER)


class _Gen:
    def __init__(self, rng: random.Random, n_zips: int, surnames: Sequence[str] | None = None) -> None:
        self.rng = rng
        self.serial = 0
        self.zips = [f"45{300 + i:03d}" for i in range(n_zips)]
        self.city = {z: _CITIES[i % len(_CITIES)] for i, z in enumerate(self.zips)}
        self.surnames = list(surnames or _LAST)
        weights = [1.0 / (r + 1) ** 0.9 for r in range(len(self.surnames))]
        self.surname_weights = weights

    def tin(self) -> str:
        self.serial += 1
        n = self.serial
        area, rest = 900 + (n // 500_000) % 100, n % 500_000
        return f"{area:03d}-{rest // 10_000:02d}-{rest % 10_000:04d}"

    def surname(self) -> str:
        return self.rng.choices(self.surnames, weights=self.surname_weights)[0]

    def place(self, zip_code: str | None = None, street_name: str | None = None) -> tuple[str, str, str, str]:
        z = zip_code or self.rng.choice(self.zips)
        name = street_name or f"{self.rng.choice(_STREETS)} {self.rng.choice(_SUFFIX)}"
        return f"{self.rng.randint(1, 2999)} {name}", name, z, self.city[z]

    def person(self, last: str | None = None, *, at: Person | None = None,
               zip_code: str | None = None, street_name: str | None = None) -> Person:
        if at is not None:
            street, sname, z, city = at.street, at.street_name, at.zip, at.city
        else:
            street, sname, z, city = self.place(zip_code, street_name)
        return Person(self.tin(), self.rng.choice(_FIRST), last or self.surname(), street, sname,
                      z, city)


def _record(p: Person, *, status: str = "S", spouse: Person | None = None,
            deps: Sequence[tuple[Person, str]] = (), file_return: bool = True) -> dict[str, Any]:
    addr = {"street": p.street, "city": p.city, "state": STATE, "zip": p.zip}
    rec: dict[str, Any] = {"tin": p.tin, "name": {"first": p.first, "last": p.last},
                           "address": addr, "markers": list(p.markers)}
    if file_return:
        ret: dict[str, Any] = {"tax_year": TAX_YEAR, "filing_status": status, "address": addr,
                               "agi": 52000.0, "total_tax": 4100.0,
                               "dependents": [{"tin": d.tin, "relationship": rel,
                                               "name": {"first": d.first, "last": d.last}}
                                              for d, rel in deps]}
        if spouse is not None:
            ret["spouse_tin"] = spouse.tin
        rec["returns"] = [ret]
        rec["transactions"] = [{"tax_year": TAX_YEAR, "tc": "150", "date": "2025-04-15",
                                "amount": 4100.0}]
    return rec


def _roles_for(n: int) -> list[Role]:
    """A unit of ``n``: one manager, about 60% service representatives, the rest examiners."""
    roles = [Role.MANAGER]
    for i in range(n - 1):
        roles.append(Role.CSR if i % 5 < 3 else Role.EXAMINER)
    return roles


#: surnames outside the common list, for the employees of ``rare_surnames`` (each family's own)
RARE_SURNAMES = ("Quenneville", "Abernathy", "Vukovich", "Szczepanski", "Oyelaran", "Haverkamp",
                 "Lindqvist", "Marchetti", "Okonkwo", "Brzezinski", "Delacroix", "Thorvaldsen",
                 "Yamaguchi", "Fitzgerald", "Papadakis", "Kowalczyk", "Van Aalst", "Nakashima",
                 "Ferreira", "Mbeki", "Castellanos", "Rasmussen", "Hollingsworth", "Zielinski")


def build(app: App, *, employees: int, seed: int, unit_size: int = 20,
          public_per_employee: int = 24, actor: str = "system:simulator",
          n_zips: int | None = None, surnames: Sequence[str] | None = None,
          rare_surnames: int = 0) -> World:
    """Create the population, units and employees; return what the simulator must know.

    Work profiles (:mod:`idrs.detection.profiles`) vary the world: ``n_zips`` (a small town
    has one or two), ``surnames`` (the pool the public and staff draw from, most common
    first), ``rare_surnames`` (so many employees, spread over the units, carry a surname no
    one outside their family has: their cousin elsewhere shares it, nothing links them).
    """
    rng = random.Random(seed)
    gen = _Gen(rng, n_zips=n_zips or max(8, employees // 12), surnames=surnames)
    records: list[dict[str, Any]] = []
    people_all: list[Person] = []
    public: list[Person] = []
    n_public = max(600, employees * public_per_employee)
    for _ in range(n_public // 2):
        head = gen.person()
        if rng.random() < 0.45:
            sp = gen.person(head.last, at=head)
            kids = [gen.person(head.last, at=head) for _ in range(rng.choice((0, 1, 2)))]
            records.append(_record(head, status="MFJ", spouse=sp, deps=[(k, "son") for k in kids]))
            records.append(_record(sp, file_return=False))
            records.extend(_record(k, file_return=False) for k in kids)
            public.extend([head, sp])
            people_all.extend([head, sp, *kids])
        else:
            records.append(_record(head))
            public.append(head)
            people_all.append(head)
    celebrities = []
    for p in rng.sample(public, max(3, len(public) // 200)):
        p.markers.append("high_profile")
        celebrities.append(p)
    staff: list[Staff] = []
    units: dict[str, list[Staff]] = {}
    n_units = max(1, round(employees / unit_size))
    sizes = [employees // n_units + (1 if i < employees % n_units else 0) for i in range(n_units)]
    k = 0
    rare = list(RARE_SURNAMES[:rare_surnames])
    for u, size in enumerate(sizes):
        code = f"U{u + 1:02d}"
        units[code] = []
        for i, role in enumerate(_roles_for(size)):
            k += 1
            last = rare.pop(0) if rare and i in (1, 4) else None  # a CSR and an examiner
            s = _staff(gen, rng, f"E{k:05d}", role, code, records, people_all, last=last)
            staff.append(s)
            units[code].append(s)
    # re-mark celebrity records (the marker list is written when the record is built)
    celeb_tins = {c.tin for c in celebrities}
    for rec in records:
        if rec["tin"] in celeb_tins:
            rec["markers"] = ["high_profile"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "population.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        import_file(app, path, actor=actor, interface="system")
    _ensure_unit(app, "PRIV", "Privacy office", actor)
    for code in units:
        _ensure_unit(app, code, f"Unit {code}", actor)
    with passwords.weak_hashing_for_simulated_staff_only():
        _create_staff(app, staff, actor)
    analysts = [f"PA{i + 1:03d}" for i in range(max(2, employees // 150))]
    with passwords.weak_hashing_for_simulated_staff_only():
        for seid in analysts:
            people.create_employee(
            app, unax_attested_at=app.clock.now(), seid=seid, name=f"Analyst {seid}", tin=None,
                                   roles=[Role.PRIVACY_ANALYST], unit="PRIV", actor=actor,
                                   interface="system")
    conflicts.rebuild_all(app)
    world = World(people_all, public, celebrities, staff, units, analysts)
    for p in public:
        world.by_zip.setdefault(p.zip, []).append(p)
    return world


def _create_staff(app: App, staff: list[Staff], actor: str) -> None:
    for s in staff:
        people.create_employee(
            app, unax_attested_at=app.clock.now(), seid=s.seid, name=f"{s.own.first} {s.own.last}", tin=s.own.tin,
                               roles=[s.role], unit=s.unit, actor=actor, interface="system")


def _ensure_unit(app: App, code: str, name: str, actor: str) -> None:
    from idrs.errors import Conflict

    with contextlib.suppress(Conflict):
        people.create_unit(app, code, name, actor=actor, interface="system")


def _staff(gen: _Gen, rng: random.Random, seid: str, role: str, unit: str,
           records: list[dict[str, Any]], out: list[Person], last: str | None = None) -> Staff:
    own = gen.person(last)
    own.is_employee = True
    s = Staff(seid, role, unit, own)
    s.spouse = gen.person(own.last, at=own)
    s.children = [gen.person(own.last, at=own) for _ in range(rng.choice((1, 1, 2)))]
    s.parent = gen.person(own.last, zip_code=rng.choice(gen.zips))
    s.roommate = gen.person(at=own) if rng.random() < 0.5 else None
    s.cousin = gen.person(own.last, zip_code=rng.choice([z for z in gen.zips if z != own.zip] or gen.zips))
    s.neighbours = [gen.person(zip_code=own.zip, street_name=own.street_name) for _ in range(2)]
    for n in s.neighbours:  # next door: the same block, a few numbers away
        num = max(1, int(own.street.split(" ", 1)[0]) + rng.choice((-1, 1)) * rng.randint(2, 40))
        n.street = f"{num} {own.street_name}"
    deps = [(c, "son") for c in s.children] + [(s.parent, "parent")]
    records.append(_record(own, status="MFJ", spouse=s.spouse, deps=deps))
    records.append(_record(s.spouse, file_return=False))
    records.extend(_record(c, file_return=False) for c in s.children)
    records.append(_record(s.parent))
    if s.roommate is not None:
        records.append(_record(s.roommate))
    records.append(_record(s.cousin))
    records.extend(_record(n) for n in s.neighbours)
    out.extend([own, s.spouse, *s.children, s.parent, s.cousin, *s.neighbours])
    if s.roommate is not None:
        out.append(s.roommate)
    return s
