"""Ingestion: access events from files, HTTP bodies and syslog into the audit log and store.

The order of work for every batch, under one lock per home (thread lock + ``flock``):

1. **Frame and decode** the input (:mod:`phiguard.audit.ingest_formats`) and **validate**
   the rows (:mod:`phiguard.audit.events`). Bad rows are counted and reported with their
   line numbers and left out; with ``strict`` any bad row rejects the whole input and
   nothing at all reaches the log.
2. **Seal**: per source, one ``append_batch`` of ``[batch header, record, record, …]`` —
   the header entry (``#phiguard-batch/1 {json}``) says how to read the records (format,
   CSV header line, file SHA-256, channel); each record entry is the exact bytes received.
   ``append_batch`` is all-or-nothing and returns once the batch is durable.
3. **Apply** what the log now holds to the derived state: per-source completeness and the
   batch register in the database (one transaction that also moves the ``applied`` mark),
   and the Parquet store (part files, then ``store.json``). A crash between 2 and 3 loses
   nothing: :func:`sync` replays the log from the lower of the two marks, using the very
   same decoding, so the store and the tables are a function of the log.
4. **Record** ``audit:events:ingested`` for the batch, and one alert entry per new gap,
   duplicate run or regression.

Batch semantics: a batch holds the accepted events of *one source* from *one chunk* of an
input (a chunk is the whole input, or ``Settings.ingest_batch_events`` records of a larger
file). Each batch is atomic and durable on its own. A file's batches are registered with the
file's SHA-256, so ingesting the same file again skips what is already sealed (an
interrupted run resumes where it stopped) unless ``force`` is given.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import queue
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import insert, select, update

from phiguard.audit import completeness
from phiguard.audit.events import STORE_SCHEMA, RowError, to_store, validate
from phiguard.audit.ingest_formats import (
    Chunk,
    _Lines,
    bundle_resources,
    csv_chunks,
    decode,
    line_chunks,
    parquet_chunks,
)
from phiguard.audit.models import IngestBatch, IngestState
from phiguard.audit.tags import Tag
from phiguard.errors import InputError, UsageError
from phiguard.storage.events import EventStore

if TYPE_CHECKING:
    from phiguard.app import App

BATCH_MAGIC = b"#phiguard-batch/1 "
DEFAULT_BATCH_EVENTS = 250_000
MAX_REPORTED_ERRORS = 1000
MAX_BODY_BYTES = 64 << 20
Progress = Callable[[int, int], None]
FORMATS = ("csv", "parquet", "ndjson", "fhir", "bundle")


# -- results ------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What happened to one input (a file, an HTTP body, a syslog flush)."""

    name: str
    format: str
    sha256: str = ""
    strict: bool = False
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    already: int = 0  # events of batches sealed by an earlier run (skipped)
    committed: bool = False
    batches: list[tuple[int, int]] = field(default_factory=list)  # (header index, events)
    errors: list[RowError] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def bad(self, errors: Iterable[RowError]) -> None:
        for e in errors:
            self.rejected += 1
            self.reasons[e.reason] += 1
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(e)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "sha256": self.sha256,
            "strict": self.strict,
            "records": self.records,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "already_ingested": self.already,
            "committed": self.committed,
            "batches": [{"header_index": h, "events": n} for h, n in self.batches],
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


@dataclass
class IngestResult:
    files: list[FileResult] = field(default_factory=list)
    anomalies: list[completeness.Anomaly] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def committed(self) -> bool:
        return all(f.committed for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "committed": self.committed,
            "files": [f.as_dict() for f in self.files],
            "anomalies": [a.as_dict() for a in self.anomalies],
        }


# -- the lock -----------------------------------------------------------------------------
_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()
_HELD = threading.local()


