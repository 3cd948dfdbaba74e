"""``phiguard demo generate``: a synthetic Hong Kong public hospital in the spec's formats.

:func:`generate` writes, into ``out``::

    patients.csv  accounts.csv  vendors.csv  grants.csv  encounters.csv   (or .parquet)
    events.parquet                                                          (or events.csv)
    labels.json       every planted scenario and decoy, and the leaked dump's contents
    leak/dump.csv     the seed export as it surfaced on a third-party platform

The same ``seed`` (and parameters) gives byte-identical files. Work happens in a staging
folder next to ``out`` that replaces it only when everything is written, so a failure never
leaves a half-written hospital. Memory stays bounded: patients are a few integers each and
rendered to text a chunk at a time; events are produced and written an hour at a time.

Pieces: :mod:`gen_people` (patients, HKIDs, hospital numbers, addresses), :mod:`gen_names`,
:mod:`gen_staff` (accounts, vendors, grants), :mod:`gen_encounters`, :mod:`gen_activity`
(routine multi-row work), :mod:`gen_scenarios` (planted scenarios and decoys),
:mod:`gen_events` (streaming), :mod:`gen_leak` (the dump).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from phiguard.demo import gen_activity, gen_decoys, gen_scenarios
from phiguard.demo.gen_batch import Extras, FieldTable
from phiguard.demo.gen_common import (
    CLUSTERS,
    DAY_US,
    DEPTS,
    ids,
    iso_local_array,
    local_midnight_us,
    patient_ids,
)
from phiguard.demo.gen_encounters import KINDS, Encounters, make_encounters
from phiguard.demo.gen_events import (
    EVENT_SCHEMA,
    WRITE_SCHEMA,
    ArrowEncoder,
    EventStream,
    noise_pool,
)
from phiguard.demo.gen_leak import write_dump
from phiguard.demo.gen_people import Population, make_population, render_patients
from phiguard.demo.gen_staff import (
    ROLES,
    SEED_ENGINEER,
    SEED_VENDOR,
    Staff,
    add_service_grants,
    make_grants,
    make_staff,
    person_names,
)
from phiguard.errors import UsageError

Progress = Callable[[str, int, int], None]
FORMATS = ("csv", "parquet")
EVENTS_PER_PATIENT_DAY = 1.0
MIN_PATIENTS = 1_000
MAX_DAYS = 366
PATIENT_CHUNK = 250_000
ROW_GROUP = 1 << 20
SEED_DAY = date(2026, 4, 3)  # the night of the April 2026 export


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote."""

    out: Path
    seed: int
    start: date
    days: int
    counts: dict[str, int]  # rows per file name (``patients.csv`` …)
    labels: Path
    leak_dump: Path | None
    scenarios: int
    decoys: int
    explained_share: float  # share of routine clinical look-ups explained by an encounter
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)


def generate(
    out: Path,
    *,
    patients: int,
    days: int,
    seed: int,
    fmt: str = "csv",
    start: date | None = None,
    scenarios: bool = True,
    progress: Progress | None = None,
    events: int | None = None,
    events_format: str = "parquet",
    overwrite: bool = False,
) -> GenerationSummary:
    """Write a synthetic hospital of ``patients`` patients and ``days`` days of access events.

    ``events`` (routine events, default one per patient and day) sets the volume; planted
    scenarios and routine multi-row work add to it. ``start`` defaults to the day that puts the
    seed export on the night of 3 April 2026. ``fmt`` is the format of the reference files,
    ``events_format`` that of the events. An ``out`` that already holds a generated hospital is
    replaced only with ``overwrite``.
    """
    t_begin = time.perf_counter()
    _check(
        out,
        patients=patients,
        days=days,
        fmt=fmt,
        events=events,
        events_format=events_format,
        scenarios=scenarios,
        overwrite=overwrite,
    )
    start = start or SEED_DAY - timedelta(days=days - 1)
    n_events = int(
        events if events is not None else round(patients * days * EVENTS_PER_PATIENT_DAY)
    )
    report = progress or (lambda stage, done, total: None)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        summary = _generate(
            staging,
            patients=patients,
            days=days,
            seed=seed,
            fmt=fmt,
            start=start,
            scenarios=scenarios,
            report=report,
            n_events=n_events,
            events_format=events_format,
        )
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.out = out
    summary.labels = out / "labels.json"
    summary.leak_dump = out / "leak" / "dump.csv" if summary.leak_dump else None
    summary.files = {name: out / name for name in summary.counts}
    summary.seconds = time.perf_counter() - t_begin
    return summary


