"""Tables of the detection part (migration 0004): alerts, suppressions and runs.

An alert keeps, per rule that contributed to it, the severity, score, patient count, sample
and reasons (``hits``); the summary columns (rule, severity, score, reasons …) are derived from
that map each time the alert is merged with new hits, so a later, fuller batch run replaces a
live alert's partial counts instead of adding a second sentence. No column holds a plaintext
identifier: accounts, vendors and pseudonymous patient ids only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime


class Alert(Base):
    __tablename__ = "detection_alerts"
    __table_args__ = (Index("ix_detection_alerts_subject_last", "subject", "last_ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str] = mapped_column(String(80))  # account id, or source:<name>
    account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    vendor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(8), index=True)
    score: Mapped[float] = mapped_column(Float)
    anomaly: Mapped[float] = mapped_column(Float, default=0.0)
    first_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    last_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    patient_count: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    sample: Mapped[list[str]] = mapped_column(JSON)
    hits: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    verdict: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    origin: Mapped[str] = mapped_column(String(8))  # batch, live
    notified: Mapped[str | None] = mapped_column(String(8))  # highest severity sent to sinks
    contained: Mapped[str | None] = mapped_column(String(80))  # what containment did
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Suppression(Base):
    """After a false-positive or benign verdict: this rule on this subject stays quiet until
    ``until`` unless its metric grows past ``max_metric`` × suppress_growth."""

    __tablename__ = "detection_suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(80), index=True)
    rule: Mapped[str] = mapped_column(String(40))
    max_metric: Mapped[float] = mapped_column(Float)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    alert_id: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DetectionRun(Base):
    __tablename__ = "detection_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    engine: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seconds: Mapped[float] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer)
    alerts: Mapped[int] = mapped_column(Integer)
    explained_share: Mapped[float | None] = mapped_column(Float)
