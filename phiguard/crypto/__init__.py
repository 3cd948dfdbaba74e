"""Keys and cryptography: the keyring, field encryption, blind indexes, signing."""

from __future__ import annotations

from phiguard.crypto.blind import BlindIndex
from phiguard.crypto.fields import FieldCipher
from phiguard.crypto.keyring import KeyProvider, Keyring, LocalKeyProvider

__all__ = ["BlindIndex", "FieldCipher", "KeyProvider", "Keyring", "LocalKeyProvider"]
