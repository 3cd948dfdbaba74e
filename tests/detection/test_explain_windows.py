"""What explains an access, at the edges: several encounters of one patient with the same
account or department (merged into one window, or not when far apart), accesses in the gap
between them, open-ended encounters, accesses that begin before a window and end inside it.
The pack's answer is compared with the definition applied access by access in Python; and the
pack computed one day at a time (DuckDB) is compared with the same pack in one pass."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.clock import HKT
from phiguard.detection.engines import EVENT_SCHEMA, open_engine
from phiguard.detection.pack import PackResult, Window, run_pack
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference, to_us
from phiguard.settings import Settings
from tests.detection.conftest import assert_same_results, run_world

DAY = timedelta(days=1)
T0 = datetime(2026, 3, 1, tzinfo=HKT)
ACCOUNTS = {"dr-a": "MED", "dr-b": "MED", "dr-c": "SURG"}


def _hospital(seed: int) -> tuple[Reference, list[dict[str, Any]], list[dict[str, Any]]]:
    rnd = random.Random(seed)
    patients = [f"P{i:03d}" for i in range(12)]
    encounters = []
    for pid in patients:
        for _ in range(rnd.randint(0, 3)):
            start = T0 + timedelta(hours=rnd.randint(0, 24 * 80))
            length = None if rnd.random() < 0.15 else timedelta(hours=rnd.randint(1, 24 * 5))
            who = rnd.choice([*ACCOUNTS, None])
            encounters.append(
                {
                    "patient_id": pid,
                    "department": ACCOUNTS[who] if who else rnd.choice(["MED", "SURG"]),
                    "account_id": who,
                    "start_us": to_us(start),
                    "end_us": None if length is None else to_us(start + length),
                }
            )
    events = []
    for i in range(600):
        at = T0 + timedelta(minutes=rnd.randint(0, 60 * 24 * 120))
        events.append(
            {
                "event_id": f"E{i:05d}",
                "source": "CMS",
                "seq": i + 1,
                "ts": at.astimezone(UTC),
                "account_id": rnd.choice(list(ACCOUNTS)),
                "action": "read",
                "patient_id": rnd.choice(patients),
                "fields": "notes",
                "outcome": "success",
            }
        )
    ref = Reference.from_rows(
        accounts=[
            {"account_id": a, "role": "doctor", "department": d, "cluster": "HKWC"}
            for a, d in ACCOUNTS.items()
        ],
        patients=[{"patient_id": p, "cluster": "HKWC", "vip": False} for p in patients],
        encounters=encounters,
    )
    return ref, encounters, events


def _expected(
    encounters: list[dict[str, Any]], events: list[dict[str, Any]], p: DetectionSettings
) -> dict[str, int]:
    """The definition, access by access: an encounter of the account (or of its department)
    explains an access whose span meets [start - before, end + after]; open ones never end."""
    before = int(p.explain_before_days * 86_400_000_000)
    after = int(p.explain_after_days * 86_400_000_000)
    spans: dict[tuple[str, str, Any], list[int]] = {}
    for e in events:
        us = to_us(e["ts"]) or 0
        key = (e["account_id"], e["patient_id"], e["ts"].astimezone(HKT).date())
        spans.setdefault(key, []).append(us)

    def meets(enc: dict[str, Any], first: int, last: int) -> bool:
        end_ok = enc["end_us"] is None or first <= enc["end_us"] + after
        return last >= enc["start_us"] - before and end_ok

    out = {"accesses": 0, "explained": 0, "by_account": 0, "by_department": 0}
    for (acc, pid, _), ts in spans.items():
        first, last = min(ts), max(ts)
        mine = [e for e in encounters if e["patient_id"] == pid]
        by_acc = any(e["account_id"] == acc and meets(e, first, last) for e in mine)
        by_dep = any(e["department"] == ACCOUNTS[acc] and meets(e, first, last) for e in mine)
        out["accesses"] += 1
        out["explained"] += by_acc or by_dep
        out["by_account"] += len(ts) if by_acc else 0
        out["by_department"] += len(ts) if by_dep and not by_acc else 0
    return out


def _run(ref: Reference, events_uri: Path, p: DetectionSettings, *, chunked: bool) -> PackResult:
    eng = open_engine("duckdb", settings=Settings(), detect=p)
    eng.chunked = chunked  # type: ignore[misc]
    try:
        return run_pack(eng, ref, p, Window(None, None, p.baseline_days), events_uri=events_uri)
    finally:
        eng.close()


def test_explanations_match_the_definition_access_by_access(tmp_path: Path) -> None:
    p = DetectionSettings()
    for seed in range(4):
        ref, encounters, events = _hospital(seed)
        path = tmp_path / f"events-{seed}.parquet"
        pq.write_table(pa.Table.from_pylist(events, EVENT_SCHEMA), path)
        want = _expected(encounters, events, p)
        for chunked in (True, False):
            ex = _run(ref, str(path), p, chunked=chunked).explain
            assert ex["accesses"] == want["accesses"], (seed, chunked)
            assert round(ex["explained_access_share"] * ex["accesses"]) == want["explained"]
            assert round(ex["by_account_encounter"] * ex["events"]) == want["by_account"]
            assert round(ex["by_department_encounter"] * ex["events"]) == want["by_department"]


def test_day_by_day_and_one_pass_give_the_same_alerts(
    world_dir: Path, reference: Reference, duck_result: PackResult
) -> None:
    assert_same_results(run_world("duckdb", world_dir, reference, chunked=False), duck_result)
