"""``idrs audit verify``: recompute the whole Merkle tree from the stored entries and check
every stored node, every stored checkpoint and the checkpoint saved under IDRS_HOME.

Catches: an altered entry (its leaf hash), a deleted entry (a gap, or a log shorter than a
checkpoint), an inserted or reordered entry (leaf hashes / node cache / checkpoint roots no
longer match), a forged checkpoint (signature), a rolled-back checkpoint (sizes shrinking,
a missing checkpoint number, or the database older than the checkpoint kept in IDRS_HOME).
Each problem names the first entry index it affects.

Recomputed hashes: an attacker who changes an entry and recomputes its stored leaf hash and
every Merkle node above it leaves only the signed roots objecting. Each checkpoint keeps a
copy of the leaf hashes it newly covers; the copies between the last checkpoint that still
matches and the first that does not must fold (with the matching prefix) to the signed
root, and if they do they are what was signed: the first entry whose content differs from
its copy is named exactly. If the copies were damaged too, the stored Merkle nodes are
descended from the signed root instead, as far as they still hash up to it.

The report also says how many entries lie past the newest checkpoint (not yet signed: the
tail signer covers them within IDRS_CHECKPOINT_MAX_UNSIGNED_SECONDS).

Streaming: entries are read in aligned chunks; memory is O(chunk + log n).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from idrs.audit import merkle
from idrs.audit.checkpoint import Checkpoint, CheckpointError, Verifier
from idrs.audit.models import MIN_STORED_LEVEL, node_key
from idrs.audit.store import raw

CHUNK = 4096
_INDEX_RE = re.compile(rb'"index":(\d+)[,}]')
_sha = hashlib.sha256


@dataclass
class Problem:
    """One finding. ``index`` is the first entry it implicates; ``end`` (inclusive) is the last
    when the finding only narrows the damage to a range (a Merkle node, a checkpoint)."""

    index: int | None
    reason: str
    end: int | None = None

    def explained_by(self, other: Problem) -> bool:
        """A range finding is explained by another finding whose first index lies inside it."""
        if self.end is None or self.index is None or other.index is None or other is self:
            return False
        if other.end is not None and other.end - other.index >= self.end - self.index:
            return False
        return self.index <= other.index <= self.end

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0
    latest_checkpoint_size: int | None = None
    #: entries stored past the newest checkpoint (not yet covered by any signature)
    past_checkpoint: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The lowest implicated index, ignoring ranges explained by a narrower finding inside them."""
        indexed = [p for p in self.problems if p.index is not None]
        narrow = [p for p in indexed if not any(p.explained_by(q) for q in indexed)]
        if narrow:
            return min(narrow, key=lambda p: p.index or 0)
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        fb = self.first_bad
        return {
            "ok": self.ok,
            "entries": self.size,
            "checkpoints": self.checkpoints,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "entries_past_checkpoint": self.past_checkpoint,
            "first_bad_index": fb.index if fb else None,
            "first_problem": fb.reason if fb else None,
            "problems": [p.as_dict() for p in self.problems[:50]],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Target:
    label: str
    size: int
    root: bytes


def _check_checkpoints(
    rows: list[tuple[int, int, bytes, str]], verifier: Verifier, report: Report
) -> list[_Target]:
    targets: list[_Target] = []
    prev_id, prev_size, origin = 0, 0, None
    for cid, size, root, note in rows:
        label = f"checkpoint #{cid}"
        if cid != prev_id + 1:
            report.problems.append(
                Problem(
                    None, f"{label}: checkpoints #{prev_id + 1}..#{cid - 1} are missing (deleted)"
                )
            )
        prev_id = cid
        try:
            ck = Checkpoint.parse(verifier.open(note))
        except CheckpointError as exc:
            report.problems.append(
                Problem(size, f"{label} (size {size}): forged or damaged signature: {exc}")
            )
            continue
        if ck.size != size or ck.root != root:
            report.problems.append(
                Problem(
                    min(size, ck.size), f"{label}: stored size/root differ from its signed note"
                )
            )
        if origin is None:
            origin = ck.origin
        elif ck.origin != origin:
            report.problems.append(
                Problem(ck.size, f"{label}: origin {ck.origin!r} differs from {origin!r}")
            )
        if ck.size < prev_size:
            report.problems.append(
                Problem(
                    ck.size,
                    f"{label}: size {ck.size} rolled back below the previous checkpoint's {prev_size}",
                )
            )
        prev_size = max(prev_size, ck.size)
        targets.append(_Target(label, ck.size, ck.root))
    return targets


def _levels(hashes: list[bytes]) -> list[list[bytes]]:
    levels = [hashes]
    lv = hashes
    while len(lv) > 1:
        lv = [_sha(b"\x01" + lv[i] + lv[i + 1]).digest() for i in range(0, len(lv) - 1, 2)]
        levels.append(lv)
    return levels


def verify_log(
    engine: Engine, verifier: Verifier, witness: str | None = None, chunk: int = CHUNK
) -> Report:
    """Check everything; return a Report (``ok`` False with problems; never raises on tampering)."""
    if chunk & (chunk - 1):
        raise ValueError("chunk must be a power of two")
    started = time.perf_counter()
    report = Report()
    chunk_level = chunk.bit_length() - 1
    with raw(engine) as db:
        db.begin_read()
        cur = db.execute("SELECT id, tree_size, root_hash, note FROM audit_checkpoint ORDER BY id")
        rows = [(int(a), int(b), bytes(c), str(d)) for a, b, c, d in cur.fetchall()]
        cur.close()
        report.checkpoints = len(rows)
        targets = _check_checkpoints(rows, verifier, report)
        latest = max((t.size for t in targets), default=None)
        report.latest_checkpoint_size = latest
        if witness is not None:
            try:
                w = Checkpoint.parse(verifier.open(witness))
                targets.append(_Target("checkpoint kept in IDRS_HOME", w.size, w.root))
                if latest is None or w.size > latest:
                    report.problems.append(
                        Problem(
                            None,
                            f"rolled back: IDRS_HOME keeps a signed checkpoint of size {w.size} but the database's "
                            f"latest is {latest or 0}",
                        )
                    )
            except CheckpointError as exc:
                report.problems.append(
                    Problem(None, f"checkpoint kept in IDRS_HOME does not verify: {exc}")
                )
        by_size: dict[int, list[_Target]] = {}
        for t in targets:
            by_size.setdefault(t.size, []).append(t)
        for t in by_size.get(0, []):
            if t.root != merkle.EMPTY_ROOT:
                report.problems.append(
                    Problem(0, f"{t.label} (size 0): root is not the empty-tree hash")
                )

        if db.pg:
            cur = db.conn.cursor(name="idrs_audit_verify")
            cur.itersize = chunk
            cur.execute("SELECT idx, leaf_input, leaf_hash FROM audit_entry ORDER BY idx")
        else:
            cur = db.execute("SELECT idx, leaf_input, leaf_hash FROM audit_entry ORDER BY idx")
        stack = merkle.CompactRange()
        base = 0
        high_nodes: list[tuple[merkle.Node, bytes]] = []
        stopped = False
        last_good = 0
        sizes = sorted(x for x in by_size if x > 0)
        next_target = 0
        # the last size whose root matched, with its subtrees (level, hash) left to right
        trusted: tuple[int, list[tuple[int, bytes]]] = (0, [])
        failed: tuple[_Target, int, list[tuple[int, bytes]]] | None = None
        while True:
            rows_ = cur.fetchmany(chunk)
            if not rows_:
                break
            n = len(rows_)
            if rows_[0][0] != base or rows_[-1][0] != base + n - 1:
                for i, r in enumerate(rows_):
                    if r[0] != base + i:
                        report.problems.append(
                            Problem(
                                base + i,
                                f"entry {base + i} is missing (deleted) or out of order: found index {r[0]}",
                            )
                        )
                        base += i  # entries verified in order up to here
                        break
                stopped = True
                break
            computed = [_sha(b"\x00" + r[1]).digest() for r in rows_]
            stored = [r[2] for r in rows_]
            found = len(report.problems)
            if computed != stored:
                i = next(i for i in range(n) if computed[i] != stored[i])
                report.problems.append(
                    Problem(
                        base + i,
                        f"entry {base + i} was altered: it does not match its stored leaf hash",
                    )
                )
            levels = _levels(computed)
            for lvl in range(MIN_STORED_LEVEL, len(levels)):
                lo, cnt = base >> lvl, len(levels[lvl])
                c2 = db.execute(
                    "SELECT hash FROM audit_node WHERE id >= ? AND id < ? ORDER BY id",
                    (node_key(lvl, lo), node_key(lvl, lo + cnt)),
                )
                got = [x[0] for x in c2.fetchall()]
                c2.close()
                if got != levels[lvl]:
                    k = next(
                        (k for k in range(cnt) if k >= len(got) or got[k] != levels[lvl][k]), cnt
                    )
                    report.problems.append(
                        Problem(
                            (lo + k) << lvl,
                            f"stored Merkle node (level {lvl}, index {lo + k}) "
                            f"does not match entries {(lo + k) << lvl}..{((lo + k + 1) << lvl) - 1}",
                            ((lo + k + 1) << lvl) - 1,
                        )
                    )
            prefix = stack.hashes()
            while next_target < len(sizes) and sizes[next_target] <= base + n:
                s = sizes[next_target]
                next_target += 1
                parts = [levels[lvl][i - (base >> lvl)] for lvl, i in merkle.range_nodes(base, s)]
                for t in by_size[s]:
                    if merkle.fold(prefix + parts) == t.root:
                        last_good = s
                        edge = [
                            (lvl, levels[lvl][i - (base >> lvl)])
                            for lvl, i in merkle.range_nodes(base, s)
                        ]
                        trusted = (s, stack.subtrees() + edge)
                    else:
                        if failed is None:
                            failed = (t, *trusted)
                        report.problems.append(
                            Problem(
                                last_good,
                                f"{t.label} (size {s}): root does not match entries "
                                f"0..{s - 1}; the first bad entry is at or after {last_good}",
                                s - 1,
                            )
                        )
            if len(report.problems) > found:
                # something in this chunk is wrong: entries carry their own index, which names
                # a moved, inserted or reordered entry exactly (checked only here: it is slow)
                _check_claims(rows_, base, report)
            if n == chunk:
                # the chunk root, then every higher node its merge completes
                h, lvl, idx = levels[chunk_level][0], chunk_level, base >> chunk_level
                stack.append_subtree(chunk_level, h)
                tmp = list(prefix)
                while idx & 1:
                    h = merkle.node_hash(tmp.pop(), h)
                    idx >>= 1
                    lvl += 1
                    high_nodes.append(((lvl, idx), h))
                if len(high_nodes) >= 256:
                    _check_high(db, high_nodes, report)
            base += n
            if n < chunk:
                break
        cur.close()
        if high_nodes:
            _check_high(db, high_nodes, report)
        if failed is not None:
            copies = _copies(db, rows, failed[1], failed[0].size)
            _pinpoint(db, failed[0], failed[1], failed[2], copies, report)
        report.size = base
        report.past_checkpoint = max(0, db.size() - (latest or 0))
        if not stopped:
            for t in targets:
                if t.size > base:
                    report.problems.append(
                        Problem(
                            base,
                            f"entries {base}..{t.size - 1} are missing: {t.label} covers {t.size} entries",
                            t.size - 1,
                        )
                    )
            expected_nodes = sum(
                base >> lvl for lvl in range(MIN_STORED_LEVEL, base.bit_length() + 1)
            )
            got_nodes = int(db.one("SELECT COUNT(*) FROM audit_node")[0])
            if got_nodes != expected_nodes:
                report.problems.append(
                    Problem(
                        None,
                        f"node cache holds {got_nodes} rows, a tree of {base} entries has {expected_nodes}",
                    )
                )
        db.rollback()
    report.seconds = time.perf_counter() - started
    return report


def _check_high(db: Any, nodes: list[tuple[merkle.Node, bytes]], report: Report) -> None:
    stored = db.nodes([n for n, _ in nodes])
    for (lvl, idx), h in nodes:
        if stored.get((lvl, idx)) != h:
            report.problems.append(
                Problem(
                    idx << lvl,
                    f"stored Merkle node (level {lvl}, index {idx}) does not match "
                    f"entries {idx << lvl}..{((idx + 1) << lvl) - 1}",
                    ((idx + 1) << lvl) - 1,
                )
            )
    nodes.clear()


def _check_claims(rows: list[Any], base: int, report: Report) -> None:
    for i, r in enumerate(rows):
        leaf, at = bytes(r[1]), base + i
        if b'"index":%d,' % at not in leaf and b'"index":%d}' % at not in leaf:
            m = _INDEX_RE.search(leaf)
            claimed = int(m.group(1)) if m else None
            report.problems.append(
                Problem(
                    at if claimed is None else min(at, claimed),
                    f"entry at {at} claims index {claimed}: moved, inserted or reordered",
                )
            )
            return


# ---------------------------------------------------------------- naming a recomputed entry


def _copies(
    db: Any, rows: list[tuple[int, int, bytes, str]], start: int, end: int
) -> list[tuple[int, int, bytes]]:
    """``(first, end, leaf hashes)`` kept with the checkpoint rows whose new entries (from the
    previous row's size to their own) meet ``start..end-1``; only well-formed copies (they are
    authenticated by the caller). Only those rows' copies are read: memory stays small."""
    spans: dict[int, tuple[int, int]] = {}
    prev = 0
    for cid, size, _root, _note in rows:
        if size > prev and size > start and prev < end:
            spans[cid] = (prev, size)
        prev = size
    if not spans:
        return []
    marks = ",".join("?" * len(spans))
    cur = db.execute(
        f"SELECT id, leaf_hashes FROM audit_checkpoint WHERE id IN ({marks})",  # noqa: S608
        sorted(spans),
    )
    out: list[tuple[int, int, bytes]] = []
    for cid, blob in cur.fetchall():
        first, last = spans[int(cid)]
        if blob is not None and len(bytes(blob)) == 32 * (last - first):
            out.append((first, last, bytes(blob)))
    cur.close()
    return sorted(out)


def _copied_hashes(
    copies: list[tuple[int, int, bytes]], start: int, end: int
) -> list[bytes] | None:
    """The copied leaf hashes of entries ``start..end-1``, or None if a copy is missing."""
    out: list[bytes] = []
    pos = start
    for a, b, blob in copies:
        if a <= pos < b:
            stop = min(b, end)
            out += [blob[32 * (i - a) : 32 * (i - a + 1)] for i in range(pos, stop)]
            pos = stop
        if pos >= end:
            return out
    return None


def _leaf_hashes(db: Any, start: int, end: int) -> dict[int, bytes]:
    cur = db.execute(
        "SELECT idx, leaf_input FROM audit_entry WHERE idx >= ? AND idx < ? ORDER BY idx",
        (start, end),
    )
    out: dict[int, bytes] = {}
    while rows := cur.fetchmany(CHUNK):
        for idx, leaf in rows:
            out[int(idx)] = merkle.leaf_hash(bytes(leaf))
    cur.close()
    return out


def _pinpoint(
    db: Any,
    target: _Target,
    good: int,
    good_edge: list[tuple[int, bytes]],
    copies: list[tuple[int, int, bytes]],
    report: Report,
) -> None:
    """Name the first entry in ``good..target.size-1`` whose content is not what ``target``
    signed: entries ``0..good-1`` match a signed root (``good_edge``: their subtrees)."""
    size = target.size
    if size <= good:
        return
    signed = _copied_hashes(copies, good, size)
    if signed is not None:
        cr = merkle.CompactRange()
        for lvl, h in good_edge:
            cr.append_subtree(lvl, h)
        for h in signed:
            cr.append(h)
        if cr.root() == target.root:  # the copies are what was signed
            actual = _leaf_hashes(db, good, size)
            for i, h in enumerate(signed):
                if actual.get(good + i) != h:
                    report.problems.append(
                        Problem(
                            good + i,
                            f"entry {good + i} no longer matches what {target.label} signed "
                            "(its content changed; stored hashes were recomputed to hide it)",
                        )
                    )
                    return
            return
        report.problems.append(
            Problem(
                None,
                f"the leaf hashes kept with the checkpoints for entries {good}..{size - 1} "
                f"do not match {target.label} either (altered)",
            )
        )
    _descend(db, target, good, report)


def _descend(db: Any, target: _Target, good: int, report: Report) -> None:
    """Bisect with the stored Merkle nodes: from the signed root down, keep only stored
    hashes that hash up to it, and follow the child whose entries no longer give its hash."""
    size = target.size
    plan = merkle.root_plan(size)
    try:
        stored = db.nodes(plan)
    except KeyError:
        return
    if any(n not in stored for n in plan) or merkle.fold([stored[n] for n in plan]) != target.root:
        return  # the stored nodes were rewritten too: the checkpoint's range is all we know
    for lvl, idx in plan:
        lo, hi = idx << lvl, (idx + 1) << lvl
        if hi <= good:
            continue  # inside the part that matches a signed root
        actual = _leaf_hashes(db, lo, hi)
        if len(actual) != hi - lo:
            return  # missing entries: reported by the main pass
        leaves = [actual[i] for i in range(lo, hi)]
        trusted_hash = stored[(lvl, idx)]
        if merkle.subtree_hash(leaves) == trusted_hash:
            continue  # this subtree is intact: the next one of the plan
        while lvl > 0:
            left, right = (lvl - 1, 2 * idx), (lvl - 1, 2 * idx + 1)
            try:
                kids = db.nodes([left, right])
            except KeyError:
                kids = {}
            if (
                left not in kids
                or right not in kids
                or (merkle.node_hash(kids[left], kids[right]) != trusted_hash)
            ):
                report.problems.append(
                    Problem(
                        lo,
                        f"entries {lo}..{hi - 1} hold the first change under {target.label} "
                        "(stored hashes were recomputed; the nodes below no longer tell which)",
                        hi - 1,
                    )
                )
                return
            half = (hi - lo) // 2
            if merkle.subtree_hash(leaves[:half]) != kids[left]:
                lvl, idx, hi, trusted_hash = lvl - 1, 2 * idx, lo + half, kids[left]
                leaves = leaves[:half]
            else:
                lvl, idx, lo, trusted_hash = lvl - 1, 2 * idx + 1, lo + half, kids[right]
                leaves = leaves[half:]
        report.problems.append(
            Problem(
                lo,
                f"entry {lo} no longer matches what {target.label} signed "
                "(stored hashes were recomputed to hide it)",
            )
        )
        return
