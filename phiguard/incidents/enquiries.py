"""The enquiries log: hotline calls, e-mails and visits about an incident, linked to the
notice the caller quotes. A code read out by a caller is checked through the same
rate-limited verification as the public page, so the hotline is no side door."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.audit.tags import Tag
from phiguard.errors import NotFound, UsageError
from phiguard.incidents import clocks, verification
from phiguard.incidents.cases import get
from phiguard.incidents.models import Enquiry, Notice

if TYPE_CHECKING:
    from phiguard.app import App


ENQUIRY_CHANNELS = ("hotline", "email", "walk_in", "letter", "app")


def log_enquiry(
    app: App,
    incident_id: str,
    *,
    agent: str,
    topic: str,
    channel: str = "hotline",
    outcome: str = "",
    notice_ref: str | None = None,
    code: str | None = None,
    client: str = "hotline",
) -> dict[str, Any]:
    """One hotline call (or e-mail, visit) about the incident; a code the caller reads out
    is checked through the same rate-limited verification as the public page."""
    if channel not in ENQUIRY_CHANNELS:
        raise UsageError(f"channel must be one of {', '.join(ENQUIRY_CHANNELS)}")
    if not topic.strip():
        raise UsageError("an enquiry needs a topic (e.g. am-i-affected, verify-letter, complaint)")
    genuine = None
    if code:
        genuine = verification.check(app, code, client=f"agent:{agent}").genuine
    now = app.clock.now()
    with app.session() as s:
        get(s, incident_id)
        patient_id = None
        if notice_ref:
            n = s.scalars(
                select(Notice).where(Notice.ref == notice_ref, Notice.incident_id == incident_id)
            ).first()
            if n is None:
                raise NotFound(f"no notice {notice_ref} in {incident_id}")
            patient_id = n.patient_id
        s.add(
            Enquiry(
                incident_id=incident_id,
                ts=now,
                channel=channel,
                notice_ref=notice_ref,
                patient_id=patient_id,
                topic=topic.strip()[:64],
                outcome=outcome,
                agent=agent,
                code_checked=code is not None,
            )
        )
    app.record(Tag.ENQUIRY_LOGGED, actor=agent, subject=incident_id, topic=topic, channel=channel)
    return {"incident_id": incident_id, "topic": topic, "code_genuine": genuine}


def enquiries(app: App, incident_id: str) -> list[dict[str, Any]]:
    with app.session() as s:
        get(s, incident_id)
        rows = s.scalars(
            select(Enquiry).where(Enquiry.incident_id == incident_id).order_by(Enquiry.ts)
        )
        return [
            {
                "ts": clocks.hkt(e.ts),
                "channel": e.channel,
                "topic": e.topic,
                "notice_ref": e.notice_ref,
                "outcome": e.outcome,
                "agent": e.agent,
            }
            for e in rows
        ]
