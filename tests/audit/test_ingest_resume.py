"""Resuming an interrupted `phiguard ingest` when the re-run reads the file in chunks of
another size (a changed `ingest_batch_events`, or the default after a run with a smaller one):
every event ends up sealed exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.ingest import FileResult, _chunks, _sha256, ingest_chunks, ingest_file
from tests.audit.eventfiles import events, stored, write_csv


@pytest.mark.parametrize(("before", "after"), [(3, 4), (3, 2), (4, 100), (2, 7)])
def test_resume_with_another_chunk_size_seals_each_event_once(
    sqlite_app: App, tmp_path: Path, before: int, after: int
) -> None:
    rows = events(12) + events(5, start=1, source="ePR")
    rows = [r for pair in zip(rows[:12], rows[12:] + [None] * 7, strict=True) for r in pair if r]
    path = write_csv(tmp_path / "mixed.csv", rows)  # two sources, interleaved
    partial = FileResult(name=path.name, format="csv", sha256=_sha256(path))
    chunks = _chunks(path, "csv", before)
    ingest_chunks(
        sqlite_app, [next(chunks), next(chunks)], partial, channel="file", actor="test"
    )  # the earlier run died after two chunks
    res, found = ingest_file(sqlite_app, path, batch_events=after)
    assert res.already == partial.accepted
    assert res.already + res.accepted == len(rows)
    assert found == []  # no duplicate, no gap
    got = sorted((r["source"], r["seq"]) for r in stored(sqlite_app))
    assert got == sorted((r["source"], r["seq"]) for r in rows)
    again, _ = ingest_file(sqlite_app, path, batch_events=5)
    assert (again.accepted, again.already) == (0, len(rows))


def test_a_failure_while_sealing_stops_the_parsing_thread(
    sqlite_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from phiguard.audit import ingest

    path = write_csv(tmp_path / "big.csv", events(40))
    calls = []

    def seal(self: ingest.Sealer, *args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk gone")
        original(self, *args)

    original = ingest.Sealer.seal
    monkeypatch.setattr(ingest.Sealer, "seal", seal)
    with pytest.raises(OSError, match="disk gone"):
        ingest_file(sqlite_app, path, batch_events=5)
    assert not [t for t in threading.enumerate() if t.name in ("ingest-parse", "ingest-sha256")]
    monkeypatch.undo()
    res, _ = ingest_file(sqlite_app, path, batch_events=5)
    assert (res.already, res.accepted) == (5, 35)
