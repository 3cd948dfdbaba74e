"""Helpers shared by the benchmarks: timing, medians, peak memory of a child process."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

FULL = os.environ.get("BENCH_SCALE") == "full"


def median_time(
    fn: Callable[[], Any], repeat: int = 3, setup: Callable[[], Any] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_child(code: str) -> tuple[float, float, str]:
    """Run ``code`` in a fresh interpreter; return (seconds, peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, res.stdout


def report(title: str, ours: float, anchor: float, unit: str, anchor_name: str) -> None:
    print(
        f"{title}: phiguard {ours:,.0f} {unit}; {anchor_name} {anchor:,.0f} {unit}; "
        f"ratio {ours / anchor:.2f}×"
    )
