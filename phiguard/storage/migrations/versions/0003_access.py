"""access governance: requests, approvals, grant terms and history, break-glass, reviews,
vendor assessments and findings, contractor training, and the access-state version counter.

Rendered from phiguard/access/models.py with Alembic's renderer, then edited by hand;
runs on SQLite (batch mode) and PostgreSQL. The foundation tables (vendors, contracts,
accounts, grants) are unchanged.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_grant_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=32), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grant_events")),
    )
    with op.batch_alter_table("access_grant_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_grant_events_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_grant_events_grant_id"), ["grant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_grant_events_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "access_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_state")),
    )
    op.create_table(
        "access_assessments",
        sa.Column("assessment_id", sa.String(length=32), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=False),
        sa.Column("assessor", sa.String(length=64), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.vendor_id"],
            name=op.f("fk_access_assessments_vendor_id_vendors"),
        ),
        sa.PrimaryKeyConstraint("assessment_id", name=op.f("pk_access_assessments")),
    )
    with op.batch_alter_table("access_assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_assessments_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "access_breakglass",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("cluster", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewer", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_access_breakglass_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_access_breakglass")),
    )
    with op.batch_alter_table("access_breakglass", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_breakglass_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_access_breakglass_status"), ["status"], unique=False)

    op.create_table(
        "access_grant_terms",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=True),
        sa.Column("single_use", sa.Boolean(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.grant_id"], name=op.f("fk_access_grant_terms_grant_id_grants")
        ),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_access_grant_terms")),
    )
    op.create_table(
        "access_requests",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("scope_cluster", sa.String(length=8), nullable=False),
        sa.Column("scope_fields", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("max_rows", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("ticket", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("single_use", sa.Boolean(), nullable=False),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_access_requests_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_access_requests")),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_requests_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_access_requests_status"), ["status"], unique=False)

    op.create_table(
        "access_review_campaigns",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner"],
            ["accounts.account_id"],
            name=op.f("fk_access_review_campaigns_owner_accounts"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_access_review_campaigns")),
    )
    op.create_table(
        "access_training",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("course", sa.String(length=64), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_access_training_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_training")),
    )
    with op.batch_alter_table("access_training", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_training_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "access_vendor_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.vendor_id"],
            name=op.f("fk_access_vendor_events_vendor_id_vendors"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_vendor_events")),
    )
    with op.batch_alter_table("access_vendor_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_vendor_events_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "access_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approver"],
            ["accounts.account_id"],
            name=op.f("fk_access_approvals_approver_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_requests.request_id"],
            name=op.f("fk_access_approvals_request_id_access_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_approvals")),
        sa.UniqueConstraint("request_id", "approver", name=op.f("uq_access_approvals_request_id")),
    )
    with op.batch_alter_table("access_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_approvals_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "access_findings",
        sa.Column("finding_id", sa.String(length=32), nullable=False),
        sa.Column("assessment_id", sa.String(length=32), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["access_assessments.assessment_id"],
            name=op.f("fk_access_findings_assessment_id_access_assessments"),
        ),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("pk_access_findings")),
    )
    with op.batch_alter_table("access_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_findings_assessment_id"), ["assessment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_findings_vendor_id"), ["vendor_id"], unique=False
        )

    op.create_table(
        "access_review_items",
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["access_review_campaigns.campaign_id"],
            name=op.f("fk_access_review_items_campaign_id_access_review_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.grant_id"], name=op.f("fk_access_review_items_grant_id_grants")
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_access_review_items")),
        sa.UniqueConstraint(
            "campaign_id", "grant_id", name=op.f("uq_access_review_items_campaign_id")
        ),
    )
    with op.batch_alter_table("access_review_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_review_items_campaign_id"), ["campaign_id"], unique=False
        )

    state = sa.table("access_state", sa.column("id", sa.Integer), sa.column("version", sa.Integer))
    op.bulk_insert(state, [{"id": 1, "version": 0}])


def downgrade() -> None:
    with op.batch_alter_table("access_review_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_review_items_campaign_id"))

    op.drop_table("access_review_items")
    with op.batch_alter_table("access_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_findings_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_access_findings_assessment_id"))

    op.drop_table("access_findings")
    with op.batch_alter_table("access_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_approvals_request_id"))

    op.drop_table("access_approvals")
    with op.batch_alter_table("access_vendor_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_vendor_events_vendor_id"))

    op.drop_table("access_vendor_events")
    with op.batch_alter_table("access_training", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_training_account_id"))

    op.drop_table("access_training")
    op.drop_table("access_review_campaigns")
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_requests_status"))
        batch_op.drop_index(batch_op.f("ix_access_requests_account_id"))

    op.drop_table("access_requests")
    op.drop_table("access_grant_terms")
    with op.batch_alter_table("access_breakglass", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_breakglass_status"))
        batch_op.drop_index(batch_op.f("ix_access_breakglass_account_id"))

    op.drop_table("access_breakglass")
    with op.batch_alter_table("access_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_assessments_vendor_id"))

    op.drop_table("access_assessments")
    op.drop_table("access_state")
    with op.batch_alter_table("access_grant_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_grant_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_access_grant_events_grant_id"))
        batch_op.drop_index(batch_op.f("ix_access_grant_events_account_id"))

    op.drop_table("access_grant_events")
