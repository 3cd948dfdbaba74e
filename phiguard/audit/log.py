"""The tamper-evident audit log: append, seal, prove. Formats in :mod:`phiguard.audit.journal`.

One :class:`AuditLog` per :class:`~phiguard.app.App`. Writers (ingestion, ``app.record``)
call :meth:`AuditLog.append_batch`; it returns only once the batch is durable, and
concurrent callers share one fsync (group commit). A background publisher signs a C2SP
checkpoint at least every second while the log grows and never signs one inconsistent
with the last (it proves consistency against its own stored tree before signing).

Durability protocol (see docs/dev/audit.md for the reasoning):

1. a batch's frames are written at the journal's end with ``pwrite`` and the segment is
   fsynced; a new segment is created only at a batch boundary and its folder fsynced;
2. the new perfect Merkle nodes are written to ``tree/`` without fsync (a cache);
3. a checkpoint fsyncs ``tree/``, appends a hash-chained record to ``checkpoints.log``
   (fsync), then atomically replaces ``state.json`` (tmp, fsync, rename, fsync folder).

Recovery reads ``state.json`` and replays only the frames after it (≈ one second of work),
dropping a torn tail that was never acknowledged. A failed fsync raises
:class:`~phiguard.errors.DurabilityError` and stops the writer for good; a new process
recovers from what is durable. Several processes may share a home: every commit and every
checkpoint runs under an exclusive ``flock`` and first catches up with what others wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phiguard.audit import journal as jn
from phiguard.audit.checkpoint import (
    NEXT_KEY,
    Checkpoint,
    LocalWitness,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    open_checkpoint,
    sign_checkpoint,
)
from phiguard.audit.keys import PeriodKeys
from phiguard.audit.merkle import (
    Frontier,
    ProofError,
    consistency_proof,
    verify_consistency,
)
from phiguard.audit.reader import BatchReceipt, LogReader, Tip
from phiguard.errors import DurabilityError, HomeError, IntegrityError, UsageError

if TYPE_CHECKING:
    from phiguard.app import App

SEGMENT_BYTES = 64 << 20
MAX_ENTRY = 16 << 20
GENESIS_SOURCE = "phiguard:log"
ACTION_SOURCE = "phiguard"
LOCK_FILE = "audit.lock"


@dataclass
class _Pending:
    prepared: jn.Prepared
    receipt: BatchReceipt | None = None
    error: BaseException | None = None


class AuditLog(LogReader):
    """The home's tamper-evident log. Thread-safe; see the module docstring for the protocol.

    ``fsync`` is injectable (tests make it fail); ``interval`` is the longest time, in seconds,
    between the arrival of an entry and a signed checkpoint covering it; ``witness``, when
    given, cosigns every checkpoint the publisher signs.
    """

    def __init__(
        self,
        app: App,
        *,
        fsync: Callable[[int], None] = os.fsync,
        interval: float = 1.0,
        witness: LocalWitness | None = None,
    ) -> None:
        self.app = app
        self.root: Path = app.home.audit
        self.fsync = fsync
        self.interval = interval
        self.witness = witness
        self._cv = threading.Condition()
        self._queue: list[_Pending] = []
        self._leading = False
        self._commit = threading.RLock()
        self._keys_lock = threading.Lock()
        self._failed: BaseException | None = None
        self._tip: Tip | None = None
        self._seg_fd: int | None = None
        self._lock_fd: int | None = None
        self._nodes_w: jn.NodeFiles | None = None
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        self.publish_error: BaseException | None = None

    @classmethod
    def open(cls, app: App, **options: Any) -> AuditLog:
        return cls(app, **options)

    # -- identity ---------------------------------------------------------------------
    @property
    def journal_dir(self) -> Path:
        return self.root / "journal"

    @cached_property
    def config(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / "log.json").read_bytes()))
        except FileNotFoundError as exc:
            raise HomeError(f"no audit log in {self.root} (run `phiguard init`)") from exc
        except ValueError as exc:
            raise IntegrityError("audit/log.json is damaged") from exc

    @property
    def origin(self) -> str:
        return str(self.config["origin"])

    @cached_property
    def signer(self) -> NoteSigner:
        return NoteSigner.from_seed(self.origin, self.app.keyring.signing_seed)

    @cached_property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.parse(self.signer.vkey)

    @cached_property
    def keys(self) -> PeriodKeys:
        return PeriodKeys(self.root / "keys", self.app.keyring.provider, self.fsync)

    @cached_property
    def nodes(self) -> jn.NodeFiles:
        return jn.NodeFiles(self.root / "tree", writable=False)

    # -- creation ---------------------------------------------------------------------
    def initialise(self) -> None:
        """Create an empty log: folders, ``log.json`` sealed as entry 0, the first checkpoint."""
        if (self.root / "log.json").exists():
            raise HomeError(f"{self.root} already holds an audit log")
        for sub in (self.root, self.journal_dir, self.root / "tree", self.root / "keys"):
            sub.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": 1,
            "origin": f"phiguard.local/audit/{secrets.token_hex(8)}",
            "created": self.app.clock.now().astimezone(UTC).isoformat(timespec="seconds"),
        }
        doc["vkey"] = NoteSigner.from_seed(str(doc["origin"]), self.app.keyring.signing_seed).vkey
        raw = (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()
        self._write_atomic(self.root / "log.json", raw)
        self.__dict__.pop("config", None)
        # Entry 0 seals log.json. It lives in the permanent period 0, whose key retention
        # never erases, so the seal outlives every month of entries.
        ts_ms = int(self.app.clock.now().timestamp() * 1000)
        self._append(GENESIS_SOURCE, [raw], "action", ts_ms, jn.PERMANENT)
        self.publish()

    # -- writing ----------------------------------------------------------------------
    def append_batch(
        self, source: str, entries: list[bytes], *, kind: str = "event"
    ) -> BatchReceipt:
        """Append ``entries`` (the exact bytes received from ``source``) as one batch.

        All or nothing, and durable before it returns: the batch is written and fsynced
        (with concurrent callers, in one group commit). Raises :class:`UsageError` for a bad
        argument before touching any file, and :class:`DurabilityError` when the disk failed;
        after that the writer refuses all further appends.
        """
        if kind not in jn.KINDS:
            raise UsageError(f"unknown entry kind {kind!r}")
        src = source.encode() if isinstance(source, str) else b""
        if not src or len(src) > jn.MAX_SOURCE:
            raise UsageError("a source is a non-empty name of at most 255 bytes")
        if not entries:
            raise UsageError("an empty batch cannot be appended")
        if set(map(type, entries)) != {bytes}:  # C-speed check of the usual case
            if not all(isinstance(e, bytes | bytearray | memoryview) for e in entries):
                raise UsageError("log entries must be bytes")
            entries = [bytes(e) for e in entries]
        if max(map(len, entries)) > MAX_ENTRY:
            raise UsageError(f"a log entry is limited to {MAX_ENTRY} bytes")
        self._check_alive()
        ts_ms = int(self.app.clock.now().timestamp() * 1000)
        return self._append(source, entries, kind, ts_ms, jn.period_of(ts_ms))

    def _append(
        self, source: str, entries: list[bytes], kind: str, ts_ms: int, period: int
    ) -> BatchReceipt:
        with self._keys_lock:
            aead = self.keys.for_writing(period)
        prepared = jn.prepare(jn.KINDS[kind], source, ts_ms, entries, aead, period)
        pending = _Pending(prepared)
        with self._cv:
            self._queue.append(pending)
            while pending.receipt is None and pending.error is None:
                if self._leading:
                    self._cv.wait()
                    continue
                self._leading = True
                group, self._queue = self._queue, []
                self._cv.release()
                try:
                    self._commit_group(group)
                finally:
                    self._cv.acquire()
                    self._leading = False
                    self._cv.notify_all()
        if pending.error is not None:
            raise pending.error
        self._start_publisher()
        assert pending.receipt is not None
        return pending.receipt

    def record_action(
        self, tag: str, *, actor: str, subject: str, detail: dict[str, Any]
    ) -> BatchReceipt:
        """Log one of phiguard's own actions (entry kind ``action``), durably."""
        doc = {
            "ts": self.app.clock.now().isoformat(),
            "tag": str(tag),
            "actor": actor,
            "subject": subject,
            "detail": detail,
        }
        raw = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()
        return self.append_batch(ACTION_SOURCE, [raw], kind="action")

    def _check_alive(self) -> None:
        if self._failed is not None:
            raise DurabilityError(
                f"the audit log writer has stopped after an error: {self._failed}"
            )

    def _commit_group(self, group: list[_Pending]) -> None:
        with self._commit:
            try:
                self._check_alive()
                tip = self._writer()
                with self._flock():
                    self._catch_up()
                    if tip.segment is None or tip.offset >= SEGMENT_BYTES:
                        self._new_segment(tip)
                    assert self._seg_fd is not None and self._nodes_w is not None
                    buffers: list[bytes | bytearray] = []
                    for p in group:
                        old = tip.size
                        buffers.extend(p.prepared.buffers(old))
                        created = tip.frontier.append(p.prepared.leaf_hashes)
                        self._nodes_w.write(old, created)
                        p.receipt = BatchReceipt(
                            old, p.prepared.count, tip.size, tip.frontier.root()
                        )
                    written = jn.pwrite_all(self._seg_fd, buffers, tip.offset)
                    self.fsync(self._seg_fd)
                    tip.offset += written
            except BaseException as exc:
                self._fail(exc)
                err = self._failed
                for p in group:
                    p.receipt = None
                    p.error = err if isinstance(err, DurabilityError) else DurabilityError(str(err))

    def _fail(self, exc: BaseException) -> None:
        if self._failed is None:
            if isinstance(exc, DurabilityError):
                self._failed = exc
            else:
                wrapped = DurabilityError(f"audit log write failed, writer stopped: {exc}")
                wrapped.__cause__ = exc
                self._failed = wrapped
        self._stop.set()

    def _new_segment(self, tip: Tip) -> None:
        if self._seg_fd is not None:
            os.close(self._seg_fd)
        path = self.journal_dir / f"{tip.size:016d}.seg"
        self._seg_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._seg_fd, 0)
        self.fsync(self._seg_fd)
        jn.fsync_dir(self.journal_dir, self.fsync)
        tip.segment, tip.offset = tip.size, 0

    @contextmanager
    def _flock(self) -> Iterator[None]:
        if self._lock_fd is None:
            self._lock_fd = os.open(self.app.home.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- opening, recovery and catching up -------------------------------------------
    def _writer(self) -> Tip:
        """Open the writer on first use: recover from state.json and the journal's tail."""
        if self._tip is not None:
            return self._tip
        if not (self.root / "log.json").exists():
            raise HomeError(f"no audit log in {self.root} (run `phiguard init`)")
        self._nodes_w = jn.NodeFiles(self.root / "tree", writable=True)
        state = self.root / "state.json"
        with self._flock():
            tip = Tip.from_state(state.read_bytes()) if state.exists() else Tip(Frontier())
            self._tip = tip
            if tip.segment is not None:
                self._seg_fd = os.open(self.journal_dir / f"{tip.segment:016d}.seg", os.O_RDWR)
            self._catch_up(recovering=True)
        return tip

    def _catch_up(self, recovering: bool = False) -> None:
        """Apply frames and checkpoints written after our tip (by a crash or another process).

        A torn or incomplete batch at the very end of the journal was never acknowledged:
        it is cut off. Anything else that does not fit is damage, not a crash, and the
        writer refuses to go on (``phiguard audit verify`` says where).
        """
        tip = self._tip
        assert tip is not None and self._nodes_w is not None
        segs = [
            s for s in jn.segments(self.journal_dir) if tip.segment is None or s[0] >= tip.segment
        ]
        if not recovering and segs and segs[-1][0] == tip.segment:
            # the common case: nobody else wrote; one fstat answers it
            assert self._seg_fd is not None
            if os.fstat(self._seg_fd).st_size == tip.offset:
                self._catch_up_checkpoints(tip)
                return
        batch: list[jn.Frame] = []
        cut: tuple[Path, int] | None = None
        for i, (first, path) in enumerate(segs):
            start = tip.offset if first == tip.segment else 0
            if first != tip.segment:
                if first != tip.size or batch:
                    raise IntegrityError(
                        f"journal segment {path.name} does not follow entry {tip.size}"
                    )
                if self._seg_fd is not None:
                    os.close(self._seg_fd)
                self._seg_fd = os.open(path, os.O_RDWR)
                tip.segment, tip.offset = first, 0
            try:
                for frame in jn.read_frames(path, start):
                    expected = tip.size + sum(f.count for f in batch)
                    if frame.first_index != expected:
                        raise IntegrityError(
                            f"journal frame at {path.name}:{frame.offset} claims entry "
                            f"{frame.first_index}, expected {expected}"
                        )
                    batch.append(frame)
                    if frame.flags & jn.LAST:
                        self._apply(tip, batch)
                        tip.offset = frame.end
                        batch = []
            except jn.TornFrame as torn:
                if i != len(segs) - 1:
                    raise IntegrityError(f"journal segment {path.name}: {torn}") from torn
                cut = (path, tip.offset)
            if batch and i == len(segs) - 1:
                cut = (path, tip.offset)
        if cut is not None:
            self._cut(cut[0], cut[1], tip)
        if recovering:
            self._nodes_w.truncate(tip.size)
        self._catch_up_checkpoints(tip)

    def _apply(self, tip: Tip, frames: list[jn.Frame]) -> None:
        assert self._nodes_w is not None
        hashes = [f.hashes[i : i + 32] for f in frames for i in range(0, 32 * f.count, 32)]
        old = tip.size
        self._nodes_w.write(old, tip.frontier.append(hashes))

    def _cut(self, path: Path, offset: int, tip: Tip) -> None:
        if tip.size < tip.ckpt_size:
            raise IntegrityError(
                f"the journal ends before entry {tip.ckpt_size} that a checkpoint covers"
            )
        fd = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(fd, offset)
            self.fsync(fd)
        finally:
            os.close(fd)

    def _catch_up_checkpoints(self, tip: Tip) -> None:
        path = self.root / "checkpoints.log"
        try:
            for rec in jn.read_checkpoint_records(path, tip.ckpt_offset):
                if rec.prev != tip.ckpt_hash:
                    raise IntegrityError(f"checkpoint record at byte {rec.offset} breaks the chain")
                cp = open_checkpoint(rec.note, self.verifier).checkpoint
                self._check_checkpoint(tip, cp)
                tip.ckpt_count += 1
                tip.ckpt_start = rec.offset
                tip.ckpt_offset, tip.ckpt_size, tip.ckpt_root, tip.ckpt_hash = (
                    rec.end,
                    cp.size,
                    cp.root,
                    rec.digest,
                )
        except jn.TornFrame as torn:
            fd = os.open(path, os.O_RDWR)
            try:
                os.ftruncate(fd, torn.offset)
                self.fsync(fd)
            finally:
                os.close(fd)

    def _check_checkpoint(self, tip: Tip, cp: Checkpoint) -> None:
        if cp.size > tip.size or cp.size < tip.ckpt_size:
            raise IntegrityError(
                f"checkpoint for size {cp.size} does not fit the journal ({tip.size})"
            )
        assert self._nodes_w is not None
        if Frontier.load(self._nodes_w, cp.size).root() != cp.root:
            raise IntegrityError(f"signed checkpoint for size {cp.size} disagrees with the journal")

    # -- checkpoints ------------------------------------------------------------------
    def publish(self, *, extensions: tuple[str, ...] = (), force: bool = False) -> bytes | None:
        """Sign and durably store a checkpoint for the current size (if the log grew).

        Before signing, the new tree is proven consistent with the last stored checkpoint,
        so two inconsistent checkpoints are never signed. Returns the new note, or None.
        ``force`` signs even when the size has not changed (a key handover must be signed).
        """
        with self._commit:
            self._check_alive()
            tip = self._writer()
            assert self._nodes_w is not None
            try:
                with self._flock():
                    self._catch_up()
                    if tip.size == tip.ckpt_size and tip.ckpt_count and not force:
                        return None
                    root = tip.frontier.root()
                    if tip.ckpt_count:
                        proof = consistency_proof(self._nodes_w, tip.ckpt_size, tip.size)
                        try:
                            verify_consistency(tip.ckpt_size, tip.size, tip.ckpt_root, root, proof)
                        except ProofError as exc:
                            raise IntegrityError(
                                f"refusing to sign an inconsistent checkpoint: {exc}"
                            ) from exc
                    note = sign_checkpoint(
                        Checkpoint(self.origin, tip.size, root, extensions), self.signer
                    )
                    if self.witness is not None:
                        note += self._cosign(note).encode()
                    self._store_checkpoint(tip, note)
                    return note
            except (OSError, DurabilityError) as exc:
                self._fail(
                    exc
                    if isinstance(exc, DurabilityError)
                    else DurabilityError(f"checkpoint write failed: {exc}")
                )
                raise self._failed from exc  # type: ignore[misc]

    def rotate_signing_key(self, *, actor: str = "cli") -> bytes:
        """Replace the checkpoint signing key, with the handover sealed in the log.

        1. an ``keys:signing:rotated`` action naming the old and new public keys is appended;
        2. a checkpoint covering it is signed by the OLD key and carries the extension line
           ``phiguard-next-key <new vkey>``: the trusted key itself vouches for its successor;
        3. the keyring switches to the new key; every later checkpoint is signed by it.

        Verifiers (``audit verify``, evidence bundles) start from the key sealed in entry 0 and
        follow these handovers, so a checkpoint signed by a retired key after its handover, or
        by a key nobody handed over to, is rejected. All three steps run under the commit lock,
        so the publisher cannot sign with the old key after the handover.
        """
        from phiguard.audit.tags import Tag

        new_seed = secrets.token_bytes(32)
        new_vkey = NoteSigner.from_seed(self.origin, new_seed).vkey
        with self._commit:
            old_vkey = self.signer.vkey
            self.record_action(
                Tag.SIGNING_KEY_ROTATED,
                actor=actor,
                subject=new_vkey,
                detail={"old_vkey": old_vkey, "new_vkey": new_vkey},
            )
            note = self.publish(extensions=(NEXT_KEY + new_vkey,), force=True)
            assert note is not None
            ring = self.app.keyring
            ring.signing_seed = new_seed
            ring.save(self.app.home.keys)
            for name in ("signer", "verifier"):
                self.__dict__.pop(name, None)
        return note

    def _cosign(self, note: bytes) -> str:
        assert self.witness is not None and self._nodes_w is not None
        nodes = self._nodes_w

        def prove(old: int, new: int) -> list[bytes]:
            return consistency_proof(nodes, old, new) if 0 < old < new else []

        now = int(self.app.clock.now().timestamp())
        return self.witness.cosign(note, self.verifier, prove, now)

    def _store_checkpoint(self, tip: Tip, note: bytes) -> None:
        assert self._nodes_w is not None
        rec = jn.encode_checkpoint_record(tip.ckpt_hash, note)
        path = self.root / "checkpoints.log"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.pwrite(fd, rec, tip.ckpt_offset) != len(rec):
                raise DurabilityError("short write to checkpoints.log")
            # The record and the tree files are flushed together. Only state.json, written
            # after both are durable, moves the recovery point; a crash before it replays
            # the journal from the previous state and rewrites the same nodes.
            self._nodes_w.sync(self.fsync, also=[fd])
        finally:
            os.close(fd)
        if tip.ckpt_count == 0:
            jn.fsync_dir(self.root, self.fsync)
        cp = SignedNote.parse(note)
        parsed = Checkpoint.parse_body(cp.text)
        tip.ckpt_count += 1
        tip.ckpt_start = tip.ckpt_offset
        tip.ckpt_offset += len(rec)
        tip.ckpt_size, tip.ckpt_root = parsed.size, parsed.root
        tip.ckpt_hash = jn.CheckpointRecord(0, 0, b"", note).digest
        self._write_atomic(self.root / "state.json", tip.state_bytes())

    def cosign_latest(self, witness: LocalWitness) -> bytes:
        """Have ``witness`` cosign the latest checkpoint; store and return the cosigned note."""
        with self._commit:
            self.publish()
            tip = self._writer()
            with self._flock():
                self._catch_up()
                latest = self.latest_checkpoint()
                assert latest is not None
                saved, self.witness = self.witness, witness
                try:
                    note = latest + self._cosign(latest).encode()
                finally:
                    self.witness = saved
                self._store_checkpoint(tip, note)
                return note

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, data) != len(data):
                raise DurabilityError(f"short write to {path.name}")
            self.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        jn.fsync_dir(path.parent, self.fsync)

    def _start_publisher(self) -> None:
        if self._publisher is not None or self.interval <= 0:
            return
        with self._commit:
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._publish_loop, name="audit-publisher", daemon=True
                )
                self._publisher.start()

    def _publish_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish()
            except Exception as exc:  # reported by close() and by the next append
                self.publish_error = exc
                return

    def close(self) -> None:
        """Stop the publisher, seal what was appended with a last checkpoint, release files."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join()
            self._publisher = None
        if self._tip is not None and self._failed is None:
            self.publish()
        for fd in (self._seg_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._seg_fd = self._lock_fd = None
        if self._nodes_w is not None:
            self._nodes_w.close()
        self.nodes.close()
        self.__dict__.pop("proof_nodes", None)
        self._tip = None
        self._stop = threading.Event()
