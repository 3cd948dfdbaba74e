"""``/v1`` access governance: the policy decision point, vendors, grants, requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from phiguard.access import grants as grants_svc
from phiguard.access import vendors as vendors_svc
from phiguard.web import fastdecide
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Principal
from phiguard.web.routes.api_core import AUTHED, E400, E404, E409, E422
from phiguard.web.routes.vendors import hospital_account

router = APIRouter(prefix="/v1")


class DecideIn(BaseModel):
    account: str = Field(min_length=1, max_length=64, description="account_id asking")
    action: str = Field(
        min_length=1, max_length=16, description="read, search, print, export, update"
    )
    patient: str | None = Field(None, max_length=64)
    cluster: str | None = Field(None, max_length=8)
    fields: list[str] | str | None = Field(None, description="fields to be returned")
    rows: int | None = Field(None, ge=0, le=100_000_000)
    purpose: str | None = Field(None, max_length=16, description="HL7 PurposeOfUse")
    at: str | None = Field(None, max_length=40, description="ISO-8601 time (default now)")


class DecideOut(BaseModel):
    decision: str = Field(description="allow or deny")
    reasons: list[str]
    obligations: list[Any]


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RequestIn(BaseModel):
    account_id: str = Field(min_length=1, max_length=64)
    cluster: str = Field(min_length=1, max_length=8)
    fields: str = Field(min_length=1, max_length=300)
    actions: str = Field(min_length=1, max_length=100)
    max_rows: int = Field(ge=1, le=100_000_000)
    purpose: str = Field(min_length=1, max_length=16)
    ticket: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=10, max_length=1000)
    duration: str = Field(min_length=1, max_length=16, description="e.g. 8h, 2d, 90m")
    single_use: bool = False


class CommentIn(BaseModel):
    comment: str = Field("", max_length=500)


@router.post(
    "/decide", response_model=DecideOut, responses={**AUTHED, **E400, **E422}, tags=["access"]
)
async def decide(
    console: ConsoleDep, body: DecideIn, _: Annotated[Principal, Depends(Api(Perm.DECIDE))]
) -> dict[str, Any]:
    """May this account do this action on this patient (fields, rows, purpose) now?
    Every decision is written to the audit log before it is answered."""
    # Token callers with a valid body are answered by phiguard.web.fastdecide before the
    # framework sees them; this route serves the rest (console sessions) the same way.
    return await fastdecide.answer(console.app, body.model_dump())


@router.get("/vendors", responses=AUTHED, tags=["access"])
def list_vendors(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.VENDORS_READ))]
) -> list[dict[str, Any]]:
    return vendors_svc.list_vendors(console.app)


@router.get("/vendors/{vendor_id}", responses={**AUTHED, **E404}, tags=["access"])
def get_vendor(
    console: ConsoleDep, vendor_id: str, _: Annotated[Principal, Depends(Api(Perm.VENDORS_READ))]
) -> dict[str, Any]:
    return vendors_svc.vendor_summary(console.app, vendor_id)


@router.post("/vendors/{vendor_id}/suspend", responses={**AUTHED, **E404, **E400}, tags=["access"])
def suspend_vendor(
    console: ConsoleDep,
    vendor_id: str,
    body: ReasonIn,
    user: Annotated[Principal, Depends(Api(Perm.VENDORS_SUSPEND, recent=True))],
) -> dict[str, Any]:
    """Kill switch: revoke every grant and disable every account of the vendor."""
    return vendors_svc.suspend(
        console.app, vendor_id, reason=body.reason, actor=user.actor
    ).as_dict()


@router.post(
    "/vendors/{vendor_id}/resume", responses={**AUTHED, **E404, **E409, **E400}, tags=["access"]
)
def resume_vendor(
    console: ConsoleDep,
    vendor_id: str,
    body: ReasonIn,
    user: Annotated[Principal, Depends(Api(Perm.VENDORS_SUSPEND))],
) -> dict[str, Any]:
    v = vendors_svc.resume(console.app, vendor_id, reason=body.reason, actor=user.actor)
    return {"vendor_id": v.vendor_id, "status": v.status}


@router.get("/grants", responses=AUTHED, tags=["access"])
def list_grants(
    console: ConsoleDep,
    _: Annotated[Principal, Depends(Api(Perm.VENDORS_READ))],
    account_id: str | None = None,
    status: str | None = None,
    vendor_id: str | None = None,
) -> list[dict[str, Any]]:
    return grants_svc.list_grants(
        console.app, account_id=account_id, status=status, vendor_id=vendor_id
    )


@router.get("/grants/requests", responses=AUTHED, tags=["access"])
def list_requests(
    console: ConsoleDep,
    _: Annotated[Principal, Depends(Api(Perm.VENDORS_READ))],
    status: str | None = None,
) -> list[dict[str, Any]]:
    return grants_svc.list_requests(console.app, status=status)


@router.post(
    "/grants/requests",
    status_code=201,
    responses={**AUTHED, **E400, **E404, **E409},
    tags=["access"],
)
def request_grant(
    console: ConsoleDep,
    body: RequestIn,
    user: Annotated[Principal, Depends(Api(Perm.GRANTS_REQUEST))],
) -> dict[str, Any]:
    req = grants_svc.request_access(
        console.app,
        account_id=body.account_id,
        cluster=body.cluster,
        fields=body.fields,
        actions=body.actions,
        max_rows=body.max_rows,
        purpose=body.purpose,
        ticket=body.ticket,
        reason=body.reason,
        duration=body.duration,
        single_use=body.single_use,
        requested_by=hospital_account(console, user),
    )
    return {
        "request_id": req.request_id,
        "status": req.status,
        "required_approvals": req.required_approvals,
    }


@router.post(
    "/grants/requests/{request_id}/approve", responses={**AUTHED, **E404, **E409}, tags=["access"]
)
def approve(
    console: ConsoleDep,
    request_id: str,
    body: CommentIn,
    user: Annotated[Principal, Depends(Api(Perm.GRANTS_APPROVE))],
) -> dict[str, Any]:
    """Approve; the grant starts when the last required approver (two-person rule) agrees."""
    out = grants_svc.approve(console.app, request_id, hospital_account(console, user), body.comment)
    return {
        "request_id": out.request.request_id,
        "approvals": out.approvals,
        "required_approvals": out.request.required_approvals,
        "grant_id": out.grant.grant_id if out.grant else None,
    }


@router.post(
    "/grants/requests/{request_id}/deny",
    responses={**AUTHED, **E404, **E409, **E400},
    tags=["access"],
)
def deny(
    console: ConsoleDep,
    request_id: str,
    body: ReasonIn,
    user: Annotated[Principal, Depends(Api(Perm.GRANTS_APPROVE))],
) -> dict[str, Any]:
    req, revoked = grants_svc.deny(
        console.app, request_id, hospital_account(console, user), body.reason
    )
    return {"request_id": req.request_id, "status": req.status, "grants_revoked": revoked}


@router.post(
    "/grants/{grant_id}/revoke", responses={**AUTHED, **E404, **E409, **E400}, tags=["access"]
)
def revoke(
    console: ConsoleDep,
    grant_id: str,
    body: ReasonIn,
    user: Annotated[Principal, Depends(Api(Perm.GRANTS_APPROVE))],
) -> dict[str, Any]:
    g = grants_svc.revoke(console.app, grant_id, user.actor, body.reason)
    return {"grant_id": g.grant_id, "status": g.status}
