"""Patient notification campaigns: choose channels, queue notices, dispatch with retries and
fallback, resume after an outage without sending anything twice.

Channels per patient, in order: ``app`` (push, if registered), ``sms`` (if a mobile is on
file), ``post`` (if an address is on file), ``phone`` (the call list). A patient reachable by
none of them goes straight to the call list — staff trace and call them — rather than being
dropped. A patient already holding a notice on one of the requested channels is skipped, so
running ``notify`` twice never notifies twice.

Delivery of one notice is a sequence of attempts (``notice_deliveries``), each with an
idempotency key ``REF:channel:attempt``. Before a batch is handed to a transport the
attempts are committed as ``sending``; after, their results. If the process or the gateway
dies in between, the next run asks the gateway (``lookup``) about every ``sending`` attempt
and records what it says — a message the gateway already has is never sent again. A
failed attempt is retried up to ``max_attempts`` times, then the notice falls back to the
next channel of its plan, and finally to the call list. ``post`` notices wait for the
letters run (:mod:`.letters`); ``phone`` notices wait for a call agent's outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.incidents import playbook, wording
from phiguard.incidents.cases import affected_count, fields_exposed, get, log
from phiguard.incidents.delivery import (  # record_receipt: callers use it from here
    DispatchResult,
    next_state,
    reconcile,
    record_receipt,
)
from phiguard.incidents.models import AffectedPatient, Campaign, Delivery, Notice
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.transports import (
    Message,
    SendResult,
    Transport,
    TransportUnavailable,
    from_settings,
)
from phiguard.incidents.verification import CodeBook
from phiguard.storage.models import Patient

if TYPE_CHECKING:
    from phiguard.app import App

CHANNELS = wording.CHANNELS
PII = b"patient:pii"


_N = cast(Table, Notice.__table__)
_D = cast(Table, Delivery.__table__)


def parse_channels(text: str | Iterable[str] | None) -> tuple[str, ...]:
    items = [
        c.strip().lower() for c in (text.split(",") if isinstance(text, str) else text or CHANNELS)
    ]
    items = [c for c in items if c]
    bad = [c for c in items if c not in CHANNELS]
    if bad or not items:
        raise UsageError(
            f"unknown channel {bad[0]!r}"
            if bad
            else "no channel given" + f"; use {','.join(CHANNELS)}"
        )
    return tuple(c for c in CHANNELS if c in items)


def plan_for(
    app_registered: bool, has_phone: bool, has_address: bool, requested: tuple[str, ...]
) -> list[str] | None:
    """The ordered channels for one patient; ``["phone"]`` (call list) when nothing reaches
    them; ``None`` when only a channel outside this campaign would (they wait for it)."""
    reach = {"app": app_registered, "sms": has_phone, "post": has_address, "phone": has_phone}
    plan = [c for c in requested if reach[c]]
    if plan:
        return plan
    if not (app_registered or has_phone or has_address):
        return ["phone"]
    return None


@dataclass
class CampaignResult:
    campaign_id: int
    incident_id: str
    queued: dict[str, int]
    call_list: int
    deferred: int
    already_notified: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _renderer(
    s: Session, app: App, incident_id: str, cfg: IncidentSettings, channels: Iterable[str]
) -> wording.Renderer:
    inc = get(s, incident_id)
    ctx = wording.incident_context(s, inc, fields_exposed(s, incident_id), cfg, app.clock.now())
    return wording.Renderer(wording.load_templates(cfg), ctx, channels)


def create_campaign(
    app: App,
    incident_id: str,
    channels: str | Iterable[str] | None = None,
    *,
    actor: str,
    cfg: IncidentSettings | None = None,
) -> CampaignResult:
    cfg = cfg or IncidentSettings()
    requested = parse_channels(channels)
    now = app.clock.now()
    book = CodeBook(app)
    with app.session() as s:
        inc = get(s, incident_id)
        if inc.status == "closed":
            raise Conflict(f"{incident_id} is closed")
        if affected_count(s, incident_id) == 0:
            raise Conflict(
                f"{incident_id} has no affected patients; attach them first "
                f"(`phiguard incidents attach {incident_id} --scan SCAN.json`)"
            )
        _renderer(s, app, incident_id, cfg, {*requested, "phone"})  # refuse bad templates first
        earlier: dict[str, set[str]] = {}
        for pid, held, step in s.execute(
            select(Notice.patient_id, Notice.plan, Notice.step).where(
                Notice.incident_id == incident_id
            )
        ):
            # channels tried or in progress; a fallback not reached yet is not "held"
            earlier.setdefault(pid, set()).update(held.split(",")[: step + 1])
        rows = s.execute(
            select(
                Patient.patient_id,
                Patient.app_registered,
                Patient.has_phone,
                Patient.has_address,
            )
            .join(AffectedPatient, AffectedPatient.patient_id == Patient.patient_id)
            .where(AffectedPatient.incident_id == incident_id, Patient.is_canary.is_(False))
            .order_by(Patient.patient_id)
        ).all()
        camp = Campaign(
            incident_id=incident_id,
            created_at=now,
            created_by=actor,
            channels=",".join(requested),
            status="queued",
        )
        s.add(camp)
        s.flush()
        notices: list[dict[str, Any]] = []
        queued: Counter[str] = Counter()
        deferred = already = 0
        for pid, app_reg, has_phone, has_addr in rows:
            plan = plan_for(app_reg, has_phone, has_addr, requested)
            if plan is not None and earlier.get(pid, set()) & set(plan):
                already += 1  # holds a notice on a channel this campaign would use
                continue
            if plan is None:
                deferred += 1
                continue
            nonce, digest = book.issue()
            queued[plan[0]] += 1
            notices.append(
                {
                    "campaign_id": camp.id,
                    "incident_id": incident_id,
                    "patient_id": pid,
                    "ref": f"{incident_id}-C{camp.id}-{len(notices) + 1:06d}",
                    "plan": ",".join(plan),
                    "step": 0,
                    "channel": plan[0],
                    "state": "queued",
                    "attempts": 0,
                    "code_nonce": nonce,
                    "code_hash": digest,
                    "issued_at": now,
                    "updated_at": now,
                    "verified_count": 0,
                }
            )
        if not notices:  # nobody new to reach on these channels: no empty campaign
            s.delete(camp)
            return CampaignResult(0, incident_id, {}, 0, deferred, already)
        for i in range(0, len(notices), 5000):
            s.execute(insert(_N), notices[i : i + 5000])  # Core: no ORM bookkeeping
        log(
            s,
            incident_id,
            now,
            "notices",
            f"campaign {camp.id} by {actor}: {len(notices):,} notices queued "
            f"({', '.join(f'{c} {n:,}' for c, n in sorted(queued.items()))}); "
            f"{deferred:,} wait for another channel, {already:,} already notified",
            actor,
        )
    app.record(
        Tag.NOTICES_QUEUED,
        actor=actor,
        subject=incident_id,
        campaign=camp.id,
        channels=list(requested),
        queued=dict(queued),
        deferred=deferred,
    )
    return CampaignResult(
        camp.id, incident_id, dict(queued), queued.get("phone", 0), deferred, already
    )


# -- dispatch ------------------------------------------------------------------------------
def _campaign(s: Session, campaign_id: int) -> Campaign:
    camp = s.get(Campaign, campaign_id)
    if camp is None:
        raise NotFound(f"no notice campaign {campaign_id}")
    return camp


def _phones(app: App, conn: Any, patient_ids: list[str]) -> dict[str, str]:
    """Mobile numbers for one batch, decrypted in memory for the gateway and dropped after."""
    tokens = conn.execute(
        select(Patient.patient_id, Patient.pii).where(Patient.patient_id.in_(patient_ids))
    ).all()
    decrypt = app.cipher.decrypt_json
    return {pid: decrypt(tok, PII).get("phone") or "" for pid, tok in tokens}


def dispatch(
    app: App,
    campaign_id: int,
    transports: Mapping[str, Transport],
    *,
    actor: str,
    cfg: IncidentSettings | None = None,
) -> DispatchResult:
    """Send every queued notice of the campaign whose channel has a transport."""
    cfg = cfg or IncidentSettings()
    out = DispatchResult(campaign_id)
    if not campaign_id:  # create_campaign found nobody new: nothing to send
        return out
    book = CodeBook(app)
    with app.session() as s:
        camp = _campaign(s, campaign_id)
        incident_id = camp.incident_id
        renderer = _renderer(
            s, app, incident_id, cfg, [c for c in transports if c in ("app", "sms")]
        )
        camp.status = "running"
    try:
        reconcile(app, campaign_id, transports, out, cfg)
        for channel, transport in transports.items():
            if channel not in ("app", "sms"):
                continue
            _dispatch_channel(app, campaign_id, channel, transport, renderer, book, cfg, out)
    except TransportUnavailable as exc:
        out.interrupted = str(exc)
    now = app.clock.now()
    with app.session() as s:
        camp = _campaign(s, campaign_id)
        left = (
            s.scalar(
                select(func.count())
                .select_from(Notice)
                .where(
                    Notice.campaign_id == campaign_id,
                    Notice.state.in_(("queued", "sending")),
                    Notice.channel.in_(("app", "sms")),
                )
            )
            or 0
        )
        camp.status = "interrupted" if out.interrupted else ("done" if not left else "queued")
        log(
            s,
            incident_id,
            now,
            "notices",
            f"campaign {campaign_id} dispatched by {actor}: {sum(out.sent.values()):,} sent"
            + (
                f"; interrupted ({out.interrupted}), resume with `incidents notify {incident_id}`"
                if out.interrupted
                else ""
            ),
            actor,
        )
        if not out.interrupted:
            playbook.auto_complete(s, incident_id, "notify.patients", at=now, by=actor)
    app.record(
        Tag.NOTICES_DISPATCHED,
        actor=actor,
        subject=incident_id,
        campaign=campaign_id,
        sent=dict(out.sent),
        failed=dict(out.failed_attempts),
        interrupted=bool(out.interrupted),
    )
    return out


_SET_NOTICE = (
    update(_N)
    .where(_N.c.id == bindparam("nid"))
    .values(
        state=bindparam("st"),
        step=bindparam("sp"),
        channel=bindparam("ch"),
        attempts=bindparam("at"),
        plan=bindparam("pl"),
        updated_at=bindparam("b_ts"),
    )
)
_SET_DELIVERY = (
    update(_D)
    .where(_D.c.message_id == bindparam("mid"))
    .values(
        state=bindparam("st"),
        updated_at=bindparam("b_ts"),
        transport_ref=bindparam("ref"),
        error=bindparam("err"),
    )
)


def _dispatch_channel(
    app: App,
    campaign_id: int,
    channel: str,
    transport: Transport,
    renderer: wording.Renderer,
    book: CodeBook,
    cfg: IncidentSettings,
    out: DispatchResult,
) -> None:
    # Core statements on one connection, several commits: a batch's attempts are durable as
    # "sending" before anything leaves (see _reconcile), their results right after. This is
    # the hot path of a 56,000-notice campaign, so it avoids ORM object bookkeeping.
    with app.engine.connect() as conn:
        while True:
            now = app.clock.now()
            batch = conn.execute(
                select(
                    _N.c.id,
                    _N.c.ref,
                    _N.c.patient_id,
                    _N.c.plan,
                    _N.c.step,
                    _N.c.attempts,
                    _N.c.code_nonce,
                )
                .where(
                    _N.c.campaign_id == campaign_id, _N.c.channel == channel, _N.c.state == "queued"
                )
                .order_by(_N.c.id)
                .limit(cfg.dispatch_batch)
            ).all()
            if not batch:
                return
            phones = _phones(app, conn, [r.patient_id for r in batch]) if channel == "sms" else {}
            mids = [f"{r.ref}:{channel}:{r.step}.{r.attempts + 1}" for r in batch]
            conn.execute(
                insert(_D),
                [
                    {
                        "notice_id": r.id,
                        "channel": channel,
                        "attempt": r.attempts + 1,
                        "message_id": mid,
                        "state": "sending",
                        "ts": now,
                        "updated_at": now,
                        "transport_ref": "",
                        "error": "",
                    }
                    for r, mid in zip(batch, mids, strict=True)
                ],
            )
            conn.execute(
                update(_N)
                .where(_N.c.id.in_([r.id for r in batch]))
                .values(state="sending", updated_at=now)
            )
            conn.commit()
            results: list[SendResult] = []
            down: TransportUnavailable | None = None
            for r, mid in zip(batch, mids, strict=True):
                code = book.code(r.code_nonce)
                if channel == "app":
                    title, body = renderer.app(code=code, ref=r.ref)
                    msg = Message(mid, "app", r.patient_id, body, subject=title)
                elif not phones.get(r.patient_id):
                    results.append(SendResult(mid, "failed", error="no mobile number"))
                    continue
                else:
                    msg = Message(
                        mid, "sms", phones[r.patient_id], renderer.sms(code=code, ref=r.ref)
                    )
                try:
                    results.append(transport.send(msg))
                except TransportUnavailable as exc:
                    down = exc
                    break
            now = app.clock.now()
            notice_rows, delivery_rows = [], []
            for r, res in zip(batch, results, strict=False):
                ok = res.state in ("sent", "delivered")
                attempts = r.attempts + (0 if ok else 1)
                st, step, ch, att = next_state(
                    r.plan, r.step, channel, attempts, res.state, cfg.max_attempts
                )
                plan = r.plan
                if ch != channel:
                    out.fell_back[f"{channel}->{ch}"] += 1
                    if ch not in plan.split(","):
                        plan = f"{plan},{ch}"
                (out.sent if ok else out.failed_attempts)[channel] += 1
                notice_rows.append(
                    {
                        "nid": r.id,
                        "st": st,
                        "sp": step,
                        "ch": ch,
                        "at": att,
                        "pl": plan,
                        "b_ts": now,
                    }
                )
                delivery_rows.append(
                    {
                        "mid": res.message_id,
                        "st": res.state,
                        "b_ts": now,
                        "ref": res.transport_ref[:200],
                        "err": res.error[:500],
                    }
                )
            if notice_rows:
                conn.execute(_SET_NOTICE, notice_rows)
                conn.execute(_SET_DELIVERY, delivery_rows)
            if down is not None:
                # The message in flight stays "sending" (the gateway may have it: the next run
                # asks); the ones after it never left: their attempts go, the notices requeue.
                rest = list(zip(batch, mids, strict=True))[len(results) + 1 :]
                if rest:
                    conn.execute(delete(_D).where(_D.c.message_id.in_([m for _, m in rest])))
                    conn.execute(
                        update(_N)
                        .where(_N.c.id.in_([r.id for r, _ in rest]))
                        .values(state="queued")
                    )
                conn.commit()
                raise down
            conn.commit()


# -- status ------------------------------------------------------------------------------
def status(app: App, incident_id: str) -> dict[str, Any]:
    with app.session() as s:
        get(s, incident_id)
        rows = s.execute(
            select(Notice.channel, Notice.state, func.count())
            .where(Notice.incident_id == incident_id)
            .group_by(Notice.channel, Notice.state)
        ).all()
        camps = s.scalars(
            select(Campaign).where(Campaign.incident_id == incident_id).order_by(Campaign.id)
        )
        by: dict[str, dict[str, int]] = {}
        for ch, st, n in rows:
            by.setdefault(ch, {})[st] = n
        return {
            "incident_id": incident_id,
            "by_channel": by,
            "campaigns": [
                {"campaign_id": c.id, "channels": c.channels, "status": c.status} for c in camps
            ],
        }


def open_campaigns(app: App, incident_id: str) -> list[int]:
    with app.session() as s:
        return list(
            s.scalars(
                select(Campaign.id)
                .where(Campaign.incident_id == incident_id, Campaign.status != "done")
                .order_by(Campaign.id)
            )
        )


def configured_transports(cfg: IncidentSettings, channels: Iterable[str]) -> dict[str, Transport]:
    """The push/SMS transports the settings describe (see :func:`transports.from_settings`)."""
    return from_settings(cfg, channels)


__all__ = [
    "CampaignResult",
    "DispatchResult",
    "configured_transports",
    "create_campaign",
    "dispatch",
    "open_campaigns",
    "parse_channels",
    "plan_for",
    "record_receipt",
    "status",
]
