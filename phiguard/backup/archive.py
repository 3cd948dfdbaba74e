"""The backup file: ``age( zstd( tar ) )``.

* **tar** (pax) holds a home-shaped tree under ``home/`` and, last, ``MANIFEST.json`` with the
  SHA-256 and size of every file, the audit log's signed checkpoint at snapshot time, the
  database kind and the phiguard version. The manifest comes last because its hashes are
  computed while the files stream past; a backup that ends before it is truncated.
* **zstd** compresses the stream (level 1, two worker threads: see ``ZSTD_LEVEL``).
* **age** (X25519 recipients) encrypts it to one or more public keys (the format, and why
  the streaming code is our own, in :mod:`phiguard.backup.age`). The machine that makes
  backups holds only recipients, never identities, so it cannot read its own backups. age
  authenticates every 64 KiB chunk and marks the last one, so any flipped byte or missing
  tail fails decryption with an error instead of yielding altered data.

Writing is one pass: the snapshot's files are read straight from the home (see
:mod:`phiguard.backup.snapshot`) into tar, zstd and age without an intermediate copy.
Reading is one pass too (decrypt, decompress, untar, hash, write). Memory stays flat however
large the home is.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import queue
import stat
import struct
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import zstandard
from pyrage import x25519

from phiguard.backup import age, snapshot
from phiguard.backup.snapshot import Snapshot
from phiguard.errors import HomeError, InputError, IntegrityError

FORMAT = 1
MANIFEST = "MANIFEST.json"
PREFIX = "home/"
#: Level 1, not 3: most of a home is already compressed or encrypted (journal segments,
#: tree hashes, Parquet parts), and on the rest (the database) level 3 saves 2 % of the size
#: for 3× the CPU (measured: docs/dev/backup.md).
ZSTD_LEVEL = 1
#: two compression workers: they run beside the thread that reads, hashes and encrypts
ZSTD_THREADS = 2
BLOCK = 1 << 20
QUEUE_BLOCKS = 16  # compressed blocks in flight to the sealer: memory stays under ~16 MB


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


def is_stream(path: Path) -> bool:
    """A pipe or a character device (``/dev/null``): written or read in one go, in place."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def write_backup(
    snap: Snapshot, out: Path, recipients: list[x25519.Recipient], meta: dict[str, Any]
) -> dict[str, Any]:
    """Archive the snapshot's members into ``out``: a new file (written to a temporary name,
    fsynced, then renamed), or a pipe (:func:`is_stream`, written in place)."""
    if not recipients:
        raise InputError("no backup recipients: add one with `phiguard backup keygen`")
    keys = [age.recipient_key(str(r)) for r in recipients]
    files: dict[str, dict[str, Any]] = {}
    manifest = {"format": FORMAT, **meta, "files": files}
    if is_stream(out):
        with out.open("wb") as dst:
            _write_stream(snap, dst, keys, manifest)
        return manifest
    tmp = out.with_name(out.name + ".partial")
    try:
        with tmp.open("wb") as dst:
            _write_stream(snap, dst, keys, manifest)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _write_stream(
    snap: Snapshot, dst: BinaryIO, keys: list[bytes], manifest: dict[str, Any]
) -> None:
    """This thread reads, hashes and frames the files; zstd's workers compress; a sealer
    thread encrypts, writes and fsyncs. All of them spend most of their time outside the GIL
    (file I/O, hashlib, zstd), so a 2-core machine runs them side by side."""
    sealer = _Sealer(dst, keys)
    tar = None
    try:
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS)
        with cctx.stream_writer(cast(BinaryIO, sealer), closefd=False, write_size=BLOCK) as z:
            tar = _TarWriter(z, sealer)
            for member in snap.members:
                if member.name == "phiguard.db":
                    snap.wait_for_database()
                tar.add(snapshot.resolve(member))
            manifest["files"].update(tar.digests())
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            tar.add(snapshot.Member(MANIFEST, 0o600, 0.0, data=data), prefix="", listed=False)
            tar.finish()
    except BaseException:
        if tar is not None:
            tar.abort()
        sealer.stage.abort()
        raise
    sealer.stage.finish()


