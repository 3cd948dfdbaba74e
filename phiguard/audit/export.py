"""``phiguard audit export``: access events for a SIEM, as FHIR or OCSF.

Formats:

* ``fhir`` — FHIR R4 ``Bundle`` resources (type ``collection``) of BALP-style
  ``AuditEvent`` entries, one Bundle per line, at most ``bundle_size`` events each.
* ``fhir-ndjson`` — one ``AuditEvent`` per line (FHIR bulk-data style); ``phiguard ingest``
  reads this back, so two phiguard homes can exchange events.
* ``ocsf`` — OCSF 1.3 events, one per line: **Datastore Activity** (class 6005) by default,
  or **API Activity** (class 6003) with ``ocsf_class="api"``.

Events are read from the event store (after it is brought up to date with the log), in log
order. Every export is itself recorded in the audit log (``audit:log:exported``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from phiguard.audit.events import COLUMNS, iso
from phiguard.audit.fhir import bundle, row_to_audit_event
from phiguard.audit.tags import Tag
from phiguard.errors import UsageError
from phiguard.storage.events import EventStore

if TYPE_CHECKING:
    from phiguard.app import App

FORMATS = ("fhir", "fhir-ndjson", "ocsf")
OCSF_VERSION = "1.3.0"
_DATASTORE_ACTIVITY = {
    "read": (1, "Read"),
    "update": (2, "Update"),
    "search": (4, "Query"),
    "export": (99, "Other"),
    "print": (99, "Other"),
}
_API_ACTIVITY = {
    "read": (2, "Read"),
    "search": (2, "Read"),
    "update": (3, "Update"),
    "export": (99, "Other"),
    "print": (99, "Other"),
}


@dataclass
class ExportResult:
    format: str
    events: int
    documents: int  # lines written (bundles or events)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def ocsf_event(row: dict[str, Any], ocsf_class: str = "datastore") -> dict[str, Any]:
    """One event row as an OCSF Datastore Activity (6005) or API Activity (6003) event."""
    action = row["action"]
    ts: datetime = row["ts"]
    if ocsf_class == "api":
        class_uid, class_name = 6003, "API Activity"
        activity_id, activity_name = _API_ACTIVITY[action]
    else:
        class_uid, class_name = 6005, "Datastore Activity"
        activity_id, activity_name = _DATASTORE_ACTIVITY[action]
    if activity_id == 99:
        activity_name = action.capitalize()
    success = row["outcome"] == "success"
    event: dict[str, Any] = {
        "category_uid": 6,
        "category_name": "Application Activity",
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": 1,
        "severity": "Informational",
        "time": _ms(ts),
        "time_dt": iso(ts),
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "actor": {"user": {"uid": row["account_id"]}},
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "phiguard", "vendor_name": "phiguard"},
            "uid": f"{row['source']}:{row['event_id']}",
            "original_time": iso(ts),
            "log_provider": row["source"],
            "sequence": int(row["seq"]),
            **({"correlation_uid": row["query_id"]} if row.get("query_id") else {}),
            **({"logged_time": _ms(row["ingested_at"])} if row.get("ingested_at") else {}),
        },
    }
    if not success:
        event["status_detail"] = "access denied"
    endpoint = {k: v for k, v in (("ip", row.get("client_ip")), ("uid", row.get("device_id"))) if v}
    event["src_endpoint"] = endpoint or {"uid": "unknown"}
    unmapped: dict[str, Any] = {"event_id": row["event_id"]}
    for key in ("patient_id", "fields", "purpose"):
        if row.get(key):
            unmapped[key] = row[key]
    if row.get("leaf_index") is not None:
        unmapped["audit_log_index"] = int(row["leaf_index"])
    if ocsf_class == "api":
        event["api"] = {"operation": action, "service": {"name": row["source"]}}
        if row.get("patient_id"):
            event["resources"] = [{"uid": row["patient_id"], "type": "Patient"}]
    else:
        event["type_id"] = 1
        event["type"] = "Database"
        event["database"] = {"name": row["source"], "type_id": 99, "type": "Other"}
        if row.get("query_id"):
            event["query_info"] = {"uid": row["query_id"]}
    event["unmapped"] = unmapped
    return event


def _rows(app: App, where: list[str], params: list[Any]) -> Iterator[dict[str, Any]]:
    store = EventStore.open(app)
    for batch in store.batches(" AND ".join(where), params):
        yield from batch.to_pylist()


def export(
    app: App,
    out: IO[str],
    *,
    fmt: str,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    account: str | None = None,
    ocsf_class: str = "datastore",
    bundle_size: int = 1000,
    actor: str = "cli",
) -> ExportResult:
    """Write events matching the filters to ``out`` (text, one JSON document per line)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if ocsf_class not in ("datastore", "api"):
        raise UsageError("--ocsf-class is datastore (6005) or api (6003)")
    if bundle_size < 1:
        raise UsageError("--bundle-size must be at least 1")
    where: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("ts", ">=", since),
        ("ts", "<", until),
        ("source", "=", source),
        ("account_id", "=", account),
    ):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    events = documents = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    pending: list[dict[str, Any]] = []
    stamp = app.clock.now().astimezone(UTC).isoformat()

    def flush_bundle() -> None:
        nonlocal documents, pending
        if pending:
            documents += 1
            out.write(dumps(bundle(pending, bundle_id=f"export-{documents}", timestamp=stamp)))
            out.write("\n")
            pending = []

    for row in _rows(app, where, params):
        events += 1
        if fmt == "ocsf":
            out.write(dumps(ocsf_event(row, ocsf_class)))
            out.write("\n")
            documents += 1
        else:
            resource = row_to_audit_event({c: row[c] for c in COLUMNS})
            if fmt == "fhir-ndjson":
                out.write(dumps(resource))
                out.write("\n")
                documents += 1
            else:
                pending.append(resource)
                if len(pending) >= bundle_size:
                    flush_bundle()
    flush_bundle()
    app.record(
        Tag.LOG_EXPORTED,
        actor=actor,
        subject=fmt,
        events=events,
        ocsf_class=ocsf_class if fmt == "ocsf" else None,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        source=source,
        account=account,
    )
    return ExportResult(fmt, events, documents)


def export_to_file(app: App, path: Path, **kw: Any) -> ExportResult:
    """Export to ``path`` atomically (a temp file renamed into place once complete)."""
    if path.exists():
        raise UsageError(f"{path} exists; choose a new file name")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            result = export(app, f, **kw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


__all__ = ["FORMATS", "ExportResult", "export", "export_to_file", "ocsf_event"]
