"""The pure relative walk of the conflict index, on small hand-drawn families."""

from __future__ import annotations

import pytest

from idrs.access.graph import Edge, bfs_relatives, neighbourhood

# claimer -> dependents (one tax return each)
CLAIMS = {
    "grandma": ["mom", "uncle"],
    "mom": ["me", "sis"],
    "uncle": ["cousin"],
    "me": ["kid"],
    "kid": ["grandkid"],
    "inlaw": ["spouse"],
    "spouse": ["stepkid"],
}


def neighbours(frontier: set[str]) -> list[Edge]:
    out = []
    for filer, deps in CLAIMS.items():
        for d in deps:
            if filer in frontier:
                out.append(Edge(filer, d, {"filed_by": filer, "field": "dependents[].tin"}))
            if d in frontier:
                out.append(Edge(d, filer, {"filed_by": filer, "field": "dependents[].tin"}))
    return out


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (1, {"mom": 1, "kid": 1, "inlaw": 1, "stepkid": 1}),
        (2, {"mom": 1, "kid": 1, "inlaw": 1, "stepkid": 1, "grandma": 2, "sis": 2, "grandkid": 2}),
        (
            3,
            {
                "mom": 1,
                "kid": 1,
                "inlaw": 1,
                "stepkid": 1,
                "grandma": 2,
                "sis": 2,
                "grandkid": 2,
                "uncle": 3,
            },
        ),
    ],
)
def test_relatives_by_depth_from_employee_and_spouse(depth: int, expected: dict[str, int]) -> None:
    found = bfs_relatives({"me", "spouse"}, neighbours, depth)
    assert {k: v[0] for k, v in found.items()} == expected


def test_evidence_names_the_return_that_made_the_last_link() -> None:
    found = bfs_relatives({"me"}, neighbours, 2)
    assert found["sis"][1] == [{"filed_by": "mom", "field": "dependents[].tin"}]
    assert found["kid"][1] == [{"filed_by": "me", "field": "dependents[].tin"}]


def test_start_and_excluded_nodes_are_never_reported() -> None:
    found = bfs_relatives({"me"}, neighbours, 4, exclude={"sis"})
    assert "me" not in found and "sis" not in found and "cousin" in found


def test_unrelated_people_are_not_reached() -> None:
    found = bfs_relatives({"me"}, neighbours, 4)
    assert "spouse" not in found and "inlaw" not in found


def test_neighbourhood_includes_start() -> None:
    assert neighbourhood({"kid"}, neighbours, 1) == {"kid", "me", "grandkid"}
    assert neighbourhood({"x"}, neighbours, 3) == {"x"}
