"""Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes.

A checkpoint is the note text::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n

followed by a blank line and one signature line per signer, ``— <key name> base64(key ID ‖
signature)``. The log signs with Ed25519 (signature type 0x01); a witness adds a
timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature, type 0x04) over
``cosignature/v1\\ntime <t>\\n`` + the note text, after checking the new checkpoint is
consistent with the last one it cosigned. Public keys travel as C2SP *vkeys*:
``<name>+<key ID hex>+base64(type ‖ public key)``.

Written by hand (about 200 lines) because no maintained Python package implements signed
notes; the formats are small and fixed, and the tests check them against the spec's rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from phiguard.audit import merkle
from phiguard.errors import IntegrityError, UsageError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise IntegrityError(f"not base64: {text[:20]!r}") from exc


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise UsageError(f"not a valid signed-note key name: {name!r}")


NEXT_KEY = "phiguard-next-key "  # extension line of a signing-key handover (log.rotate_signing_key)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> bytes:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse_body(cls, body: bytes) -> Checkpoint:
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise IntegrityError("checkpoint is not UTF-8") from exc
        if not text.endswith("\n"):
            raise IntegrityError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise IntegrityError("checkpoint needs origin, size and root lines")
        size_text = lines[1]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise IntegrityError(f"checkpoint size is not a decimal number: {size_text!r}")
        root = _unb64(lines[2])
        if len(root) != merkle.HASH_SIZE:
            raise IntegrityError("checkpoint root hash has the wrong length")
        return cls(lines[0], int(size_text), root, tuple(lines[3:]))


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 signed-note key: the log's checkpoint key."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        _check_name(name)
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def vkey(self) -> str:
        kid = key_id(self.name, ED25519, self.public)
        return f"{self.name}+{kid.hex()}+{_b64(bytes([ED25519]) + self.public)}"

    def signature_line(self, text: bytes) -> str:
        sig = self.private.sign(text)
        return f"{_DASH}{self.name} {_b64(key_id(self.name, ED25519, self.public) + sig)}\n"


@dataclass(frozen=True)
class NoteVerifier:
    """A public key parsed from a vkey, for signature type 0x01 or 0x04."""

    name: str
    kid: bytes
    sig_type: int
    public: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        try:
            name, kid_hex, material = vkey.strip().split("+", 2)
            raw = _unb64(material)
            kid = bytes.fromhex(kid_hex)
        except (ValueError, IntegrityError) as exc:
            raise UsageError(f"not a verifier key: {vkey[:40]!r}") from exc
        _check_name(name)
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise UsageError("only Ed25519 verifier keys (types 0x01, 0x04) are supported")
        if key_id(name, raw[0], raw[1:]) != kid:
            raise UsageError(f"verifier key {name} has a key ID that does not match its key")
        return cls(name, kid, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:]))

    def verify(self, text: bytes, sig: bytes) -> int | None:
        """Check one signature (key ID already stripped); return the cosignature time if any."""
        try:
            if self.sig_type == ED25519:
                if len(sig) != 64:
                    raise IntegrityError(f"signature by {self.name} has the wrong length")
                self.public.verify(sig, text)
                return None
            if len(sig) != 72:
                raise IntegrityError(f"cosignature by {self.name} has the wrong length")
            (ts,) = struct.unpack(">Q", sig[:8])
            self.public.verify(sig[8:], cosigned_message(text, ts))
            return int(ts)
        except InvalidSignature as exc:
            raise IntegrityError(f"signature by {self.name} does not verify") from exc


def cosigned_message(text: bytes, ts: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % ts + text


@dataclass(frozen=True)
class SignedNote:
    text: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (key name, key ID ‖ signature)

    def encode(self) -> bytes:
        lines = "".join(f"{_DASH}{name} {_b64(sig)}\n" for name, sig in self.signatures)
        return self.text + b"\n" + lines.encode()

    @classmethod
    def parse(cls, note: bytes) -> SignedNote:
        try:
            decoded = note.decode()
        except UnicodeDecodeError as exc:
            raise IntegrityError("signed note is not UTF-8") from exc
        if any(ord(c) < 0x20 and c != "\n" for c in decoded):
            raise IntegrityError("signed note contains control characters")
        cut = decoded.rfind("\n\n")
        if cut < 0 or not decoded.endswith("\n"):
            raise IntegrityError("signed note has no signature block")
        text, block = decoded[: cut + 1], decoded[cut + 2 :]
        sigs: list[tuple[str, bytes]] = []
        for line in block[:-1].split("\n"):
            if not line.startswith(_DASH):
                raise IntegrityError("malformed signature line in signed note")
            name, _, b64 = line[len(_DASH) :].partition(" ")
            raw = _unb64(b64)
            if not name or len(raw) < 5:
                raise IntegrityError("malformed signature line in signed note")
            sigs.append((name, raw))
        if not sigs:
            raise IntegrityError("signed note has no signatures")
        return cls(text.encode(), tuple(sigs))

    def with_signature_line(self, line: str) -> SignedNote:
        extra = SignedNote.parse(self.text + b"\n" + line.encode())
        return SignedNote(self.text, self.signatures + extra.signatures)


@dataclass(frozen=True)
class Verified:
    checkpoint: Checkpoint
    cosigners: tuple[tuple[str, int], ...]  # (witness name, cosignature time)


def open_checkpoint(
    note: bytes, log_key: NoteVerifier, witnesses: Iterable[NoteVerifier] = ()
) -> Verified:
    """Verify a signed checkpoint: the log's signature is required, known witnesses checked.

    Per the signed-note spec, signatures from unknown keys are ignored and a known key whose
    signature fails rejects the whole note.
    """
    parsed = SignedNote.parse(note)
    known = {(v.name, v.kid): v for v in (log_key, *witnesses)}
    log_signed = False
    cosigners: list[tuple[str, int]] = []
    for name, raw in parsed.signatures:
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        ts = verifier.verify(parsed.text, raw[4:])
        if verifier is log_key:
            log_signed = True
        elif ts is not None:
            cosigners.append((name, ts))
    if not log_signed:
        raise IntegrityError(f"checkpoint is not signed by the log key {log_key.name}")
    cp = Checkpoint.parse_body(parsed.text)
    if cp.origin != log_key.name:
        raise IntegrityError(f"checkpoint origin {cp.origin!r} is not this log ({log_key.name})")
    return Verified(cp, tuple(cosigners))


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> bytes:
    text = cp.body()
    return text + b"\n" + signer.signature_line(text).encode()


# -- witness -----------------------------------------------------------------------------


class LocalWitness:
    """A cosigner kept in its own folder (ideally on another machine or another team's disk).

    ``DIR/witness.json`` holds its name and Ed25519 seed (0600); ``DIR/seen.json`` the largest
    checkpoint it has cosigned per origin. It cosigns only a checkpoint that is consistent
    with that one, proven by a consistency proof it checks itself, so the log can never get
    two inconsistent checkpoints cosigned: the split-view defence of transparency logs.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            doc = json.loads((folder / "witness.json").read_text())
            self.name = str(doc["name"])
            seed = base64.b64decode(doc["seed"])
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{folder} is not a witness folder") from exc
        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    @classmethod
    def create(cls, folder: Path, name: str) -> LocalWitness:
        from phiguard.crypto.keyring import write_private

        _check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "witness.json").exists():
            raise UsageError(f"{folder} already holds a witness key")
        doc = {"name": name, "seed": _b64(os.urandom(32))}
        write_private(folder / "witness.json", json.dumps(doc).encode())
        return cls(folder)

    @property
    def vkey(self) -> str:
        pub = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kid = key_id(self.name, COSIGNATURE_V1, pub)
        return f"{self.name}+{kid.hex()}+{_b64(bytes([COSIGNATURE_V1]) + pub)}"

    def _seen(self) -> dict[str, dict[str, object]]:
        path = self.folder / "seen.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def cosign(
        self,
        note: bytes,
        log_key: NoteVerifier,
        prove: Callable[[int, int], Sequence[bytes]],
        now: int,
    ) -> str:
        """Return a cosignature line for ``note`` after checking it extends what was seen.

        ``prove(old, new)`` is asked for the consistency proof from the size this witness
        last cosigned; the witness checks it itself.
        """
        from phiguard.crypto.keyring import write_private

        cp = open_checkpoint(note, log_key).checkpoint
        seen = self._seen()
        last = seen.get(cp.origin)
        if last is not None:
            old_size = int(str(last["size"]))
            old_root = base64.b64decode(str(last["root"]))
            if cp.size < old_size:
                raise IntegrityError(f"witness refuses: size {cp.size} is older than {old_size}")
            try:
                if old_size:
                    proof = prove(old_size, cp.size)
                    merkle.verify_consistency(old_size, cp.size, old_root, cp.root, proof)
            except merkle.ProofError as exc:
                raise IntegrityError(f"witness refuses an inconsistent checkpoint: {exc}") from exc
        seen[cp.origin] = {"size": cp.size, "root": _b64(cp.root)}
        write_private(self.folder / "seen.json", json.dumps(seen, sort_keys=True).encode())
        text = SignedNote.parse(note).text
        pub = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sig = self._key.sign(cosigned_message(text, now))
        raw = key_id(self.name, COSIGNATURE_V1, pub) + struct.pack(">Q", now) + sig
        return f"{_DASH}{self.name} {_b64(raw)}\n"
