"""Tables of the breach-response part (migration 0006).

No table here holds a name, HKID, phone number or address: patients appear by their
pseudonymous ``patient_id`` only, and a notice's verification code is stored as a keyed
HMAC (``code_hash``) plus the random ``code_nonce`` it is derived from, never as the code.
Letters and SMS are rendered in memory at send time, so their text is not stored either.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime

INC_FK = "incidents.incident_id"


class Incident(Base):
    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open contained closed
    source: Mapped[str] = mapped_column(String(16))  # alert, scan, manual
    source_ref: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    vendor_id: Mapped[str | None] = mapped_column(String(64))
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    publicly_posted: Mapped[bool] = mapped_column(Boolean, default=False)
    cyber_attack: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    playbook: Mapped[str] = mapped_column(String(64), default="pcpd")
    contained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AffectedPatient(Base):
    __tablename__ = "incident_patients"
    __table_args__ = (Index("ix_incident_patients_patient", "patient_id"),)

    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    matched_on: Mapped[str] = mapped_column(String(200), default="")
    confidence: Mapped[float] = mapped_column(Float, default=1.0)


class ExposedField(Base):
    __tablename__ = "incident_fields"

    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)


class InvolvedAccount(Base):
    __tablename__ = "incident_accounts"

    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="source")
    evidence: Mapped[str] = mapped_column(Text, default="")


class TimelineEntry(Base):
    __tablename__ = "incident_timeline"
    __table_args__ = (Index("ix_incident_timeline_incident_ts", "incident_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64), default="")
    ref: Mapped[str] = mapped_column(String(200), default="")


class Note(Base):
    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class Task(Base):
    __tablename__ = "incident_tasks"
    __table_args__ = (UniqueConstraint("incident_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), index=True)
    step: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(64))
    due: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open done skipped
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(64))


class RiskFactor(Base):
    __tablename__ = "incident_risk_factors"

    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), primary_key=True)
    factor: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    rationale: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16), default="prefilled")  # prefilled, edited
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class RegulatorClock(Base):
    __tablename__ = "incident_clocks"

    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(16), primary_key=True)
    applicable: Mapped[bool] = mapped_column(Boolean, default=True)
    due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    basis: Mapped[str] = mapped_column(Text, default="")
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reference: Mapped[str] = mapped_column(String(200), default="")
    reminded: Mapped[str] = mapped_column(String(16), default="")  # "", due_soon, overdue


class Report(Base):
    __tablename__ = "incident_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    written_by: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # the report's JSON; no identifiers


class Campaign(Base):
    __tablename__ = "notice_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    channels: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(16), default="queued"
    )  # queued running interrupted done


class Notice(Base):
    """One patient's notice in one campaign; ``plan`` is the ordered channel fallback list."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("campaign_id", "patient_id"),
        Index("ix_notices_campaign_channel_state", "campaign_id", "channel", "state"),
        Index("ix_notices_incident_patient", "incident_id", "patient_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("notice_campaigns.id"))
    incident_id: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    plan: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    code_nonce: Mapped[bytes] = mapped_column(LargeBinary(16))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_count: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One attempt to deliver a notice on one channel; ``message_id`` is the idempotency key."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (Index("ix_notice_deliveries_notice", "notice_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"))
    channel: Mapped[str] = mapped_column(String(8))
    attempt: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # sending sent delivered failed returned
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    transport_ref: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str] = mapped_column(Text, default="")


class Enquiry(Base):
    __tablename__ = "incident_enquiries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey(INC_FK), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(16))  # hotline email walk_in letter
    notice_ref: Mapped[str | None] = mapped_column(String(32))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(Text, default="")
    agent: Mapped[str] = mapped_column(String(64))
    code_checked: Mapped[bool] = mapped_column(Boolean, default=False)


class VerificationAttempt(Base):
    __tablename__ = "notice_verifications"
    __table_args__ = (Index("ix_notice_verifications_client_ts", "client", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    client: Mapped[bytes] = mapped_column(LargeBinary(16))  # keyed hash of the client address
    genuine: Mapped[bool] = mapped_column(Boolean)
