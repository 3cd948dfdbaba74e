"""Gateway overhead: the same queries through phiguard's gateway and directly to PostgreSQL,
same run, same client (psycopg), same database.

* point reads, pgbench-style (``SELECT … WHERE patient_id = $1`` with random keys, extended
  protocol, one connection): p50/p95 latency each way and the added p50;
* a 50,000-row result (``SELECT patient_id, name_en, sex, hospital_no FROM patients``):
  median seconds and rows/s each way, and the ratio.

The gateway runs in its own process (as in production), with recording on: every statement
and the 50,000 patient ids of each large result are sealed in the audit log.

    .venv/bin/python -m bench.bench_gateway [--patients 60000] [--reads 2000] [--large 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

ADMIN = os.environ.get("PHIGUARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROWS = 50_000


def _serve(home: str, upstream: str, q: mp.Queue) -> None:  # type: ignore[type-arg]
    from phiguard.app import App
    from phiguard.gateway.server import Gateway, GatewayThread
    from phiguard.gateway.settings import GatewaySettings
    from phiguard.settings import Settings

    app = App.open(Settings(home=Path(home)))
    thread = GatewayThread(Gateway(app, GatewaySettings(listen="127.0.0.1:0", upstream=upstream)))
    q.put(thread.start())
    q.get()  # wait for the stop signal
    thread.stop()
    app.close()


def _world(home: Path) -> str:
    from phiguard.access import common as ac
    from phiguard.access.assessments import record_training
    from phiguard.app import App
    from phiguard.settings import Settings
    from phiguard.storage.models import Account, Contract, Grant, Vendor

    app = App.init(Settings(home=home))
    now = app.clock.now()
    today = ac.hk_date(now)
    mac = b"\x00" * 16
    with app.session() as s:
        s.add(
            Vendor(
                vendor_id="VB",
                name="Bench Ltd",
                dpa_signed=True,
                last_assessment=today - timedelta(days=9),
                status="active",
                row_mac=mac,
            )
        )
        s.flush()
        s.add(
            Contract(
                contract_id="C-VB",
                vendor_id="VB",
                start=today - timedelta(days=9),
                end=today + timedelta(days=9),
                dpa_signed=True,
            )
        )
        s.add(
            Account(
                account_id="bench",
                employer="VB",
                role="vendor_engineer",
                department="IT",
                cluster="ALL",
                status="active",
                row_mac=mac,
            )
        )
    record_training(
        app, "bench", completed_on=today, expires_on=today + timedelta(days=9), actor="bench"
    )
    with app.session() as s:
        s.add(
            Grant(
                grant_id="G-bench",
                account_id="bench",
                scope_cluster="ALL",
                scope_fields="name,sex,hospital_no",
                actions="read",
                max_rows=ROWS,
                valid_from=now - timedelta(minutes=1),
                valid_to=now + timedelta(hours=4),
                purpose="SYSADMIN",
                approved_by="m",
                status="active",
                origin="request",
            )
        )
        ac.bump(s)
    app.close()
    return "G-bench"


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def point_reads(url: str, n: int, keys: int) -> list[float]:
    rnd = random.Random(7)
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(50):
            conn.execute(
                "SELECT name_en, sex FROM patients WHERE patient_id = %s",
                (f"P{rnd.randrange(keys):07d}",),
                prepare=True,
            ).fetchone()
        for _ in range(n):
            key = f"P{rnd.randrange(keys):07d}"
            t = time.perf_counter()
            conn.execute(
                "SELECT name_en, sex FROM patients WHERE patient_id = %s", (key,), prepare=True
            ).fetchone()
            out.append(time.perf_counter() - t)
    return out


def large(url: str, repeats: int) -> list[float]:
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(repeats):
            t = time.perf_counter()
            rows = conn.execute(
                "SELECT patient_id, name_en, sex, hospital_no FROM patients "
                "ORDER BY patient_id LIMIT %s",
                (ROWS,),
            ).fetchall()
            out.append(time.perf_counter() - t)
            assert len(rows) == ROWS, len(rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=60_000)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--large", type=int, default=5)
    a = ap.parse_args()
    from phiguard.app import App
    from phiguard.gateway.credentials import issue
    from phiguard.gateway.sample import sample_database
    from phiguard.settings import Settings

    with tempfile.TemporaryDirectory() as tmp, sample_database(ADMIN, a.patients) as upstream:
        home = Path(tmp) / "home"
        gid = _world(home)
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        proc = ctx.Process(target=_serve, args=(str(home), upstream, q))
        proc.start()
        host, port = q.get(timeout=120)
        app = App.open(Settings(home=home))
        via = issue(app, gid, actor="bench").url(host, port, upstream.rsplit("/", 1)[1])
        app.close()
        try:
            d_lat = point_reads(upstream, a.reads, a.patients)
            g_lat = point_reads(via, a.reads, a.patients)
            d_big = large(upstream, a.large)
            g_big = large(via, a.large)
        finally:
            q.put("stop")
            proc.join(120)
    dp50, gp50 = statistics.median(d_lat) * 1e3, statistics.median(g_lat) * 1e3
    print(f"point reads ({a.reads} each way, extended protocol, {a.patients:,} patients)")
    print(f"  direct   p50 {dp50:.3f} ms  p95 {_percentile(d_lat, 0.95) * 1e3:.3f} ms")
    print(f"  gateway  p50 {gp50:.3f} ms  p95 {_percentile(g_lat, 0.95) * 1e3:.3f} ms")
    print(f"  added p50 {gp50 - dp50:.3f} ms (target <= 1 ms)")
    dm, gm = statistics.median(d_big), statistics.median(g_big)
    print(f"{ROWS:,}-row result ({a.large} runs each way)")
    print(f"  direct   median {dm:.3f} s  {ROWS / dm:,.0f} rows/s")
    print(f"  gateway  median {gm:.3f} s  {ROWS / gm:,.0f} rows/s")
    print(f"  throughput ratio {dm / gm:.2f} of direct (target >= 0.50)")


if __name__ == "__main__":
    main()
