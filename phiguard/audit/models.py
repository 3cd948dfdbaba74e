"""Operational tables of ingestion: per-source completeness state, alerts, sealed batches.

The tamper-evident log itself lives in files under ``HOME/audit/`` (audit-core); these
tables are *derived* from it and can be rebuilt by replaying it (see
:mod:`phiguard.audit.ingest`). ``audit_ingest_state`` holds how far into the log they are.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime


class AuditSource(Base):
    """One source system (CMS, ePR …) as phiguard has heard from it."""

    __tablename__ = "audit_sources"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    low_seq: Mapped[int] = mapped_column(BigInteger)  # lowest seq received
    high_seq: Mapped[int] = mapped_column(BigInteger)  # highest seq received
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)  # when phiguard last received
    last_event_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_seconds: Mapped[int | None] = mapped_column(Integer)  # None: the setting
    silent_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditSeqGap(Base):
    """A range of sequence numbers never received (yet). Late arrivals split or close it."""

    __tablename__ = "audit_seq_gaps"
    __table_args__ = (Index("ix_audit_seq_gaps_source_first", "source", "first_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    anomaly_id: Mapped[int | None] = mapped_column(Integer)


class AuditAnomaly(Base):
    """A completeness alert: gap, duplicate, regression (out of order) or silent source."""

    __tablename__ = "audit_anomalies"
    __table_args__ = (Index("ix_audit_anomalies_source_kind", "source", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)  # the entry that revealed it
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text)


class IngestBatch(Base):
    """One sealed batch: where its header entry is in the log and what it held."""

    __tablename__ = "audit_ingest_batches"

    header_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    part: Mapped[str | None] = mapped_column(String(80))  # chunk/source key for resuming
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IngestState(Base):
    """Named high-water marks (e.g. how far into the log the tables above are applied)."""

    __tablename__ = "audit_ingest_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
