"""What one running console holds: the App and the services built on it, created once by
:func:`phiguard.web.app.create_app` and reached by routes through ``deps.ConsoleDep``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from phiguard.app import App
from phiguard.web.auth.portal import Portal
from phiguard.web.auth.sessions import Sessions
from phiguard.web.auth.tokens import ApiTokens
from phiguard.web.auth.users import Users
from phiguard.web.auth.webauthn_keys import SecurityKeys
from phiguard.web.config import WebSettings


@dataclass
class Console:
    app: App
    web: WebSettings
    port: int = 8000
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def cookie_name(self) -> str:
        # the __Host- prefix makes browsers insist on Secure, Path=/ and no Domain
        return "__Host-phiguard" if self.web.tls else "phiguard_session"

    @property
    def login_csrf_cookie(self) -> str:
        return "__Host-phiguard-login" if self.web.tls else "phiguard_login"

    @cached_property
    def users(self) -> Users:
        return Users(self.app, self.web)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.app, self.web)

    @cached_property
    def tokens(self) -> ApiTokens:
        return ApiTokens(self.app, self.web)

    @cached_property
    def portal(self) -> Portal:
        return Portal(self.app, self.web)

    @cached_property
    def keys(self) -> SecurityKeys:
        scheme = "https" if self.web.tls else "http"
        default_port = 443 if self.web.tls else 80
        host = self.web.rp_id if self.port == default_port else f"{self.web.rp_id}:{self.port}"
        origin = self.web.origin or f"{scheme}://{host}"
        return SecurityKeys(self.app, self.sessions, rp_id=self.web.rp_id, origin=origin)

    def cookie_args(self) -> dict[str, Any]:
        return {"httponly": True, "secure": self.web.tls, "samesite": "strict", "path": "/"}
