"""Settings of the web console and REST API (``PHIGUARD_WEB_*``).

Kept apart from :mod:`phiguard.settings` so the console's knobs live with the console; every
setting carries help text like the core ones do.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_WEB_", extra="ignore")

    idle_timeout_minutes: int = Field(
        default=30, ge=1, description="A console session ends after this long without a request."
    )
    absolute_timeout_hours: float = Field(
        default=12, gt=0, description="A console session ends this long after login, however busy."
    )
    reauth_minutes: int = Field(
        default=5,
        ge=1,
        description=(
            "How long a fresh password (and MFA) confirmation covers sensitive actions: "
            "revealing identifiers, suspending a vendor, exporting evidence."
        ),
    )
    mfa_pending_minutes: int = Field(
        default=5, ge=1, description="Time allowed between the password step and the MFA step."
    )
    login_max_failures_account: int = Field(
        default=5,
        ge=1,
        description="Failed logins for one account (in the window) before it is locked.",
    )
    login_max_failures_address: int = Field(
        default=20,
        ge=1,
        description="Failed logins from one address (in the window) before it is locked.",
    )
    login_window_minutes: int = Field(
        default=15,
        ge=1,
        description="The window in which failed logins are counted, and the lockout.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate; with tls_key, `phiguard serve` speaks HTTPS only.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    max_upload_mb: int = Field(
        default=1024,
        ge=1,
        description="Largest leak-scan upload accepted through the console or API.",
    )
    rp_id: str = Field(
        default="localhost", description="WebAuthn relying-party id: the console's host name."
    )
    origin: str | None = Field(
        default=None,
        description=(
            "The console's public origin (e.g. https://phiguard.example.hk) for WebAuthn; "
            "default http(s)://rp_id:port."
        ),
    )
    token_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long a verified API token is trusted without a database look-up. "
            "A revocation in the same process takes effect at once."
        ),
    )
    portal_ticket_minutes: int = Field(
        default=5,
        ge=1,
        description="Life of a one-time ticket the patients' app uses to open the portal.",
    )
    portal_session_minutes: int = Field(
        default=15, ge=1, description="Life of a patient portal session opened from such a ticket."
    )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None
