"""A small hand-made hospital for the detection tests: one month of ordinary work with every
rule's scenario planted on the last day (2026-04-03) or during the month, plus decoys.

Everything is in the spec's input formats (so CLI tests import it through the real importer)
and deterministic (fixed seed), so DuckDB and Spark must produce identical alerts over it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.clock import HKT
from phiguard.detection.engines import EVENT_SCHEMA
from phiguard.detection.settings import DetectionSettings

D0 = datetime(2026, 3, 1, tzinfo=HKT)
LAST = 33  # 2026-04-03
SURNAMES = ["CHAN", "WONG", "LEE", "CHEUNG", "LAU", "HO", "NG", "LEUNG"]
MED_STAFF = ["d01", "d02", "d03", "d04", "d05", "n01", "n02", "n03", "n04"]

# Thresholds scaled to a hospital of 1,200 patients.
SETTINGS = dict(
    bulk_rows_min=100,
    bulk_rows_high=500,
    bulk_rows_critical=1000,
    grant_violation_rows_critical=1000,
    rare_hour_min_history_events=100,
    slow_min_patients=80,
    baseline_days=45,
)

# What must be found: rule -> account (or subject).
PLANTED = {
    "bulk_export": "vx-eng-07",
    "outside_grant": "vx-eng-07",
    "after_contract_end": "vy-01",
    "vip_no_relationship": "n02",
    "self_access": "n03",
    "coworker": "n04",
    "family": "d02",
    "dormant_reactivated": "d06",
    "two_places": "d05",
    "denied_burst": "n01",
    "slow_exfiltration": "c01",
    "source_gap": "source:CMS",
}
DECOYS = ("svc-nightly", "e01", "d03")  # nightly export under a grant; busy ED shift; same surname


def settings(**extra: Any) -> DetectionSettings:
    return DetectionSettings(**{**SETTINGS, **extra})


def ip_of(account: str) -> str:
    return f"10.1.{1 if account[0] == 'd' else 4}.{int(account[1:])}"


def at(day: int, h: int, m: int = 0, s: int = 0) -> datetime:
    return D0 + timedelta(days=day, hours=h, minutes=m, seconds=s)


@dataclass
class World:
    patients: list[dict[str, str]] = field(default_factory=list)
    accounts: list[dict[str, str]] = field(default_factory=list)
    vendors: list[dict[str, str]] = field(default_factory=list)
    grants: list[dict[str, str]] = field(default_factory=list)
    encounters: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def spec(self) -> dict[str, list[dict[str, str]]]:
        return {
            "patients": self.patients,
            "accounts": self.accounts,
            "vendors": self.vendors,
            "grants": self.grants,
            "encounters": self.encounters,
        }

    def event_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.events, schema=EVENT_SCHEMA)

    def write(self, folder: Path) -> Path:
        """Spec CSVs and events.parquet into ``folder``; returns the events file."""
        import csv

        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in self.spec().items():
            with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        pq.write_table(self.event_table(), folder / "events.parquet")
        return folder / "events.parquet"


def _patient(
    i: int, surname: str | None = None, address: str | None = None, vip: bool = False
) -> dict[str, str]:
    return {
        "patient_id": f"P{i:05d}",
        "hkid": "",
        "hospital_no": "",
        "name_en": f"{surname or SURNAMES[i % 8]} Tai Man",
        "name_zh": "",
        "sex": "MF"[i % 2],
        "dob": "1970-01-01",
        "cluster": ["KEC", "HKWC", "KCC"][i % 3],
        "phone": "",
        "address": address or f"Flat {i}, Block A, Sau Mau Ping Estate",
        "app_registered": "false",
        "vip": "true" if vip else "false",
    }


def _account(
    aid: str,
    role: str,
    dept: str,
    *,
    employer: str = "HA",
    name: str = "",
    address: str = "",
    patient_id: str = "",
    cluster: str = "KEC",
    active_from: str = "2020-01-01",
    active_to: str = "",
) -> dict[str, str]:
    return {
        "account_id": aid,
        "person_name": name or f"CHAN {aid.upper()}",
        "employer": employer,
        "role": role,
        "department": dept,
        "cluster": cluster,
        "active_from": active_from,
        "active_to": active_to,
        "patient_id": patient_id,
        "home_address": address or f"Staff Quarters {aid}",
    }


def build(seed: int = 7) -> World:
    rnd = random.Random(seed)
    w = World()
    for i in range(1300):
        if i == 902:
            w.patients.append(_patient(i, "KWOK", "Flat 9, Kwok House, Kowloon Bay"))
        else:
            w.patients.append(_patient(i, vip=i in (7, 1107)))
    for a in MED_STAFF:
        role = "doctor" if a.startswith("d") else "nurse"
        extra: dict[str, str] = {}
        if a == "d01":
            extra = {"patient_id": "P00900"}
        if a == "n03":
            extra = {"patient_id": "P00901"}
        if a == "d02":
            extra = {"name": "KWOK Wing", "address": "Flat 9 Kwok House, Kowloon Bay"}
        if a == "d03":
            extra = {"name": "CHAN Tai Keung"}  # shares the commonest surname with patients
        w.accounts.append(_account(a, role, "MED", **extra))
    w.accounts += [
        _account("d06", "doctor", "MED"),
        _account("c01", "clerk", "MED"),
        _account("e01", "doctor", "AED"),
        _account("vx-eng-07", "vendor_engineer", "IT", employer="V012", cluster="ALL"),
        _account("vy-01", "vendor_engineer", "IT", employer="V013", cluster="ALL"),
        _account("svc-nightly", "service", "IT", name="", address="", cluster="ALL"),
    ]
    w.vendors = [
        {
            "vendor_id": "V012",
            "name": "Vendor Twelve",
            "contract_id": "C-12",
            "contract_start": "2025-01-01",
            "contract_end": "2026-12-31",
            "dpa_signed": "true",
            "last_assessment": "",
        },
        {
            "vendor_id": "V013",
            "name": "Vendor Thirteen",
            "contract_id": "C-13",
            "contract_start": "2025-01-01",
            "contract_end": "2026-03-20",
            "dpa_signed": "true",
            "last_assessment": "",
        },
    ]

    def grant(
        gid: str,
        acc: str,
        cluster: str,
        fields: str,
        actions: str,
        rows: int,
        start: str,
        end: str,
        purpose: str,
    ) -> dict[str, str]:
        return {
            "grant_id": gid,
            "account_id": acc,
            "scope_cluster": cluster,
            "scope_fields": fields,
            "actions": actions,
            "max_rows": str(rows),
            "valid_from": start,
            "valid_to": end,
            "purpose": purpose,
            "approved_by": "d01",
        }

    w.grants = [
        grant(
            "G1",
            "vx-eng-07",
            "HKWC",
            "name,sex,hospital_no",
            "read,search,export",
            50,
            "2026-02-01T00:00:00+08:00",
            "2026-05-01T00:00:00+08:00",
            "HOPERAT",
        ),
        grant(
            "G2",
            "svc-nightly",
            "ALL",
            "*",
            "export",
            5000,
            "2026-01-01T00:00:00+08:00",
            "2026-12-31T00:00:00+08:00",
            "SYSADMIN",
        ),
        grant(
            "G3",
            "vy-01",
            "HKWC",
            "name,sex",
            "read",
            50,
            "2026-01-01T00:00:00+08:00",
            "2026-06-30T00:00:00+08:00",
            "HOPERAT",
        ),
    ]
    start = (D0 - timedelta(days=60)).isoformat()
    for i in range(900):  # MED in-patients, each with a named clinician; department explains
        w.encounters.append(
            {
                "patient_id": f"P{i:05d}",
                "department": "MED",
                "account_id": MED_STAFF[i % 4],
                "start": start,
                "end": "",
            }
        )
    for i in range(1000, 1200):  # AED attendances
        w.encounters.append(
            {
                "patient_id": f"P{i:05d}",
                "department": "AED",
                "account_id": "",
                "start": start,
                "end": "",
            }
        )

    ev: list[dict[str, Any]] = []

    def add(
        acc: str,
        ts: datetime,
        pid: str | None,
        *,
        action: str = "read",
        fields: str = "name,sex,hospital_no",
        query: str | None = None,
        ip: str | None = None,
        outcome: str = "success",
        source: str = "CMS",
    ) -> None:
        ev.append(
            {
                "source": source,
                "ts": ts,
                "account_id": acc,
                "action": action,
                "patient_id": pid,
                "fields": fields,
                "query_id": query,
                "client_ip": ip or "10.1.0.1",
                "device_id": f"ws-{acc}",
                "purpose": "TREAT",
                "outcome": outcome,
            }
        )

    med = [f"P{i:05d}" for i in range(900)]
    aed = [f"P{i:05d}" for i in range(1000, 1200)]
    for day in range(LAST + 1):
        for a in MED_STAFF:
            for k in range(25):
                add(a, at(day, 9, rnd.randrange(0, 480)), rnd.choice(med), ip=ip_of(a))
        for k in range(20):
            add("e01", at(day, 10, rnd.randrange(0, 420)), rnd.choice(aed), ip="10.1.2.1")
        for k in range(4):
            add("c01", at(day, 10, rnd.randrange(0, 300)), rnd.choice(med), ip="10.1.3.1")
        if day < LAST:
            for k in range(5):
                add(
                    "vx-eng-07",
                    at(day, 14, rnd.randrange(0, 120)),
                    f"P{3 * rnd.randrange(0, 300) + 1:05d}",
                    ip="10.7.0.7",
                )
        qid = f"q-nightly-{day}"
        for k in range(400):  # nightly export under a valid grant (decoy)
            add(
                "svc-nightly",
                at(day, 2, 0, k),
                f"P{(day * 37 + k) % 1200:05d}",
                action="export",
                fields="name,sex",
                query=qid,
                ip="10.0.0.2",
                source="REPORTS",
            )
        if day <= 2:
            for k in range(25):
                add("d06", at(day, 9, rnd.randrange(0, 480)), rnd.choice(med), ip=ip_of("d06"))
    # decoy: the ED doctor's busy, fully explained shift
    for k in range(300):
        add("e01", at(20, 8, 0, k * 60), aed[k % 200], ip="10.1.2.1")
    # decoy: the clerk batch-prints 200 of the department's patients
    for k in range(200):
        add("c01", at(15, 11, 0, k), med[k], action="print", query="q-print-1", ip="10.1.3.1")
    # slow exfiltration: the clerk opens 10 patients a day that nothing explains
    for day in range(24, LAST + 1):
        for k in range(10):
            add("c01", at(day, 15, k), f"P{1200 + (day - 24) * 10 + k:05d}", ip="10.1.3.1")
    # after the vendor's contract ended
    for k in range(5):
        add("vy-01", at(25, 14, k), f"P{3 * k + 1:05d}", ip="10.8.0.1")
    # the seed: a contractor export of 1,500 KEC patients at night, over the grant
    kec = [f"P{i:05d}" for i in range(0, 1200, 3)]  # 400 KEC patients
    kec = (kec * 4)[:1500]
    for k, pid in enumerate(kec):
        add(
            "vx-eng-07",
            at(LAST, 1, 12, k),
            pid if k < 400 else f"P{(k * 3) % 1200:05d}",
            action="export",
            fields="name,sex,hkid,hospital_no,procedure",
            query="q-88812",
            ip="10.7.0.7",
        )
    add("n02", at(LAST, 10, 5), "P01107", ip=ip_of("n02"))  # VIP, no care relationship
    add("n03", at(LAST, 10, 6), "P00901", ip=ip_of("n03"))  # own record
    add("n04", at(LAST, 10, 7), "P00900", ip=ip_of("n04"))  # co-worker d01's record
    add("d02", at(LAST, 10, 8), "P00902", ip=ip_of("d02"))  # family (surname + address)
    for k in range(25):  # denied burst
        add("n01", at(LAST, 11, 0, k * 10), med[k], outcome="denied", ip=ip_of("n01"))
    for k in range(8):  # one account, two places at once
        add("d05", at(LAST, 12, 0, k * 30), med[k], ip=ip_of("d05") if k % 2 else "10.200.0.9")
    for k in range(25):  # dormant account reactivated from a new address
        add("d06", at(LAST, 13, k), med[k], ip="10.66.0.1")

    ev.sort(key=lambda e: (e["ts"], e["account_id"], e["patient_id"] or ""))
    seqs: dict[str, int] = {}
    for i, e in enumerate(ev):
        seqs[e["source"]] = seqs.get(e["source"], 0) + 1
        if e["source"] == "CMS" and seqs["CMS"] == 5_000:
            seqs["CMS"] += 12  # twelve events never arrived
        e["seq"] = seqs[e["source"]]
        e["event_id"] = f"{e['source']}-{e['seq']}"
    w.events = ev
    return w
