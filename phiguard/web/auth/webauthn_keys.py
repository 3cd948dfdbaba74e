"""WebAuthn security keys as an optional second factor (and a phishing-resistant one: the
browser binds the signature to the console's origin, which a look-alike site cannot fake).

The ``webauthn`` package does the CBOR/COSE parsing and signature checks; this module keeps
the challenge server-side in the session row and the credentials in
``console_webauthn_credentials``. Sign counters that go backwards are refused (a cloned key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import webauthn
from sqlalchemy import select
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import NotFound, PermissionDenied, UsageError
from phiguard.web.auth.sessions import Sessions
from phiguard.web.models import ConsoleUser, WebAuthnCredential


@dataclass(frozen=True)
class KeyView:
    key_id: str
    name: str
    created_at: object
    last_used_at: object


class SecurityKeys:
    def __init__(self, app: App, sessions: Sessions, *, rp_id: str, origin: str) -> None:
        self.app = app
        self.sessions = sessions
        self.rp_id = rp_id
        self.origin = origin

    def _creds(self, user_id: int) -> list[WebAuthnCredential]:
        with self.app.session() as s:
            return list(
                s.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id))
            )

    def list(self, user_id: int) -> list[KeyView]:
        return [
            KeyView(c.credential_id.hex()[:16], c.name, c.created_at, c.last_used_at)
            for c in self._creds(user_id)
        ]

    def registration_options(self, session_hash: str, user_id: int) -> str:
        with self.app.session() as s:
            user = s.get(ConsoleUser, user_id)
            assert user is not None
            name = user.username
        opts = webauthn.generate_registration_options(
            rp_id=self.rp_id,
            rp_name="phiguard",
            user_name=name,
            user_id=str(user_id).encode(),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=c.credential_id) for c in self._creds(user_id)
            ],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.DISCOURAGED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
        )
        self.sessions.set_challenge(session_hash, opts.challenge)
        return webauthn.options_to_json(opts)

    def register(
        self, session_hash: str, user_id: int, credential: dict[str, Any], name: str
    ) -> None:
        challenge = self.sessions.pop_challenge(session_hash)
        if challenge is None:
            raise UsageError("no security-key registration in progress")
        try:
            verified = webauthn.verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
            )
        except Exception as exc:  # the library raises several unrelated types
            raise PermissionDenied(f"security key not accepted: {exc}") from None
        with self.app.session() as s:
            s.add(
                WebAuthnCredential(
                    credential_id=verified.credential_id,
                    user_id=user_id,
                    name=(name.strip() or "security key")[:100],
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    created_at=self.app.clock.now(),
                )
            )
            user = s.get(ConsoleUser, user_id)
            username = user.username if user else str(user_id)
        self.app.record(Tag.WEBAUTHN_REGISTERED, actor=username, subject=username)

    def authentication_options(self, session_hash: str, user_id: int) -> str:
        creds = self._creds(user_id)
        if not creds:
            raise NotFound("this account has no security key")
        opts = webauthn.generate_authentication_options(
            rp_id=self.rp_id,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c.credential_id) for c in creds],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        self.sessions.set_challenge(session_hash, opts.challenge)
        return webauthn.options_to_json(opts)

    def authenticate(self, session_hash: str, user_id: int, credential: dict[str, Any]) -> None:
        challenge = self.sessions.pop_challenge(session_hash)
        if challenge is None:
            raise PermissionDenied("no security-key login in progress")
        raw_id = webauthn.base64url_to_bytes(str(credential.get("rawId") or credential.get("id")))
        with self.app.session() as s:
            cred = s.get(WebAuthnCredential, raw_id)
            if cred is None or cred.user_id != user_id:
                raise PermissionDenied("unknown security key")
            try:
                verified = webauthn.verify_authentication_response(
                    credential=credential,
                    expected_challenge=challenge,
                    expected_rp_id=self.rp_id,
                    expected_origin=self.origin,
                    credential_public_key=cred.public_key,
                    credential_current_sign_count=cred.sign_count,
                )
            except Exception as exc:
                raise PermissionDenied(f"security key not accepted: {exc}") from None
            cred.sign_count = verified.new_sign_count
            cred.last_used_at = self.app.clock.now()

    def remove(self, user_id: int, key_id: str) -> None:
        with self.app.session() as s:
            for cred in s.scalars(
                select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id)
            ):
                if cred.credential_id.hex()[:16] == key_id:
                    s.delete(cred)
                    user = s.get(ConsoleUser, user_id)
                    name = user.username if user else ""
                    break
            else:
                raise NotFound(f"no security key {key_id}")
        self.app.record(Tag.WEBAUTHN_REMOVED, actor=name, subject=name)


def parse_credential(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise UsageError("the security-key response is not JSON") from None
    if not isinstance(value, dict):
        raise UsageError("the security-key response is not an object")
    return value
