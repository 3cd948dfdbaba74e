"""The user's own account: sessions (list, end), password, security keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from phiguard.errors import PermissionDenied, UsageError
from phiguard.web.auth.roles import MFA_REQUIRED
from phiguard.web.auth.webauthn_keys import parse_credential
from phiguard.web.deps import ConsoleDep, Page, Principal

router = APIRouter(include_in_schema=False)
AnyUser = Annotated[Principal, Depends(Page())]


def _page(
    request: Request, console: ConsoleDep, user: Principal, *, error: str = "", status: int = 200
) -> Response:
    me = console.users.by_id(user.user_id)
    assert user.session is not None
    return request.app.state.renderer.page(
        request,
        "account.html",
        status=status,
        me=me,
        sessions=console.sessions.list_for(user.user_id),
        current=user.session.public_id,
        keys=console.keys.list(user.user_id),
        mfa_required=me.role in MFA_REQUIRED,
        error=error,
    )


@router.get("/account")
def account(request: Request, console: ConsoleDep, user: AnyUser) -> Response:
    return _page(request, console, user)


@router.post("/account/sessions/{public_id}/revoke")
def revoke_session(console: ConsoleDep, user: AnyUser, public_id: str) -> Response:
    console.sessions.revoke(public_id, user_id=user.user_id, actor=user.actor)
    return RedirectResponse("/account?msg=session-revoked", status_code=303)


@router.post("/account/sessions/revoke-others")
def revoke_others(console: ConsoleDep, user: AnyUser) -> Response:
    assert user.session is not None
    console.sessions.revoke_all(user.user_id, actor=user.actor, keep=user.session.session_hash)
    return RedirectResponse("/account?msg=sessions-revoked", status_code=303)


@router.post("/account/password")
def change_password(
    request: Request,
    console: ConsoleDep,
    user: AnyUser,
    old: Annotated[str, Form()],
    new: Annotated[str, Form()],
) -> Response:
    try:
        console.users.change_password(user.user_id, old[:256], new[:256])
    except (PermissionDenied, UsageError) as exc:
        return _page(request, console, user, error=f"{exc}.", status=400)
    assert user.session is not None
    console.sessions.revoke_all(user.user_id, actor=user.actor, keep=user.session.session_hash)
    return RedirectResponse("/account?msg=password-changed", status_code=303)


@router.post("/account/keys/options")
def key_options(console: ConsoleDep, user: AnyUser) -> Response:
    assert user.session is not None
    body = console.keys.registration_options(user.session.session_hash, user.user_id)
    return Response(body, media_type="application/json")


@router.post("/account/keys")
async def key_register(request: Request, console: ConsoleDep, user: AnyUser) -> Response:
    assert user.session is not None
    payload = parse_credential((await request.body()).decode(errors="replace"))
    name = str(payload.pop("name", "security key"))
    console.keys.register(user.session.session_hash, user.user_id, payload, name)
    return JSONResponse({"ok": True})


@router.post("/account/keys/{key_id}/remove")
def key_remove(console: ConsoleDep, user: AnyUser, key_id: str) -> Response:
    console.keys.remove(user.user_id, key_id)
    return RedirectResponse("/account?msg=key-removed", status_code=303)
