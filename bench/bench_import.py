"""PMI import with encryption and blind indexes vs pandas ``read_csv`` + ``to_sql`` (no encryption).

Quick: 200,000 patients, median of 3. ``BENCH_SCALE=full``: 7,500,000 patients, once, with
peak memory of the importing process. ``--file PATH`` imports an existing patients CSV instead
(e.g. the generator's ``patients.csv``); ``--repeat N`` sets the runs.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from bench.common import FULL, median_time, report, run_child


def make_file(path: Path, n: int) -> None:
    """The test factory's patients; past the first million the factory's HKIDs repeat, so
    each further million gets its own two-letter prefix (all rows stay valid and unique)."""
    import csv

    from phiguard.identifiers.hkid import hkid_check_char
    from tests.factories import PATIENT_HEADER, patient_rows

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PATIENT_HEADER)
        w.writeheader()
        step = 100_000
        for start in range(0, n, step):
            rows = patient_rows(min(step, n - start), start=start)
            if start >= 1_000_000:
                prefix = "X" + chr(65 + start // 1_000_000)
                for r in rows:
                    digits = r["hkid"][-9:-3]
                    r["hkid"] = f"{prefix}{digits}({hkid_check_char(prefix, digits)})"
            w.writerows(rows)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, help="an existing patients CSV to import")
    parser.add_argument("--repeat", type=int, default=1 if FULL else 3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phg-bench-import-"))
    try:
        if args.file:
            src = args.file
            with src.open("rb") as f:
                n = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1
        else:
            n = 7_500_000 if FULL else 200_000
            src = tmp / "patients.csv"
            make_file(src, n)
        print(f"{n:,} patients, {src.stat().st_size / 1e6:.0f} MB CSV")
        home = tmp / "home"

        code = (
            "from pathlib import Path\n"
            "import time\n"
            "from phiguard.app import App\n"
            "from phiguard.settings import Settings\n"
            "from phiguard.storage.importer import import_file\n"
            f"app = App.open(Settings(home=Path({str(home)!r})))\n"
            "import os\n"
            "t = time.perf_counter(); c = os.times()\n"
            f"r = import_file(app, 'patients', Path({str(src)!r}))\n"
            "e = os.times()\n"
            "cpu = e.user + e.system + e.children_user + e.children_system - sum(c[:4])\n"
            "print(time.perf_counter() - t, r.inserted, cpu)\n"
        )
        times, peaks, cpus = [], [], []
        for _ in range(args.repeat):
            shutil.rmtree(home, ignore_errors=True)
            from phiguard.app import App
            from phiguard.settings import Settings

            App.init(Settings(home=home)).close()
            _, peak, out = run_child(code)
            secs, inserted, cpu = out.split()
            assert int(inserted) == n, out
            times.append(float(secs))
            cpus.append(float(cpu))
            peaks.append(peak)
        ours = sorted(times)[len(times) // 2]

        import pandas as pd

        db = tmp / "anchor.db"

        def anchor() -> None:
            con = sqlite3.connect(db)
            for chunk in pd.read_csv(src, chunksize=200_000, dtype=str):
                chunk.to_sql("patients", con, if_exists="append", index=False)
            con.commit()
            con.close()

        anchor_t = median_time(anchor, repeat=args.repeat, setup=lambda: db.unlink(missing_ok=True))
        report(
            "PMI import",
            n / ours,
            n / anchor_t,
            "patients/s",
            "pandas read_csv+to_sql (plain, no encryption)",
        )
        print(
            f"peak RSS of the importing process: {max(peaks):,.0f} MiB; CPU (all processes) "
            f"{sorted(cpus)[len(cpus) // 2] / n * 1e6:.1f} µs per patient"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
