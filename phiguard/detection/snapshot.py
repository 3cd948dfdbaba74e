"""The reference snapshot: what the rules need from the operational database, as Arrow tables.

The engines never talk to the operational database. Before a run, the reference data the rules
join against is copied into six small Arrow tables with fixed schemas — pseudonymous ids,
clusters, flags, dates, and blind indexes as hex (equal surnames and addresses compare equal
without anything being decrypted). DuckDB registers them in memory; Spark reads them as
Parquet from ``snapshot_uri`` so that executors on a cluster can reach them too.

Times are carried as integer microseconds since the epoch (``*_us``) so that DuckDB and Spark,
whose timestamp types differ, compare exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import inspect, select, text

from phiguard.storage.models import Account, Contract, Encounter, Grant, Patient, Vendor

if TYPE_CHECKING:
    from phiguard.app import App
    from phiguard.detection.settings import DetectionSettings

SCHEMAS: dict[str, pa.Schema] = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("vendor_id", pa.string()),
            ("role", pa.string()),
            ("department", pa.string()),
            ("cluster", pa.string()),
            ("active_from", pa.date32()),
            ("active_to", pa.date32()),
            ("patient_id", pa.string()),
            ("surname_bidx", pa.string()),
            ("address_bidx", pa.string()),
            ("status", pa.string()),
            ("needs_grant", pa.bool_()),
        ]
    ),
    "vendors": pa.schema(
        [
            ("vendor_id", pa.string()),
            ("status", pa.string()),
            ("contract_start", pa.date32()),
            ("contract_end", pa.date32()),
            ("suspended_us", pa.int64()),
        ]
    ),
    "grants": pa.schema(
        [
            ("grant_id", pa.string()),
            ("account_id", pa.string()),
            ("scope_cluster", pa.string()),
            ("scope_fields", pa.string()),
            ("actions", pa.string()),
            ("max_rows", pa.int64()),
            ("valid_from_us", pa.int64()),
            ("valid_to_us", pa.int64()),
            ("purpose", pa.string()),
        ]
    ),
    "patients": pa.schema(
        [
            ("patient_id", pa.string()),
            ("cluster", pa.string()),
            ("vip", pa.bool_()),
            ("surname_bidx", pa.string()),
            ("address_bidx", pa.string()),
        ]
    ),
    "encounters": pa.schema(
        [
            ("patient_id", pa.string()),
            ("department", pa.string()),
            ("account_id", pa.string()),
            ("start_us", pa.int64()),
            ("end_us", pa.int64()),
        ]
    ),
    "gaps": pa.schema(
        [
            ("source", pa.string()),
            ("first_seq", pa.int64()),
            ("last_seq", pa.int64()),
            ("missing", pa.int64()),
            ("detected_us", pa.int64()),
        ]
    ),
}

# Grants that never became effective do not cover anything.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INEFFECTIVE_GRANT = frozenset({"pending", "denied", "cancelled", "rejected"})


def to_us(ts: datetime | None) -> int | None:
    """Microseconds since the epoch, exactly (no float rounding); naive means UTC."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _hex(b: bytes | None) -> str | None:
    return b.hex() if b else None


