"""``/v1`` endpoints of the console itself: health, who am I, users, API tokens, portal
tickets for the patients' app, and the public notice check."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Principal
from phiguard.web.routes import client_ip

router = APIRouter(prefix="/v1")

Responses = dict[int | str, dict[str, Any]]
E401: Responses = {401: {"description": "No valid token or session"}}
E403: Responses = {403: {"description": "Authenticated, but not allowed"}}
E404: Responses = {404: {"description": "No such object"}}
E409: Responses = {409: {"description": "Conflicts with the current state"}}
E400: Responses = {400: {"description": "Bad request"}}
E422: Responses = {422: {"description": "Invalid input"}}
AUTHED: Responses = {**E401, **E403}


class Health(BaseModel):
    status: str


class Me(BaseModel):
    kind: str
    name: str
    role: str | None
    permissions: list[str]


class UserOut(BaseModel):
    username: str
    display_name: str
    role: str
    status: str
    account_id: str | None
    mfa: bool
    security_keys: int
    created_at: datetime
    last_login_at: datetime | None


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    role: str = Field(max_length=32)
    password: str = Field(min_length=1, max_length=128)
    display_name: str = Field("", max_length=200)
    account_id: str | None = Field(None, max_length=64)


class UserCreated(BaseModel):
    user: UserOut
    totp_secret: str | None = Field(None, description="Shown once; enrol it in an app now.")
    otpauth_uri: str | None = None


class TokenOut(BaseModel):
    token_id: str
    name: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=20)
    days: int | None = Field(None, ge=1, le=3650)


class TokenIssued(BaseModel):
    token: TokenOut
    secret: str = Field(description="The bearer token; shown once.")


class TicketIn(BaseModel):
    patient_id: str = Field(min_length=1, max_length=64)


class TicketOut(BaseModel):
    ticket: str
    url: str
    expires_in: int


class VerifyIn(BaseModel):
    code: str = Field(max_length=64, description="The code printed on the notice")


class VerifyOut(BaseModel):
    genuine: bool
    status: str
    message: str


@router.get("/health", response_model=Health, tags=["system"])
def health() -> Health:
    """Liveness: answers without authentication and says nothing else."""
    return Health(status="ok")


@router.get("/me", response_model=Me, responses=E401, tags=["system"])
def me(user: Annotated[Principal, Depends(Api(Perm.DASHBOARD))]) -> Me:
    return Me(
        kind=user.kind,
        name=user.name,
        role=user.role,
        permissions=sorted(p.value for p in user.perms),
    )


@router.get("/users", response_model=list[UserOut], responses=AUTHED, tags=["admin"])
def list_users(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.USERS_ADMIN))]
) -> list[UserOut]:
    return [
        UserOut(**{k: getattr(u, k) for k in UserOut.model_fields}) for u in console.users.list()
    ]


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=201,
    responses={**AUTHED, **E400, **E409},
    tags=["admin"],
)
def create_user(
    console: ConsoleDep, body: UserIn, user: Annotated[Principal, Depends(Api(Perm.USERS_ADMIN))]
) -> UserCreated:
    e = console.users.create(
        body.username,
        body.role,
        body.password,
        actor=user.actor,
        display_name=body.display_name,
        account_id=body.account_id,
    )
    out = UserOut(**{k: getattr(e.user, k) for k in UserOut.model_fields})
    return UserCreated(user=out, totp_secret=e.totp_secret, otpauth_uri=e.otpauth_uri)


def _token_out(v: object) -> TokenOut:
    return TokenOut(**{k: getattr(v, k) for k in TokenOut.model_fields})


@router.get("/tokens", response_model=list[TokenOut], responses=AUTHED, tags=["admin"])
def list_tokens(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.TOKENS_ADMIN))]
) -> list[TokenOut]:
    return [_token_out(t) for t in console.tokens.list()]


@router.post(
    "/tokens",
    response_model=TokenIssued,
    status_code=201,
    responses={**AUTHED, **E400},
    tags=["admin"],
)
def create_token(
    console: ConsoleDep, body: TokenIn, user: Annotated[Principal, Depends(Api(Perm.TOKENS_ADMIN))]
) -> TokenIssued:
    issued = console.tokens.create(
        body.name, ",".join(body.scopes), actor=user.actor, days=body.days
    )
    return TokenIssued(token=_token_out(issued.view), secret=issued.secret)


@router.post(
    "/tokens/{token_id}/rotate",
    response_model=TokenIssued,
    responses={**AUTHED, **E404, **E409},
    tags=["admin"],
)
def rotate_token(
    console: ConsoleDep, token_id: str, user: Annotated[Principal, Depends(Api(Perm.TOKENS_ADMIN))]
) -> TokenIssued:
    issued = console.tokens.rotate(token_id, actor=user.actor)
    return TokenIssued(token=_token_out(issued.view), secret=issued.secret)


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenOut,
    responses={**AUTHED, **E404},
    tags=["admin"],
)
def revoke_token(
    console: ConsoleDep, token_id: str, user: Annotated[Principal, Depends(Api(Perm.TOKENS_ADMIN))]
) -> TokenOut:
    return _token_out(console.tokens.revoke(token_id, actor=user.actor))


@router.post(
    "/portal/tickets",
    response_model=TicketOut,
    status_code=201,
    responses={**AUTHED, **E404},
    tags=["patients"],
)
def portal_ticket(
    request: Request,
    console: ConsoleDep,
    body: TicketIn,
    client: Annotated[Principal, Depends(Api(Perm.PORTAL_TICKETS))],
) -> TicketOut:
    """For the patients' app: a one-time link that opens the patient portal for the patient
    the app has already authenticated."""
    ticket = console.portal.issue(body.patient_id, issued_by=client.name)
    base = str(request.base_url).rstrip("/")
    return TicketOut(
        ticket=ticket,
        url=f"{base}/portal/enter?ticket={ticket}",
        expires_in=console.web.portal_ticket_minutes * 60,
    )


@router.post(
    "/notices/verify",
    response_model=VerifyOut,
    responses={429: {"description": "Too many checks from this address"}},
    tags=["public"],
)
def verify_notice(request: Request, console: ConsoleDep, body: VerifyIn) -> VerifyOut:
    """Public: is this notice code genuine? Reveals nothing else. Rate-limited."""
    from fastapi.responses import JSONResponse

    from phiguard.incidents import verification

    result = verification.check(console.app, body.code, client=client_ip(request))
    payload = result.as_dict(_incident_settings())
    if result.status == "rate_limited":
        return JSONResponse(payload, status_code=429)  # type: ignore[return-value]
    return VerifyOut(**payload)


def _incident_settings():
    from phiguard.incidents.settings import IncidentSettings

    return IncidentSettings()
