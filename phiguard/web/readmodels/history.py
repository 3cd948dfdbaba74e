"""A patient's access history — the "accounting of disclosures": who opened the record,
when, doing what, for which stated purpose, under which grant, and whether a care
relationship explains it. Contractor (vendor) accounts are flagged so they stand out.

Every call writes a ``console:patient:viewed`` (or ``history-served``) record: looking at
who looked at a patient is itself a look at the patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import NotFound
from phiguard.storage.models import Account, Encounter, Grant, Patient, Vendor
from phiguard.web.readmodels.events import query

PURPOSES = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "HPAYMT": "payment",
    "HOPERAT": "hospital operations",
    "HRESCH": "research",
    "PUBHLTH": "public health",
    "BTG": "break-glass emergency access",
    "SYSADMIN": "system administration",
    "SYSDEV": "system development",
    "HSYSADMIN": "system administration",
}


@dataclass(frozen=True)
class HistoryRow:
    ts: datetime
    account_id: str
    role: str
    department: str
    organisation: str
    contractor: bool
    action: str
    fields: str
    purpose: str
    purpose_label: str
    outcome: str
    source: str
    grant_id: str | None
    explained: bool


@dataclass
class PatientHistory:
    patient_id: str
    rows: list[HistoryRow] = field(default_factory=list)
    truncated: bool = False

    @property
    def contractor_count(self) -> int:
        return sum(1 for r in self.rows if r.contractor)

    @property
    def accounts(self) -> int:
        return len({r.account_id for r in self.rows})


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def patient_history(
    app: App, patient_id: str, *, actor: str, channel: str, limit: int = 500
) -> PatientHistory:
    with app.session() as s:
        exists = s.scalar(
            select(Patient.patient_id).where(
                Patient.patient_id == patient_id, Patient.is_canary.is_(False)
            )
        )
    if exists is None:
        raise NotFound(f"no patient {patient_id}")
    tag = Tag.PATIENT_HISTORY_SERVED if channel == "api" else Tag.PATIENT_VIEWED
    app.record(tag, actor=actor, subject=patient_id, view="access-history", channel=channel)
    raw = query(
        app,
        """
        SELECT ts, account_id, action, coalesce(fields, ''), coalesce(purpose, ''),
               coalesce(outcome, ''), coalesce(source, '')
        FROM {events} WHERE patient_id = ? ORDER BY ts DESC LIMIT ?""",
        [patient_id, limit + 1],
    )
    history = PatientHistory(patient_id, truncated=len(raw) > limit)
    raw = raw[:limit]
    account_ids = sorted({r[1] for r in raw})
    with app.session() as s:
        accounts = (
            {
                a.account_id: a
                for a in s.scalars(select(Account).where(Account.account_id.in_(account_ids)))
            }
            if account_ids
            else {}
        )
        vendors = {v.vendor_id: v.name for v in s.scalars(select(Vendor))}
        grants = (
            list(s.scalars(select(Grant).where(Grant.account_id.in_(account_ids))))
            if account_ids
            else []
        )
        encounters = list(s.scalars(select(Encounter).where(Encounter.patient_id == patient_id)))
    for ts, account_id, action, fields, purpose, outcome, source in raw:
        ts = _aware(ts)
        acc = accounts.get(account_id)
        employer = acc.employer if acc else ""
        contractor = bool(acc and employer != "HA")
        grant = next(
            (
                g.grant_id
                for g in grants
                if g.account_id == account_id and g.valid_from <= ts <= g.valid_to
            ),
            None,
        )
        explained = any(
            e.start <= ts
            and (e.end is None or ts <= e.end)
            and (
                e.account_id == account_id
                or (e.account_id is None and acc is not None and e.department == acc.department)
            )
            for e in encounters
        )
        history.rows.append(
            HistoryRow(
                ts=ts,
                account_id=account_id,
                role=acc.role if acc else "unknown account",
                department=acc.department if acc else "",
                organisation=(
                    "Hospital Authority"
                    if employer == "HA"
                    else vendors.get(employer, employer)
                    if acc
                    else ""
                ),
                contractor=contractor,
                action=action,
                fields=fields,
                purpose=purpose,
                purpose_label=PURPOSES.get(purpose.upper(), purpose.lower() or "not stated"),
                outcome=outcome,
                source=source,
                grant_id=grant,
                explained=explained,
            )
        )
    return history
