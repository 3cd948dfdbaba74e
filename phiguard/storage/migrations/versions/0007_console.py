"""console tables: users, sessions, API tokens, login attempts, WebAuthn credentials,
patient-portal tickets.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phiguard.storage.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary, nullable=True),
        sa.Column("totp_last_step", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("password_changed_at", UTCDateTime, nullable=False),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_console_users"),
        sa.UniqueConstraint("username", name="uq_console_users_username"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("public_id", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("reauth_at", UTCDateTime, nullable=True),
        sa.Column("challenge", sa.LargeBinary, nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(200), nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("session_hash", name="pk_console_sessions"),
        sa.UniqueConstraint("public_id", name="uq_console_sessions_public_id"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.user_id"],
            ondelete="CASCADE",
            name="fk_console_sessions_user_id_console_users",
        ),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])
    op.create_table(
        "console_api_tokens",
        sa.Column("token_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.Column("replaces", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("token_id", name="pk_console_api_tokens"),
    )
    op.create_table(
        "console_login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_login_attempts"),
    )
    op.create_index(
        "ix_console_login_attempts_username_at", "console_login_attempts", ["username", "at"]
    )
    op.create_index(
        "ix_console_login_attempts_client_ip_at", "console_login_attempts", ["client_ip", "at"]
    )
    op.create_table(
        "console_webauthn_credentials",
        sa.Column("credential_id", sa.LargeBinary(255), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("credential_id", name="pk_console_webauthn_credentials"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.user_id"],
            ondelete="CASCADE",
            name="fk_console_webauthn_credentials_user_id_console_users",
        ),
    )
    op.create_index(
        "ix_console_webauthn_credentials_user_id", "console_webauthn_credentials", ["user_id"]
    )
    op.create_table(
        "console_portal_tickets",
        sa.Column("ticket_hash", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("issued_by", sa.String(16), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("ticket_hash", name="pk_console_portal_tickets"),
    )


def downgrade() -> None:
    op.drop_table("console_portal_tickets")
    op.drop_index("ix_console_webauthn_credentials_user_id", "console_webauthn_credentials")
    op.drop_table("console_webauthn_credentials")
    op.drop_index("ix_console_login_attempts_client_ip_at", "console_login_attempts")
    op.drop_index("ix_console_login_attempts_username_at", "console_login_attempts")
    op.drop_table("console_login_attempts")
    op.drop_table("console_api_tokens")
    op.drop_index("ix_console_sessions_user_id", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
