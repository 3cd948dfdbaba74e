"""Settings of the data-access gateway, read from ``PHIGUARD_GATEWAY_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_GATEWAY_", extra="ignore")

    listen: str = Field(
        "127.0.0.1:6432",
        description="HOST:PORT the gateway listens on for PostgreSQL clients.",
    )
    upstream: str | None = Field(
        None,
        description="postgresql:// URL of the real database, with the service role the "
        "gateway logs in as (contractors never see it).",
    )
    datamap: Path | None = Field(
        None,
        description="TOML file saying which upstream tables hold patient data and how grant "
        "fields map onto their columns; empty: the built-in map of the patients/episodes/"
        "operations schema.",
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate (with chain) for TLS between clients and the gateway."
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    require_tls: bool = Field(
        True, description="With a certificate configured, refuse clients that do not use TLS."
    )
    max_message_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest client message (a query string, a Bind) the gateway accepts; a "
        "larger one is skipped unread and refused, and the session goes on.",
    )
    check_seconds: float = Field(
        1.0,
        gt=0,
        description="How often live sessions are checked against their grant, account and "
        "vendor; a revoked or expired grant or a suspended vendor ends the session.",
    )
    record_seconds: float = Field(
        0.25,
        gt=0,
        description="Statements are sealed into the audit log in batches: a batch is sealed "
        "once its oldest statement is this old and no result is streaming.",
    )
    record_max_lag: float = Field(
        2.0,
        gt=0,
        description="While results stream, sealing waits for a quiet moment, but a statement "
        "is sealed at most this many seconds after it ended (the crash window).",
    )
    record_max_pending: int = Field(
        1_000_000,
        ge=1000,
        description="Bound of the recording queue in access events (about one per returned "
        "patient); past it, relaying waits for sealing to catch up.",
    )
    source: str = Field(
        "GATEWAY",
        description="Source name of the gateway's access events (one per gateway process: "
        "its sequence numbers must not interleave with another's).",
    )
    mask_text: str = Field("***", description="What a masked text column returns.")
    auth_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to finish startup and authentication."
    )
    max_sessions: int = Field(200, ge=1, description="Concurrent sessions at most.")
