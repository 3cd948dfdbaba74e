"""Access requests, approvals and grants: the life of a time-limited, scoped grant.

request → (one or two approvals) → grant, active from the final approval for the requested
duration → expired / used (single-use) / revoked. Every step is a row in
``access_grant_events`` (the history certification reviews read) and an audit record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.access import common as c
from phiguard.access.approvals import required_approvals, self_approval
from phiguard.access.models import AccessRequest, Approval, GrantEvent, GrantTerms
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from phiguard.storage.models import Account, Grant, Vendor

if TYPE_CHECKING:
    from phiguard.app import App

LIVE = "active"


@dataclass(frozen=True)
class ApprovalOutcome:
    request: AccessRequest
    approvals: int
    grant: Grant | None


def request_access(
    app: App,
    *,
    account_id: str,
    cluster: str,
    fields: str | list[str],
    actions: str | list[str],
    max_rows: int,
    purpose: str,
    ticket: str,
    reason: str,
    duration: str | timedelta,
    single_use: bool = False,
    requested_by: str | None = None,
) -> AccessRequest:
    """File a request. Validates everything before writing; raises on the first problem."""
    settings = c.settings_of(app)
    now = app.clock.now()
    scope_cluster = c.parse_cluster(cluster)
    scope_fields = c.parse_fields(fields)
    if not scope_fields:
        raise UsageError("at least one field is needed (or * for all fields)")
    acts = c.parse_actions(actions)
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
        raise UsageError("max rows must be a whole number of at least 1")
    purpose_code = c.parse_purpose(purpose, settings)
    ticket = c.require_text(ticket, "a ticket or change reference")
    reason = c.require_text(reason, "a reason", min_len=10)
    delta = duration if isinstance(duration, timedelta) else c.parse_duration(duration)
    if delta <= timedelta(0):
        raise UsageError("duration must be longer than zero")
    if delta > timedelta(hours=settings.max_grant_hours):
        raise UsageError(
            f"duration {_human(delta)} exceeds the maximum of {settings.max_grant_hours:g} hours"
        )
    rule = required_approvals(
        actions=acts,
        fields=scope_fields,
        cluster=scope_cluster,
        max_rows=max_rows,
        settings=settings,
    )
    with app.session() as s:
        account = c.get_account(s, account_id)
        requester = account.account_id if requested_by is None else requested_by.strip()
        if requester != account.account_id:
            c.check_approver(s, requester, now=now)  # filing for someone else: staff only
        _require_usable(s, account, now)
        _refuse_overlap(s, account.account_id, scope_cluster, acts, purpose_code, now)
        req = AccessRequest(
            request_id=c.new_id("R"),
            account_id=account.account_id,
            requested_by=requester,
            scope_cluster=scope_cluster,
            scope_fields=",".join(scope_fields),
            actions=",".join(acts),
            max_rows=max_rows,
            purpose=purpose_code,
            ticket=ticket,
            reason=reason,
            duration_minutes=max(1, int(delta.total_seconds() // 60)),
            single_use=single_use,
            required_approvals=rule.required,
            status="pending",
            created_at=now,
            expires_at=now + timedelta(hours=settings.request_ttl_hours),
        )
        s.add(req)
        s.flush()
        c.history(
            s,
            kind="requested",
            account_id=req.account_id,
            actor=requester,
            ts=now,
            request_id=req.request_id,
            scope=_scope(req),
            required=rule.required,
            why_two=list(rule.why),
            ticket=ticket,
        )
        c.record(
            app,
            Tag.GRANT_REQUESTED,
            actor=requester,
            subject=req.account_id,
            request_id=req.request_id,
            required_approvals=rule.required,
            **_scope(req),
        )
    return req


def approve(app: App, request_id: str, approver: str, comment: str = "") -> ApprovalOutcome:
    now = app.clock.now()
    with app.session() as s:
        req = _pending(s, request_id, now)
        approver_acct = c.check_approver(s, approver, now=now)
        if self_approval(
            approver_acct.account_id, account_id=req.account_id, requested_by=req.requested_by
        ):
            raise PermissionDenied(
                "nobody approves their own request: "
                f"{approver_acct.account_id} is the requester or grantee"
            )
        done = _approvals(s, req.request_id)
        if approver_acct.account_id in done:
            raise Conflict(
                f"{approver_acct.account_id} has already approved {req.request_id}; "
                f"it needs {req.required_approvals} distinct approvers"
            )
        account = c.get_account(s, req.account_id)
        _require_usable(s, account, now)
        s.add(
            Approval(
                request_id=req.request_id,
                approver=approver_acct.account_id,
                verdict="approve",
                ts=now,
                comment=comment or "",
            )
        )
        done.append(approver_acct.account_id)
        c.history(
            s,
            kind="approved",
            account_id=req.account_id,
            actor=approver_acct.account_id,
            ts=now,
            request_id=req.request_id,
            count=len(done),
            required=req.required_approvals,
        )
        grant = None
        if len(done) >= req.required_approvals:
            grant = _make_grant(s, req, done, now)
            c.bump(s)
            c.record(
                app,
                Tag.GRANT_APPROVED,
                actor=approver_acct.account_id,
                subject=req.account_id,
                request_id=req.request_id,
                grant_id=grant.grant_id,
                approvers=done,
                valid_from=c.iso(grant.valid_from),
                valid_to=c.iso(grant.valid_to),
                single_use=req.single_use,
                **_scope(req),
            )
        else:
            c.record(
                app,
                Tag.REQUEST_APPROVAL_ADDED,
                actor=approver_acct.account_id,
                subject=req.account_id,
                request_id=req.request_id,
                count=len(done),
                required=req.required_approvals,
            )
        return ApprovalOutcome(req, len(done), grant)


def deny(
    app: App, request_id: str, approver: str, reason: str, *, revoke_existing: bool = True
) -> tuple[AccessRequest, list[str]]:
    """Deny a request. By default the account's live grants over the same scope are revoked
    too: a refused request is a signal, and the grant it would have widened should not
    outlive the refusal (Teleport users' "lock on deny")."""
    now = app.clock.now()
    reason = c.require_text(reason, "a reason")
    with app.session() as s:
        req = _pending(s, request_id, now)
        who = c.check_approver(s, approver, now=now)
        if self_approval(who.account_id, account_id=req.account_id, requested_by=req.requested_by):
            raise PermissionDenied("a requester cannot decide their own request (cancel it)")
        earlier = s.scalars(
            select(Approval).where(
                Approval.request_id == req.request_id, Approval.approver == who.account_id
            )
        ).first()
        if earlier is not None:  # an approver who changes their mind; history keeps both
            earlier.verdict, earlier.ts, earlier.comment = "deny", now, reason
        else:
            s.add(
                Approval(
                    request_id=req.request_id,
                    approver=who.account_id,
                    verdict="deny",
                    ts=now,
                    comment=reason,
                )
            )
        req.status, req.decided_at = "denied", now
        c.history(
            s,
            kind="denied",
            account_id=req.account_id,
            actor=who.account_id,
            ts=now,
            request_id=req.request_id,
            reason=reason,
        )
        revoked: list[str] = []
        if revoke_existing:
            for g in live_grants(s, req.account_id):
                if g.scope_cluster in (req.scope_cluster, "ALL") or req.scope_cluster == "ALL":
                    end_grant(
                        app,
                        s,
                        g,
                        status="revoked",
                        actor=who.account_id,
                        now=now,
                        reason=f"request {req.request_id} was denied: {reason}",
                    )
                    revoked.append(g.grant_id)
        c.bump(s)
        c.record(
            app,
            Tag.GRANT_DENIED,
            actor=who.account_id,
            subject=req.account_id,
            request_id=req.request_id,
            reason=reason,
            revoked=revoked,
        )
        return req, revoked


def cancel(app: App, request_id: str, actor: str) -> AccessRequest:
    now = app.clock.now()
    with app.session() as s:
        req = _pending(s, request_id, now)
        if actor not in (req.account_id, req.requested_by):
            c.check_approver(s, actor, now=now)
        req.status, req.decided_at = "cancelled", now
        c.history(
            s,
            kind="cancelled",
            account_id=req.account_id,
            actor=actor,
            ts=now,
            request_id=req.request_id,
        )
        c.record(
            app,
            Tag.REQUEST_CANCELLED,
            actor=actor,
            subject=req.account_id,
            request_id=req.request_id,
        )
        return req


def revoke(app: App, grant_id: str, actor: str, reason: str) -> Grant:
    """Revoke a grant. Staff may revoke any grant; a contractor may give up their own."""
    now = app.clock.now()
    reason = c.require_text(reason, "a reason")
    with app.session() as s:
        grant = s.get(Grant, (grant_id or "").strip())
        if grant is None:
            raise NotFound(f"unknown grant {grant_id!r}")
        if actor != grant.account_id:
            c.check_approver(s, actor, now=now)
        if grant.status != LIVE:
            raise Conflict(f"grant {grant.grant_id} is already {grant.status}")
        end_grant(app, s, grant, status="revoked", actor=actor, now=now, reason=reason)
        c.bump(s)
        return grant


def end_grant(
    app: App,
    s: Session,
    grant: Grant,
    *,
    status: str,
    actor: str,
    now: datetime,
    reason: str,
    tag: str = Tag.GRANT_REVOKED,
) -> None:
    """Close a live grant (revoked, expired or used) with its history row and audit record.

    Callers bump the access version once per transaction.
    """
    grant.status = status
    terms = s.get(GrantTerms, grant.grant_id)
    if terms is None:
        terms = GrantTerms(grant_id=grant.grant_id, single_use=False)
        s.add(terms)
    terms.ended_at, terms.ended_by, terms.end_reason = now, actor, reason
    if status == "used":
        terms.used_at = now
    c.history(
        s,
        kind=status,
        account_id=grant.account_id,
        actor=actor,
        ts=now,
        grant_id=grant.grant_id,
        reason=reason,
    )
    c.record(
        app, tag, actor=actor, subject=grant.account_id, grant_id=grant.grant_id, reason=reason
    )


def live_grants(s: Session, account_id: str | None = None) -> list[Grant]:
    q = select(Grant).where(Grant.status == LIVE)
    if account_id is not None:
        q = q.where(Grant.account_id == account_id)
    return list(s.scalars(q.order_by(Grant.grant_id)))


def list_grants(
    app: App,
    *,
    account_id: str | None = None,
    status: str | None = None,
    vendor_id: str | None = None,
) -> list[dict[str, Any]]:
    now = app.clock.now()
    with app.session() as s:
        q = select(Grant, GrantTerms).outerjoin(GrantTerms, GrantTerms.grant_id == Grant.grant_id)
        if account_id:
            q = q.where(Grant.account_id == account_id)
        if vendor_id:
            q = q.join(Account, Account.account_id == Grant.account_id).where(
                Account.employer == vendor_id
            )
        rows = []
        for g, t in s.execute(q.order_by(Grant.valid_from, Grant.grant_id)):
            shown = effective_status(g, now)
            if status and shown != status:
                continue
            rows.append(grant_dict(g, t, now))
        return rows


def list_requests(
    app: App, *, account_id: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    with app.session() as s:
        q = select(AccessRequest)
        if account_id:
            q = q.where(AccessRequest.account_id == account_id)
        if status:
            q = q.where(AccessRequest.status == status)
        out = []
        for r in s.scalars(q.order_by(AccessRequest.created_at, AccessRequest.request_id)):
            out.append(
                {
                    "request_id": r.request_id,
                    "account_id": r.account_id,
                    "requested_by": r.requested_by,
                    "status": r.status,
                    **_scope(r),
                    "duration_minutes": r.duration_minutes,
                    "single_use": r.single_use,
                    "required_approvals": r.required_approvals,
                    "approvals": _approvals(s, r.request_id),
                    "ticket": r.ticket,
                    "created_at": c.iso(r.created_at),
                    "expires_at": c.iso(r.expires_at),
                    "grant_id": r.grant_id,
                }
            )
        return out


def grant_history(app: App, grant_or_request: str) -> list[dict[str, Any]]:
    key = (grant_or_request or "").strip()
    with app.session() as s:
        grant = s.get(Grant, key)
        request_id = None
        if grant is not None:
            terms = s.get(GrantTerms, key)
            request_id = terms.request_id if terms else None
        elif s.get(AccessRequest, key) is not None:
            request_id = key
        else:
            raise NotFound(f"unknown grant or request {key!r}")
        cond = GrantEvent.grant_id == key
        if request_id:
            cond = cond | (GrantEvent.request_id == request_id)
        events = s.scalars(select(GrantEvent).where(cond).order_by(GrantEvent.ts, GrantEvent.id))
        return [
            {
                "ts": c.iso(e.ts),
                "kind": e.kind,
                "actor": e.actor,
                "grant_id": e.grant_id,
                "request_id": e.request_id,
                **e.detail,
            }
            for e in events
        ]


def effective_status(g: Grant, now: datetime) -> str:
    if g.status == LIVE and now >= g.valid_to:
        return "expired"
    if g.status == LIVE and now < g.valid_from:
        return "scheduled"
    return g.status


def grant_dict(g: Grant, t: GrantTerms | None, now: datetime) -> dict[str, Any]:
    return {
        "grant_id": g.grant_id,
        "account_id": g.account_id,
        "status": effective_status(g, now),
        "scope_cluster": g.scope_cluster,
        "scope_fields": g.scope_fields,
        "actions": g.actions,
        "max_rows": g.max_rows,
        "purpose": g.purpose,
        "valid_from": c.iso(g.valid_from),
        "valid_to": c.iso(g.valid_to),
        "approved_by": g.approved_by,
        "origin": g.origin,
        "single_use": bool(t and t.single_use),
        "request_id": t.request_id if t else None,
        "end_reason": t.end_reason if t else None,
    }


# -- internals ------------------------------------------------------------------------------
def _pending(s: Session, request_id: str, now: datetime) -> AccessRequest:
    req = s.get(AccessRequest, (request_id or "").strip())
    if req is None:
        raise NotFound(f"unknown request {request_id!r}")
    if req.status != "pending":
        raise Conflict(f"request {req.request_id} is {req.status}, not pending")
    if now >= req.expires_at:
        raise Conflict(
            f"request {req.request_id} expired at {c.iso(req.expires_at)} "
            "without enough approvals; file a new one"
        )
    return req


def _approvals(s: Session, request_id: str) -> list[str]:
    q = (
        select(Approval.approver)
        .where(Approval.request_id == request_id, Approval.verdict == "approve")
        .order_by(Approval.id)
    )
    return list(s.scalars(q))


def _require_usable(s: Session, account: Account, now: datetime) -> None:
    if account.status != "active":
        raise Conflict(f"account {account.account_id} is {account.status}")
    if not c.account_in_date(account, now):
        raise Conflict(f"account {account.account_id} is outside its validity dates")
    if account.employer != c.STAFF:
        vendor = s.get(Vendor, account.employer)
        if vendor is None:
            raise Conflict(
                f"account {account.account_id} belongs to unknown vendor {account.employer!r}"
            )
        if vendor.status != "active":
            raise Conflict(
                f"vendor {vendor.vendor_id} is {vendor.status}; no new access for its accounts"
            )


def _refuse_overlap(
    s: Session, account_id: str, cluster: str, actions: tuple[str, ...], purpose: str, now: datetime
) -> None:
    """One live grant or pending request per account, cluster, purpose and action: a second
    overlapping window would make expiry and review ambiguous."""
    wanted = set(actions)
    for g in live_grants(s, account_id):
        if (
            g.valid_to > now
            and g.purpose == purpose
            and (g.scope_cluster == cluster or "ALL" in (g.scope_cluster, cluster))
            and wanted & set(g.actions.split(","))
        ):
            raise Conflict(
                f"overlaps grant {g.grant_id} ({g.actions} on {g.scope_cluster} "
                f"until {c.iso(g.valid_to)}); revoke it first or wait for it to end"
            )
    q = select(AccessRequest).where(
        AccessRequest.account_id == account_id, AccessRequest.status == "pending"
    )
    for r in s.scalars(q):
        if (
            r.expires_at > now
            and r.purpose == purpose
            and (r.scope_cluster == cluster or "ALL" in (r.scope_cluster, cluster))
            and wanted & set(r.actions.split(","))
        ):
            raise Conflict(f"overlaps pending request {r.request_id}; cancel it first")


def _make_grant(s: Session, req: AccessRequest, approvers: list[str], now: datetime) -> Grant:
    joined = ",".join(approvers)
    grant = Grant(
        grant_id=c.new_id("G"),
        account_id=req.account_id,
        scope_cluster=req.scope_cluster,
        scope_fields=req.scope_fields,
        actions=req.actions,
        max_rows=req.max_rows,
        valid_from=now,
        valid_to=now + timedelta(minutes=req.duration_minutes),
        purpose=req.purpose,
        approved_by=joined if len(joined) <= 64 else approvers[-1],
        status=LIVE,
        origin="request",
    )
    s.add(grant)
    s.flush()
    s.add(GrantTerms(grant_id=grant.grant_id, request_id=req.request_id, single_use=req.single_use))
    req.status, req.decided_at, req.grant_id = "approved", now, grant.grant_id
    c.history(
        s,
        kind="granted",
        account_id=req.account_id,
        actor=approvers[-1],
        ts=now,
        grant_id=grant.grant_id,
        request_id=req.request_id,
        approvers=approvers,
        valid_from=c.iso(grant.valid_from),
        valid_to=c.iso(grant.valid_to),
        single_use=req.single_use,
    )
    return grant


def _scope(r: AccessRequest) -> dict[str, Any]:
    return {
        "scope_cluster": r.scope_cluster,
        "scope_fields": r.scope_fields,
        "actions": r.actions,
        "max_rows": r.max_rows,
        "purpose": r.purpose,
    }


def _human(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours:g} hours"
