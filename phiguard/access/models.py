"""Tables of the access-governance part (migration 0003).

The foundation owns ``vendors``, ``contracts``, ``accounts`` and ``grants``; everything here
hangs off them: the requests and approvals that make a grant, the grant's terms and full
history, break-glass sessions, review campaigns, vendor assessments and findings, contractor
training, and one version counter the decision point watches to know that access rights
changed in another process.

No column holds a plaintext identifier: rows name accounts, vendors and pseudonymous
patient ids only; free-text reasons are written by staff about the access, not about a patient.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime


class AccessState(Base):
    """One row: a counter bumped in the same transaction as every change to access rights."""

    __tablename__ = "access_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class AccessRequest(Base):
    __tablename__ = "access_requests"

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    scope_cluster: Mapped[str] = mapped_column(String(8))
    scope_fields: Mapped[str] = mapped_column(Text)
    actions: Mapped[str] = mapped_column(Text)
    max_rows: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(16))
    ticket: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    required_approvals: Mapped[int] = mapped_column(Integer)
    # pending, approved, denied, cancelled, expired
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grant_id: Mapped[str | None] = mapped_column(String(64))


class Approval(Base):
    __tablename__ = "access_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.request_id"), index=True)
    approver: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    verdict: Mapped[str] = mapped_column(String(8))  # approve, deny
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text, default="")


class GrantTerms(Base):
    """What phiguard adds to a foundation ``grants`` row: where it came from and how it ended."""

    __tablename__ = "access_grant_terms"

    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.grant_id"), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(32))
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))
    end_reason: Mapped[str | None] = mapped_column(Text)


class GrantEvent(Base):
    """Full history of a request and the grant it became, for certification reviews."""

    __tablename__ = "access_grant_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(32), index=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class VendorEvent(Base):
    __tablename__ = "access_vendor_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.vendor_id"), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class BreakGlass(Base):
    __tablename__ = "access_breakglass"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_due: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewer: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(16))  # justified, unjustified
    review_note: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # active (until ends_at), ended (closed early), then review state is separate
    status: Mapped[str] = mapped_column(String(16), index=True)


class ReviewCampaign(Base):
    __tablename__ = "access_review_campaigns"

    campaign_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    vendor_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # open, closed


class ReviewItem(Base):
    __tablename__ = "access_review_items"
    __table_args__ = (UniqueConstraint("campaign_id", "grant_id"),)

    item_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("access_review_campaigns.campaign_id"), index=True
    )
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.grant_id"))
    account_id: Mapped[str] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # pending, certified, revoked, lapsed
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")


class Assessment(Base):
    __tablename__ = "access_assessments"

    assessment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.vendor_id"), index=True)
    assessor: Mapped[str] = mapped_column(String(64))
    completed_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    answers: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class Finding(Base):
    __tablename__ = "access_findings"

    finding_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    assessment_id: Mapped[str] = mapped_column(
        ForeignKey("access_assessments.assessment_id"), index=True
    )
    vendor_id: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(8))  # low, medium, high, critical
    title: Mapped[str] = mapped_column(Text)
    due: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))  # open, closed


class TrainingRecord(Base):
    __tablename__ = "access_training"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    course: Mapped[str] = mapped_column(String(64))
    completed_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
