"""Analytics engines the rule pack runs on: DuckDB (embedded, the default) and Apache Spark.

Rules are SQL templates written in the common ground of DuckDB and Spark SQL. Where the two
spell a function differently (epoch microseconds, sorted sets, percentiles, a comma-list subset
test), the template calls a macro of the engine's :class:`Dialect` instead — the same idea as
dbt's cross-database macros (``{{ dbt.datediff(...) }}``). Everything else is plain SQL that
both parse identically, and a test runs the whole pack on both and compares the alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa


class Dialect(Protocol):
    name: str

    def ts_us(self, col: str) -> str: ...
    def ts_lit(self, ts: datetime) -> str: ...
    def day_no(self, col: str) -> str: ...
    def idiv(self, a: str, b: int) -> str: ...
    def date_of(self, x: str) -> str: ...
    def row_id(self) -> str: ...
    def sample(self, col: str, n: int, where: str = "true") -> str: ...
    def sorted_set(self, col: str, where: str = "true") -> str: ...
    def merge_samples(self, col: str, n: int) -> str: ...
    def csv_subset(self, small: str, big: str) -> str: ...
    def quantile(self, col: str, q: float) -> str: ...
    def to_str(self, col: str) -> str: ...


class Engine(Protocol):
    """What the rule pack needs from an engine. Both implementations ship with the package;
    tests run the same pack on each (no mocks)."""

    name: str
    chunked: bool  # True: daily stages run one day at a time (bounded memory, one machine)

    @property
    def dialect(self) -> Dialect: ...

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable under ``name``."""

    def register_events(self, uri: str | None) -> None:
        """Expose the access events (Parquet file, folder or URI) as ``events_raw``."""

    def materialise(self, name: str, sql: str) -> None:
        """Compute ``sql`` once and keep it as a table named ``name``."""

    def append(self, name: str, sql: str) -> None:
        """Add the rows of ``sql`` to the materialised relation ``name``."""

    def view(self, name: str, sql: str) -> None:
        """Name ``sql`` without computing it."""

    def drop(self, name: str) -> None:
        """Forget a materialised relation (to free its memory)."""

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run ``sql`` and return its rows as plain Python values."""

    def arrow(self, sql: str) -> pa.Table:
        """Run ``sql`` and return its rows as an Arrow table."""

    def close(self) -> None: ...


EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("source", pa.string()),
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("account_id", pa.string()),
        ("action", pa.string()),
        ("patient_id", pa.string()),
        ("fields", pa.string()),
        ("query_id", pa.string()),
        ("client_ip", pa.string()),
        ("device_id", pa.string()),
        ("purpose", pa.string()),
        ("outcome", pa.string()),
    ]
)


def open_engine(name: str, *, settings: Any, detect: Any, home: Any = None) -> Engine:
    """The engine named ``name`` ('duckdb' or 'spark'), configured from settings."""
    from phiguard.errors import UsageError

    if name == "duckdb":
        from phiguard.detection.engines.duckdb import DuckDBEngine

        return DuckDBEngine.create(settings=settings, detect=detect, home=home)
    if name == "spark":
        from phiguard.detection.engines.spark import SparkEngine

        return SparkEngine.create(settings=settings, detect=detect, home=home)
    raise UsageError(f"unknown detection engine {name!r} (expected 'duckdb' or 'spark')")
