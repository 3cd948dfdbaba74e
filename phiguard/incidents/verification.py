"""Per-recipient verification codes, and the public check that proves a notice is genuine.

A phisher who holds the leaked names and HKIDs can write a convincing letter; what they
cannot do is print a code that the hospital's official page confirms. Design:

* A code is ``XXXX-XXXX-XXXX`` over 32 unambiguous symbols (no 0/O, 1/I): 60 bits. It is
  *derived*: ``HMAC(K_code, nonce)`` with a random 16-byte nonce per notice and ``K_code`` a
  sub-key of the home's index key. The database keeps the nonce and ``code_hash`` — a
  keyed HMAC of the code under a *different* label — never the code. So letters can be
  re-printed (re-derive from the nonce), a database dump alone yields no code, and a code
  guessed offline against ``code_hash`` is impossible without the key.
* Single purpose: the code only answers "was this notice issued by the hospital?". It is not
  a password, never unlocks data and is checked only here.
* The check reveals one bit and nothing else — no name, no incident, not whether some
  identifier is in a leak. It takes only the code (never an HKID), answers malformed and
  unknown codes identically, and is rate-limited per client and globally on failures, so at
  60 bits and ~10 tries per 15 minutes an online guess has no realistic chance.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from phiguard.audit.tags import Tag
from phiguard.incidents.models import Notice, VerificationAttempt
from phiguard.incidents.settings import IncidentSettings

if TYPE_CHECKING:
    from phiguard.app import App

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_CHARS = 12
_DERIVE_LABEL = b"phiguard:incidents:notice-code:v1"
_HASH_KIND = "notice-code"
_DUMMY = "2" * CODE_CHARS
_TO_ALPHABET = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET)


def normalise(text: str) -> str | None:
    """Upper-case, drop spaces and hyphens; ``None`` unless 12 symbols of the alphabet."""
    raw = "".join(ch for ch in text.upper() if ch not in " -\t")
    if len(raw) != CODE_CHARS or any(ch not in ALPHABET for ch in raw):
        return None
    return raw


def pretty(raw: str) -> str:
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


class CodeBook:
    """Derives and hashes codes for one home; cheap enough for 56,000 notices in a second."""

    def __init__(self, app: App) -> None:
        self._derive = hmac.new(app.keyring.index_key, _DERIVE_LABEL, "sha256").digest()
        self._blind = app.blind

    @staticmethod
    def new_nonce() -> bytes:
        return secrets.token_bytes(16)

    def code(self, nonce: bytes) -> str:
        # 60 bits of the HMAC as 12 base-32 symbols, mapped onto the unambiguous alphabet
        raw = base64.b32encode(hmac.digest(self._derive, nonce, "sha256")[:8])[:CODE_CHARS]
        text = raw.decode("ascii").translate(_TO_ALPHABET)
        return f"{text[0:4]}-{text[4:8]}-{text[8:12]}"

    def hash(self, code: str) -> bytes:
        raw = normalise(code)
        return self._blind.digest(_HASH_KIND, raw if raw is not None else _DUMMY)

    def issue(self) -> tuple[bytes, bytes]:
        """(nonce, code_hash) for a new notice; the code itself is not kept."""
        nonce = self.new_nonce()
        return nonce, self.hash(self.code(nonce))


@dataclass(frozen=True)
class CheckResult:
    status: str  # genuine, not_genuine, rate_limited

    @property
    def genuine(self) -> bool:
        return self.status == "genuine"

    def message(self, cfg: IncidentSettings) -> str:
        never = "The hospital will never ask for your HKID number, a password or a payment."
        if self.status == "genuine":
            return (
                f"This code is genuine: it was issued by {cfg.hospital_name} with a notice "
                f"about a data incident. {never} Enquiries: {cfg.hotline}."
            )
        if self.status == "rate_limited":
            return f"Too many checks from here; try again later or call {cfg.hotline}."
        return (
            f"This code was NOT issued by {cfg.hospital_name}. Do not reply to the message "
            f"or call any number in it; call {cfg.hotline}. {never}"
        )

    def as_dict(self, cfg: IncidentSettings) -> dict[str, object]:
        return {"genuine": self.genuine, "status": self.status, "message": self.message(cfg)}


def check(app: App, code: str, *, client: str, cfg: IncidentSettings | None = None) -> CheckResult:
    """The public check. ``client`` identifies the caller for rate limiting (an IP address,
    ``cli:user``, ``agent:name``); only its keyed hash is stored."""
    cfg = cfg or IncidentSettings()
    now = app.clock.now()
    book = CodeBook(app)
    client_h = app.blind.digest("verify-client", client)
    digest = book.hash(code)  # computed for malformed input too: same work either way
    well_formed = normalise(code) is not None
    window = now - timedelta(minutes=cfg.verify_window_minutes)
    with app.session() as s:
        tries = (
            s.scalar(
                select(func.count())
                .select_from(VerificationAttempt)
                .where(VerificationAttempt.client == client_h, VerificationAttempt.ts > window)
            )
            or 0
        )
        failures = (
            s.scalar(
                select(func.count())
                .select_from(VerificationAttempt)
                .where(
                    VerificationAttempt.genuine.is_(False),
                    VerificationAttempt.ts > now - timedelta(minutes=1),
                )
            )
            or 0
        )
        if tries >= cfg.verify_max_attempts or failures >= cfg.verify_global_failures_per_minute:
            s.add(VerificationAttempt(ts=now, client=client_h, genuine=False))
            result = CheckResult("rate_limited")
            ref = ""
        else:
            notice = s.scalars(select(Notice).where(Notice.code_hash == digest)).first()
            valid = (
                well_formed
                and notice is not None
                and notice.issued_at >= now - timedelta(days=cfg.code_valid_days)
            )
            s.add(VerificationAttempt(ts=now, client=client_h, genuine=valid))
            if valid:
                assert notice is not None
                notice.verified_count += 1
                ref = notice.ref
                result = CheckResult("genuine")
            else:
                ref = ""
                result = CheckResult("not_genuine")
    app.record(
        Tag.NOTICE_VERIFIED,
        actor=client if client.startswith(("cli:", "agent:")) else "public",
        subject=ref,
        status=result.status,
    )
    return result
