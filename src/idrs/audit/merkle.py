"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs. Pure: no database, no I/O.

Nodes are addressed by ``(level, index)``: the perfect subtree of ``2**level`` leaves
starting at leaf ``index * 2**level``. Level 0 is the leaf hashes. Only such perfect
subtrees are ever stored; the hash of any other range (the right edge of a tree whose
size is not a power of two) is folded from at most ``log2(n)`` of them.

Proof *plans* list, for each proof element, the stored nodes whose right-to-left fold is
that element, so a caller can fetch every node one proof needs in one read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

Node = tuple[int, int]  # (level, index)

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha = hashlib.sha256


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible."""


def leaf_hash(leaf_input: bytes) -> bytes:
    """RFC 6962 MTH of one entry: SHA-256(0x00 || leaf_input)."""
    return _sha(b"\x00" + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node: SHA-256(0x01 || left || right)."""
    return _sha(b"\x01" + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    """The largest power of two k with k < n (n >= 2), as RFC 6962 section 2.1 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """Perfect aligned subtrees covering leaves [start, end), left to right (greedy, largest first).

    For the ranges RFC 6962's recursion produces, folding these right to left gives MTH(D[start:end]).
    """
    out: list[Node] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine subtree hashes (left to right) into one, folding from the right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def subtree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The hash of a perfect subtree from its 2**level leaf hashes, left to right."""
    level = list(leaf_hashes)
    if not level or len(level) & (len(level) - 1):
        raise ValueError("a perfect subtree has a power-of-two number of leaves")
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def root_plan(size: int) -> list[Node]:
    """Stored nodes whose fold is the root of the tree of ``size`` leaves (empty for size 0)."""
    return range_nodes(0, size)


def right_edge(size: int) -> list[Node]:
    """The compact range of a tree of ``size`` leaves (one perfect subtree per set bit)."""
    return range_nodes(0, size)


def append_nodes(
    size: int, new_leaf_hashes: Sequence[bytes], get: Callable[[Node], bytes]
) -> list[tuple[Node, bytes]]:
    """Every new perfect-subtree node created by appending leaves to a tree of ``size``.

    ``get`` returns an existing node (only right-edge nodes of the old tree are asked for,
    so an append costs O(log n) reads). Returns ``[((level, index), hash), ...]`` including
    the new leaves themselves at level 0.
    """
    made: dict[Node, bytes] = {}
    out: list[tuple[Node, bytes]] = []
    for i, h in enumerate(new_leaf_hashes):
        idx = size + i
        level = 0
        made[(0, idx)] = h
        out.append(((0, idx), h))
        while idx & 1:
            left = made.get((level, idx - 1))
            if left is None:
                left = get((level, idx - 1))
            h = node_hash(left, h)
            idx >>= 1
            level += 1
            made[(level, idx)] = h
            out.append(((level, idx), h))
    return out


# ---------------------------------------------------------------- inclusion (RFC 9162 2.1.3.1)


def inclusion_plan(index: int, size: int) -> list[list[Node]]:
    """PATH(index, D[0:size]) as stored-node groups, leaf-side first (RFC 9162 order)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    out: list[list[Node]] = []

    def path(m: int, start: int, n: int) -> None:
        if n == 1:
            return
        k = _largest_pow2_below(n)
        if m < k:
            path(m, start, k)
            out.append(range_nodes(start + k, start + n))
        else:
            path(m - k, start + k, n - k)
            out.append(range_nodes(start, start + k))

    path(index, 0, size)
    return out


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: raise ProofError unless ``proof`` links ``leaf`` (a leaf hash) to ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != 32:
            raise ProofError("proof element is not 32 bytes")
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is too short")
    if r != root:
        raise ProofError("computed root does not match")


# ---------------------------------------------------------------- consistency (RFC 9162 2.1.4.1)


def consistency_plan(first: int, second: int) -> list[list[Node]]:
    """PROOF(first, D[0:second]) as stored-node groups (RFC 9162 order); empty if first in (0, second)."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from {first} to {second}")
    if first == 0 or first == second:
        return []
    out: list[list[Node]] = []

    def sub(m: int, start: int, n: int, b: bool) -> None:
        if m == n:
            if not b:
                out.append(range_nodes(start, start + n))
            return
        k = _largest_pow2_below(n)
        if m <= k:
            sub(m, start, k, b)
            out.append(range_nodes(start + k, start + n))
        else:
            sub(m - k, start + k, n - k, False)
            out.append(range_nodes(start, start + k))

    sub(first, 0, second, True)
    return out


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 2.1.4.2: raise ProofError unless the tree of ``second`` extends that of ``first``."""
    if first > second:
        raise ProofError(f"first {first} > second {second}")
    if first == second:
        if proof:
            raise ProofError("proof must be empty for equal sizes")
        if first_root != second_root:
            raise ProofError("roots differ for equal sizes")
        return
    if first == 0:
        if proof:
            raise ProofError("proof must be empty from the empty tree")
        return
    if not proof:
        raise ProofError("empty proof")
    if any(len(p) != 32 for p in proof):
        raise ProofError("proof element is not 32 bytes")
    path = list(proof)
    if first & (first - 1) == 0:  # exact power of two
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is too short")
    if fr != first_root:
        raise ProofError("first root does not match")
    if sr != second_root:
        raise ProofError("second root does not match")


# ---------------------------------------------------------------- plan evaluation, whole trees


def plan_nodes(plan: Iterable[list[Node]]) -> set[Node]:
    return {n for group in plan for n in group}


def evaluate(plan: Sequence[list[Node]], nodes: dict[Node, bytes]) -> list[bytes]:
    """Turn a plan into proof hashes using fetched ``nodes``; KeyError if one is missing."""
    return [fold([nodes[n] for n in group]) for group in plan]


class CompactRange:
    """Streaming root computation: feed leaf hashes in order, ask for the root at any size.

    Keeps one hash per set bit of the size (O(log n) memory); used by verification and export.
    """

    __slots__ = ("size", "_stack")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing

    def append(self, h: bytes) -> None:
        stack = self._stack
        level = 0
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
        self.size += 1

    def append_subtree(self, level: int, h: bytes) -> None:
        """Append a whole perfect subtree of 2**level leaves (size must be aligned to it)."""
        if self.size & ((1 << level) - 1):
            raise ValueError("subtree not aligned")
        self.size += 1 << level
        stack = self._stack
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))

    def root(self) -> bytes:
        return fold([h for _, h in self._stack])

    def hashes(self) -> list[bytes]:
        return [h for _, h in self._stack]

    def subtrees(self) -> list[tuple[int, bytes]]:
        """``(level, hash)`` of each perfect subtree held, left to right."""
        return list(self._stack)


def root_of(leaf_inputs: Iterable[bytes]) -> bytes:
    """MTH over entries (convenience for tests and small exports)."""
    cr = CompactRange()
    for li in leaf_inputs:
        cr.append(leaf_hash(li))
    return cr.root()
