"""Backup and restore of a populated home vs ``tar | zstd -3`` of the same folder.

Quick: 100,000 patients and ~2 million events. ``BENCH_SCALE=full``: 7.5 million patients and
100 million events (needs the generator's full-size output; hours of preparation on 2 cores).
The anchor compresses without encrypting and without taking a consistent snapshot, so it is the
floor for the same bytes through the same compressor.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import FULL


def main() -> None:
    from phiguard.app import App
    from phiguard.audit.ingest import ingest_files
    from phiguard.backup import service
    from phiguard.demo.generator import generate
    from phiguard.settings import Settings
    from phiguard.storage.importer import import_file

    patients, days = (7_500_000, 30) if FULL else (100_000, 7)
    tmp = Path(tempfile.mkdtemp(prefix="phg-bench-backup-"))
    try:
        data = tmp / "data"
        generate(data, patients=patients, days=days, seed=7)
        home = tmp / "home"
        app = App.init(Settings(home=home))
        for kind in ("vendors", "accounts", "patients", "grants", "encounters"):
            import_file(app, kind, data / f"{kind}.csv")
        ingest_files(app, [data / "events.parquet"])
        key = tmp / "id.key"
        service.keygen(app, key)
        size = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
        print(
            f"home: {patients:,} patients, audit log of {app.audit.size:,} entries, {size / 1e6:,.0f} MB"
        )

        t = time.perf_counter()
        service.create(app, tmp / "b.phgbak")
        ours = time.perf_counter() - t
        app.close()

        t = time.perf_counter()
        subprocess.run(
            f"tar -C {home} -cf - . | zstd -3 -q -T0 -o {tmp / 'anchor.tar.zst'}",
            shell=True,
            check=True,
        )
        anchor = time.perf_counter() - t
        print(
            f"backup create: phiguard {ours:.2f} s ({size / ours / 1e6:,.0f} MB/s); "
            f"tar | zstd -3 {anchor:.2f} s; ratio {ours / anchor:.2f}× the anchor's time "
            f"(target ≤ 2×)"
        )

        t = time.perf_counter()
        service.restore(tmp / "b.phgbak", key, tmp / "restored")
        restore = time.perf_counter() - t
        print(f"restore + full audit verification: {restore:.2f} s (target ≤ 15 min at full scale)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
