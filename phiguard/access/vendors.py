"""Vendors, their data-processing contracts, and the kill switch.

``suspend`` is the one-command answer to "a contractor is leaking data": in one transaction
it marks the vendor suspended, revokes every live grant of every account of the vendor,
disables those accounts, cancels their pending requests and ends their break-glass
sessions, then writes one audit record per change. ``resume`` only lifts the vendor's
suspension: accounts stay disabled and grants stay revoked until someone re-enables and
re-requests them, so nothing comes back by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.access import common as c
from phiguard.access.grants import end_grant, live_grants
from phiguard.access.models import AccessRequest, BreakGlass, VendorEvent
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.storage.models import Account, Contract, Vendor

if TYPE_CHECKING:
    from phiguard.app import App


@dataclass
class SuspendResult:
    vendor_id: str
    grants_revoked: list[str] = field(default_factory=list)
    accounts_disabled: list[str] = field(default_factory=list)
    requests_cancelled: list[str] = field(default_factory=list)
    breakglass_ended: list[str] = field(default_factory=list)
    already_suspended: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "vendor_id": self.vendor_id,
            "grants_revoked": self.grants_revoked,
            "accounts_disabled": self.accounts_disabled,
            "requests_cancelled": self.requests_cancelled,
            "breakglass_ended": self.breakglass_ended,
            "already_suspended": self.already_suspended,
        }


def register_vendor(app: App, vendor_id: str, name: str, actor: str) -> Vendor:
    vendor_id = c.check_id(vendor_id, "vendor id")
    if vendor_id == c.STAFF:
        raise UsageError("HA is the hospital itself, not a vendor")
    name = c.require_text(name, "a vendor name")
    with app.session() as s:
        if s.get(Vendor, vendor_id) is not None:
            raise Conflict(f"vendor {vendor_id} already exists")
        vendor = Vendor(
            vendor_id=vendor_id,
            name=name,
            dpa_signed=False,
            status="active",
            row_mac=app.blind.digest("vendor-row", f"{vendor_id}\x00{name}"),
        )
        s.add(vendor)
        s.flush()
        s.add(
            VendorEvent(
                vendor_id=vendor_id,
                ts=app.clock.now(),
                kind="registered",
                actor=actor,
                reason="",
                detail={},
            )
        )
        c.bump(s)
        c.record(app, Tag.VENDOR_REGISTERED, actor=actor, subject=vendor_id)
        return vendor


def record_contract(
    app: App,
    vendor_id: str,
    *,
    contract_id: str,
    start: date,
    end: date | None,
    dpa_signed: bool,
    actor: str,
) -> Contract:
    """Add a contract or change an existing one. Windows of one vendor's contracts may not
    overlap: a renewal starts after the previous contract ends."""
    contract_id = c.check_id(contract_id, "contract id")
    if end is not None and end < start:
        raise UsageError(f"contract end {end} is before its start {start}")
    now = app.clock.now()
    with app.session() as s:
        vendor = _vendor(s, vendor_id)
        for other in s.scalars(select(Contract).where(Contract.vendor_id == vendor.vendor_id)):
            if other.contract_id == contract_id:
                continue
            if _overlap(start, end, other.start, other.end):
                raise Conflict(
                    f"contract {contract_id} overlaps contract {other.contract_id} "
                    f"({other.start} to {other.end or 'open'})"
                )
        contract = s.get(Contract, contract_id)
        if contract is not None and contract.vendor_id != vendor.vendor_id:
            raise Conflict(f"contract {contract_id} belongs to vendor {contract.vendor_id}")
        if contract is None:
            contract = Contract(
                contract_id=contract_id,
                vendor_id=vendor.vendor_id,
                start=start,
                end=end,
                dpa_signed=dpa_signed,
            )
            s.add(contract)
            s.flush()
        else:
            contract.start, contract.end, contract.dpa_signed = start, end, dpa_signed
        if dpa_signed:
            vendor.dpa_signed = True
        s.add(
            VendorEvent(
                vendor_id=vendor.vendor_id,
                ts=now,
                kind="contract",
                actor=actor,
                reason="",
                detail={
                    "contract_id": contract_id,
                    "start": str(start),
                    "end": str(end) if end else None,
                    "dpa_signed": dpa_signed,
                },
            )
        )
        c.bump(s)
        c.record(
            app,
            Tag.CONTRACT_RECORDED,
            actor=actor,
            subject=vendor.vendor_id,
            contract_id=contract_id,
            start=str(start),
            end=str(end) if end else None,
            dpa_signed=dpa_signed,
        )
        return contract


def suspend(app: App, vendor_id: str, *, reason: str, actor: str) -> SuspendResult:
    reason = c.require_text(reason, "a reason")
    now = app.clock.now()
    with app.session() as s:
        vendor = _vendor(s, vendor_id)
        result = SuspendResult(vendor.vendor_id, already_suspended=vendor.status == "suspended")
        vendor.status = "suspended"
        accounts = list(
            s.scalars(
                select(Account)
                .where(Account.employer == vendor.vendor_id)
                .order_by(Account.account_id)
            )
        )
        why = f"vendor {vendor.vendor_id} suspended: {reason}"
        for account in accounts:
            for g in live_grants(s, account.account_id):
                end_grant(app, s, g, status="revoked", actor=actor, now=now, reason=why)
                result.grants_revoked.append(g.grant_id)
            q = select(AccessRequest).where(
                AccessRequest.account_id == account.account_id, AccessRequest.status == "pending"
            )
            for req in s.scalars(q):
                req.status, req.decided_at = "cancelled", now
                c.history(
                    s,
                    kind="cancelled",
                    account_id=account.account_id,
                    actor=actor,
                    ts=now,
                    request_id=req.request_id,
                    reason=why,
                )
                result.requests_cancelled.append(req.request_id)
            q2 = select(BreakGlass).where(
                BreakGlass.account_id == account.account_id, BreakGlass.status == "active"
            )
            for bg in s.scalars(q2):
                bg.status, bg.ended_at = "ended", now
                result.breakglass_ended.append(bg.session_id)
            if account.status != "disabled":
                account.status = "disabled"
                result.accounts_disabled.append(account.account_id)
                c.record(
                    app, Tag.ACCOUNT_DISABLED, actor=actor, subject=account.account_id, reason=why
                )
        s.add(
            VendorEvent(
                vendor_id=vendor.vendor_id,
                ts=now,
                kind="suspended",
                actor=actor,
                reason=reason,
                detail=result.as_dict(),
            )
        )
        c.bump(s)
        c.record(
            app,
            Tag.VENDOR_SUSPENDED,
            actor=actor,
            subject=vendor.vendor_id,
            reason=reason,
            grants_revoked=len(result.grants_revoked),
            accounts_disabled=len(result.accounts_disabled),
            requests_cancelled=len(result.requests_cancelled),
            breakglass_ended=len(result.breakglass_ended),
        )
    return result


def resume(app: App, vendor_id: str, *, reason: str, actor: str) -> Vendor:
    reason = c.require_text(reason, "a reason")
    with app.session() as s:
        vendor = _vendor(s, vendor_id)
        if vendor.status != "suspended":
            raise Conflict(f"vendor {vendor.vendor_id} is {vendor.status}, not suspended")
        vendor.status = "active"
        s.add(
            VendorEvent(
                vendor_id=vendor.vendor_id,
                ts=app.clock.now(),
                kind="resumed",
                actor=actor,
                reason=reason,
                detail={},
            )
        )
        c.bump(s)
        c.record(
            app,
            Tag.VENDOR_RESUMED,
            actor=actor,
            subject=vendor.vendor_id,
            reason=reason,
            restored="nothing: accounts stay disabled, grants stay revoked",
        )
        return vendor


def enable_account(app: App, account_id: str, *, reason: str, actor: str) -> Account:
    """Re-enable one account disabled by a suspension; its vendor must be active again."""
    reason = c.require_text(reason, "a reason")
    now = app.clock.now()
    with app.session() as s:
        c.check_approver(s, actor, now=now)
        account = c.get_account(s, account_id)
        if account.status == "active":
            raise Conflict(f"account {account.account_id} is already active")
        if account.employer != c.STAFF:
            vendor = _vendor(s, account.employer)
            if vendor.status != "active":
                raise Conflict(f"vendor {vendor.vendor_id} is {vendor.status}; resume it first")
        account.status = "active"
        c.bump(s)
        c.record(app, Tag.ACCOUNT_ENABLED, actor=actor, subject=account.account_id, reason=reason)
        return account


def vendor_summary(app: App, vendor_id: str) -> dict[str, Any]:
    from phiguard.access.assessments import assessment_status
    from phiguard.access.grants import list_grants

    now = app.clock.now()
    with app.session() as s:
        vendor = _vendor(s, vendor_id)
        contracts = list(
            s.scalars(
                select(Contract)
                .where(Contract.vendor_id == vendor.vendor_id)
                .order_by(Contract.start)
            )
        )
        accounts = list(
            s.scalars(
                select(Account)
                .where(Account.employer == vendor.vendor_id)
                .order_by(Account.account_id)
            )
        )
        events = list(
            s.scalars(
                select(VendorEvent)
                .where(VendorEvent.vendor_id == vendor_id)
                .order_by(VendorEvent.ts, VendorEvent.id)
            )
        )
        summary: dict[str, Any] = {
            "vendor_id": vendor.vendor_id,
            "name": vendor.name,
            "status": vendor.status,
            "dpa_signed": vendor.dpa_signed,
            "contracts": [
                {
                    "contract_id": k.contract_id,
                    "start": str(k.start),
                    "end": str(k.end) if k.end else None,
                    "dpa_signed": k.dpa_signed,
                    "current": k.start <= c.hk_date(now)
                    and (k.end is None or c.hk_date(now) <= k.end),
                }
                for k in contracts
            ],
            "accounts": [
                {"account_id": a.account_id, "role": a.role, "status": a.status} for a in accounts
            ],
            "events": [
                {"ts": c.iso(e.ts), "kind": e.kind, "actor": e.actor, "reason": e.reason}
                for e in events
            ],
        }
    summary["assessment"] = assessment_status(app, vendor_id)
    summary["grants"] = list_grants(app, vendor_id=vendor_id)
    return summary


def list_vendors(app: App) -> list[dict[str, Any]]:
    today = c.hk_date(app.clock.now())
    with app.session() as s:
        out = []
        for v in s.scalars(select(Vendor).order_by(Vendor.vendor_id)):
            contracts = list(s.scalars(select(Contract).where(Contract.vendor_id == v.vendor_id)))
            current = [
                k for k in contracts if k.start <= today and (k.end is None or today <= k.end)
            ]
            n_accounts = len(
                list(s.scalars(select(Account.account_id).where(Account.employer == v.vendor_id)))
            )
            out.append(
                {
                    "vendor_id": v.vendor_id,
                    "name": v.name,
                    "status": v.status,
                    "contract_end": str(current[0].end) if current and current[0].end else None,
                    "under_contract": bool(current),
                    "accounts": n_accounts,
                }
            )
        return out


def _vendor(s: Any, vendor_id: str) -> Vendor:
    vendor = s.get(Vendor, (vendor_id or "").strip())
    if vendor is None:
        raise NotFound(f"unknown vendor {vendor_id!r}")
    return vendor


def _overlap(a0: date, a1: date | None, b0: date, b1: date | None) -> bool:
    return (a1 is None or b0 <= a1) and (b1 is None or a0 <= b1)
