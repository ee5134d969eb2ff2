"""Typed results at the services' boundaries that still read as the dicts they replaced.

A service result is a frozen, slotted dataclass deriving from :class:`Record`: callers use its
attributes (typed, checked by mypy). It is also a read-only mapping of its fields, in their
order (``r["name"]``, ``set(r)``, ``dict(r)``), so an interface that still indexes the dict
the result replaced answers exactly as before; FastAPI serialises a dataclass field by field
in the same order, so the JSON of a route is byte-for-byte the same. :meth:`Record.as_dict`
gives the plain, JSON-ready dict (nested records too) for ``json.dumps`` (the CLI's
``--json``), which does not take mappings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

#: names a field must not take: the mapping's methods (a dataclass would take the inherited
#: method for the field's default)
_TAKEN = frozenset({"get", "items", "keys", "values"})


class Record(Mapping[str, Any]):
    """Base of a typed result: derive a ``@dataclass(frozen=True, slots=True)`` from it."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        taken = _TAKEN & set(cls.__dict__.get("__annotations__", {}))
        if taken:
            raise TypeError(f"{cls.__name__}: a field may not be named {sorted(taken)}")

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def as_dict(self) -> dict[str, Any]:
        """The fields in order as a plain dict; nested records (in lists too) as dicts."""
        return {k: _plain(getattr(self, k)) for k in self.__dataclass_fields__}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
