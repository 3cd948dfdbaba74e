"""The backup file: ``age( zstd( tar ) )``.

* **tar** holds a home-shaped tree under ``home/`` and, last, ``MANIFEST.json`` with the
  SHA-256 and size of every file, the audit log's signed checkpoint at snapshot time, the
  database kind and the phiguard version. The manifest comes last because its hashes are
  computed while the files stream past; a backup that ends before it is truncated.
* **zstd** compresses the stream (level 3: fast enough to keep up with the disk).
* **age** (X25519 recipients, via pyrage) encrypts it to one or more public keys. The machine
  that makes backups holds only recipients, never identities, so it cannot read its own
  backups. age authenticates every 64 KiB chunk and marks the last one, so any flipped byte
  or missing tail fails decryption with an error instead of yielding altered data.

All three layers stream through OS pipes and threads, so memory stays flat however large the
home is.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
import zstandard
from pyrage import x25519

from phiguard.errors import CryptoError, InputError, IntegrityError

FORMAT = 1
MANIFEST = "MANIFEST.json"
PREFIX = "home/"
ZSTD_LEVEL = 3


def parse_recipient(text: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(text.strip())
    except Exception as exc:  # pyrage raises its own RecipientError
        raise InputError("not an age X25519 recipient (age1…)") from exc


def load_identities(path: Path) -> list[x25519.Identity]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read identity file {path}: {exc.strerror}") from exc
    ids = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                ids.append(x25519.Identity.from_str(line))
            except Exception as exc:
                raise InputError(f"{path.name}: not an age identity file") from exc
    if not ids:
        raise InputError(f"{path.name}: no identity in file")
    return ids


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            self.sha.update(memoryview(b)[:n])
            self.size += n
        return n or 0


@contextmanager
def _producer(target: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
    """Run ``target(writer)`` in a thread; yield the reading end of the pipe between them."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(w, "wb", buffering=1 << 20) as wf:
                target(wf)
        except BaseException as exc:  # re-raised in the consumer's thread
            errors.append(exc)

    t = threading.Thread(target=run, name="backup-producer", daemon=True)
    t.start()
    reader = os.fdopen(r, "rb", buffering=1 << 20)
    try:
        yield reader
    finally:
        reader.close()
        t.join()
        if errors:
            raise errors[0]


def write_backup(
    tree: Path, out: Path, recipients: list[x25519.Recipient], meta: dict[str, Any]
) -> dict[str, Any]:
    """Archive ``tree`` into ``out`` (written to a temporary name, fsynced, then renamed)."""
    if not recipients:
        raise InputError("no backup recipients: add one with `phiguard backup keygen`")
    files: dict[str, dict[str, Any]] = {}
    manifest = {"format": FORMAT, **meta, "files": files}

    def produce(sink: BinaryIO) -> None:
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        with (
            cctx.stream_writer(sink, closefd=False) as z,
            tarfile.open(fileobj=z, mode="w|") as tar,
        ):
            for path in sorted(tree.rglob("*")):
                if not path.is_file():
                    continue
                rel = path.relative_to(tree).as_posix()
                info = tar.gettarinfo(str(path), arcname=PREFIX + rel)
                info.uname = info.gname = ""
                with path.open("rb") as f:
                    hr = _HashingReader(f)
                    tar.addfile(info, io.BufferedReader(hr))
                files[rel] = {"sha256": hr.sha.hexdigest(), "size": hr.size, "mode": info.mode}
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    tmp = out.with_name(out.name + ".partial")
    try:
        with _producer(produce) as stream, tmp.open("wb") as dst:
            pyrage.encrypt_io(stream, dst, recipients)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, out)
        dfd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


@dataclass
class ReadResult:
    manifest: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_backup(
    path: Path, identities: list[x25519.Identity], extract_to: Path | None = None
) -> ReadResult:
    """Decrypt, decompress and walk a backup, checking every file against the manifest.

    With ``extract_to`` the ``home/`` tree is written there. Raises :class:`CryptoError` when
    the backup does not decrypt (wrong key, tampering, truncation) and :class:`IntegrityError`
    when its contents disagree with the manifest.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such backup file")
    seen: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None

    def produce(sink: BinaryIO) -> None:
        with path.open("rb") as src:
            try:
                pyrage.decrypt_io(src, sink, identities)
            except BrokenPipeError:
                return  # the reader stopped first; its own error is the one to report
            except (pyrage.DecryptError, OSError) as exc:
                # age authenticates every chunk: a flipped byte, a cut-off tail or the wrong
                # identity all end here, before any altered byte could be used
                raise CryptoError(
                    f"backup does not decrypt (wrong key, damaged or truncated): {exc}"
                ) from exc

    try:
        with _producer(produce) as stream:
            dctx = zstandard.ZstdDecompressor()
            with dctx.stream_reader(stream) as z, tarfile.open(fileobj=z, mode="r|") as tar:
                for info in tar:
                    if info.name == MANIFEST:
                        f = tar.extractfile(info)
                        assert f is not None
                        manifest = json.loads(f.read())
                        continue
                    if manifest is not None:
                        raise IntegrityError("backup has files after its manifest")
                    if not info.isfile() or not info.name.startswith(PREFIX) or ".." in info.name:
                        raise IntegrityError(f"unexpected member in backup: {info.name!r}")
                    rel = info.name[len(PREFIX) :]
                    f = tar.extractfile(info)
                    assert f is not None
                    sha = hashlib.sha256()
                    dst = None
                    if extract_to is not None:
                        target = extract_to / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        dst = os.open(
                            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, info.mode & 0o700 or 0o600
                        )
                    try:
                        for chunk in iter(functools.partial(f.read, 1 << 20), b""):
                            sha.update(chunk)
                            if dst is not None:
                                os.write(dst, chunk)
                    finally:
                        if dst is not None:
                            os.close(dst)
                    seen[rel] = {"sha256": sha.hexdigest(), "size": info.size}
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise IntegrityError(f"backup is truncated or damaged: {exc}") from exc
    if manifest is None:
        raise IntegrityError("backup is truncated: its manifest is missing")
    if manifest.get("format") != FORMAT:
        raise IntegrityError(f"unknown backup format {manifest.get('format')!r}")
    expected = manifest["files"]
    if set(expected) != set(seen):
        missing = sorted(set(expected) - set(seen))[:3]
        extra = sorted(set(seen) - set(expected))[:3]
        raise IntegrityError(
            f"backup contents differ from its manifest (missing {missing}, extra {extra})"
        )
    for rel, doc in expected.items():
        if seen[rel]["sha256"] != doc["sha256"]:
            raise IntegrityError(f"backup file {rel} does not match its manifest hash")
    return ReadResult(manifest, seen)
