"""masking.related_tins / masking.withhold (issue 13.10): pure, on command-shaped trees."""

from __future__ import annotations

from idrs.access import masking
from idrs.masterfile.screens import ALL_CLASSES, F, Sensitivity, render

ID, RET = Sensitivity.IDENTITY, Sensitivity.RETURN
OWN, SPOUSE, CHILD = "900-12-3456", "900-12-3457", "900-12-3458"


def _tree() -> dict:
    dep = {
        "tin": F(CHILD, ID, "tin"),
        "first_name": F("Cal", ID),
        "last_name": F("Carter", ID),
        "relationship": F("son", RET),
    }
    return {
        "tin": F(OWN, ID, "tin"),
        "spouse_tin": F(SPOUSE, ID, "tin"),
        "spouses": [{"tin": F(SPOUSE, ID, "tin"), "tax_year": F(2023, RET)}],
        "dependents": [dep],
        "filing_status": F("MFJ", RET),
        "none": F(None, ID, "tin"),
    }


def test_related_tins_leave_out_the_subject_and_empty_leaves() -> None:
    assert masking.related_tins(_tree(), OWN.replace("-", "")) == {"900123457", "900123458"}


def test_withhold_blanks_the_tin_and_the_names_beside_it_and_lists_the_paths() -> None:
    tree, paths = masking.withhold(_tree(), {"900123458", "900123457"})
    assert paths == ["spouse_tin", "spouses[0].tin", "dependents[0].tin"]
    data, _ = render(tree, ALL_CLASSES)
    assert data["tin"] == OWN and data["spouse_tin"] is None and data["spouses"][0]["tin"] is None
    assert data["spouses"][0]["tax_year"] == 2023 and data["filing_status"] == "MFJ"
    dep = data["dependents"][0]
    assert (dep["tin"], dep["first_name"], dep["last_name"], dep["relationship"]) == (
        None,
        None,
        None,
        "son",
    )
    # masked for a role without identity: still nothing, not the last four digits
    data, masked = render(tree, frozenset({RET}))
    assert data["spouse_tin"] is None and "3457" not in str(data)


def test_nothing_hidden_leaves_the_tree_alone() -> None:
    tree = _tree()
    assert masking.withhold(tree, set()) == (tree, [])
    data, _ = render(masking.withhold(tree, {"900999999"})[0], ALL_CLASSES)
    assert data["spouse_tin"] == SPOUSE and data["dependents"][0]["first_name"] == "Cal"
