"""The access-event store: Parquet files that detection and attribution read with DuckDB.

Layout (``docs/dev/contracts.md``)::

    HOME/events/
      events/date=YYYY-MM-DD/part-<first leaf index, 14 digits>.parquet
      store.json      {"applied": N}: every event entry of the audit log below N is here
      .lock           the ingest lock (see phiguard.audit.ingest)

One row per event: the spec §1.6 columns, ``leaf_index`` (its entry in the audit log) and
``ingested_at``. ``date`` is the Hong Kong calendar date of ``ts``. The store holds only
pseudonymous ids (patient_id, account_id), never a name or an HKID.

**The audit log is the source of truth; this store is derived from it.** A part file is
written (temp name, fsync, rename, fsync of the folder) *before* ``store.json`` moves past
it, and a part is named after the first log entry it holds. So after any crash, parts at or
beyond ``applied`` are leftovers of an interrupted write: :meth:`EventStore.discard_unapplied`
deletes them and the ingest layer replays those entries from the log. Deleting the whole
folder is safe too — the next open rebuilds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phiguard.audit.events import STORE_SCHEMA

if TYPE_CHECKING:
    import duckdb

    from phiguard.app import App

DAY_US = 86_400_000_000
HK_OFFSET_US = 8 * 3_600_000_000
STATE_FILE = "store.json"
#: Columns with few distinct values, dictionary-encoded in the parts. The others (ids,
#: addresses, times) are nearly unique: dictionary encoding them costs CPU and makes the
#: file larger (measured on 200k generated events: 0.33 vs 0.54 us per row, 1.2 vs 2.3 MB).
DICTIONARY_COLUMNS = ["source", "account_id", "action", "fields", "device_id", "purpose", "outcome"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass
class EventStore:
    """The Parquet folder of one home. Cheap to construct; holds no open files."""

    root: Path  # HOME/events

    @classmethod
    def of(cls, app: App) -> EventStore:
        return cls(app.home.events)

    @classmethod
    def open(cls, app: App) -> EventStore:
        """The store of ``app``, first brought up to date with the audit log."""
        from phiguard.audit.ingest import sync

        sync(app)
        return cls.of(app)

    # -- paths and state -------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.root / "events"

    @property
    def glob(self) -> str:
        return str(self.folder / "date=*" / "*.parquet")

    def parts(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("date=*/part-*.parquet"))

    def applied(self) -> int:
        """Log entries below this index are all in the store (0 when there is no state)."""
        try:
            return int(json.loads((self.root / STATE_FILE).read_text())["applied"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def set_applied(self, value: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_durable(self.root / STATE_FILE, json.dumps({"applied": value}).encode())

    @staticmethod
    def first_index(part: Path) -> int | None:
        """The first log index a part holds (its name: ``part-<index>.parquet``), or None."""
        try:
            return int(part.stem.split("-")[1])
        except (IndexError, ValueError):
            return None

    def discard_unapplied(self) -> int:
        """Delete parts left by a write that never reached ``store.json``; returns how many."""
        applied = self.applied()
        removed = 0
        for part in self.parts():
            if part.name.endswith(".tmp"):
                continue
            first = self.first_index(part)
            if first is None:
                continue
            if first >= applied:
                part.unlink()
                removed += 1
        for tmp in self.folder.glob("date=*/*.tmp") if self.folder.is_dir() else []:
            tmp.unlink()
        return removed

    def clear(self) -> None:
        """Forget everything (the next sync rebuilds from the log)."""
        for part in self.parts():
            part.unlink()
        self.set_applied(0)

    # -- writing -----------------------------------------------------------------------------
    def write(self, table: pa.Table, applied: int) -> int:
        """Write rows (STORE_SCHEMA) as part files, then move ``applied`` forward durably.

        Rows with ``leaf_index`` below the current ``applied`` are already stored (another
        process replayed them) and are dropped. Returns the number of rows written.
        """
        written = self.write_parts(table)
        if applied > self.applied():
            self.set_applied(applied)
        return written

    def write_parts(self, table: pa.Table) -> int:
        """Write rows as durable part files without moving ``applied`` (the caller does, once
        the parts are written). Rows below the current ``applied`` are dropped."""
        current = self.applied()
        if table.num_rows:
            table = table.select(STORE_SCHEMA.names).cast(STORE_SCHEMA)
            leaf = table.column("leaf_index")
            if current and pc.min(leaf).as_py() < current:  # else keep all, without a copy
                table = table.filter(pc.greater_equal(leaf, current))
        written = 0
        if table.num_rows:
            ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
            days = (ts + HK_OFFSET_US) // DAY_US
            if len(days) < 2 or bool((days[1:] >= days[:-1]).all()):
                days_sorted = days  # the usual case: events arrive in time order
            else:
                order = np.argsort(days, kind="stable")
                days_sorted = days[order]
                table = table.take(pa.array(order))
            bounds = np.flatnonzero(np.diff(days_sorted)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [len(days_sorted)]))
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                part = table.slice(a, b - a)
                day = np.datetime64(int(days_sorted[a]), "D")
                first = int(pc.min(part.column("leaf_index")).as_py())
                self._write_part(str(day), first, part)
                written += part.num_rows
        return written

    def _write_part(self, day: str, first: int, part: pa.Table) -> None:
        folder = self.folder / f"date={day}"
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(folder.parent)
        path = folder / f"part-{first:014d}.parquet"
        tmp = folder / f"part-{first:014d}.parquet.tmp"
        with open(tmp, "wb") as f:
            pq.write_table(
                part,
                f,
                compression="zstd",
                row_group_size=1 << 20,
                use_dictionary=DICTIONARY_COLUMNS,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)

    # -- reading -----------------------------------------------------------------------------
    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with a view ``events`` over the store (empty when no parts)."""
        import duckdb

        con = con or duckdb.connect()
        if self.parts():
            con.execute(
                "CREATE OR REPLACE VIEW events AS SELECT * FROM "
                f"read_parquet('{self.glob}', hive_partitioning = true)"
            )
        else:
            empty = STORE_SCHEMA.empty_table()
            con.register("_empty_events", empty)
            con.execute(
                "CREATE OR REPLACE VIEW events AS SELECT *, NULL::DATE AS date FROM _empty_events"
            )
        return con

    def read(
        self, where: str = "", params: list[Any] | None = None, columns: str = "*"
    ) -> pa.Table:
        """Rows as an Arrow table, optionally filtered by a DuckDB ``WHERE`` clause."""
        con = self.connect()
        try:
            sql = f"SELECT {columns} FROM events"
            if where:
                sql += f" WHERE {where}"
            sql += " ORDER BY leaf_index"
            return con.sql(sql, params=params or None).to_arrow_table()
        finally:
            con.close()

    def batches(
        self, where: str = "", params: list[Any] | None = None, size: int = 50_000
    ) -> Iterator[pa.RecordBatch]:
        """Stream rows in leaf order without holding them all (for exports)."""
        con = self.connect()
        try:
            sql = "SELECT * EXCLUDE (date) FROM events"
            if where:
                sql += f" WHERE {where}"
            sql += " ORDER BY leaf_index"
            reader = con.sql(sql, params=params or None).to_arrow_reader(size)
            yield from reader
        finally:
            con.close()

    def count(self) -> int:
        con = self.connect()
        try:
            row = con.execute("SELECT count(*) FROM events").fetchone()
            return int(row[0]) if row else 0
        finally:
            con.close()

    def find(self, event_id: str, source: str | None = None) -> list[dict[str, Any]]:
        """The stored rows of one event id (one per source that used it), with leaf_index."""
        where, params = "event_id = ?", [event_id]
        if source:
            where += " AND source = ?"
            params.append(source)
        return self.read(where, params).to_pylist()


__all__ = ["EventStore"]
