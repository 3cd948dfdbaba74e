"""Reference-data import: patients, accounts, vendors, grants, encounters (spec §1.1-§1.5).

How an import runs:

1. The file is read row by row (:mod:`phiguard.storage.tabular`). Each row is converted by
   its kind's converter into database values: identifiers and names are encrypted into one
   AES-GCM token, lookup keys become keyed blind indexes, and ``row_mac`` (an HMAC of the
   row's known columns) fingerprints the row. A patients CSV takes the bulk path instead
   (:mod:`phiguard.storage.bulk`): blocks checked column-wise in forked workers, with the
   same values, reasons and line numbers.
2. A row that fails any check is *bad*: it is counted and reported with its line number and
   a reason that never repeats the value (the value may be an HKID).
3. Good rows are written in batches inside ONE transaction. A row whose key exists is updated
   only if its ``row_mac`` changed, which makes re-importing a file idempotent and cheap.
4. At the end the transaction commits — unless ``strict`` is set and any row was bad, in
   which case nothing at all is written. The run itself is recorded in ``import_runs`` and
   in the audit log.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.abc
import importlib.util
import itertools
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from phiguard.app import App
from phiguard.errors import InputError, UsageError
from phiguard.storage import bulk, converters
from phiguard.storage.models import ImportRun
from phiguard.storage.tabular import BadRow, CsvLayout, csv_layout, open_tabular
from phiguard.storage.types import UTCDateTime

KINDS = ("patients", "accounts", "vendors", "grants", "encounters")
MAX_REPORTED_ERRORS = 1000
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    kind: str
    file: str
    strict: bool
    rows_total: int = 0
    rows_bad: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    committed: bool = False
    errors: list[RowError] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rows_ok(self) -> int:
        return self.rows_total - self.rows_bad

    def bad(self, line: int, reason: str) -> None:
        self.rows_bad += 1
        self.reasons[reason] += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "strict": self.strict,
            "rows": self.rows_total,
            "ok": self.rows_ok,
            "bad": self.rows_bad,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "committed": self.committed,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Writer:
    """Writes converted rows of one kind in batches on one connection (one transaction)."""

    def __init__(
        self,
        conn: Connection,
        spec: converters.KindSpec,
        report: ImportReport,
        columns: tuple[str, ...] | None = None,
    ) -> None:
        self.conn = conn
        # rows are dicts, or tuples in ``columns`` order (the bulk path)
        self.columns = columns
        self.index = {c: i for i, c in enumerate(columns or ())}
        self.spec = spec
        self.table: Table = spec.model.__table__  # type: ignore[attr-defined]
        self.report = report
        self.key = self.table.c[spec.key]
        self.column_names = frozenset(self.table.c.keys())
        self.empty_at_start = conn.execute(select(self.key).limit(1)).first() is None
        # Loading into an empty table: drop its secondary indexes and build them once at the
        # end (sorted bulk build) instead of maintaining five B-trees row by row. Uniqueness
        # within the file is checked in memory meanwhile; the rebuilt unique indexes re-check.
        self.deferred = list(self.table.indexes) if self.empty_at_start else []
        for idx in self.deferred:
            idx.drop(conn)
        self.raw_insert = not any(
            isinstance(c.type, UTCDateTime) for c in self.table.c
        ) and conn.dialect.paramstyle in {"qmark", "format", "pyformat"}

    def _existing(self, column: str, values: list[Any]) -> dict[Any, Any]:
        """Map value → (key, row_mac) for rows already in the table (chunked IN lists)."""
        found: dict[Any, Any] = {}
        col = self.table.c[column]
        mac = self.table.c.get("row_mac", self.key)
        for i in range(0, len(values), 5000):
            chunk = values[i : i + 5000]
            for row in self.conn.execute(select(col, self.key, mac).where(col.in_(chunk))):
                found[row[0]] = (row[1], row[2])
        return found

    def _get(self, v: Any, column: str) -> Any:
        if self.columns is None:
            return v.get(column)
        i = self.index.get(column)
        return None if i is None else v[i]

    def _insert_tuples(self, rows: list[tuple[Any, ...]]) -> None:
        assert self.columns is not None
        names = ", ".join(self.columns)
        if self.conn.dialect.name == "postgresql":
            # COPY: one stream instead of a statement per row, inside the same transaction
            cur = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cur.copy(f"COPY {self.table.name} ({names}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            return
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * len(self.columns))
        self.conn.exec_driver_sql(f"INSERT INTO {self.table.name} ({names}) VALUES ({marks})", rows)

    def _insert(self, rows: list[Any]) -> None:
        if self.columns is not None:
            self._insert_tuples(rows)
            return
        if not self.raw_insert:
            self.conn.execute(self.table.insert(), rows)
            return
        # Bulk path: straight to the driver's executemany with tuples. SQLAlchemy's per-value
        # type processing costs more than the whole encryption step at PMI scale; these
        # tables hold only str/int/bool/bytes/date, which both drivers adapt natively.
        names = list(rows[0])
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO {self.table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join([mark] * len(names))})"
        )
        self.conn.exec_driver_sql(sql, [tuple(r[k] for k in names) for r in rows])

    def finish(self) -> None:
        if self.deferred and self.conn.dialect.name == "sqlite":
            # A small page cache while the indexes are built: SQLite's sorter then sorts in
            # runs that its helper thread (PRAGMA threads) sorts and merges beside the main
            # thread, and the load's dirty pages go to the WAL now rather than all at commit.
            # 7.5 M patients: 106 s instead of 146 s (docs/bench/import.md).
            self.conn.exec_driver_sql("PRAGMA threads=2")
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{INDEX_CACHE_KIB}")
        for idx in self.deferred:
            idx.create(self.conn)
        self.deferred = []

    def write(self, batch: list[tuple[int, Any]]) -> None:
        if not batch:
            return
        spec, rep, get = self.spec, self.report, self._get
        existing: dict[Any, Any] = {}
        if not self.empty_at_start:
            existing = self._existing(spec.key, [get(v, spec.key) for _, v in batch])
            # a unique blind index (HKID, hospital number) owned by another key is a conflict
            for ucol in spec.unique:
                vals = [x for _, v in batch if (x := get(v, ucol)) is not None]
                owners = self._existing(ucol, vals) if vals else {}
                kept = []
                for line, v in batch:
                    owner = owners.get(get(v, ucol))
                    if owner is not None and owner[0] != get(v, spec.key):
                        rep.bad(line, f"{spec.unique[ucol]} already belongs to another {spec.noun}")
                    else:
                        kept.append((line, v))
                batch = kept
        inserts, updates = [], []
        columns = self.column_names
        has_mac = "row_mac" in columns
        for _, v in batch:
            if self.columns is not None:
                row = v
            else:
                row = v if v.keys() <= columns else {k: x for k, x in v.items() if k in columns}
            old = existing.get(get(v, spec.key)) if existing else None
            if old is None:
                inserts.append(row)
            elif has_mac and old[1] != get(v, "row_mac"):
                items = zip(self.columns, v, strict=True) if self.columns else row.items()
                updates.append({f"b_{k}": val for k, val in items})
            else:
                rep.unchanged += 1
        if inserts:
            self._insert(inserts)
            rep.inserted += len(inserts)
        if updates:
            cols = [c for c in updates[0] if c[2:] not in spec.preserve and c[2:] != spec.key]
            stmt = (
                update(self.table)
                .where(self.key == bindparam(f"b_{spec.key}"))
                .values({c[2:]: bindparam(c) for c in cols})
            )
            self.conn.execute(stmt, updates)
            rep.updated += len(updates)
        for extra in spec.after_write:
            extra(self.conn, [v for _, v in batch])

    def cache(self, kib: int | None) -> int | None:
        """Set SQLite's page cache of this connection (KiB); returns the previous setting."""
        if self.conn.dialect.name != "sqlite":
            return None
        before = self.conn.exec_driver_sql("PRAGMA cache_size").scalar()
        if kib is not None:
            self.conn.exec_driver_sql(f"PRAGMA cache_size={int(kib)}")
        return None if before is None else int(before)


