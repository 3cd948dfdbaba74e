"""Settings, read from the environment (``PHIGUARD_*``) and an optional ``phiguard.toml``-less
``.env`` in the home. Every setting carries its help text; ``docs/user/settings.md`` is
generated from these descriptions and a test fails when it drifts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path("phiguard-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_", extra="ignore")

    home: Path = Field(
        DEFAULT_HOME,
        description="The home directory holding databases, keys and the audit log.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the operational database. Empty means SQLite inside the home "
            "(home/phiguard.db); set a postgresql+psycopg:// URL to run on PostgreSQL."
        ),
    )
    hospital_no_pattern: str = Field(
        r"HN\d{8}[0-9A-Z]",
        description=(
            "Regular expression for a hospital file number (upper-cased, without spaces). "
            "The default, HN + 8 digits + a check character, is phiguard's own convention."
        ),
    )
    hospital_no_check: bool = Field(
        True,
        description=(
            "Validate the check character of default-shaped hospital numbers "
            "(mod-11 over the 8 digits, as for HKIDs). Turn off for other shapes."
        ),
    )
    timezone: str = Field("Asia/Hong_Kong", description="Time zone for deadlines and reports.")
    import_batch_rows: int = Field(
        50_000, description="Rows per batch when importing reference data.", ge=1
    )
    engine: str = Field(
        "duckdb",
        description="Analytics engine for detection and linkage: 'duckdb' or 'spark'.",
    )
    spark_master: str = Field(
        "local[2]", description="Spark master URL when engine = spark (e.g. spark://host:7077)."
    )
    # -- ingestion (phiguard.audit.ingest, completeness, syslog) --------------------------
    ingest_batch_events: int = Field(
        250_000,
        description="Largest number of events sealed as one batch; a bigger file is sealed "
        "as several batches, each all-or-nothing (a re-run resumes after the sealed ones).",
        ge=1,
    )
    heartbeat_seconds: int = Field(
        900,
        description="A source that sends no event for longer than this is flagged silent "
        "(per-source values: `phiguard audit sources --heartbeat`).",
        ge=1,
    )
    syslog_port: int | None = Field(
        None,
        description="TCP port of the IHE ATNA-style syslog listener started by `phiguard "
        "serve` (RFC 5424 messages, RFC 6587 octet counting); empty: no listener.",
    )
    syslog_host: str = Field("127.0.0.1", description="Address the syslog listener binds to.")
    syslog_tls_cert: Path | None = Field(
        None,
        description="PEM certificate (with chain) for syslog over TLS (RFC 5425); when set, "
        "the listener accepts TLS only.",
    )
    syslog_tls_key: Path | None = Field(None, description="PEM private key of syslog_tls_cert.")
    syslog_tls_client_ca: Path | None = Field(
        None,
        description="PEM bundle of CAs whose client certificates the syslog listener "
        "requires (mutual TLS, as IHE ATNA asks); empty: clients are not authenticated.",
    )

    key_provider: str = Field(
        "local",
        description=(
            "Where the key-encryption key lives when a home is created: 'local' (a 0600 file in "
            "the home) or 'vault' (HashiCorp Vault Transit). An existing home keeps its own."
        ),
    )
    vault_addr: str | None = Field(None, description="Vault address, e.g. https://vault:8200.")
    vault_token: SecretStr | None = Field(
        None, description="Vault token (read from the environment only; never logged)."
    )
    vault_transit_key: str = Field("phiguard", description="Name of the Vault Transit key.")
    vault_mount: str = Field("transit", description="Mount point of the Transit engine.")
    backup_dir: Path | None = Field(
        None, description="When set, `phiguard serve` takes scheduled encrypted backups here."
    )
    backup_interval_hours: float = Field(24.0, description="Hours between scheduled backups.", gt=0)
    backup_keep: int = Field(30, description="Scheduled backups to keep (oldest deleted).", ge=1)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'phiguard.db').resolve()}"
