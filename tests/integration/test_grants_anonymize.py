"""Every research command's real output, anonymized: no field matches the taxpayer's identity."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from idrs.grants.anonymize import anonymize
from idrs.masterfile.commands import COMMANDS
from idrs.masterfile.models import Taxpayer
from idrs.masterfile.screens import ALL_CLASSES, render
from tests.integration import factories as f

IDENTITY = [
    "900-12-3456",
    "900123456",
    "900-12-3457",
    "900-12-3458",
    "900-12-3459",
    "Ann",
    "Carter",
    "Ben",
    "Cal",
    "Dee",
    "CART",
    "12 Elm St",
    "Dayton",
    "45402",
    "1980-02-01",
    "937-555-0100",
    "800000006",
    "000123456789",
    "00-2222222",
]


def _leaves(data):
    if isinstance(data, dict):
        for v in data.values():
            yield from _leaves(v)
    elif isinstance(data, list):
        for v in data:
            yield from _leaves(v)
    elif data is not None and not isinstance(data, bool | int | float):
        yield str(data)


def test_no_field_of_any_anonymized_answer_matches_the_identity(app):
    f.carter_household(app)
    with Session(app.engine) as s:
        tp = s.scalar(
            select(Taxpayer).where(Taxpayer.tin_index == app.keyring.tin_index("900123456"))
        )
        checked = 0
        for code, fn in COMMANDS.items():
            params = {"last": "Carter"} if code == "NAMES" else {"year": 2023}
            tree = fn(s, app.keyring, None if code == "NAMES" else tp, **params)
            clear, _ = render(tree, frozenset(ALL_CLASSES))
            data, masked = render(anonymize(tree, app.keyring.pseudonym), frozenset(ALL_CLASSES))
            assert masked == []
            # the plain answer does carry the identity: the test can fail
            assert any(i in v for v in _leaves(clear) for i in IDENTITY), code
            for value in _leaves(data):
                assert not any(i in value for i in IDENTITY), (code, value)
                checked += 1
        assert checked > 40
    pseudo = app.keyring.pseudonym("900123456")
    assert data["tin"] == pseudo  # IRPTR, the last command: the taxpayer by pseudonym
