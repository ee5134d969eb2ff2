"""Run every benchmark module and write docs/benchmarks.md.

Each module ``bench/bench_<name>.py`` defines ``TITLE`` and ``run(scale: str) -> list[dict]``
returning figures ``{"what", "value", "unit", "target", "met"}``. ``scale`` is ``full``
(the sizes the issues name) or ``quick`` (small sizes for a smoke run):
``python -m bench [--quick] [NAME ...]``. Results of modules not run this time are kept
from the previous docs/benchmarks.md run (stored in docs/benchmarks.json, merged under a file lock).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.json"


def _modules() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in (ROOT / "bench").glob("bench_*.py"))


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"subset of {_modules()}")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args()
    names = args.names or _modules()
    scale = "quick" if args.quick else "full"
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"== {mod.TITLE} ({scale})", flush=True)
        t0 = time.perf_counter()
        figures = mod.run(scale)
        elapsed = time.perf_counter() - t0
        for f in figures:
            mark = "ok" if f.get("met") else ("MISSED" if f.get("met") is False else "")
            print(f"  {f['what']}: {f['value']} {f['unit']} (target {f.get('target', '-')}) {mark}")
        entry = {
            "title": mod.TITLE,
            "scale": scale,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "command": f"make bench  (python -m bench {name}{' --quick' if args.quick else ''})",
            "seconds": round(elapsed, 1),
            "figures": figures,
        }
        _merge(name, entry)
    print(f"wrote {RESULTS.relative_to(ROOT)} and docs/benchmarks.md")


def _merge(name: str, entry: dict) -> dict:
    """Merge one module's results under an exclusive lock (concurrent runs lose nothing)."""
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = entry
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        write_markdown(results)
    return results


#: docs/benchmarks.md keeps what follows this line as it is (comparisons measured once, by hand,
#: each with its command): make bench rewrites only the part above it
KEEP = "<!-- measured once, not by make bench (each section gives its command); kept as it is -->"


def write_markdown(results: dict) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(KEEP):] if KEEP in old else ""
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); each section says when, where and with",
        "which command it was measured. Targets come from the issues. Figures are measured,",
        "never edited by hand.",
        "",
    ]
    for name in sorted(results):
        r = results[name]
        lines += [
            f"## {r['title']}",
            "",
            f"- measured: {r['date']} ({r['scale']} scale, {r['seconds']} s)",
            f"- machine: {r['machine']}",
            f"- command: `{r['command']}`",
            "",
            "| figure | value | target | met |",
            "| --- | --- | --- | --- |",
        ]
        for f in r["figures"]:
            met = {True: "yes", False: "**no**", None: "-"}[f.get("met")]
            lines.append(f"| {f['what']} | {f['value']} {f['unit']} | {f.get('target', '-')} | {met} |")
            if f.get("note"):
                lines.append(f"| ↳ {f['note']} | | | |")
        lines.append("")
    path.write_text("\n".join(lines) + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    sys.exit(main())
