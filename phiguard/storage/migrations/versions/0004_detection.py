"""detection: alerts, suppressions, runs

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detection_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("vendor_id", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("anomaly", sa.Float(), nullable=False),
        sa.Column("first_ts", _ts(), nullable=False),
        sa.Column("last_ts", _ts(), nullable=False),
        sa.Column("patient_count", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=24), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", _ts(), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("notified", sa.String(length=8), nullable=True),
        sa.Column("contained", sa.String(length=80), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_alerts")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_detection_alerts_alert_id")),
    )
    with op.batch_alter_table("detection_alerts") as b:
        b.create_index("ix_detection_alerts_subject_last", ["subject", "last_ts"])
        b.create_index(b.f("ix_detection_alerts_account_id"), ["account_id"])
        b.create_index(b.f("ix_detection_alerts_vendor_id"), ["vendor_id"])
        b.create_index(b.f("ix_detection_alerts_severity"), ["severity"])
        b.create_index(b.f("ix_detection_alerts_status"), ["status"])

    op.create_table(
        "detection_suppressions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("max_metric", sa.Float(), nullable=False),
        sa.Column("until", _ts(), nullable=False),
        sa.Column("alert_id", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_suppressions")),
    )
    with op.batch_alter_table("detection_suppressions") as b:
        b.create_index(b.f("ix_detection_suppressions_subject"), ["subject"])

    op.create_table(
        "detection_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("since", _ts(), nullable=True),
        sa.Column("until", _ts(), nullable=True),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("explained_share", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_runs")),
    )


def downgrade() -> None:
    op.drop_table("detection_runs")
    with op.batch_alter_table("detection_suppressions") as b:
        b.drop_index(b.f("ix_detection_suppressions_subject"))
    op.drop_table("detection_suppressions")
    with op.batch_alter_table("detection_alerts") as b:
        for name in ("status", "severity", "vendor_id", "account_id"):
            b.drop_index(b.f(f"ix_detection_alerts_{name}"))
        b.drop_index("ix_detection_alerts_subject_last")
    op.drop_table("detection_alerts")
