"""Access to the Parquet event store with DuckDB (read-only, one short connection a call)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from phiguard.app import App


def events_glob(app: App) -> str | None:
    """The glob of event files, or None while nothing has been ingested."""
    root = Path(app.home.events) / "events"
    if not root.is_dir() or not any(root.glob("date=*/*.parquet")):
        return None
    return str(root / "date=*" / "*.parquet")


@contextmanager
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:", config={"threads": 2})
    try:
        con.execute("SET TimeZone='UTC'")
        yield con
    finally:
        con.close()


def scan(app: App) -> str:
    glob = events_glob(app)
    if glob is None:
        raise LookupError("no events")
    return f"read_parquet('{glob}', hive_partitioning=true, union_by_name=true)"


def query(app: App, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``{events}`` standing for the event store; [] when it is empty."""
    try:
        source = scan(app)
    except LookupError:
        return []
    with duck() as con:
        return con.execute(sql.format(events=source), params or []).fetchall()
