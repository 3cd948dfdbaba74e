"""Incidents: open (from an alert, a leak scan, or by hand), attach patients, view, list,
notes, timeline, risk edits, regulator notices, close.

Opening is one transaction: the incident, its affected patients (pseudonymous ids that must
exist in the patient master index), exposed fields, involved accounts, playbook tasks, ENISA
factors, clocks and the first timeline entries are written together or not at all. The
audit log entry follows the commit, so a failed open leaves no trace but the error message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from phiguard.audit.tags import Tag
from phiguard.clock import HKT
from phiguard.errors import Conflict, InputError, NotFound, UsageError
from phiguard.incidents import clocks, playbook, risk, sources
from phiguard.incidents.models import (
    AffectedPatient,
    ExposedField,
    Incident,
    InvolvedAccount,
    Note,
    Notice,
    TimelineEntry,
)
from phiguard.incidents.settings import IncidentSettings
from phiguard.storage.models import Patient

if TYPE_CHECKING:
    from phiguard.app import App

CHUNK = 1000


def settings() -> IncidentSettings:
    return IncidentSettings()


def log(
    s: Session, incident_id: str, ts: datetime, kind: str, text: str, actor: str = "", ref: str = ""
) -> None:
    s.add(TimelineEntry(incident_id=incident_id, ts=ts, kind=kind, text=text, actor=actor, ref=ref))


def get(s: Session, incident_id: str) -> Incident:
    inc = s.get(Incident, incident_id)
    if inc is None:
        raise NotFound(f"no incident {incident_id!r} (see `phiguard incidents list`)")
    return inc


def _next_id(s: Session, at: datetime) -> str:
    year = at.astimezone(HKT).year
    prefix = f"INC-{year}-"
    n = s.scalar(
        select(func.count()).select_from(Incident).where(Incident.incident_id.like(prefix + "%"))
    )
    return f"{prefix}{(n or 0) + 1:04d}"


def _classify(s: Session, ids: list[str]) -> tuple[list[str], set[str]]:
    """(ids the PMI does not know, ids of canary records) among ``ids``."""
    missing: list[str] = []
    canaries: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        found = dict(
            s.execute(
                select(Patient.patient_id, Patient.is_canary).where(Patient.patient_id.in_(part))
            ).all()
        )
        missing.extend(p for p in part if p not in found)
        canaries.update(p for p, canary in found.items() if canary)
    return missing, canaries


def _attach(
    s: Session, incident_id: str, patients: dict[str, tuple[str, float]], now: datetime
) -> int:
    """Insert the patients not yet attached; refuse ids the PMI does not know. Canary
    records (planted to catch leaks, not people) are evidence for attribution, not affected
    patients: they are left out of the incident, its counts and its notices."""
    ids = sorted(patients)
    missing, canaries = _classify(s, ids)
    if missing:
        raise InputError(
            f"{len(missing):,} patient id(s) are not in the patient master index "
            f"(first: {missing[0]}); nothing was attached"
        )
    have = set(
        s.scalars(
            select(AffectedPatient.patient_id).where(AffectedPatient.incident_id == incident_id)
        )
    )
    rows = [
        {
            "incident_id": incident_id,
            "patient_id": p,
            "matched_on": patients[p][0],
            "confidence": patients[p][1],
        }
        for p in ids
        if p not in have and p not in canaries
    ]
    if canaries:
        log(
            s,
            incident_id,
            now,
            "canary",
            f"{len(canaries)} canary record(s) found in the leak: planted markers, not "
            "patients; left out of the affected list",
            "phiguard",
        )
    for i in range(0, len(rows), 5000):
        s.execute(insert(AffectedPatient), rows[i : i + 5000])
    return len(rows)


def _add_fields(s: Session, incident_id: str, fields: Iterable[str]) -> None:
    have = set(s.scalars(select(ExposedField.field).where(ExposedField.incident_id == incident_id)))
    for f in sorted({f.strip().lower() for f in fields if f.strip()} - have):
        s.add(ExposedField(incident_id=incident_id, field=f))


def _add_accounts(s: Session, incident_id: str, accounts: list[dict[str, Any]]) -> None:
    for a in accounts:
        if s.get(InvolvedAccount, (incident_id, a["account_id"])) is None:
            s.add(
                InvolvedAccount(
                    incident_id=incident_id,
                    account_id=a["account_id"],
                    vendor_id=a.get("vendor_id"),
                    role="source",
                    evidence=str(a.get("evidence") or "")[:2000],
                )
            )


def merge(*found: sources.Source) -> sources.Source:
    """Combine an alert and a scan: the scan says whose data leaked (it wins for patients),
    the alert says who took it and when."""
    parts = [f for f in found if f is not None]
    if not parts:
        raise UsageError("give --alert, --scan or --title")
    if len(parts) == 1:
        return parts[0]
    scan = next((p for p in parts if p.kind == "scan"), None)
    base = sources.Source(
        kind="+".join(p.kind for p in parts),
        ref=" + ".join(p.ref for p in parts),
        title=(scan or parts[0]).title,
    )
    base.patients = dict(scan.patients) if scan else {}
    for p in parts:
        if not scan:
            base.patients.update(p.patients)
        base.fields = sorted(set(base.fields) | set(p.fields))
        for a in p.accounts:
            if a["account_id"] not in {b["account_id"] for b in base.accounts}:
                base.accounts.append(a)
        base.publicly_posted |= p.publicly_posted
        base.malicious |= p.malicious
        base.first_ts = base.first_ts or p.first_ts
        base.last_ts = base.last_ts or p.last_ts
        base.facts += p.facts
    return base


def open_incident(
    app: App,
    source: sources.Source,
    *,
    actor: str,
    cfg: IncidentSettings | None = None,
    title: str | None = None,
    aware_at: datetime | None = None,
    serious: bool = False,
) -> str:
    cfg = cfg or settings()
    book = playbook.load(cfg.playbook, cfg)  # a broken template is refused before any write
    now = app.clock.now()
    aware = aware_at or now
    if aware > now:
        raise UsageError("the time the hospital became aware cannot be in the future")
    with app.session() as s:
        iid = _next_id(s, now)
        inc = Incident(
            incident_id=iid,
            title=(title or source.title)[:300],
            status="open",
            source=source.kind,
            source_ref=source.ref[:200] or None,
            opened_at=now,
            aware_at=aware,
            opened_by=actor,
            vendor_id=source.vendor_id,
            serious=serious,
            publicly_posted=source.publicly_posted,
            cyber_attack=False,
            playbook=book.name,
        )
        s.add(inc)
        s.flush()
        attached = _attach(s, iid, source.patients, now)
        _add_fields(s, iid, source.fields)
        _add_accounts(s, iid, source.accounts)
        playbook.instantiate(s, iid, book, aware)
        risk.write_factors(
            s,
            iid,
            risk.propose(
                source.fields,
                publicly_posted=source.publicly_posted,
                malicious=source.malicious,
                affected=attached,
            ),
            at=now,
            by="phiguard",
        )
        clocks.start(s, inc, cfg)
        for ts, kind, text in source.facts:
            log(s, iid, ts or now, kind, text, "phiguard", source.ref)
        for ts, text in sources.access_story(
            app, [a["account_id"] for a in source.accounts], source.first_ts, source.last_ts
        ):
            log(s, iid, ts, "audit_log", text, "phiguard")
        log(
            s,
            iid,
            now,
            "opened",
            f"incident opened from {source.kind} by {actor}: {attached:,} affected patients",
            actor,
        )
    app.record(
        Tag.INCIDENT_OPENED,
        actor=actor,
        subject=iid,
        source=source.kind,
        source_ref=source.ref,
        affected=attached,
        fields=source.fields,
    )
    return iid


def open_from(
    app: App,
    *,
    actor: str,
    alert_id: str | None = None,
    scan: Path | None = None,
    scan_doc: dict[str, Any] | None = None,
    title: str | None = None,
    cfg: IncidentSettings | None = None,
    aware_at: datetime | None = None,
    serious: bool = False,
) -> str:
    """Open from an alert id, a scan file (or a scan result in memory), or a title."""
    found: list[sources.Source] = []
    if scan is not None:
        found.append(sources.read_scan(scan))
    if scan_doc is not None:
        found.append(sources.parse_scan(scan_doc))
    if alert_id:
        found.append(sources.read_alert(app, alert_id))
    if not found:
        if not title or not title.strip():
            raise UsageError("give --alert ALERT_ID, --scan SCAN.json or --title T")
        found.append(sources.Source(kind="manual", ref="", title=title.strip()))
    return open_incident(
        app, merge(*found), actor=actor, cfg=cfg, title=title, aware_at=aware_at, serious=serious
    )


def attach(
    app: App,
    incident_id: str,
    *,
    actor: str,
    scan: Path | None = None,
    patient_ids: Iterable[str] = (),
    fields: Iterable[str] = (),
    cfg: IncidentSettings | None = None,
) -> int:
    """Add patients (from a later scan, or a list) and fields; the ENISA prefill follows."""
    src = sources.read_scan(scan) if scan else sources.Source(kind="manual", ref="", title="")
    src.patients.update({p.strip(): ("manual", 1.0) for p in patient_ids if p.strip()})
    src.fields = sorted(set(src.fields) | {f.strip().lower() for f in fields if f.strip()})
    if not src.patients and not src.fields:
        raise UsageError("nothing to attach: give --scan, --patients or --fields")
    now = app.clock.now()
    with app.session() as s:
        inc = get(s, incident_id)
        added = _attach(s, incident_id, src.patients, now)
        _add_fields(s, incident_id, src.fields)
        _add_accounts(s, incident_id, src.accounts)
        if src.vendor_id and not inc.vendor_id:
            inc.vendor_id = src.vendor_id
            clocks.start(s, inc, cfg or settings())
        inc.publicly_posted |= src.publicly_posted
        s.flush()
        all_fields = list(
            s.scalars(select(ExposedField.field).where(ExposedField.incident_id == incident_id))
        )
        count = (
            s.scalar(
                select(func.count())
                .select_from(AffectedPatient)
                .where(AffectedPatient.incident_id == incident_id)
            )
            or 0
        )
        risk.write_factors(
            s,
            incident_id,
            risk.propose(
                all_fields,
                publicly_posted=inc.publicly_posted,
                malicious=src.malicious or bool(src.accounts),
                affected=count,
            ),
            at=now,
            by="phiguard",
        )
        for ts, kind, text in src.facts:
            log(s, incident_id, ts or now, kind, text, "phiguard", src.ref)
        log(s, incident_id, now, "attached", f"{added:,} patients attached by {actor}", actor)
    app.record(Tag.INCIDENT_PATIENTS_ATTACHED, actor=actor, subject=incident_id, added=added)
    return added


def affected_count(s: Session, incident_id: str) -> int:
    return (
        s.scalar(
            select(func.count())
            .select_from(AffectedPatient)
            .where(AffectedPatient.incident_id == incident_id)
        )
        or 0
    )


def fields_exposed(s: Session, incident_id: str) -> list[str]:
    return sorted(
        s.scalars(select(ExposedField.field).where(ExposedField.incident_id == incident_id))
    )


def accounts(s: Session, incident_id: str) -> list[InvolvedAccount]:
    return list(
        s.scalars(select(InvolvedAccount).where(InvolvedAccount.incident_id == incident_id))
    )


def summary(app: App, incident_id: str, cfg: IncidentSettings | None = None) -> dict[str, Any]:
    """What ``incidents show --format json`` prints."""
    cfg = cfg or settings()
    now = app.clock.now()
    with app.session() as s:
        inc = get(s, incident_id)
        tasks = playbook.tasks(s, incident_id)
        notice_states = dict(
            s.execute(
                select(Notice.state, func.count())
                .where(Notice.incident_id == incident_id)
                .group_by(Notice.state)
            ).all()
        )
        return {
            "incident_id": inc.incident_id,
            "title": inc.title,
            "status": inc.status,
            "source": inc.source,
            "source_ref": inc.source_ref,
            "opened_at": clocks.hkt(inc.opened_at),
            "aware_at": clocks.hkt(inc.aware_at),
            "contained_at": clocks.hkt(inc.contained_at) if inc.contained_at else None,
            "vendor_id": inc.vendor_id,
            "accounts": [
                {"account_id": a.account_id, "vendor_id": a.vendor_id, "role": a.role}
                for a in accounts(s, incident_id)
            ],
            "affected_count": affected_count(s, incident_id),
            "fields_exposed": fields_exposed(s, incident_id),
            "serious": inc.serious,
            "publicly_posted": inc.publicly_posted,
            "enisa": risk.load(s, incident_id).as_dict(),
            "clocks": {c.recipient: c.as_dict() for c in clocks.view(s, incident_id, now, cfg)},
            "tasks": {
                "open": sum(t.status == "open" for t in tasks),
                "done": sum(t.status == "done" for t in tasks),
                "overdue": sum(t.status == "open" and t.due < now for t in tasks),
            },
            "notices": notice_states,
        }


def list_incidents(app: App) -> list[dict[str, Any]]:
    with app.session() as s:
        incs = s.scalars(select(Incident).order_by(Incident.opened_at.desc())).all()
        counts = dict(
            s.execute(
                select(AffectedPatient.incident_id, func.count()).group_by(
                    AffectedPatient.incident_id
                )
            ).all()
        )
        out = []
        for inc in incs:
            a = risk.load(s, inc.incident_id)
            out.append(
                {
                    "incident_id": inc.incident_id,
                    "title": inc.title,
                    "status": inc.status,
                    "opened_at": clocks.hkt(inc.opened_at),
                    "affected_count": counts.get(inc.incident_id, 0),
                    "score": a.score,
                    "band": a.band,
                }
            )
        return out


def add_note(app: App, incident_id: str, text: str, *, actor: str) -> None:
    if not text.strip():
        raise UsageError("a note cannot be empty")
    now = app.clock.now()
    with app.session() as s:
        get(s, incident_id)
        s.add(Note(incident_id=incident_id, ts=now, author=actor, text=text.strip()))
    app.record(Tag.INCIDENT_NOTE_ADDED, actor=actor, subject=incident_id)


def timeline(app: App, incident_id: str) -> list[dict[str, Any]]:
    with app.session() as s:
        get(s, incident_id)
        entries: list[dict[str, Any]] = [
            {"ts": e.ts, "kind": e.kind, "text": e.text, "actor": e.actor}
            for e in s.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
            )
        ]
        entries += [
            {"ts": n.ts, "kind": "note", "text": n.text, "actor": n.author}
            for n in s.scalars(select(Note).where(Note.incident_id == incident_id))
        ]
    entries.sort(key=lambda e: e["ts"])
    for e in entries:
        e["ts"] = clocks.hkt(e["ts"])
    return entries


def assess(
    app: App, incident_id: str, factor: str, value: float, rationale: str, *, actor: str
) -> dict[str, Any]:
    now = app.clock.now()
    with app.session() as s:
        inc = get(s, incident_id)
        result = risk.set_factor(s, inc, factor, value, rationale, at=now, by=actor)
        log(
            s,
            incident_id,
            now,
            "assessed",
            f"{factor} set to {value:g} by {actor}: {rationale.strip()} (score {result.score:g}, "
            f"{result.band})",
            actor,
        )
        playbook.auto_complete(s, incident_id, "assess.enisa", at=now, by=actor)
    app.record(
        Tag.INCIDENT_ASSESSED,
        actor=actor,
        subject=incident_id,
        factor=factor,
        value=value,
        score=result.score,
        band=result.band,
    )
    return result.as_dict()


def mark_notified(
    app: App,
    incident_id: str,
    recipient: str,
    *,
    actor: str,
    reference: str = "",
    at: datetime | None = None,
) -> None:
    now = app.clock.now()
    when = at or now
    if when > now:
        raise UsageError("a notice cannot be recorded in the future")
    with app.session() as s:
        get(s, incident_id)
        clocks.mark_notified(s, incident_id, recipient, at=when, reference=reference)
        log(
            s,
            incident_id,
            when,
            "notified",
            f"{clocks.LABELS[recipient]} notified"
            + (f" (reference {reference})" if reference else ""),
            actor,
        )
        playbook.auto_complete(s, incident_id, f"notify.{recipient}", at=now, by=actor)
        if recipient == "supplier":
            playbook.auto_complete(s, incident_id, "contain.supplier", at=now, by=actor)
    app.record(
        Tag.REGULATOR_NOTIFIED,
        actor=actor,
        subject=incident_id,
        recipient=recipient,
        reference=reference,
    )


def complete_task(app: App, incident_id: str, key: str, *, actor: str) -> None:
    now = app.clock.now()
    with app.session() as s:
        get(s, incident_id)
        task = playbook.complete(s, incident_id, key, at=now, by=actor)
        log(s, incident_id, now, "task", f"task {key} done: {task.title}", actor)
    app.record(Tag.INCIDENT_TASK_DONE, actor=actor, subject=incident_id, task=key)


def close(app: App, incident_id: str, *, actor: str) -> None:
    now = app.clock.now()
    with app.session() as s:
        inc = get(s, incident_id)
        if inc.status == "closed":
            raise Conflict(f"{incident_id} is already closed")
        inc.status, inc.closed_at = "closed", now
        log(s, incident_id, now, "closed", f"incident closed by {actor}", actor)
    app.record(Tag.INCIDENT_CLOSED, actor=actor, subject=incident_id)
