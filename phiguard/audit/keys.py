"""Per-period data keys of the audit log, and their crypto-erasure.

Each retention period (a calendar month in Hong Kong time) has its own random AES-256 key,
stored under ``HOME/audit/keys/YYYY-MM.key`` *wrapped* by the home's key provider (the KEK,
possibly in Vault). A key is random, not derived from a master secret, precisely so that
deleting it destroys the period: nothing left in the home can recompute it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phiguard.audit.journal import Fsync, fsync_dir, period_label
from phiguard.crypto.keyring import KeyProvider
from phiguard.errors import Conflict, CryptoError


def wrap_context(label: str) -> bytes:
    """What a period key (``YYYY-MM``) is bound to when wrapped by the key provider."""
    return b"audit-period:" + label.encode()


class PeriodKeys:
    def __init__(self, folder: Path, provider: KeyProvider, fsync: Fsync = os.fsync) -> None:
        self.folder = folder
        self.provider = provider
        self.fsync = fsync
        self._cache: dict[int, AESGCM] = {}

    @staticmethod
    def _context(period: int) -> bytes:
        return wrap_context(period_label(period))

    def key_path(self, period: int) -> Path:
        return self.folder / f"{period_label(period)}.key"

    def erased_path(self, period: int) -> Path:
        return self.folder / f"{period_label(period)}.erased"

    def is_erased(self, period: int) -> bool:
        return self.erased_path(period).exists()

    def raw(self, period: int) -> bytes | None:
        """The unwrapped key, or None when the period has no key (never used, or erased)."""
        try:
            wrapped = self.key_path(period).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self.provider.unwrap(wrapped, self._context(period))
        except CryptoError as exc:
            raise CryptoError(f"the key of period {period_label(period)} is damaged") from exc

    def get(self, period: int) -> AESGCM | None:
        aead = self._cache.get(period)
        if aead is None:
            raw = self.raw(period)
            if raw is None:
                return None
            aead = self._cache[period] = AESGCM(raw)
        return aead

    def for_writing(self, period: int) -> AESGCM:
        """The period's key, created (durably, before any entry uses it) on first use."""
        aead = self.get(period)
        if aead is not None:
            return aead
        if self.is_erased(period):
            raise Conflict(
                f"period {period_label(period)} was erased; nothing more can be logged in it"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        wrapped = self.provider.wrap(key, self._context(period))
        path = self.key_path(period)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, wrapped)
            self.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.folder, self.fsync)
        aead = self._cache[period] = AESGCM(key)
        return aead

    def erase(self, period: int) -> None:
        """Overwrite and delete the period's wrapped key; leave an ``.erased`` marker."""
        path = self.key_path(period)
        marker = self.erased_path(period)
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, period_label(period).encode() + b"\n")
            self.fsync(fd)
        finally:
            os.close(fd)
        if path.exists():
            size = path.stat().st_size
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, b"\0" * size, 0)
                self.fsync(fd)
            finally:
                os.close(fd)
            path.unlink()
        fsync_dir(self.folder, self.fsync)
        self._cache.pop(period, None)

    def periods(self) -> dict[int, str]:
        """Every period the folder knows: ``key`` or ``erased``."""
        out: dict[int, str] = {}
        for p in self.folder.glob("*.*"):
            label, kind = p.stem, p.suffix
            try:
                year, month = label.split("-")
                period = int(year) * 100 + int(month)
            except ValueError:
                continue
            if kind == ".key":
                out.setdefault(period, "key")
            elif kind == ".erased":
                out[period] = "erased"
        return out
