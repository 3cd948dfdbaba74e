"""RFC 9162 hashing and proofs: every shared vector, and properties against the naive root."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phiguard.audit import merkle
from phiguard.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodes,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    naive_root,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc9162"


def _cases(kind: str) -> list[Path]:
    assert VECTORS.is_dir(), f"shared RFC 9162 vectors missing at {VECTORS}"
    return sorted((VECTORS / kind).rglob("*.json"))


def _b(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _proof(items: list[str] | None) -> list[bytes]:
    return [_b(p) for p in items or []]


def _outcome(check, want_err: bool) -> None:  # type: ignore[no-untyped-def]
    if want_err:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    _outcome(
        lambda: verify_inclusion(
            v["leafIdx"], v["treeSize"], _b(v["leafHash"]), _proof(v["proof"]), _b(v["root"])
        ),
        v["wantErr"],
    )


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    _outcome(
        lambda: verify_consistency(
            v["size1"], v["size2"], _b(v["root1"]), _b(v["root2"]), _proof(v["proof"])
        ),
        v["wantErr"],
    )


@pytest.mark.parametrize(
    "path", _cases("subtreeinclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_subtree_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    _outcome(
        lambda: verify_subtree_inclusion(
            v["leafIdx"], v["start"], v["end"], _b(v["leafHash"]), _proof(v["proof"]), _b(v["root"])
        ),
        v["wantErr"],
    )


@pytest.mark.parametrize(
    "path", _cases("subtreeconsistency"), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_subtree_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    _outcome(
        lambda: verify_subtree_consistency(
            v["start"], v["end"], v["size"], _b(v["root1"]), _b(v["root2"]), _proof(v["proof"])
        ),
        v["wantErr"],
    )


def test_vector_suite_is_complete() -> None:
    kinds = {
        k: len(_cases(k))
        for k in ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")
    }
    assert sum(kinds.values()) >= 500, kinds
    happy = [p for p in VECTORS.rglob("happy-path.json")]
    assert len(happy) >= 15


def test_rfc_reference_roots() -> None:
    # The eight leaves of RFC 6962's and the vectors' reference tree.
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    hashes = [leaf_hash(x) for x in leaves]
    assert (
        base64.b64encode(naive_root(hashes)).decode()
        == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    )
    assert naive_root([]) == EMPTY_ROOT


leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaf_lists, st.data())
def test_frontier_matches_naive_root_for_any_batching(
    items: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(x) for x in items]
    f = Frontier()
    stored: list[list[bytes]] = []
    i = 0
    while i < len(hashes):
        n = data.draw(st.integers(1, len(hashes) - i))
        created = f.append(hashes[i : i + n])
        for level, nodes in enumerate(created):
            while len(stored) <= level:
                stored.append([])
            stored[level].extend(nodes)
        i += n
        assert f.root() == naive_root(hashes[:i])
    # the stored perfect nodes are exactly those of the tree
    mem = MemoryNodes(hashes)
    for level, nodes in enumerate(stored):
        assert nodes == mem.levels[level][: len(hashes) >> level]
    assert Frontier.load(mem, len(hashes)).root() == f.root()


@settings(max_examples=150, deadline=None)
@given(leaf_lists, st.data())
def test_generated_proofs_verify_and_match_naive(items: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(x) for x in items]
    mem = MemoryNodes(hashes)
    n = len(hashes)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    root = naive_root(hashes[:size])
    proof = inclusion_proof(mem, index, size)
    verify_inclusion(index, size, hashes[index], proof, root)
    old = data.draw(st.integers(1, size))
    cproof = consistency_proof(mem, old, size)
    verify_consistency(old, size, naive_root(hashes[:old]), root, cproof)
    # a wrong leaf, a wrong index or a flipped proof node never verifies
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(b"forged"), proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
        with pytest.raises(ProofError):
            verify_inclusion(index, size, hashes[index], bad, root)
    if old < size:
        with pytest.raises(ProofError):
            verify_consistency(old, size, leaf_hash(b"forged"), root, cproof)


@given(st.integers(0, 2**40), st.integers(1, 2**40))
def test_subtree_validity_rule(start: int, width: int) -> None:
    ceil = 1
    while ceil < width:
        ceil *= 2
    assert merkle.is_valid_subtree(start, start + width) == (start % ceil == 0)
