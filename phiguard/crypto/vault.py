"""HashiCorp Vault Transit as the key-encryption-key provider (via hvac).

With this provider the KEK never exists outside Vault: phiguard sends a data key to
``transit/encrypt/<key>`` and stores only the returned ``vault:vN:…`` ciphertext. Stealing the
home then yields nothing decryptable without a Vault token. Rotating the KEK is Vault's own
``keys/<key>/rotate`` followed by ``rewrap`` of every stored ciphertext, which never reveals a
data key to phiguard's process.

The wrapping context (which key this is for) is bound by prefixing it to the plaintext and
checking it on unwrap, rather than Transit's ``context`` parameter, because that requires a
key created with ``derived=true`` and phiguard must work with the key a hospital already has.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from phiguard.errors import CryptoError, UsageError


@dataclass
class VaultTransitKeyProvider:
    url: str
    token: str = field(repr=False)
    key_name: str = "phiguard"
    mount: str = "transit"
    name: str = "vault"
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            import hvac

            self._client = hvac.Client(url=self.url, token=self.token, timeout=10)
        return self._client

    def _call(self, what: str, fn: Any, **kw: Any) -> dict[str, Any]:
        try:
            return fn(name=self.key_name, mount_point=self.mount, **kw)
        except Exception as exc:  # hvac raises per-status types; never echo the token
            raise CryptoError(f"Vault transit {what} failed: {type(exc).__name__}") from exc

    def wrap(self, key: bytes, context: bytes) -> bytes:
        plaintext = base64.b64encode(len(context).to_bytes(2, "big") + context + key).decode()
        resp = self._call("encrypt", self.client.secrets.transit.encrypt_data, plaintext=plaintext)
        return str(resp["data"]["ciphertext"]).encode()

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        resp = self._call(
            "decrypt", self.client.secrets.transit.decrypt_data, ciphertext=wrapped.decode()
        )
        raw = base64.b64decode(resp["data"]["plaintext"])
        n = int.from_bytes(raw[:2], "big")
        if raw[2 : 2 + n] != context:
            raise CryptoError("a wrapped key was presented for the wrong purpose")
        return raw[2 + n :]

    def rotate(self) -> None:
        self._call("rotate", self.client.secrets.transit.rotate_key)

    def rewrap(self, wrapped: bytes) -> bytes:
        resp = self._call(
            "rewrap", self.client.secrets.transit.rewrap_data, ciphertext=wrapped.decode()
        )
        return str(resp["data"]["ciphertext"]).encode()


def from_settings(settings: Any) -> VaultTransitKeyProvider:
    if not settings.vault_addr or settings.vault_token is None:
        raise UsageError(
            "the home's keys are in Vault: set PHIGUARD_VAULT_ADDR and PHIGUARD_VAULT_TOKEN"
        )
    return VaultTransitKeyProvider(
        url=settings.vault_addr,
        token=settings.vault_token.get_secret_value(),
        key_name=settings.vault_transit_key,
        mount=settings.vault_mount,
    )
