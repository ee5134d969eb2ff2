"""The anonymized view of a command's output tree (grants with population ``anonymized``).

Pure: no database, no keys of its own. The caller passes the keyed pseudonym function
(``app.keyring.pseudonym``), so a pseudonym cannot be looked up by anyone without the key.

The same structure comes back with identity removed:

- every TIN (leaves with mask ``tin``: the taxpayer, spouse, dependents, claimants) → its
  stable keyed pseudonym;
- names dropped: every key ending in ``name`` (first/last/middle names, ``name``, name
  control, and business, employer, payer and partnership names, which often carry the
  taxpayer's own name), and the name suffix;
- addresses generalized: the state and the first three digits of the ZIP; street and city
  dropped;
- date of birth → its year; phone dropped;
- bank numbers (routing, account) and EINs (a sole proprietor's EIN identifies them)
  dropped.

The result is still a tree of :class:`~idrs.masterfile.screens.F` leaves, so masking by
class applies afterwards as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from idrs.identifiers import BadIdentifier, normalize_tin
from idrs.masterfile.screens import F

Pseudonym = Callable[[str], str]

_DROP_KEYS = frozenset({"suffix", "phone", "street", "city", "routing", "account", "preparer_ptin"})
_ADDRESS_KEYS = frozenset({"street", "city", "state", "zip"})


def _is_name_key(key: str) -> bool:
    return key.endswith("name") or key == "name_control" or key.endswith("_names")


def _is_ein_key(key: str) -> bool:
    return key == "ein" or key.endswith("_ein")


def _drop(leaf: F) -> F:
    return F(None, leaf.cls, "drop")


def _pseudonymize(leaf: F, pseudonym: Pseudonym) -> F:
    if leaf.value is None:
        return F(None, leaf.cls, "drop")
    try:
        return F(pseudonym(normalize_tin(str(leaf.value))), leaf.cls, "drop")
    except BadIdentifier:
        return _drop(leaf)  # not a TIN we can pseudonymize: never pass it through


def _zip3(leaf: F) -> F:
    digits = "".join(ch for ch in str(leaf.value or "") if ch.isdigit())
    return F(digits[:3] or None, leaf.cls, "drop")


def _year(leaf: F) -> F:
    v = str(leaf.value or "")
    return F(v[:4] if len(v) >= 4 and v[:4].isdigit() else None, leaf.cls, "drop")


def _leaf(key: str, leaf: F, pseudonym: Pseudonym) -> F:
    if leaf.mask == "tin" or key in ("tin", "spouse_tin"):
        return _pseudonymize(leaf, pseudonym)
    if key == "date_of_birth":
        return _year(leaf)
    if key == "zip":
        return _zip3(leaf)
    if key in _DROP_KEYS or _is_name_key(key) or _is_ein_key(key) or leaf.mask == "account":
        return _drop(leaf)
    return leaf


def _drop_all(tree: Any) -> Any:
    """Every leaf under a name (``name: {first, middle, last, suffix}``) dropped."""
    if isinstance(tree, F):
        return _drop(tree)
    if isinstance(tree, dict):
        return {k: _drop_all(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_drop_all(v) for v in tree]
    return None


def anonymize(tree: Any, pseudonym: Pseudonym, key: str = "") -> Any:
    """The anonymized copy of a command output tree (the input is not changed)."""
    if isinstance(tree, F):
        return _leaf(key, tree, pseudonym)
    if isinstance(tree, dict):
        return {k: _drop_all(v) if _is_name_key(k) else anonymize(v, pseudonym, k)
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [anonymize(v, pseudonym, key) for v in tree]
    return tree