@dataclass
class Reference:
    """The six reference tables, plus Python-side lookups used to word the reasons."""

    tables: dict[str, pa.Table]

    @classmethod
    def from_rows(cls, **rows: Iterable[Mapping[str, Any]]) -> Reference:
        """Build from plain dicts (tests, the generator bench). Missing tables are empty;
        missing columns are null; ``needs_grant`` defaults to "employed by a vendor"."""
        tables = {}
        for name, schema in SCHEMAS.items():
            data = [dict(r) for r in rows.get(name, [])]
            if name == "accounts":
                for r in data:
                    r.setdefault("needs_grant", r.get("vendor_id") is not None)
                    r.setdefault("status", "active")
            if name == "vendors":
                for r in data:
                    r.setdefault("status", "active")
            cols = {f.name: [r.get(f.name) for r in data] for f in schema}
            tables[name] = pa.table(
                {f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema
            )
        return cls(tables)

    # -- python-side views used by reasons and the live watcher ------------------------------
    def rows(self, name: str) -> list[dict[str, Any]]:
        return self.tables[name].to_pylist()

    def grants_by_account(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for g in self.rows("grants"):
            out.setdefault(g["account_id"], []).append(g)
        for gs in out.values():
            gs.sort(key=lambda g: (g["valid_from_us"], g["grant_id"]))
        return out

    def accounts_by_id(self) -> dict[str, dict[str, Any]]:
        return {a["account_id"]: a for a in self.rows("accounts")}

    def vendors_by_id(self) -> dict[str, dict[str, Any]]:
        return {v["vendor_id"]: v for v in self.rows("vendors")}


def _has_table(app: App, name: str) -> bool:
    return bool(inspect(app.engine).has_table(name))


def from_app(app: App, settings: DetectionSettings) -> Reference:
    """Copy what the rules need out of the operational database (nothing is decrypted)."""
    roles = settings.role_set()
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in SCHEMAS}
    with app.session() as s:
        granted = {a for (a,) in s.execute(select(Grant.account_id).distinct())}
        for a in s.execute(select(Account)).scalars():
            vendor = None if a.employer == "HA" else a.employer
            rows["accounts"].append(
                {
                    "account_id": a.account_id,
                    "vendor_id": vendor,
                    "role": a.role,
                    "department": a.department,
                    "cluster": a.cluster,
                    "active_from": a.active_from,
                    "active_to": a.active_to,
                    "patient_id": a.patient_id,
                    "surname_bidx": _hex(a.surname_bidx),
                    "address_bidx": _hex(a.address_bidx),
                    "status": a.status,
                    "needs_grant": vendor is not None or a.role in roles or a.account_id in granted,
                }
            )
        contracts: dict[str, list[tuple[date, date | None]]] = {}
        for c in s.execute(select(Contract)).scalars():
            contracts.setdefault(c.vendor_id, []).append((c.start, c.end))
        suspended = _suspension_times(app, s)
        for v in s.execute(select(Vendor)).scalars():
            spans = contracts.get(v.vendor_id, [])
            start = min((st for st, _ in spans), default=None)
            ends = [e for _, e in spans]
            end = None if not ends or any(e is None for e in ends) else max(ends)  # type: ignore[type-var]
            rows["vendors"].append(
                {
                    "vendor_id": v.vendor_id,
                    "status": v.status,
                    "contract_start": start,
                    "contract_end": end,
                    "suspended_us": suspended.get(v.vendor_id) if v.status == "suspended" else None,
                }
            )
        ended = _grant_end_times(app, s)
        for g in s.execute(select(Grant)).scalars():
            if g.status in INEFFECTIVE_GRANT:
                continue
            valid_to = to_us(g.valid_to)
            if g.grant_id in ended and ended[g.grant_id] is not None:
                valid_to = min(valid_to or ended[g.grant_id], ended[g.grant_id])  # type: ignore[type-var]
            rows["grants"].append(
                {
                    "grant_id": g.grant_id,
                    "account_id": g.account_id,
                    "scope_cluster": g.scope_cluster,
                    "scope_fields": g.scope_fields,
                    "actions": g.actions,
                    "max_rows": g.max_rows,
                    "valid_from_us": to_us(g.valid_from),
                    "valid_to_us": valid_to,
                    "purpose": g.purpose,
                }
            )
        pt = Patient.__table__
        q = select(pt.c.patient_id, pt.c.cluster, pt.c.vip, pt.c.surname_bidx, pt.c.address_bidx)
        for pid, cluster, vip, sb, ab in s.execute(q.execution_options(yield_per=50_000)):
            rows["patients"].append(
                {
                    "patient_id": pid,
                    "cluster": cluster,
                    "vip": bool(vip),
                    "surname_bidx": _hex(sb),
                    "address_bidx": _hex(ab),
                }
            )
        et = Encounter.__table__
        q = select(et.c.patient_id, et.c.department, et.c.account_id, et.c.start, et.c["end"])
        for pid, dept, acc, start, end in s.execute(q.execution_options(yield_per=50_000)):
            rows["encounters"].append(
                {
                    "patient_id": pid,
                    "department": dept,
                    "account_id": acc,
                    "start_us": to_us(start),
                    "end_us": to_us(end),
                }
            )
    rows["gaps"] = load_gaps(app)
    return Reference.from_rows(**rows)


def _suspension_times(app: App, s: Any) -> dict[str, int]:
    """When each vendor was suspended, from the access part's vendor history (if present)."""
    if not _has_table(app, "access_vendor_events"):
        return {}
    out: dict[str, int] = {}
    q = text("SELECT vendor_id, ts FROM access_vendor_events WHERE kind = 'suspended'")
    from phiguard.storage.types import UTCDateTime

    conv = UTCDateTime()
    for vendor_id, ts in s.execute(q):
        when = conv.process_result_value(
            ts if not isinstance(ts, str) else datetime.fromisoformat(ts), app.engine.dialect
        )
        us = to_us(when)
        if us is not None:
            out[vendor_id] = max(out.get(vendor_id, 0), us)
    return out


def _grant_end_times(app: App, s: Any) -> dict[str, int | None]:
    """Grants revoked or used up early end at ``ended_at`` (access part), not ``valid_to``."""
    if not _has_table(app, "access_grant_terms"):
        return {}
    from phiguard.storage.types import UTCDateTime

    conv = UTCDateTime()
    out: dict[str, int | None] = {}
    q = text("SELECT grant_id, ended_at FROM access_grant_terms WHERE ended_at IS NOT NULL")
    for grant_id, ts in s.execute(q):
        when = conv.process_result_value(
            ts if not isinstance(ts, str) else datetime.fromisoformat(ts), app.engine.dialect
        )
        out[grant_id] = to_us(when)
    return out


def load_gaps(app: App) -> list[dict[str, Any]]:
    """Sequence gaps the audit ingest recorded (``phiguard.audit.completeness``), if any."""
    try:
        from phiguard.audit import completeness
    except ImportError:
        return []
    reader = getattr(completeness, "gaps", None) or getattr(completeness, "list_gaps", None)
    if reader is None:
        return []
    out = []
    for g in reader(app):
        get = g.get if isinstance(g, Mapping) else (lambda k, _g=g: getattr(_g, k, None))
        first, last = (
            get("first_missing") or get("first_seq"),
            get("last_missing") or get("last_seq"),
        )
        if first is None or last is None:
            continue
        detected = get("detected_at") or get("ts")
        out.append(
            {
                "source": get("source"),
                "first_seq": int(first),
                "last_seq": int(last),
                "missing": int(get("missing") or (int(last) - int(first) + 1)),
                "detected_us": to_us(detected) if isinstance(detected, datetime) else None,
            }
        )
    return out


# -- straight from spec-format files (benchmarks, tests, the generator's output) -------------
def from_spec_rows(
    *,
    patients: Iterable[Mapping[str, Any]],
    accounts: Iterable[Mapping[str, Any]],
    vendors: Iterable[Mapping[str, Any]] = (),
    grants: Iterable[Mapping[str, Any]] = (),
    encounters: Iterable[Mapping[str, Any]] = (),
    blind: Any,
    roles: frozenset[str] = frozenset({"vendor_engineer", "it_support", "service"}),
) -> Reference:
    """Build the snapshot from rows in the spec §1 input formats, without a database.

    Blind indexes are computed the way the importer computes them (same normalisation, same
    kinds), so a snapshot from files and one from the database join identically."""
    from phiguard.clock import parse_ts
    from phiguard.storage import normalise as n

    def b(v: Any) -> bool:
        return str(v or "").strip().lower() in {"true", "1", "yes", "y"}

    def d(v: Any) -> date | None:
        return date.fromisoformat(str(v)) if v not in (None, "") else None

    def ts(v: Any) -> int | None:
        return to_us(parse_ts(str(v))) if v not in (None, "") else None

    def bidx(kind: str, value: str | None) -> str | None:
        return blind.digest(kind, value).hex() if value else None

    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in SCHEMAS}
    # Patients are the one big table (millions of rows): built column by column.
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMAS["patients"]}
    for p in patients:
        cols["patient_id"].append(p["patient_id"])
        cols["cluster"].append(p["cluster"])
        cols["vip"].append(b(p.get("vip")))
        cols["surname_bidx"].append(bidx("surname", n.surname(p.get("name_en") or None)))
        cols["address_bidx"].append(bidx("address", n.address_key(p.get("address") or None)))
    grant_list = list(grants)
    granted = {g["account_id"] for g in grant_list}
    for a in accounts:
        vendor = None if a["employer"] == "HA" else a["employer"]
        role = str(a["role"]).lower()
        rows["accounts"].append(
            {
                "account_id": a["account_id"],
                "vendor_id": vendor,
                "role": role,
                "department": str(a.get("department") or "").upper(),
                "cluster": a["cluster"],
                "active_from": d(a.get("active_from")),
                "active_to": d(a.get("active_to")),
                "patient_id": a.get("patient_id") or None,
                "surname_bidx": bidx("surname", n.surname(a.get("person_name") or None)),
                "address_bidx": bidx("address", n.address_key(a.get("home_address") or None)),
                "status": "active",
                "needs_grant": vendor is not None or role in roles or a["account_id"] in granted,
            }
        )
    spans: dict[str, list[tuple[date | None, date | None]]] = {}
    for v in vendors:
        spans.setdefault(v["vendor_id"], []).append(
            (d(v.get("contract_start")), d(v.get("contract_end")))
        )
    for vid, ss in spans.items():
        ends = [e for _, e in ss]
        rows["vendors"].append(
            {
                "vendor_id": vid,
                "status": "active",
                "contract_start": min((s for s, _ in ss if s), default=None),
                "contract_end": None if any(e is None for e in ends) else max(ends),  # type: ignore[type-var]
                "suspended_us": None,
            }
        )
    for g in grant_list:
        rows["grants"].append(
            {
                "grant_id": g["grant_id"],
                "account_id": g["account_id"],
                "scope_cluster": g["scope_cluster"],
                "scope_fields": n.csv_list(g.get("scope_fields"), "scope_fields"),
                "actions": n.csv_list(g.get("actions"), "actions"),
                "max_rows": int(g["max_rows"]),
                "valid_from_us": ts(g["valid_from"]),
                "valid_to_us": ts(g["valid_to"]),
                "purpose": g.get("purpose"),
            }
        )
    for e in encounters:
        rows["encounters"].append(
            {
                "patient_id": e["patient_id"],
                "department": str(e["department"]).upper(),
                "account_id": e.get("account_id") or None,
                "start_us": ts(e["start"]),
                "end_us": ts(e.get("end")),
            }
        )
    ref = Reference.from_rows(**rows)
    ref.tables["patients"] = pa.table(
        {f.name: pa.array(cols[f.name], f.type) for f in SCHEMAS["patients"]},
        schema=SCHEMAS["patients"],
    )
    return ref


def from_spec_dir(folder: Any, blind: Any) -> Reference:
    """The snapshot of a folder holding patients/accounts/vendors/grants/encounters.csv."""
    import csv
    from pathlib import Path

    folder = Path(folder)

    def read(name: str) -> Iterator[dict[str, str]]:
        path = folder / f"{name}.csv"
        if not path.exists():
            return
        with path.open(newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f)

    return from_spec_rows(
        patients=read("patients"),
        accounts=read("accounts"),
        vendors=read("vendors"),
        grants=read("grants"),
        encounters=read("encounters"),
        blind=blind,
    )
