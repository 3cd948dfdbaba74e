"""The home's keyring: a key-encryption key (KEK) and the data keys it wraps.

Layout under ``HOME/keys/`` (all files 0600, the folder 0700)::

    kek.json        the local key-encryption key (the embedded default KeyProvider)
    keyring.json    data keys, each stored *wrapped* by the KEK:
                      data      field encryption (AES-256-GCM), versioned for rotation
                      index     blind-index HMAC key (never rotated without a re-index)
                      signing   Ed25519 seed of the audit log's checkpoint key

Why wrap at all when the KEK sits beside the data? Because the KEK can move: the
``KeyProvider`` protocol lets a deployment hold it in HashiCorp Vault Transit (or an HSM),
after which nothing in the home alone decrypts anything, and rotating the KEK re-wraps a few
hundred bytes instead of re-encrypting every row.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phiguard.errors import CryptoError, HomeError

KEK_FILE = "kek.json"
KEYRING_FILE = "keyring.json"


class KeyProvider(Protocol):
    """Wraps and unwraps data keys. Implementations: local file, Vault Transit, tests."""

    name: str

    def wrap(self, key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with 0600 permissions from the first byte, durably."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass
class LocalKeyProvider:
    """KEK in ``HOME/keys/kek.json``; AES-256-GCM key wrapping with the context as AAD."""

    path: Path
    name: str = "local"
    _kek: bytes | None = field(default=None, repr=False)

    @classmethod
    def create(cls, path: Path) -> LocalKeyProvider:
        kek = secrets.token_bytes(32)
        doc = {"version": 1, "kek": _b64(kek)}
        write_private(path, json.dumps(doc).encode())
        return cls(path=path, _kek=kek)

    def _key(self) -> bytes:
        if self._kek is None:
            try:
                self._kek = _unb64(json.loads(self.path.read_text())["kek"])
            except FileNotFoundError as exc:
                raise HomeError(f"key-encryption key missing: {self.path}") from exc
            except (KeyError, ValueError) as exc:
                raise CryptoError(f"key-encryption key file is damaged: {self.path}") from exc
        return self._kek

    def wrap(self, key: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self._key()).encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return AESGCM(self._key()).decrypt(wrapped[:12], wrapped[12:], context)
        except InvalidTag as exc:
            raise CryptoError("a wrapped key does not authenticate under this KEK") from exc


@dataclass
class Keyring:
    """Unwrapped data keys for one home, loaded once per process."""

    provider: KeyProvider
    data_keys: dict[int, bytes]
    active_data_key: int
    index_key: bytes
    signing_seed: bytes

    @classmethod
    def create(cls, keys_dir: Path, provider: KeyProvider) -> Keyring:
        ring = cls(
            provider=provider,
            data_keys={1: secrets.token_bytes(32)},
            active_data_key=1,
            index_key=secrets.token_bytes(32),
            signing_seed=secrets.token_bytes(32),
        )
        ring.save(keys_dir)
        return ring

    def save(self, keys_dir: Path) -> None:
        p = self.provider
        doc = {
            "version": 1,
            "provider": p.name,
            "active_data_key": self.active_data_key,
            "data": {str(k): _b64(p.wrap(v, b"data:%d" % k)) for k, v in self.data_keys.items()},
            "index": _b64(p.wrap(self.index_key, b"index")),
            "signing": _b64(p.wrap(self.signing_seed, b"signing")),
        }
        write_private(keys_dir / KEYRING_FILE, json.dumps(doc, indent=1).encode())

    @classmethod
    def load(cls, keys_dir: Path, provider: KeyProvider) -> Keyring:
        try:
            doc = json.loads((keys_dir / KEYRING_FILE).read_text())
        except FileNotFoundError as exc:
            raise HomeError(f"keyring missing: {keys_dir / KEYRING_FILE}") from exc
        except ValueError as exc:
            raise CryptoError("keyring file is damaged") from exc
        p = provider
        return cls(
            provider=p,
            data_keys={
                int(k): p.unwrap(_unb64(v), b"data:%d" % int(k)) for k, v in doc["data"].items()
            },
            active_data_key=int(doc["active_data_key"]),
            index_key=p.unwrap(_unb64(doc["index"]), b"index"),
            signing_seed=p.unwrap(_unb64(doc["signing"]), b"signing"),
        )
