"""The Parquet event store: layout, rebuilt from the log, recovery after crashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from phiguard.app import App
from phiguard.audit import completeness
from phiguard.audit.ingest import BATCH_MAGIC, ingest_files, sync
from phiguard.settings import Settings
from phiguard.storage.events import EventStore
from tests.audit.eventfiles import HEADER, csv_line, event, events, stored, write_csv


def test_layout_and_hong_kong_date_partitions(sqlite_app: App, tmp_path: Path) -> None:
    rows = [event(1, ts="2026-04-02T23:30:00+08:00"), event(2, ts="2026-04-03T00:30:00+08:00")]
    ingest_files(sqlite_app, [write_csv(tmp_path / "d.csv", rows)])
    store = EventStore.of(sqlite_app)
    days = sorted(p.parent.name for p in store.parts())
    assert days == ["date=2026-04-02", "date=2026-04-03"]
    con = duckdb.connect()
    got = con.execute(
        f"SELECT event_id, CAST(date AS VARCHAR), typeof(ts), typeof(seq) FROM "
        f"read_parquet('{store.glob}', hive_partitioning=true) ORDER BY seq"
    ).fetchall()
    assert got == [
        ("cms-1", "2026-04-02", "TIMESTAMP WITH TIME ZONE", "BIGINT"),
        ("cms-2", "2026-04-03", "TIMESTAMP WITH TIME ZONE", "BIGINT"),
    ]
    assert store.find("cms-2")[0]["leaf_index"] > store.find("cms-1")[0]["leaf_index"]


def test_the_store_is_rebuilt_from_the_log(sqlite_app: App, tmp_path: Path) -> None:
    ingest_files(sqlite_app, [write_csv(tmp_path / "a.csv", events(30) + events(5, source="ePR"))])
    before = stored(sqlite_app)
    shutil.rmtree(sqlite_app.home.events)
    assert EventStore.open(sqlite_app).count() == 35
    assert stored(sqlite_app) == before


def test_leftover_parts_of_an_interrupted_write_are_replaced(
    sqlite_app: App, tmp_path: Path
) -> None:
    ingest_files(sqlite_app, [write_csv(tmp_path / "a.csv", events(10))])
    store = EventStore.of(sqlite_app)
    before = stored(sqlite_app)
    # a crash after writing a part but before store.json moved: a part beyond `applied`
    (store.parts()[0].parent / f"part-{store.applied() + 5:014d}.parquet").write_bytes(b"junk")
    store.set_applied(0)
    sync(sqlite_app)
    assert stored(sqlite_app) == before
    assert len(store.parts()) == 1


def test_a_batch_sealed_but_never_applied_is_replayed(app: App) -> None:
    """The process died between `append_batch` and applying the batch to the derived state."""
    lines = [csv_line(e).encode() for e in events(4)]
    meta = {
        "format": "csv",
        "header": HEADER,
        "delimiter": ",",
        "source": "CMS",
        "count": 4,
        "channel": "file",
        "v": 1,
    }
    app.audit.append_batch("CMS", [BATCH_MAGIC + json.dumps(meta).encode(), *lines])
    assert stored(app) == []
    assert sync(app) == 4
    assert [r["seq"] for r in stored(app)] == [1, 2, 3, 4]
    (status,) = completeness.status(app)
    assert status.high_seq == 4 and status.events == 4
    assert sync(app) == 0  # idempotent


def test_no_identifying_text_reaches_the_store(sqlite_app: App, tmp_path: Path) -> None:
    hkid = "A123456(3)"
    path = tmp_path / "x.csv"
    write_csv(path, events(2), extra_lines=[csv_line(event(3)) + ",CHAN Tai Man," + hkid])
    ingest_files(sqlite_app, [path])
    for part in EventStore.of(sqlite_app).parts():
        data = part.read_bytes()
        assert b"A123456" not in data and b"CHAN Tai Man" not in data


INGEST = """
import sys
from pathlib import Path
from phiguard.app import App
from phiguard.settings import Settings
from phiguard.audit.ingest import ingest_file
app = App.open(Settings(home=Path(sys.argv[1])), migrate=False)
for name in sys.argv[2:]:
    res, _ = ingest_file(app, Path(name), batch_events=200)
    print("done", name, res.accepted, flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Kill the ingesting process at random moments; after restart the store equals the log,
    every file reported done is complete, and re-running finishes the interrupted file."""
    rng = np.random.default_rng(7)
    home = tmp_path / "home"
    App.init(Settings(home=home)).close()
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    files = [
        write_csv(tmp_path / f"f{k}.csv", events(1000, start=1 + 1000 * k, source=f"S{k % 2}"))
        for k in range(8)
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    acknowledged: set[str] = set()
    for trial in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(home), *map(str, files)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(float(rng.uniform(1.0, 3.0)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged |= {line.split()[1] for line in out.splitlines() if line.startswith("done")}
        app = App.open(Settings(home=home))
        try:
            sync(app)
            rows = stored(app)
            seqs = {(r["source"], r["seq"]) for r in rows}
            assert len(seqs) == len(rows), f"trial {trial}: duplicates in the store"
            for name in acknowledged:
                k = int(Path(name).stem[1:])
                want = {(f"S{k % 2}", s) for s in range(1 + 1000 * k, 1001 + 1000 * k)}
                assert want <= seqs, f"trial {trial}: {name} was acknowledged but is incomplete"
            assert [f for f in completeness.verify_findings(app) if "disagrees" in f[1]] == []
        finally:
            app.close()
    app = App.open(Settings(home=home))
    try:
        ingest_files(app, files)  # resumes: everything sealed is skipped, the rest is added
        assert len(stored(app)) == 8000
        from phiguard.audit.verify import verify_log

        assert verify_log(app.audit).ok
    finally:
        app.close()
