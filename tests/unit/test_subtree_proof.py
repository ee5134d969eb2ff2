"""The audit path of a complete aligned subtree (an archived partition) to the root: the leaf
inclusion path minus its first ``level`` steps, verified as a leaf of the tree seen with
level-``level`` nodes as leaves (idrs.audit.partitions). Checked for every subtree of every
tree size up to 70 against the root computed from the leaves."""

from __future__ import annotations

import hashlib

import pytest

from idrs.audit import merkle


def _nodes(n: int) -> tuple[list[bytes], dict[merkle.Node, bytes]]:
    leaves = [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]
    nodes: dict[merkle.Node, bytes] = {(0, i): h for i, h in enumerate(leaves)}
    level, row = 0, leaves
    while len(row) > 1:
        row = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
        nodes.update({(level, i): h for i, h in enumerate(row)})
    return leaves, nodes


@pytest.mark.parametrize("size", range(1, 71))
def test_every_complete_subtree_proves_into_the_root(size: int) -> None:
    leaves, nodes = _nodes(size)
    cr = merkle.CompactRange()
    for h in leaves:
        cr.append(h)
    root = cr.root()
    level = 0
    while (1 << level) <= size:
        for j in range(size >> level):  # the complete subtrees of this level
            start = j << level
            sub = merkle.subtree_hash(leaves[start : start + (1 << level)])
            plan = merkle.inclusion_plan(start, size)[level:]
            path = merkle.evaluate(plan, nodes)
            count = (size + (1 << level) - 1) >> level
            merkle.verify_inclusion(j, count, sub, path, root)
            if count > 1:  # the same path does not prove a neighbour's subtree
                other = (j + 1) % count
                with pytest.raises(merkle.ProofError):
                    merkle.verify_inclusion(other, count, sub, path, root)
        level += 1
