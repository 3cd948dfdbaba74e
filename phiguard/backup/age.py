"""Streaming writer and reader of the age file format (X25519), on pyca/cryptography.

Why not pyrage's ``encrypt_io``/``decrypt_io``: they move data through Python file calls
while holding the GIL, so a backup needed an OS pipe and a thread behind the compressor, and
a restore the same in reverse; they also cost 1.5–4× the CPU of ChaCha20-Poly1305 from
OpenSSL (docs/dev/backup.md, ADR 2). :class:`AgeWriter` is a file object the compressor
writes into; :class:`AgeReader` one the decompressor reads from.

Format (https://age-encryption.org/v1, C2SP age), exactly as the reference implementations
write it, and checked against one (pyrage, i.e. the Rust ``rage``) in both directions in
``tests/backup/test_age.py``:

* a fresh random 16-byte file key; per recipient an ephemeral X25519 key ``e``, the stanza
  ``-> X25519 base64(e·G)`` and the file key sealed with ChaCha20-Poly1305 under
  ``HKDF-SHA-256(ikm=e·R, salt=e·G ‖ R, info="age-encryption.org/v1/X25519")``;
* the header ends with ``--- base64(HMAC-SHA-256(HKDF(file key, "", "header"), header))``;
* then a 16-byte nonce and the payload in 64 KiB chunks, each sealed with
  ``HKDF(file key, nonce, "payload")`` and the nonce ``counter(11 bytes) ‖ last-flag``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phiguard.errors import CryptoError, InputError

CHUNK = 64 * 1024
SEALED = CHUNK + 16
VERSION = b"age-encryption.org/v1\n"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_MAX_LINE = 4096  # longer header lines are not age
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return chk


def _bech32(text: str, hrp: str, what: str) -> bytes:
    """The 32-byte payload of a Bech32 string with human-readable part ``hrp``."""
    s = text.strip()
    lower = s.lower()
    head, sep, data = lower.rpartition("1")
    if s not in (lower, s.upper()) or head != hrp or not sep or len(data) < 7:
        raise InputError(f"not an age {what}")
    try:
        values = [_BECH32.index(c) for c in data]
    except ValueError:
        raise InputError(f"not an age {what}") from None
    expanded = [ord(c) >> 5 for c in head] + [0] + [ord(c) & 31 for c in head]
    if _polymod(expanded + values) != 1:
        raise InputError(f"age {what} has a bad checksum")
    acc = bits = 0
    out = bytearray()
    for v in values[:-6]:
        acc, bits = (acc << 5) | v, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if len(out) != 32 or (acc & ((1 << bits) - 1)):
        raise InputError(f"not an age {what}")
    return bytes(out)


def recipient_key(text: str) -> bytes:
    """The X25519 public key of an ``age1…`` recipient."""
    return _bech32(text, "age", "X25519 recipient (age1…)")


def identity_key(text: str) -> bytes:
    """The X25519 secret of an ``AGE-SECRET-KEY-1…`` identity."""
    return _bech32(text, "age-secret-key-", "identity (AGE-SECRET-KEY-1…)")


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def header(file_key: bytes, recipients: list[bytes]) -> bytes:
    """The age header sealing ``file_key`` to each 32-byte X25519 public key."""
    lines = [VERSION]
    for r in recipients:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(r))  # rejects all-zero
        wrap = _hkdf(shared, share + r, _X25519_INFO)
        body = ChaCha20Poly1305(wrap).encrypt(b"\0" * 12, file_key, None)
        # a 32-byte body is 43 base64 characters: one line, shorter than the 64-column wrap
        lines.append(b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n")
    head = b"".join(lines) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


class AgeWriter(io.RawIOBase):
    """``write()`` plaintext, ``close()`` to seal the last chunk; ``dst`` stays open.

    A chunk is sealed only once the next byte arrives (the last chunk carries a flag and may
    be full), so at most one chunk of plaintext is ever held.
    """

    def __init__(self, dst: BinaryIO, recipients: list[bytes]) -> None:
        if not recipients:
            raise InputError("an age file needs at least one recipient")
        self.dst = dst
        file_key, nonce = os.urandom(16), os.urandom(16)
        dst.write(header(file_key, recipients) + nonce)
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buf = bytearray()
        self._counter = 0

    def writable(self) -> bool:
        return True

    def _seal(self, data: Any, last: bool) -> None:
        nonce = self._counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        self.dst.write(self._aead.encrypt(nonce, data, None))
        self._counter += 1

    def write(self, b: Any) -> int:
        n = len(b)
        buf = self._buf
        if not buf and n > CHUNK:  # the usual case: seal straight from the caller's buffer
            view = memoryview(b).cast("B")
            i = 0
            while n - i > CHUNK:
                self._seal(view[i : i + CHUNK], False)
                i += CHUNK
            buf += view[i:]
            return n
        buf += b
        if len(buf) > CHUNK:
            view = memoryview(buf)
            i = 0
            while len(buf) - i > CHUNK:
                self._seal(view[i : i + CHUNK], False)
                i += CHUNK
            view.release()
            del buf[:i]
        return n

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buf), True)
            self._buf.clear()
        super().close()


def _unb64(data: bytes) -> bytes:
    """Strict base64 as age writes it: no padding, canonical (re-encodes to the same)."""
    try:
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except ValueError:
        raise CryptoError("age header: bad base64") from None
    if _b64(raw) != data:
        raise CryptoError("age header: non-canonical base64")
    return raw


def _unwrap(args: list[bytes], body: bytes, identities: list[X25519PrivateKey]) -> bytes | None:
    """The file key from an X25519 stanza, if one of ``identities`` opens it."""
    if len(args) != 2:
        raise CryptoError("age header: malformed X25519 stanza")
    share = _unb64(args[1])
    if len(share) != 32 or len(body) != 32:
        raise CryptoError("age header: malformed X25519 stanza")
    for identity in identities:
        try:
            shared = identity.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            raise CryptoError("age header: X25519 share of low order") from None
        ours = identity.public_key().public_bytes_raw()
        wrap = _hkdf(shared, share + ours, _X25519_INFO)
        try:
            return ChaCha20Poly1305(wrap).decrypt(b"\0" * 12, body, None)
        except InvalidTag:
            continue
    return None


def read_header(src: BinaryIO, identities: list[bytes]) -> bytes:
    """Parse the header from ``src``, check its MAC, return the file key.

    Stanzas of other types (including the "grease" stanzas some writers add) are skipped;
    :class:`CryptoError` when no identity opens an X25519 stanza or anything is malformed.
    """
    keys = [X25519PrivateKey.from_private_bytes(k) for k in identities]

    def line() -> bytes:
        text = src.readline(_MAX_LINE)
        if not text.endswith(b"\n"):
            raise CryptoError("not an age file, or its header is truncated")
        head.append(text)
        return text[:-1]

    head: list[bytes] = []
    if line() + b"\n" != VERSION:
        raise CryptoError("not an age v1 file")
    file_key = None
    while True:
        text = line()
        if text.startswith(b"--- "):
            break
        if not text.startswith(b"-> "):
            raise CryptoError("age header: malformed stanza")
        args = text[3:].split(b" ")
        if not all(args):
            raise CryptoError("age header: malformed stanza")
        body = b""
        while True:  # body lines of 64 columns, ended by a shorter one
            part = line()
            body += part
            if len(part) < 64:
                break
            if len(part) > 64:
                raise CryptoError("age header: malformed stanza body")
        body = _unb64(body)
        if args[0] == b"X25519" and file_key is None:
            file_key = _unwrap(args, body, keys)
    if file_key is None or len(file_key) != 16:
        raise CryptoError("no identity given can decrypt this file (wrong key?)")
    mac = _unb64(text[4:])
    signed = b"".join(head[:-1]) + b"---"  # the MAC covers the header up to "---"
    expected = hmac.new(_hkdf(file_key, b"", b"header"), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise CryptoError("age header has been altered (MAC mismatch)")
    return file_key


class AgeReader(io.RawIOBase):
    """The plaintext of an age file, read as a stream.

    Every chunk is authenticated before any of its bytes is returned. The last chunk is
    recognised by its flag, so a file cut at a chunk boundary, an empty last chunk after
    others, or bytes after the last chunk all raise :class:`CryptoError`.
    """

    def __init__(self, src: BinaryIO, identities: list[bytes]) -> None:
        self.src = src
        file_key = read_header(src, identities)
        nonce = src.read(16)
        if len(nonce) != 16:
            raise CryptoError("age file is truncated (no payload)")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._ahead = src.read(SEALED)
        self._plain = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        sealed = self._ahead
        self._ahead = self.src.read(SEALED) if len(sealed) == SEALED else b""
        last = not self._ahead
        nonce = self._counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        try:
            plain = self._aead.decrypt(nonce, sealed, None)
        except (InvalidTag, ValueError):
            raise CryptoError(
                "backup does not decrypt: a chunk was altered, or the file is truncated"
            ) from None
        if last and not plain and self._counter:
            raise CryptoError("age payload ends with an empty chunk")
        self._counter += 1
        self._done = last
        self._plain = memoryview(plain)

    def readinto(self, b: Any) -> int:
        while not self._plain:
            if self._done:
                return 0
            self._next_chunk()
        n = min(len(b), len(self._plain))
        b[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        """Whole chunks when asked for more (saves a copy per chunk for big readers)."""
        while not self._plain:
            if self._done:
                return b""
            self._next_chunk()
        if size < 0 or size >= len(self._plain):
            out, self._plain = self._plain.tobytes(), memoryview(b"")
            return out
        out, self._plain = self._plain[:size].tobytes(), self._plain[size:]
        return out