def _check(
    out: Path,
    *,
    patients: int,
    days: int,
    fmt: str,
    events: int | None,
    events_format: str,
    scenarios: bool,
    overwrite: bool,
) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (expected csv or parquet)")
    if events_format not in FORMATS:
        raise UsageError(f"unknown events format {events_format!r} (expected parquet or csv)")
    floor = MIN_PATIENTS if scenarios else 100
    if patients < floor:
        raise UsageError(f"--patients must be at least {floor:,}")
    if patients > 9_999_999:
        raise UsageError("--patients must be below 10 million (patient ids have 7 digits)")
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"--days must be between 1 and {MAX_DAYS}")
    if events is not None and events < 0:
        raise UsageError("--events must not be negative")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty (use --overwrite to replace it)")


def _publish(staging: Path, out: Path) -> None:
    if out.exists():
        for item in out.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
        for item in staging.iterdir():
            os.replace(item, out / item.name)
        staging.rmdir()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, out)


def _generate(
    out: Path,
    *,
    patients: int,
    days: int,
    seed: int,
    fmt: str,
    start: date,
    scenarios: bool,
    report: Progress,
    n_events: int,
    events_format: str,
) -> GenerationSummary:
    w0 = local_midnight_us(start)
    w1 = w0 + days * DAY_US
    report("people", 0, 3)
    pop = make_population(patients, seed, start)
    report("people", 1, 3)
    staff = make_staff(pop, seed, start, days)
    make_grants(staff, seed, w0, w1)
    plan = gen_scenarios.plan(pop, staff, seed, start, days) if scenarios else None
    exclude = plan.exclude if plan else np.zeros(pop.n, dtype=bool)
    noise = noise_pool(pop, staff, exclude)
    if plan:
        gen_decoys.plant_decoys(plan, noise)
    report("people", 2, 3)
    enc = make_encounters(pop, staff, seed, start, days, exclude)
    if plan and plan.encounters:
        enc = Encounters.concat([enc, *plan.encounters])
    enc = enc.sorted()
    report("people", 3, 3)
    # Routine multi-row work and grant-bound work, then the scenarios' events.
    fields = FieldTable()
    ex = Extras()
    gen_activity.ward_lists(ex, enc, staff, fields, seed=seed, start=start, days=days)
    largest, handles = gen_activity.nightly_exports(
        ex, enc, staff, fields, seed=seed, start=start, days=days
    )
    add_service_grants(staff, w0, w1, [max(1_000, -(-2 * x // 1_000) * 1_000) for x in largest])
    gen_activity.grant_work(
        ex,
        staff,
        fields,
        noise,
        seed=seed,
        start=start,
        days=days,
        skip=plan.skip_work if plan else set(),
    )
    if plan:
        plan.emit(ex, fields, noise)
    extras = ex.finalize()
    if plan:
        gen_decoys.service_labels(plan, handles, ex)
    counts: dict[str, int] = {}
    ext = fmt
    counts[f"patients.{ext}"] = _write_patients(out / f"patients.{ext}", pop, fmt, report)
    counts.update(_write_reference(out, pop, staff, enc, fmt))
    stream = EventStream(
        pop=pop,
        staff=staff,
        enc=enc,
        extras=extras,
        fields=fields,
        noise=noise,
        start=start,
        days=days,
        events=n_events,
        seed=seed,
    )
    events_name = f"events.{events_format}"
    counts[events_name] = _write_events(
        out / events_name, stream, staff, fields, events_format, report
    )
    leak: dict[str, Any] | None = None
    if plan:
        seed_label = plan.planted[0]
        eng = seed_label.account
        vendor = staff.vendors[SEED_VENDOR]
        assert eng == vendor.engineers[SEED_ENGINEER - 1]
        earlier = extras.patient[(extras.account == eng) & (extras.ts < plan.at(days - 1, 1, 12))]
        leak = write_dump(
            out,
            pop,
            plan.export_patients,
            earlier,
            seed=seed,
            query_id=ex.query_id(seed_label.handles[0]),
            account_id=staff.account_ids[eng],
            vendor_id=vendor.vendor_id,
        )
        seed_label.details["previous_daily_max"] = _previous_daily_max(extras, eng, w0, days - 1)
        seed_label.details["dump"] = "leak/dump.csv"
    labels = _labels(
        pop,
        staff,
        enc,
        plan,
        ex,
        leak,
        counts,
        seed=seed,
        start=start,
        days=days,
        n_events=n_events,
        stream=stream,
        fmt=fmt,
        events_format=events_format,
    )
    (out / "labels.json").write_text(
        json.dumps(labels, ensure_ascii=False, indent=1) + "\n", "utf-8"
    )
    st = stream.stats
    explained = st.encounter_events / max(1, st.encounter_events + st.noise_events)
    return GenerationSummary(
        out=out,
        seed=seed,
        start=start,
        days=days,
        counts=counts,
        labels=out / "labels.json",
        leak_dump=out / "leak" / "dump.csv" if leak else None,
        scenarios=sum(1 for s in labels["scenarios"] if not s["decoy"]),
        decoys=sum(1 for s in labels["scenarios"] if s["decoy"]),
        explained_share=explained,
        seconds=0.0,
    )


def _previous_daily_max(extras: Any, account: int, w0: int, before_day: int) -> int:
    mine = extras.ts[(extras.account == account) & (extras.ts < w0 + before_day * DAY_US)]
    if len(mine) == 0:
        return 0
    return int(np.bincount((mine - w0) // DAY_US).max())


# -- writers -----------------------------------------------------------------------------


class _TableWriter:
    """CSV or Parquet, written in chunks."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self._w: Any = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._w is None:
            if self.fmt == "parquet":
                self._w = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                self._w = pacsv.CSVWriter(self.path, table.schema)
        self._w.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def _write_table(path: Path, table: pa.Table, fmt: str) -> int:
    w = _TableWriter(path, fmt)
    w.write(table)
    w.close()
    return table.num_rows


def _write_patients(path: Path, pop: Population, fmt: str, report: Progress) -> int:
    w = _TableWriter(path, fmt)
    for lo in range(0, pop.n, PATIENT_CHUNK):
        idx = np.arange(lo, min(pop.n, lo + PATIENT_CHUNK))
        w.write(render_patients(pop, idx))
        report("patients", int(idx[-1]) + 1, pop.n)
    w.close()
    return w.rows


def _ts_column(us: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    if fmt == "parquet":
        return pa.array(us, pa.timestamp("us", tz="+08:00"), mask=None if valid is None else ~valid)
    text = iso_local_array(us)
    if valid is not None:
        import pyarrow.compute as pc

        text = pc.if_else(pa.array(valid), text, pa.scalar(None, pa.string()))
    return text


def _dates(values: list[date | None]) -> pa.Array:
    return pa.array(values, pa.date32())


def _write_reference(
    out: Path, pop: Population, staff: Staff, enc: Encounters, fmt: str
) -> dict[str, int]:
    counts = {}
    names, homes = person_names(staff, pop)
    vendor_ids = [v.vendor_id for v in staff.vendors]
    accounts = pa.table(
        {
            "account_id": staff.account_ids,
            "person_name": pa.array(names, pa.string()),
            "employer": ["HA" if v < 0 else vendor_ids[v] for v in staff.vendor.tolist()],
            "role": [ROLES[r] for r in staff.role.tolist()],
            "department": [DEPTS[d] for d in staff.dept.tolist()],
            "cluster": ["ALL" if c < 0 else CLUSTERS[c] for c in staff.cluster.tolist()],
            "active_from": _dates(list(staff.active_from)),
            "active_to": _dates(list(staff.active_to)),
            "patient_id": patient_ids(np.maximum(staff.patient, 0), staff.patient >= 0),
            "home_address": pa.array(homes, pa.string()),
        }
    )
    counts[f"accounts.{fmt}"] = _write_table(out / f"accounts.{fmt}", accounts, fmt)
    vendors = pa.table(
        {
            "vendor_id": vendor_ids,
            "name": [v.name for v in staff.vendors],
            "contract_id": [v.contract_id for v in staff.vendors],
            "contract_start": _dates([v.contract_start for v in staff.vendors]),
            "contract_end": _dates([v.contract_end for v in staff.vendors]),
            "dpa_signed": [v.dpa_signed for v in staff.vendors],
            "last_assessment": _dates([v.last_assessment for v in staff.vendors]),
        }
    )
    counts[f"vendors.{fmt}"] = _write_table(out / f"vendors.{fmt}", vendors, fmt)
    g = staff.grants
    grants = pa.table(
        {
            "grant_id": [x.grant_id for x in g],
            "account_id": [staff.account_ids[x.account] for x in g],
            "scope_cluster": [
                "ALL" if x.scope_cluster < 0 else CLUSTERS[x.scope_cluster] for x in g
            ],
            "scope_fields": [x.scope_fields for x in g],
            "actions": [x.actions for x in g],
            "max_rows": pa.array([x.max_rows for x in g], pa.int64()),
            "valid_from": _ts_column(np.array([x.valid_from for x in g], dtype=np.int64), fmt),
            "valid_to": _ts_column(np.array([x.valid_to for x in g], dtype=np.int64), fmt),
            "purpose": [x.purpose for x in g],
            "approved_by": [staff.account_ids[x.approved_by] for x in g],
        }
    )
    counts[f"grants.{fmt}"] = _write_table(out / f"grants.{fmt}", grants, fmt)
    w = _TableWriter(out / f"encounters.{fmt}", fmt)
    accounts_arr = pa.array(staff.account_ids)
    for lo in range(0, enc.n, PATIENT_CHUNK):
        sl = slice(lo, min(enc.n, lo + PATIENT_CHUNK))
        acc = enc.account[sl]
        w.write(
            pa.table(
                {
                    "patient_id": patient_ids(enc.patient[sl]),
                    "department": pa.array(DEPTS).take(pa.array(enc.dept[sl].astype(np.int32))),
                    "account_id": accounts_arr.take(pa.array(np.maximum(acc, 0), mask=acc < 0)),
                    "start": _ts_column(enc.start[sl], fmt),
                    "end": _ts_column(enc.end[sl], fmt),
                    "encounter_id": ids("E", np.arange(sl.start, sl.stop) + 1, 8),
                    "kind": pa.array(KINDS).take(pa.array(enc.kind[sl].astype(np.int32))),
                }
            )
        )
    w.close()
    counts[f"encounters.{fmt}"] = w.rows
    return counts


def _write_events(
    path: Path, stream: EventStream, staff: Staff, fields: FieldTable, fmt: str, report: Progress
) -> int:
    """Stream events to ``path``: generation on this thread, encoding and writing on another.

    Row groups are exactly ``ROW_GROUP`` rows (the last one excepted); at most two are in
    flight, so memory stays bounded whatever the total.
    """
    encoder = ArrowEncoder(staff, fields)
    total = stream.total
    done = 0
    buffer: list[pa.Table] = []
    buffered = 0
    if fmt == "parquet":
        writer: Any = pq.ParquetWriter(path, WRITE_SCHEMA, compression="zstd", store_schema=False)
    else:
        csv_schema = pa.schema(
            [pa.field(f.name, pa.int64() if f.name == "seq" else pa.string()) for f in EVENT_SCHEMA]
        )
        writer = pacsv.CSVWriter(path, csv_schema)

    def write(table: pa.Table) -> None:
        if fmt == "parquet":
            writer.write_table(table, row_group_size=ROW_GROUP)
        else:
            writer.write_table(_as_csv(table, csv_schema))

    in_flight: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="phiguard-gen-writer") as pool:

        def submit(table: pa.Table) -> None:
            in_flight.append(pool.submit(write, table))
            while len(in_flight) > 2:
                in_flight.popleft().result()

        try:
            for batch in stream:
                table = encoder.encode(batch)
                buffer.append(table)
                buffered += table.num_rows
                done += table.num_rows
                if buffered >= ROW_GROUP:
                    joined = pa.concat_tables(buffer)
                    while joined.num_rows >= ROW_GROUP:
                        submit(joined.slice(0, ROW_GROUP))
                        joined = joined.slice(ROW_GROUP)
                    buffer, buffered = [joined], joined.num_rows
                    report("events", done, total)
            if buffered:
                submit(pa.concat_tables(buffer))
            while in_flight:
                in_flight.popleft().result()
            report("events", done, total)
        finally:
            for f in in_flight:
                f.cancel()
            pool.shutdown(wait=True)
            writer.close()
    return done


def _as_csv(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        col = table.column(f.name)
        if f.name == "ts":
            col = iso_local_array(col.combine_chunks().cast(pa.int64()).to_numpy(), millis=True)
        elif pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


# -- labels ------------------------------------------------------------------------------


def _labels(
    pop: Population,
    staff: Staff,
    enc: Encounters,
    plan: Any,
    ex: Extras,
    leak: dict[str, Any] | None,
    counts: dict[str, int],
    *,
    seed: int,
    start: date,
    days: int,
    n_events: int,
    stream: EventStream,
    fmt: str,
    events_format: str,
) -> dict[str, Any]:
    st = stream.stats
    roles = np.bincount(staff.role, minlength=len(ROLES))
    return {
        "generator": {
            "version": 1,
            "seed": seed,
            "patients": pop.n,
            "days": days,
            "start": start.isoformat(),
            "end": (start + timedelta(days=days - 1)).isoformat(),
            "timezone": "+08:00",
            "format": fmt,
            "events_format": events_format,
            "routine_events": n_events,
        },
        "files": counts,
        "hospital": {
            "patients_by_cluster": {
                c: int((pop.cluster == i).sum()) for i, c in enumerate(CLUSTERS)
            },
            "accounts_by_role": {r: int(roles[i]) for i, r in enumerate(ROLES)},
            "vendors": len(staff.vendors),
            "grants": len(staff.grants),
            "encounters": enc.n,
            "vip_patients": int(pop.vip.sum()),
            "staff_who_are_patients": int((staff.patient >= 0).sum()),
        },
        "events": {
            "total": counts.get(f"events.{events_format}", 0),
            "routine_explained": st.encounter_events,
            "routine_unexplained": st.noise_events,
            "searches_without_result": st.empty_searches,
            "prepared": st.extras,
        },
        "scenarios": plan.labels(ex) if plan else [],
        "leak": leak,
    }
