"""Both ends of authentication: SCRAM-SHA-256 as a server (the contractor logging in to the
gateway) and as a client (the gateway logging in to the real database as its service role,
which may also use trust, cleartext or MD5 as configured on the server).

SCRAM is RFC 5802 with SHA-256 (RFC 7677) as PostgreSQL speaks it: the user name inside the
SASL message is ignored (the startup packet names the user) and channel binding is not
offered, so clients send the ``n,,`` or ``y,,`` GS2 header.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from phiguard.errors import UsageError
from phiguard.gateway import protocol as pq


class AuthFailed(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _attrs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if len(part) >= 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out


class ScramServer:
    """One SCRAM exchange on the server side, from a stored verifier."""

    def __init__(self, salt: bytes, iterations: int, stored_key: bytes, server_key: bytes) -> None:
        self.salt, self.iterations = salt, iterations
        self.stored_key, self.server_key = stored_key, server_key
        self.nonce = ""
        self.first_bare = ""
        self.server_first = ""
        self.gs2 = ""

    def first(self, client_first: str) -> str:
        if not (client_first.startswith("n,") or client_first.startswith("y,")):
            raise AuthFailed("channel binding is not supported by this gateway")
        parts = client_first.split(",", 2)
        if len(parts) != 3:
            raise AuthFailed("malformed SCRAM message")
        self.gs2 = parts[0] + "," + parts[1] + ","
        self.first_bare = parts[2]
        cnonce = _attrs(self.first_bare).get("r", "")
        if not cnonce:
            raise AuthFailed("malformed SCRAM message")
        self.nonce = cnonce + base64.b64encode(secrets.token_bytes(18)).decode()
        self.server_first = f"r={self.nonce},s={_b64(self.salt)},i={self.iterations}"
        return self.server_first

    def final(self, client_final: str) -> str:
        attrs = _attrs(client_final)
        without_proof = client_final.rsplit(",p=", 1)[0]
        if attrs.get("r") != self.nonce or attrs.get("c") != _b64(self.gs2.encode()):
            raise AuthFailed("SCRAM nonce or channel binding mismatch")
        try:
            proof = base64.b64decode(attrs.get("p", ""), validate=True)
        except ValueError:
            raise AuthFailed("malformed SCRAM proof") from None
        auth_message = f"{self.first_bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(self.stored_key, auth_message, "sha256").digest()
        if len(proof) != len(signature):
            raise AuthFailed("wrong credential")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key):
            raise AuthFailed("wrong credential")
        return "v=" + _b64(hmac.new(self.server_key, auth_message, "sha256").digest())


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    user: str
    password: str | None
    database: str
    sslmode: str = "prefer"

    @classmethod
    def parse(cls, url: str | None) -> Upstream:
        if not url:
            raise UsageError(
                "no upstream database: set PHIGUARD_GATEWAY_UPSTREAM or --upstream "
                "postgresql://service_role@host:5432/db"
            )
        u = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
        if u.scheme not in ("postgresql", "postgres"):
            raise UsageError(f"upstream {url!r} is not a postgresql:// URL")
        query = dict(p.split("=", 1) for p in u.query.split("&") if "=" in p)
        return cls(
            u.hostname or "127.0.0.1",
            u.port or 5432,
            unquote(u.username or "postgres"),
            unquote(u.password) if u.password else None,
            unquote(u.path.lstrip("/")) or unquote(u.username or "postgres"),
            query.get("sslmode", "prefer"),
        )

    @property
    def dsn(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return (
            f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
            f"?sslmode={self.sslmode}"
        )


@dataclass
class Connected:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parameters: list[bytes]  # ParameterStatus messages, as received
    pid: int
    secret: int


async def connect(up: Upstream, params: dict[str, str], timeout: float = 10.0) -> Connected:
    return await asyncio.wait_for(_connect(up, params), timeout)


async def _connect(up: Upstream, params: dict[str, str]) -> Connected:
    reader, writer = await asyncio.open_connection(up.host, up.port)
    try:
        if up.sslmode in ("require", "verify-ca", "verify-full", "prefer"):
            writer.write((8).to_bytes(4, "big") + pq.SSL_REQUEST.to_bytes(4, "big"))
            await writer.drain()
            answer = await reader.readexactly(1)
            if answer == b"S":
                ctx = ssl.create_default_context()
                if up.sslmode in ("require", "prefer"):
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                await writer.start_tls(ctx, server_hostname=up.host)
            elif up.sslmode != "prefer":
                raise AuthFailed("the upstream server does not accept TLS")
        writer.write(pq.startup_message({"user": up.user, "database": up.database, **params}))
        await writer.drain()
        await _authenticate(reader, writer, up)
        parameters: list[bytes] = []
        pid = secret = 0
        while True:
            kind, body = await pq.read_message(reader, 1 << 20)
            if kind == b"S":
                parameters.append(pq.message(kind, body))
            elif kind == b"K":
                pid, secret = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            elif kind == b"E":
                raise AuthFailed(pq.error_fields(body).get("M", "upstream refused"))
            elif kind == b"Z":
                return Connected(reader, writer, parameters, pid, secret)
    except BaseException:
        writer.close()
        raise


async def _authenticate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream
) -> None:
    scram: _ScramClient | None = None
    while True:
        kind, body = await pq.read_message(reader, 1 << 20)
        if kind == b"E":
            raise AuthFailed(pq.error_fields(body).get("M", "upstream refused the login"))
        if kind != b"R":
            raise AuthFailed("unexpected message during upstream authentication")
        code = int.from_bytes(body[:4], "big")
        if code == 0:
            return
        password = (up.password or "").encode()
        if code == 3:
            writer.write(pq.message(b"p", password + b"\x00"))
        elif code == 5:
            inner = hashlib.md5(password + up.user.encode()).hexdigest().encode()  # noqa: S324
            outer = hashlib.md5(inner + body[4:8]).hexdigest()  # noqa: S324 - the protocol's
            writer.write(pq.message(b"p", b"md5" + outer.encode() + b"\x00"))
        elif code == 10:
            mechs = body[4:].split(b"\x00")
            if b"SCRAM-SHA-256" not in mechs:
                raise AuthFailed("upstream offers no SASL mechanism the gateway speaks")
            scram = _ScramClient(up.password or "")
            first = scram.first().encode()
            writer.write(
                pq.message(b"p", b"SCRAM-SHA-256\x00" + len(first).to_bytes(4, "big") + first)
            )
        elif code == 11 and scram is not None:
            writer.write(pq.message(b"p", scram.final(body[4:].decode()).encode()))
        elif code == 12 and scram is not None:
            scram.verify(body[4:].decode())
            continue
        else:
            raise AuthFailed(
                f"upstream asks for an authentication method ({code}) the gateway does not speak"
            )
        await writer.drain()


class _ScramClient:
    def __init__(self, password: str) -> None:
        self.password = password
        self.cnonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = f"n=,r={self.cnonce}"
        self.server_signature = b""

    def first(self) -> str:
        return "n,," + self.first_bare

    def final(self, server_first: str) -> str:
        a = _attrs(server_first)
        nonce, salt, it = a["r"], base64.b64decode(a["s"]), int(a["i"])
        if not nonce.startswith(self.cnonce):
            raise AuthFailed("upstream SCRAM nonce mismatch")
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, it)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored, auth_message, "sha256").digest()
        proof = bytes(x ^ y for x, y in zip(client_key, sig, strict=True))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return f"{without_proof},p={_b64(proof)}"

    def verify(self, server_final: str) -> None:
        if _attrs(server_final).get("v") != _b64(self.server_signature):
            raise AuthFailed("upstream SCRAM server signature does not verify")


async def send_cancel(up: Upstream, pid: int, secret: int) -> None:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(up.host, up.port), 5)
    except (TimeoutError, OSError):
        return
    w.write(
        (16).to_bytes(4, "big")
        + pq.CANCEL_REQUEST.to_bytes(4, "big")
        + pid.to_bytes(4, "big")
        + secret.to_bytes(4, "big")
    )
    try:
        await w.drain()
    finally:
        w.close()
