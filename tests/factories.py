"""Small reference-data files for tests, written in the spec's formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.identifiers import HospitalNumberFormat, hkid_check_char

PATIENT_HEADER = [
    "patient_id",
    "hkid",
    "hospital_no",
    "name_en",
    "name_zh",
    "sex",
    "dob",
    "cluster",
    "phone",
    "address",
    "app_registered",
    "vip",
]
SURNAMES = ["CHAN", "WONG", "LEE", "CHEUNG", "LAU", "HO", "NG", "LEUNG"]


def hkid(i: int, two_letters: bool = False) -> str:
    prefix = "AB" if two_letters else "KM"[i % 2]
    digits = f"{(123457 + i * 7919) % 1000000:06d}"
    return f"{prefix}{digits}({hkid_check_char(prefix, digits)})"


def patient_rows(count: int, start: int = 0) -> list[dict[str, str]]:
    hn = HospitalNumberFormat()
    rows = []
    for i in range(start, start + count):
        rows.append(
            {
                "patient_id": f"P{i:07d}",
                "hkid": hkid(i, two_letters=i % 5 == 0),
                "hospital_no": hn.make(10_000_000 + i),
                "name_en": f"{SURNAMES[i % len(SURNAMES)]} Tai Man{i}",
                "name_zh": "陳大文",
                "sex": "MF"[i % 2],
                "dob": f"19{50 + i % 50:02d}-0{1 + i % 9}-1{i % 10}",
                "cluster": ["KEC", "HKWC", "NTEC"][i % 3],
                "phone": f"9{i:07d}",
                "address": f"Flat {i}, Block A, Sau Mau Ping Estate",
                "app_registered": "true" if i % 2 else "false",
                "vip": "true" if i % 97 == 0 else "false",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


def write_ndjson(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict[str, str]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


EVENT_HEADER = [
    "event_id",
    "source",
    "seq",
    "ts",
    "account_id",
    "action",
    "patient_id",
    "fields",
    "query_id",
    "client_ip",
    "device_id",
    "purpose",
    "outcome",
]


def write_events(path: Path, patients: list[dict[str, str]], account: str = "ha-doc-1") -> Path:
    """One read event per patient from ``account``, in the spec's CSV format."""
    rows = [
        {
            "event_id": f"e{i}",
            "source": "CMS",
            "seq": str(i + 1),
            "ts": f"2026-04-02T10:{i % 60:02d}:00+08:00",
            "account_id": account,
            "action": "read",
            "patient_id": p["patient_id"],
            "fields": "name,sex,hkid",
            "query_id": "",
            "client_ip": "10.1.2.3",
            "device_id": "WS-1",
            "purpose": "TREAT",
            "outcome": "success",
        }
        for i, p in enumerate(patients)
    ]
    return write_csv(path, rows, EVENT_HEADER)
