"""The leak scan: read the files, find the people in them, link them to the PMI, name the
source, record the scan. Produces exactly the JSON of spec §3.2 (plus optional fields:
``scan_id``, per-file ``not_read`` and ``encoding``, ``hkid_masked`` and
``hospital_no_invalid`` counts, and the ``kind`` of each attribution entry).

Services for other parts:

* :func:`scan` — run a scan (the CLI and the web console call this).
* :func:`get_scan`, :func:`list_scans`, :func:`affected_patient_ids` — read a recorded scan
  (the incident workflow attaches a scan's affected list to an incident).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import InputError, NotFound
from phiguard.leaks import canaries
from phiguard.leaks.attribution import rank_sources
from phiguard.leaks.detectors import Detector
from phiguard.leaks.linkage import Linker
from phiguard.leaks.models import LeakScan, LeakScanPatient
from phiguard.leaks.readers import FileInfo, Reader, Unit
from phiguard.leaks.records import RecordBuilder
from phiguard.leaks.streams import Limits

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def scan(
    app: App,
    paths: list[Path],
    *,
    actor: str,
    limits: Limits | None = None,
    progress: Progress | None = None,
    fuzzy: bool = True,
    events: Any | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    record: bool = True,
    engine: str | None = None,
) -> dict[str, Any]:
    """Scan ``paths`` and return the spec §3.2 result (also stored, and logged). Fuzzy
    linkage runs on ``engine`` ('duckdb' or 'spark'; default: the ``engine`` setting)."""
    if not paths:
        raise InputError("no file to scan")
    started = app.clock.now()
    reader = Reader(limits)
    builder = RecordBuilder(Detector(app.hospital_no_format))
    collected = builder.feed(_with_progress(reader, paths, progress))
    top = [i for i in reader.infos if "!" not in i.path]
    _refuse_if_nothing_read(reader.infos, top, collected.records)

    links = Linker(app, fuzzy=fuzzy, engine=engine).link(collected.records)
    affected = links.affected()
    found_canaries = canaries.found(app, links.canaries)
    attribution = rank_sources(
        app, list(links.links), canaries=found_canaries, con=events, since=since, until=until
    )
    result: dict[str, Any] = {
        "files": [_file_json(i) for i in reader.infos],
        "identifiers": collected.identifiers(),
        "fields_exposed": collected.fields_exposed,
        "affected_count": len(affected),
        "affected_patients": [
            {"patient_id": lk.patient_id, "matched_on": lk.matched_on, "confidence": lk.confidence}
            for lk in affected
        ],
        "unmatched_records": links.unmatched,
        "attribution": attribution,
    }
    digest = hashlib.sha256(
        json.dumps(result, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    scan_id = f"ls-{started.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    result["scan_id"] = scan_id
    if record:
        _store(app, scan_id, actor, started, reader.infos, result, digest)
        app.record(
            Tag.LEAK_SCANNED,
            actor=actor,
            subject=scan_id,
            files=[
                {"name": Path(i.path).name, "sha256": getattr(i, "sha256", None), "bytes": i.bytes}
                for i in top
            ],
            result_sha256=digest,
            affected_count=len(affected),
            unmatched_records=links.unmatched,
            top_source=(attribution[0].get("query_id") or attribution[0].get("account_id"))
            if attribution
            else None,
        )
    return result


def _file_json(info: FileInfo) -> dict[str, Any]:
    out = info.as_json()
    sha = getattr(info, "sha256", None)
    if sha:
        out["sha256"] = sha
    return out


def _with_progress(reader: Reader, paths: list[Path], progress: Progress | None) -> Iterator[Unit]:
    total = sum(p.stat().st_size for p in paths if p.is_file())
    done_before = 0
    current = None
    for n, unit in enumerate(reader.read_paths(paths), start=1):
        if progress is not None and n % 500 == 0 and reader.progress is not None:
            if current is not reader.progress:
                if current is not None:
                    done_before += current.count
                current = reader.progress
            progress(min(total, done_before + current.count), total)
        yield unit
    if progress is not None:
        progress(total, total)


def _refuse_if_nothing_read(infos: list[FileInfo], top: list[FileInfo], records: list[Any]) -> None:
    """A scan that read nothing at all is an error, not an empty result (never a silent zero)."""
    if records or any(i.records for i in infos):
        return
    if all(i.problems for i in top):
        reasons = "; ".join(f"{Path(i.path).name}: {i.problems[0]}" for i in top)
        raise InputError(f"nothing could be read — {reasons}")


def _store(
    app: App,
    scan_id: str,
    actor: str,
    started: datetime,
    infos: list[FileInfo],
    result: dict[str, Any],
    digest: str,
) -> None:
    files = [{k: v for k, v in _file_json(i).items() if k != "not_read"} for i in infos]
    top = result["attribution"][0] if result["attribution"] else {}
    with app.session() as s:
        s.add(
            LeakScan(
                scan_id=scan_id,
                actor=actor,
                started=started,
                finished=app.clock.now(),
                files=json.dumps(files, ensure_ascii=False),
                result_sha256=digest,
                affected_count=result["affected_count"],
                unmatched=result["unmatched_records"],
                fields_exposed=",".join(result["fields_exposed"]),
                attribution=json.dumps(result["attribution"], ensure_ascii=False, default=str),
                top_account=top.get("account_id"),
                top_query=top.get("query_id"),
                top_vendor=top.get("vendor_id"),
            )
        )
        s.flush()
        rows = [
            {
                "scan_id": scan_id,
                "patient_id": p["patient_id"],
                "confidence": p["confidence"],
                "matched_on": ",".join(p["matched_on"])[:160],
            }
            for p in result["affected_patients"]
        ]
        for i in range(0, len(rows), 5000):
            s.execute(insert(LeakScanPatient), rows[i : i + 5000])


def _scan_json(r: LeakScan) -> dict[str, Any]:
    return {
        "scan_id": r.scan_id,
        "actor": r.actor,
        "started": r.started.isoformat(),
        "finished": r.finished.isoformat(),
        "files": json.loads(r.files),
        "result_sha256": r.result_sha256,
        "affected_count": r.affected_count,
        "unmatched_records": r.unmatched,
        "fields_exposed": [f for f in r.fields_exposed.split(",") if f],
        "attribution": json.loads(r.attribution),
    }


def get_scan(app: App, scan_id: str) -> dict[str, Any]:
    with app.session() as s:
        r = s.get(LeakScan, scan_id)
        if r is None:
            raise NotFound(f"no leak scan {scan_id}")
        return _scan_json(r)


def list_scans(app: App, limit: int = 50) -> list[dict[str, Any]]:
    with app.session() as s:
        rows = s.execute(select(LeakScan).order_by(LeakScan.finished.desc()).limit(limit)).scalars()
        return [_scan_json(r) for r in rows]


def affected_patient_ids(app: App, scan_id: str) -> list[str]:
    """The affected set of a recorded scan (patient ids; canaries never included)."""
    get_scan(app, scan_id)
    with app.session() as s:
        return list(
            s.execute(
                select(LeakScanPatient.patient_id)
                .where(LeakScanPatient.scan_id == scan_id)
                .order_by(LeakScanPatient.patient_id)
            ).scalars()
        )


def affected_patients(app: App, scan_id: str) -> list[dict[str, Any]]:
    """The affected list of a recorded scan as spec §3.2 entries (patient id, matched-on
    fields, confidence), for attaching to an incident."""
    get_scan(app, scan_id)
    with app.session() as s:
        rows = s.execute(
            select(LeakScanPatient)
            .where(LeakScanPatient.scan_id == scan_id)
            .order_by(LeakScanPatient.patient_id)
        ).scalars()
        return [
            {
                "patient_id": r.patient_id,
                "matched_on": [m for m in r.matched_on.split(",") if m],
                "confidence": r.confidence,
            }
            for r in rows
        ]


def iter_summary(result: dict[str, Any]) -> Iterable[str]:
    """Readable lines for a person (the CLI prints these without --format json)."""
    ids = result["identifiers"]
    yield f"scan {result.get('scan_id', '')}"
    for f in result["files"]:
        line = f"  {f['path']}: {f['format']}, {f['records']:,} records, {f['bytes']:,} bytes"
        yield line
        for problem in f.get("not_read", []):
            yield f"    not read: {problem}"
    yield (
        f"identifiers: {ids['hkid_valid']:,} valid HKIDs, {ids['hkid_invalid']:,} with a wrong "
        f"check character, {ids.get('hkid_masked', 0):,} masked, "
        f"{ids['hospital_no']:,} hospital numbers"
    )
    yield f"fields exposed: {', '.join(result['fields_exposed']) or 'none'}"
    yield (
        f"affected patients: {result['affected_count']:,} "
        f"(unmatched records: {result['unmatched_records']:,})"
    )
    if result["attribution"]:
        yield "likely source:"
        for a in result["attribution"][:5]:
            who = a.get("query_id") or a.get("account_id") or a.get("vendor_id")
            yield f"  {a['score']:.2f}  {who}: {a['evidence']}"
    else:
        yield "likely source: no access events explain this set"
