"""Login (password, then TOTP or a security key), logout and re-authentication."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from phiguard.audit.tags import Tag
from phiguard.errors import PermissionDenied, PhiguardError
from phiguard.web.auth.throttle import Throttled
from phiguard.web.auth.webauthn_keys import parse_credential
from phiguard.web.deps import ConsoleDep, CsrfFailed, Page, Principal, check_csrf, safe_next
from phiguard.web.routes import client_ip, user_agent

router = APIRouter(include_in_schema=False)
AnyUser = Annotated[Principal, Depends(Page())]


def _login_form(
    request: Request,
    console: ConsoleDep,
    *,
    status: int = 200,
    error: str = "",
    next_url: str = "/",
    username: str = "",
) -> Response:
    token = request.cookies.get(console.login_csrf_cookie) or secrets.token_urlsafe(32)
    resp = request.app.state.renderer.page(
        request,
        "login.html",
        status=status,
        csrf_token=token,
        error=error,
        next=safe_next(next_url),
        username=username,
    )
    resp.set_cookie(console.login_csrf_cookie, token, max_age=3600, **console.cookie_args())
    return resp


@router.get("/login")
def login_page(request: Request, console: ConsoleDep, next: str = "/") -> Response:
    return _login_form(request, console, next_url=next)


@router.post("/login")
def login(
    request: Request,
    console: ConsoleDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    # Login CSRF (a forged login into the attacker's account): double-submit cookie.
    cookie = request.cookies.get(console.login_csrf_cookie, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_form(
            request, console, status=403, next_url=next, error="The form expired. Please try again."
        )
    ip = client_ip(request)
    try:
        user = console.users.login_password(username, password[:256], ip)
    except Throttled as exc:
        resp = _login_form(
            request,
            console,
            status=429,
            next_url=next,
            username=username,
            error=f"Too many failed attempts. Try again in {exc.retry_after} s.",
        )
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except PermissionDenied:
        return _login_form(
            request,
            console,
            status=401,
            next_url=next,
            username=username,
            error="Wrong user name or password.",
        )
    token = console.sessions.start(
        user.user_id, mfa_pending=user.needs_mfa, client_ip=ip, user_agent=user_agent(request)
    )
    if user.needs_mfa:
        target = f"/login/mfa?next={safe_next(next)}"
    else:
        console.users.mark_login(user.user_id, ip, "password")
        target = safe_next(next)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(console.cookie_name, token, **console.cookie_args())
    resp.delete_cookie(console.login_csrf_cookie, path="/")
    return resp


def _pending(request: Request, console: ConsoleDep):
    info = console.sessions.load(request.cookies.get(console.cookie_name))
    if info is None or info.kind != "staff" or info.stage != "mfa":
        return None
    return info


def _mfa_form(
    request: Request,
    console: ConsoleDep,
    info,
    *,
    next_url: str,
    error: str = "",
    status: int = 200,
) -> Response:
    user = console.users.by_id(info.user_id)
    return request.app.state.renderer.page(
        request,
        "login_mfa.html",
        status=status,
        csrf_token=info.csrf_token,
        error=error,
        next=safe_next(next_url),
        has_totp=user.mfa,
        has_keys=user.security_keys > 0,
    )


@router.get("/login/mfa")
def mfa_page(request: Request, console: ConsoleDep, next: str = "/") -> Response:
    info = _pending(request, console)
    if info is None:
        return RedirectResponse("/login?msg=expired", status_code=303)
    return _mfa_form(request, console, info, next_url=next)


def _finish(console: ConsoleDep, request: Request, info, method: str, resp: Response) -> Response:
    """MFA passed: a fresh session id replaces the half-logged-in one (no fixation)."""
    token = console.sessions.complete_mfa(request.cookies[console.cookie_name])
    console.users.mark_login(info.user_id, client_ip(request), method)
    resp.set_cookie(console.cookie_name, token, **console.cookie_args())
    return resp


@router.post("/login/mfa")
async def mfa(
    request: Request,
    console: ConsoleDep,
    code: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    info = _pending(request, console)
    if info is None:
        return RedirectResponse("/login?msg=expired", status_code=303)
    await check_csrf(request, info)
    try:
        console.users.login_totp(info.user_id, code, client_ip(request))
    except Throttled as exc:
        console.sessions.end(request.cookies[console.cookie_name])
        resp = _login_form(
            request,
            console,
            status=429,
            error=f"Too many failed attempts. Try again in {exc.retry_after} s.",
        )
        resp.delete_cookie(console.cookie_name, path="/")
        return resp
    except PermissionDenied as exc:
        return _mfa_form(request, console, info, next_url=next, error=f"{exc}.", status=401)
    return _finish(
        console, request, info, "totp", RedirectResponse(safe_next(next), status_code=303)
    )


@router.post("/login/webauthn/options")
async def webauthn_login_options(request: Request, console: ConsoleDep) -> Response:
    info = _pending(request, console)
    if info is None or info.user_id is None:
        raise PermissionDenied("no login in progress")
    await check_csrf(request, info)
    body = console.keys.authentication_options(info.session_hash, info.user_id)
    return Response(body, media_type="application/json")


@router.post("/login/webauthn")
async def webauthn_login(request: Request, console: ConsoleDep) -> Response:
    info = _pending(request, console)
    if info is None or info.user_id is None:
        raise PermissionDenied("no login in progress")
    await check_csrf(request, info)
    payload = parse_credential((await request.body()).decode(errors="replace"))
    next_url = safe_next(str(payload.pop("next", "/")))
    try:
        console.keys.authenticate(info.session_hash, info.user_id, payload)
    except PhiguardError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401)
    return _finish(console, request, info, "webauthn", JSONResponse({"next": next_url}))


@router.post("/logout")
async def logout(request: Request, console: ConsoleDep) -> Response:
    token = request.cookies.get(console.cookie_name)
    info = console.sessions.load(token)
    if info is not None:
        await check_csrf(request, info)
        console.sessions.end(token or "")
        console.app.record(
            Tag.USER_LOGOUT, actor=info.username or "patient", subject=info.public_id
        )
    resp = RedirectResponse("/login?msg=logged-out", status_code=303)
    resp.delete_cookie(console.cookie_name, path="/")
    return resp


@router.get("/reauth")
def reauth_page(request: Request, console: ConsoleDep, user: AnyUser, next: str = "/") -> Response:
    me = console.users.by_id(user.user_id)
    return request.app.state.renderer.page(
        request, "reauth.html", next=safe_next(next), has_totp=me.mfa
    )


@router.post("/reauth")
def reauth(
    request: Request,
    console: ConsoleDep,
    user: AnyUser,
    password: Annotated[str, Form()],
    code: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    me = console.users.by_id(user.user_id)
    ip = client_ip(request)
    try:
        console.users.confirm_password(me.user_id, password[:256], ip)
        if me.mfa:
            console.users.login_totp(me.user_id, code, ip)
    except Throttled:
        raise
    except PermissionDenied as exc:
        return request.app.state.renderer.page(
            request,
            "reauth.html",
            status=401,
            next=safe_next(next),
            has_totp=me.mfa,
            error=f"{exc}.",
        )
    assert user.session is not None
    console.sessions.mark_reauth(user.session.session_hash)
    console.app.record(Tag.REAUTHENTICATED, actor=user.actor, subject=user.actor)
    return RedirectResponse(safe_next(next), status_code=303)


__all__ = ["CsrfFailed", "router"]
