"""The research prompt's line parser and the answer's screen layout (pure)."""

from __future__ import annotations

import pytest

from idrs.web.prompt import Command, History, HistoryItem, PromptError, parse_line
from idrs.web.screens import layout


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ENMOD 950-10-0001", Command("ENMOD", "950-10-0001")),
        ("enmod 950100001", Command("ENMOD", "950100001")),
        ("TXMOD 950-10-0001 2023", Command("TXMOD", "950-10-0001", 2023)),
        ("TXMOD 950-10-0001 year=2023 case=C-1", Command("TXMOD", "950-10-0001", 2023, case="C-1")),
        (
            'IMFOL 950-10-0001 contact=K-7 reason="caller asked"',
            Command("IMFOL", "950-10-0001", contact="K-7", reason="caller asked"),
        ),
        (
            "NAMES CARTER,ANN OH 45402 reason=lookup",
            Command("NAMES", None, name="CARTER,ANN", place="OH 45402", reason="lookup"),
        ),
        ("  ENMOD   950-10-0001  CASE=X  ", Command("ENMOD", "950-10-0001", case="X")),
    ],
)
def test_lines_parse(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "type a command"),
        ("ENMOD", "needs a TIN"),
        ("ENMOD 12345", "nine digits"),
        ("TXMOD 950-10-0001 23", "four digits"),
        ("TXMOD 950-10-0001 2023 2024", "only a tax year"),
        ("TXMOD 950-10-0001 2023 year=2023", "only a tax year"),
        ("ENMOD 950-10-0001 foo=bar", "unknown option"),
        ("ENMOD 950-10-0001 case=A case=B", "given twice"),
        ('ENMOD 950-10-0001 reason="open', "unbalanced"),
        ("NAMES", "last name"),
        ("ENMOD " + "x" * 700, "too long"),
    ],
)
def test_bad_lines_say_why(line, message):
    with pytest.raises(PromptError, match=message):
        parse_line(line)


def test_layout_like_a_screen():
    data = {
        "tin": "950-10-0001",
        "name": {"first": "Ann", "last": "Carter"},
        "address_history": [{"street": "12 Elm St", "zip": "45402", "tags": ["a"]}],
        "markers": [],
    }
    blocks = layout("ENMOD", data)
    head, table, nested, markers = blocks
    assert head.kind == "fields" and ("NAME FIRST", "Ann") in head.fields
    assert table.kind == "table" and table.headers == ["STREET", "ZIP"]
    assert table.rows == [["12 Elm St", "45402"]]
    assert nested.title == "ADDRESS HISTORY[1] TAGS" and nested.values == ["a"]
    assert markers.kind == "values" and markers.values == []


def test_history_is_per_session_newest_first_and_bounded():
    from datetime import UTC, datetime

    h = History(per_session=2, sessions=2)
    now = datetime.now(UTC)
    for i in range(3):
        h.add("tok-a", HistoryItem(f"L{i}", "allowed", i, now))
    assert [i.line for i in h.of("tok-a")] == ["L2", "L1"]
    assert h.of("tok-b") == []
    h.add("tok-b", HistoryItem("B", "refused", None, now))
    h.add("tok-c", HistoryItem("C", "refused", None, now))
    assert h.of("tok-a") == []  # the oldest session was dropped
    h.forget("tok-c")
    assert h.of("tok-c") == []
