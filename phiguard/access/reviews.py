"""Access-review campaigns: the responsible manager certifies or revokes each contractor
grant; whatever is not certified by the deadline is revoked when the campaign closes (or by
the sweep once the deadline passes).

The reviewer of an item is the staff member who approved the grant (the last approver),
or the campaign owner when the grant was imported without a known approver. Nobody reviews
their own grant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.access import common as c
from phiguard.access.grants import end_grant
from phiguard.access.models import ReviewCampaign, ReviewItem
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from phiguard.storage.models import Account, Grant, Vendor

if TYPE_CHECKING:
    from phiguard.app import App


def start_campaign(
    app: App,
    *,
    name: str,
    owner: str,
    deadline: datetime | None = None,
    vendor_id: str | None = None,
) -> ReviewCampaign:
    settings = c.settings_of(app)
    name = c.require_text(name, "a campaign name")
    now = app.clock.now()
    deadline = deadline or now + timedelta(days=settings.review_default_days)
    if deadline <= now:
        raise UsageError("the deadline must be in the future")
    with app.session() as s:
        c.check_approver(s, owner, now=now)
        if vendor_id and s.get(Vendor, vendor_id) is None:
            raise NotFound(f"unknown vendor {vendor_id!r}")
        camp = ReviewCampaign(
            campaign_id=c.new_id("RC"),
            name=name,
            owner=owner,
            vendor_id=vendor_id or None,
            created_at=now,
            deadline=deadline,
            status="open",
        )
        s.add(camp)
        s.flush()
        q = (
            select(Grant)
            .join(Account, Account.account_id == Grant.account_id)
            .where(Grant.status == "active", Grant.valid_to > now, Account.employer != c.STAFF)
        )
        if vendor_id:
            q = q.where(Account.employer == vendor_id)
        n = 0
        for g in s.scalars(q.order_by(Grant.grant_id)):
            approvers = [a for a in (g.approved_by or "").split(",") if a]
            reviewer = approvers[-1] if approvers else owner
            if reviewer == g.account_id or s.get(Account, reviewer) is None:
                reviewer = owner
            s.add(
                ReviewItem(
                    item_id=f"{camp.campaign_id}:{g.grant_id}",
                    campaign_id=camp.campaign_id,
                    grant_id=g.grant_id,
                    account_id=g.account_id,
                    reviewer=reviewer,
                    decision="pending",
                )
            )
            n += 1
        c.record(
            app,
            Tag.REVIEW_STARTED,
            actor=owner,
            subject=camp.campaign_id,
            name=name,
            vendor_id=vendor_id,
            items=n,
            deadline=c.iso(deadline),
        )
        return camp


def certify(app: App, item_id: str, *, reviewer: str, comment: str = "") -> ReviewItem:
    return _decide(app, item_id, reviewer=reviewer, certify=True, comment=comment)


def revoke_item(app: App, item_id: str, *, reviewer: str, comment: str) -> ReviewItem:
    comment = c.require_text(comment, "a reason")
    return _decide(app, item_id, reviewer=reviewer, certify=False, comment=comment)


def close_campaign(
    app: App, campaign_id: str, *, actor: str, force: bool = False
) -> dict[str, Any]:
    """Close a campaign: every item still pending is revoked. Before the deadline only with
    ``force`` (the owner ends the campaign early)."""
    now = app.clock.now()
    with app.session() as s:
        camp = _campaign(s, campaign_id)
        if camp.status != "open":
            raise Conflict(f"campaign {camp.campaign_id} is already closed")
        if now < camp.deadline and not force:
            raise Conflict(
                f"campaign {camp.campaign_id} runs until {c.iso(camp.deadline)}; "
                "use --force to close it early"
            )
        return _close(app, s, camp, actor=actor, now=now)


def close_due(app: App, *, actor: str = "phiguard") -> list[dict[str, Any]]:
    now = app.clock.now()
    with app.session() as s:
        due = list(
            s.scalars(
                select(ReviewCampaign).where(
                    ReviewCampaign.status == "open", ReviewCampaign.deadline <= now
                )
            )
        )
        return [_close(app, s, camp, actor=actor, now=now) for camp in due]


def campaign_items(app: App, campaign_id: str) -> dict[str, Any]:
    with app.session() as s:
        camp = _campaign(s, campaign_id)
        items = list(
            s.scalars(
                select(ReviewItem)
                .where(ReviewItem.campaign_id == campaign_id)
                .order_by(ReviewItem.item_id)
            )
        )
        return {
            "campaign_id": camp.campaign_id,
            "name": camp.name,
            "owner": camp.owner,
            "vendor_id": camp.vendor_id,
            "deadline": c.iso(camp.deadline),
            "status": camp.status,
            "items": [
                {
                    "item_id": i.item_id,
                    "grant_id": i.grant_id,
                    "account_id": i.account_id,
                    "reviewer": i.reviewer,
                    "decision": i.decision,
                    "decided_by": i.decided_by,
                    "comment": i.comment,
                }
                for i in items
            ],
        }


def list_campaigns(app: App) -> list[dict[str, Any]]:
    with app.session() as s:
        return [
            {
                "campaign_id": k.campaign_id,
                "name": k.name,
                "owner": k.owner,
                "vendor_id": k.vendor_id,
                "deadline": c.iso(k.deadline),
                "status": k.status,
            }
            for k in s.scalars(select(ReviewCampaign).order_by(ReviewCampaign.created_at))
        ]


def _decide(app: App, item_id: str, *, reviewer: str, certify: bool, comment: str) -> ReviewItem:
    now = app.clock.now()
    with app.session() as s:
        item = s.get(ReviewItem, (item_id or "").strip())
        if item is None:
            raise NotFound(f"unknown review item {item_id!r}")
        camp = _campaign(s, item.campaign_id)
        who = c.check_approver(s, reviewer, now=now)
        if who.account_id == item.account_id:
            raise PermissionDenied("nobody reviews their own access")
        if who.account_id not in (item.reviewer, camp.owner):
            raise PermissionDenied(
                f"{who.account_id} is not the reviewer of {item.item_id} "
                f"({item.reviewer}) nor the campaign owner"
            )
        if camp.status != "open" or now >= camp.deadline:
            raise Conflict(f"campaign {camp.campaign_id} is past its deadline")
        if item.decision != "pending":
            raise Conflict(f"review item {item.item_id} is already {item.decision}")
        item.decided_at, item.decided_by, item.comment = now, who.account_id, comment
        grant = s.get(Grant, item.grant_id)
        if certify:
            item.decision = "certified"
            c.history(
                s,
                kind="certified",
                account_id=item.account_id,
                actor=who.account_id,
                ts=now,
                grant_id=item.grant_id,
                campaign_id=camp.campaign_id,
            )
            c.record(
                app,
                Tag.REVIEW_CERTIFIED,
                actor=who.account_id,
                subject=item.account_id,
                grant_id=item.grant_id,
                campaign_id=camp.campaign_id,
            )
        else:
            item.decision = "revoked"
            if grant is not None and grant.status == "active":
                end_grant(
                    app,
                    s,
                    grant,
                    status="revoked",
                    actor=who.account_id,
                    now=now,
                    reason=f"revoked in access review {camp.campaign_id}: {comment}",
                    tag=Tag.REVIEW_REVOKED,
                )
            c.bump(s)
        return item


def _close(app: App, s: Any, camp: ReviewCampaign, *, actor: str, now: datetime) -> dict[str, Any]:
    lapsed: list[str] = []
    for item in s.scalars(
        select(ReviewItem).where(
            ReviewItem.campaign_id == camp.campaign_id, ReviewItem.decision == "pending"
        )
    ):
        item.decision, item.decided_at, item.decided_by = "lapsed", now, actor
        grant = s.get(Grant, item.grant_id)
        if grant is not None and grant.status == "active":
            end_grant(
                app,
                s,
                grant,
                status="revoked",
                actor=actor,
                now=now,
                reason=f"not certified by the deadline of access review {camp.campaign_id}",
                tag=Tag.REVIEW_REVOKED,
            )
            lapsed.append(grant.grant_id)
    camp.status, camp.closed_at = "closed", now
    c.bump(s)
    c.record(app, Tag.REVIEW_CLOSED, actor=actor, subject=camp.campaign_id, revoked=lapsed)
    return {"campaign_id": camp.campaign_id, "revoked": lapsed}


def _campaign(s: Any, campaign_id: str) -> ReviewCampaign:
    camp = s.get(ReviewCampaign, (campaign_id or "").strip())
    if camp is None:
        raise NotFound(f"unknown review campaign {campaign_id!r}")
    return camp


__all__ = [
    "campaign_items",
    "certify",
    "close_campaign",
    "close_due",
    "list_campaigns",
    "revoke_item",
    "start_campaign",
]
