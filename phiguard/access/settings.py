"""Settings of the access-governance part, read from ``PHIGUARD_ACCESS_*``.

Kept apart from :mod:`phiguard.settings` so this part can be configured (and tested) without
touching the application-wide settings; every field carries its help text.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PURPOSES = (
    "TREAT",
    "ETREAT",
    "HPAYMT",
    "HOPERAT",
    "HRESCH",
    "PUBHLTH",
    "SYSADMIN",
    "SYSDEV",
    "HSYSADMIN",
    "HMARKT",
    "HLEGAL",
    "HQUALIMP",
    "BTG",
    "PATRQT",
    "CAREMGT",
)


class AccessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHIGUARD_ACCESS_", extra="ignore")

    two_person_rows: int = Field(
        1_000,
        ge=1,
        description="A request for more than this many rows per query/export needs two approvers.",
    )
    max_grant_hours: float = Field(
        168.0,
        gt=0,
        description="Longest window a grant may have, in hours (counted from approval).",
    )
    request_ttl_hours: float = Field(
        48.0, gt=0, description="A request not fully approved within this many hours expires."
    )
    breakglass_max_minutes: int = Field(
        240, ge=1, description="Longest break-glass session, in minutes."
    )
    breakglass_review_hours: float = Field(
        72.0, gt=0, description="A break-glass session must be reviewed within this many hours."
    )
    breakglass_max_rows: int = Field(
        20, ge=1, description="Largest number of records one break-glass query may return."
    )
    staff_max_rows: int = Field(
        50,
        ge=0,
        description="Row limit of the role baseline that lets clinical staff read their cluster.",
    )
    clinical_roles: tuple[str, ...] = Field(
        ("doctor", "nurse", "pharmacist", "clerk", "allied_health", "radiographer"),
        description="Staff roles covered by the clinical baseline policy (no grant needed).",
    )
    purposes: tuple[str, ...] = Field(
        DEFAULT_PURPOSES, description="HL7 PurposeOfUse codes a request or decision may name."
    )
    require_training: bool = Field(
        True, description="Contractors need an unexpired privacy-training record."
    )
    training_course: str = Field(
        "phi-privacy", description="Course whose unexpired completion a contractor needs."
    )
    require_assessment: bool = Field(
        True, description="A vendor needs a passed, unexpired security assessment."
    )
    assessment_valid_days: int = Field(
        365, ge=1, description="How long a passed security assessment stays valid, in days."
    )
    assessment_pass_score: float = Field(
        70.0, ge=0, le=100, description="Lowest questionnaire score (0-100) that passes."
    )
    require_dpa: bool = Field(
        True, description="A vendor's contract must carry a signed data-processing agreement."
    )
    review_default_days: int = Field(
        14, ge=1, description="Default time a reviewer has to certify a campaign's items, in days."
    )
    engine: str = Field(
        "auto",
        pattern="^(auto|python|cedar)$",
        description=(
            "How decisions are evaluated: 'python' (the compiled built-in policies), 'cedar' "
            "(every decision through cedarpy) or 'auto' (python unless extra policies exist)."
        ),
    )
    policy_dir: Path | None = Field(
        None,
        description="Extra *.cedar policies, added to the built-in ones (default: HOME/policies).",
    )
    cache_check_seconds: float = Field(
        0.5,
        ge=0,
        description=(
            "How often the decision point checks whether access rights changed in another "
            "process (0 = before every decision)."
        ),
    )
    patient_cache_size: int = Field(
        200_000, ge=0, description="Patients whose cluster/VIP flag the decision point caches."
    )
