"""Fixtures for the detection tests: the hand-made hospital, its snapshot, and one pack run
on DuckDB shared by the module (the pack is deterministic; running it once keeps tests fast)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from phiguard.clock import HKT
from phiguard.crypto.blind import BlindIndex
from phiguard.detection.engines import open_engine
from phiguard.detection.pack import PackResult, Window, run_pack
from phiguard.detection.snapshot import Reference, from_spec_rows
from phiguard.settings import Settings
from tests.detection import world as W

SINCE = datetime(2026, 3, 15, tzinfo=HKT)


@pytest.fixture(scope="session")
def hospital() -> W.World:
    return W.build()


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory, hospital: W.World) -> Path:
    folder = tmp_path_factory.mktemp("world")
    hospital.write(folder)
    return folder


@pytest.fixture(scope="session")
def reference(hospital: W.World) -> Reference:
    return from_spec_rows(**hospital.spec(), blind=BlindIndex(b"\x01" * 32))


def run_world(
    engine: str,
    world_dir: Path,
    reference: Reference,
    since: datetime = SINCE,
    chunked: bool | None = None,
    home: Path | None = None,
    events: Path | None = None,
    **extra: Any,
) -> PackResult:
    """The pack over the hand-made hospital; ``chunked=False`` makes DuckDB read all days in
    one pass instead of one day at a time; with ``home`` DuckDB keeps day summaries there."""
    p = W.settings(**extra)
    eng = open_engine(engine, settings=Settings(), detect=p, home=home)
    if chunked is not None:
        eng.chunked = chunked  # type: ignore[misc]
    try:
        return run_pack(
            eng,
            reference,
            p,
            Window(since, None, p.baseline_days),
            events_uri=str(events or world_dir / "events.parquet"),
        )
    finally:
        eng.close()


@pytest.fixture(scope="session")
def duck_result(world_dir: Path, reference: Reference) -> PackResult:
    return run_world("duckdb", world_dir, reference)


def assert_same_results(a: PackResult, b: PackResult) -> None:
    """Two runs of the pack found the same: explanation report, features, hits."""
    assert a.explain == b.explain
    assert a.features == b.features
    assert [h.key() for h in a.hits] == [h.key() for h in b.hits]
    assert [h.reasons for h in a.hits] == [h.reasons for h in b.hits]
