"""The sweep: turns what time has already decided into recorded state.

Decisions never depend on the sweep — the decision point checks every window, contract,
training and assessment against the request's time itself — but the record should say
what happened, when it happened: grants whose window closed become ``expired``; grants of
accounts whose vendor's contract ended, whose training expired or whose vendor's assessment
lapsed are ``revoked`` with that reason; requests past their TTL expire; break-glass sessions
whose review is overdue are escalated; review campaigns past their deadline close.

Run it from cron or ``phiguard serve``'s scheduler: ``phiguard access sweep``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.access import common as c
from phiguard.access.assessments import assessment_holds_until, training_until
from phiguard.access.grants import end_grant, live_grants
from phiguard.access.models import AccessRequest, BreakGlass
from phiguard.access.reviews import close_due
from phiguard.audit.tags import Tag
from phiguard.storage.models import Account, Contract, Vendor

if TYPE_CHECKING:
    from phiguard.app import App

SYSTEM = "phiguard"


@dataclass
class SweepReport:
    expired: list[str] = field(default_factory=list)
    revoked: dict[str, str] = field(default_factory=dict)  # grant_id -> reason
    requests_expired: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    campaigns_closed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired": self.expired,
            "revoked": self.revoked,
            "requests_expired": self.requests_expired,
            "escalated": self.escalated,
            "campaigns_closed": self.campaigns_closed,
        }


def sweep(app: App) -> SweepReport:
    settings = c.settings_of(app)
    now = app.clock.now()
    report = SweepReport()
    with app.session() as s:
        for g in live_grants(s):
            if now >= g.valid_to:
                end_grant(
                    app,
                    s,
                    g,
                    status="expired",
                    actor=SYSTEM,
                    now=now,
                    reason="its window ended",
                    tag=Tag.GRANT_EXPIRED,
                )
                report.expired.append(g.grant_id)
                continue
            account = s.get(Account, g.account_id)
            why = None if account is None else _lapsed(s, account, now, settings)
            if account is None:
                why = "the account no longer exists"
            if why:
                end_grant(app, s, g, status="revoked", actor=SYSTEM, now=now, reason=why)
                report.revoked[g.grant_id] = why
        for req in s.scalars(
            select(AccessRequest).where(
                AccessRequest.status == "pending", AccessRequest.expires_at <= now
            )
        ):
            req.status, req.decided_at = "expired", now
            c.history(
                s,
                kind="request-expired",
                account_id=req.account_id,
                actor=SYSTEM,
                ts=now,
                request_id=req.request_id,
            )
            c.record(
                app,
                Tag.REQUEST_EXPIRED,
                actor=SYSTEM,
                subject=req.account_id,
                request_id=req.request_id,
            )
            report.requests_expired.append(req.request_id)
        for bg in s.scalars(
            select(BreakGlass).where(
                BreakGlass.reviewed_at.is_(None),
                BreakGlass.escalated_at.is_(None),
                BreakGlass.review_due <= now,
            )
        ):
            bg.escalated_at = now
            c.record(
                app,
                Tag.BREAK_GLASS_ESCALATED,
                actor=SYSTEM,
                subject=bg.account_id,
                session_id=bg.session_id,
                review_due=c.iso(bg.review_due),
            )
            report.escalated.append(bg.session_id)
        if report.expired or report.revoked:
            c.bump(s)
    report.campaigns_closed = close_due(app, actor=SYSTEM)
    return report


def _lapsed(s: Any, account: Account, now: Any, settings: Any) -> str | None:
    """Why a contractor's grants must go, or None.

    Only something that *ended* revokes (a contract, a training record, an assessment); a
    record that was never entered denies decisions but leaves the grants for the record
    keepers to complete, so a fresh import is not wiped before its training data arrives.
    """
    if account.employer == c.STAFF:
        return None
    vendor = s.get(Vendor, account.employer)
    if vendor is None:
        return f"vendor {account.employer} is unknown"
    contracts = list(s.scalars(select(Contract).where(Contract.vendor_id == vendor.vendor_id)))
    if not any(
        c.day_start(k.start) <= now and (k.end is None or now < c.day_end(k.end)) for k in contracts
    ):
        ended = [k.end for k in contracts if k.end is not None and c.day_end(k.end) <= now]
        if ended:
            return f"vendor {vendor.vendor_id}'s contract ended on {max(ended)}"
    if settings.require_training:
        until = training_until(s, account.account_id, settings)
        if until is not None and now >= until:
            return f"{account.account_id}'s privacy training expired on {c.iso(until)}"
    if settings.require_assessment:
        until = assessment_holds_until(s, vendor, settings)
        if until is not None and now >= until:
            return f"vendor {vendor.vendor_id}'s security assessment lapsed on {c.iso(until)}"
    return None
