"""TOTP (RFC 6238) with replay protection.

A code is accepted for the current 30-second step or one step either side (clock drift), and
only if its step is later than the last step this user has already used (ASVS 6.5.1: a
one-time code is usable once). Storing that step, rather than the codes, is enough: a stolen
code can no longer be replayed in the seconds it stays valid.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from urllib.parse import quote

import pyotp

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
ISSUER = "phiguard"


def new_secret() -> str:
    return pyotp.random_base32(length=32)  # 160 bits, RFC 4226 §4's recommended length


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=quote(username, safe="@._-"), issuer_name=issuer
    )


def step_at(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator shows at ``when`` (tests and the demo use it)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(when)


def verify(secret: str, code: str, *, now: datetime, last_step: int) -> int | None:
    """Return the step the code belongs to when it is valid and unused, else None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # compare every candidate so the time taken does not tell which step matched
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    if found is None or found <= last_step:
        return None
    return found
