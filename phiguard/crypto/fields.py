"""Authenticated encryption of identifiers and names (AES-256-GCM).

A token is ``version(1) ‖ key_id(1) ‖ nonce(12) ‖ ciphertext+tag``. The associated data binds
a token to where it belongs (``b"patient:pii"``, ``b"account:person"``), so a ciphertext copied
into another column or table fails to decrypt instead of being misread. Random nonces are
safe here: a 96-bit nonce under one key stays far from the collision bound for the billions
of fields a hospital holds, and data keys are rotated (issue: keys and backups).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phiguard.crypto.keyring import Keyring

try:  # the optional C extension: a whole column per call (phiguard/crypto/_batch.c)
    from phiguard.crypto import _batch
except ImportError:  # pragma: no cover - built without a C compiler or OpenSSL headers
    _batch = None  # type: ignore[assignment]
from phiguard.errors import CryptoError

_VERSION = 1
# A compact plaintext for a document of known keys, written by the PMI bulk load instead of
# JSON (about 60 bytes a patient less to encrypt, store and scan): a NUL byte, which no JSON
# text starts with, the layout's number, then every value after a 0x1f separator; an empty
# value is null. The values are never empty and never hold a control character (the load
# sends such rows down its exact path, which writes JSON). Tokens are unchanged: AES-GCM
# under the home's data key, bound to their column by the associated data.
COMPACT_MARK = b"\x00"
COMPACT_LAYOUTS: dict[int, tuple[str, ...]] = {
    1: ("hkid", "hospital_no", "name_en", "name_zh", "dob", "phone", "address"),  # patient:pii
}


class FieldCipher:
    def __init__(self, keyring: Keyring) -> None:
        self._aead = {kid: AESGCM(key) for kid, key in keyring.data_keys.items()}
        self._active = keyring.active_data_key
        self._active_key = keyring.data_keys[self._active]
        self._prefix = bytes((_VERSION, self._active))

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return self._prefix + nonce + self._aead[self._active].encrypt(nonce, plaintext, context)

    def encrypt_many(self, plaintexts: list[bytes], context: bytes) -> list[bytes]:
        """``encrypt`` for a batch: the same tokens (a fresh random nonce each), with the
        nonces drawn from the OS in one call instead of one call per field."""
        pool = secrets.token_bytes(12 * len(plaintexts))
        if _batch is not None:
            items = plaintexts if isinstance(plaintexts, list) else list(plaintexts)
            return _batch.gcm_many(self._active_key, self._prefix, pool, items, context)
        enc, prefix = self._aead[self._active].encrypt, self._prefix
        out = []
        for i, plaintext in enumerate(plaintexts):
            nonce = pool[12 * i : 12 * i + 12]
            out.append(prefix + nonce + enc(nonce, plaintext, context))
        return out

    def encrypt_column(self, arr: Any, context: bytes) -> Any:
        """``encrypt`` over an Arrow string or binary array without nulls, as a binary array
        of tokens (a fresh random nonce each). With the C extension the column never becomes
        Python objects."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if _batch is None or arr.type not in (pa.string(), pa.binary()) or arr.null_count:
            return pa.array(self.encrypt_many(pc.cast(arr, pa.binary()).to_pylist(), context))
        _, offsets, data = arr.buffers()
        nonces = secrets.token_bytes(12 * len(arr))
        out_offsets, out_data = _batch.gcm_arrow(
            self._active_key, self._prefix, nonces, offsets, data or b"", arr.offset, len(arr),
            context,
        )  # fmt: skip
        return pa.Array.from_buffers(
            pa.binary(), len(arr), [None, pa.py_buffer(out_offsets), pa.py_buffer(out_data)]
        )

    def decrypt(self, token: bytes, context: bytes) -> bytes:
        if len(token) < 30 or token[0] != _VERSION:
            raise CryptoError("not a phiguard field token")
        aead = self._aead.get(token[1])
        if aead is None:
            raise CryptoError(f"data key {token[1]} is not in the keyring")
        try:
            return aead.decrypt(token[2:14], token[14:], context)
        except InvalidTag as exc:
            raise CryptoError("field token does not authenticate") from exc

    def encrypt_json(self, value: dict[str, Any], context: bytes) -> bytes:
        return self.encrypt(
            json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), context
        )

    def decrypt_json(self, token: bytes, context: bytes) -> dict[str, Any]:
        """The document in ``token``, written as JSON or in a compact layout."""
        plaintext = self.decrypt(token, context)
        if plaintext[:1] == COMPACT_MARK:
            return _compact(plaintext)
        value: dict[str, Any] = json.loads(plaintext)
        return value


def _compact(plaintext: bytes) -> dict[str, Any]:
    head, *values = plaintext.decode().split("\x1f")
    keys = COMPACT_LAYOUTS.get(ord(head[1:2] or "\x00"))
    if len(head) != 2 or keys is None or len(values) != len(keys):
        raise CryptoError("field token holds an unknown compact layout")
    return {k: v or None for k, v in zip(keys, values, strict=True)}
