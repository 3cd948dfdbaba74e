"""Regulator and recipient clocks, computed in Hong Kong time from when the hospital became aware.

=========  ===========================================================  ==================
recipient  deadline                                                     nature
=========  ===========================================================  ==================
pcpd       "as soon as practicable": internal target, default 24 h      recommended practice
cap653     12 h (serious: core function disrupted) / 48 h (any other),  statutory, only for a
           only when the operator is designated (a setting)             designated operator
police     internal target, default 24 h                                internal
hkcert     internal target, default 24 h                                internal
supplier   formal notice to the contractor involved, default 24 h       internal (DPP2(3)/4(2))
=========  ===========================================================  ==================

States: ``pending`` (time left), ``due_soon`` (inside the reminder window), ``overdue``,
``done`` (notified in time), ``done_late`` and ``not_applicable``. Durations are exact hours
(Hong Kong has no daylight saving, so wall-clock and elapsed hours agree); deadlines are
shown with their ``+08:00`` offset. The clock passed in decides "now", so tests move it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.clock import HKT
from phiguard.errors import Conflict, UsageError
from phiguard.incidents.models import Incident, RegulatorClock
from phiguard.incidents.settings import IncidentSettings

RECIPIENTS = ("pcpd", "cap653", "police", "hkcert", "supplier")
LABELS = {
    "pcpd": "Privacy Commissioner for Personal Data (PCPD)",
    "cap653": "Commissioner of Critical Infrastructure (Computer-system Security), Cap. 653",
    "police": "Hong Kong Police Force (Cyber Security and Technology Crime Bureau)",
    "hkcert": "HKCERT",
    "supplier": "Supplier / contractor involved",
}


def hkt(ts: datetime) -> str:
    return ts.astimezone(HKT).isoformat(timespec="minutes")


def plan(
    incident: Incident, cfg: IncidentSettings
) -> list[tuple[str, bool, timedelta | None, str]]:
    """(recipient, applicable, time allowed, why) for one incident."""
    rows: list[tuple[str, bool, timedelta | None, str]] = [
        (
            "pcpd",
            True,
            timedelta(hours=cfg.pcpd_target_hours),
            f"internal target of {cfg.pcpd_target_hours:g} h: the PCPD asks for notice "
            "as soon as practicable",
        ),
    ]
    if cfg.cap653_designated:
        hours = cfg.cap653_serious_hours if incident.serious else cfg.cap653_other_hours
        kind = "serious incident" if incident.serious else "other incident"
        rows.append(
            (
                "cap653",
                True,
                timedelta(hours=hours),
                f"Cap. 653 designated operator, {kind}: report within {hours:g} h "
                "of becoming aware",
            )
        )
    else:
        rows.append(
            ("cap653", False, None, "the operator is not a designated Cap. 653 operator (setting)")
        )
    rows.append(
        (
            "police",
            True,
            timedelta(hours=cfg.police_target_hours),
            f"internal target of {cfg.police_target_hours:g} h for a police report",
        )
    )
    rows.append(
        (
            "hkcert",
            True,
            timedelta(hours=cfg.hkcert_target_hours),
            f"internal target of {cfg.hkcert_target_hours:g} h for the HKCERT report",
        )
    )
    if incident.vendor_id:
        rows.append(
            (
                "supplier",
                True,
                timedelta(hours=cfg.supplier_target_hours),
                f"formal notice to supplier {incident.vendor_id} "
                f"within {cfg.supplier_target_hours:g} h",
            )
        )
    else:
        rows.append(("supplier", False, None, "no supplier involved"))
    return rows


def start(s: Session, incident: Incident, cfg: IncidentSettings) -> None:
    """Create (or recompute, after ``aware_at``/``serious``/the vendor changed) the clocks."""
    for recipient, applicable, allowed, basis in plan(incident, cfg):
        due = incident.aware_at + allowed if allowed is not None else None
        row = s.get(RegulatorClock, (incident.incident_id, recipient))
        if row is None:
            s.add(
                RegulatorClock(
                    incident_id=incident.incident_id,
                    recipient=recipient,
                    applicable=applicable,
                    due=due,
                    basis=basis,
                )
            )
        else:
            row.applicable, row.due, row.basis = applicable, due, basis
    s.flush()


def state(row: RegulatorClock, now: datetime, cfg: IncidentSettings) -> str:
    if not row.applicable or row.due is None:
        return "not_applicable"
    if row.notified_at is not None:
        return "done" if row.notified_at <= row.due else "done_late"
    if now > row.due:
        return "overdue"
    if now >= row.due - timedelta(hours=cfg.reminder_hours):
        return "due_soon"
    return "pending"


@dataclass(frozen=True)
class ClockView:
    recipient: str
    label: str
    due: datetime | None
    state: str
    basis: str
    notified_at: datetime | None
    reference: str
    remaining: timedelta | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": hkt(self.due) if self.due else None,
            "state": self.state,
            "label": self.label,
            "basis": self.basis,
            "notified_at": hkt(self.notified_at) if self.notified_at else None,
            "reference": self.reference,
            "remaining_hours": round(self.remaining.total_seconds() / 3600, 2)
            if self.remaining is not None
            else None,
        }


def rows(s: Session, incident_id: str) -> list[RegulatorClock]:
    found = s.scalars(select(RegulatorClock).where(RegulatorClock.incident_id == incident_id)).all()
    return sorted(
        found, key=lambda r: RECIPIENTS.index(r.recipient) if r.recipient in RECIPIENTS else 99
    )


def view(s: Session, incident_id: str, now: datetime, cfg: IncidentSettings) -> list[ClockView]:
    out = []
    for r in rows(s, incident_id):
        st = state(r, now, cfg)
        remaining = (
            (r.due - now)
            if r.due is not None and st in ("pending", "due_soon", "overdue")
            else None
        )
        out.append(
            ClockView(
                r.recipient,
                LABELS.get(r.recipient, r.recipient),
                r.due,
                st,
                r.basis,
                r.notified_at,
                r.reference,
                remaining,
            )
        )
    return out


def mark_notified(
    s: Session, incident_id: str, recipient: str, *, at: datetime, reference: str = ""
) -> RegulatorClock:
    if recipient not in RECIPIENTS:
        raise UsageError(f"unknown recipient {recipient!r} (one of {', '.join(RECIPIENTS)})")
    row = s.get(RegulatorClock, (incident_id, recipient))
    if row is None:
        raise Conflict(f"incident {incident_id} has no {recipient} clock")
    if row.notified_at is not None:
        raise Conflict(f"{recipient} was already recorded as notified at {hkt(row.notified_at)}")
    row.notified_at, row.reference = at, reference
    s.flush()
    return row


@dataclass(frozen=True)
class Reminder:
    incident_id: str
    recipient: str
    state: str
    due: datetime

    @property
    def text(self) -> str:
        when = "was due" if self.state == "overdue" else "is due"
        return f"{self.incident_id}: notice to {LABELS[self.recipient]} {when} at {hkt(self.due)}"


def reminders(
    s: Session, now: datetime, cfg: IncidentSettings, incident_ids: Iterable[str] | None = None
) -> list[Reminder]:
    """Clocks that entered ``due_soon`` or ``overdue`` since the last reminder; each level once."""
    q = select(RegulatorClock).where(
        RegulatorClock.applicable.is_(True), RegulatorClock.notified_at.is_(None)
    )
    if incident_ids is not None:
        q = q.where(RegulatorClock.incident_id.in_(list(incident_ids)))
    out = []
    for r in s.scalars(q):
        st = state(r, now, cfg)
        if st in ("due_soon", "overdue") and r.reminded != st:
            r.reminded = st
            assert r.due is not None
            out.append(Reminder(r.incident_id, r.recipient, st, r.due))
    s.flush()
    return sorted(out, key=lambda x: (x.due, x.incident_id))
