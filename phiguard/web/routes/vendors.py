"""Vendors, grants and access reviews (pages). Calls :mod:`phiguard.access` services;
approvals and reviews are made as the console user's linked hospital account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from phiguard.access import grants as grants_svc
from phiguard.access import reviews as reviews_svc
from phiguard.access import vendors as vendors_svc
from phiguard.errors import PermissionDenied
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import ConsoleDep, Page, Principal

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(Page(Perm.VENDORS_READ))]
Suspender = Annotated[Principal, Depends(Page(Perm.VENDORS_SUSPEND, recent=True))]
Resumer = Annotated[Principal, Depends(Page(Perm.VENDORS_SUSPEND))]
Requester = Annotated[Principal, Depends(Page(Perm.GRANTS_REQUEST))]
Approver = Annotated[Principal, Depends(Page(Perm.GRANTS_APPROVE))]
Reviewer = Annotated[Principal, Depends(Page(Perm.REVIEWS_WRITE))]


def hospital_account(console: ConsoleDep, user: Principal) -> str:
    """The hospital account a console user acts as for approvals and reviews."""
    me = console.users.by_id(user.user_id)
    if not me.account_id:
        raise PermissionDenied(
            "your console user is not linked to a hospital account; ask an administrator to set one"
        )
    return me.account_id


@router.get("/vendors")
def vendors(request: Request, console: ConsoleDep, _: Reader) -> Response:
    return request.app.state.renderer.page(
        request, "vendors.html", vendors=vendors_svc.list_vendors(console.app)
    )


@router.get("/vendors/{vendor_id}")
def vendor(request: Request, console: ConsoleDep, user: Reader, vendor_id: str) -> Response:
    summary = vendors_svc.vendor_summary(console.app, vendor_id)
    return request.app.state.renderer.page(
        request, "vendor.html", v=summary, can_suspend=user.can(Perm.VENDORS_SUSPEND)
    )


@router.post("/vendors/{vendor_id}/suspend")
def suspend(
    console: ConsoleDep,
    user: Suspender,
    vendor_id: str,
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    vendors_svc.suspend(console.app, vendor_id, reason=reason, actor=user.actor)
    return RedirectResponse(f"/vendors/{vendor_id}?msg=suspended", status_code=303)


@router.post("/vendors/{vendor_id}/resume")
def resume(
    console: ConsoleDep, user: Resumer, vendor_id: str, reason: Annotated[str, Form(max_length=500)]
) -> Response:
    vendors_svc.resume(console.app, vendor_id, reason=reason, actor=user.actor)
    return RedirectResponse(f"/vendors/{vendor_id}?msg=resumed", status_code=303)


@router.get("/grants")
def grants(request: Request, console: ConsoleDep, user: Reader, status: str = "") -> Response:
    app = console.app
    return request.app.state.renderer.page(
        request,
        "grants.html",
        pending=grants_svc.list_requests(app, status="pending"),
        grants=grants_svc.list_grants(app, status=status or None),
        status_filter=status,
        can_request=user.can(Perm.GRANTS_REQUEST),
        can_approve=user.can(Perm.GRANTS_APPROVE),
        me=console.users.by_id(user.user_id),
    )


@router.post("/grants/requests")
def request_grant(
    console: ConsoleDep,
    user: Requester,
    account_id: Annotated[str, Form(max_length=64)],
    cluster: Annotated[str, Form(max_length=8)],
    fields: Annotated[str, Form(max_length=300)],
    actions: Annotated[str, Form(max_length=100)],
    max_rows: Annotated[int, Form(ge=1)],
    purpose: Annotated[str, Form(max_length=16)],
    ticket: Annotated[str, Form(max_length=100)],
    reason: Annotated[str, Form(max_length=1000)],
    duration: Annotated[str, Form(max_length=16)],
    single_use: Annotated[str, Form()] = "",
) -> Response:
    grants_svc.request_access(
        console.app,
        account_id=account_id,
        cluster=cluster,
        fields=fields,
        actions=actions,
        max_rows=max_rows,
        purpose=purpose,
        ticket=ticket,
        reason=reason,
        duration=duration,
        single_use=bool(single_use),
        requested_by=hospital_account(console, user),
    )
    return RedirectResponse("/grants?msg=requested", status_code=303)


@router.post("/grants/requests/{request_id}/approve")
def approve(
    console: ConsoleDep,
    user: Approver,
    request_id: str,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    grants_svc.approve(console.app, request_id, hospital_account(console, user), comment)
    return RedirectResponse("/grants?msg=approved", status_code=303)


@router.post("/grants/requests/{request_id}/deny")
def deny(
    console: ConsoleDep,
    user: Approver,
    request_id: str,
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    grants_svc.deny(console.app, request_id, hospital_account(console, user), reason)
    return RedirectResponse("/grants?msg=revoked", status_code=303)


@router.post("/grants/{grant_id}/revoke")
def revoke(
    console: ConsoleDep, user: Approver, grant_id: str, reason: Annotated[str, Form(max_length=500)]
) -> Response:
    grants_svc.revoke(console.app, grant_id, user.actor, reason)
    return RedirectResponse("/grants?msg=revoked", status_code=303)


@router.get("/grants/{grant_id}/history")
def history(request: Request, console: ConsoleDep, _: Reader, grant_id: str) -> Response:
    return request.app.state.renderer.page(
        request,
        "grant_history.html",
        grant_id=grant_id,
        events=grants_svc.grant_history(console.app, grant_id),
    )


@router.get("/reviews")
def reviews(request: Request, console: ConsoleDep, user: Reader) -> Response:
    return request.app.state.renderer.page(
        request,
        "reviews.html",
        campaigns=reviews_svc.list_campaigns(console.app),
        can_review=user.can(Perm.REVIEWS_WRITE),
    )


@router.post("/reviews")
def start_review(
    console: ConsoleDep,
    user: Reviewer,
    name: Annotated[str, Form(max_length=200)],
    vendor_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    campaign = reviews_svc.start_campaign(
        console.app,
        name=name,
        owner=hospital_account(console, user),
        vendor_id=vendor_id.strip() or None,
    )
    cid = (
        campaign.get("campaign_id")
        if isinstance(campaign, dict)
        else getattr(campaign, "campaign_id", "")
    )
    return RedirectResponse(f"/reviews/{cid}" if cid else "/reviews", status_code=303)


@router.get("/reviews/{campaign_id}")
def review(request: Request, console: ConsoleDep, user: Reader, campaign_id: str) -> Response:
    return request.app.state.renderer.page(
        request,
        "review.html",
        c=reviews_svc.campaign_items(console.app, campaign_id),
        can_review=user.can(Perm.REVIEWS_WRITE),
    )


@router.post("/reviews/items/{item_id}/{verdict}")
def review_item(
    console: ConsoleDep,
    user: Reviewer,
    item_id: str,
    verdict: str,
    comment: Annotated[str, Form(max_length=500)] = "",
    campaign_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    reviewer = hospital_account(console, user)
    if verdict == "certify":
        reviews_svc.certify(console.app, item_id, reviewer=reviewer, comment=comment)
    elif verdict == "revoke":
        reviews_svc.revoke_item(
            console.app, item_id, reviewer=reviewer, comment=comment or "revoked in review"
        )
    else:
        from phiguard.errors import NotFound

        raise NotFound(f"no review action {verdict!r}")
    return RedirectResponse(
        f"/reviews/{campaign_id}?msg=saved" if campaign_id else "/reviews?msg=saved",
        status_code=303,
    )