def import_file(
    app: App,
    kind: str,
    path: Path,
    *,
    strict: bool = False,
    actor: str = "cli",
    progress: Progress | None = None,
) -> ImportReport:
    """Import one reference-data file; see the module docstring for the guarantees."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    spec = converters.spec_for(kind, app)
    tab = open_tabular(path)
    layout = None
    if kind == "patients" and tab.format == "csv":
        layout = csv_layout(path, required=spec.required)
    digest = _FileDigest(path)
    started = app.clock.now()
    report = ImportReport(kind=kind, file=path.name, strict=strict)
    try:
        _load(app, spec, tab, layout, report, started, digest, progress, staged=True)
    except _Conflict:
        # the file repeats a key or a unique identifier: the staged load cannot say which
        # line, so nothing of it was kept; the row-by-row load reports every duplicate
        report = ImportReport(kind=kind, file=path.name, strict=strict)
        _load(app, spec, open_tabular(path), layout, report, started, digest, progress)
    if progress is not None:
        progress(tab.size, tab.size)
    app.record(
        spec.tag,
        actor=actor,
        subject=path.name,
        rows=report.rows_total,
        bad=report.rows_bad,
        inserted=report.inserted,
        updated=report.updated,
        committed=report.committed,
        sha256=digest(),
    )
    return report


class _FileDigest:
    """The file's SHA-256, computed on first use, or handed over by a load that read the
    whole file anyway (the staged load hashes while it cuts blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: str | None = None

    def __call__(self) -> str:
        if self.value is None:
            self.value = _sha256(self.path)
        return self.value


class _Conflict(Exception):
    """A staged load met a duplicate key or unique blind index (rolled back)."""


def _load(
    app: App,
    spec: converters.KindSpec,
    tab: Any,
    layout: CsvLayout | None,
    report: ImportReport,
    started: Any,
    digest: _FileDigest,
    progress: Progress | None,
    *,
    staged: bool = False,
) -> None:
    """Convert and write the whole file in one transaction (see the module docstring)."""
    path: Path = tab.path
    batch_rows = app.settings.import_batch_rows
    seen_keys: dict[Any, int] = {}
    seen_unique: dict[str, dict[bytes, int]] = {u: {} for u in spec.unique}
    columns = bulk.PATIENT_COLUMNS if layout is not None else None
    pos = {c: i for i, c in enumerate(columns or ())}
    unique_at = [(pos[u], spec.unique[u], seen_unique[u]) for u in spec.unique if u in pos]
    parallel = tab.size >= PARALLEL_BYTES

    # millions of short-lived tuples would trigger full collections over the growing
    # duplicate maps again and again; nothing here forms reference cycles
    gc_was_enabled = gc.isenabled()
    gc.disable()
    stage = None
    with app.engine.connect() as conn:
        journal = staged and layout is not None and _rollback_journal(conn, spec)
        tx = conn.begin()
        if conn.dialect.name == "sqlite":
            # Python's sqlite3 opens a transaction only before DML, so the index drops below
            # would commit on their own: a rolled-back import (--strict) lost the PMI's
            # unique indexes. BEGIN now makes the DDL part of the import's transaction.
            conn.exec_driver_sql("BEGIN")
        cache_before = None
        try:
            writer = _Writer(conn, spec, report, columns)
            # the page cache is set for the load (and for the index builds) and restored after
            cache_before = writer.cache(-BULK_CACHE_KIB if columns is not None else None)
            staged = staged and layout is not None and _can_stage(conn, writer)
            batch: list[tuple[int, Any]] = []
            if staged:
                assert layout is not None
                stage = _Stage(app.home.root)
                _load_staged(
                    app, conn, spec, tab, layout, parallel, progress, report, stage, digest
                )
                report.inserted = report.rows_ok
            elif layout is not None:
                for lines, values in _bulk_blocks(app, spec, tab, layout, parallel, progress):
                    _accept_block(spec, lines, values, report, seen_keys, unique_at, batch)
                    if len(batch) >= batch_rows:
                        writer.write(batch)
                        batch = []
            n = 0
            rows = () if layout is not None else _converted(spec, tab, parallel=parallel)
            for line, row in rows:
                n += 1
                report.rows_total += 1
                if isinstance(row, str):
                    report.bad(line, row)
                    continue
                key = row[spec.key]
                if key in seen_keys:
                    report.bad(line, f"duplicate {spec.key} (first seen on line {seen_keys[key]})")
                    continue
                dup = _duplicate_unique(spec, row, seen_unique, line)
                if dup:
                    report.bad(line, dup)
                    continue
                seen_keys[key] = line
                batch.append((line, row))
                if len(batch) >= batch_rows:
                    writer.write(batch)
                    batch = []
                if progress is not None and n % 4096 == 0:
                    progress(tab.bytes_read, tab.size)
            writer.write(batch)
            try:
                writer.finish()
            except IntegrityError as exc:
                if staged:
                    raise _Conflict from exc
                raise
            if report.rows_total == 0:
                raise InputError(f"{path.name}: no data rows")
            if report.strict and report.rows_bad:
                tx.rollback()
            else:
                conn.execute(
                    insert(ImportRun),
                    [_run_row(report, path, started, app.clock.now(), digest())],
                )
                tx.commit()
                report.committed = True
        except BaseException:
            if tx.is_active:
                tx.rollback()
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
            if cache_before is not None and not conn.closed:
                conn.exec_driver_sql(f"PRAGMA cache_size={cache_before}")
            if stage is not None:
                stage.close(conn)
            if journal:
                _restore_wal(conn)


def _rollback_journal(conn: Connection, spec: converters.KindSpec) -> bool:
    """A first load into an empty SQLite PMI runs with a rollback journal instead of the
    WAL: SQLite journals only the pages that existed before the transaction (the schema,
    the empty table's and indexes' roots), and writes the new table and index pages once,
    straight into the database file, where the WAL would have taken every page twice (into
    the WAL, then the checkpoint's copy). Atomic and durable the same way (``synchronous=
    FULL``); a killed import leaves a hot journal that the next connection rolls back.
    Switching needs the database to itself: while any other connection has it open the
    switch fails at once (no waiting) and the load runs in the WAL as before. Returns
    whether it switched; :func:`_restore_wal` switches back."""
    if conn.dialect.name != "sqlite":
        return False
    table = spec.model.__table__.name  # type: ignore[attr-defined]
    empty = conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is None
    mode = None
    if empty:
        timeout = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            mode = conn.exec_driver_sql("PRAGMA main.journal_mode=DELETE").scalar()
        except OperationalError:  # another connection has the database open
            mode = None
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={timeout}")
    conn.commit()  # ends SQLAlchemy's implicit transaction (SQLite opened none)
    return mode == "delete"


def _restore_wal(conn: Connection) -> None:
    """Back to the WAL after a first load (committed or rolled back). Should this fail
    (a reader holds the database past the busy timeout), the next connection switches it:
    every connection sets ``journal_mode=WAL`` when it opens (storage.base)."""
    if conn.closed:
        return
    with contextlib.suppress(DBAPIError):
        conn.exec_driver_sql("PRAGMA main.journal_mode=WAL")
        conn.commit()


def _can_stage(conn: Connection, writer: _Writer) -> bool:
    """The staged load applies to a first load of a SQLite PMI (no rows to compare with)."""
    if conn.dialect.name != "sqlite" or not writer.empty_at_start:
        return False
    # looked up, not imported: the workers import it (importing costs time, see bulk.py)
    return importlib.util.find_spec("adbc_driver_sqlite") is not None


class _Stage:
    """Staging files of a bulk load, in a private folder of the home: each segment of the
    file (a run of blocks) is converted by one worker into its own SQLite file, which this
    process attaches and copies in by ``INSERT … SELECT`` inside the import's transaction
    while the workers convert the next segments. Deleted at the end; they hold tokens and
    blind indexes only."""

    def __init__(self, home: Path) -> None:
        root = home / "tmp"
        root.mkdir(mode=0o700, exist_ok=True)
        # an import killed mid-way leaves its folder behind; one untouched for a day is
        # nobody's (a running import writes or reads its own folder all the time)
        stale = time.time() - STALE_STAGING_SECONDS
        for old in root.glob("import-*"):
            if old.is_dir() and old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix="import-", dir=root))
        self.attached: list[str] = []

    def insert(self, conn: Connection, file: str) -> None:
        names = ", ".join(bulk.PATIENT_COLUMNS)
        alias = f"stage{len(self.attached)}"
        # attached for the rest of the transaction: SQLite detaches only outside one
        conn.exec_driver_sql(f"ATTACH DATABASE ? AS {alias}", (file,))
        self.attached.append(alias)
        try:
            conn.exec_driver_sql(
                f"INSERT INTO patients ({names}) SELECT {names} FROM {alias}.{bulk.STAGE_TABLE}"
            )
        except IntegrityError as exc:  # a patient_id twice in the file
            raise _Conflict from exc

    def close(self, conn: Connection) -> None:
        """Detach (after the transaction ended) and delete the staging files."""
        for alias in self.attached:
            if not conn.closed:
                with contextlib.suppress(DBAPIError):
                    conn.exec_driver_sql(f"DETACH DATABASE {alias}")
        self.attached = []
        shutil.rmtree(self.folder, ignore_errors=True)


