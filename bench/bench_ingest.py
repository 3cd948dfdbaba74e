"""Ingest throughput: ``phiguard ingest`` of generated CSV and Parquet files, end to end.

Ours: ``ingest_files`` on a fresh home — framing, validation, sealing in the audit log
(durable, fsynced), completeness, and the Parquet store. Anchors in the same run:

* the audit log alone: ``append_batch`` of the same raw CSV lines (what sealing costs
  without any parsing — the ceiling for ingest);
* pyarrow's CSV reader on the same file (what parsing alone costs — the floor);
* pandas ``read_csv`` + ``to_parquet`` (what a plain Python loader would do, unsealed).

Run: ``.venv/bin/python -m bench.bench_ingest`` (200,000 events; BENCH_SCALE=full: 1,000,000).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import FULL

N = 1_000_000 if FULL else 200_000
REPEAT = 3


def _write_inputs(root: Path, n: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    from phiguard.audit.events import COLUMNS

    actions = ["read", "search", "print", "export", "update"]
    csv = root / "events.csv"
    with csv.open("w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for i in range(1, n + 1):
            f.write(
                f"CMS-{i:09d},CMS,{i},2026-04-03T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:"
                f"{i % 60:02d}+08:00,acct-{i % 5000:05d},{actions[i % 5]},P{i % 7_500_000:08d},"
                f'"name,sex,hkid,hospital_no",q-{i // 50},10.{i % 250}.{i % 200}.7,'
                f"ws-{i % 900:04d},TREAT,success\n"
            )
    table = pa.csv.read_csv(
        csv,
        convert_options=pa.csv.ConvertOptions(
            column_types={"ts": pa.timestamp("us", tz="UTC"), "seq": pa.int64()}
        ),
    )
    parquet = root / "events.parquet"
    pq.write_table(table.select(list(COLUMNS)), parquet)
    return csv, parquet


def _fresh_app(root: Path, name: str):  # type: ignore[no-untyped-def]
    from phiguard.app import App
    from phiguard.settings import Settings

    home = root / name
    if home.exists():
        shutil.rmtree(home)
    return App.init(Settings(home=home))


CPU: dict[str, float] = {}  # median CPU seconds of our runs (all threads of the process)


def _ours(root: Path, path: Path) -> float:
    from phiguard.audit.ingest import ingest_files

    times, cpus = [], []
    for r in range(REPEAT):
        app = _fresh_app(root, f"home-{path.suffix}-{r}")
        try:
            t, c = time.perf_counter(), time.process_time()
            res = ingest_files(app, [path])
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            assert res.accepted == N, res.accepted
        finally:
            app.close()
    CPU[path.suffix] = sorted(cpus)[len(cpus) // 2]
    return sorted(times)[len(times) // 2]


def _log_only(root: Path, path: Path) -> float:
    lines = path.read_bytes().split(b"\n")[1:-1]
    times = []
    for r in range(REPEAT):
        app = _fresh_app(root, f"home-log-{r}")
        try:
            t = time.perf_counter()
            for i in range(0, len(lines), 250_000):
                app.audit.append_batch("CMS", lines[i : i + 250_000])
            times.append(time.perf_counter() - t)
        finally:
            app.close()
    return sorted(times)[len(times) // 2]


def _pyarrow(path: Path) -> float:
    import pyarrow.csv as pacsv

    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        pacsv.read_csv(path)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _pandas(root: Path, path: Path) -> float:
    import pandas as pd

    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        pd.read_csv(path, dtype=str).to_parquet(root / "pandas.parquet")
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _parse_only(path: Path) -> float:
    from phiguard.audit.ingest import _chunks, _prepare

    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        for chunk in _chunks(path, "csv", 250_000):
            _prepare(chunk)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=os.environ.get("BENCH_TMP")))
    try:
        csv, parquet = _write_inputs(root, N)
        size = csv.stat().st_size
        print(
            f"{N:,} events of ~{size // N} bytes (CSV {size >> 20} MiB,"
            f" Parquet {parquet.stat().st_size >> 20} MiB); median of {REPEAT}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        results = {
            "phiguard ingest CSV (sealed, durable, stored)": _ours(root, csv),
            "phiguard ingest Parquet (sealed, durable, stored)": _ours(root, parquet),
            "phiguard framing + validation only (CSV)": _parse_only(csv),
            "anchor: audit log append_batch alone, same lines": _log_only(root, csv),
            "anchor: pyarrow read_csv alone": _pyarrow(csv),
            "anchor: pandas read_csv + to_parquet (unsealed)": _pandas(root, csv),
        }
        for name, secs in results.items():
            print(f"{name:55s} {N / secs:>12,.0f} events/s  ({secs:.2f} s)")
        ours = N / results["phiguard ingest CSV (sealed, durable, stored)"]
        log = N / results["anchor: audit log append_batch alone, same lines"]
        pandas = N / results["anchor: pandas read_csv + to_parquet (unsealed)"]
        print(
            f"ratio ingest CSV / log alone: {ours / log:.2f}×; "
            f"ingest CSV / pandas (unsealed): {ours / pandas:.2f}×"
        )
        print(
            f"phiguard ingest per CPU-second (median CPU time of the runs, all threads): "
            f"CSV {N / CPU['.csv']:,.0f} events; Parquet {N / CPU['.parquet']:,.0f} events; "
            f"load average at the end {os.getloadavg()[0]:.1f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
