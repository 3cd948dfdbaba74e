"""Audit log benchmarks: durable ingest, full re-verification, inclusion proofs on a big tree.

    .venv/bin/python -m bench.bench_audit            # quick sizes
    BENCH_SCALE=full .venv/bin/python -m bench.bench_audit

Anchors, in the same run: pymerkle's SQLite tree appending (and proving) the same entries,
and the raw limit of the machine (SHA-256 of every entry + append + fdatasync per batch).
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import statistics
import tempfile
import threading
import time
from hashlib import sha256
from pathlib import Path

from bench.common import FULL
from phiguard.app import App
from phiguard.audit.journal import NodeFiles, TopNodes
from phiguard.audit.merkle import hash_pairs, inclusion_proof
from phiguard.audit.verify import verify_log
from phiguard.settings import Settings

EVENTS = 2_000_000 if FULL else 300_000
BATCH = 10_000
BIG_TREE = 100_000_000 if FULL else 10_000_000
PROOFS = 20_000
REPEAT = 3


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


def bench_ingest(root: Path, events: list[bytes]) -> tuple[float, float, float, Path]:
    """Median of three single-writer runs (wall rate and rate per CPU-second), then one run
    of two concurrent writers."""
    home = root / "home"
    app = App.init(Settings(home=home))
    log = app.audit
    walls, cpus = [], []
    for _ in range(REPEAT):
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, len(events), BATCH):
            log.append_batch("CMS", events[i : i + BATCH])
        walls.append(len(events) / (time.perf_counter() - t))
        cpus.append(len(events) / (time.process_time() - c))
    single, per_cpu = statistics.median(walls), statistics.median(cpus)
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
    return single, per_cpu, concurrent, home


def bench_pymerkle(root: Path, events: list[bytes]) -> tuple[float, object]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(root / "pymerkle.db"))
    t = time.perf_counter()
    for i in range(0, len(events), BATCH):
        tree.append_entries(events[i : i + BATCH])
    return len(events) / (time.perf_counter() - t), tree


def bench_raw(root: Path, events: list[bytes]) -> float:
    fd = os.open(root / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    rates = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        for i in range(0, len(events), BATCH):
            chunk = events[i : i + BATCH]
            digests = [sha256(b"\x00" + e).digest() for e in chunk]
            os.write(fd, b"".join(chunk) + b"".join(digests))
            os.fdatasync(fd)
        rates.append(len(events) / (time.perf_counter() - t))
    os.close(fd)
    return statistics.median(rates)


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (verification workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_verify(home: Path, n_events: int) -> tuple[dict[int, tuple[float, float]], float]:
    """Full re-verification with 1 process and with the default pool; (wall rate, CPU rate)."""
    app = App.open(Settings(home=home), migrate=False)
    rates: dict[int, tuple[float, float]] = {}
    for workers in (1, os.cpu_count() or 1):
        t, c = time.perf_counter(), _cpu()
        report = verify_log(app.audit, workers=workers)
        elapsed, cpu = time.perf_counter() - t, _cpu() - c
        assert report.ok, report.findings
        rates[workers] = (report.entries / elapsed, report.entries / cpu)
    app.close()
    # the floor for any verifier in Python: re-hash every leaf and every inner node once
    leaves = _events(min(n_events, 500_000))
    t = time.perf_counter()
    level = [sha256(b"\x00" + e).digest() for e in leaves]
    while len(level) > 1:
        level = hash_pairs(level) + ([level[-1]] if len(level) % 2 else [])
    floor = len(leaves) / (time.perf_counter() - t)
    return rates, floor


def _write_tree(folder: Path, n: int, only: set[tuple[int, int]] | None = None) -> None:
    """Node files of an n-leaf tree filled with random hashes; with ``only``, sparse files of
    the full length holding random hashes at just those nodes (the rest reads as zeros)."""
    folder.mkdir()
    level, count = 0, n
    chunk = 1 << 20
    while count:
        with (folder / f"{level:02d}.nodes").open("wb") as f:
            if only is None:
                left = count
                while left:
                    step = min(chunk, left)
                    f.write(os.urandom(32 * step))
                    left -= step
            else:
                f.truncate(32 * count)
                for lv, index in only:
                    if lv == level:
                        os.pwrite(f.fileno(), os.urandom(32), 32 * index)
        level, count = level + 1, count >> 1


def _time_proofs(reader: object, size: int, indices: list[int]) -> tuple[float, float, float]:
    times = []
    for i in indices:
        t = time.perf_counter()
        inclusion_proof(reader, i, size)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times) * 1e3, times[int(0.99 * len(times))] * 1e3, times[-1] * 1e3


def bench_proofs(root: Path, n: int, sparse: bool) -> dict[str, tuple[float, float, float]]:
    """Inclusion proofs from a simulated tree of n leaves: its node files are written with
    random hashes (what a real tree of that size stores), then proofs are read. Sparse: only
    the nodes the sampled proofs read hold hashes (a 10^8-leaf tree without 6.4 GB of writes).
    Proofs go through TopNodes (what AuditLog.inclusion_proof uses) and, for comparison,
    straight to the node files."""
    folder = root / f"tree-{n}"
    size = n - 7  # the ragged right edge is exercised by a size that is not a power of two
    rng = random.Random(1)
    indices = [rng.randrange(size) for _ in range(PROOFS)]
    needed: set[tuple[int, int]] | None = None
    if sparse:
        needed = set()

        class Recorder:
            def node(self, level: int, index: int) -> bytes:
                needed.add((level, index))  # type: ignore[union-attr]
                return bytes(32)

        for i in indices:
            inclusion_proof(Recorder(), i, size)
    _write_tree(folder, n, needed)
    files = NodeFiles(folder, writable=False)
    top = TopNodes(files)
    t = time.perf_counter()
    top.extend(size)
    load = (time.perf_counter() - t) * 1e3
    out = {
        "TopNodes": _time_proofs(top, size, indices),
        "files only": _time_proofs(files, size, indices),
        "load": (load, 0.0, 0.0),
    }
    files.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=os.environ.get("BENCH_TMP")))
    try:
        events = _events(EVENTS)
        print(
            f"{EVENTS:,} events of {len(events[0])} bytes, batches of {BATCH:,}; tree {BIG_TREE:,} "
            f"leaves; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        ours, ours_cpu, ours_conc, home = bench_ingest(root, events)
        anchor, tree = bench_pymerkle(root, events)
        raw = bench_raw(root, events)
        print(
            f"durable ingest (median of {REPEAT}): phiguard {ours:,.0f} events/s "
            f"({ours_cpu:,.0f} per CPU-second; two writers: {ours_conc:,.0f}); "
            f"pymerkle SqliteTree {anchor:,.0f} events/s (one run); ratio {ours / anchor:.2f}×; "
            f"raw SHA-256+append+fdatasync {raw:,.0f} events/s (phiguard at {ours / raw:.0%} of it)"
        )
        rates, floor = bench_verify(home, EVENTS)
        pool = max(rates)
        print(
            f"full re-verification (decrypt, re-hash, every node, every checkpoint): "
            f"1 process {rates[1][0]:,.0f} entries/s ({rates[1][1]:,.0f} per CPU-second); "
            f"{pool} workers {rates[pool][0]:,.0f} entries/s ({rates[pool][1]:,.0f} per "
            f"CPU-second); bare re-hash floor {floor:,.0f} entries/s; "
            f"ratio {max(r[0] for r in rates.values()) / floor:.2f}x"
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
        p99 = ptimes[int(0.99 * len(ptimes))] * 1e3
        print(
            f"pymerkle SqliteTree proofs on {size:,} leaves: median "
            f"{statistics.median(ptimes) * 1e3:.3f} ms, p99 {p99:.3f} ms"
        )
        for n, sparse in ((BIG_TREE, False), (100_000_000, True)):
            if sparse and BIG_TREE >= 100_000_000:
                continue
            res = bench_proofs(root, n, sparse)
            kind = "sparse node files, full geometry" if sparse else "dense node files"
            for name in ("TopNodes", "files only"):
                med, p99, worst = res[name]
                print(
                    f"inclusion proof, {n:,} leaves ({kind}), {name}: median {med:.3f} ms, "
                    f"p99 {p99:.3f} ms, max {worst:.3f} ms"
                )
            print(f"  (TopNodes loaded the upper levels once in {res['load'][0]:.1f} ms)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
