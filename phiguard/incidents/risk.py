"""ENISA severity of a personal-data breach: SE = DPC × EI + CB (ENISA, 2013).

* DPC, data processing context, 1-4: simple 1, behavioural 2, financial 3, sensitive (health) 4.
* EI, ease of identification: 0.25 negligible, 0.5 limited, 0.75 significant, 1 maximum.
* CB, circumstances of the breach, added: loss of confidentiality 0 / +0.25 (known
  recipients) / +0.5 (unknown recipients), integrity and availability 0 / +0.25 / +0.5 each,
  malicious intent +0.5.
* Bands: low < 2 ≤ medium < 3 ≤ high < 4 ≤ very high.

:func:`prefill` proposes every factor from what phiguard knows (the exposed fields, whether
the data was found posted publicly, whether a person deliberately exported it) and writes
the reason next to it; :func:`set_factor` lets the privacy officer overrule any factor, and
the rationale is mandatory then too. The seed incident scores 4 × 1 + (0.5 + 0.5) = 5.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.errors import UsageError
from phiguard.incidents.models import Incident, RiskFactor

# Fields by the DPC category they put a breach in. Anything unknown counts as simple data.
SENSITIVE = {
    "procedure",
    "diagnosis",
    "medication",
    "allergy",
    "lab_result",
    "clinical_note",
    "mental_health",
    "hiv_status",
    "genetic",
    "disability",
    "sexual_health",
    "department",
}
FINANCIAL = {"bank_account", "credit_card", "payment", "income", "salary"}
BEHAVIOURAL = {"location", "address", "visits", "appointment", "device_id", "client_ip"}
# Fields that identify a person directly, and the ones that do so only with help.
DIRECT_ID = {"hkid", "passport"}
NAME = {"name", "name_en", "name_zh"}
INDIRECT_ID = {"hospital_no", "phone", "email", "address", "dob"}

FACTORS: dict[str, tuple[float, ...]] = {
    "dpc": (1, 2, 3, 4),
    "ei": (0.25, 0.5, 0.75, 1.0),
    "cb_confidentiality": (0, 0.25, 0.5),
    "cb_integrity": (0, 0.25, 0.5),
    "cb_availability": (0, 0.25, 0.5),
    "cb_malicious": (0, 0.5),
}
CB = ("cb_confidentiality", "cb_integrity", "cb_availability", "cb_malicious")


@dataclass(frozen=True)
class Factor:
    name: str
    value: float
    rationale: str
    origin: str = "prefilled"


@dataclass(frozen=True)
class Assessment:
    factors: dict[str, Factor]

    @property
    def dpc(self) -> float:
        return self.factors["dpc"].value

    @property
    def ei(self) -> float:
        return self.factors["ei"].value

    @property
    def cb(self) -> float:
        return round(sum(self.factors[k].value for k in CB), 2)

    @property
    def score(self) -> float:
        return round(self.dpc * self.ei + self.cb, 2)

    @property
    def band(self) -> str:
        return band(self.score)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dpc": self.dpc,
            "ei": self.ei,
            "cb": self.cb,
            "score": self.score,
            "band": self.band,
            "factors": {
                k: {"value": f.value, "rationale": f.rationale, "origin": f.origin}
                for k, f in self.factors.items()
            },
        }


def band(score: float) -> str:
    if score < 2:
        return "low"
    if score < 3:
        return "medium"
    if score < 4:
        return "high"
    return "very high"


def _norm(fields: Iterable[str]) -> set[str]:
    return {f.strip().lower() for f in fields if f.strip()}


def propose(
    fields: Iterable[str],
    *,
    publicly_posted: bool,
    malicious: bool,
    known_recipients: bool = False,
    affected: int = 0,
    integrity: bool = False,
    availability: bool = False,
) -> dict[str, Factor]:
    """ENISA factors from the facts of an incident, each with the sentence that justifies it."""
    f = _norm(fields)
    if f & SENSITIVE:
        dpc = Factor(
            "dpc", 4, f"sensitive (health) data exposed: {', '.join(sorted(f & SENSITIVE))}"
        )
    elif f & FINANCIAL:
        dpc = Factor("dpc", 3, f"financial data exposed: {', '.join(sorted(f & FINANCIAL))}")
    elif f & BEHAVIOURAL:
        dpc = Factor("dpc", 2, f"behavioural data exposed: {', '.join(sorted(f & BEHAVIOURAL))}")
    else:
        dpc = Factor("dpc", 1, "only simple data exposed" if f else "no exposed field recorded yet")
    if affected >= 10_000 and dpc.value < 4:
        dpc = Factor(
            "dpc",
            dpc.value + 1,
            dpc.rationale + f"; raised one level for volume ({affected:,} people)",
        )

    has_name, has_id = bool(f & NAME), bool(f & DIRECT_ID)
    if has_name and has_id:
        ei = Factor(
            "ei", 1.0, "full name with an identity card number identifies each person (maximum)"
        )
    elif has_id or (has_name and f & INDIRECT_ID):
        ei = Factor(
            "ei", 0.75, "an identity number, or a name with another identifier (significant)"
        )
    elif has_name or f & INDIRECT_ID:
        ei = Factor("ei", 0.5, "a name or an indirect identifier alone (limited)")
    else:
        ei = Factor("ei", 0.25, "no identifying field exposed (negligible)")

    if publicly_posted:
        conf = Factor(
            "cb_confidentiality",
            0.5,
            "data found posted on a third-party platform: unknown recipients",
        )
    elif known_recipients:
        conf = Factor("cb_confidentiality", 0.25, "data disclosed to known recipients")
    else:
        conf = Factor(
            "cb_confidentiality",
            0.5 if f else 0.0,
            "recipients unknown" if f else "no confidentiality loss established yet",
        )
    integ = Factor(
        "cb_integrity",
        0.25 if integrity else 0.0,
        "records may have been altered" if integrity else "no sign that records were altered",
    )
    avail = Factor(
        "cb_availability",
        0.25 if availability else 0.0,
        "records were unavailable" if availability else "records stayed available",
    )
    mal = Factor(
        "cb_malicious",
        0.5 if malicious else 0.0,
        "a person deliberately exported the data and it was published"
        if malicious
        else "no evidence of malicious intent yet",
    )
    return {x.name: x for x in (dpc, ei, conf, integ, avail, mal)}


def write_factors(
    s: Session, incident_id: str, factors: dict[str, Factor], *, at: Any, by: str
) -> None:
    for fac in factors.values():
        row = s.get(RiskFactor, (incident_id, fac.name))
        if row is None:
            s.add(
                RiskFactor(
                    incident_id=incident_id,
                    factor=fac.name,
                    value=fac.value,
                    rationale=fac.rationale,
                    origin=fac.origin,
                    updated_at=at,
                    updated_by=by,
                )
            )
        elif row.origin == "prefilled":  # a person's edit is never overwritten by a re-prefill
            row.value, row.rationale, row.updated_at, row.updated_by = (
                fac.value,
                fac.rationale,
                at,
                by,
            )


def load(s: Session, incident_id: str) -> Assessment:
    rows = s.scalars(select(RiskFactor).where(RiskFactor.incident_id == incident_id)).all()
    factors = {r.factor: Factor(r.factor, r.value, r.rationale, r.origin) for r in rows}
    for name in FACTORS:
        factors.setdefault(name, Factor(name, FACTORS[name][0], "not assessed yet"))
    return Assessment(factors)


def set_factor(
    s: Session, incident: Incident, factor: str, value: float, rationale: str, *, at: Any, by: str
) -> Assessment:
    """A person's decision on one factor; values outside ENISA's scale are refused."""
    if factor not in FACTORS:
        raise UsageError(f"unknown ENISA factor {factor!r} (one of {', '.join(FACTORS)})")
    allowed = FACTORS[factor]
    if not any(abs(value - a) < 1e-9 for a in allowed):
        raise UsageError(
            f"{factor} must be one of {', '.join(str(a) for a in allowed)}, not {value}"
        )
    if not rationale.strip():
        raise UsageError(f"a rationale is required to change {factor}")
    write_factors(
        s,
        incident.incident_id,
        {factor: Factor(factor, value, rationale.strip(), "edited")},
        at=at,
        by=by,
    )
    row = s.get(RiskFactor, (incident.incident_id, factor))
    assert row is not None
    row.origin, row.value, row.rationale = "edited", value, rationale.strip()
    s.flush()
    return load(s, incident.incident_id)
