"""The expensive half of ``phiguard audit verify``, split so it can run in worker processes.

Re-verifying a log means one SHA-256 per entry (its leaf) and one per inner node, plus a
CRC and an AES-GCM decryption per frame. In CPython each ``hashlib`` call costs ~0.4 µs
of set-up whatever the input size, and it holds the GIL for inputs under 2 KiB, so threads
cannot share that work: processes can. Frames and tree levels are independent, so
:func:`verify_log` scans the frame headers itself (one ``pread`` each), hands runs of
frames and ranges of tree nodes to a pool of forked workers, and then applies the results
*in journal order* with exactly the logic of a sequential pass — the report is the same
whatever the number of workers (``tests/audit/test_verify_parallel.py``).

Workers receive only small descriptions (paths, offsets, index ranges) and return only
what went wrong, so almost nothing crosses the process boundary; they inherit the period
keys from the parent (resolved before the fork, so a remote key provider is asked once).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phiguard.audit import journal as jn
from phiguard.errors import CryptoError

#: below this many entries the pool's start-up costs more than it saves
PARALLEL_MIN_ENTRIES = 200_000
TASK_ENTRIES = 1 << 16  # entries per journal task
TASK_NODES = 1 << 18  # parents per tree task
_digest = type(sha256()).digest
_ONE = sha256(b"\x01")


@dataclass
class FrameOutcome:
    """What a worker found in one frame (the parent turns it into report findings)."""

    torn: str | None = None  # body checksum failure: the frame is unreadable
    fails: list[tuple[str, str]] = field(default_factory=list)
    decrypted: bool = False  # the entries decrypted (whatever their hashes said)
    erased: bool = False  # the period key is gone (crypto-erased, or missing)
    actions: list[bytes] | None = None  # leaf data of an action frame, for the parent


@dataclass
class Context:
    """Everything a worker needs, set before the pool forks (inherited, never pickled)."""

    level0: Path
    tree: Path
    keys: dict[int, AESGCM | CryptoError | None]


_CTX: Context | None = None


def _where(frame: jn.Frame) -> str:
    path = frame.segment
    last = frame.first_index + frame.count - 1
    return f"journal/{path.name} byte {frame.offset} (entries {frame.first_index}–{last})"


def check_frames(frames: Sequence[jn.Frame]) -> list[FrameOutcome]:
    """Check a run of frames of one segment: body CRC, the level-0 node file, decryption and
    every entry re-hashed to its stored leaf hash. Stops at the first unreadable frame."""
    ctx = _CTX
    assert ctx is not None
    out: list[FrameOutcome] = []
    fd = os.open(frames[0].segment, os.O_RDONLY)
    fd0 = os.open(ctx.level0, os.O_RDONLY) if ctx.level0.exists() else None
    try:
        for frame in frames:
            body_len = frame.end - frame.offset - jn.HEADER_SIZE - 4
            rest = os.pread(fd, body_len + 4, frame.offset + jn.HEADER_SIZE)
            body = memoryview(rest)[:body_len]  # no copy of the (up to 1 MiB) body
            crc = int.from_bytes(rest[body_len:], "big")
            if len(rest) != body_len + 4 or zlib.crc32(body) != crc:
                out.append(FrameOutcome(torn="frame body checksum mismatch"))
                break
            frame.body = body  # type: ignore[assignment]
            out.append(_check_frame(frame, fd0, ctx))
    finally:
        os.close(fd)
        if fd0 is not None:
            os.close(fd0)
    return out


def _check_frame(frame: jn.Frame, fd0: int | None, ctx: Context) -> FrameOutcome:
    res = FrameOutcome()
    hashes = frame.hashes
    stored = os.pread(fd0, len(hashes), 32 * frame.first_index) if fd0 is not None else b""
    if hashes != stored:
        res.fails.append(
            (
                f"tree/00.nodes entries {frame.first_index}–{frame.first_index + frame.count - 1}",
                "leaf hashes differ from the journal",
            )
        )
    aead = ctx.keys.get(frame.period)
    if isinstance(aead, CryptoError):
        res.fails.append((f"audit/keys/{jn.period_label(frame.period)}.key", str(aead)))
        return res
    if aead is None:
        res.erased = True
        return res
    try:
        plain = aead.decrypt(
            frame.nonce,
            frame.body[len(hashes) :],
            jn._aad(frame.kind, frame.period, frame.ts_ms, frame.count, hashes),
        )
    except InvalidTag:  # the ciphertext, nonce, header fields or leaf hashes changed
        res.fails.append(
            (_where(frame), "entry ciphertext does not authenticate: the entries were altered")
        )
        return res
    mv = memoryview(plain)
    offs = jn._read_offsets(mv, frame.count)
    if len(offs) != frame.count + 1 or offs[-1] != len(plain):
        res.fails.append((_where(frame), "entry table is inconsistent: the entries were altered"))
        return res
    computed = b"".join([_digest(sha256(mv[a:b])) for a, b in pairwise(offs)])
    if computed != hashes:
        for i in range(frame.count):
            if computed[32 * i : 32 * i + 32] != hashes[32 * i : 32 * i + 32]:
                res.fails.append(
                    (
                        f"entry {frame.first_index + i}",
                        "its bytes do not match its sealed leaf hash",
                    )
                )
                break
    res.decrypted = True
    if frame.kind == jn.KIND_ACTION:
        res.actions = [bytes(mv[a + 1 : b]) for a, b in pairwise(offs)]
    return res


def check_level(task: tuple[int, int, int]) -> tuple[int, int, int | None]:
    """Re-hash parents ``[a, b)`` of tree level ``level`` from the level below; returns the
    first parent that differs from the stored one (or None)."""
    ctx = _CTX
    assert ctx is not None
    level, a, b = task
    lower = ctx.tree / f"{level - 1:02d}.nodes"
    upper = ctx.tree / f"{level:02d}.nodes"
    with lower.open("rb") as lo, upper.open("rb") as up:
        below = os.pread(lo.fileno(), 64 * (b - a), 64 * a)
        got = os.pread(up.fileno(), 32 * (b - a), 32 * a)
    want = parents(below)
    if want == got:
        return level, a, None
    bad = next(
        (i for i in range(b - a) if want[32 * i : 32 * i + 32] != got[32 * i : 32 * i + 32]),
        b - a,
    )
    return level, a, a + bad


def parents(below: bytes) -> bytes:
    """``node_hash`` of each consecutive pair of a buffer of 32-byte nodes, concatenated."""
    mv = memoryview(below)
    copy = _ONE.copy
    out = []
    for i in range(0, len(below) - 63, 64):
        h = copy()
        h.update(mv[i : i + 64])
        out.append(h.digest())
    return b"".join(out)


# -- running the tasks ---------------------------------------------------------------------


def journal_tasks(frames: Sequence[jn.Frame]) -> list[list[jn.Frame]]:
    """Runs of consecutive frames of one segment, about TASK_ENTRIES entries each."""
    tasks: list[list[jn.Frame]] = []
    run: list[jn.Frame] = []
    size = 0
    for f in frames:
        if run and (f.segment != run[0].segment or size + f.count > TASK_ENTRIES):
            tasks.append(run)
            run, size = [], 0
        run.append(f)
        size += f.count
    if run:
        tasks.append(run)
    return tasks


def level_tasks(n: int) -> list[tuple[int, int, int]]:
    tasks = []
    for level in range(1, max(1, n.bit_length())):
        count = n >> level
        for a in range(0, count, TASK_NODES):
            tasks.append((level, a, min(count, a + TASK_NODES)))
    return tasks


class Runner:
    """Runs verification tasks in order: inline, or on a pool of forked workers."""

    def __init__(self, ctx: Context, workers: int) -> None:
        global _CTX
        _CTX = ctx
        self.workers = workers
        self._pool: Any = None
        if workers > 1:
            self._pool = multiprocessing.get_context("fork").Pool(workers, _worker_init)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        if self._pool is None:
            return map(fn, tasks)
        return self._pool.imap(fn, tasks)

    def close(self) -> None:
        global _CTX
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        _CTX = None


def _worker_init() -> None:
    """A forked worker dies on SIGTERM (``Pool.terminate``) whatever handler its parent had
    installed (a server's graceful-shutdown handler would keep it alive), and leaves ^C to
    the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers(entries: int) -> int:
    """One worker per core for a big log, in a process that runs no other thread: forking a
    process whose other threads may hold locks (a web server) is not worth the risk, so
    there the check runs inline."""
    if entries < PARALLEL_MIN_ENTRIES or threading.active_count() > 1:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))
