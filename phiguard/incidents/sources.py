"""Where an incident's facts come from: a leak scan's JSON (spec §3.2), a detection alert
(spec §3.1, stored by ``phiguard.detection``), and the access events in the audit store.

Each reader returns plain data (:class:`Source`) and never writes; :mod:`.cases` decides
what to keep. A malformed scan is refused as a whole with one line naming the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phiguard.clock import HKT, parse_ts
from phiguard.errors import InputError, NotFound

if TYPE_CHECKING:
    from phiguard.app import App


@dataclass
class Source:
    kind: str  # alert, scan, manual
    ref: str
    title: str
    patients: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> matched_on, conf
    fields: list[str] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)  # account_id, vendor_id, evidence
    publicly_posted: bool = False
    malicious: bool = False
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    facts: list[tuple[datetime | None, str, str]] = field(default_factory=list)  # ts, kind, text

    @property
    def vendor_id(self) -> str | None:
        for a in self.accounts:
            if a.get("vendor_id"):
                return str(a["vendor_id"])
        return None


def _fail(name: str, why: str) -> InputError:
    return InputError(f"{name}: {why}")


def read_scan(path: Path) -> Source:
    """A ``phiguard leaks scan --format json`` result file (spec §3.2)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(path.name, f"not a JSON scan result ({exc})") from None
    return parse_scan(doc, path.name)


def parse_scan(doc: Any, name: str = "scan") -> Source:
    """A leak scan result already in memory (spec §3.2 shape), e.g. from ``leaks.scan``."""
    path = name
    if not isinstance(doc, dict) or "affected_patients" not in doc:
        raise _fail(path, "not a leak scan result (no affected_patients)")
    affected = doc.get("affected_patients")
    if not isinstance(affected, list):
        raise _fail(path, "affected_patients must be a list")
    patients: dict[str, tuple[str, float]] = {}
    for i, item in enumerate(affected, 1):
        if not isinstance(item, dict) or not str(item.get("patient_id") or "").strip():
            raise _fail(path, f"affected_patients[{i}] has no patient_id")
        try:
            conf = float(item.get("confidence", 1.0))
        except (TypeError, ValueError):
            raise _fail(path, f"affected_patients[{i}] confidence is not a number") from None
        if not 0 <= conf <= 1:
            raise _fail(path, f"affected_patients[{i}] confidence {conf} is outside [0, 1]")
        matched = item.get("matched_on") or []
        matched_s = ",".join(str(m) for m in matched) if isinstance(matched, list) else str(matched)
        patients[str(item["patient_id"]).strip()] = (matched_s[:200], conf)
    if not patients:
        raise _fail(
            path,
            "the scan links no patient: there is nobody to notify; open a manual "
            "incident with --title if the leak still needs handling",
        )
    fields = doc.get("fields_exposed") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise _fail(path, "fields_exposed must be a list of field names")
    accounts = []
    for a in doc.get("attribution") or []:
        if isinstance(a, dict) and a.get("account_id"):
            accounts.append(
                {
                    "account_id": str(a["account_id"]),
                    "vendor_id": a.get("vendor_id"),
                    "evidence": str(a.get("evidence") or ""),
                    "query_id": a.get("query_id"),
                    "score": a.get("score"),
                }
            )
    files = [f.get("path", "?") for f in doc.get("files") or [] if isinstance(f, dict)]
    src = Source(
        kind="scan",
        ref=str(doc.get("scan_id") or name),
        title=f"Patient data found posted publicly ({len(patients):,} patients)",
        patients=patients,
        fields=sorted({f.strip().lower() for f in fields}),
        accounts=accounts[:1],
        publicly_posted=True,
        malicious=bool(accounts),
    )
    src.facts.append(
        (
            None,
            "scan",
            f"leak scan of {', '.join(files) or 'leaked files'}: "
            f"{len(patients):,} patients linked, fields "
            f"{', '.join(src.fields) or 'unknown'}",
        )
    )
    if accounts:
        best = accounts[0]
        src.facts.append(
            (
                None,
                "attribution",
                f"attributed to account {best['account_id']}"
                f" (vendor {best['vendor_id'] or 'none'}): {best['evidence']}",
            )
        )
    return src


# -- alerts --------------------------------------------------------------------------
def _alert_dict(app: App, alert_id: str) -> dict[str, Any]:
    """One stored alert from the detection part, in spec §3.1 shape."""
    try:
        from phiguard.detection import alerts
    except ImportError:
        raise NotFound(f"no alert {alert_id!r}: the detection part is not installed") from None
    try:
        row = alerts.get(app, alert_id)
    except NotFound:
        raise NotFound(f"no alert {alert_id!r} (see `phiguard detect`)") from None
    return alerts.as_json(row, app.settings.timezone)


