"""Lay a masked research answer out like the command's screen (pure: no I/O).

The answer of ``research.run`` is a nested JSON tree. A screen is a list of blocks:
``fields`` (label/value lines), ``table`` (a list of records) and ``values`` (a list of
plain values), in the order the command returns them, with upper-case labels as on the
original terminal screens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Block:
    kind: str  # fields | table | values
    title: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    values: list[str] = field(default_factory=list)


def label(key: str) -> str:
    return key.replace("_", " ").replace(".", " ").upper()


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flatten(v, name + "."))
        else:
            out.append((name, v))
    return out


def _table(title: str, items: list[dict[str, Any]]) -> Block:
    flat = [dict(_flatten(i)) for i in items]
    headers: list[str] = []
    for row in flat:
        for k, v in row.items():
            if k not in headers and not isinstance(v, list):
                headers.append(k)
    rows = [[text(r.get(h)) for h in headers] for r in flat]
    return Block("table", label(title), headers=[label(h) for h in headers], rows=rows)


def layout(command: str, data: Any) -> list[Block]:
    """The blocks of one answer; nested lists inside tables become their own blocks."""
    if not isinstance(data, dict):
        return [Block("values", command, values=[text(v) for v in _as_list(data)])]
    blocks: list[Block] = []
    head = Block("fields", command)
    for key, value in _flatten(data):
        if isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                blocks.append(_table(key, value))
                blocks.extend(_nested(key, value))
            else:
                blocks.append(Block("values", label(key), values=[text(v) for v in value]))
        else:
            head.fields.append((label(key), text(value)))
    return ([head] if head.fields else []) + blocks


def _nested(key: str, items: list[dict[str, Any]]) -> list[Block]:
    out: list[Block] = []
    for n, item in enumerate(items):
        for sub, value in _flatten(item):
            if isinstance(value, list) and value:
                title = f"{key}[{n + 1}].{sub}"
                if all(isinstance(v, dict) for v in value):
                    out.append(_table(title, value))
                else:
                    out.append(Block("values", label(title), values=[text(v) for v in value]))
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
