"""Backup and restore of a populated home vs ``tar | zstd -3 -T0`` of the same folder.

Quick (default): builds a home of 100,000 patients and 7 days of events in a scratch folder.
``--home PATH`` measures an existing home instead, read only: the backup reads it (the
database copy goes to the scratch folder, nothing is recorded in the home), the restore goes
to the scratch folder, which is deleted afterwards. This is how the full-size home (7.5 M
patients, 100 M events) is measured. ``--build PATH`` only builds the quick home at PATH.

The anchor archives the same folder without a consistent snapshot and without encryption, so
it is the floor for the same bytes through the same compressor. Backup and anchor alternate,
``--repeat`` times each; medians are reported. ``--sink null`` sends both to /dev/null (a
home too big for the free disk; ours still does all its work but the final fsync).

Restore modes: ``file`` restores the last backup file into a new home; ``stream`` restores
from a pipe fed by a fresh backup running at the same time (no backup file on disk; an upper
bound, both share the cores); ``parts`` for a home the free disk cannot hold a second time:
times each part of a restore separately — ``backup verify`` from a pipe (decrypt,
decompress, untar, hash: all but the writes), the disk's write rate (dd with fdatasync) for
the bytes a restore writes, and ``verify_log`` (what restore runs last) on the home itself;
``none``.
Each backup and restore runs in a child process that reports its own time (Python start-up
and imports excluded: a fixed cost, not throughput) and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import FULL


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


BACKUP = """
import json, resource, time
from pathlib import Path
from pyrage import x25519
from phiguard.app import App
from phiguard.backup import service
from phiguard.settings import Settings
import phiguard.storage.events  # its imports (pyarrow: ~0.3 s) are start-up, not throughput
app = App.open(Settings(home=Path({home!r})), migrate=False)
t = time.perf_counter()
s = service.write(app, Path({out!r}), [x25519.Recipient.from_str({recipient!r})],
                  work_dir=Path({work!r}))
