"""Generator benchmark: a synthetic hospital with N access events, time and peak memory.

    .venv/bin/python -m bench.bench_generator                      # 2 million events
    .venv/bin/python -m bench.bench_generator --events 10000000    # 10 million
    BENCH_SCALE=full .venv/bin/python -m bench.bench_generator     # 100 million, 7.5M patients

Patients scale with events (7.5 million patients for 100 million events over 14 days), so a
run is the whole ``phiguard demo generate``: PMI, workforce, encounters, planted scenarios,
the leaked dump and the events. Each measurement runs in a fresh interpreter that reports its
own wall time, CPU time and peak RSS (``resource.getrusage``).

Anchor, in the same run: the physical limit — pyarrow writing the same number of rows with
the same 13 columns, types and compression, filled with random values and no realism at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import FULL

GOAL_EVENTS = 100_000_000
GOAL_SECONDS = 600
GOAL_RSS_MIB = 4096

_OURS = """
import json, resource, time
from pathlib import Path
from phiguard.demo.generator import generate
t, c = time.perf_counter(), time.process_time()
s = generate(Path({out!r}), patients={patients}, days={days}, seed=2026, events={events})
wall, cpu = time.perf_counter() - t, time.process_time() - c
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
events = s.counts["events.parquet"]
size = (Path({out!r}) / "events.parquet").stat().st_size
print(json.dumps(dict(wall=wall, cpu=cpu, rss=rss, events=events, bytes=size)))
"""

_ANCHOR = """
import json, resource, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from phiguard.demo.gen_common import dict_column, fixed_strings, digits, const_bytes
from phiguard.demo.gen_events import WRITE_SCHEMA
t, c = time.perf_counter(), time.process_time()
n, chunk = {events}, 1 << 20
rng = np.random.default_rng(1)
small = pa.array([f"v{{i}}" for i in range(64)])
accounts = pa.array([f"acct-{{i:05d}}" for i in range(80_000)])
w = pq.ParquetWriter({out!r}, WRITE_SCHEMA, compression="zstd", store_schema=False)
ts0 = 1_774_800_000_000_000
for lo in range(0, n, chunk):
    k = min(chunk, n - lo)
    num = lambda width: fixed_strings([digits(rng.integers(0, 10 ** width, k), width)])
    cols = [
        num(13), dict_column(rng.integers(0, 3, k), small), pa.array(np.arange(lo, lo + k)),
        pa.array(np.sort(ts0 + rng.integers(0, 3_600_000_000, k)), pa.timestamp("us", tz="UTC")),
        dict_column(rng.integers(0, 80_000, k), accounts),
        dict_column(rng.integers(0, 5, k), small),
        num(8), dict_column(rng.integers(0, 30, k), small), num(10),
        dict_column(rng.integers(0, 80_000, k), accounts),
        dict_column(rng.integers(0, 80_000, k), accounts),
        dict_column(rng.integers(0, 4, k), small), dict_column(rng.integers(0, 2, k), small),
    ]
    w.write_table(pa.Table.from_arrays(cols, schema=WRITE_SCHEMA), row_group_size=chunk)
w.close()
wall, cpu = time.perf_counter() - t, time.process_time() - c
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(wall=wall, cpu=cpu, rss=rss, events=n, bytes=0)))
"""


def _child(code: str) -> dict[str, float]:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=GOAL_EVENTS if FULL else 2_000_000)
    ap.add_argument("--patients", type=int, default=None, help="default: 7.5M per 100M events")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=1 if FULL else 3)
    args = ap.parse_args()
    patients = args.patients or max(1_000, round(args.events * 7_500_000 / GOAL_EVENTS))
    print(f"generator: {args.events:,} routine events, {patients:,} patients, {args.days} days, "
          f"{args.repeat} run(s) each; medians")  # fmt: skip
    ours, anchor = [], []
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="phiguard-bench-gen-"))
        try:
            code = _OURS.format(
                out=str(tmp / "hospital"), patients=patients, days=args.days, events=args.events
            )
            ours.append(_child(code))
            code = _ANCHOR.format(out=str(tmp / "random.parquet"), events=args.events)
            anchor.append(_child(code))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    events = med(ours, "events")
    for name, rows in (("phiguard generate", ours), ("anchor: pyarrow random rows", anchor)):
        rate = med(rows, "events") / med(rows, "wall")
        print(f"  {name:<28} wall {med(rows, 'wall'):8.1f} s  cpu {med(rows, 'cpu'):8.1f} s  "
              f"peak RSS {med(rows, 'rss'):7.0f} MiB  {rate:>12,.0f} events/s (wall)")  # fmt: skip
    print(f"  ratio phiguard/anchor: wall {med(ours, 'wall') / med(anchor, 'wall'):.2f}x, "
          f"cpu {med(ours, 'cpu') / med(anchor, 'cpu'):.2f}x; events.parquet "
          f"{med(ours, 'bytes') / events:.1f} bytes/event")  # fmt: skip
    scale = GOAL_EVENTS / events
    print(f"  linear extrapolation to {GOAL_EVENTS:,} events: "
          f"wall {med(ours, 'wall') * scale:,.0f} s, "
          f"cpu {med(ours, 'cpu') * scale:,.0f} s (goal <= {GOAL_SECONDS} s wall, "
          f"<= {GOAL_RSS_MIB} MiB peak)")  # fmt: skip


if __name__ == "__main__":
    main()
