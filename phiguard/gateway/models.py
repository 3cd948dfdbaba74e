"""Tables of the gateway (migration 0009): credentials, per-grant gateway terms, sessions and
an index of recorded statements.

No column holds a plaintext identifier or secret: credentials keep only SCRAM verifiers
(salted, iterated keys from which the secret cannot be recovered); statement text is sealed
in the audit log encrypted with the field cipher, and these tables only point at it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phiguard.storage.base import Base
from phiguard.storage.types import UTCDateTime


class GatewayCredential(Base):
    """One short-lived database login for one grant (the newest live one wins)."""

    __tablename__ = "gateway_credentials"

    credential_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    iterations: Mapped[int] = mapped_column(Integer)
    stored_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    server_key: Mapped[bytes] = mapped_column(LargeBinary(32))


class GatewayTerms(Base):
    """What a grant adds for the gateway: named exceptions and what to do over the row limit."""

    __tablename__ = "gateway_terms"

    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    allow: Mapped[list[str]] = mapped_column(JSON, default=list)  # "ddl", "function:NAME"
    over_limit: Mapped[str] = mapped_column(String(8), default="cut")  # cut | refuse
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class GatewaySession(Base):
    __tablename__ = "gateway_sessions"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    vendor_id: Mapped[str | None] = mapped_column(String(64))
    credential_id: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    database: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(Text)
    statements: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)


class GatewayStatement(Base):
    """Where each recorded statement sits in the audit log (the log holds the record)."""

    __tablename__ = "gateway_statements"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    query_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(8))  # allow, deny, error, cut
    rows: Mapped[int] = mapped_column(Integer, default=0)
    patients: Mapped[int] = mapped_column(Integer, default=0)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
