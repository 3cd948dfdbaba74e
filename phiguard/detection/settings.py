"""Detection settings (``PHIGUARD_DETECT_*``): every threshold of every rule, with its meaning.

The defaults are tuned on the synthetic hospital of :mod:`phiguard.demo.generator` and on the
figures the privacy-monitoring products publish (a nurse with ~30 accesses a shift flagged at
60; explanation-based auditing explains > 94 % of accesses). A hospital changes them through
the environment, e.g. ``PHIGUARD_DETECT_BULK_ROWS_CRITICAL=20000``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DetectionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_DETECT_", extra="ignore")

    # -- where the data is ---------------------------------------------------------------
    engine: str | None = Field(
        None,
        description="Override the analytics engine for detection: 'duckdb' or 'spark' "
        "(empty = the global PHIGUARD_ENGINE).",
    )
    events_uri: str | None = Field(
        None,
        description="Where the access events are (a Parquet file, a folder of hive-partitioned "
        "Parquet, or an s3a:// URI for Spark). Empty = HOME/events/events.",
    )
    snapshot_uri: str | None = Field(
        None,
        description="Folder the reference snapshot (pseudonymous accounts, grants, patients' "
        "cluster/VIP flags, encounters) is written to for Spark. Must be readable by every "
        "Spark executor on a cluster. Empty = HOME/detection/snapshot.",
    )
    spark_conf: str = Field(
        "",
        description="Extra Spark settings as 'key=value;key=value' (e.g. "
        "'spark.hadoop.fs.s3a.endpoint=http://minio:9000').",
    )
    duckdb_memory_limit: str = Field(
        "6GB", description="DuckDB memory limit for a detection run (spills to disk beyond it)."
    )
    duckdb_threads: int = Field(0, description="DuckDB threads (0 = one per core).", ge=0)
    day_summaries: bool = Field(
        True,
        description="Keep each local day's condensed events (accesses, hours, clients; "
        "pseudonymous ids only) under HOME/detection/days and reuse them in later runs "
        "while the day's event files are unchanged (DuckDB). Off: every run reads every event.",
    )

    # -- windows -------------------------------------------------------------------------
    baseline_days: int = Field(
        45,
        description="Days of history before --since read to build baselines (own daily "
        "maximum, usual hours, known client addresses, last activity).",
        ge=1,
    )
    merge_gap_hours: float = Field(
        6.0,
        description="Hits of the same account closer than this belong to one episode and are "
        "merged into one alert.",
        gt=0,
    )
    repeat_merge_days: float = Field(
        7.0,
        description="A rule that keeps firing for the same account (an expired contract still "
        "in use, daily reads outside a grant) stays one alert while its hits are less than "
        "this many days apart.",
        gt=0,
    )
    sample_size: int = Field(5, description="Patient ids shown in an alert's sample.", ge=1)

    # -- explanation-based auditing ------------------------------------------------------
    explain_before_days: float = Field(
        7.0,
        description="An encounter explains accesses from this many days before it starts "
        "(pre-admission work-up, referrals).",
        ge=0,
    )
    explain_after_days: float = Field(
        30.0,
        description="An encounter explains accesses until this many days after it ends "
        "(discharge summaries, follow-up, billing).",
        ge=0,
    )
    explained_share_benign: float = Field(
        0.9,
        description="When at least this share of the patients in a bulk query or a busy day "
        "is explained by encounters or a valid grant, the volume hit is only 'low'.",
        ge=0,
        le=1,
    )

    # -- grant-aware ---------------------------------------------------------------------
    grant_required_roles: str = Field(
        "vendor_engineer,it_support,service",
        description="Roles whose accounts may touch patient data only under a grant (accounts "
        "employed by a vendor always need one).",
    )
    grant_violation_rows_critical: int = Field(
        1000,
        description="An out-of-grant query or export returning at least this many patients "
        "is critical (smaller ones are high).",
        ge=1,
    )

    grant_overrun_factor_critical: float = Field(
        10.0,
        description="…and so is an out-of-grant export or print of at least bulk_rows_min "
        "patients that exceeds the grant's row limit this many times over.",
        gt=1,
    )

    # -- volume --------------------------------------------------------------------------
    bulk_rows_min: int = Field(
        500,
        description="A query or export returning at least this many patients is bulk.",
        ge=1,
    )
    bulk_rows_high: int = Field(
        2000, description="Bulk of at least this many patients is high severity.", ge=1
    )
    bulk_rows_critical: int = Field(
        10000, description="Bulk of at least this many patients is critical.", ge=1
    )
    daily_min_patients: int = Field(
        60,
        description="A day with fewer distinct patients than this is never a volume outlier "
        "(the products' nurse: ~30 a shift, flagged at 60).",
        ge=1,
    )
    daily_own_factor: float = Field(
        3.0,
        description="A day is an outlier when its distinct patients exceed this multiple of "
        "the account's previous daily maximum…",
        gt=1,
    )
    daily_peer_mads: float = Field(
        8.0,
        description="…and exceed the peer group's (same role and department) median by this "
        "many median absolute deviations.",
        gt=0,
    )
    daily_min_history_days: int = Field(
        3,
        description="Active days of history an account needs before its own baseline counts "
        "(newer accounts are compared with their peers only).",
        ge=1,
    )
    vendor_daily_min_patients: int = Field(
        300,
        description="A vendor day (all of a vendor's accounts together) with at least this many "
        "distinct patients…",
        ge=1,
    )
    vendor_daily_factor: float = Field(
        3.0,
        description="…and this multiple of the vendor's previous daily maximum, is an outlier.",
        gt=1,
    )
    slow_min_patients: int = Field(
        80,
        description="Slow exfiltration: at least this many distinct out-of-scope patients "
        "(unexplained, or outside every grant) accumulated by one account…",
        ge=1,
    )
    slow_min_days: int = Field(4, description="…over at least this many distinct days…", ge=2)
    slow_window_days: int = Field(21, description="…within this many days.", ge=2)
    slow_min_unexplained_share: float = Field(
        0.5,
        description="…when out-of-scope patients are at least this share of everything the "
        "account touched on those days.",
        ge=0,
        le=1,
    )

    # -- time and place ------------------------------------------------------------------
    rare_hour_min_history_events: int = Field(
        200, description="Events of history an account needs before rare hours count.", ge=1
    )
    rare_hour_min_history_days: int = Field(
        5, description="Active days of history an account needs before rare hours count.", ge=1
    )
    rare_hour_max_share: float = Field(
        0.01,
        description="An hour of the day holding less than this share of the account's history "
        "(that hour and its neighbours) is rare for it.",
        gt=0,
        lt=1,
    )
    rare_hour_min_events: int = Field(
        10, description="Events in a rare hour needed for a hit.", ge=1
    )
    dormant_days: int = Field(
        30, description="An account idle for at least this many days is dormant.", ge=1
    )
    dormant_unseen_days: int = Field(
        14,
        description="An account that existed all along but did nothing in the whole history on "
        "record, when that history covers at least this many days, is dormant too.",
        ge=1,
    )
    new_client_min_history_days: int = Field(
        5,
        description="Active days of history an account needs before a new client address or "
        "device counts.",
        ge=1,
    )
    two_places_seconds: int = Field(
        120,
        description="Two client addresses used by one account within this many seconds of each "
        "other are a switch…",
        ge=1,
    )
    two_places_min_switches: int = Field(
        4, description="…and this many switches in a day mean two places at once.", ge=1
    )

    # -- relationships -------------------------------------------------------------------
    unexplained_min_patients: int = Field(
        20,
        description="An account-day with at least this many patients no encounter, department "
        "or grant explains…",
        ge=1,
    )
    unexplained_min_share: float = Field(
        0.5, description="…that are at least this share of its patients, is a hit.", ge=0, le=1
    )
    unexplained_high_patients: int = Field(
        100, description="Unexplained patients in a day that make the hit high.", ge=1
    )

    # -- completeness and denials --------------------------------------------------------
    denied_window_minutes: int = Field(
        10, description="Sliding window for bursts of denied attempts, in minutes.", ge=1
    )
    denied_min: int = Field(
        20, description="Denied attempts within the window that make a burst.", ge=1
    )
    denied_high: int = Field(
        100, description="Denied attempts within the window that make the burst high.", ge=1
    )
    gap_min_missing: int = Field(
        1,
        description="Missing sequence numbers in a source that raise a completeness alert.",
        ge=1,
    )
    gap_high_missing: int = Field(
        1000,
        description="Missing sequence numbers that make the completeness alert high.",
        ge=1,
    )

    # -- scoring -------------------------------------------------------------------------
    anomaly_method: str = Field(
        "robust",
        description="Anomaly score per account-day: 'robust' (median/MAD z-scores against the "
        "account's own history and its peer group) or 'iforest' (scikit-learn "
        "IsolationForest).",
    )
    anomaly_weight: float = Field(
        0.3, description="Weight of the anomaly score in an alert's score.", ge=0, le=1
    )
    anomaly_alert: float = Field(
        0.97,
        description="An account-day whose anomaly score reaches this raises a low alert even "
        "when no rule fired (1 disables).",
        ge=0,
        le=1,
    )

    # -- suppression, sinks, containment -------------------------------------------------
    suppress_days: int = Field(
        30,
        description="After a false-positive verdict, the same rule on the same account is "
        "suppressed for this many days unless it grows past suppress_growth.",
        ge=0,
    )
    suppress_growth: float = Field(
        2.0,
        description="A suppressed rule fires again when its patient count reaches this multiple "
        "of the one judged false positive.",
        ge=1,
    )
    sinks: str = Field(
        "",
        description="Where alerts go, comma-separated: 'webhook:https://…', "
        "'email:smtp://host:port?to=a@b&from=c@d', 'syslog:udp://host:514' or "
        "'syslog:tcp://host:601', 'mock'. Empty = stored only.",
    )
    sink_min_severity: str = Field(
        "high", description="Least severity sent to the sinks: low, medium, high or critical."
    )
    webhook_secret: str = Field(
        "",
        description="If set, webhook bodies carry an HMAC-SHA256 signature in the "
        "X-Phiguard-Signature header.",
    )
    contain: str = Field(
        "off",
        description="Containment on a critical live alert: 'off', 'account' (suspend the "
        "account) or 'vendor' (suspend the account's vendor, or the account if it has none).",
    )
    watch_poll_seconds: float = Field(
        0.5, description="How often `phiguard watch` looks for newly ingested events.", gt=0
    )

    def role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.grant_required_roles.split(",") if r.strip())

    def spark_conf_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for item in self.spark_conf.split(";"):
            if "=" in item:
                k, v = item.split("=", 1)
                pairs.append((k.strip(), v.strip()))
        return pairs

    def snapshot_dir(self, home: Path) -> str:
        return self.snapshot_uri or str(home / "detection" / "snapshot")
