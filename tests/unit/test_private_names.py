"""No package reaches into another package's private names (issue 12, point 4).

import-linter (run by ``make test``) keeps the layers; this keeps the surfaces: a name that
starts with one underscore is private to its package, so ``from idrs.b.x import _y`` or
``x._y`` (``x`` a module of another package) in package ``a`` fails here. Within a package
modules may share their helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import idrs

SRC = Path(idrs.__file__).parent


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def crossings(root: Path = SRC) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        own = _package(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: dict[str, str] = {}  # local name -> the idrs module (or name) it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("idrs"):
                for alias in node.names:
                    if _private(alias.name) and _package(node.module) != own:
                        found.append(f"{module}:{node.lineno} imports {node.module}.{alias.name}")
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("idrs.") and alias.asname:
                        modules[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                target = modules[node.value.id]
                if _package(target) not in ("", own):
                    found.append(f"{module}:{node.lineno} uses {target}.{node.attr}")
    return found


def test_no_package_uses_another_packages_private_names() -> None:
    assert crossings() == []


def test_the_check_sees_both_forms_of_crossing(tmp_path: Path) -> None:
    root = tmp_path / "idrs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x.py").write_text(
        "from idrs.b.y import _hidden\nfrom idrs.b import y\nfrom idrs.a import z\n"
        "y._helper()\nz._own()\n")
    (root / "b" / "y.py").write_text("from idrs.b import w\nw._fine()\n")
    assert crossings(root) == ["idrs.a.x:1 imports idrs.b.y._hidden",
                               "idrs.a.x:4 uses idrs.b.y._helper"]
