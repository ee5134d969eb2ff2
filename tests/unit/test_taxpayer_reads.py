"""Where a taxpayer's encrypted identifiers are decrypted (issue 12, point 3, part).

A TIN, EIN, date of birth, phone or bank number of the master file is stored only encrypted.
It is decrypted in the named read services below and nowhere else; each one either answers
an access it records (research, adjustments, anonymized records) or turns the
value into something that is not it (a pseudonym, a masked TIN) for the system's own work
(``masterfile.reads``), or is a writer (key rotation). A decryption anywhere else — or one
whose column is not a literal, so nobody can tell what it decrypts — fails here.
docs/architecture.md lists the same services.
"""

from __future__ import annotations

import ast
from pathlib import Path

import idrs

SRC = Path(idrs.__file__).parent

#: the read services, and why each may decrypt a taxpayer's identifiers
READ_SERVICES = {
    "idrs.masterfile.commands": "the research commands' screens (research records first)",
    "idrs.masterfile.reads": "pseudonyms and masked TINs for the system's own work",
    "idrs.masterfile.rotate": "re-encrypts every column under a new key",
    "idrs.adjustments.lookups": "the adjustment path: the request a decision loads (recorded)",
    "idrs.adjustments.approval": "the adjustment path: expiry and the approvers' list "
                                 "(recorded, by pseudonym)",
    "idrs.adjustments.history": "the adjustment history shown by research (recorded)",
    "idrs.adjustments.apply": "identity changes kept encrypted until applied",
    "idrs.grants.anonymized": "anonymized records: years of birth generalized; the "
                              "security staff's recorded re-identification",
}
#: columns of the master file and of what is derived from it (labels are ``table.column``)
TAXPAYER_TABLES = ("taxpayer.", "dependent.", "tax_return.", "business.", "w2.", "employee.tin",
                   "adjustment_request.")


def decryptions(root: Path = SRC) -> list[tuple[str, int, str | None]]:
    """``(module, line, column label or None)`` of every ``.decrypt``/``.decrypt_opt`` call."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module == "idrs.crypto":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {  # module-level NAME = "table.column"
            t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("decrypt", "decrypt_opt")):
                arg = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "column"), None)
                label = (arg.value if isinstance(arg, ast.Constant) and isinstance(
                    arg.value, str) else constants.get(arg.id) if isinstance(arg, ast.Name)
                    else None)
                found.append((module, node.lineno, label))
    return found


def _taxpayer_column(label: str | None) -> bool:
    return label is None or label.startswith(TAXPAYER_TABLES)


def test_taxpayer_identifiers_are_decrypted_only_in_the_named_read_services() -> None:
    found = decryptions()
    assert any(m == "idrs.masterfile.reads" for m, _, _ in found), "the scan found nothing"
    outside = [f"{m}:{line} decrypts {label or 'a column it does not name'}"
               for m, line, label in found
               if _taxpayer_column(label) and m not in READ_SERVICES]
    assert outside == []


def test_every_named_read_service_still_reads() -> None:
    """A service that no longer decrypts anything leaves the list (it must stay true)."""
    readers = {m for m, _, label in decryptions() if _taxpayer_column(label)}
    assert set(READ_SERVICES) <= readers, set(READ_SERVICES) - readers


def test_the_scan_sees_a_stray_decryption(tmp_path: Path) -> None:
    root = tmp_path / "idrs"
    (root / "detection").mkdir(parents=True)
    (root / "detection" / "x.py").write_text(
        "def f(app, enc, col):\n"
        "    app.keyring.decrypt(enc, 'taxpayer.tin')\n"
        "    app.keyring.decrypt_opt(enc, col)\n"
        "    app.keyring.decrypt(enc, 'employee.totp_secret')\n")
    found = [(m, line, label) for m, line, label in decryptions(root)
             if _taxpayer_column(label)]
    assert found == [("idrs.detection.x", 2, "taxpayer.tin"), ("idrs.detection.x", 3, None)]
