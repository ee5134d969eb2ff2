"""Masking: which sensitivity classes each role sees, and applying that to an output tree.

Each role sees only the classes its work needs; everything else is masked (``***-**-1234``,
``****6789``) or left out, and the answer lists the masked paths. Adoption details need the
``adoption`` authority whatever the role. ``classes_for`` is pure (tested with tables).

Related people (issue 13.10): an answer about one taxpayer also shows other people's TINs
(RTVUE's spouse and dependents, INOLE's spouses, dependents and claimants). Each TIN the
viewer's own decision would refuse for who that person is (a conflict of theirs, a protected
employee account, a high-profile account without the authority: ``access.facts.
screen_matches``, as NAMES does) is *withheld*: :func:`related_tins` finds them,
:func:`withhold` blanks the TIN and the names beside it entirely (no last four digits) and
returns the paths, which the answer lists as ``withheld`` without any reason code.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from idrs.access.decision import Obligations
from idrs.masterfile.screens import F, Sensitivity, render
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


#: the identity leaves of a related person withheld together with their TIN
PERSON_FIELDS = frozenset({"first_name", "middle_name", "last_name", "name"})


def _digits(value: Any) -> str:
    return str(value).replace("-", "")


def related_tins(tree: Any, own: str) -> set[str]:
    """The TINs (9 digits) of the TIN leaves of ``tree`` other than the subject's ``own``."""
    out: set[str] = set()
    own = _digits(own)

    def walk(node: Any) -> None:
        if isinstance(node, F):
            if node.mask == "tin" and node.value is not None and _digits(node.value) != own:
                out.add(_digits(node.value))
        elif isinstance(node, dict):
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(tree)
    return out


def withhold(tree: Any, hidden: set[str], path: str = "") -> tuple[Any, list[str]]:
    """A copy of ``tree`` where every TIN leaf whose TIN is in ``hidden`` (9 digits), and the
    name leaves beside it, hold nothing; with the paths of the TINs withheld (render's form)."""
    paths: list[str] = []
    if not hidden:
        return tree, paths

    def blank(leaf: F) -> F:
        return F(None, leaf.cls, "drop")

    def walk(node: Any, at: str) -> Any:
        if isinstance(node, dict):
            gone = [
                k
                for k, v in node.items()
                if isinstance(v, F)
                and v.mask == "tin"
                and v.value is not None
                and _digits(v.value) in hidden
            ]
            out: dict[str, Any] = {}
            for key, sub in node.items():
                here = f"{at}.{key}" if at else key
                if key in gone:
                    out[key] = blank(sub)
                    paths.append(here)
                elif gone and key in PERSON_FIELDS and isinstance(sub, F):
                    out[key] = blank(sub)
                elif gone and key in PERSON_FIELDS and isinstance(sub, dict):
                    out[key] = {k: blank(v) if isinstance(v, F) else v for k, v in sub.items()}
                else:
                    out[key] = walk(sub, here)
            return out
        if isinstance(node, list):
            return [walk(sub, f"{at}[{i}]") for i, sub in enumerate(node)]
        return node

    return walk(tree, path), paths
