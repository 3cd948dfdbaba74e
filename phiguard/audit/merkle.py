"""RFC 9162 Merkle tree hashing, proofs and their verification.

Written by hand rather than taken from a library (see docs/dev/audit.md): the log needs
proofs read from node files on disk in O(log n), batch appends that hash whole buffers,
and the draft-ietf-plants-merkle-tree-certs *subtree* proofs that no Python library has.

Vocabulary (RFC 9162 §2.1):

* ``leaf_hash(d) = SHA-256(0x00 ‖ d)`` and ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``.
* A *perfect node* ``(level, index)`` is the hash of the complete subtree over leaves
  ``[index·2^level, (index+1)·2^level)``. The log stores every perfect node once, one file
  per level (:class:`NodeReader` reads them), so any proof costs O(log n) reads.
* ``MTH(D[a:b])`` for a range whose right edge may be ragged is folded from at most
  log2(b-a) perfect nodes (:func:`range_hash`).

Verification functions raise :class:`ProofError` with the reason; generation functions take a
:class:`NodeReader`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def hash_pairs(nodes: Sequence[bytes]) -> list[bytes]:
    """Parents of consecutive pairs ``(nodes[0], nodes[1]), (nodes[2], nodes[3]) …`` (a last
    odd node has no parent here).

    The per-node cost is one ``hashlib`` call; pairing with ``zip`` over one iterator and a
    two-step concatenation is ~15 % faster than joining all nodes and slicing the buffer.
    """
    pairs = iter(nodes)
    return [
        _sha256(b"\x01" + left + right).digest()
        for left, right in zip(pairs, pairs, strict=False)  # an odd last node is left out
    ]


def naive_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH by the RFC's recursive definition; slow, for tests and tiny trees."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(naive_root(leaf_hashes[:k]), naive_root(leaf_hashes[k:]))


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# -- appending: the frontier ---------------------------------------------------------------


@dataclass
class Frontier:
    """The right edge of a tree: one pending perfect node per set bit of ``size``.

    ``pending[k]`` is the last perfect node at level ``k`` when ``(size >> k)`` is odd, i.e.
    the left sibling still waiting for a right one. That is the whole state needed to keep
    appending and to compute the root, O(log n) bytes, which is why recovery after a crash
    does not depend on the log's size.
    """

    size: int = 0
    pending: list[bytes | None] = field(default_factory=list)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.pending))

    def append(self, leaves: Sequence[bytes]) -> list[list[bytes]]:
        """Append leaf hashes; return the new perfect nodes of every level (level 0 = leaves).

        The nodes of level ``k`` start at index ``old_size >> k`` in that level's file.
        """
        old = self.size
        created: list[list[bytes]] = []
        cur: list[bytes] = list(leaves)
        level = 0
        while cur:
            created.append(cur)
            if len(self.pending) <= level:
                self.pending.append(None)
            waiting = self.pending[level]
            seq = [waiting, *cur] if (old >> level) & 1 and waiting is not None else cur
            self.pending[level] = seq[-1] if len(seq) & 1 else None
            cur = hash_pairs(seq)
            level += 1
        self.size = old + len(leaves)
        return created

    def root(self) -> bytes:
        acc: bytes | None = None
        for node in self.pending:
            if node is not None:
                acc = node if acc is None else node_hash(node, acc)
        return EMPTY_ROOT if acc is None else acc

    @classmethod
    def load(cls, reader: NodeReader, size: int) -> Frontier:
        """Rebuild the frontier of a tree of ``size`` leaves from stored perfect nodes."""
        pending: list[bytes | None] = []
        for level in range(size.bit_length()):
            pending.append(reader.node(level, (size >> level) - 1) if (size >> level) & 1 else None)
        return cls(size, pending)

    def to_list(self) -> list[str | None]:
        return [None if p is None else p.hex() for p in self.pending]

    @classmethod
    def from_list(cls, size: int, items: Sequence[str | None]) -> Frontier:
        return cls(size, [None if p is None else bytes.fromhex(p) for p in items])


# -- proofs from stored nodes -------------------------------------------------------------


class NodeReader(Protocol):
    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree ``[index << level, (index + 1) << level)``."""
        ...


