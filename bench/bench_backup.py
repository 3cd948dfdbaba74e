"""Backup and restore of a populated home vs ``tar | zstd -3 -T0`` of the same folder.

Quick (default): builds a home of 100,000 patients and 7 days of events in a scratch folder.
``--home PATH`` measures an existing home instead (read only: the backup reads it, nothing is
recorded in it, the restore goes to a scratch folder that is deleted afterwards); this is how
the full-size home (7.5 M patients, 100 M events) is measured. ``--build PATH`` only builds the
quick home at PATH, for repeated runs with ``--home``.

The anchor archives the same folder without a consistent snapshot and without encryption, so
it is the floor for the same bytes through the same compressor. Backup and anchor alternate,
``--repeat`` times each; medians are reported. Restore plus full audit verification runs in a
child process so its peak memory can be reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyrage import x25519

from bench.common import FULL, run_child


def build(home: Path, patients: int, days: int) -> None:
    from phiguard.app import App
    from phiguard.audit.ingest import ingest_files
    from phiguard.demo.generator import generate
    from phiguard.settings import Settings
    from phiguard.storage.importer import import_file

    data = home.with_name(home.name + ".data")
    generate(data, patients=patients, days=days, seed=7)
    app = App.init(Settings(home=home))
    try:
        for kind in ("vendors", "accounts", "patients", "grants", "encounters"):
            import_file(app, kind, data / f"{kind}.csv")
        ingest_files(app, [data / "events.parquet"])
    finally:
        app.close()
        shutil.rmtree(data, ignore_errors=True)


def tree_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.rglob("*") if p.is_file())


def backup_once(home: Path, out: Path, recipient: str, work: Path) -> float:
    """Snapshot and archive ``home`` to ``out`` without writing anything into the home (the
    database copy goes to ``work``; no audit entry is recorded)."""
    from phiguard.app import App
    from phiguard.backup import service
    from phiguard.settings import Settings

    app = App.open(Settings(home=home), migrate=False)
    try:
        t = time.perf_counter()
        service.write(app, out, [x25519.Recipient.from_str(recipient)], work_dir=work)
        return time.perf_counter() - t
    finally:
        app.close()


def anchor_once(home: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(f"tar -C {home} -cf - . | zstd -3 -q -T0 -o {out}", shell=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, help="measure this existing home (read only)")
    ap.add_argument("--build", type=Path, help="only build the quick home at this path")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-restore", action="store_true")
    ap.add_argument(
        "--scratch", type=Path, default=None, help="folder for backups and the restored home"
    )
    args = ap.parse_args()
    patients, days = (7_500_000, 30) if FULL else (100_000, 7)
    if args.build:
        build(args.build, patients, days)
        return
    tmp = Path(tempfile.mkdtemp(prefix="phg-bench-backup-", dir=args.scratch))
    try:
        home = args.home
        if home is None:
            home = tmp / "home"
            build(home, patients, days)
        identity = x25519.Identity.generate()
        key = tmp / "id.key"
        key.write_text(f"{identity}\n")
        os.chmod(key, 0o600)
        size = tree_bytes(home)
        print(f"home: {home} ({size / 1e6:,.0f} MB); load {os.getloadavg()[0]:.2f}", flush=True)

        ours, anchor = [], []
        for i in range(args.repeat):
            out = tmp / "b.phgbak"
            out.unlink(missing_ok=True)
            ours.append(backup_once(home, out, str(identity.to_public()), tmp))
            a = tmp / "anchor.tar.zst"
            a.unlink(missing_ok=True)
            anchor.append(anchor_once(home, a))
            print(
                f"  run {i + 1}: phiguard {ours[-1]:.2f} s, tar | zstd {anchor[-1]:.2f} s, "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        mo, ma = statistics.median(ours), statistics.median(anchor)
        print(
            f"backup create: phiguard {mo:.2f} s ({size / mo / 1e6:,.0f} MB/s, "
            f"{out.stat().st_size / 1e6:,.0f} MB written); tar | zstd -3 -T0 {ma:.2f} s "
            f"({a.stat().st_size / 1e6:,.0f} MB); ratio {mo / ma:.2f}× the anchor's time "
            f"(target ≤ 2×); load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        a.unlink()
        if args.no_restore:
            return
        restored = tmp / "restored"
        code = (
            "import json; from pathlib import Path; from phiguard.backup import service; "
            f"print(json.dumps(service.restore(Path({str(out)!r}), Path({str(key)!r}), "
            f"Path({str(restored)!r}))))"
        )
        secs, peak, stdout = run_child(code)
        print(
            f"restore + full audit verification: {secs:.1f} s, peak RSS {peak:,.0f} MiB "
            f"(target ≤ 15 min at full size); {stdout.strip()}; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