class _Stage:
    """A thread applying ``step`` to every item of a bounded queue, in order; ``done`` runs
    after the last one. An error in the thread is raised in the caller at its next ``put``
    (or at ``finish``); ``abort`` stops the thread without running ``done``."""

    _END, _ABORT = object(), object()

    def __init__(
        self, name: str, step: Callable[[Any], Any], done: Callable[[], Any] = lambda: None
    ) -> None:
        self.step, self.done = step, done
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not self._END:
                if item is self._ABORT:
                    return
                self.step(item)
            self.done()
        except BaseException as exc:  # re-raised in the producer's thread
            self.error = exc
            while self.queue.get() not in (self._END, self._ABORT):
                pass  # keep the producer from blocking until it sees the error

    def finish(self) -> None:
        self.queue.put(self._END)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self.queue.put(self._ABORT)
        self.thread.join()


class _Sealer(io.RawIOBase):
    """The compressor's output side: a stage that encrypts and writes (and at the end seals
    the last chunk and fsyncs), so that work overlaps with reading and hashing the home. A
    failed backup is aborted without sealing: it never ends as a well-formed age file."""

    def __init__(self, dst: BinaryIO, keys: list[bytes]) -> None:
        sealed = age.AgeWriter(dst, keys)

        def done() -> None:
            sealed.close()
            dst.flush()
            if stat.S_ISREG(os.fstat(dst.fileno()).st_mode):
                os.fsync(dst.fileno())

        self.stage = _Stage("backup-sealer", sealed.write, done)

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.stage.put(b if isinstance(b, bytes) else bytes(b))
        return len(b)


class _TarWriter:
    """Writes a POSIX (pax) tar stream of snapshot members, compressed or stored.

    Headers come from :class:`tarfile.TarInfo` (the reading side is :mod:`tarfile` too).
    File data is read in 1 MiB blocks, handed to a hashing stage (SHA-256 of each member,
    in its own thread) and to the stream. Members marked ``compress=False`` (encrypted
    journal segments, Merkle tree hashes: zstd cannot shrink them by a byte, measured)
    bypass the compressor: the current zstd frame is ended and the member goes out as
    zstd frames of raw blocks (:func:`raw_frame`), so the stream stays one valid zstd stream
    of several frames, readable by any zstd decoder.
    """

    def __init__(self, z: Any, raw: _Sealer) -> None:
        self.z, self.raw = z, raw
        self.hasher = _Stage("backup-hasher", lambda item: item[0].update(item[1]))
        self.open_frame = False
        self.files: dict[str, dict[str, Any]] = {}
        self._shas: list[tuple[dict[str, Any], Any]] = []

    def _sink(self, compress: bool) -> Callable[[Any], Any]:
        if compress:
            self.open_frame = True
            return self.z.write
        if self.open_frame:
            self.z.flush(zstandard.FLUSH_FRAME)
            self.open_frame = False
        return lambda data: self.raw.write(raw_frame(data))

    def add(self, m: snapshot.Member, prefix: str = PREFIX, listed: bool = True) -> None:
        """Append one member; ``listed`` ones are hashed for the manifest."""
        write = self._sink(m.compress)
        info = tarfile.TarInfo(prefix + m.name)
        info.size, info.mode, info.mtime = m.length, m.mode, int(m.mtime)
        write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        sha = hashlib.sha256()
        if listed:
            self.files[m.name] = {"size": m.length, "mode": m.mode}
            self._shas.append((self.files[m.name], sha))
        for chunk in self._chunks(m):
            if listed:
                self.hasher.put((sha, chunk))
            write(chunk)
        pad = -m.length % tarfile.BLOCKSIZE
        if pad:
            write(b"\0" * pad)

    @staticmethod
    def _chunks(m: snapshot.Member) -> Iterator[bytes]:
        if m.data is not None:
            yield m.data
            return
        assert m.path is not None
        with m.path.open("rb", buffering=0) as f:
            left = m.size
            while left:
                chunk = f.read(min(left, BLOCK))
                if not chunk:
                    raise HomeError(
                        f"{m.path.name} became shorter while being backed up; take the backup again"
                    )
                yield chunk
                left -= len(chunk)

    def digests(self) -> dict[str, dict[str, Any]]:
        """Wait for the hashing stage; the manifest's ``files``."""
        self.hasher.finish()
        for doc, sha in self._shas:
            doc["sha256"] = sha.hexdigest()
        return self.files

    def abort(self) -> None:
        self.hasher.abort()

    def finish(self) -> None:
        self._sink(True)(b"\0" * (2 * tarfile.BLOCKSIZE))


_ZSTD_MAGIC = 0xFD2FB528
_RAW_BLOCK = 128 * 1024  # the largest block zstd allows


