"""Parquet rows are sealed as canonical CSV; the fast timestamp text is strftime's, exactly."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phiguard.app import App
from phiguard.audit.ingest import ingest_files
from phiguard.audit.ingest_formats import _ISO_UTC, _canonical_strings
from tests.audit.eventfiles import events, stored


def test_canonical_timestamps_equal_strftime_for_every_unit_and_zone() -> None:
    rng = random.Random(11)
    micros = [rng.randrange(-2 * 10**15, 9 * 10**15) for _ in range(500)] + [0, -1, None]
    for unit, scale in (("s", 10**6), ("ms", 10**3), ("us", 1), ("ns", 1)):
        for tz in ("UTC", None, "Asia/Hong_Kong"):
            values = [
                None if v is None else (v * 1000 if unit == "ns" else v // scale) for v in micros
            ]
            col = pa.array(values, pa.timestamp(unit, tz=tz))
            got = _canonical_strings(pa.table({"ts": col})).column("ts")
            local = (
                col
                if tz is not None
                else pc.assume_timezone(
                    col, "Asia/Hong_Kong", ambiguous="earliest", nonexistent="earliest"
                )
            )
            want = pc.strftime(pc.cast(local, pa.timestamp("us", tz="UTC")), format=_ISO_UTC)
            assert got.to_pylist() == want.to_pylist(), (unit, tz)


def test_parquet_sub_second_times_survive_sealing(sqlite_app: App, tmp_path: Path) -> None:
    rows = events(3)
    table = pa.Table.from_pylist(rows)
    ts = pc.cast(
        pa.array([1_775_150_000_123_456, 1_775_150_001_000_001, 1_775_150_002_999_999], pa.int64()),
        pa.timestamp("us", tz="UTC"),
    )
    table = table.set_column(table.column_names.index("ts"), "ts", ts)
    table = table.set_column(
        table.column_names.index("seq"), "seq", pc.cast(table.column("seq"), pa.int64())
    )
    path = tmp_path / "sub.parquet"
    pq.write_table(table, path)
    assert ingest_files(sqlite_app, [path]).accepted == 3
    got = [r["ts"] for r in stored(sqlite_app)]
    assert [int(t.timestamp() * 1_000_000) for t in got] == ts.cast(pa.int64()).to_pylist()
