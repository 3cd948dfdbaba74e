"""Administration pages: console users and API tokens (admin role only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from phiguard.errors import Conflict, UsageError
from phiguard.web.auth.roles import TOKEN_SCOPES, Perm, Role
from phiguard.web.deps import ConsoleDep, Page, Principal

router = APIRouter(include_in_schema=False)
UsersAdmin = Annotated[Principal, Depends(Page(Perm.USERS_ADMIN))]
TokensAdmin = Annotated[Principal, Depends(Page(Perm.TOKENS_ADMIN))]


def _users(request: Request, console: ConsoleDep, status: int = 200, **ctx: object) -> Response:
    return request.app.state.renderer.page(
        request,
        "admin_users.html",
        status=status,
        users=console.users.list(),
        roles=[r.value for r in Role],
        **ctx,
    )


@router.get("/admin/users")
def users(request: Request, console: ConsoleDep, _: UsersAdmin) -> Response:
    return _users(request, console)


@router.post("/admin/users")
def create_user(
    request: Request,
    console: ConsoleDep,
    user: UsersAdmin,
    username: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
    display_name: Annotated[str, Form()] = "",
    account_id: Annotated[str, Form()] = "",
    totp: Annotated[str, Form()] = "",
) -> Response:
    try:
        enrolment = console.users.create(
            username,
            role,
            password[:256],
            actor=user.actor,
            display_name=display_name,
            with_totp=True if totp else None,
            account_id=account_id,
        )
    except (UsageError, Conflict) as exc:
        return _users(request, console, status=400, error=f"{exc}.")
    return _users(request, console, enrolment=enrolment if enrolment.totp_secret else None)


@router.post("/admin/users/{username}/status")
def set_status(
    request: Request,
    console: ConsoleDep,
    user: UsersAdmin,
    username: str,
    status: Annotated[str, Form()],
) -> Response:
    try:
        console.users.set_status(username, status, actor=user.actor)
    except (UsageError, Conflict) as exc:
        return _users(request, console, status=409, error=f"{exc}.")
    return RedirectResponse("/admin/users?msg=user-updated", status_code=303)


@router.post("/admin/users/{username}/mfa")
def reenrol(request: Request, console: ConsoleDep, user: UsersAdmin, username: str) -> Response:
    enrolment = console.users.enrol_totp(username, actor=user.actor)
    return _users(request, console, enrolment=enrolment)


def _tokens(request: Request, console: ConsoleDep, status: int = 200, **ctx: object) -> Response:
    return request.app.state.renderer.page(
        request,
        "admin_tokens.html",
        status=status,
        tokens=console.tokens.list(),
        scopes=sorted(p.value for p in TOKEN_SCOPES),
        **ctx,
    )


@router.get("/admin/tokens")
def tokens(request: Request, console: ConsoleDep, _: TokensAdmin) -> Response:
    return _tokens(request, console)


@router.post("/admin/tokens")
def create_token(
    request: Request,
    console: ConsoleDep,
    user: TokensAdmin,
    name: Annotated[str, Form()],
    scopes: Annotated[list[str], Form()] = [],  # noqa: B006
    days: Annotated[str, Form()] = "",
) -> Response:
    try:
        n_days = int(days) if days.strip() else None
        issued = console.tokens.create(name, ",".join(scopes), actor=user.actor, days=n_days)
    except ValueError:
        return _tokens(request, console, status=400, error="Days must be a whole number.")
    except UsageError as exc:
        return _tokens(request, console, status=400, error=f"{exc}.")
    return _tokens(request, console, issued=issued)


@router.post("/admin/tokens/{token_id}/rotate")
def rotate_token(
    request: Request, console: ConsoleDep, user: TokensAdmin, token_id: str
) -> Response:
    issued = console.tokens.rotate(token_id, actor=user.actor)
    return _tokens(request, console, issued=issued)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(console: ConsoleDep, user: TokensAdmin, token_id: str) -> Response:
    console.tokens.revoke(token_id, actor=user.actor)
    return RedirectResponse("/admin/tokens?msg=token-revoked", status_code=303)