MAX_SEGMENTS = 8  # SQLite attaches at most 10 databases to a connection
STALE_STAGING_SECONDS = 24 * 3600


def _load_staged(
    app: App,
    conn: Connection,
    spec: converters.KindSpec,
    tab: Any,
    layout: CsvLayout,
    parallel: bool,
    progress: Progress | None,
    report: ImportReport,
    stage: _Stage,
    digest: _FileDigest,
) -> None:
    """Segments converted (by forked workers for a large file) straight into staging files
    and copied in as each completes, in file order; bad rows come back with their reasons.
    Under --strict the copying stops at the first bad row (the import will roll back)."""
    global _done_bytes
    conv = bulk.PatientBlocks(app, tab.path, layout, spec.convert)
    hasher = hashlib.sha256()
    blocks = bulk.blocks(tab.path, layout, hasher=hasher)
    data_bytes = max(tab.size - layout.data_offset, 1)
    n = min(MAX_SEGMENTS, -(-data_bytes // bulk.BLOCK_BYTES)) if parallel else 1
    # segments are formed while the file is cut, so the workers start on the first one
    # at once instead of after the whole file has been read and hashed
    segments = _segments(blocks, layout.data_offset, data_bytes, n)
    _done_bytes = mp.get_context("fork").Value("q", 0) if parallel else None

    def tick() -> None:
        if progress is not None and _done_bytes is not None:
            progress(_done_bytes.value, tab.size)

    def on_block(block: bulk.Block) -> None:
        if progress is not None:
            progress(block.offset + block.length, tab.size)

    try:
        work = segments
        # workers count into the shared counter (a module function: it pickles by name)
        count = _count_block if parallel else on_block
        for result in _ordered(
            conv, "stage_segment", work, parallel, stage.folder, count, wait=tick
        ):
            report.rows_total += result.rows
            for line, reason in result.bad:
                report.bad(line, reason)
            if result.file is not None and not (report.strict and report.rows_bad):
                stage.insert(conn, result.file)
        digest.value = hasher.hexdigest()  # every block was cut, so all the file was hashed
    finally:
        _done_bytes = None


def _segments(
    blocks: Iterable[bulk.Block], start: int, total: int, n: int
) -> Iterator[tuple[int, list[bulk.Block]]]:
    """Numbered runs of consecutive blocks of about ``total / n`` bytes each (at most
    ``n``), each yielded as soon as its last block is cut."""
    run: list[bulk.Block] = []
    number = 0
    for block in blocks:
        run.append(block)
        if number < n - 1 and block.offset + block.length - start >= (number + 1) * total / n:
            yield number, run
            number, run = number + 1, []
    if run:
        yield number, run


_done_bytes: Any = None  # bytes converted so far, shared with forked workers


def _count_block(block: bulk.Block) -> None:
    if _done_bytes is not None:
        with _done_bytes.get_lock():
            _done_bytes.value += block.length


def _ordered(
    conv: bulk.PatientBlocks,
    method: str,
    items: Iterable[Any],
    parallel: bool,
    *args: Any,
    wait: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """``conv.<method>(item, *args)`` for every item, in order. For a large file the items
    go to forked workers that read their own byte ranges; the keys stay in the converter
    the workers inherit and never cross a pipe. ``wait`` is called while a result is due."""
    global _worker_blocks
    workers = min(os.cpu_count() or 1, 4)
    if not parallel or workers < 2 or "fork" not in mp.get_all_start_methods():
        for item in items:
            yield getattr(conv, method)(item, *args)
        return
    _worker_blocks = conv

    def result(fut: Future[Any]) -> Any:
        while wait is not None:
            try:
                return fut.result(timeout=0.5)
            except FutureTimeout:
                wait()
        return fut.result()

    try:
        context = mp.get_context("fork")
        with ProcessPoolExecutor(workers, context, initializer=_without_pandas) as pool:
            pending: deque[Future[Any]] = deque()
            for item in items:
                pending.append(pool.submit(_on_item, method, item, *args))
                if len(pending) > 2 * workers:
                    yield result(pending.popleft())
            while pending:
                yield result(pending.popleft())
    finally:
        _worker_blocks = None  # the converter holds keyed state: keep no reference around


def _without_pandas() -> None:
    """A conversion worker's start. pyarrow imports pandas the first time it makes an array,
    only to tell whether it was handed a pandas object, which a worker never is: 0.25 s of
    every worker's first block (a tenth of a 200,000-patient import). Unless the importing
    process had it already, the worker finds no pandas, and pyarrow goes on as it does
    where pandas is not installed."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError("pandas is not used by an import worker", name=name)
        return None


def _on_item(method: str, item: Any, *args: Any) -> Any:
    assert _worker_blocks is not None
    return getattr(_worker_blocks, method)(item, *args)


BULK_CACHE_KIB = 256 << 10  # SQLite page cache while bulk-loading (restored afterwards)
INDEX_CACHE_KIB = 4 << 10  # … and while building the deferred indexes (see _Writer.finish)
PARALLEL_BYTES = 8 << 20  # below this a process pool costs more than it saves
CHUNK_ROWS = 4096
_worker_convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _convert_chunk(chunk: list[tuple[int, Any]]) -> list[tuple[int, dict[str, Any] | str]]:
    assert _worker_convert is not None
    out: list[tuple[int, dict[str, Any] | str]] = []
    for line, item in chunk:
        if isinstance(item, BadRow):
            out.append((item.line, item.reason))
            continue
        try:
            out.append((line, _worker_convert(item)))
        except ValueError as exc:
            out.append((line, str(exc)))
    return out


def _chunks(tab: Any, required: tuple[str, ...]) -> Iterator[list[tuple[int, Any]]]:
    chunk: list[tuple[int, Any]] = []
    for item in tab.rows(required=required):
        chunk.append(item)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _converted(
    spec: converters.KindSpec, tab: Any, *, parallel: bool
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Converted rows in file order: a values dict, or a reason string for a bad row.

    Conversion (validation, AES-GCM, HMACs) is CPU-bound Python, so large files are spread
    over a pool of forked workers that inherit the converter and its keys in memory (the keys
    never cross a pipe or touch disk); reading and database writes stay in this process.
    """
    global _worker_convert
    _worker_convert = spec.convert
    workers = min(os.cpu_count() or 1, 4)
    if not parallel or workers < 2 or "fork" not in mp.get_all_start_methods():
        for chunk in _chunks(tab, spec.required):
            yield from _convert_chunk(chunk)
        return
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        pending: deque[Future[list[tuple[int, dict[str, Any] | str]]]] = deque()
        for chunk in _chunks(tab, spec.required):
            pending.append(pool.submit(_convert_chunk, chunk))
            if len(pending) > 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _bulk_blocks(
    app: App,
    spec: converters.KindSpec,
    tab: Any,
    layout: CsvLayout,
    parallel: bool,
    progress: Progress | None,
) -> Iterator[tuple[Iterable[int], list[Any]]]:
    """Blocks of a plain CSV file through :mod:`phiguard.storage.bulk`, in file order, as
    (line numbers, values or reasons)."""
    conv = bulk.PatientBlocks(app, tab.path, layout, spec.convert)
    blocks = list(bulk.blocks(tab.path, layout))
    for block, (first, lines, values) in zip(
        blocks, _ordered(conv, "__call__", blocks, parallel), strict=True
    ):
        if progress is not None:
            progress(block.offset + block.length, tab.size)
        yield (itertools.count(first) if lines is None else lines), values


def _accept_block(
    spec: converters.KindSpec,
    lines: Iterable[int],
    values: list[Any],
    report: ImportReport,
    seen_keys: dict[Any, int],
    unique_at: list[tuple[int, str, dict[bytes, int]]],
    batch: list[tuple[int, Any]],
) -> None:
    """Count a converted block and move its good rows to ``batch``: a reason string is a
    bad row; a key or unique blind index seen before is a duplicate of that line."""
    report.rows_total += len(values)
    key_name, append = spec.key, batch.append
    for line, v in zip(lines, values):  # noqa: B905 - lines may be an endless count
        if v.__class__ is str:
            report.bad(line, v)
            continue
        key = v[0]  # the bulk tuples start with the key (bulk.PATIENT_COLUMNS)
        first = seen_keys.get(key)
        if first is not None:
            report.bad(line, f"duplicate {key_name} (first seen on line {first})")
            continue
        dup = None
        for i, noun, seen in unique_at:
            u = v[i]
            if u is not None and (first := seen.get(u)) is not None:
                dup = f"duplicate {noun} (first seen on line {first})"
                break
        if dup is not None:
            report.bad(line, dup)
            continue
        for i, _, seen in unique_at:
            u = v[i]
            if u is not None:
                seen[u] = line
        seen_keys[key] = line
        append((line, v))


_worker_blocks: bulk.PatientBlocks | None = None


def _duplicate_unique(
    spec: converters.KindSpec, values: dict[str, Any], seen: dict[str, dict[bytes, int]], line: int
) -> str | None:
    for ucol, noun in spec.unique.items():
        v = values.get(ucol)
        if v is None:
            continue
        first = seen[ucol].get(v)
        if first is not None:
            return f"duplicate {noun} (first seen on line {first})"
    for ucol in spec.unique:
        v = values.get(ucol)
        if v is not None:
            seen[ucol][v] = line
    return None


def _run_row(
    report: ImportReport, path: Path, started: Any, finished: Any, sha256: str
) -> dict[str, Any]:
    return {
        "kind": report.kind,
        "file_name": path.name[:255],
        "file_sha256": sha256,
        "started": started,
        "finished": finished,
        "rows_total": report.rows_total,
        "rows_bad": report.rows_bad,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "strict": report.strict,
        "committed": True,
    }


def import_many(app: App, items: Iterable[tuple[str, Path]], **kw: Any) -> list[ImportReport]:
    return [import_file(app, kind, path, **kw) for kind, path in items]


__all__ = ["KINDS", "ImportReport", "RowError", "import_file", "import_many"]
