"""Issue 17: the simulator's honest work never hands an employee someone from their own block.

Policy passes a call or a case from one's own block to a colleague; a routed call from a
taxpayer a few house numbers away, produced as honest work, was counted as a `neighbour`
false alert (seeds 5-7 of the `routed` and `small_town` profiles, precision 0.667).
"""

from __future__ import annotations

import random

import pytest

from idrs.detection.population import Person, Staff, World
from idrs.detection.simulator import Simulator, on_block
from idrs.errors import IdrsError


def _p(tin: str, street: str, zip_code: str = "97001") -> Person:
    return Person(tin, "A", "Doe", street, street.split(" ", 1)[1], zip_code, "Town")


def _sim(public: list[Person]) -> Simulator:
    sim = Simulator.__new__(Simulator)  # only the drawing of the public is exercised
    sim.rng = random.Random(5)
    sim.world = World(public, public, [], [], {}, [])
    return sim


def test_on_block_is_the_same_street_and_zip_within_100_numbers() -> None:
    me = _p("900000001", "120 Oak St")
    assert on_block(me, _p("900000002", "125 Oak St"))
    assert on_block(me, _p("900000003", "220 Oak St"))
    assert not on_block(me, _p("900000004", "221 Oak St"))
    assert not on_block(me, _p("900000005", "125 Oak St", "97002"))
    assert not on_block(me, _p("900000006", "125 Elm St"))


def test_honest_work_is_never_someone_on_the_workers_block() -> None:
    me = _p("900000001", "120 Oak St")
    worker = Staff("E00001", "csr", "U01", me)
    neighbour = _p("900000002", "124 Oak St")
    public = [neighbour] + [_p(f"9000001{i:02d}", f"{i + 300} Oak St") for i in range(3)]
    sim = _sim(public)
    drawn = {sim.public(worker).tin for _ in range(300)}
    assert neighbour.tin not in drawn and len(drawn) == 3
    # without a worker (a violation, a typo) anyone may be drawn
    assert neighbour.tin in {sim.public().tin for _ in range(300)}
    # a world of nothing but the worker's block: a clear error, not a hidden neighbour
    with pytest.raises(IdrsError, match="block"):
        _sim([neighbour]).public(worker)
