"""The patient-facing check: "was my data in this leak?"

Have I Been Pwned answers anyone who types an e-mail address. For HKIDs that would be an
enumeration oracle: there are only ~7×10^8 of them, so "is A123456(3) in the leak?" must never
be answerable by a stranger. phiguard answers only

* a patient in an authenticated session (:func:`patient_check`, the web portal calls it), or
* someone who gives an identifier *and* proves control of the phone registered for it, with a
  one-time code (:func:`request_code` then :func:`answer_with_code`).

Both compare keyed HMACs (the blind index), never plain hashes, and never decrypt more than the
one phone number needed to send the code. :func:`request_code` behaves the same whether or not
the identifier is known (same answer, a challenge id), so it reveals nothing; codes are
single-use, expire, allow a few attempts, and requests per identifier are rate-limited.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import PermissionDenied, UsageError
from phiguard.identifiers.hkid import normalise_hkid
from phiguard.leaks.models import LeakCheckChallenge, LeakScan, LeakScanPatient
from phiguard.storage.models import Patient

CODE_MINUTES = 10
MAX_ATTEMPTS = 5
MAX_REQUESTS_PER_HOUR = 3


class CodeSender(Protocol):
    """Sends a one-time code to a phone (an SMS gateway in production)."""

    def send_code(self, phone: str, text: str) -> None: ...


@dataclass
class MemoryCodeSender:
    """A test double: keeps what would have been sent."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def send_code(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))


def _leaks_of(app: App, patient_id: str) -> list[dict[str, Any]]:
    with app.session() as s:
        p = s.get(Patient, patient_id)
        if p is None or p.is_canary:
            return []
        rows = s.execute(
            select(LeakScan.scan_id, LeakScan.finished, LeakScan.fields_exposed)
            .join(LeakScanPatient, LeakScanPatient.scan_id == LeakScan.scan_id)
            .where(LeakScanPatient.patient_id == patient_id)
            .order_by(LeakScan.finished)
        ).all()
    return [
        {
            "scan_id": sid,
            "found_on": ts.date().isoformat(),
            "fields": [f for f in fields.split(",") if f],
        }
        for sid, ts, fields in rows
    ]


def patient_check(app: App, patient_id: str, *, actor: str) -> dict[str, Any]:
    """For an authenticated patient: the leaks their record was found in (none → empty)."""
    found = _leaks_of(app, patient_id)
    app.record(
        Tag.LEAK_CHECKED, actor=actor, subject=patient_id, affected=bool(found), channel="session"
    )
    return {"affected": bool(found), "incidents": found}


def _subject(app: App, identifier: str) -> tuple[bytes, str | None]:
    """Blind index of the identifier and the patient it belongs to (``None`` if nobody)."""
    value = identifier.strip()
    if not value or len(value) > 32:
        raise UsageError("enter your HKID or hospital number")
    try:
        kind, canonical = "hkid", normalise_hkid(value)
    except Exception:
        try:
            kind, canonical = "hospital_no", app.hospital_no_format.normalise(value)
        except Exception:
            raise UsageError("that is not a valid HKID or hospital number") from None
    digest = app.blind.digest(kind, canonical)
    column = Patient.hkid_bidx if kind == "hkid" else Patient.hospital_no_bidx
    with app.session() as s:
        row = s.execute(
            select(Patient.patient_id, Patient.is_canary, Patient.pii).where(column == digest)
        ).first()
    if row is None or row[1]:
        return digest, None
    return digest, row[0]


def request_code(app: App, identifier: str, *, sender: CodeSender) -> str:
    """Start a check: send a one-time code to the phone registered for ``identifier``.

    Always returns a challenge id, whether or not the identifier is known, so the answer
    cannot be used to learn whether someone is a patient."""
    digest, patient_id = _subject(app, identifier)
    now = app.clock.now()
    with app.session() as s:
        recent = s.execute(
            select(func.count())
            .select_from(LeakCheckChallenge)
            .where(
                LeakCheckChallenge.subject_bidx == digest,
                LeakCheckChallenge.created > now - timedelta(hours=1),
            )
        ).scalar_one()
        if recent >= MAX_REQUESTS_PER_HOUR:
            raise PermissionDenied("too many requests for this identifier; try again in an hour")
        challenge_id = secrets.token_urlsafe(24)
        code = f"{secrets.randbelow(10**6):06d}"
        phone = None
        if patient_id is not None:
            p = s.get(Patient, patient_id)
            if p is not None and p.has_phone:
                phone = app.cipher.decrypt_json(p.pii, b"patient:pii").get("phone")
        s.add(
            LeakCheckChallenge(
                challenge_id=challenge_id,
                subject_bidx=digest,
                patient_id=patient_id if phone else None,
                code_mac=_code_mac(app, challenge_id, code),
                created=now,
                expires=now + timedelta(minutes=CODE_MINUTES),
                attempts=0,
                used=False,
            )
        )
    if phone:
        sender.send_code(
            phone,
            f"Hospital Authority: your one-time code is {code}. It expires in "
            f"{CODE_MINUTES} minutes. We never ask for your HKID by SMS.",
        )
        app.record(Tag.LEAK_CHECK_CODE_SENT, actor="patient-check", subject=patient_id or "")
    return challenge_id


def _code_mac(app: App, challenge_id: str, code: str) -> bytes:
    return app.blind.digest("leak-check-code", f"{challenge_id}:{code}")


def answer_with_code(app: App, challenge_id: str, code: str) -> dict[str, Any]:
    """Finish a check: with the right code, the same answer as :func:`patient_check`."""
    now = app.clock.now()
    wrong = PermissionDenied("the code is wrong or has expired; request a new one")
    with app.session() as s:
        ch = s.get(LeakCheckChallenge, challenge_id[:64])
        if ch is None or ch.used or ch.expires <= now or ch.attempts >= MAX_ATTEMPTS:
            raise wrong
        ch.attempts += 1
        ok = hmac.compare_digest(ch.code_mac, _code_mac(app, challenge_id, code.strip()))
        if ok:
            ch.used = True
        patient_id = ch.patient_id
    if not ok or patient_id is None:
        raise wrong
    found = _leaks_of(app, patient_id)
    app.record(
        Tag.LEAK_CHECKED,
        actor=f"patient:{patient_id}",
        subject=patient_id,
        affected=bool(found),
        channel="one-time-code",
    )
    return {"affected": bool(found), "incidents": found}