def from_alert(app: App, alert: dict[str, Any]) -> Source:
    """An alert names an account, a window and a patient count; the patients themselves are
    the distinct ones that account touched in that window, read back from the event store."""
    account = str(alert.get("account_id") or "")
    first = parse_ts(str(alert["first_ts"])) if alert.get("first_ts") else None
    last = parse_ts(str(alert["last_ts"])) if alert.get("last_ts") else None
    touched = accessed_patients(app, [account], first, last) if account and first and last else {}
    ids = set(alert.get("patient_ids") or alert.get("patient_ids_sample") or [])
    patients = {pid: ("alert", 1.0) for pid in ids}
    fields: set[str] = set()
    for pid, flds in touched.items():
        patients[pid] = ("audit_log", 1.0)
        fields |= flds
    src = Source(
        kind="alert",
        ref=str(alert["alert_id"]),
        title=f"{alert.get('rule', 'alert')} by {account or 'unknown account'}"
        f" ({int(alert.get('patient_count') or len(patients)):,} patients)",
        patients=patients,
        fields=sorted(fields),
        accounts=[
            {
                "account_id": account,
                "vendor_id": alert.get("vendor_id"),
                "evidence": "; ".join(alert.get("reasons") or []),
            }
        ]
        if account
        else [],
        malicious=str(alert.get("rule", "")).startswith(("bulk", "export", "exfil")),
        first_ts=first,
        last_ts=last,
    )
    src.facts.append(
        (
            first,
            "alert",
            f"alert {alert['alert_id']} ({alert.get('severity', '?')}, "
            f"{alert.get('rule', '?')}): "
            + ("; ".join(alert.get("reasons") or []) or "no reasons given"),
        )
    )
    return src


def read_alert(app: App, alert_id: str) -> Source:
    return from_alert(app, _alert_dict(app, alert_id))


# -- the access-event store ------------------------------------------------------------
def _events_glob(app: App) -> str | None:
    root = app.home.events / "events"
    if not root.is_dir() or not any(root.rglob("*.parquet")):
        return None
    return str(root / "**" / "*.parquet")


def accessed_patients(
    app: App, accounts: Iterable[str], first: datetime | None, last: datetime | None
) -> dict[str, set[str]]:
    """patient_id -> fields returned, for successful accesses by ``accounts`` in the window."""
    glob = _events_glob(app)
    accounts = [a for a in accounts if a]
    if glob is None or not accounts:
        return {}
    import duckdb

    sql = (
        "SELECT patient_id, string_agg(DISTINCT fields, ',') FROM read_parquet(?, "
        "hive_partitioning=true, union_by_name=true) WHERE account_id IN (SELECT unnest(?)) "
        "AND outcome = 'success' AND patient_id IS NOT NULL AND patient_id <> '' "
    )
    params: list[Any] = [glob, accounts]
    if first is not None and last is not None:
        sql += "AND ts BETWEEN ? AND ? "
        params += [first, last]
    sql += "GROUP BY patient_id"
    with duckdb.connect() as con:
        rows = con.execute(sql, params).fetchall()
    return {pid: {f.strip() for f in (flds or "").split(",") if f.strip()} for pid, flds in rows}


def access_story(
    app: App,
    accounts: Iterable[str],
    first: datetime | None,
    last: datetime | None,
    limit: int = 50,
) -> list[tuple[datetime, str]]:
    """What the involved accounts did, one line per query/export, from the audit store."""
    glob = _events_glob(app)
    accounts = [a for a in accounts if a]
    if glob is None or not accounts:
        return []
    import duckdb

    sql = (
        "SELECT account_id, action, coalesce(nullif(query_id, ''), event_id) AS q, "
        "min(ts), max(ts), "
        "count(DISTINCT patient_id), count(*) FILTER (WHERE outcome <> 'success') "
        "FROM read_parquet(?, hive_partitioning=true, union_by_name=true) "
        "WHERE account_id IN (SELECT unnest(?)) "
    )
    params: list[Any] = [glob, accounts]
    if first is not None and last is not None:
        sql += "AND ts BETWEEN ? AND ? "
        params += [first, last]
    sql += "GROUP BY 1, 2, 3 ORDER BY count(DISTINCT patient_id) DESC LIMIT ?"
    params.append(limit)
    with duckdb.connect() as con:
        rows = con.execute(sql, params).fetchall()
    out = []
    for account, action, q, t0, t1, n, denied in rows:
        t0 = t0 if t0.tzinfo else t0.replace(tzinfo=HKT)
        t1 = t1 if t1.tzinfo else t1.replace(tzinfo=HKT)
        span = f"{t0.astimezone(HKT):%Y-%m-%d %H:%M}–{t1.astimezone(HKT):%H:%M}"
        extra = f", {denied} denied" if denied else ""
        out.append((t0, f"{account} {action} {q}: {n:,} patients, {span} HKT{extra}"))
    return sorted(out)
