"""WebAuthn security keys end to end with a software authenticator (an ES256 key made in the
test): register from the account page, then log in with the key instead of a TOTP code; a
replayed assertion and a key of another user are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.web.conftest import _CSRF, WebEnv, actions

ORIGIN = "http://localhost:8000"  # WebSettings defaults: rp_id localhost, port 8000


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftKey:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        point = self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self.cred_id = hashlib.sha256(point).digest()
        self.count = 0

    def _auth_data(self, rp_id: str, attested: bool) -> bytes:
        self.count += 1
        flags = 0x01 | 0x04 | (0x40 if attested else 0)  # user present, verified, attested
        data = (
            hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.count)
        )
        if attested:
            nums = self.key.public_key().public_numbers()
            cose = {
                1: 2,
                3: -7,
                -1: 1,
                -2: nums.x.to_bytes(32, "big"),
                -3: nums.y.to_bytes(32, "big"),
            }
            data += b"\0" * 16 + struct.pack(">H", len(self.cred_id)) + self.cred_id
            data += cbor2.dumps(cose)
        return data

    def create(self, options: dict) -> dict:
        client = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": ORIGIN}
        ).encode()
        att = cbor2.dumps(
            {"fmt": "none", "attStmt": {}, "authData": self._auth_data(options["rp"]["id"], True)}
        )
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {"attestationObject": b64u(att), "clientDataJSON": b64u(client)},
            "clientExtensionResults": {},
        }

    def get(self, options: dict) -> dict:
        client = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": ORIGIN}
        ).encode()
        auth = self._auth_data(options["rpId"], False)
        sig = self.key.sign(auth + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.cred_id),
            "rawId": b64u(self.cred_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64u(auth),
                "clientDataJSON": b64u(client),
                "signature": b64u(sig),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        }


def test_register_a_key_and_log_in_with_it(sqlite_web: WebEnv) -> None:
    analyst = sqlite_web.account("security_analyst", mfa=False)
    b = sqlite_web.browser()
    b.login(analyst)
    key = SoftKey()
    h = {"X-CSRF-Token": b.csrf}
    options = b.client.post("/account/keys/options", headers=h).json()
    reg = b.client.post(
        "/account/keys", headers=h, content=json.dumps({**key.create(options), "name": "yubikey"})
    )
    assert reg.status_code == 200, reg.text
    assert "yubikey" in b.get("/account").text

    # a new login now needs the key: the password alone stops at the second factor
    other = sqlite_web.browser()
    page = other.client.get("/login")
    token = _CSRF.search(page.text).group(1)
    resp = other.client.post(
        "/login",
        data={"username": analyst.username, "password": analyst.password, "csrf_token": token},
        follow_redirects=False,
    )
    assert resp.headers["location"].startswith("/login/mfa")
    mfa_page = other.client.get("/login/mfa")
    csrf = re_csrf(mfa_page.text)
    assert "Use a security key" in mfa_page.text
    h2 = {"X-CSRF-Token": csrf}
    opts = other.client.post("/login/webauthn/options", headers=h2).json()
    assertion = key.get(opts)
    ok = other.client.post(
        "/login/webauthn", headers=h2, content=json.dumps({**assertion, "next": "/"})
    )
    assert ok.status_code == 200 and ok.json() == {"next": "/"}
    assert other.client.get("/", follow_redirects=False).status_code == 200
    tags = [a["tag"] for a in actions(sqlite_web.app)]
    assert "console:webauthn:registered" in tags


def re_csrf(html: str) -> str:
    m = re.search(r'data-csrf="([^"]+)"', html) or _CSRF.search(html)
    assert m
    return m.group(1)


def test_replayed_assertion_is_refused(sqlite_web: WebEnv) -> None:
    analyst = sqlite_web.account("security_analyst", "sa-replay", mfa=False)
    b = sqlite_web.browser()
    b.login(analyst)
    key = SoftKey()
    h = {"X-CSRF-Token": b.csrf}
    options = b.client.post("/account/keys/options", headers=h).json()
    b.client.post("/account/keys", headers=h, content=json.dumps(key.create(options)))

    first = sqlite_web.browser()
    page = first.client.get("/login")
    first.client.post(
        "/login",
        data={
            "username": analyst.username,
            "password": analyst.password,
            "csrf_token": _CSRF.search(page.text).group(1),
        },
    )
    csrf = re_csrf(first.client.get("/login/mfa").text)
    opts = first.client.post("/login/webauthn/options", headers={"X-CSRF-Token": csrf}).json()
    assertion = key.get(opts)
    assert (
        first.client.post(
            "/login/webauthn", headers={"X-CSRF-Token": csrf}, content=json.dumps(assertion)
        ).status_code
        == 200
    )
    # the same signed assertion again, in a fresh login: its challenge is spent
    second = sqlite_web.browser()
    page = second.client.get("/login")
    second.client.post(
        "/login",
        data={
            "username": analyst.username,
            "password": analyst.password,
            "csrf_token": _CSRF.search(page.text).group(1),
        },
    )
    csrf2 = re_csrf(second.client.get("/login/mfa").text)
    second.client.post("/login/webauthn/options", headers={"X-CSRF-Token": csrf2})
    replay = second.client.post(
        "/login/webauthn", headers={"X-CSRF-Token": csrf2}, content=json.dumps(assertion)
    )
    assert replay.status_code == 401
    assert second.client.get("/", follow_redirects=False).status_code == 303