class MemoryNodes:
    """All perfect nodes of an in-memory list of leaf hashes (tests, evidence checks)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            self.levels.append(hash_pairs(self.levels[-1]))

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def range_hash(reader: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for ``start`` aligned to a power of two ≥ ``end - start``.

    These are exactly the ranges RFC 9162's PATH and SUBPROOF ask for: a perfect subtree,
    or one cut off by the tree's right edge. Folded from ≤ log2(n) perfect nodes.
    """
    if end <= start:
        return EMPTY_ROOT
    parts: list[bytes] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        while pos & ((1 << level) - 1):
            level -= 1
        parts.append(reader.node(level, pos >> level))
        pos += 1 << level
    acc = parts[-1]
    for node in reversed(parts[:-1]):
        acc = node_hash(node, acc)
    return acc


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf-side first.

    Computed level by level with bit arithmetic rather than by the RFC's recursion: at level
    ``l`` the path's sibling is node ``(index >> l) ^ 1``; it is a stored perfect node when
    its leaves are all in the tree, absent when they all lie beyond it (the path's node is
    promoted), and otherwise — at most once per proof — the fold of the ragged right edge
    (:func:`range_hash`). One node read per level, no recursion.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    edge = getattr(reader, "range_hash", None)
    out: list[bytes] = []
    node = reader.node
    level = 0
    last = size - 1
    while last >> level:
        sib = (index >> level) ^ 1
        start = sib << level
        if start < size:
            if start + (1 << level) <= size:
                out.append(node(level, sib))
            elif edge is not None:
                out.append(edge(start, size))
            else:
                out.append(range_hash(reader, start, size))
        level += 1
    return out


def consistency_proof(reader: NodeReader, old: int, new: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[0:new]); empty when ``old == new``."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    out: list[bytes] = []
    lo, hi, m, complete = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append(range_hash(reader, lo + k, hi))
            hi = lo + k
        else:
            out.append(range_hash(reader, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        out.append(range_hash(reader, lo, hi))
    out.reverse()
    return out


# -- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ----------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_len(p)
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` in the tree with ``root``."""
    if len(leaf) != HASH_SIZE:
        raise ProofError("leaf hash has the wrong length")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless the tree (size2, root2) extends (size1, root1)."""
    if size1 > size2:
        raise ProofError(f"size {size1} is larger than size {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ProofError(f"two different roots for the same size {size1}")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    for p in proof:
        _check_len(p)
    items = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 a power of two: root1 is the first node
        items.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = items[0]
    for c in items[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError(f"consistency proof does not reproduce the root of size {size1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not reproduce the root of size {size2}")


# -- subtrees (draft-ietf-plants-merkle-tree-certs §4) ---------------------------------


def is_valid_subtree(start: int, end: int) -> bool:
    """``[start, end)`` is a subtree: non-empty and start a multiple of BIT_CEIL(end-start)."""
    if start < 0 or end <= start:
        return False
    width = end - start
    ceil = 1 << (width - 1).bit_length()
    return start % ceil == 0


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes] | None, root: bytes
) -> None:
    """Raise unless ``leaf`` is entry ``index`` of the subtree ``[start, end)`` with ``root``."""
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree")
    if not start <= index < end:
        raise ProofError(f"leaf {index} is outside the subtree [{start}, {end})")
    if len(leaf) != HASH_SIZE:
        raise ProofError("leaf hash has the wrong length")
    if root_from_inclusion(index - start, end - start, leaf, proof or []) != root:
        raise ProofError("subtree inclusion proof does not lead to the subtree hash")


def verify_subtree_consistency(
    start: int, end: int, size: int, subtree_root: bytes, root: bytes, proof: Sequence[bytes] | None
) -> None:
    """Raise unless the subtree ``[start, end)`` with ``subtree_root`` is in the tree
    ``(size, root)``."""
    items = list(proof or [])
    if start == end:
        # The empty subtree is in every tree; its hash is fixed and needs no proof.
        if not 0 <= start <= size or items or subtree_root != EMPTY_ROOT:
            raise ProofError("invalid empty subtree claim")
        return
    if not is_valid_subtree(start, end) or end > size:
        raise ProofError(f"[{start}, {end}) is not a subtree of a tree of size {size}")
    for p in items:
        _check_len(p)
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if fn == sn:
        fr = sr = subtree_root
    else:
        if not items:
            raise ProofError("subtree consistency proof is empty")
        fr = sr = items.pop(0)
    for c in items:
        if tn == 0:
            raise ProofError("subtree consistency proof is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1 and fn < sn:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn != 0:
        raise ProofError("subtree consistency proof is too short")
    if fr != subtree_root or sr != root:
        raise ProofError("subtree consistency proof does not reproduce both hashes")


def _check_len(node: bytes) -> None:
    if len(node) != HASH_SIZE:
        raise ProofError("a proof node has the wrong length")
