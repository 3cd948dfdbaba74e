"""The delivery state machine of a notice: what one attempt's outcome does to it.

``sent``/``delivered`` settle it; ``failed`` retries on the same channel up to
``max_attempts`` times, then falls back to the next channel of the patient's plan, and
finally to the telephone call list; ``returned`` mail falls back at once. Attempts left
``sending`` by an outage or a crash are settled by asking the gateway (``lookup``) —
never by sending again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.incidents.models import Delivery, Notice
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.transports import SendResult, Transport

if TYPE_CHECKING:
    from datetime import datetime

    from phiguard.app import App


@dataclass
class DispatchResult:
    campaign_id: int
    sent: Counter[str] = field(default_factory=Counter)
    failed_attempts: Counter[str] = field(default_factory=Counter)
    fell_back: Counter[str] = field(default_factory=Counter)
    reconciled: int = 0
    resent_after_loss: int = 0
    interrupted: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "sent": dict(self.sent),
            "failed_attempts": dict(self.failed_attempts),
            "fell_back": dict(self.fell_back),
            "reconciled": self.reconciled,
            "resent_after_loss": self.resent_after_loss,
            "interrupted": self.interrupted,
        }


def next_state(
    plan: str, step: int, channel: str, attempts: int, outcome: str, max_attempts: int
) -> tuple[str, int, str, int]:
    """(state, step, channel, attempts) after one attempt's ``outcome``."""
    if outcome in ("sent", "delivered"):
        return outcome, step, channel, attempts
    chain = plan.split(",")
    if outcome != "returned" and attempts < max_attempts:
        return "queued", step, channel, attempts
    if step + 1 < len(chain):
        return "queued", step + 1, chain[step + 1], 0
    if channel != "phone":
        return "queued", step + 1, "phone", 0  # the call list is the last resort
    return "unreachable", step, channel, attempts


def apply_results(
    s: Session,
    results: list[tuple[Notice, Delivery, SendResult]],
    max_attempts: int,
    now: datetime,
    out: DispatchResult,
) -> None:
    for notice, delivery, res in results:
        delivery.state, delivery.updated_at = res.state, now
        delivery.transport_ref, delivery.error = res.transport_ref[:200], res.error[:500]
        before = notice.channel
        attempts = notice.attempts + (0 if res.state in ("sent", "delivered") else 1)
        st, step, ch, att = next_state(
            notice.plan, notice.step, notice.channel, attempts, res.state, max_attempts
        )
        if ch != before:
            out.fell_back[f"{before}->{ch}"] += 1
            if ch not in notice.plan.split(","):
                notice.plan = notice.plan + "," + ch
        notice.state, notice.step, notice.channel, notice.attempts, notice.updated_at = (
            st,
            step,
            ch,
            att,
            now,
        )
        (out.sent if res.state in ("sent", "delivered") else out.failed_attempts)[
            delivery.channel
        ] += 1


def reconcile(
    app: App,
    campaign_id: int,
    transports: Mapping[str, Transport],
    out: DispatchResult,
    cfg: IncidentSettings,
) -> None:
    """Settle attempts left ``sending`` by a crash or an outage, asking the gateway."""
    now = app.clock.now()
    with app.session() as s:
        pending = s.execute(
            select(Notice, Delivery)
            .join(Delivery, Delivery.notice_id == Notice.id)
            .where(Notice.campaign_id == campaign_id, Delivery.state == "sending")
        ).all()
        settled = []
        for notice, delivery in pending:
            transport = transports.get(delivery.channel)
            if transport is None:
                continue
            found = transport.lookup(delivery.message_id)
            if found is None:
                # Never reached the gateway: not an attempt at all. The row goes; the notice is
                # queued again and will be sent under the SAME idempotency key.
                s.execute(delete(Delivery).where(Delivery.id == delivery.id))
                notice.state, notice.updated_at = "queued", now
                out.resent_after_loss += 1
            else:
                settled.append((notice, delivery, found))
        apply_results(s, settled, cfg.max_attempts, now, out)
        out.reconciled += len(pending)


RECEIPT_STATES = ("delivered", "failed", "returned")


def record_receipt(
    app: App, message_id: str, state: str, *, actor: str, cfg: IncidentSettings | None = None
) -> dict[str, Any]:
    """A delivery receipt from a gateway, returned mail, or a call agent's outcome."""
    cfg = cfg or IncidentSettings()
    if state not in RECEIPT_STATES:
        raise UsageError(f"receipt state must be one of {', '.join(RECEIPT_STATES)}")
    now = app.clock.now()
    out = DispatchResult(0)
    with app.session() as s:
        d = s.scalars(select(Delivery).where(Delivery.message_id == message_id)).first()
        if d is None:
            raise NotFound(f"no delivery {message_id!r}")
        n = s.get(Notice, d.notice_id)
        assert n is not None
        if d.state in ("delivered", "returned") or n.channel != d.channel:
            raise Conflict(f"delivery {message_id} is already settled ({d.state})")
        apply_results(s, [(n, d, SendResult(message_id, state))], cfg.max_attempts, now, out)
        incident_id, new_state, channel = n.incident_id, n.state, n.channel
    app.record(
        Tag.NOTICE_RECEIPT, actor=actor, subject=incident_id, message_id=message_id, state=state
    )
    return {"message_id": message_id, "notice_state": new_state, "channel": channel}
