"""RFC 6962 / RFC 9162 Merkle tree: known-answer vectors and a naive reference.

Known-answer vectors (leaf inputs, node hashes, root hashes for tree sizes 0..8, and the
inclusion and consistency proofs) are the published test data of the transparency-dev
Merkle library, the Certificate Transparency reference implementation:
  https://github.com/transparency-dev/merkle/blob/main/testonly/constants.go
  https://github.com/transparency-dev/merkle/blob/main/proof/verify_test.go
(the same vectors as certificate-transparency-go's merkletree tests). Many further sizes
(1..70) are checked against a literal transcription of RFC 6962 section 2.1 / RFC 9162
section 2.1.3-2.1.4 recursive definitions written independently below.
"""

from __future__ import annotations

import hashlib

import pytest

from idrs.audit import merkle

H = bytes.fromhex

LEAVES = [
    H(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# (leaf index 0-based, tree size, proof)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]

CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


# ------------------------------------------------ independent reference (RFC text, recursive)


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def gen(n: int) -> list[bytes]:
    return [str(i).encode() for i in range(n)]


def tree_nodes(d: list[bytes]) -> dict[merkle.Node, bytes]:
    """Every perfect subtree hash of ``d`` (what the database stores)."""
    level = [merkle.leaf_hash(x) for x in d]
    out: dict[merkle.Node, bytes] = {(0, i): h for i, h in enumerate(level)}
    lvl = 0
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        lvl += 1
        out.update({(lvl, i): h for i, h in enumerate(level)})
    return out


# ------------------------------------------------ known answers


def test_hashing_known_answers() -> None:
    for level, row in enumerate(NODE_HASHES):
        nodes = tree_nodes(LEAVES)
        for i, hx in enumerate(row):
            assert nodes[(level, i)].hex() == hx
    for size, hx in enumerate(ROOTS):
        assert merkle.root_of(LEAVES[:size]).hex() == hx


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_known_answers(index: int, size: int, proof: list[str]) -> None:
    nodes = tree_nodes(LEAVES[:size])
    got = merkle.evaluate(merkle.inclusion_plan(index, size), nodes)
    assert [h.hex() for h in got] == proof
    merkle.verify_inclusion(
        index, size, merkle.leaf_hash(LEAVES[index]), [H(p) for p in proof], H(ROOTS[size])
    )


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_known_answers(first: int, second: int, proof: list[str]) -> None:
    nodes = tree_nodes(LEAVES[:second])
    got = merkle.evaluate(merkle.consistency_plan(first, second), nodes)
    assert [h.hex() for h in got] == proof
    merkle.verify_consistency(
        first, second, [H(p) for p in proof], H(ROOTS[first]), H(ROOTS[second])
    )


# ------------------------------------------------ many sizes against the reference


def test_roots_and_appends_match_reference_for_many_sizes() -> None:
    d = gen(70)
    stored: dict[merkle.Node, bytes] = {}
    for n in range(70):
        made = merkle.append_nodes(n, [merkle.leaf_hash(d[n])], stored.__getitem__)
        stored.update(dict(made))
        plan = merkle.root_plan(n + 1)
        assert merkle.fold([stored[x] for x in plan]) == ref_mth(d[: n + 1])
    assert stored == tree_nodes(d)


def test_batch_append_equals_one_at_a_time() -> None:
    d = [merkle.leaf_hash(x) for x in gen(37)]
    stored: dict[merkle.Node, bytes] = {}
    for lo, hi in [(0, 3), (3, 4), (4, 17), (17, 37)]:
        stored.update(dict(merkle.append_nodes(lo, d[lo:hi], stored.__getitem__)))
    assert stored == tree_nodes(gen(37))


def test_inclusion_proofs_many_sizes() -> None:
    d = gen(70)
    nodes = tree_nodes(d)
    for size in range(1, 71):
        root = ref_mth(d[:size])
        for index in range(size):
            proof = merkle.evaluate(merkle.inclusion_plan(index, size), nodes)
            assert proof == ref_path(index, d[:size])
            merkle.verify_inclusion(index, size, merkle.leaf_hash(d[index]), proof, root)


def test_consistency_proofs_many_sizes() -> None:
    d = gen(70)
    nodes = tree_nodes(d)
    for second in range(1, 71):
        root2 = ref_mth(d[:second])
        for first in range(1, second + 1):
            proof = merkle.evaluate(merkle.consistency_plan(first, second), nodes)
            assert proof == (ref_subproof(first, d[:second], True) if first < second else [])
            merkle.verify_consistency(first, second, proof, ref_mth(d[:first]), root2)


def test_compact_range_roots() -> None:
    d = gen(40)
    cr = merkle.CompactRange()
    for i, x in enumerate(d):
        cr.append(merkle.leaf_hash(x))
        assert cr.root() == ref_mth(d[: i + 1])


# ------------------------------------------------ rejection


def test_inclusion_rejects_corruption() -> None:
    d = gen(21)
    nodes = tree_nodes(d)
    root = ref_mth(d)
    leaf = merkle.leaf_hash(d[13])
    proof = merkle.evaluate(merkle.inclusion_plan(13, 21), nodes)
    bad_cases = [
        (12, 21, leaf, proof, root),
        (14, 21, leaf, proof, root),
        (13, 42, leaf, proof, root),
        (13, 10, leaf, proof, root),
        (13, 21, merkle.leaf_hash(b"x"), proof, root),
        (13, 21, leaf, proof[:-1], root),
        (13, 21, leaf, [*proof, root], root),
        (13, 21, leaf, [bytes([proof[0][0] ^ 8]) + proof[0][1:], *proof[1:]], root),
        (13, 21, leaf, proof, merkle.EMPTY_ROOT),
    ]
    for index, size, lf, pf, rt in bad_cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, lf, pf, rt)


def test_consistency_rejects_corruption() -> None:
    d = gen(21)
    nodes = tree_nodes(d)
    r1, r2 = ref_mth(d[:6]), ref_mth(d)
    proof = merkle.evaluate(merkle.consistency_plan(6, 21), nodes)
    bad_cases = [
        (5, 21, proof, r1, r2),
        (7, 21, proof, r1, r2),
        (6, 42, proof, r1, r2),
        (6, 21, proof, r2, r1),
        (6, 21, [], r1, r2),
        (6, 21, proof[:-1], r1, r2),
        (6, 21, [*proof, r1], r1, r2),
        (6, 21, [bytes([proof[0][0] ^ 16]) + proof[0][1:], *proof[1:]], r1, r2),
        (21, 6, proof, r2, r1),
    ]
    for first, second, pf, a, b in bad_cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(first, second, pf, a, b)


def test_impossible_parameters() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_plan(5, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_plan(6, 3)
