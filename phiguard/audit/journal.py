"""The on-disk formats of the audit log: journal frames, node files, period keys.

Layout under ``HOME/audit/``::

    log.json               origin, public key, creation time (sealed as entry 0)
    journal/<first>.seg    segments of frames, named by the index of their first entry
    tree/<level>.nodes     every perfect Merkle node of one level, 32 bytes each, in order
    keys/<YYYY-MM>.key     the period's data key, wrapped by the home's key provider
    keys/<YYYY-MM>.erased  marker left by crypto-erasure of that period
    checkpoints.log        every signed checkpoint, hash-chained records
    state.json             the recovery point written with each checkpoint

A *frame* holds up to :data:`FRAME_ENTRIES` entries of one batch::

    header  magic "PGJ1" | flags | kind | 0 | first_index u64 | count u32 | period u32 |
            ts_ms i64 | body_len u32 | nonce 12 | crc32(header) u32          (52 bytes)
    body    leaf hashes (count × 32) | AES-256-GCM ciphertext of the entries
    crc32(body) u32

The leaf hashes sit in clear so the tree (and every proof) survives crypto-erasure of the
ciphertext's key; the CRCs find torn writes without any key; the AEAD authenticates the
entries, the header fields that describe them and the leaf hashes. The last frame of a batch
carries :data:`LAST`: a batch without it on disk was never acknowledged and recovery drops it.

An entry's *leaf data* (what its leaf hash commits to, RFC 9162 ``SHA-256(0x00 ‖ data)``)::

    0x01 | salt 16 | kind u8 | ts_ms i64 | len(source) u8 | source | the exact received bytes

The random salt is encrypted with the entry, so a leaf hash in clear cannot be used to test
guesses of a low-entropy entry (an HKID has about 2^31 values), even after erasure.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from itertools import accumulate, pairwise
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phiguard.errors import CryptoError, DurabilityError

MAGIC = b"PGJ1"
LAST = 0x01
KIND_EVENT = 1
KIND_ACTION = 2
KINDS = {"event": KIND_EVENT, "action": KIND_ACTION}
KIND_NAMES = {v: k for k, v in KINDS.items()}
HEADER = struct.Struct(">4sBBHQIIqI12s")
HEADER_SIZE = HEADER.size + 4
FRAME_ENTRIES = 4096
FRAME_BYTES = 1 << 20
LEAF_VERSION = 1
SALT_SIZE = 16
_LEAF_FIXED = struct.Struct(">B16sBqB")
_AAD_PREFIX = b"phiguard/audit/frame/v1"
MAX_SOURCE = 255

Fsync = Callable[[int], None]
# the unbound digest method: ``map(_digest, map(sha256, items))`` hashes with no Python loop
_digest = type(sha256()).digest


def period_of(ts_ms: int) -> int:
    """The retention period (YYYYMM in Hong Kong time) of a timestamp in ms since the epoch."""
    from datetime import UTC, datetime

    from phiguard.clock import HKT

    at = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(HKT)
    return at.year * 100 + at.month


PERMANENT = 0  # the period of the log's own metadata (entry 0); never erased


def period_label(period: int) -> str:
    return f"{period // 100:04d}-{period % 100:02d}"


def parse_period(label: str) -> int:
    try:
        year, month = label.split("-")
        value = int(year) * 100 + int(month)
    except ValueError:
        value = 0
    if not 1 <= value % 100 <= 12 or len(label) != 7:
        raise ValueError(f"a period is written YYYY-MM, not {label!r}")
    return value


# -- leaf data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    salt: bytes
    kind: int
    ts_ms: int
    source: str
    data: bytes

    @classmethod
    def decode(cls, leaf: bytes) -> Leaf:
        """Parse leaf data (without the 0x00 hashing prefix)."""
        version, salt, kind, ts_ms, srclen = _LEAF_FIXED.unpack_from(leaf, 0)
        if version != LEAF_VERSION:
            raise ValueError(f"unknown leaf version {version}")
        start = _LEAF_FIXED.size
        source = leaf[start : start + srclen].decode()
        return cls(salt, kind, ts_ms, source, bytes(leaf[start + srclen :]))


def leaf_prefix(salt: bytes, kind: int, ts_ms: int, source: bytes) -> bytes:
    return b"\x00" + _LEAF_FIXED.pack(LEAF_VERSION, salt, kind, ts_ms, len(source)) + source


# -- frames ----------------------------------------------------------------------------------


@dataclass
class Prepared:
    """One batch turned into frames, ready to be written once its first index is known.

    A frame is kept as separate buffers (header, leaf hashes, ciphertext, body CRC) and the
    log writes them with ``os.pwritev``: no frame, batch or group is copied into one blob.
    """

    heads: list[bytearray]  # frame headers with first_index 0 and no header CRC yet
    bodies: list[tuple[bytes, bytes, bytes]]  # leaf hashes, ciphertext, crc32 of the two
    counts: list[int]
    leaf_hashes: list[bytes]
    ts_ms: int
    period: int

    @property
    def count(self) -> int:
        return len(self.leaf_hashes)

    def buffers(self, first_index: int) -> list[bytes | bytearray]:
        """The frames' bytes in order, as buffers for one ``pwritev``."""
        out: list[bytes | bytearray] = []
        index = first_index
        for head, body, count in zip(self.heads, self.bodies, self.counts, strict=True):
            struct.pack_into(">Q", head, 8, index)
            struct.pack_into(">I", head, HEADER.size, zlib.crc32(memoryview(head)[: HEADER.size]))
            out.append(head)
            out.extend(body)
            index += count
        return out

    def finalise(self, first_index: int) -> bytes:
        """The frames' bytes as one blob (tests write partial frames with it)."""
        return b"".join(self.buffers(first_index))


