"""Break-glass: time-boxed emergency access with a mandatory reason and a review deadline.

A session lets its account read, search and print (never export or update) within its
cluster (and, when named, one patient) until it ends, with at most
``PHIGUARD_ACCESS_BREAKGLASS_MAX_ROWS`` records per query. Every decision it allows carries
a ``break_glass`` obligation. Someone other than the account must review it within
``PHIGUARD_ACCESS_BREAKGLASS_REVIEW_HOURS`` (72 h by default); the sweep escalates sessions
whose review is overdue. Suspension, a disabled account or an expired contract still deny:
break-glass does not override a forbid.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from phiguard.access import common as c
from phiguard.access.models import BreakGlass
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from phiguard.storage.models import Patient, Vendor

if TYPE_CHECKING:
    from phiguard.app import App

OUTCOMES = ("justified", "unjustified")


def start(
    app: App,
    account_id: str,
    *,
    reason: str,
    patient_id: str | None = None,
    cluster: str | None = None,
    minutes: int | None = None,
) -> BreakGlass:
    settings = c.settings_of(app)
    reason = c.require_text(reason, "a reason", min_len=10)
    length = settings.breakglass_max_minutes if minutes is None else minutes
    if length < 1 or length > settings.breakglass_max_minutes:
        raise UsageError(
            f"a break-glass session lasts 1 to {settings.breakglass_max_minutes} minutes"
        )
    now = app.clock.now()
    with app.session() as s:
        account = c.get_account(s, account_id)
        if account.status != "active" or not c.account_in_date(account, now):
            raise Conflict(f"account {account.account_id} is not active")
        if account.employer != c.STAFF:
            vendor = s.get(Vendor, account.employer)
            if vendor is None or vendor.status != "active":
                raise Conflict(f"vendor {account.employer} is not active")
        scope = c.parse_cluster(cluster, required=False) if cluster else ""
        pid = (patient_id or "").strip() or None
        if pid is not None:
            patient = s.get(Patient, pid)
            if patient is None:
                raise NotFound(f"unknown patient {pid!r}")
            if scope and scope not in ("ALL", patient.cluster):
                raise UsageError(f"patient {pid} is in {patient.cluster}, not {scope}")
            scope = patient.cluster
        scope = scope or (account.cluster if account.cluster else "ALL")
        for other in s.scalars(
            select(BreakGlass).where(
                BreakGlass.account_id == account.account_id, BreakGlass.status == "active"
            )
        ):
            if other.ends_at > now:
                raise Conflict(
                    f"account {account.account_id} already has break-glass session "
                    f"{other.session_id} until {c.iso(other.ends_at)}"
                )
        bg = BreakGlass(
            session_id=c.new_id("BG"),
            account_id=account.account_id,
            patient_id=pid,
            cluster=scope,
            reason=reason,
            started_at=now,
            ends_at=now + timedelta(minutes=length),
            review_due=now + timedelta(hours=settings.breakglass_review_hours),
            status="active",
        )
        s.add(bg)
        c.bump(s)
        c.record(
            app,
            Tag.BREAK_GLASS,
            actor=account.account_id,
            subject=pid or scope,
            session_id=bg.session_id,
            cluster=scope,
            reason=reason,
            ends_at=c.iso(bg.ends_at),
            review_due=c.iso(bg.review_due),
        )
        return bg


def end(app: App, session_id: str, actor: str) -> BreakGlass:
    now = app.clock.now()
    with app.session() as s:
        bg = _get(s, session_id)
        if actor != bg.account_id:
            c.check_approver(s, actor, now=now)
        if bg.status != "active" or bg.ends_at <= now:
            raise Conflict(f"break-glass session {bg.session_id} has already ended")
        bg.status, bg.ended_at = "ended", now
        c.bump(s)
        c.record(
            app, Tag.BREAK_GLASS_ENDED, actor=actor, subject=bg.account_id, session_id=bg.session_id
        )
        return bg


def review(app: App, session_id: str, *, reviewer: str, outcome: str, note: str) -> BreakGlass:
    outcome = (outcome or "").strip().lower()
    if outcome not in OUTCOMES:
        raise UsageError(f"outcome must be one of {', '.join(OUTCOMES)}")
    note = c.require_text(note, "a review note")
    now = app.clock.now()
    with app.session() as s:
        bg = _get(s, session_id)
        who = c.check_approver(s, reviewer, now=now)
        if who.account_id == bg.account_id:
            raise PermissionDenied("nobody reviews their own break-glass session")
        if bg.reviewed_at is not None:
            raise Conflict(f"break-glass session {bg.session_id} was already reviewed")
        bg.reviewed_at, bg.reviewer, bg.outcome, bg.review_note = now, who.account_id, outcome, note
        if bg.status == "active":
            bg.status, bg.ended_at = "ended", min(now, bg.ends_at)
        c.bump(s)
        c.record(
            app,
            Tag.BREAK_GLASS_REVIEWED,
            actor=who.account_id,
            subject=bg.account_id,
            session_id=bg.session_id,
            outcome=outcome,
            overdue=now > bg.review_due,
        )
        return bg


def listing(app: App, *, overdue_only: bool = False) -> list[dict[str, Any]]:
    now = app.clock.now()
    with app.session() as s:
        out = []
        for bg in s.scalars(select(BreakGlass).order_by(BreakGlass.started_at)):
            d = as_dict(bg, now)
            if overdue_only and not d["review_overdue"]:
                continue
            out.append(d)
        return out


def as_dict(bg: BreakGlass, now: Any) -> dict[str, Any]:
    live = bg.status == "active" and now < bg.ends_at
    return {
        "session_id": bg.session_id,
        "account_id": bg.account_id,
        "patient_id": bg.patient_id,
        "cluster": bg.cluster,
        "reason": bg.reason,
        "started_at": c.iso(bg.started_at),
        "ends_at": c.iso(bg.ends_at),
        "active": live,
        "review_due": c.iso(bg.review_due),
        "reviewed": bg.reviewed_at is not None,
        "outcome": bg.outcome,
        "review_overdue": bg.reviewed_at is None and now >= bg.review_due,
        "escalated": bg.escalated_at is not None,
    }


def _get(s: Any, session_id: str) -> BreakGlass:
    bg = s.get(BreakGlass, (session_id or "").strip())
    if bg is None:
        raise NotFound(f"unknown break-glass session {session_id!r}")
    return bg