@contextmanager
def ingest_lock(app: App) -> Iterator[None]:
    """Serialise seal-and-apply per home, across threads and processes (re-entrant)."""
    key = str(app.home.events.resolve())
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(key, threading.RLock())
    held: dict[str, int] = getattr(_HELD, "depth", None) or {}
    _HELD.depth = held
    with tlock:
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        app.home.events.mkdir(parents=True, exist_ok=True)
        with open(app.home.events / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            held[key] = 1
            try:
                yield
            finally:
                held[key] = 0
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- state marks --------------------------------------------------------------------------
_APPLIED = "applied"


def _db_applied(app: App) -> int:
    with app.engine.connect() as conn:
        v = conn.execute(select(IngestState.value).where(IngestState.name == _APPLIED)).scalar()
    return int(v or 0)


def _set_db_applied(conn: Any, value: int) -> None:
    done = conn.execute(
        update(IngestState)
        .where(IngestState.name == _APPLIED, IngestState.value < value)
        .values(value=value)
    )
    if done.rowcount == 0:
        exists = conn.execute(select(IngestState.value).where(IngestState.name == _APPLIED)).first()
        if exists is None:
            conn.execute(insert(IngestState).values(name=_APPLIED, value=value))


# -- sealing and applying -----------------------------------------------------------------
@dataclass
class _Apply:
    """One sealed batch, ready to be applied to the derived state."""

    header_index: int
    end: int  # first index after the batch
    meta: dict[str, Any]
    table: pa.Table  # validated rows, EVENT_SCHEMA
    leaves: np.ndarray


def _header(meta: dict[str, Any]) -> bytes:
    return (
        BATCH_MAGIC
        + json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def _parse_header(data: bytes) -> dict[str, Any] | None:
    if not data.startswith(BATCH_MAGIC):
        return None
    try:
        meta = json.loads(data[len(BATCH_MAGIC) :])
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("count"), int) else None


def _apply_db(
    app: App, batches: list[_Apply], now: datetime, mark: int | None = None
) -> list[completeness.Anomaly]:
    """Completeness, the batch register and the ``applied`` mark (``mark``, default the end of
    the last batch) in one transaction."""
    found: list[completeness.Anomaly] = []
    with app.engine.begin() as conn:
        for b in batches:
            found.extend(completeness.apply_batch(conn, b.table, b.leaves, now))
            m = b.meta
            conn.execute(
                insert(IngestBatch).values(
                    header_index=b.header_index,
                    count=int(m["count"]),
                    source=str(m["source"])[:64],
                    channel=str(m.get("channel", "file"))[:16],
                    format=str(m["format"])[:16],
                    name=(str(m["name"])[:255] if m.get("name") else None),
                    sha256=m.get("sha256"),
                    part=m.get("part"),
                    received_at=now,
                )
            )
        ends = [b.end for b in batches] + ([] if mark is None else [mark])
        if ends:
            _set_db_applied(conn, max(ends))
    return found


def _store_rows(batches: list[_Apply], now: datetime) -> pa.Table:
    tables = [to_store(b.table, b.leaves, now) for b in batches if b.table.num_rows]
    if not tables:
        return STORE_SCHEMA.empty_table()
    return pa.concat_tables(tables)


class Sealer:
    """Seals validated chunks for one input; holds the ingest lock only while sealing."""

    def __init__(
        self,
        app: App,
        result: FileResult,
        *,
        channel: str,
        actor: str,
        force: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.result = result
        self.channel = channel
        self.actor = actor
        self.force = force
        self.extra = extra or {}
        self.anomalies: list[completeness.Anomaly] = []
        self.pending: list[_Apply] = []

    def seal(
        self, chunk: Chunk, table: pa.Table, record_idx: np.ndarray, chunk_no: int, rejected: int
    ) -> None:
        """Append one chunk's accepted rows (one batch per source) and apply them."""
        if table.num_rows == 0:
            return
        app, res = self.app, self.result
        now = app.clock.now().astimezone(UTC)
        sources = table.column("source")
        with ingest_lock(app):
            sync(app, _locked=True)
            sealed = _sealed_ranges(app, res.sha256) if res.sha256 and not self.force else {}
            for src in pc.unique(sources).to_pylist():
                mask = np.asarray(pc.equal(sources, src).to_numpy(zero_copy_only=False), dtype=bool)
                idx = record_idx[mask]
                part = None
                if res.sha256:
                    # the chunk's line range: all of src's good rows in it are sealed once this
                    # batch is (whatever the chunk size of the run that sealed some of them)
                    part = f"{chunk.lines[0]}-{chunk.lines[-1]}"
                    done = _in_ranges(
                        np.asarray(chunk.lines, dtype=np.int64)[idx], sealed.get(src[:64], [])
                    )
                    if done.any():
                        res.already += int(done.sum())
                        keep = np.flatnonzero(mask)[~done]
                        mask = np.zeros(len(mask), dtype=bool)
                        mask[keep] = True
                        idx = idx[~done]
                        if not len(idx):
                            continue
                    if (chunk_no, src) in sealed.get("", []):  # a key of the old format
                        res.already += len(idx)
                        continue
                sub = table if mask.all() else table.filter(pa.array(mask))
                meta = {
                    **chunk.meta,
                    **self.extra,
                    "v": 1,
                    "source": src,
                    "count": len(idx),
                    "channel": self.channel,
                    "name": res.name,
                    "sha256": res.sha256 or None,
                    "part": part,
                    "received_at": now.isoformat(),
                    "actor": self.actor,
                }
                # idx is increasing, so as long as the chunk: every record, in order
                picked = (
                    chunk.records
                    if len(idx) == len(chunk.records)
                    else [chunk.records[i] for i in idx.tolist()]
                )
                entries = [_header(meta), *picked]
                receipt = app.audit.append_batch(src, entries, kind="event")
                first = receipt.first_index
                leaves = np.arange(first + 1, first + 1 + len(idx), dtype=np.int64)
                batch = _Apply(first, first + receipt.count, meta, sub, leaves)
                store = EventStore.of(app)
                # The batch is durable in the log; everything below is derived from it and
                # replayed by sync() after a crash. The Parquet parts (sort, zstd, fsync: Arrow
                # releases the GIL) are written on a helper thread while this one logs the
                # action and updates the database; both finish before the lock is released.
                parts = _Background(store.write_parts, _store_rows([batch], now))
                try:
                    app.record(
                        Tag.EVENTS_INGESTED,
                        actor=self.actor,
                        subject=res.name,
                        source=src,
                        channel=self.channel,
                        header_index=first,
                        events=sub.num_rows,
                        rejected_in_chunk=rejected,
                        sha256=res.sha256 or None,
                    )
                    # Under the ingest lock nobody else appends event batches, so whatever
                    # follows ours (our own action entries, others' actions) holds no events:
                    # both marks may move to the tip, and the next sync has nothing to read.
                    found = _apply_db(app, [batch], now, mark=app.audit.size)
                finally:
                    parts.result()
                res.accepted += sub.num_rows
                res.batches.append((first, sub.num_rows))
                self.anomalies.extend(found)
                if found:
                    completeness.raise_alerts(app, found, actor=self.actor)
                    with app.engine.begin() as conn:
                        _set_db_applied(conn, app.audit.size)
                mark = app.audit.size
                if mark > store.applied():
                    store.set_applied(mark)
                rejected = 0


class _Background:
    """Run ``fn(*args)`` on a thread of its own; :meth:`result` waits and re-raises. (A thread
    per batch rather than a shared pool: a pool's threads do not survive ``fork``.)"""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = fn(*args)
            except BaseException as exc:  # re-raised by result()
                self.error = exc

        self.thread = threading.Thread(target=run, name="event-store", daemon=True)
        self.thread.start()

    def result(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _sealed_ranges(app: App, sha: str) -> dict[str, list[tuple[int, int]]]:
    """Line ranges of a file (by SHA-256) already sealed, per source (first 64 characters).

    A batch registers the line range of its chunk (``part`` = ``"first-last"``): every good
    row of its source within that range is sealed. Ranges, unlike chunk numbers, stay
    right when a re-run reads the file in chunks of another size. Keys of the earlier
    format (``sha:chunk:source``) are returned under ``""`` as ``(chunk, source)``.
    """
    out: dict[str, list[tuple[int, int]]] = {}
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(IngestBatch.part, IngestBatch.source).where(IngestBatch.sha256 == sha)
        ).all()
    for part, source in rows:
        if not part:
            continue
        first, sep, last = part.partition("-")
        if sep and first.isdigit() and last.isdigit():
            out.setdefault(source, []).append((int(first), int(last)))
        else:
            _sha, _sep, rest = part.partition(":")
            chunk, _sep, src = rest.partition(":")
            if chunk.isdigit():
                out.setdefault("", []).append((int(chunk), src))  # type: ignore[arg-type]
    return out


def _in_ranges(lines: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Which of ``lines`` fall in any of the closed ``ranges``."""
    done = np.zeros(len(lines), dtype=bool)
    for a, b in ranges:
        done |= (lines >= a) & (lines <= b)
    return done


# -- replay -------------------------------------------------------------------------------
def sync(app: App, *, _locked: bool = False) -> int:
    """Bring the database state and the Parquet store up to the log; returns events replayed.

    Reads the log from the lower of the two ``applied`` marks, finds batch headers, decodes
    their records exactly as ingestion did, and applies each batch to whichever side has not
    seen it. Cheap when nothing is behind (one stat of the log's tip).
    """
    if not _locked:
        with ingest_lock(app):
            return sync(app, _locked=True)
    store = EventStore.of(app)
    store.discard_unapplied()
    size = app.audit.size
    db_w, st_w = _db_applied(app), store.applied()
    start = min(db_w, st_w)
    if start >= size:
        return 0
    replayed = 0
    now = app.clock.now().astimezone(UTC)
    pending_db: list[_Apply] = []
    pending_store: list[_Apply] = []
    buffered = 0
    end_mark = size
    for batch in _batches_in_log(app, start, size):
        if batch is None:
            continue
        if isinstance(batch, int):  # an incomplete batch: stop before its header
            end_mark = batch
            break
        replayed += batch.table.num_rows
        if batch.header_index >= db_w:
            pending_db.append(batch)
        if batch.header_index >= st_w:
            pending_store.append(batch)
        buffered += batch.table.num_rows
        if buffered >= 500_000:
            _flush_replay(app, store, pending_db, pending_store, batch.end, now)
            pending_db, pending_store, buffered = [], [], 0
    _flush_replay(app, store, pending_db, pending_store, end_mark, now)
    with app.engine.begin() as conn:
        _set_db_applied(conn, end_mark)
    return replayed


def _flush_replay(
    app: App, store: EventStore, db: list[_Apply], st: list[_Apply], mark: int, now: datetime
) -> None:
    if db:
        found = _apply_db(app, db, now)
        completeness.raise_alerts(app, found, actor="replay")
    store.write(_store_rows(st, now), mark)


def _batches_in_log(app: App, start: int, stop: int) -> Iterator[_Apply | int | None]:
    """Walk log entries, yielding each complete event batch decoded (or the index of an
    incomplete one). A batch that began before ``start`` is picked up from its header."""
    meta: dict[str, Any] | None = None
    header_index = 0
    records: list[bytes] = []
    for entry in app.audit.records(start, stop):
        if entry.kind != "event":
            continue
        if meta is not None:
            records.append(entry.data)
            if len(records) == meta["count"]:
                yield _decoded(header_index, meta, records)
                meta, records = None, []
            continue
        meta = _parse_header(entry.data)
        if meta is not None:
            header_index = entry.index
            if meta["count"] == 0:
                meta = None
    if meta is not None:
        yield header_index


def _decoded(header_index: int, meta: dict[str, Any], records: list[bytes]) -> _Apply:
    lines = list(range(1, len(records) + 1))
    parsed = decode(meta, records, lines)
    rows = np.asarray(lines)[parsed.rows] if len(parsed.rows) else np.zeros(0)
    checked = validate(parsed.strings, rows)
    idx = parsed.rows[checked.positions]
    leaves = (header_index + 1 + idx).astype(np.int64)
    return _Apply(header_index, header_index + 1 + len(records), meta, checked.table, leaves)


# -- inputs -------------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    """csv, parquet, ndjson, fhir (AuditEvent NDJSON) or bundle (a FHIR Bundle .json)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return _sniff_json(path)
    raise InputError(f"{path.name}: unknown file type (expected .csv, .parquet, .ndjson or .json)")


def _sniff_json(path: Path) -> str:
    with _open(path) as f:
        head = f.read(1 << 16)
    first = head.lstrip().split(b"\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        rt = obj.get("resourceType")
        return "fhir" if rt == "AuditEvent" else "bundle" if rt == "Bundle" else "ndjson"
    if head.lstrip().startswith(b"{") and b'"Bundle"' in head:
        return "bundle"  # a pretty-printed Bundle spans many lines
    return "ndjson"


def _open(path: Path) -> BinaryIO:
    raw = path.open("rb")
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _chunks(path: Path, fmt: str, batch: int) -> Iterator[Chunk]:
    if fmt == "parquet":
        yield from parquet_chunks(path, batch)
        return
    if fmt == "bundle":
        body = path.read_bytes() if not path.name.endswith(".gz") else _open(path).read()
        yield _bundle_chunk(body)
        return
    with path.open("rb") as raw:
        stream: BinaryIO = raw
        if path.name.lower().endswith(".gz"):
            stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        lines = _Lines(stream, counter=raw.tell)
        if fmt == "csv":
            yield from csv_chunks(lines, batch)
        else:
            for ch in line_chunks(lines, batch):
                ch.meta = {"format": "fhir" if fmt == "fhir" else "ndjson"}
                yield ch


def _bundle_chunk(body: bytes) -> Chunk:
    records, lines = bundle_resources(body)
    return Chunk(
        records, lines, meta={"format": "fhir", "container": "Bundle"}, bytes_read=len(body)
    )


def _prepare(chunk: Chunk) -> tuple[pa.Table, np.ndarray, list[RowError]]:
    """Decode and validate a chunk: (good rows, their record indices, all row errors)."""
    parsed = decode(chunk.meta, chunk.records, chunk.lines)
    lines = np.asarray(chunk.lines, dtype=np.int64)
    checked = validate(parsed.strings, lines[parsed.rows] if len(parsed.rows) else lines[:0])
    errors = sorted([*chunk.errors, *parsed.errors, *checked.errors], key=lambda e: e.line)
    return checked.table, parsed.rows[checked.positions], errors


_Ready = tuple[Chunk, pa.Table, np.ndarray, list[RowError]]


def _prepared(chunks: Iterable[Chunk]) -> Generator[_Ready, None, None]:
    """Each chunk with its decoded, validated rows, in order.

    For an input produced lazily (a file read chunk by chunk) the next chunk is framed,
    decoded and validated on a helper thread while the caller seals this one: Arrow and
    NumPy release the GIL, so parsing runs on the second core beside the log's hashing. At
    most one finished chunk waits, which bounds memory; an error in the helper is raised
    here, in order, after the chunks before it.
    """
    if isinstance(chunks, list | tuple):
        for chunk in chunks:
            yield (chunk, *_prepare(chunk))
        return
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", (chunk, *_prepare(chunk)))):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="ingest-parse", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def ingest_chunks(
    app: App,
    chunks: Iterable[Chunk],
    result: FileResult,
    *,
    channel: str,
    actor: str,
    strict: bool = False,
    force: bool = False,
    extra: dict[str, Any] | None = None,
    total: int = 0,
    progress: Progress | None = None,
    reread: Callable[[], Iterable[Chunk]] | None = None,
    digest: Callable[[], str] | None = None,
) -> list[completeness.Anomaly]:
    """The common path of every input; see the module docstring for the guarantees.

    ``digest``, when given, returns the input's SHA-256 (computed while the input is being
    parsed); it is awaited before anything is sealed, since every batch header carries it.
    """
    sealer = Sealer(app, result, channel=channel, actor=actor, force=force, extra=extra)

    def seal(chunk: Chunk, table: pa.Table, idx: np.ndarray, no: int, rejected: int) -> None:
        nonlocal digest
        if digest is not None:
            result.sha256, digest = digest(), None
        sealer.seal(chunk, table, idx, no, rejected)

    kept: list[tuple[Chunk, pa.Table, np.ndarray, int]] = []
    kept_ok = True
    ready = _prepared(chunks)
    try:
        for no, (chunk, table, idx, errors) in enumerate(ready):
            result.records += len(chunk.records) + len(chunk.errors)
            result.bad(errors)
            if strict:
                if kept_ok and sum(len(k[0].records) for k in kept) < 2_000_000:
                    kept.append((chunk, table, idx, len(errors)))
                else:
                    kept_ok, kept = False, []
            else:
                seal(chunk, table, idx, no, len(errors))
            if progress is not None:
                progress(chunk.bytes_read or total, total)
    finally:
        ready.close()  # stops the parsing thread now, not when the traceback is collected
    if digest is not None:
        result.sha256, digest = digest(), None
    if result.records == 0:
        raise InputError(f"{result.name}: no events")
    if strict:
        if result.rejected:
            return []
        if not kept_ok:
            if reread is None:
                raise UsageError("input too large to hold for --strict and cannot be re-read")
            kept = []
            again = _prepared(reread())
            try:
                for no, (chunk, table, idx, _errors) in enumerate(again):
                    seal(chunk, table, idx, no, 0)
            finally:
                again.close()
        else:
            for no, (chunk, table, idx, _) in enumerate(kept):
                seal(chunk, table, idx, no, 0)
    result.committed = True
    return sealer.anomalies


class _FileDigest:
    """SHA-256 of a file computed on a helper thread (hashlib releases the GIL on large
    buffers), so the separate pass over the file overlaps with parsing it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = ""
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, name="ingest-sha256", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.value = _sha256(self.path)
        except OSError as exc:
            self.error = exc

    def __call__(self) -> str:
        self.thread.join()
        if self.error is not None:
            raise InputError(f"{self.path.name}: cannot read ({self.error.strerror})")
        return self.value


def ingest_file(
    app: App,
    path: Path,
    *,
    strict: bool = False,
    force: bool = False,
    actor: str = "cli",
    progress: Progress | None = None,
    batch_events: int | None = None,
) -> tuple[FileResult, list[completeness.Anomaly]]:
    """Ingest one file (CSV, Parquet, NDJSON, FHIR AuditEvent NDJSON or a FHIR Bundle)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = detect_format(path)
    batch = batch_events or int(getattr(app.settings, "ingest_batch_events", DEFAULT_BATCH_EVENTS))
    result = FileResult(name=path.name, format=fmt, strict=strict)
    total = path.stat().st_size
    digest = _FileDigest(path)
    try:
        found = ingest_chunks(
            app,
            _chunks(path, fmt, batch),
            result,
            channel="file",
            actor=actor,
            strict=strict,
            force=force,
            total=total,
            progress=progress,
            reread=lambda: _chunks(path, fmt, batch),
            digest=digest,
        )
    except InputError as exc:
        if str(exc).startswith(path.name):
            raise
        raise InputError(f"{path.name}: {exc}") from exc
    finally:
        digest.thread.join()
    return result, found


def ingest_files(
    app: App,
    paths: Iterable[Path | str],
    progress: Progress | None = None,
    *,
    strict: bool = False,
    force: bool = False,
    actor: str = "cli",
    batch_events: int | None = None,
) -> IngestResult:
    """Ingest several files in order (the demo and ``phiguard ingest`` call this).

    Every file is checked to exist and to have a known type before any is read, so a typo
    in the last name does not leave the first files half-done. ``progress(done, total)``
    counts bytes over all files.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise UsageError("no file given")
    for p in files:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        detect_format(p)
    sizes = [p.stat().st_size for p in files]
    grand = sum(sizes) or 1
    out = IngestResult()
    done = 0
    for p, size in zip(files, sizes, strict=True):
        base = done

        def step(d: int, _t: int, base: int = base, size: int = size) -> None:
            if progress is not None:
                progress(base + min(d, size), grand)

        res, found = ingest_file(
            app,
            p,
            strict=strict,
            force=force,
            actor=actor,
            progress=step,
            batch_events=batch_events,
        )
        out.files.append(res)
        out.anomalies.extend(found)
        done += size
    if progress is not None:
        progress(grand, grand)
    completeness.check_heartbeats(app)
    return out


NDJSON_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/fhir+ndjson",
    "application/jsonlines",
}
BUNDLE_TYPES = {"application/fhir+json", "application/json"}
CSV_TYPES = {"text/csv"}


def ingest_body(
    app: App,
    body: bytes,
    content_type: str,
    *,
    strict: bool = False,
    actor: str = "http",
    peer: str | None = None,
) -> IngestResult:
    """The ``POST /v1/events`` handler, without HTTP: NDJSON rows, FHIR AuditEvent NDJSON,
    a FHIR Bundle of AuditEvents, or CSV. Returns once accepted events are durable.

    Raises :class:`InputError` (HTTP 422) for an unreadable body and :class:`UsageError`
    (HTTP 400/415) for an unsupported content type.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if len(body) > MAX_BODY_BYTES:
        raise InputError(
            f"the body is larger than {MAX_BODY_BYTES >> 20} MiB; send smaller batches"
        )
    sha = hashlib.sha256(body).hexdigest()
    import io

    if ctype in NDJSON_TYPES:
        lines = _Lines(io.BytesIO(body))
        chunks = list(line_chunks(lines, 1 << 62))
        fmt = "ndjson"
        for ch in chunks:
            first = ch.records[0] if ch.records else b""
            fmt = "fhir" if b'"resourceType"' in first and b'"AuditEvent"' in first else "ndjson"
            ch.meta = {"format": fmt}
    elif ctype in BUNDLE_TYPES:
        chunks, fmt = [_bundle_chunk(body)], "bundle"
    elif ctype in CSV_TYPES:
        chunks, fmt = list(csv_chunks(_Lines(io.BytesIO(body)), 1 << 62)), "csv"
    else:
        raise UsageError(
            f"unsupported content type {ctype!r}; send application/x-ndjson, "
            "application/fhir+json (a Bundle) or text/csv"
        )
    result = FileResult(name="http", format=fmt, sha256="", strict=strict)
    extra = {"peer": peer, "body_sha256": sha} if peer else {"body_sha256": sha}
    found = ingest_chunks(
        app, chunks, result, channel="http", actor=actor, strict=strict, extra=extra
    )
    return IngestResult(files=[result], anomalies=found)


__all__ = [
    "BATCH_MAGIC",
    "FileResult",
    "IngestResult",
    "detect_format",
    "ingest_body",
    "ingest_chunks",
    "ingest_file",
    "ingest_files",
    "ingest_lock",
    "sync",
]