def raw_frame(data: Any) -> bytes:
    """``data`` as one zstd frame of raw (stored) blocks.

    Frame header: magic; descriptor 0xA0 = single segment (no window descriptor), 4-byte
    content size, no checksum, no dictionary. Each block: a 3-byte little-endian header
    ``size << 3 | type (0, raw) << 1 | last``, then the bytes (RFC 8878, section 3.1).
    """
    view = memoryview(data).cast("B")
    parts: list[Any] = [struct.pack("<IBI", _ZSTD_MAGIC, 0xA0, len(view))]
    if not len(view):
        parts.append(b"\x01\x00\x00")  # one empty last raw block
    for i in range(0, len(view), _RAW_BLOCK):
        block = view[i : i + _RAW_BLOCK]
        last = i + _RAW_BLOCK >= len(view)
        parts.append((len(block) << 3 | last).to_bytes(3, "little"))
        parts.append(block)
    return b"".join(parts)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class ReadResult:
    manifest: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


class _ReadAhead(io.RawIOBase):
    """Reads ``src`` in a thread, a few blocks ahead of the consumer (there: decryption,
    which holds the GIL, overlaps with decompression, hashing and writing, which do not)."""

    def __init__(self, src: Any) -> None:
        self.src = src
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.block = memoryview(b"")
        self.eof = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="restore-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                block = self.src.read(BLOCK)
                self.queue.put(block)
                if not block:
                    return
        except BaseException as exc:  # re-raised in the consumer's thread
            self.queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.block and not self.eof:
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            self.eof = not item
            self.block = memoryview(item)
        n = min(len(b), len(self.block))
        b[:n] = self.block[:n]
        self.block = self.block[n:]
        return n

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        super().close()


def read_backup(
    path: Path, identities: list[x25519.Identity], extract_to: Path | None = None
) -> ReadResult:
    """Decrypt, decompress and walk a backup, checking every file against the manifest.

    With ``extract_to`` the ``home/`` tree is written there. Raises :class:`CryptoError` when
    the backup does not decrypt (wrong key, tampering, truncation) and :class:`IntegrityError`
    when its contents disagree with the manifest. Three threads: reading and decrypting;
    decompressing and untarring (this one); hashing and writing.
    """
    if not path.is_file() and not is_stream(path):
        raise InputError(f"{path}: no such backup file")
    seen: dict[str, dict[str, Any]] = {}
    hashes: dict[str, Any] = {}
    manifest: dict[str, Any] | None = None
    keys = [age.identity_key(str(i)) for i in identities]
    opened: set[int] = set()

    def consume(item: tuple[Any, int | None, bytes | None]) -> None:
        sha, fd, chunk = item
        if chunk is None:
            if fd is not None:
                os.fsync(fd)  # the restored home is durable before it is renamed into place
                os.close(fd)
                opened.discard(fd)
            return
        sha.update(chunk)
        if fd is not None:
            _write_all(fd, chunk)

    writer = _Stage("restore-writer", consume)
    try:
        # age authenticates every chunk: a flipped byte, a cut-off tail or the wrong
        # identity all raise CryptoError before any altered byte could be used
        with (
            path.open("rb", buffering=1 << 20) as src,
            _ReadAhead(age.AgeReader(src, keys)) as stream,
            zstandard.ZstdDecompressor().stream_reader(
                cast(BinaryIO, stream), read_size=BLOCK, read_across_frames=True
            ) as z,
            tarfile.open(fileobj=z, mode="r|", bufsize=BLOCK) as tar,
        ):
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
                sha = hashes[rel] = hashlib.sha256()
                seen[rel] = {"size": info.size}
                fd = None
                if extract_to is not None:
                    target = extract_to / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                    fd = os.open(target, flags, info.mode & 0o700 or 0o600)
                    opened.add(fd)
                for chunk in iter(functools.partial(f.read, BLOCK), b""):
                    writer.put((sha, fd, chunk))
                writer.put((sha, fd, None))
        writer.finish()
        if extract_to is not None:
            for folder in [extract_to, *(p for p in extract_to.rglob("*") if p.is_dir())]:
                fsync_dir(folder)
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise IntegrityError(f"backup is truncated or damaged: {exc}") from exc
    finally:
        writer.abort()  # a no-op after finish()
        for fd in opened:
            os.close(fd)
    for rel, sha in hashes.items():
        seen[rel]["sha256"] = sha.hexdigest()
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
