"""Day summaries of the access events, kept between detection runs.

Every run reads its baseline history again — a daily ``phiguard detect --since yesterday`` reads
the last 45 days — and most of a run's time goes into condensing each day's events into the
grains the rules read (ADR 9 in docs/dev/detection.md): one row per account, patient and day
(the accesses), per account, day and hour, per account, day and client, the day's denials
and per-source sequence ranges. Those condensed forms depend on the day's events and
nothing else: not on accounts, encounters, grants or settings. So they are written once, per
local day, as Parquet beside the run's spill folder and read back by later runs (ADR 10):

    ROOT/day=YYYY-MM-DD/
      accesses.parquet   ano, pno, n, first_us, last_us   (one row per account, patient, day)
      accounts.parquet   ano, account_id                  (the day's accounts, numbered)
      patients.parquet   pno, patient_id                  (the day's patients, numbered)
      acct_hour.parquet, acct_client.parquet, denied.parquet, source_day.parquet
                         the rows of the daily stages of those names (see PURE)
      day.json           {"key": …, "version": …, counts}

Accounts and patients are numbered per day so that the per-access joins of a later run hash
integers instead of strings (about 40 % of a day's time). A summary is used only when its
``key`` — a digest of the event files the day's rows come from (path, size, modification
time), the zone's offset and :data:`VERSION` — still matches; a day that gains events (a new
part file in the event store, a rewritten file) is condensed again. Writes go to a temporary
folder that is renamed into place, so a killed run leaves either the old summary or the new
one, never half of one. The files hold what the event store holds — pseudonymous account and
patient ids, no name or HKID — and are pruned with the events (:meth:`Rollups.prune`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from phiguard.audit.journal import fsync_dir
from phiguard.detection.rules.stages import ACCESS_EVENTS, FLAGS_SUM, KEPT, meets

VERSION = 1
log = logging.getLogger(__name__)
#: Daily stages (rules/stages.py) that read the day's events and nothing else: a summary
#: holds their rows as they are.
PURE = ("acct_hour", "acct_client", "denied", "source_day")
PARTS = ("accesses", "accounts", "patients", *PURE)
_DAY_DIR = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
#: The event store's partition dates are Hong Kong dates (phiguard.storage.events); a day's
#: partition then holds exactly that local day's events when detection runs in that offset.
STORE_OFFSET_US = 8 * 3_600_000_000
EPOCH = date(1970, 1, 1)
LEFT_BEHIND_S = 86_400  # a temporary folder untouched this long belongs to a killed run


def day_of(dayno: int) -> date:
    return EPOCH + timedelta(days=int(dayno))


def _stat(path: Path, base: Path) -> str:
    st = path.stat()
    return f"{path.relative_to(base).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}"


def source_keys(
    uri: str | None, offset_us: int | None
) -> tuple[Callable[[int], str], Callable[[date], bool]] | None:
    """A function giving the key of a local day's events at ``uri``, or None where no
    summaries can be kept (remote storage, no fixed offset, nothing there).

    A single file: every day's key covers the whole file. A hive-partitioned folder (the event
    store, ``date=YYYY-MM-DD/*.parquet``) read in the store's own offset: a day's key covers
    the files of its partition only, so new events today do not invalidate last week. Any
    other folder: every file."""
    if not uri or "://" in uri or offset_us is None:
        return None
    path = Path(uri)
    head = f"v{VERSION}\toffset={offset_us}"
    if path.is_file():
        whole = hashlib.sha256(f"{head}\n{_stat(path, path.parent)}".encode()).hexdigest()
        return (lambda _dayno: whole), _always
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        return None
    by_date: dict[str, list[str]] = {}
    partitioned = offset_us == STORE_OFFSET_US
    for f in files:
        m = _DATE_DIR.match(f.parent.name) if f.parent.parent == path else None
        if m is None:
            partitioned = False
            break
        by_date.setdefault(m.group(1), []).append(_stat(f, path))
    if partitioned:

        def per_day(dayno: int) -> str:
            listing = by_date.get(day_of(dayno).isoformat(), [])
            return hashlib.sha256("\n".join([head, *listing]).encode()).hexdigest()

        return per_day, lambda day: day.isoformat() in by_date
    listing = "\n".join([head, *(_stat(f, path) for f in files)])
    digest = hashlib.sha256(listing.encode()).hexdigest()
    return (lambda _dayno: digest), _always


def _always(_day: date) -> bool:
    return True


@dataclass(frozen=True)
class Rollups:
    """The summaries folder of one event source."""

    root: Path
    key_of: Callable[[int], str]
    present: Callable[[date], bool]

    @classmethod
    def for_source(
        cls, root: Path | None, uri: str | None, offset_us: int | None
    ) -> Rollups | None:
        if root is None:
            return None
        keys = source_keys(uri, offset_us)
        if keys is None:
            return None
        return cls(Path(root), *keys)

    def folder(self, dayno: int) -> Path:
        return self.root / f"day={day_of(dayno).isoformat()}"

    def find(self, dayno: int) -> Path | None:
        """The day's summary folder if it is complete and its key still matches."""
        folder = self.folder(dayno)
        try:
            meta = json.loads((folder / "day.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("version") != VERSION or meta.get("key") != self.key_of(dayno):
            return None
        if not all((folder / f"{part}.parquet").is_file() for part in PARTS):
            return None
        return folder

    def begin(self) -> Path:
        """A fresh temporary folder to write a day's summary into."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, dayno: int, counts: dict[str, int]) -> Path:
        """Move a written summary into place (replacing a stale one) and return its folder.
        When another run has just put a valid summary of the same events there, that one
        stays (a run reading it is never left without its files) and ``tmp`` is dropped."""
        meta = {"version": VERSION, "key": self.key_of(dayno), "day": str(day_of(dayno)), **counts}
        folder = self.folder(dayno)
        if self.find(dayno) is not None:
            self.abandon(tmp)
            return folder
        _write_synced(tmp / "day.json", json.dumps(meta, sort_keys=True).encode())
        for part in PARTS:
            fsync_dir(tmp / f"{part}.parquet", os.fsync)  # opens read-only, so files too
        old = None
        if folder.exists():
            old = self.root / f".old-{uuid.uuid4().hex}"
            os.replace(folder, old)
        os.replace(tmp, folder)
        fsync_dir(self.root, os.fsync)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def abandon(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def prune(self) -> int:
        """Remove the summaries of days whose events are gone (the event store's partition was
        deleted) and temporary folders a killed run left behind. Returns how many went."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for entry in self.root.iterdir():
            m = _DAY_DIR.match(entry.name)
            left_behind = entry.name.startswith((".tmp-", ".old-")) and (
                time.time() - entry.stat().st_mtime > LEFT_BEHIND_S
            )
            gone = m is not None and not self.present(date.fromisoformat(m.group(1)))
            stale = left_behind or gone
            if stale and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# -- the SQL (DuckDB: summaries are kept by engines that read the events day by day) -----

# A day's accesses, condensed from the day's ``ev`` view (the ``g`` of ACCESS_DAY).
DAY_ACCESSES = """
SELECT account_id, patient_id, CAST(count(*) AS INTEGER) AS n,
       min(ts_us) AS first_us, max(ts_us) AS last_us
FROM ev
WHERE ACCESS_EVENTS
GROUP BY account_id, patient_id
""".replace("ACCESS_EVENTS", ACCESS_EVENTS)
DAY_ACCOUNTS = """
SELECT CAST(row_number() OVER (ORDER BY account_id) AS INTEGER) AS ano, account_id
FROM (SELECT DISTINCT account_id FROM _day_g) d
"""
DAY_PATIENTS = """
SELECT CAST(row_number() OVER (ORDER BY patient_id) AS INTEGER) AS pno, patient_id
FROM (SELECT DISTINCT patient_id FROM _day_g) d
"""
DAY_CODED = """
SELECT da.ano, dp.pno, g.n, g.first_us, g.last_us
FROM _day_g g
JOIN _day_accounts da ON da.account_id = g.account_id
JOIN _day_patients dp ON dp.patient_id = g.patient_id
"""

# Once per run: departments numbered, and the department islands and accounts with them.
DEPARTMENTS = """
SELECT department, CAST(row_number() OVER (ORDER BY department) AS INTEGER) AS dno FROM (
  SELECT department FROM isl_department UNION SELECT department FROM acct_x
) d WHERE department IS NOT NULL
"""
ISL_DEPARTMENT_N = """
SELECT i.patient_id, d.dno, i.s, i.e, i.next_s
FROM isl_department i JOIN departments d ON d.department = i.department
"""
ACCT_XN = """
SELECT a.*, d.dno FROM acct_x a LEFT JOIN departments d ON d.department = a.department
"""

# Once per day: what the access pass joins, keyed by the day's account and patient numbers.
DAY_REFERENCE = {
    "day_acct": """
SELECT da.ano, a.dno, a.vendor_id, coalesce(a.needs_grant, false) AS needs_grant,
       (a.account_id IS NOT NULL) AS known, dp.pno AS own_pno, a.hh, a.from_day, a.to_day,
       a.suspended_us
FROM day_accounts da
LEFT JOIN acct_xn a ON a.account_id = da.account_id
LEFT JOIN day_patients dp ON dp.patient_id = a.patient_id
""",
    "day_isl_account": """
SELECT dp.pno, da.ano, i.s, i.e, i.next_s
FROM isl_account i
JOIN day_accounts da ON da.account_id = i.account_id
JOIN day_patients dp ON dp.patient_id = i.patient_id
""",
    "day_isl_department": """
SELECT dp.pno, i.dno, i.s, i.e, i.next_s
FROM isl_department_n i JOIN day_patients dp ON dp.patient_id = i.patient_id
""",
    "day_pflags": """
SELECT dp.pno, f.vip, f.holder, f.hh
FROM pflags f JOIN day_patients dp ON dp.patient_id = f.patient_id
""",
}

# ACCESS_DAY (rules/stages.py) over a day's summary: the same flags and the same rows, with
# the joins on the day's account and patient numbers. ``a.own_pno`` is NULL when the account
# holder's own record was not read that day, which is exactly when it differs from every
# patient of the day. Every account of the summary is in day_acct (unknown ones with
# known = false), so that join is an inner one.
ACCESS_DAY_SUMMARY = (
    """
WITH j AS (
  SELECT g.ano, g.pno, g.n, g.first_us, g.last_us, a.vendor_id, a.needs_grant,
         coalesce(f.vip, false) AS vip,
         (a.own_pno IS NOT NULL AND a.own_pno = g.pno) AS is_self,
         (f.holder IS NOT NULL AND (a.own_pno IS NULL OR a.own_pno <> g.pno)) AS is_coworker,
         (f.hh IS NOT NULL AND f.hh = a.hh AND (a.own_pno IS NULL OR a.own_pno <> g.pno))
             AS is_family,
         (a.known AND ia.s IS NOT NULL) AS by_account,
         (id.s IS NOT NULL) AS by_department,
         (NOT a.known OR coalesce({{ dayno }} > a.to_day, false)
          OR coalesce({{ dayno }} < a.from_day, false)
          OR coalesce(g.last_us >= a.suspended_us, false)) AS barred,
         ({{ dayno }} >= {{ w.report_dayno }} AND g.last_us >= {{ w.report_us }}) AS rep
  FROM day_accesses g
  JOIN day_acct a ON a.ano = g.ano
  LEFT JOIN day_isl_account ia ON ia.pno = g.pno AND ia.ano = g.ano MEETS_IA
  LEFT JOIN day_isl_department id ON id.pno = g.pno AND id.dno = a.dno MEETS_ID
  LEFT JOIN day_pflags f ON f.pno = g.pno
), k AS (
  SELECT ano, n, first_us, last_us, CASE WHEN KEPT THEN pno END AS pno, FLAGS_SUM AS flags
  FROM j
), r AS (
  SELECT ano, pno, flags, count(*) AS n_acc, CAST(sum(n) AS BIGINT) AS n,
         min(first_us) AS first_us, max(last_us) AS last_us
  FROM k GROUP BY ano, pno, flags
)
SELECT da.account_id, CAST({{ dayno }} AS BIGINT) AS dayno, dp.patient_id, r.flags, r.n_acc,
       r.n, r.first_us, r.last_us
FROM r
JOIN day_accounts da ON da.ano = r.ano
LEFT JOIN day_patients dp ON dp.pno = r.pno
""".replace("FLAGS_SUM", FLAGS_SUM)
    .replace("KEPT", KEPT)
    .replace("MEETS_IA", meets("ia"))
    .replace("MEETS_ID", meets("id"))
)


@dataclass
class DaySummary:
    """One day's summary, registered on the engine for the day's stages."""

    engine: Any
    written: bool  # condensed from the events in this run (False: read from disk)
    sql: dict[str, str]  # daily stage name -> the SQL that computes it from the summary
    tables: list[str]

    def close(self) -> None:
        for name in self.tables:
            self.engine.drop(name)


@dataclass
class DaySummaries:
    """The summaries a run reads and writes (see the module docstring)."""

    rollups: Rollups
    _prepared: bool = False

    def day(
        self, engine: Any, dayno: int, daily: list[str], render_day: Callable[..., str]
    ) -> DaySummary:
        """Register the summary of local day ``dayno`` as ``day_<part>`` relations — read from
        disk, or condensed now from the ``ev`` view (narrowed to the day) and written — and
        return the SQL of the daily stages over it."""
        folder = self.rollups.find(dayno)
        if folder is not None and not _intact(engine, folder):
            shutil.rmtree(folder, ignore_errors=True)  # damaged: condensed again, rewritten
            folder = None
        tables: list[str] = []
        if folder is None:
            tables = self._condense(engine, dayno, render_day)
        else:
            for part in PARTS:
                engine.parquet_view(f"day_{part}", folder / f"{part}.parquet")
        sql = {name: f"SELECT * FROM day_{name}" for name in PURE}
        if "access_day" in daily:
            if not self._prepared:
                engine.materialise("departments", DEPARTMENTS)
                engine.materialise("isl_department_n", ISL_DEPARTMENT_N)
                engine.materialise("acct_xn", ACCT_XN)
                self._prepared = True
            for name, query in DAY_REFERENCE.items():
                engine.materialise(name, query)
                tables.append(name)
            sql["access_day"] = render_day(ACCESS_DAY_SUMMARY, dayno=int(dayno))
        return DaySummary(engine, folder is None, sql, tables)

    def _condense(self, engine: Any, dayno: int, render_day: Callable[..., str]) -> list[str]:
        from phiguard.detection.rules.stages import STAGES

        engine.materialise("_day_g", render_day(DAY_ACCESSES))
        engine.materialise("_day_accounts", DAY_ACCOUNTS)
        engine.materialise("_day_patients", DAY_PATIENTS)
        engine.materialise("_day_accesses", DAY_CODED)
        engine.drop("_day_g")
        for name in PURE:
            engine.materialise(f"_day_{name}", render_day(STAGES[name].sql))
        tmp: Path | None = None
        try:
            tmp = self.rollups.begin()
            counts = {
                part: engine.export_parquet(f"_day_{part}", tmp / f"{part}.parquet")
                for part in PARTS
            }
            self.rollups.commit(tmp, dayno, counts)
        except (OSError, duckdb.IOException) as exc:
            # A summary is only a saving: a full disk or a read-only folder costs the next run
            # the time, never this run its result.
            log.warning("day summary of %s not kept: %s", day_of(dayno), exc)
            if tmp is not None:
                self.rollups.abandon(tmp)
        except BaseException:
            if tmp is not None:
                self.rollups.abandon(tmp)
            raise
        for part in PARTS:
            engine.view(f"day_{part}", f"SELECT * FROM _day_{part}")
        return [f"_day_{part}" for part in PARTS]


def _intact(engine: Any, folder: Path) -> bool:
    """Every part's row count (from its Parquet footer, so cheap) is the one recorded when the
    summary was written: a truncated or damaged file is caught before any stage reads it."""
    try:
        meta = json.loads((folder / "day.json").read_text())
        for part in PARTS:
            path = str(folder / f"{part}.parquet").replace("'", "''")
            n = engine.query(f"SELECT count(*) AS n FROM read_parquet('{path}')")[0]["n"]
            if int(n) != int(meta.get(part, -1)):
                return False
    except Exception:  # any unreadable part means: condense the day again
        return False
    return True
