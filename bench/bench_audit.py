"""Audit log benchmarks: durable ingest, full re-verification, inclusion proofs on a big tree.

    .venv/bin/python -m bench.bench_audit            # quick sizes
    BENCH_SCALE=full .venv/bin/python -m bench.bench_audit

Anchors, in the same run: pymerkle's SQLite tree appending (and proving) the same entries,
and the raw limit of the machine (SHA-256 of every entry + append + fdatasync per batch).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from hashlib import sha256
from pathlib import Path

from bench.common import FULL
from phiguard.app import App
from phiguard.audit.journal import NodeFiles
from phiguard.audit.merkle import hash_pairs, inclusion_proof
from phiguard.audit.verify import verify_log
from phiguard.settings import Settings

EVENTS = 2_000_000 if FULL else 300_000
BATCH = 10_000
BIG_TREE = 100_000_000 if FULL else 10_000_000
PROOFS = 20_000


def _events(n: int) -> list[bytes]:
    base = (
        b"E{:09d},CMS,{:09d},2026-04-03T01:12:00+08:00,vx-eng-07,export,P{:07d},"
        b"name;sex;hkid;hospital_no;dob;procedure,q-88812,10.20.30.40,WS-0042,HOPERAT,success,"
    )
    row = base.decode()
    out = []
    for i in range(n):
        line = row.format(i, i, i % 9_999_999).encode()
        out.append(line + b"x" * (300 - len(line)))
    return out


def bench_ingest(root: Path, events: list[bytes]) -> tuple[float, float, Path]:
    home = root / "home"
    app = App.init(Settings(home=home))
    log = app.audit
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        log.append_batch("CMS", events[i : i + BATCH])
    single = len(events) / (time.perf_counter() - t)
    # two concurrent writers (e.g. the HTTP endpoint and the syslog listener): group commit
    half = len(events) // 2

    def writer(part: list[bytes]) -> None:
        for i in range(0, len(part), BATCH // 2):
            log.append_batch("ePR", part[i : i + BATCH // 2])

    threads = [threading.Thread(target=writer, args=(p,)) for p in (events[:half], events[half:])]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    concurrent = len(events) / (time.perf_counter() - t)
    app.close()
    return single, concurrent, home


def bench_pymerkle(root: Path, events: list[bytes]) -> tuple[float, object]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(root / "pymerkle.db"))
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        tree.append_entries(events[i : i + BATCH])
    return len(events) / (time.perf_counter() - t), tree


def bench_raw(root: Path, events: list[bytes]) -> float:
    fd = os.open(root / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        digests = [sha256(b"\x00" + e).digest() for e in chunk]
        os.write(fd, b"".join(chunk) + b"".join(digests))
        os.fdatasync(fd)
    rate = len(events) / (time.perf_counter() - t)
    os.close(fd)
    return rate


def bench_verify(home: Path, n_events: int) -> tuple[float, float]:
    app = App.open(Settings(home=home), migrate=False)
    t = time.perf_counter()
    report = verify_log(app.audit)
    elapsed = time.perf_counter() - t
    assert report.ok, report.findings
    entries = report.entries
    app.close()
    # the floor for any verifier in Python: re-hash every leaf and every inner node once
    leaves = _events(min(n_events, 500_000))
    t = time.perf_counter()
    level = [sha256(b"\x00" + e).digest() for e in leaves]
    while len(level) > 1:
        level = hash_pairs(level) + ([level[-1]] if len(level) % 2 else [])
    floor = len(leaves) / (time.perf_counter() - t)
    return entries / elapsed, floor


def bench_proofs(root: Path) -> tuple[float, float, float]:
    """Inclusion proofs from a simulated tree of BIG_TREE leaves: its node files are written
    with random hashes (what a real tree of that size stores), then proofs are read."""
    folder = root / "bigtree"
    folder.mkdir()
    n = BIG_TREE
    level, count = 0, n
    chunk = 1 << 20
    while count:
        with (folder / f"{level:02d}.nodes").open("wb") as f:
            left = count
            while left:
                step = min(chunk, left)
                f.write(os.urandom(32 * step))
                left -= step
        level, count = level + 1, count >> 1
    nodes = NodeFiles(folder, writable=False)
    rng = random.Random(1)
    times = []
    for _ in range(PROOFS):
        i = rng.randrange(n - 7)  # the ragged right edge is exercised by n not a power of two
        t = time.perf_counter()
        inclusion_proof(nodes, i, n - 7)
        times.append(time.perf_counter() - t)
    nodes.close()
    times.sort()
    return statistics.median(times) * 1e3, times[int(0.99 * len(times))] * 1e3, times[-1] * 1e3


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=os.environ.get("BENCH_TMP")))
    try:
        events = _events(EVENTS)
        print(
            f"{EVENTS:,} events of {len(events[0])} bytes, batches of {BATCH:,}; tree {BIG_TREE:,} leaves"
        )
        ours, ours_conc, home = bench_ingest(root, events)
        anchor, tree = bench_pymerkle(root, events)
        raw = bench_raw(root, events)
        print(
            f"durable ingest: phiguard {ours:,.0f} events/s (two writers: {ours_conc:,.0f}); "
            f"pymerkle SqliteTree {anchor:,.0f} events/s; ratio {ours / anchor:.2f}×; "
            f"raw SHA-256+append+fdatasync {raw:,.0f} events/s (phiguard at {ours / raw:.0%} of it)"
        )
        rate, floor = bench_verify(home, EVENTS)
        print(
            f"full re-verification: phiguard {rate:,.0f} entries/s (decrypt, re-hash, every node, "
            f"every checkpoint); bare re-hash floor {floor:,.0f} entries/s; ratio {rate / floor:.2f}×"
        )
        rng = random.Random(2)
        size = tree.get_size()  # type: ignore[attr-defined]
        ptimes = []
        for _ in range(300):
            i = rng.randrange(1, size + 1)
            t = time.perf_counter()
            tree.prove_inclusion(i, size)  # type: ignore[attr-defined]
            ptimes.append(time.perf_counter() - t)
        ptimes.sort()
        med, p99, worst = bench_proofs(root)
        print(
            f"inclusion proof on {BIG_TREE:,} leaves (simulated node files): median {med:.3f} ms, "
            f"p99 {p99:.3f} ms, max {worst:.3f} ms; pymerkle SqliteTree on {size:,} leaves: "
            f"median {statistics.median(ptimes) * 1e3:.3f} ms, p99 {ptimes[int(0.99 * len(ptimes))] * 1e3:.3f} ms"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
