"""The repository stands alone: no tracked file refers to a file outside it.

Three checks over every tracked text file: no path climbs out of the checkout into a
sibling folder or names an absolute path of the machine's work tree; every ``*.md`` file a
file names exists in the repository; every relative link of a Markdown page leads to a
tracked file or folder.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: a path that leaves the repository: up into a sibling folder, or an absolute work tree
_OUTSIDE = re.compile(r"\.\./(?:\.\./)*shared\b|/work/(?:shared|main|wt)\b")
_MD_NAME = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]+\.md\b")
_MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [ROOT / p for p in out.stdout.decode().split("\0") if p]


def _texts(files: list[Path]) -> Iterator[tuple[Path, str]]:
    for path in files:
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images and other binary files name nothing


def _exists(name: str, mentioned_in: Path, tracked: set[Path], basenames: set[str]) -> bool:
    if "/" not in name:
        return name in basenames
    candidates = (mentioned_in.parent / name, ROOT / name)
    return any(c.resolve() in tracked for c in candidates)


def test_no_file_points_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in _texts(_tracked())
        for n, line in enumerate(text.splitlines(), start=1)
        if _OUTSIDE.search(line)
    ]
    assert hits == []


def test_every_markdown_file_named_is_in_the_repository() -> None:
    files = _tracked()
    tracked = {p.resolve() for p in files}
    basenames = {p.name for p in files}
    missing = [
        f"{path.relative_to(ROOT)}:{n}: {name}"
        for path, text in _texts(files)
        for n, line in enumerate(text.splitlines(), start=1)
        for name in _MD_NAME.findall(line)
        if not _exists(name, path, tracked, basenames)
    ]
    assert missing == []


def test_every_relative_link_of_the_documentation_resolves() -> None:
    files = _tracked()
    tracked = {p.resolve() for p in files}
    folders = {parent for p in tracked for parent in p.parents}
    broken = []
    for path, text in _texts([p for p in files if p.suffix == ".md"]):
        for target in _MD_LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto: — not a file of this repository
            resolved = (path.parent / target).resolve()
            if resolved not in tracked and resolved not in folders:
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []
