#!/usr/bin/env python3
"""Standalone verifier of a phiguard audit evidence bundle. Needs Python 3.9+ and `cryptography`.

    python3 verify.py BUNDLE.zip [--key VKEY] [--witness-key VKEY ...]

It checks, offline and without phiguard:
  1. every checkpoint in the bundle carries a valid Ed25519 signature of the log's key
     (C2SP signed-note / tlog-checkpoint) and, for each --witness-key, a valid cosignature;
  2. consecutive checkpoints are consistent (RFC 9162 consistency proofs): the log only grew;
  3. every entry's leaf data hashes (RFC 9162, SHA-256(0x00 || leaf)) to a leaf that is
     included (RFC 9162 inclusion proof) in the tree of the latest checkpoint;
  4. the bytes shown for each entry are exactly the bytes inside that sealed leaf.
Compare the printed key with the one the hospital publishes (or pass it with --key).
Exit status 0 when everything verifies, 1 otherwise. This file is deliberately one small
module with no phiguard import, so that it can be read and audited on its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
import zipfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DASH = "\u2014 "


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != 32:
            raise ValueError("malformed inclusion proof")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof too short")
    return r


def check_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> None:
    if size1 == size2:
        if proof or root1 != root2:
            raise ValueError("equal sizes with different roots")
        return
    if not 0 < size1 < size2 or not proof:
        raise ValueError("impossible consistency claim")
    items = list(proof)
    if size1 & (size1 - 1) == 0:
        items.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = items[0]
    for c in items[1:]:
        if sn == 0 or len(c) != 32:
            raise ValueError("malformed consistency proof")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise ValueError("consistency proof does not verify")


NEXT_KEY = "phiguard-next-key "  # the same line phiguard.audit.checkpoint writes


def parse_vkey(vkey: str) -> tuple[str, bytes, int, Ed25519PublicKey]:
    name, kid_hex, material = vkey.strip().split("+", 2)
    raw = base64.b64decode(material)
    if len(raw) != 33 or raw[0] not in (1, 4):
        raise ValueError("unsupported verifier key")
    kid = bytes.fromhex(kid_hex)
    if _h(name.encode() + b"\n" + raw[:1] + raw[1:])[:4] != kid:
        raise ValueError("verifier key ID does not match")
    return name, kid, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(
    note: bytes, log_key: str, witness_keys: list[str]
) -> tuple[str, int, bytes, list[str]]:
    """Verify a signed checkpoint; return (origin, size, root, witnesses that cosigned)."""
    text_str, sep, block = note.decode().rpartition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text = (text_str + "\n").encode()
    keys = [parse_vkey(log_key)] + [parse_vkey(w) for w in witness_keys]
    signed_by_log = False
    cosigned = []
    for line in block.rstrip("\n").split("\n"):
        if not line.startswith(DASH):
            raise ValueError("malformed signature line")
        name, _, b64 = line[len(DASH) :].partition(" ")
        raw = base64.b64decode(b64)
        for i, (kname, kid, kind, pub) in enumerate(keys):
            if (kname, kid) != (name, raw[:4]):
                continue
            try:
                if kind == 1:
                    pub.verify(raw[4:], text)
                else:
                    (ts,) = struct.unpack(">Q", raw[4:12])
                    pub.verify(raw[12:], b"cosignature/v1\ntime %d\n" % ts + text)
            except InvalidSignature:
                raise ValueError(f"signature by {name} does not verify") from None
            if i == 0:
                signed_by_log = True
            else:
                cosigned.append(name)
    if not signed_by_log:
        raise ValueError("checkpoint not signed by the log key")
    lines = text.decode().split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != keys[0][0]:
        raise ValueError("checkpoint origin is not the log's key name")
    return origin, size, root, cosigned


def parse_leaf(leaf: bytes) -> dict:
    version, _salt, kind, ts_ms, srclen = struct.unpack_from(">B16sBqB", leaf, 0)
    if version != 1:
        raise ValueError("unknown leaf version")
    source = leaf[27 : 27 + srclen].decode()
    return {
        "kind": {1: "event", 2: "action"}.get(kind, "?"),
        "ts_ms": ts_ms,
        "source": source,
        "data": leaf[27 + srclen :],
    }


def verify_bundle(
    path: str, key: str | None = None, witness_keys: list[str] | None = None
) -> tuple[list[str], dict]:
    """Return (problems, summary). No problems means the bundle verifies."""
    problems: list[str] = []
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        bundled_key = z.read("key.vkey").decode().strip()
        notes = [
            (n, z.read(n)) for n in sorted(x for x in z.namelist() if x.startswith("checkpoints/"))
        ]
        handovers = [
            (n, z.read(n)) for n in sorted(x for x in z.namelist() if x.startswith("keychain/"))
        ]
        consistency = json.loads(z.read("consistency.json"))
        entries = [
            json.loads(line)
            for line in z.read("entries.jsonl").decode().splitlines()
            if line.strip()
        ]
    log_key = key or bundled_key
    if key and key.strip() != bundled_key:
        problems.append("the bundle's key is not the key you gave with --key")
    # Follow signing-key handovers: each is a checkpoint signed by the current key whose body
    # names the next key. A checkpoint is accepted only under the key valid at its size.
    ranges: list[tuple[str, int, float]] = []
    current, low = log_key, 0
    for name, note in handovers:
        try:
            _, size, _, _ = open_note(note, current, [])
            nxt = [
                ln[len(NEXT_KEY) :]
                for ln in note.decode().split("\n\n")[0].split("\n")
                if ln.startswith(NEXT_KEY)
            ]
            if not nxt:
                raise ValueError("names no next key")
            parse_vkey(nxt[0])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: key handover does not verify: {exc}")
            break
        ranges.append((current, low, size))
        current, low = nxt[0], size
    ranges.append((current, low, float("inf")))
    heads: dict[int, bytes] = {}
    for name, note in notes:
        try:
            size_hint = int(note.decode().split("\n")[1])
            keys_for = [k for k, lo, hi in ranges if lo <= size_hint <= hi] or [ranges[-1][0]]
            last_exc: Exception | None = None
            for candidate in keys_for:
                try:
                    _, size, root, cosigned = open_note(note, candidate, witness_keys or [])
                    break
                except ValueError as exc:
                    last_exc = exc
            else:
                raise last_exc or ValueError("no key for this checkpoint")
            heads[size] = root
            for w in witness_keys or []:
                if w.split("+")[0] not in cosigned:
                    problems.append(f"{name}: no valid cosignature by witness {w.split('+')[0]}")
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: {exc}")
    sizes = sorted(heads)
    if not sizes:
        return [*problems, "the bundle holds no valid checkpoint"], {}
    proofs = {(c["from"], c["to"]): [base64.b64decode(p) for p in c["proof"]] for c in consistency}
    for a, b in zip(sizes, sizes[1:], strict=False):  # noqa: RUF007 (Python 3.9 has no pairwise)
        try:
            check_consistency(a, b, heads[a], heads[b], proofs.get((a, b), []))
        except ValueError as exc:
            problems.append(f"checkpoints of sizes {a} and {b}: {exc}")
    latest = sizes[-1]
    for e in entries:
        where = f"entry {e.get('index')}"
        try:
            leaf = base64.b64decode(e["leaf"])
            if e["tree_size"] != latest:
                raise ValueError("proof is not against the latest checkpoint")
            proof = [base64.b64decode(p) for p in e["proof"]]
            if root_from_inclusion(e["index"], latest, _h(b"\x00" + leaf), proof) != heads[latest]:
                raise ValueError("not included in the signed tree")
            parsed = parse_leaf(leaf)
            if base64.b64decode(e["data_b64"]) != parsed["data"] or e["source"] != parsed["source"]:
                raise ValueError("the bytes shown differ from the sealed bytes")
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            problems.append(f"{where}: {exc}")
    summary = {
        "origin": manifest.get("origin"),
        "key": log_key,
        "entries": len(entries),
        "checkpoints": len(sizes),
        "latest_size": latest,
        "latest_root": base64.b64encode(heads[latest]).decode(),
        "selection": manifest.get("selection"),
    }
    return problems, summary


def main(argv: list[str]) -> int:
    args = list(argv)
    key = None
    witnesses: list[str] = []
    while "--key" in args:
        i = args.index("--key")
        key = args[i + 1]
        del args[i : i + 2]
    while "--witness-key" in args:
        i = args.index("--witness-key")
        witnesses.append(args[i + 1])
        del args[i : i + 2]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    problems, summary = verify_bundle(args[0], key, witnesses)
    for k, v in summary.items():
        print(f"{k}: {v}")
    for p in problems:
        print(f"PROBLEM {p}")
    print("VERIFIED" if not problems else f"NOT VERIFIED ({len(problems)} problems)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
