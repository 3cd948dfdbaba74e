"""Day summaries (phiguard/detection/rollups.py): a run that condenses the days and writes
them, and a later run that reads them, find exactly what a run over the raw events finds; a
day whose events change is condensed again; a cut day, a half-written summary or a stale one
is never read."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from phiguard.detection.pack import PackResult
from phiguard.detection.rollups import PARTS, Rollups, source_keys
from phiguard.detection.snapshot import Reference
from tests.detection.conftest import SINCE, assert_same_results, run_world

HK = 8 * 3_600_000_000


def days_in(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "detection" / "days").glob("day=*"))


def test_written_then_read_summaries_give_the_same_alerts(
    tmp_path: Path, world_dir: Path, reference: Reference, duck_result: PackResult
) -> None:
    first = run_world("duckdb", world_dir, reference, home=tmp_path)
    assert first.timings.get("summary:written", 0) > 0 and "summary:read" not in first.timings
    days = days_in(tmp_path)
    assert days, "the first run keeps a summary of every whole day it read"
    for day in days:
        folder = tmp_path / "detection" / "days" / day
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [*(f"{part}.parquet" for part in PARTS), "day.json"]
        )
    second = run_world("duckdb", world_dir, reference, home=tmp_path)
    assert second.timings.get("summary:read", 0) > 0 and "summary:written" not in second.timings
    assert_same_results(first, duck_result)
    assert_same_results(second, duck_result)
    assert duck_result.hits, "the hand-made hospital raises alerts"


def test_all_history_with_and_without_summaries(
    tmp_path: Path, world_dir: Path, reference: Reference
) -> None:
    plain = run_world("duckdb", world_dir, reference, since=None)  # type: ignore[arg-type]
    for _ in range(2):
        kept = run_world("duckdb", world_dir, reference, since=None, home=tmp_path)  # type: ignore[arg-type]
        assert_same_results(kept, plain)


def test_changed_events_are_condensed_again(
    tmp_path: Path, world_dir: Path, reference: Reference
) -> None:
    events = tmp_path / "events.parquet"
    shutil.copy(world_dir / "events.parquet", events)
    home = tmp_path / "home"
    run_world("duckdb", world_dir, reference, home=home, events=events)
    # The source system resends the file without its last 10 % of events.
    table = pq.read_table(events)
    pq.write_table(table.slice(0, table.num_rows * 9 // 10), events)
    again = run_world("duckdb", world_dir, reference, home=home, events=events)
    assert again.timings.get("summary:written", 0) > 0 and "summary:read" not in again.timings
    plain = run_world("duckdb", world_dir, reference, events=events)
    assert_same_results(again, plain)


def test_a_window_that_cuts_a_day_reads_that_day_from_its_events(
    tmp_path: Path, world_dir: Path, reference: Reference
) -> None:
    since = SINCE + timedelta(hours=13)  # the first and last days are cut by the window
    run_world("duckdb", world_dir, reference, home=tmp_path, since=since)
    kept = run_world("duckdb", world_dir, reference, home=tmp_path, since=since)
    plain = run_world("duckdb", world_dir, reference, since=since)
    assert_same_results(kept, plain)
    cut = (since - timedelta(days=kept_baseline())).date()
    assert f"day={cut.isoformat()}" not in days_in(tmp_path)


def kept_baseline() -> int:
    from tests.detection import world as W

    return W.settings().baseline_days


def test_half_written_or_stale_summaries_are_never_read(
    tmp_path: Path, world_dir: Path, reference: Reference, duck_result: PackResult
) -> None:
    run_world("duckdb", world_dir, reference, home=tmp_path)
    root = tmp_path / "detection" / "days"
    first, second = (root / d for d in days_in(tmp_path)[:2])
    (first / "accesses.parquet").unlink()  # killed between two files
    meta = json.loads((second / "day.json").read_text())
    (second / "day.json").write_text(json.dumps({**meta, "key": "0" * 64}))  # other events
    left = root / ".tmp-killed"
    left.mkdir()
    (left / "accesses.parquet").write_bytes(b"PAR1 half")
    os.utime(left, (time.time() - 2 * 86_400,) * 2)
    again = run_world("duckdb", world_dir, reference, home=tmp_path)
    assert_same_results(again, duck_result)
    assert (first / "accesses.parquet").is_file()
    assert json.loads((second / "day.json").read_text())["key"] != "0" * 64
    assert not left.exists(), "a temporary folder a killed run left is removed"


def test_summaries_hold_pseudonymous_ids_only(
    tmp_path: Path, world_dir: Path, reference: Reference
) -> None:
    from tests.detection import world as W

    run_world("duckdb", world_dir, reference, home=tmp_path)
    names = {p["name_en"] for p in W.build().spec()["patients"] if p.get("name_en")}
    blob = b"".join(p.read_bytes() for p in (tmp_path / "detection" / "days").rglob("*.*"))
    assert names and not any(n.encode() in blob for n in names)
    patients = pq.read_table(next((tmp_path / "detection" / "days").glob("day=*/patients.parquet")))
    assert pc.all(pc.starts_with(patients["patient_id"], "P")).as_py()


def store_part(folder: Path, day: str, name: str, rows: int) -> Path:
    part = folder / f"date={day}" / name
    part.parent.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa

    pq.write_table(pa.table({"x": list(range(rows))}), part)
    return part


def dayno(day: str) -> int:
    return (date.fromisoformat(day) - date(1970, 1, 1)).days


def test_event_store_days_are_keyed_by_their_own_partition(tmp_path: Path) -> None:
    store = tmp_path / "events"
    store_part(store, "2026-04-01", "part-00000000000000.parquet", 3)
    store_part(store, "2026-04-02", "part-00000000000003.parquet", 3)
    key_of, present = source_keys(str(store), HK) or pytest.fail("no keys")
    before = {d: key_of(dayno(d)) for d in ("2026-04-01", "2026-04-02")}
    store_part(store, "2026-04-02", "part-00000000000006.parquet", 2)  # late events, day 2
    key_of, present = source_keys(str(store), HK) or pytest.fail("no keys")
    assert key_of(dayno("2026-04-01")) == before["2026-04-01"]
    assert key_of(dayno("2026-04-02")) != before["2026-04-02"]
    assert present(date(2026, 4, 2)) and not present(date(2026, 4, 3))
    # Another zone's local days do not line up with the partitions: every file counts.
    other, _ = source_keys(str(store), 0) or pytest.fail("no keys")
    assert other(dayno("2026-04-01")) == other(dayno("2026-04-02"))
    assert source_keys("s3a://bucket/events", HK) is None
    assert source_keys(str(tmp_path / "nothing"), HK) is None


def test_summaries_of_days_whose_events_are_gone_are_pruned(tmp_path: Path) -> None:
    store = tmp_path / "events"
    store_part(store, "2026-04-01", "part-00000000000000.parquet", 3)
    store_part(store, "2026-04-02", "part-00000000000003.parquet", 3)
    root = tmp_path / "days"
    rollups = Rollups.for_source(root, str(store), HK)
    assert rollups is not None
    for day in ("2026-04-01", "2026-04-02"):
        tmp = rollups.begin()
        for part in PARTS:
            (tmp / f"{part}.parquet").write_bytes(b"x")
        rollups.commit(tmp, dayno(day), {})
        assert rollups.find(dayno(day)) is not None
    shutil.rmtree(store / "date=2026-04-01")  # the events of 1 April were deleted
    rollups = Rollups.for_source(root, str(store), HK)
    assert rollups is not None
    assert rollups.prune() == 1
    assert sorted(p.name for p in root.iterdir()) == ["day=2026-04-02"]


def test_a_valid_summary_another_run_wrote_is_kept(tmp_path: Path) -> None:
    """Two runs condensing the same day at once: the second leaves the first one's summary
    in place (a third run may be reading it) and drops its own."""
    store = tmp_path / "events"
    store_part(store, "2026-04-01", "part-00000000000000.parquet", 3)
    rollups = Rollups.for_source(tmp_path / "days", str(store), HK)
    assert rollups is not None
    first, second = rollups.begin(), rollups.begin()
    for tmp, mark in ((first, b"first"), (second, b"second")):
        for part in PARTS:
            (tmp / f"{part}.parquet").write_bytes(mark)
    rollups.commit(first, dayno("2026-04-01"), {})
    folder = rollups.commit(second, dayno("2026-04-01"), {})
    assert (folder / "accesses.parquet").read_bytes() == b"first"
    assert not second.exists()
    assert [p.name for p in (tmp_path / "days").iterdir()] == ["day=2026-04-01"]


def test_a_damaged_summary_file_is_condensed_again(
    tmp_path: Path, world_dir: Path, reference: Reference, duck_result: PackResult
) -> None:
    run_world("duckdb", world_dir, reference, home=tmp_path)
    root = tmp_path / "detection" / "days"
    part = next(root.glob("day=*/accesses.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])  # a disk fault cut the file (same name, same key)
    again = run_world("duckdb", world_dir, reference, home=tmp_path)
    assert again.timings.get("summary:written", 0) > 0
    assert_same_results(again, duck_result)
    assert pq.read_table(part).num_rows > 0  # written whole again


def test_a_summary_that_cannot_be_written_costs_nothing_but_time(
    tmp_path: Path,
    world_dir: Path,
    reference: Reference,
    duck_result: PackResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "detection").mkdir()
    (tmp_path / "detection" / "days").write_text("not a folder")  # e.g. a read-only mount
    result = run_world("duckdb", world_dir, reference, home=tmp_path)
    assert_same_results(result, duck_result)
    assert "day summary of" in caplog.text and "not kept" in caplog.text
