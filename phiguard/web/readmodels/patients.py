"""Finding a patient and, with a stated reason, revealing identifiers.

Pages show patients by their pseudonymous ``patient_id`` with identifiers masked. Revealing
decrypts the PMI row and writes ``console:identifier:revealed`` with the reason to the
tamper-evident log before anything is shown (ASVS 8.3: field-level access, audited).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import NotFound, UsageError
from phiguard.storage.models import Patient

MAX_REVEAL = 50


@dataclass(frozen=True)
class PatientCard:
    patient_id: str
    sex: str
    birth_year: int | None
    cluster: str
    vip: bool
    app_registered: bool


@dataclass(frozen=True)
class Revealed:
    patient_id: str
    name_en: str
    name_zh: str
    hkid: str
    hospital_no: str


def display_hkid(canonical: str) -> str:
    """``A1234563`` → ``A123456(3)``, the way it is printed on the card."""
    if len(canonical) in (8, 9) and canonical[-1] in "0123456789A":
        return f"{canonical[:-1]}({canonical[-1]})"
    return canonical


def card(app: App, patient_id: str) -> PatientCard:
    with app.session() as s:
        p = s.get(Patient, patient_id)
        if p is None or p.is_canary:
            raise NotFound(f"no patient {patient_id}")
        return PatientCard(p.patient_id, p.sex, p.birth_year, p.cluster, p.vip, p.app_registered)


def find(app: App, text: str) -> str:
    """A patient id from a patient id, an HKID (any spelling) or a hospital number."""
    value = text.strip()
    if not value or len(value) > 64:
        raise UsageError("enter a patient id, an HKID or a hospital number")
    with app.session() as s:
        p = s.get(Patient, value)
        if p is not None and not p.is_canary:
            return p.patient_id
    from phiguard.identifiers.hkid import normalise_hkid
    from phiguard.leaks.linkage import lookup

    try:
        canonical = normalise_hkid(value)
    except Exception:  # not an HKID: try a hospital number
        canonical = None
    if canonical:
        found = lookup(app, "hkid", [canonical])
        if found:
            return next(iter(found.values()))
    hospital_no = "".join(value.upper().split())
    found = lookup(app, "hospital_no", [hospital_no])
    if found:
        return next(iter(found.values()))
    raise NotFound("no patient matches that")


def reveal(
    app: App, patient_ids: list[str], *, actor: str, reason: str, context: str
) -> list[Revealed]:
    reason = reason.strip()
    if len(reason) < 8:
        raise UsageError("give a reason of at least 8 characters; it is written to the audit log")
    ids = list(dict.fromkeys(patient_ids))[:MAX_REVEAL]
    if not ids:
        raise UsageError("no patient to reveal")
    with app.session() as s:
        rows = {
            p.patient_id: p
            for p in s.scalars(
                select(Patient).where(Patient.patient_id.in_(ids), Patient.is_canary.is_(False))
            )
        }
    if not rows:
        raise NotFound("no such patient")
    app.record(
        Tag.IDENTIFIER_REVEALED,
        actor=actor,
        subject=",".join(sorted(rows)),
        reason=reason,
        context=context,
        count=len(rows),
    )
    out = []
    for pid in ids:
        p = rows.get(pid)
        if p is None:
            continue
        pii = app.cipher.decrypt_json(p.pii, b"patient:pii")
        out.append(
            Revealed(
                pid,
                pii.get("name_en") or "",
                pii.get("name_zh") or "",
                display_hkid(pii.get("hkid") or ""),
                pii.get("hospital_no") or "",
            )
        )
    return out
