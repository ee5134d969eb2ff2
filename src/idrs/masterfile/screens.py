"""The output of a command code: a tree whose leaves carry their sensitivity class.

Commands build trees of dicts and lists whose leaves are :class:`F`; masking turns a tree
into plain JSON, replacing or dropping every leaf whose class the verdict does not allow.
Pure: no database, no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Sensitivity(StrEnum):
    ADDRESS = "address"
    ADOPTION = "adoption"
    BANKING = "banking"
    IDENTITY = "identity"
    OTHER = "other"
    RETURN = "return"


ALL_CLASSES = frozenset(Sensitivity)


@dataclass(frozen=True, slots=True)
class F:
    """A leaf: its value, its sensitivity class and how to mask it (tin, account, drop, stars)."""

    value: Any
    cls: Sensitivity
    mask: str = "drop"


def _masked_value(leaf: F) -> Any:
    v = leaf.value
    if v is None:
        return None
    s = str(v)
    if leaf.mask == "tin" and len(s.replace("-", "")) == 9:
        return "***-**-" + s[-4:]
    if leaf.mask == "account":
        return "****" + s[-4:]
    if leaf.mask == "stars":
        return "****"
    return None


def render(tree: Any, visible: frozenset[Sensitivity], path: str = "") -> tuple[Any, list[str]]:
    """Plain JSON of ``tree`` with only ``visible`` classes in clear; returns (data, masked paths).

    A masked leaf with a mask form (tin, account, stars) keeps a partial value; one with
    ``drop`` becomes null. Masked paths use dots and [i] (``entity.tin``, ``dependents[0].tin``).
    """
    masked: list[str] = []
    return _walk(tree, visible, path, masked), masked


def _walk(tree: Any, visible: frozenset[Sensitivity], path: str, masked: list[str]) -> Any:
    """:func:`render`'s walk: one list of masked paths (in tree order), a path string built
    only where it is needed (a masked leaf, a nested container)."""
    if isinstance(tree, F):
        if tree.cls in visible:
            return tree.value
        masked.append(path)
        return _masked_value(tree)
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, sub in tree.items():
            if type(sub) is F and sub.cls in visible:  # the common leaf, shown in clear
                out[key] = sub.value
            else:
                out[key] = _walk(sub, visible, f"{path}.{key}" if path else key, masked)
        return out
    if isinstance(tree, list):
        return [_walk(sub, visible, f"{path}[{i}]", masked) for i, sub in enumerate(tree)]
    return tree


def classes_in(tree: Any) -> set[Sensitivity]:
    """Every sensitivity class present in a tree (for registers of what was shown)."""
    if isinstance(tree, F):
        return {tree.cls}
    if isinstance(tree, dict):
        return set().union(*(classes_in(v) for v in tree.values())) if tree else set()
    if isinstance(tree, list):
        return set().union(*(classes_in(v) for v in tree)) if tree else set()
    return set()
