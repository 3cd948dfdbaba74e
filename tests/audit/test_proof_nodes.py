"""Inclusion proofs by level arithmetic equal RFC 9162's recursive PATH; proofs served from the
in-memory upper levels (TopNodes) equal proofs read straight from the node files."""

from __future__ import annotations

import hashlib
import random

from phiguard.app import App
from phiguard.audit import journal as jn
from phiguard.audit.merkle import (
    MemoryNodes,
    consistency_proof,
    inclusion_proof,
    naive_root,
    verify_inclusion,
)


def _rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 §2.1.3.1 defines it (recursively)."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_rfc_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def test_level_arithmetic_gives_the_rfc_path() -> None:
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(70)]
    for n in range(1, 71):
        nodes = MemoryNodes(leaves[:n])
        root = naive_root(leaves[:n])
        for m in range(n):
            proof = inclusion_proof(nodes, m, n)
            assert proof == _rfc_path(m, leaves[:n]), (m, n)
            verify_inclusion(m, n, leaves[m], proof, root)


def test_top_nodes_serve_the_same_proofs_as_the_files(sqlite_app: App) -> None:
    log = sqlite_app.audit
    rng = random.Random(3)
    files = jn.NodeFiles(sqlite_app.home.audit / "tree", writable=False)
    top = jn.TopNodes(files, max_nodes=8)  # tiny, so most levels are read from files
    try:
        for _ in range(6):
            batch = [b"e%d" % rng.randrange(10**6) for _ in range(rng.randrange(1, 90))]
            log.append_batch("CMS", batch)
            size = log.size
            top.extend(size)
            assert all(len(v) == 32 * (size >> lv) for lv, v in top.levels.items())
            for _ in range(25):
                m = rng.randrange(size)
                assert inclusion_proof(top, m, size) == inclusion_proof(files, m, size)
                old = rng.randrange(1, size + 1)
                assert consistency_proof(top, old, size) == consistency_proof(files, old, size)
            assert log.inclusion_proof(size - 1) == inclusion_proof(files, size - 1, size)
    finally:
        files.close()
