"""Masking: apply a verdict's obligations to a command's output tree."""

from __future__ import annotations

from typing import Any

from idrs.access.decision import Obligations
from idrs.masterfile.screens import render


def apply(tree: Any, obligations: Obligations) -> tuple[Any, list[str]]:
    """Plain JSON with only the visible classes in clear, and the list of masked paths."""
    return render(tree, obligations.visible)
