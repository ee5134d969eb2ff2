"""Masking: which sensitivity classes each role sees, and applying that to an output tree.

Each role sees only the classes its work needs; everything else is masked (``***-**-1234``,
``****6789``) or left out, and the answer lists the masked paths. Adoption details need the
``adoption`` authority whatever the role. ``classes_for`` is pure (tested with tables).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from idrs.access.decision import Obligations
from idrs.masterfile.screens import Sensitivity, render
from idrs.vocabulary import Role

if TYPE_CHECKING:
    from idrs.access.facts import Facts

S = Sensitivity
#: role → classes shown in clear (the union over the employee's roles is shown)
ROLE_CLASSES: dict[str, frozenset[Sensitivity]] = {
    # answers calls and letters: who, where, what was filed; bank numbers masked
    Role.CSR: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.OTHER}),
    # works cases: the whole return including refund bank data
    Role.EXAMINER: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.OTHER}),
    Role.MANAGER: frozenset({S.IDENTITY, S.ADDRESS, S.RETURN, S.BANKING, S.OTHER}),
}
#: classes that no role carries by itself: each needs the authority of the same name
AUTHORITY_CLASSES: dict[str, Sensitivity] = {"adoption": S.ADOPTION}


def classes_for(roles: Iterable[str], authorities: Iterable[str]) -> frozenset[Sensitivity]:
    """The classes an employee with ``roles`` and ``authorities`` sees in clear."""
    visible: set[Sensitivity] = set()
    for role in roles:
        visible |= ROLE_CLASSES.get(role, frozenset())
    visible.discard(S.ADOPTION)
    for auth in authorities:
        cls = AUTHORITY_CLASSES.get(auth)
        if cls is not None and visible:
            visible.add(cls)
    return frozenset(visible)


@lru_cache(maxsize=256)
def _obligations(roles: frozenset[str], authorities: frozenset[str]) -> Obligations:
    return Obligations(visible=classes_for(roles, authorities))


def obligations_for(facts: Facts) -> Obligations:
    """The obligations of an allowed request: the visible classes of the employee's roles."""
    base = _obligations(frozenset(facts.roles), frozenset(facts.authorities))
    if facts.grant is None or not facts.grant.covers:
        return base
    from idrs.grants import facts as grant_facts

    return Obligations(
        visible=grant_facts.visible_classes(facts.grant, base.visible),
        anonymize=grant_facts.anonymize(facts.grant),
    )


def apply(tree: Any, obligations: Obligations) -> tuple[Any, list[str]]:
    """Plain JSON with only the visible classes in clear, and the list of masked paths."""
    return render(tree, obligations.visible)
