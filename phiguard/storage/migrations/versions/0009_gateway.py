"""gateway: credentials, terms, sessions, statement index

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_credentials",
        sa.Column("credential_id", sa.String(length=32), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("stored_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("server_key", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_gateway_credentials")),
    )
    with op.batch_alter_table("gateway_credentials") as b:
        b.create_index(b.f("ix_gateway_credentials_grant_id"), ["grant_id"])

    op.create_table(
        "gateway_terms",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("allow", sa.JSON(), nullable=False),
        sa.Column("over_limit", sa.String(length=8), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_gateway_terms")),
    )

    op.create_table(
        "gateway_sessions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=True),
        sa.Column("credential_id", sa.String(length=32), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("database", sa.String(length=64), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("statements", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_gateway_sessions")),
    )
    with op.batch_alter_table("gateway_sessions") as b:
        b.create_index(b.f("ix_gateway_sessions_grant_id"), ["grant_id"])
        b.create_index(b.f("ix_gateway_sessions_account_id"), ["account_id"])
        b.create_index(b.f("ix_gateway_sessions_started_at"), ["started_at"])

    op.create_table(
        "gateway_statements",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("query_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("patients", sa.Integer(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "n", name=op.f("pk_gateway_statements")),
    )


def downgrade() -> None:
    op.drop_table("gateway_statements")
    with op.batch_alter_table("gateway_sessions") as b:
        b.drop_index(b.f("ix_gateway_sessions_started_at"))
        b.drop_index(b.f("ix_gateway_sessions_account_id"))
        b.drop_index(b.f("ix_gateway_sessions_grant_id"))
    op.drop_table("gateway_sessions")
    op.drop_table("gateway_terms")
    with op.batch_alter_table("gateway_credentials") as b:
        b.drop_index(b.f("ix_gateway_credentials_grant_id"))
    op.drop_table("gateway_credentials")
