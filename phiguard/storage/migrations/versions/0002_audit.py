"""audit: per-source completeness, completeness alerts, sealed ingest batches.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phiguard.storage.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_sources",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("low_seq", sa.BigInteger, nullable=False),
        sa.Column("high_seq", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("last_event_ts", UTCDateTime, nullable=True),
        sa.Column("heartbeat_seconds", sa.Integer, nullable=True),
        sa.Column("silent_since", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("source", name="pk_audit_sources"),
    )
    op.create_table(
        "audit_seq_gaps",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("anomaly_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_seq_gaps"),
    )
    op.create_index("ix_audit_seq_gaps_source_first", "audit_seq_gaps", ["source", "first_seq"])
    op.create_table(
        "audit_anomalies",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("detected_at", UTCDateTime, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_anomalies"),
    )
    op.create_index("ix_audit_anomalies_source_kind", "audit_anomalies", ["source", "kind"])
    op.create_index("ix_audit_anomalies_status", "audit_anomalies", ["status"])
    op.create_table(
        "audit_ingest_batches",
        sa.Column("header_index", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("part", sa.String(80), nullable=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("header_index", name="pk_audit_ingest_batches"),
    )
    op.create_index("ix_audit_ingest_batches_sha256", "audit_ingest_batches", ["sha256"])
    op.create_table(
        "audit_ingest_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_audit_ingest_state"),
    )


def downgrade() -> None:
    op.drop_table("audit_ingest_state")
    op.drop_index("ix_audit_ingest_batches_sha256", table_name="audit_ingest_batches")
    op.drop_table("audit_ingest_batches")
    op.drop_index("ix_audit_anomalies_status", table_name="audit_anomalies")
    op.drop_index("ix_audit_anomalies_source_kind", table_name="audit_anomalies")
    op.drop_table("audit_anomalies")
    op.drop_index("ix_audit_seq_gaps_source_first", table_name="audit_seq_gaps")
    op.drop_table("audit_seq_gaps")
    op.drop_table("audit_sources")
