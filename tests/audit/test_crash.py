"""kill -9 at random moments: every acknowledged entry survives and the log verifies.

Each trial forks a writer (two threads appending, a publisher signing every few ms, small
segments so that rotations happen) and SIGKILLs it after a random delay, so deaths land in
writes, fsyncs, segment creation, checkpoint records and state.json replacement. The
parent then recovers the log in a fresh object, checks every acknowledged entry byte for
byte, and appends (recovery must leave a writable log).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from phiguard.audit import log as log_module
from phiguard.audit.log import AuditLog
from phiguard.clock import FixedClock
from tests.audit.conftest import reopen, verify_home

TRIALS = 200


def _entry(seed: int, j: int) -> bytes:
    return b"%d:%d:" % (seed, j) + bytes([65 + (seed + j) % 26]) * ((seed * 7 + j) % 90)


def _child(home: Path, clock: FixedClock, seed: int, ack_fd: int) -> None:
    log_module.SEGMENT_BYTES = 16 * 1024  # rotate often
    app = reopen(home, clock)
    log = AuditLog(app, interval=0.003)

    def writer(tag: int) -> None:
        k = 0
        while True:
            n = 1 + (seed + k) % 40
            base = (seed * 1000 + tag * 100_000 + k) * 100
            r = log.append_batch("CMS", [_entry(base, j) for j in range(n)])
            os.write(ack_fd, b"%d %d %d\n" % (r.first_index, r.count, base))
            k += 1

    for tag in (1, 2):
        threading.Thread(target=writer, args=(tag,), daemon=True).start()
    time.sleep(10)


def _acks(raw: bytes) -> list[tuple[int, int, int]]:
    out = []
    for line in raw.split(b"\n"):
        parts = line.split()
        if len(parts) == 3:  # a line cut by the kill was never fully acknowledged to us
            out.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return out


def test_kill_dash_nine_loses_nothing_acknowledged(home: Path, clock: FixedClock) -> None:
    rng = random.Random(20260402)
    acked: dict[int, bytes] = {}
    total_acks = 0
    for trial in range(TRIALS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            os.close(r)
            try:
                _child(home, clock, trial, w)
            finally:
                os._exit(0)
        os.close(w)
        chunks = []
        if trial % 4:  # most kills land after the writer got going, some during its recovery
            chunks.append(os.read(r, 65536))
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        for first, count, base in _acks(b"".join(chunks)):
            total_acks += 1
            for j in range(count):
                acked[first + j] = _entry(base, j)
        # restart: recovery in a fresh log object, then a normal append
        app = reopen(home, clock)
        log = AuditLog(app, interval=0)
        stored = dict(log.entries(0, None)) if trial % 20 == 19 or trial == TRIALS - 1 else None
        receipt = log.append_batch("RESTART", [b"after kill %d" % trial])
        acked[receipt.first_index] = b"after kill %d" % trial
        if stored is None:
            lo = max(0, receipt.first_index - 200)
            stored = dict(log.entries(lo, receipt.first_index))
            expect = {i: v for i, v in acked.items() if lo <= i < receipt.first_index}
        else:
            expect = {i: v for i, v in acked.items() if i < receipt.first_index}
        log.close()
        app.close()
        missing = [i for i, v in expect.items() if stored.get(i) != v]
        assert not missing, f"trial {trial}: acknowledged entries lost or changed: {missing[:5]}"
        if trial % 20 == 19:
            report = verify_home(home)
            assert report.ok, (trial, [str(f) for f in report.findings])
    assert total_acks >= TRIALS * 3 // 4  # the kills did land while appends were acknowledged
    report = verify_home(home)
    assert report.ok, [str(f) for f in report.findings]
    assert report.checkpoints > TRIALS