def _aad(kind: int, period: int, ts_ms: int, count: int, hashes: bytes) -> bytes:
    return _AAD_PREFIX + struct.pack(">BIqI", kind, period, ts_ms, count) + hashes


def _offsets(values: Sequence[int]) -> bytes:
    table = array("I", values)
    if sys.byteorder != "little":
        table.byteswap()
    return table.tobytes()


def _read_offsets(buf: memoryview, count: int) -> array[int]:
    table = array("I")
    table.frombytes(buf[: 4 * (count + 1)])
    if sys.byteorder != "little":
        table.byteswap()
    return table


def prepare(
    kind: int, source: str, ts_ms: int, entries: Sequence[bytes], aead: AESGCM, period: int
) -> Prepared:
    """Salt, hash, and encrypt a batch. CPU only: no file is touched.

    Per entry there is one concatenation and one SHA-256 (the hashlib call is most of the
    cost: ~0.4 µs of it is OpenSSL's per-call setup, whatever the entry's size); everything
    else (salts, offsets, encryption, checksums) is done once per frame on whole buffers,
    and each frame's plaintext is built by a single ``join``.
    """
    n = len(entries)
    src = source.encode()
    head = b"\x00" + bytes((LEAF_VERSION,))
    tail = struct.pack(">BqB", kind, ts_ms, len(src)) + src
    salts = os.urandom(SALT_SIZE * n)
    leaves = [
        head + salts[k : k + SALT_SIZE] + tail + e
        for k, e in zip(range(0, SALT_SIZE * n, SALT_SIZE), entries, strict=True)
    ]
    hashes = list(map(_digest, map(sha256, leaves)))
    total = sum(map(len, leaves))
    per_frame = max(1, min(FRAME_ENTRIES, FRAME_BYTES * n // max(total, 1)))
    heads: list[bytearray] = []
    bodies: list[tuple[bytes, bytes, bytes]] = []
    counts: list[int] = []
    for a in range(0, n, per_frame):
        chunk = leaves[a : a + per_frame]
        count = len(chunk)
        chunk.insert(0, _offsets(list(accumulate(map(len, chunk), initial=4 * (count + 1)))))
        plain = b"".join(chunk)
        hash_block = b"".join(hashes[a : a + per_frame])
        nonce = os.urandom(12)
        cipher = aead.encrypt(nonce, plain, _aad(kind, period, ts_ms, count, hash_block))
        crc = zlib.crc32(cipher, zlib.crc32(hash_block))
        flags = LAST if a + count == n else 0
        body_len = len(hash_block) + len(cipher)
        heads.append(
            bytearray(
                HEADER.pack(MAGIC, flags, kind, 0, 0, count, period, ts_ms, body_len, nonce)
                + b"\0\0\0\0"
            )
        )
        bodies.append((hash_block, cipher, struct.pack(">I", crc)))
        counts.append(count)
    return Prepared(heads, bodies, counts, hashes, ts_ms, period)


@dataclass
class Frame:
    segment: Path
    offset: int
    end: int
    flags: int
    kind: int
    first_index: int
    count: int
    period: int
    ts_ms: int
    nonce: bytes
    body: bytes

    @property
    def hashes(self) -> bytes:
        return self.body[: 32 * self.count]

    def decrypt(self, aead: AESGCM) -> list[bytes]:
        """The entries' leaf data, each still prefixed by 0x00 (ready to hash)."""
        try:
            plain = aead.decrypt(
                self.nonce,
                self.body[32 * self.count :],
                _aad(self.kind, self.period, self.ts_ms, self.count, self.hashes),
            )
        except InvalidTag as exc:
            raise CryptoError("entry ciphertext does not authenticate") from exc
        mv = memoryview(plain)
        offs = _read_offsets(mv, self.count)
        if len(offs) != self.count + 1 or offs[-1] != len(plain):
            raise CryptoError("entry table is inconsistent")
        return [plain[a:b] for a, b in pairwise(offs)]


class TornFrame(Exception):
    """The bytes at this offset are not a whole, intact frame."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.offset = offset
        self.reason = reason


def _frame_head(path: Path, head: bytes, pos: int, limit: int) -> Frame:
    """Parse and check a frame header read at ``pos``; the body is not read (left empty)."""
    if len(head) < HEADER_SIZE or pos + HEADER_SIZE > limit:
        raise TornFrame(pos, "incomplete frame header")
    (crc,) = struct.unpack_from(">I", head, HEADER.size)
    if zlib.crc32(head[: HEADER.size]) != crc:
        raise TornFrame(pos, "frame header checksum mismatch")
    magic, flags, kind, _, first, count, period, ts_ms, body_len, nonce = HEADER.unpack_from(head)
    if magic != MAGIC or kind not in KIND_NAMES or count == 0 or body_len < 32 * count:
        raise TornFrame(pos, "malformed frame header")
    end = pos + HEADER_SIZE + body_len + 4
    if end > limit:
        raise TornFrame(pos, "incomplete frame body")
    return Frame(path, pos, end, flags, kind, first, count, period, ts_ms, nonce, b"")


def frame_body(frame: Frame, rest: bytes) -> bytes:
    """The body of ``frame`` from the bytes after its header (body and CRC), checked."""
    body_len = frame.end - frame.offset - HEADER_SIZE - 4
    body = rest[:body_len]
    if len(rest) != body_len + 4 or zlib.crc32(body) != struct.unpack(">I", rest[body_len:])[0]:
        raise TornFrame(frame.offset, "frame body checksum mismatch")
    return body


def read_frames(path: Path, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Frames of one segment from byte ``start``; raises :class:`TornFrame` at a bad one."""
    with path.open("rb") as f:
        f.seek(start)
        pos = start
        limit = os.fstat(f.fileno()).st_size if stop is None else stop
        while pos < limit:
            frame = _frame_head(path, f.read(HEADER_SIZE), pos, limit)
            frame.body = frame_body(frame, f.read(frame.end - pos - HEADER_SIZE))
            yield frame
            pos = frame.end


def scan_frames(path: Path, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Like :func:`read_frames` but reads only the headers (``body`` is left empty and the
    body CRC unchecked): one ``pread`` per frame, so verification can split the work."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = start
        limit = os.fstat(fd).st_size if stop is None else stop
        while pos < limit:
            frame = _frame_head(path, os.pread(fd, HEADER_SIZE, pos), pos, limit)
            yield frame
            pos = frame.end
    finally:
        os.close(fd)


def segments(journal: Path) -> list[tuple[int, Path]]:
    out = []
    for p in journal.glob("*.seg"):
        try:
            out.append((int(p.stem), p))
        except ValueError:
            continue
    return sorted(out)


_IOV_MAX = 1024


def pwrite_all(fd: int, buffers: Sequence[bytes | bytearray], offset: int) -> int:
    """Write ``buffers`` back to back at ``offset`` with as few ``pwritev`` calls as the
    kernel allows; raises :class:`DurabilityError` on a short write. Returns the length."""
    total = 0
    for a in range(0, len(buffers), _IOV_MAX):
        part = buffers[a : a + _IOV_MAX]
        want = sum(map(len, part))
        if os.pwritev(fd, part, offset + total) != want:
            raise DurabilityError("short write to the audit journal")
        total += want
    return total


def fsync_all(fds: Sequence[int], fsync: Fsync) -> None:
    """fsync several files at once, one thread each, and raise the first failure.

    A checkpoint makes ~20 tree files durable; in a row that is ~20 journal commits of the
    file system, while concurrent fsyncs share them (ext4 and XFS batch the waiters of one
    commit), so the checkpoint holds the writer's lock for about one flush instead of 20.
    """
    if len(fds) <= 1:
        for fd in fds:
            fsync(fd)
        return
    errors: list[BaseException] = []

    def run(fd: int) -> None:
        try:
            fsync(fd)
        except BaseException as exc:  # raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fd,), daemon=True) for fd in fds[1:]]
    for t in threads:
        t.start()
    run(fds[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def fsync_dir(path: Path, fsync: Fsync) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


# -- node files ------------------------------------------------------------------------------


class NodeFiles:
    """One append-only file of perfect nodes per tree level (``tree/NN.nodes``).

    Written with ``pwrite`` at the position a node's index dictates, so replaying a frame
    twice (recovery, a second process catching up) rewrites the same bytes. They are a
    cache of the leaf hashes in the journal: fsynced at each checkpoint, and rebuilt from the
    journal after a crash for whatever came later.
    """

    def __init__(self, folder: Path, writable: bool) -> None:
        self.folder = folder
        self.writable = writable
        self._fds: dict[int, int] = {}
        self._dirty: set[int] = set()  # levels written or cut since the last sync

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            path = self.folder / f"{level:02d}.nodes"
            flags = (os.O_RDWR | os.O_CREAT) if self.writable else os.O_RDONLY
            fd = os.open(path, flags, 0o600)
            self._fds[level] = fd
        return fd

    def node(self, level: int, index: int) -> bytes:
        data = os.pread(self._fd(level), 32, index * 32)
        if len(data) != 32:
            raise IndexError(f"node ({level}, {index}) is not stored")
        return data

    def write(self, old_size: int, created: list[list[bytes]]) -> None:
        for level, nodes in enumerate(created):
            data = b"".join(nodes)
            if os.pwrite(self._fd(level), data, (old_size >> level) * 32) != len(data):
                raise DurabilityError(f"short write to tree level {level}")
            self._dirty.add(level)

    def truncate(self, size: int) -> None:
        """Cut every level to exactly the nodes of a tree of ``size`` leaves."""
        level = 0
        while True:
            path = self.folder / f"{level:02d}.nodes"
            if not path.exists() and (size >> level) == 0:
                break
            os.ftruncate(self._fd(level), (size >> level) * 32)
            self._dirty.add(level)
            level += 1

    def sync(self, fsync: Fsync, also: Sequence[int] = ()) -> None:
        """Make every level written or cut since the last sync durable (together with the
        files ``also``), with concurrent fsyncs: see :func:`fsync_all`."""
        dirty = sorted(self._dirty)
        fsync_all([*also, *(self._fds[level] for level in dirty)], fsync)
        self._dirty.difference_update(dirty)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class TopNodes:
    """A node reader for proofs: the tree's small upper levels kept in memory, the lower ones
    read from the node files (one ``pread`` per node).

    A proof needs one node per level; the upper levels (at most ``max_nodes`` nodes each, so
    a few MB for a 10^8-leaf tree) are read once and then only extended as the tree grows,
    and the fold of the ragged right edge is remembered per range. Both are safe to keep: a
    perfect node is written once and never changes inside a durable tree (recovery cuts
    only what lies beyond it), so callers pass sizes of the durable tree (a checkpoint's,
    or the log's current size). Verification never uses this: it must read the files as
    they are now.
    """

    def __init__(self, files: NodeFiles, max_nodes: int = 1 << 16) -> None:
        self.files = files
        self.max_nodes = max_nodes
        self.size = 0
        self.levels: dict[int, bytes] = {}
        self._edges: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def extend(self, size: int) -> None:
        """Hold the upper levels of a tree of ``size`` leaves (a no-op if already held)."""
        if size <= self.size:
            return
        with self._lock:
            if size <= self.size:
                return
            levels = dict(self.levels)
            for level in range(size.bit_length()):
                count = size >> level
                if count > self.max_nodes:
                    levels.pop(level, None)
                    continue
                have = levels.get(level, b"")
                missing = 32 * count - len(have)
                if missing > 0:
                    more = os.pread(self.files._fd(level), missing, len(have))
                    if len(more) != missing:  # not stored (yet): leave it to node()
                        levels.pop(level, None)
                        continue
                    levels[level] = have + more
            self.levels = levels
            self.size = size

    def node(self, level: int, index: int) -> bytes:
        data = self.levels.get(level)
        if data is not None and 32 * index + 32 <= len(data):
            return data[32 * index : 32 * index + 32]
        return self.files.node(level, index)

    def range_hash(self, start: int, end: int) -> bytes:
        from phiguard.audit.merkle import range_hash

        key = (start, end)
        value = self._edges.get(key)
        if value is None:
            value = range_hash(self, start, end)
            if len(self._edges) > 4096:
                self._edges.clear()
            self._edges[key] = value
        return value


# -- checkpoint records ----------------------------------------------------------------------

CKPT_MAGIC = b"PGC1"
_CKPT_HEAD = struct.Struct(">4sI32s")


def encode_checkpoint_record(prev: bytes, note: bytes) -> bytes:
    """``magic | len(note) | SHA-256 of the previous note | note | crc32``: a hash chain, so a
    record deleted from the middle of ``checkpoints.log`` breaks the next one's link."""
    rec = _CKPT_HEAD.pack(CKPT_MAGIC, len(note), prev) + note
    return rec + struct.pack(">I", zlib.crc32(rec))


@dataclass(frozen=True)
class CheckpointRecord:
    offset: int
    end: int
    prev: bytes
    note: bytes

    @property
    def digest(self) -> bytes:
        return sha256(self.note).digest()


def read_checkpoint_records(
    path: Path, start: int = 0, stop: int | None = None
) -> Iterator[CheckpointRecord]:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        data = f.read() if stop is None else f.read(stop)
    pos = start
    while pos < len(data):
        if pos + _CKPT_HEAD.size > len(data):
            raise TornFrame(pos, "incomplete checkpoint record")
        magic, length, prev = _CKPT_HEAD.unpack_from(data, pos)
        end = pos + _CKPT_HEAD.size + length + 4
        if magic != CKPT_MAGIC or end > len(data):
            raise TornFrame(pos, "malformed checkpoint record")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[pos : end - 4]) != crc:
            raise TornFrame(pos, "checkpoint record checksum mismatch")
        yield CheckpointRecord(pos, end, prev, data[pos + _CKPT_HEAD.size : end - 4])
        pos = end
