"""Annotated dependencies shared by every route: the console state, who is calling, and the
checks every request passes (session, role or scope, CSRF, recent re-authentication).

Routes declare what they need in their signature and never test roles themselves::

    @router.get("/alerts")
    def alerts(user: Annotated[Principal, Depends(Page(Perm.ALERTS_READ))], ...): ...

The permission table is :mod:`phiguard.web.auth.roles`; this module only enforces it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from phiguard.app import App
from phiguard.errors import PermissionDenied
from phiguard.web.auth.roles import ROLE_PERMS, Perm, Role
from phiguard.web.auth.sessions import SessionInfo
from phiguard.web.auth.tokens import ApiClient
from phiguard.web.state import Console

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No usable staff session: pages redirect to /login, the API answers 401."""

    def __init__(self, next_url: str = "/") -> None:
        super().__init__("login required")
        self.next_url = next_url


class ReauthRequired(Exception):
    """A sensitive action needs the password (and MFA) again: pages redirect to /reauth."""

    def __init__(self, next_url: str = "/") -> None:
        super().__init__("re-authentication required")
        self.next_url = next_url


class CsrfFailed(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("the form has expired or did not come from this console; reload it")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user (by session), an API client (by token), or a patient."""

    kind: str  # user | token | patient
    name: str
    role: str | None
    perms: frozenset[Perm]
    session: SessionInfo | None = None
    client: ApiClient | None = None

    @property
    def actor(self) -> str:
        """The name written to the audit log."""
        return self.name if self.kind == "user" else f"{self.kind}:{self.name}"

    @property
    def user_id(self) -> int:
        assert self.session is not None and self.session.user_id is not None
        return self.session.user_id

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    @classmethod
    def for_session(cls, info: SessionInfo) -> Principal:
        try:
            perms = ROLE_PERMS[Role(info.role)]
        except ValueError:
            perms = frozenset()
        return cls("user", info.username, info.role, perms, session=info)

    @classmethod
    def for_client(cls, client: ApiClient) -> Principal:
        return cls("token", client.token_id, None, client.scopes, client=client)


def get_console(request: Request) -> Console:
    return request.app.state.console


async def _console(request: Request) -> Console:
    # async: FastAPI runs a plain-def dependency in the thread pool, a hand-off per request
    return request.app.state.console


ConsoleDep = Annotated[Console, Depends(_console)]


def get_phg(request: Request) -> App:
    return get_console(request).app


async def _phg(request: Request) -> App:
    return get_console(request).app


PhgDep = Annotated[App, Depends(_phg)]


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site paths: never an open redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def _here(request: Request) -> str:
    """Where to come back to after logging in or confirming the password: the page itself
    for a GET; for a form post, the page the form sits on (the path without its action,
    e.g. ``/vendors/V012`` for ``/vendors/V012/suspend``)."""
    if request.method in SAFE_METHODS:
        q = f"?{request.url.query}" if request.url.query else ""
        return f"{request.url.path}{q}"
    back = request.headers.get("x-return-to") or request.url.path.rsplit("/", 1)[0]
    return safe_next(back)


async def check_csrf(request: Request, info: SessionInfo) -> None:
    """Synchronizer token (ASVS 3.5): every unsafe request made with the session cookie
    carries the session's token, as the ``csrf_token`` form field or ``X-CSRF-Token``."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get("x-csrf-token")
    if token is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            token = value if isinstance(value, str) else None
    if not token or not hmac.compare_digest(token.encode(), info.csrf_token.encode()):
        raise CsrfFailed()


def _staff_session(request: Request) -> SessionInfo | None:
    console = get_console(request)
    info = console.sessions.load(request.cookies.get(console.cookie_name))
    if info is None or info.kind != "staff" or info.stage != "full":
        return None
    return info


class Page:
    """A console page or form: a logged-in user whose role holds ``perm`` (None: any role).
    With ``recent=True`` the user must also have confirmed their password lately."""

    def __init__(self, perm: Perm | None = None, *, recent: bool = False) -> None:
        self.perm = perm
        self.recent = recent

    async def __call__(self, request: Request) -> Principal:
        info = _staff_session(request)
        if info is None:
            raise LoginRequired(_here(request))
        principal = Principal.for_session(info)
        request.state.principal = principal
        await check_csrf(request, info)
        if self.perm is not None and not principal.can(self.perm):
            raise PermissionDenied(f"your role ({info.role}) may not do this")
        if self.recent and not get_console(request).sessions.recently_authenticated(info):
            raise ReauthRequired(_here(request))
        return principal


class Api:
    """A REST call: a bearer token holding one of the scopes ``perms``, or a console session
    whose role holds one (then unsafe methods need ``X-CSRF-Token``)."""

    def __init__(self, *perms: Perm, recent: bool = False) -> None:
        self.perms = perms
        self.recent = recent

    async def __call__(self, request: Request) -> Principal:
        console = get_console(request)
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, credential = auth.partition(" ")
            client = (
                console.tokens.authenticate(credential.strip())
                if scheme.lower() == "bearer"
                else None
            )
            if client is None:
                raise LoginRequired()
            principal = Principal.for_client(client)
            if self.recent:
                raise PermissionDenied("this action needs a console user, not an API token")
        else:
            info = _staff_session(request)
            if info is None:
                raise LoginRequired()
            principal = Principal.for_session(info)
            await check_csrf(request, info)
            if self.recent and not console.sessions.recently_authenticated(info):
                raise PermissionDenied(
                    "re-authentication required: confirm your password at /reauth first"
                )
        request.state.principal = principal
        if not any(principal.can(p) for p in self.perms):
            raise PermissionDenied(f"not allowed: needs {' or '.join(p.value for p in self.perms)}")
        return principal


@dataclass(frozen=True)
class PatientSession:
    patient_id: str
    session: SessionInfo


async def portal_patient(request: Request) -> PatientSession:
    console = get_console(request)
    info = console.sessions.load(request.cookies.get(console.cookie_name))
    if info is None or info.kind != "patient" or not info.patient_id:
        raise PermissionDenied("open this page from the hospital's app")
    await check_csrf(request, info)
    return PatientSession(info.patient_id, info)


PortalDep = Annotated[PatientSession, Depends(portal_patient)]


async def optional_principal(request: Request) -> Principal | None:
    info = _staff_session(request)
    return Principal.for_session(info) if info else None


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
