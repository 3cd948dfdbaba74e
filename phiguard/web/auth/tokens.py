"""Scoped API tokens for the clinical systems and the patients' app.

A token reads ``phg_<id>_<secret>``: the id finds the row, the secret (256 random bits) is
compared by its SHA-256 — a slow hash would add nothing against a 256-bit secret and would
cap ``/v1/decide`` throughput. Tokens are shown once, can expire, be rotated (a new secret,
the old one revoked at once) and revoked. A verified token is remembered in memory for
``token_cache_seconds`` so the hot path does not hit the database on every call; a
revocation through this object drops it from the cache immediately.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.web.auth.roles import Perm, parse_scopes
from phiguard.web.config import WebSettings
from phiguard.web.models import ApiToken

PREFIX = "phg_"


@dataclass(frozen=True)
class ApiClient:
    token_id: str
    name: str
    scopes: frozenset[Perm]


@dataclass(frozen=True)
class TokenView:
    token_id: str
    name: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    replaces: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedToken:
    view: TokenView
    secret: str  # the whole bearer string, shown once


def _view(t: ApiToken) -> TokenView:
    return TokenView(
        t.token_id,
        t.name,
        t.scopes.split(","),
        t.created_by,
        t.created_at,
        t.expires_at,
        t.revoked_at,
        t.last_used_at,
        t.replaces,
    )


class ApiTokens:
    def __init__(self, app: App, web: WebSettings | None = None) -> None:
        self.app = app
        self.web = web or WebSettings()
        self._cache: dict[str, tuple[float, ApiClient, str]] = {}
        self._lock = threading.Lock()

    def _issue(
        self,
        s: object,
        name: str,
        scopes: str,
        actor: str,
        expires_at: datetime | None,
        replaces: str | None,
    ) -> IssuedToken:
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiToken(
            token_id=token_id,
            name=name,
            scopes=scopes,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
            created_by=actor,
            created_at=self.app.clock.now(),
            expires_at=expires_at,
            replaces=replaces,
        )
        s.add(row)  # type: ignore[attr-defined]
        return IssuedToken(_view(row), f"{PREFIX}{token_id}_{secret}")

    def create(self, name: str, scopes: str, *, actor: str, days: int | None = None) -> IssuedToken:
        name = name.strip()
        if not name or len(name) > 100:
            raise UsageError("a token needs a name of 1-100 characters")
        parsed = parse_scopes(scopes)
        if days is not None and days < 1:
            raise UsageError("--days must be at least 1")
        expires = self.app.clock.now() + timedelta(days=days) if days else None
        with self.app.session() as s:
            issued = self._issue(s, name, ",".join(p.value for p in parsed), actor, expires, None)
        self.app.record(
            Tag.TOKEN_CREATED,
            actor=actor,
            subject=issued.view.token_id,
            name=name,
            scopes=issued.view.scopes,
        )
        return issued

    def rotate(self, token_id: str, *, actor: str) -> IssuedToken:
        now = self.app.clock.now()
        with self.app.session() as s:
            old = s.get(ApiToken, token_id)
            if old is None:
                raise NotFound(f"no API token {token_id}")
            if old.revoked_at is not None:
                raise Conflict(f"API token {token_id} is revoked; create a new one")
            old.revoked_at = now
            issued = self._issue(s, old.name, old.scopes, actor, old.expires_at, token_id)
        self._forget(token_id)
        self.app.record(Tag.TOKEN_ROTATED, actor=actor, subject=token_id, new=issued.view.token_id)
        return issued

    def revoke(self, token_id: str, *, actor: str) -> TokenView:
        with self.app.session() as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no API token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = self.app.clock.now()
            view = _view(row)
        self._forget(token_id)
        self.app.record(Tag.TOKEN_REVOKED, actor=actor, subject=token_id)
        return view

    def list(self) -> list[TokenView]:
        with self.app.session() as s:
            return [
                _view(t) for t in s.scalars(select(ApiToken).order_by(ApiToken.created_at.desc()))
            ]

    def _forget(self, token_id: str) -> None:
        with self._lock:
            for key in [k for k, v in self._cache.items() if v[1].token_id == token_id]:
                del self._cache[key]

    def authenticate(self, bearer: str) -> ApiClient | None:
        if not bearer.startswith(PREFIX) or len(bearer) > 120:
            return None
        token_id, _, secret = bearer[len(PREFIX) :].partition("_")
        if not token_id or not secret:
            return None
        digest = hashlib.sha256(secret.encode()).hexdigest()
        mono = time.monotonic()
        cached = self._cache.get(token_id)
        if (
            cached
            and mono - cached[0] < self.web.token_cache_seconds
            and hmac.compare_digest(cached[2], digest)
        ):
            return cached[1]
        now = self.app.clock.now()
        with self.app.session() as s:
            row = s.get(ApiToken, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                return None
            if row.revoked_at is not None or (row.expires_at and now >= row.expires_at):
                return None
            if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
                row.last_used_at = now
            client = ApiClient(
                row.token_id, row.name, frozenset(Perm(p) for p in row.scopes.split(","))
            )
        with self._lock:
            self._cache[token_id] = (mono, client, digest)
        return client
