"""Canary (honey) patients: fictitious records planted per vendor and per bulk export.

A canary looks like any other PMI row — a valid HKID that belongs to nobody, a hospital
number, a plausible Hong Kong name — and is stored like one (encrypted, blind-indexed), but
``Patient.is_canary`` is set and the registry here says who received it. No care is ever
given to a canary, so its presence in a leaked file names the recipient with certainty.

Every other part of phiguard must leave canaries out of its counts and reports (clinical
lists, detection volumes, notifications); the leak scanner lists them only in attribution.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import UsageError
from phiguard.identifiers.hkid import hkid_check_char
from phiguard.leaks.detectors import surname_table
from phiguard.leaks.models import LeakCanary
from phiguard.storage.models import Patient

GIVEN_NAMES = [
    "Tai",
    "Man",
    "Siu",
    "Ming",
    "Ka",
    "Yan",
    "Wing",
    "Sze",
    "Chi",
    "Keung",
    "Mei",
    "Ling",
    "Kwok",
    "Wai",
    "Hoi",
    "Yee",
    "Chun",
    "Kit",
    "Pui",
    "Shan",
    "Hung",
    "Fai",
    "Lok",
    "Tung",
]
_GIVEN_ZH = "大文小明家欣詠詩志強美玲國偉凱儀俊傑佩珊雄輝樂東"
HKID_PREFIXES = "ACDEGHKMPRVYZ"
_rng = secrets.SystemRandom()


@dataclass(frozen=True)
class Planted:
    patient_id: str
    vendor_id: str | None
    account_id: str | None
    query_id: str | None


def _pid_shape(app: App) -> tuple[str, int]:
    with app.session() as s:
        sample = s.execute(
            select(Patient.patient_id).where(Patient.is_canary.is_(False)).limit(1)
        ).scalar_one_or_none()
    m = re.fullmatch(r"([A-Za-z]*)(\d+)", sample or "")
    return (m.group(1), len(m.group(2))) if m else ("P", 7)


def plant(
    app: App,
    *,
    actor: str,
    vendor_id: str | None = None,
    account_id: str | None = None,
    query_id: str | None = None,
    count: int = 1,
    cluster: str = "KEC",
    label: str = "",
) -> list[Planted]:
    """Create ``count`` canary patients for one recipient and register them."""
    if not (vendor_id or account_id or query_id):
        raise UsageError("a canary needs a recipient: --vendor, --account or --export")
    if not 1 <= count <= 100:
        raise UsageError("plant between 1 and 100 canaries at a time")
    prefix, width = _pid_shape(app)
    now = app.clock.now()
    by_zh = surname_table()[1]
    surnames = [
        (zh, sorted(r for r in rom if r.isalpha())[0])
        for zh, rom in by_zh.items()
        if len(zh) == 1 and any(r.isalpha() for r in rom)
    ]
    out: list[Planted] = []
    with app.session() as s:
        for _ in range(count):
            for _attempt in range(50):
                pid = prefix + "".join(_rng.choice("0123456789") for _ in range(width))
                p = _rng.choice(HKID_PREFIXES)
                digits = f"{_rng.randrange(10**6):06d}"
                hkid = f"{p}{digits}{hkid_check_char(p, digits)}"
                hn = app.hospital_no_format.make(_rng.randrange(90_000_000, 99_999_999))
                h_b, n_b = app.blind.digest("hkid", hkid), app.blind.digest("hospital_no", hn)
                clash = s.execute(
                    select(Patient.patient_id)
                    .where(
                        (Patient.patient_id == pid)
                        | (Patient.hkid_bidx == h_b)
                        | (Patient.hospital_no_bidx == n_b)
                    )
                    .limit(1)
                ).first()
                if clash is None:
                    break
            else:  # pragma: no cover - 50 collisions in a row would need an almost full space
                raise UsageError("could not find a free identity for a canary")
            zh, sur = _rng.choice(surnames)
            g = _rng.sample(range(len(GIVEN_NAMES)), 2)
            sex = _rng.choice("MF")
            dob = date(_rng.randrange(1940, 2005), _rng.randrange(1, 13), _rng.randrange(1, 29))
            pii = {
                "hkid": hkid,
                "hospital_no": hn,
                "name_en": f"{sur} {GIVEN_NAMES[g[0]]} {GIVEN_NAMES[g[1]]}",
                "name_zh": zh + _GIVEN_ZH[g[0]] + _GIVEN_ZH[g[1]],
                "dob": dob.isoformat(),
                "phone": f"6{_rng.randrange(10**7):07d}",
                "address": None,
            }
            s.add(
                Patient(
                    patient_id=pid,
                    pii=app.cipher.encrypt_json(pii, b"patient:pii"),
                    hkid_bidx=h_b,
                    hospital_no_bidx=n_b,
                    surname_bidx=app.blind.digest("surname", sur),
                    address_bidx=None,
                    sex=sex,
                    birth_year=dob.year,
                    cluster=cluster,
                    has_phone=True,
                    has_address=False,
                    app_registered=False,
                    vip=False,
                    is_canary=True,
                    row_mac=app.blind.digest("row:canary", pid),
                )
            )
            s.add(
                LeakCanary(
                    patient_id=pid,
                    vendor_id=vendor_id,
                    account_id=account_id,
                    query_id=query_id,
                    label=label,
                    planted_at=now,
                    planted_by=actor,
                )
            )
            s.flush()
            out.append(Planted(pid, vendor_id, account_id, query_id))
    app.record(
        Tag.LEAK_CANARY_PLANTED,
        actor=actor,
        subject=vendor_id or account_id or query_id or "",
        patient_ids=[c.patient_id for c in out],
        vendor_id=vendor_id,
        account_id=account_id,
        query_id=query_id,
    )
    return out


def registry(app: App) -> list[dict[str, Any]]:
    with app.session() as s:
        rows = s.execute(select(LeakCanary).order_by(LeakCanary.planted_at)).scalars().all()
        return [
            {
                "patient_id": r.patient_id,
                "vendor_id": r.vendor_id,
                "account_id": r.account_id,
                "query_id": r.query_id,
                "label": r.label,
                "planted_at": r.planted_at.isoformat(),
                "planted_by": r.planted_by,
            }
            for r in rows
        ]


def found(app: App, patient_ids: list[str]) -> list[dict[str, Any]]:
    """Attribution entries for the canaries among ``patient_ids`` (certain evidence)."""
    if not patient_ids:
        return []
    with app.session() as s:
        rows = (
            s.execute(select(LeakCanary).where(LeakCanary.patient_id.in_(sorted(patient_ids))))
            .scalars()
            .all()
        )
    entries: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r.vendor_id, r.account_id, r.query_id)
        e = entries.setdefault(
            key,
            {
                "vendor_id": r.vendor_id,
                "account_id": r.account_id,
                "query_id": r.query_id,
                "canaries": [],
            },
        )
        e["canaries"].append(r.patient_id)
    out = []
    for e in entries.values():
        whom = " / ".join(
            x
            for x in (
                f"vendor {e['vendor_id']}" if e["vendor_id"] else "",
                f"account {e['account_id']}" if e["account_id"] else "",
                f"export {e['query_id']}" if e["query_id"] else "",
            )
            if x
        )
        n = len(e["canaries"])
        e["evidence"] = (
            f"{n} canary record{'s' if n > 1 else ''} planted only for {whom} "
            f"{'are' if n > 1 else 'is'} in the dump ({', '.join(e['canaries'])})"
        )
        out.append(e)
    return out


def describe(planted: list[Planted]) -> str:
    return json.dumps([p.__dict__ for p in planted])
