"""Settings of the breach-response part, read from ``PHIGUARD_INCIDENTS_*``.

They are separate from :class:`phiguard.settings.Settings` because they describe the
hospital as a *data user* facing regulators and patients (its name, hotline, contact person,
whether it is a designated Cap. 653 operator) rather than how phiguard runs. Every value has
help text; reports and notices print several of them verbatim.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class IncidentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_INCIDENTS_", extra="ignore")

    hospital_name: str = Field(
        default="Harbour Public Hospitals",
        description="The data user's name in English, as printed.",
    )
    hospital_name_zh: str = Field(
        default="海港公立醫院", description="The data user's name in Chinese."
    )
    sector: str = Field(
        default="Healthcare services (public hospitals)",
        description="Sector, for part (a) of the PCPD notification and the Cap. 653 report.",
    )
    hotline: str = Field(
        default="2345 6789",
        description="The published enquiry hotline printed on every notice. Must not be empty.",
    )
    verify_url: str = Field(
        default="www.harbour-hospitals.example.hk/verify",
        description=(
            "The official verification page as printed on letters (typed in by hand, never "
            "sent as a link in an SMS)."
        ),
    )
    sms_sender_id: str = Field(
        default="#HARBOURHOSP",
        description="The registered SMS sender ID (Hong Kong's #-prefixed scheme) notices use.",
    )
    contact_name: str = Field(
        default="Data Protection Officer",
        description="Contact person for regulators (PCPD part (b)).",
    )
    contact_phone: str = Field(default="2345 6700", description="The contact person's telephone.")
    contact_email: str = Field(
        default="dpo@harbour-hospitals.example.hk", description="The contact person's e-mail."
    )
    cap653_designated: bool = Field(
        default=False,
        description=(
            "True when the hospital operator is a designated critical-infrastructure operator "
            "under Cap. 653 (designation lists are not public). Only then do the 12 h / 48 h "
            "reporting clocks run."
        ),
    )
    cap653_serious_hours: float = Field(
        default=12,
        description="Cap. 653: hours to report a serious incident (core function disrupted).",
        gt=0,
    )
    cap653_other_hours: float = Field(
        default=48,
        description="Cap. 653: hours to report any other computer-system incident.",
        gt=0,
    )
    pcpd_target_hours: float = Field(
        default=24,
        description=(
            "Internal target for notifying the PCPD. The law says 'as soon as practicable'; "
            "this is the hospital's own clock, not a statutory deadline."
        ),
        gt=0,
    )
    police_target_hours: float = Field(
        default=24, description="Internal target for the police report.", gt=0
    )
    hkcert_target_hours: float = Field(
        default=24, description="Internal target for the HKCERT report.", gt=0
    )
    supplier_target_hours: float = Field(
        default=24,
        description="Internal target for the formal notice to the supplier involved.",
        gt=0,
    )
    reminder_hours: float = Field(
        default=2,
        description="A clock is 'due soon' (and reminded) this many hours before its deadline.",
        ge=0,
    )
    playbook: str = Field(
        default="pcpd", description="Playbook template used when an incident opens."
    )
    templates_dir: Path | None = Field(
        default=None,
        description=(
            "Folder with the hospital's own playbook (NAME.json) and notice templates "
            "(notices.json); they take precedence over the ones shipped with phiguard."
        ),
    )
    max_attempts: int = Field(
        default=3,
        description="Delivery attempts on one channel before falling back to the next.",
        ge=1,
    )
    dispatch_batch: int = Field(
        default=500, description="Notices handed to a transport between two commits.", ge=1
    )
    verify_max_attempts: int = Field(
        default=10, description="Verification checks one client may make per window.", ge=1
    )
    verify_window_minutes: int = Field(
        default=15, description="Length of the verification rate-limit window.", ge=1
    )
    verify_global_failures_per_minute: int = Field(
        default=300,
        description=(
            "Failed checks per minute across all clients after which the public check "
            "refuses everyone for the rest of that minute (slows distributed guessing)."
        ),
        ge=1,
    )
    code_valid_days: int = Field(
        default=400, description="Days a notice's verification code stays checkable.", ge=1
    )
    transports: str = Field(
        default="gateways",
        description=(
            "'gateways' sends through the push and SMS gateways configured below; 'mock' uses "
            "in-process mock transports that accept everything and send nothing (demo, tests)."
        ),
    )
    push_url: str | None = Field(default=None, description="Base URL of the app push gateway.")
    push_api_key: SecretStr = Field(
        default=SecretStr(""), description="API key for the push gateway."
    )
    sms_url: str | None = Field(default=None, description="Base URL of the SMS gateway.")
    sms_api_key: SecretStr = Field(
        default=SecretStr(""), description="API key for the SMS gateway."
    )
    cjk_font: Path = Field(
        default=Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
        description=(
            "TrueType font with Traditional Chinese glyphs for reports and letters (Debian "
            "package fonts-arphic-uming). OpenType/CFF fonts such as Noto CJK do not work "
            "with ReportLab."
        ),
    )
    cjk_subfont: int = Field(
        default=2,
        description="Index of the face inside a .ttc collection (2 = AR PL UMing TW).",
        ge=0,
    )