secs = time.perf_counter() - t
app.close()
print(json.dumps({{"seconds": secs, "files": s.files, "tree_size": s.tree_size,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

RESTORE = """
import json, resource, time
from pathlib import Path
import phiguard.audit.verify as v
from phiguard.backup import service
spent = []
inner = v.verify_log
def timed(*a, **k):
    t = time.perf_counter()
    try:
        return inner(*a, **k)
    finally:
        spent.append(time.perf_counter() - t)
v.verify_log = timed
t = time.perf_counter()
r = service.restore(Path({backup!r}), Path({key!r}), Path({to!r}))
secs = time.perf_counter() - t
rss = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF,
          resource.RUSAGE_CHILDREN)) / 1024
print(json.dumps({{"seconds": secs, "verify": sum(spent), "rss": rss, **r}}))
"""


VERIFY = """
import json, resource, time
from pathlib import Path
from phiguard.backup import service
t = time.perf_counter()
r = service.verify(Path({backup!r}), Path({key!r}))
print(json.dumps({{"seconds": time.perf_counter() - t, "files": r["files"],
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

AUDIT = """
import json, resource, time
from pathlib import Path
from phiguard.app import App
from phiguard.audit.verify import verify_log
from phiguard.settings import Settings
app = App.open(Settings(home=Path({home!r})), migrate=False)
t = time.perf_counter()
report = verify_log(app.audit)
secs = time.perf_counter() - t
rss = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF,
          resource.RUSAGE_CHILDREN)) / 1024
print(json.dumps({{"seconds": secs, "ok": report.ok, "entries": report.entries, "rss": rss}}))
app.close()
"""


def write_rate(folder: Path, size: int = 4 << 30) -> float:
    """Bytes per second this disk takes, written and flushed (dd, 1 MiB blocks)."""
    target = folder / "dd.bin"
    t = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size >> 20}", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    rate = size / (time.perf_counter() - t)
    target.unlink()
    return rate


def restore_parts(home: Path, size: int, backup: dict[str, str], key: Path, tmp: Path) -> None:
    pipe = tmp / "pipe"
    os.mkfifo(pipe)
    reader = child(VERIFY.format(backup=str(pipe), key=str(key)))
    result(child(BACKUP.format(out=str(pipe), **backup)))
    extract = result(reader)
    rate = write_rate(tmp, min(4 << 30, max(256 << 20, size)))
    audit = result(child(AUDIT.format(home=str(home))))
    writes = size / rate
    low = max(extract["seconds"], writes) + audit["seconds"]
    high = extract["seconds"] + writes + audit["seconds"]
    print(
        f"restore parts: backup verify from a pipe {extract['seconds']:.1f} s (peak RSS "
        f"{extract['rss']:,.0f} MiB; a backup ran at the same time); writing "
        f"{size / 1e9:.1f} GB at {rate / 1e6:,.0f} MB/s (dd) {writes:.1f} s; audit verify of "
        f"{audit['entries']:,} entries {audit['seconds']:.1f} s (ok {audit['ok']}, peak RSS "
        f"{audit['rss']:,.0f} MiB); restore + verification ≈ {low:,.0f}–{high:,.0f} s "
        f"(target ≤ 15 min = 900 s); load {load()}",
        flush=True,
    )


def child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, help="measure this existing home (read only)")
    ap.add_argument("--build", type=Path, help="only build the quick home at this path")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sink", choices=("file", "null"), default="file")
    ap.add_argument("--restore", choices=("file", "stream", "parts", "none"), default="file")
    ap.add_argument("--scratch", type=Path, help="parent folder of the scratch folder")
    args = ap.parse_args()
    if args.restore == "file" and args.sink == "null":
        ap.error("--restore file needs --sink file (use --restore stream)")
    patients, days = (7_500_000, 30) if FULL else (100_000, 7)
    if args.build:
        build(args.build, patients, days)
        return
    from pyrage import x25519

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
        files = [p for p in home.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        print(f"home: {home}, {len(files):,} files, {size / 1e9:,.2f} GB; load {load()}")
        out = Path("/dev/null") if args.sink == "null" else tmp / "b.phgbak"
        anchor_out = "/dev/null" if args.sink == "null" else str(tmp / "anchor.tar.zst")
        backup = {"home": str(home), "recipient": str(identity.to_public()), "work": str(tmp)}
        ours, anchor, written, anchor_written = [], [], 0, 0
        for i in range(args.repeat):
            if out != Path("/dev/null"):
                out.unlink(missing_ok=True)
            r = result(child(BACKUP.format(out=str(out), **backup)))
            ours.append(r["seconds"])
            written = out.stat().st_size if out.is_file() else 0
            t = time.perf_counter()
            subprocess.run(
                f"tar -C {home} -cf - . | zstd -3 -q -T0 -c > {anchor_out}", shell=True, check=True
            )
            anchor.append(time.perf_counter() - t)
            if anchor_out != "/dev/null":
                anchor_written = os.path.getsize(anchor_out)
                os.unlink(anchor_out)
            print(
                f"  run {i + 1}: phiguard {ours[-1]:.2f} s (peak RSS {r['rss']:,.0f} MiB), "
                f"tar | zstd {anchor[-1]:.2f} s; load {load()}",
                flush=True,
            )
        mo, ma = statistics.median(ours), statistics.median(anchor)
        sizes = f", {written / 1e9:.2f} GB vs {anchor_written / 1e9:.2f} GB" if written else ""
        print(
            f"backup create ({args.sink}): phiguard {mo:.2f} s ({size / mo / 1e6:,.0f} MB/s); "
            f"tar | zstd -3 -T0 {ma:.2f} s ({size / ma / 1e6:,.0f} MB/s); "
            f"ratio {mo / ma:.2f}× the anchor's time (target ≤ 2×){sizes}; load {load()}",
            flush=True,
        )
        if args.restore == "none":
            return
        if args.restore == "parts":
            restore_parts(home, size, backup, key, tmp)
            return
        restored = tmp / "restored"
        src = out
        if args.restore == "stream":
            src = tmp / "pipe"
            os.mkfifo(src)
        rest = child(RESTORE.format(backup=str(src), key=str(key), to=str(restored)))
        if args.restore == "stream":
            result(child(BACKUP.format(out=str(src), **backup)))
        r = result(rest)
        note = " (upper bound: a backup ran at the same time)" if args.restore == "stream" else ""
        print(
            f"restore + full audit verification ({args.restore}): {r['seconds']:.1f} s, of "
            f"which audit verify {r['verify']:.1f} s{note}; peak RSS {r['rss']:,.0f} MiB; "
            f"{r['tree_size']:,} entries (manifest {r['manifest_tree_size']:,}), "
            f"verified {r['verified']} (target ≤ 15 min at full size); load {load()}",
            flush=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
