"""Fixtures for the console: a FastAPI app over the test home, users of every role, and a
browser-like client that logs in through the real forms (password, then TOTP)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from phiguard.app import App
from phiguard.clock import FixedClock
from phiguard.web import create_app
from phiguard.web.auth import totp
from phiguard.web.config import WebSettings

PASSWORD = "lantern-harbour-orchid-42"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_BODY_CSRF = re.compile(r'data-csrf="([^"]+)"')


@dataclass
class Account:
    username: str
    role: str
    password: str
    secret: str | None


class Browser:
    """A TestClient that keeps cookies and knows the session's CSRF token."""

    def __init__(self, client: TestClient, clock: FixedClock) -> None:
        self.client = client
        self.clock = clock
        self.csrf = ""

    def get(self, url: str, **kw):  # type: ignore[no-untyped-def]
        resp = self.client.get(url, **kw)
        self._remember(resp.text)
        return resp

    def post(self, url: str, data: dict | None = None, *, csrf: bool = True, **kw):  # type: ignore[no-untyped-def]
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        resp = self.client.post(url, data=data, follow_redirects=False, **kw)
        if resp.headers.get("content-type", "").startswith("text/html"):
            self._remember(resp.text)
        return resp

    def _remember(self, html: str) -> None:
        m = _BODY_CSRF.search(html) or _CSRF.search(html)
        if m:
            self.csrf = m.group(1)

    def next_code(self, secret: str) -> str:
        """A fresh TOTP code: time moves on one step so the previous code is not replayed."""
        self.clock.advance(timedelta(seconds=30))
        return totp.code_at(secret, self.clock.now())

    def login(self, account: Account, *, next_url: str = "/") -> None:
        page = self.client.get("/login", params={"next": next_url})
        token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        resp = self.client.post(
            "/login",
            data={
                "username": account.username,
                "password": account.password,
                "csrf_token": token,
                "next": next_url,
            },
            follow_redirects=False,
        )
        assert resp.status_code == 303, resp.text
        if account.secret:
            assert resp.headers["location"].startswith("/login/mfa")
            page = self.client.get(resp.headers["location"])
            token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            resp = self.client.post(
                "/login/mfa",
                data={
                    "code": self.next_code(account.secret),
                    "csrf_token": token,
                    "next": next_url,
                },
                follow_redirects=False,
            )
            assert resp.status_code == 303, resp.text
        self.get("/account")
        assert self.csrf

    def reauth(self, account: Account) -> None:
        self.get("/reauth")
        data = {"password": account.password, "next": "/"}
        if account.secret:
            data["code"] = self.next_code(account.secret)
        resp = self.post("/reauth", data)
        assert resp.status_code == 303, resp.text


@dataclass
class WebEnv:
    app: App
    api: object
    clock: FixedClock
    settings: WebSettings

    def browser(self) -> Browser:
        return Browser(TestClient(self.api, base_url="http://testserver"), self.clock)

    def client(self) -> TestClient:
        return TestClient(self.api, base_url="http://testserver")

    def account(
        self, role: str, username: str | None = None, *, mfa: bool | None = None
    ) -> Account:
        name = username or role.replace("_", "-")
        enrol = self.app_users().create(name, role, PASSWORD, actor="test", with_totp=mfa)
        return Account(name, role, PASSWORD, enrol.totp_secret)

    def app_users(self):  # type: ignore[no-untyped-def]
        return self.api.state.console.users  # type: ignore[attr-defined]

    def token(self, scopes: str, name: str = "client") -> str:
        return self.api.state.console.tokens.create(  # type: ignore[attr-defined]
            name, scopes, actor="test"
        ).secret


def _env(phg: App, clock: FixedClock) -> WebEnv:
    settings = WebSettings(token_cache_seconds=0)
    return WebEnv(phg, create_app(phg, settings), clock, settings)


@pytest.fixture
def web(app: App, clock: FixedClock) -> Iterator[WebEnv]:
    """The console over the ``app`` home (SQLite and PostgreSQL)."""
    yield _env(app, clock)


@pytest.fixture
def sqlite_web(sqlite_app: App, clock: FixedClock) -> Iterator[WebEnv]:
    yield _env(sqlite_app, clock)


def actions(app: App) -> list[dict]:
    """phiguard's own actions as the tamper-evident log holds them (oldest first)."""
    import json

    out = []
    for e in app.audit.find(lambda e: True, kind="action"):
        doc = json.loads(e.data)
        if "tag" in doc:
            out.append(doc)
    return out
