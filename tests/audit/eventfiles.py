"""Small access-event inputs for the ingestion tests, in every accepted format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.audit.events import COLUMNS

HEADER = ",".join(COLUMNS)


def event(i: int, *, source: str = "CMS", seq: int | None = None, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": f"{source.lower()}-{i}",
        "source": source,
        "seq": i if seq is None else seq,
        "ts": f"2026-04-03T01:{i % 60:02d}:00+08:00",
        "account_id": f"dr-{i % 3}",
        "action": ["read", "search", "print", "export", "update"][i % 5],
        "patient_id": f"P{i:07d}",
        "fields": "name,sex,hkid",
        "query_id": f"q-{i // 10}",
        "client_ip": "10.0.0.7",
        "device_id": "ws-1",
        "purpose": "TREAT",
        "outcome": "success",
    }
    row.update(over)
    return row


def events(n: int, start: int = 1, **kw: Any) -> list[dict[str, Any]]:
    return [event(i, **kw) for i in range(start, start + n)]


def csv_line(row: dict[str, Any], columns: tuple[str, ...] = COLUMNS) -> str:
    out = []
    for c in columns:
        v = row.get(c)
        v = "" if v is None else str(v)
        out.append(f'"{v}"' if ("," in v or '"' in v or "\n" in v) else v)
    return ",".join(out)


def write_csv(
    path: Path,
    rows: list[dict[str, Any]],
    extra_lines: list[str] | None = None,
    columns: tuple[str, ...] = COLUMNS,
) -> Path:
    lines = [",".join(columns), *[csv_line(r, columns) for r in rows], *(extra_lines or [])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    from phiguard.clock import parse_ts

    table = pa.table(
        {
            **{c: [r.get(c) for r in rows] for c in COLUMNS if c not in ("seq", "ts")},
            "seq": pa.array([int(r["seq"]) for r in rows], pa.int64()),
            "ts": pa.array([parse_ts(r["ts"]) for r in rows], pa.timestamp("us", tz="UTC")),
        }
    ).select(list(COLUMNS))
    pq.write_table(table, path)
    return path


def write_fhir(path: Path, rows: list[dict[str, Any]]) -> Path:
    from phiguard.audit.fhir import row_to_audit_event

    path.write_text("".join(json.dumps(row_to_audit_event(r)) + "\n" for r in rows))
    return path


def bundle_bytes(rows: list[dict[str, Any]], indent: int | None = 2) -> bytes:
    from phiguard.audit.fhir import row_to_audit_event

    doc = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": row_to_audit_event(r), "request": {"method": "POST", "url": "AuditEvent"}}
            for r in rows
        ],
    }
    return json.dumps(doc, indent=indent).encode()


def stored(app: Any) -> list[dict[str, Any]]:
    """The event store's rows without the columns that depend on when they were written."""
    from phiguard.storage.events import EventStore

    table = EventStore.of(app).read(columns="* EXCLUDE (date, ingested_at)")
    return table.to_pylist()
