"""The embedded engine: DuckDB over the Parquet event store, reference tables from Arrow."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from phiguard.detection.engines import EVENT_SCHEMA
from phiguard.errors import InputError

COPY_ROWS = 1_000_000  # reference tables up to this size are copied into DuckDB


class DuckDBDialect:
    name = "duckdb"

    def ts_us(self, col: str) -> str:
        return f"epoch_us({col})"

    def ts_lit(self, ts: datetime) -> str:
        return f"TIMESTAMPTZ '{ts.astimezone(UTC).isoformat(sep=' ')}'"

    def day_no(self, col: str) -> str:
        return f"date_diff('day', DATE '1970-01-01', {col})"

    def idiv(self, a: str, b: int) -> str:
        return f"(({a}) // {int(b)})"

    def date_of(self, x: str) -> str:
        return f"(DATE '1970-01-01' + CAST({x} AS INTEGER))"

    def row_id(self) -> str:
        """A unique integer per row of the (materialised) relation, to key joins with."""
        return "row_number() OVER ()"

    def sample(self, col: str, n: int, where: str = "true") -> str:
        return (
            f"array_slice(list_sort(list(DISTINCT {col}) FILTER (WHERE {col} IS NOT NULL "
            f"AND ({where}))), 1, {int(n)})"
        )

    def sorted_set(self, col: str, where: str = "true") -> str:
        return f"list_sort(list(DISTINCT {col}) FILTER (WHERE {col} IS NOT NULL AND ({where})))"

    def merge_samples(self, col: str, n: int) -> str:
        return f"array_slice(list_sort(list_distinct(flatten(list({col})))), 1, {int(n)})"

    def csv_subset(self, small: str, big: str) -> str:
        return f"list_has_all(string_split({big}, ','), string_split({small}, ','))"

    def quantile(self, col: str, q: float) -> str:
        return f"quantile_cont({col}, {float(q)})"

    def to_str(self, col: str) -> str:
        return f"CAST({col} AS VARCHAR)"


@dataclass
class DuckDBEngine:
    con: duckdb.DuckDBPyConnection
    timezone: str
    name: str = "duckdb"
    chunked: bool = True
    dialect: DuckDBDialect = field(default_factory=DuckDBDialect)
    summaries_root: Path | None = None  # where day summaries are kept (rollups.py), if at all
    _arrow: dict[str, pa.Table] = field(default_factory=dict)

    @classmethod
    def create(cls, *, settings: Any, detect: Any, home: Any = None) -> DuckDBEngine:
        con = duckdb.connect(":memory:")
        tz = getattr(settings, "timezone", "Asia/Hong_Kong")
        con.execute(f"SET TimeZone = '{tz}'")
        if detect is not None:
            con.execute(f"SET memory_limit = '{detect.duckdb_memory_limit}'")
            if detect.duckdb_threads:
                con.execute(f"SET threads = {int(detect.duckdb_threads)}")
        summaries = None
        if home is not None:
            spill = Path(home) / "detection" / "spill"
            spill.mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory = '{_q(spill)}'")
            if detect is None or getattr(detect, "day_summaries", True):
                summaries = Path(home) / "detection" / "days"
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET enable_progress_bar = false")
        return cls(con=con, timezone=tz, summaries_root=summaries)

    def register(self, name: str, table: pa.Table) -> None:
        self._arrow[name] = table
        if table.num_rows > COPY_ROWS:
            # Millions of patients: scanned in place (a copy would double their memory).
            self.con.register(name, table)
            return
        self.con.register(f"__arrow_{name}", table)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM __arrow_{name}")
        self.con.unregister(f"__arrow_{name}")

    def register_events(self, uri: str | None) -> None:
        source = _parquet_source(uri)
        if source is None:
            self.register("events_raw", EVENT_SCHEMA.empty_table())
            return
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            cols = {r[0]: r[1] for r in described}
        except duckdb.Error as exc:
            raise InputError(f"cannot read the access events at {uri}: {exc}") from exc
        ts = "ts" if cols.get("ts", "").startswith("TIMESTAMP WITH") else "timezone('UTC', ts)"
        select = []
        for f in EVENT_SCHEMA:
            if f.name == "ts":
                select.append(f"{ts} AS ts")
            elif f.name == "seq":
                select.append("CAST(seq AS BIGINT) AS seq" if "seq" in cols else "NULL AS seq")
            elif f.name in cols:
                select.append(f"CAST({f.name} AS VARCHAR) AS {f.name}")
            else:
                select.append(f"CAST(NULL AS VARCHAR) AS {f.name}")
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW events_raw AS SELECT {', '.join(select)} FROM {source}"
        )

    def materialise(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def append(self, name: str, sql: str) -> None:
        self.con.execute(f"INSERT INTO {name} {sql}")

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def export_parquet(self, table: str, path: Path) -> int:
        """Write a materialised relation to a Parquet file; returns its row count."""
        rows = self.con.execute(
            f"COPY {table} TO '{_q(path)}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    def parquet_view(self, name: str, path: Path) -> None:
        self.view(name, f"SELECT * FROM read_parquet('{_q(path)}', hive_partitioning = false)")

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self.con.sql(sql).to_arrow_table().to_pylist()

    def arrow(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def close(self) -> None:
        self.con.close()


def _parquet_source(uri: str | None) -> str | None:
    """A ``read_parquet`` call for a file, a hive-partitioned folder or a remote URI."""
    if not uri:
        return None
    if "://" in uri:
        return f"read_parquet('{uri}', hive_partitioning = true, union_by_name = true)"
    path = Path(uri)
    if path.is_file():
        return f"read_parquet('{_q(path)}')"
    if path.is_dir():
        if not any(p.suffix == ".parquet" for _, _, fs in os.walk(path) for p in map(Path, fs)):
            return None
        return (
            f"read_parquet('{_q(path)}/**/*.parquet', hive_partitioning = true, "
            "union_by_name = true)"
        )
    return None


def _q(path: Path) -> str:
    return str(path).replace("'", "''")
