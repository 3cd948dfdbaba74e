"""The patients' portal: how a patient reaches "was my data in a leak?" and their access
history without phiguard ever holding a patient password.

The hospital's mobile app has already authenticated the patient. With an API token scoped
``portal:tickets`` it asks phiguard for a one-time ticket for that patient; it opens
``/portal/enter?ticket=…`` in the patient's browser; phiguard swaps the ticket for a short
patient session. Tickets are single-use, expire in minutes, and are stored hashed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import NotFound, PermissionDenied
from phiguard.storage.models import Patient
from phiguard.web.config import WebSettings
from phiguard.web.models import PortalTicket


class Portal:
    def __init__(self, app: App, web: WebSettings | None = None) -> None:
        self.app = app
        self.web = web or WebSettings()

    def issue(self, patient_id: str, *, issued_by: str) -> str:
        now = self.app.clock.now()
        ticket = secrets.token_urlsafe(32)
        with self.app.session() as s:
            patient = s.scalar(
                select(Patient.patient_id).where(
                    Patient.patient_id == patient_id, Patient.is_canary.is_(False)
                )
            )
            if patient is None:
                raise NotFound(f"no patient {patient_id}")
            s.add(
                PortalTicket(
                    ticket_hash=hashlib.sha256(ticket.encode()).hexdigest(),
                    patient_id=patient_id,
                    issued_by=issued_by,
                    expires_at=now + timedelta(minutes=self.web.portal_ticket_minutes),
                )
            )
        self.app.record(Tag.PORTAL_TICKET_ISSUED, actor=f"token:{issued_by}", subject=patient_id)
        return ticket

    def redeem(self, ticket: str) -> str:
        """The patient id of a valid, unused ticket; the ticket is spent."""
        now = self.app.clock.now()
        with self.app.session() as s:
            row = s.get(PortalTicket, hashlib.sha256(ticket.encode()).hexdigest())
            if row is None or row.used_at is not None or now >= row.expires_at:
                raise PermissionDenied("this link has expired; open it again from the app")
            row.used_at = now
            patient_id = row.patient_id
        self.app.record(Tag.PORTAL_OPENED, actor=f"patient:{patient_id}", subject=patient_id)
        return patient_id
