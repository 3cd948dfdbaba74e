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
    """KEKs in ``HOME/keys/kek.json``; AES-256-GCM key wrapping with the context as AAD.

    The file may hold several KEKs during a rotation; ``wrap`` uses the active one and tags
    the result with its id (``id(1) ‖ nonce(12) ‖ ciphertext``), ``unwrap`` picks the KEK by
    that id. A rotation adds a KEK, re-wraps everything, then drops the old KEK: every step
    is an atomic file replacement, so a crash leaves every wrapped key readable.
    """

    path: Path
    name: str = "local"
    _keks: dict[int, bytes] | None = field(default=None, repr=False)
    _active: int = 0

    @classmethod
    def create(cls, path: Path) -> LocalKeyProvider:
        provider = cls(path=path, _keks={1: secrets.token_bytes(32)}, _active=1)
        provider._save()
        return provider

    def _save(self) -> None:
        assert self._keks is not None
        doc = {
            "version": 2,
            "active": self._active,
            "keks": {str(k): _b64(v) for k, v in self._keks.items()},
        }
        write_private(self.path, json.dumps(doc).encode())

    def _load(self) -> dict[int, bytes]:
        if self._keks is None:
            try:
                doc = json.loads(self.path.read_text())
                self._keks = {int(k): _unb64(v) for k, v in doc["keks"].items()}
                self._active = int(doc["active"])
            except FileNotFoundError as exc:
                raise HomeError(f"key-encryption key missing: {self.path}") from exc
            except (KeyError, ValueError) as exc:
                raise CryptoError(f"key-encryption key file is damaged: {self.path}") from exc
        return self._keks

    @property
    def active_id(self) -> int:
        self._load()
        return self._active

    @property
    def kek_ids(self) -> list[int]:
        return sorted(self._load())

    def wrap(self, key: bytes, context: bytes) -> bytes:
        keks = self._load()
        nonce = secrets.token_bytes(12)
        return (
            bytes((self._active,)) + nonce + AESGCM(keks[self._active]).encrypt(nonce, key, context)
        )

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        kek = self._load().get(wrapped[0]) if wrapped else None
        if kek is None:
            raise CryptoError("a wrapped key names a KEK this home does not have")
        try:
            return AESGCM(kek).decrypt(wrapped[1:13], wrapped[13:], context)
        except InvalidTag as exc:
            raise CryptoError("a wrapped key does not authenticate under this KEK") from exc

    # -- rotation (see phiguard.crypto.rotation) -------------------------------------------
    def add_kek(self) -> int:
        keks = self._load()
        new_id = max(keks) + 1
        if new_id > 255:
            raise CryptoError("KEK ids exhausted; re-initialise the keyring")
        keks[new_id] = secrets.token_bytes(32)
        self._active = new_id
        self._save()
        return new_id

    def drop_other_keks(self) -> list[int]:
        keks = self._load()
        dropped = [k for k in keks if k != self._active]
        for k in dropped:
            del keks[k]
        self._save()
        return dropped

    def wrapped_with(self, wrapped: bytes) -> int:
        return wrapped[0]


def provider_for(keys_dir: Path, settings: object) -> KeyProvider:
    """The provider an existing home was created with (named in its keyring file)."""
    try:
        name = json.loads((keys_dir / KEYRING_FILE).read_text()).get("provider", "local")
    except FileNotFoundError as exc:
        raise HomeError(f"keyring missing: {keys_dir / KEYRING_FILE}") from exc
    except ValueError as exc:
        raise CryptoError("keyring file is damaged") from exc
    if name == "vault":
        from phiguard.crypto.vault import from_settings

        return from_settings(settings)
    return LocalKeyProvider(keys_dir / KEK_FILE)


def new_provider(keys_dir: Path, settings: object) -> KeyProvider:
    """The provider a new home starts with, chosen by the ``key_provider`` setting."""
    if getattr(settings, "key_provider", "local") == "vault":
        from phiguard.crypto.vault import from_settings

        return from_settings(settings)
    return LocalKeyProvider.create(keys_dir / KEK_FILE)


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
