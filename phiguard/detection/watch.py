"""``phiguard watch``: evaluate events as they are ingested; alert within seconds.

:class:`Watcher` wraps the :class:`~phiguard.detection.live.LiveEvaluator` with everything
around it: the recent hits of each account (so a rare hour seen ten minutes ago joins the bulk
export that follows), storage and merging into alerts, delivery to the sinks, containment on a
critical alert, and latency bookkeeping. :class:`StoreTail` feeds it from the event store:
the ingest writes Parquet parts and then moves ``store.json``'s ``applied`` mark, so every row
with a log index in ``[mark, applied)`` is new, durable, and read exactly once.

Anything that has events in hand (the ingest API inside ``phiguard serve``, a test, the demo)
can call :meth:`Watcher.feed` directly instead of tailing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.audit.tags import Tag
from phiguard.detection import alerts as store
from phiguard.detection.baselines import Baselines
from phiguard.detection.live import LiveEvaluator
from phiguard.detection.models import Alert
from phiguard.detection.rules import RANK, Hit
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.sinks import Sink, deliver, parse_sinks
from phiguard.detection.snapshot import Reference, from_app, to_us

if TYPE_CHECKING:
    from phiguard.app import App

log = logging.getLogger("phiguard.detection.watch")
ACTOR = "phiguard:watch"


# -- containment -----------------------------------------------------------------------------
def contain(app: App, alert: Alert, p: DetectionSettings, *, actor: str = ACTOR) -> str | None:
    """Suspend the account (or its vendor) behind a critical alert, per ``p.contain``.

    Uses the access part's kill switch (``phiguard.access.vendors.suspend``) for vendors, and
    disables the account and revokes its live grants otherwise. Returns what was done."""
    if p.contain == "off" or alert.severity != "critical" or not alert.account_id:
        return None
    reason = f"critical alert {alert.alert_id} ({alert.rule}) raised by phiguard watch"
    if p.contain == "vendor" and alert.vendor_id:
        from phiguard.access.vendors import suspend

        res = suspend(app, alert.vendor_id, reason=reason, actor=actor)
        done = (
            f"vendor {alert.vendor_id} already suspended"
            if res.already_suspended
            else f"vendor {alert.vendor_id} suspended: {len(res.accounts_disabled)} account(s) "
            f"disabled, {len(res.grants_revoked)} grant(s) revoked"
        )
    else:
        done = disable_account(app, alert.account_id, reason=reason, actor=actor)
    store.mark(app, alert.alert_id, contained=done[:80])
    alert.contained = done[:80]
    return done


def disable_account(app: App, account_id: str, *, reason: str, actor: str) -> str:
    from phiguard.storage.models import Account

    now = app.clock.now()
    revoked = 0
    with app.session() as s:
        account = s.get(Account, account_id)
        if account is None:
            return f"account {account_id} is not in the register: nothing to disable"
        if account.status == "disabled":
            return f"account {account_id} already disabled"
        account.status = "disabled"
        try:
            from phiguard.access import common as access_common
            from phiguard.access.grants import end_grant, live_grants
        except ImportError:  # the access part is optional
            pass
        else:
            for g in live_grants(s, account_id):
                end_grant(app, s, g, status="revoked", actor=actor, now=now, reason=reason)
                revoked += 1
            access_common.bump(s)
    app.record(Tag.ACCOUNT_DISABLED, actor=actor, subject=account_id, reason=reason)
    return f"account {account_id} disabled, {revoked} grant(s) revoked"


# -- the watcher -----------------------------------------------------------------------------
@dataclass
class Raised:
    alert: Alert
    latency_s: float  # from the batch that crossed the threshold being handed in
    contained: str | None = None


@dataclass
class Watcher:
    app: App
    p: DetectionSettings
    live: LiveEvaluator
    sinks: list[Sink]
    recent: dict[str, list[Hit]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    on_alert: Callable[[Raised], None] | None = None
    _suppressions: dict[tuple[str, str], float] = field(default_factory=dict)
    _suppressions_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(
        cls,
        app: App,
        p: DetectionSettings | None = None,
        *,
        sinks: list[Sink] | None = None,
        ref: Reference | None = None,
        baseline_before: Any = None,
        events_uri: str | None = None,
    ) -> Watcher:
        """Load the reference snapshot and the baselines (history before ``baseline_before``,
        default now) and get ready to be fed."""
        from phiguard.detection.service import events_uri as default_uri

        p = p or DetectionSettings()
        ref = ref or from_app(app, p)
        before = to_us(baseline_before or app.clock.now()) or 0
        baselines = Baselines.from_store(
            events_uri or default_uri(app, p),
            before_us=before,
            p=p,
            tz=app.settings.timezone,
            ref=ref,
        )
        live = LiveEvaluator(ref, baselines, p, app.settings.timezone)
        return cls(app, p, live, parse_sinks(p.sinks, p) if sinks is None else sinks)

    def close(self) -> None:
        self.live.close()

    def _suppressed(self) -> dict[tuple[str, str], float]:
        if time.monotonic() - self._suppressions_at > 60:
            with self.app.session() as s:
                self._suppressions = store.active_suppressions(s, self.app.clock.now())
            self._suppressions_at = time.monotonic()
        return self._suppressions

    def feed(self, table: pa.Table, received: float | None = None) -> list[Raised]:
        """Evaluate one batch; store, deliver and contain what it raises."""
        received = time.monotonic() if received is None else received
        with self._lock:
            self.events += table.num_rows
            hits = store.suppress(self.live.feed(table), self._suppressed(), self.p.suppress_growth)
            if not hits:
                return []
            horizon = max(h.last_us for h in hits) - int(
                max(self.p.merge_gap_hours * 3600, self.p.repeat_merge_days * 86400) * 1e6
            )
            for h in hits:
                # a later hit about the same thing (the same query, grown) replaces the earlier
                kept = [x for x in self.recent.get(h.subject, []) if x.identity() != h.identity()]
                self.recent[h.subject] = [*kept, h]
            subjects = sorted({h.subject for h in hits})
            for subject in subjects:
                self.recent[subject] = [h for h in self.recent[subject] if h.last_us >= horizon]
            drafts = store.episodes([h for s in subjects for h in self.recent[s]], {}, self.p)
            if not drafts:
                return []
            _, raised = store.save(self.app, drafts, self.p, origin="live", actor=ACTOR)
            if raised:
                deliver(self.app, raised, self.p, self.sinks)
            out = []
            for a in sorted(raised, key=store.sort_key):
                done = contain(self.app, a, self.p)
                latency = time.monotonic() - received
                self.latencies.append(latency)
                r = Raised(a, latency, done)
                out.append(r)
                if self.on_alert:
                    self.on_alert(r)
            return out

    def gap_hits(self, since_id: int) -> tuple[list[Raised], int]:
        """Turn completeness gaps the ingest recorded (after ``since_id``) into alerts."""
        try:
            from phiguard.audit.completeness import anomalies
        except ImportError:
            return [], since_id
        found = [a for a in anomalies(self.app, limit=200) if (a.id or 0) > since_id]
        top = max([since_id, *[a.id or 0 for a in found]])
        hits = []
        for a in found:
            if a.kind != "gap" or a.count < self.p.gap_min_missing or a.detected_at is None:
                continue
            at = to_us(a.detected_at) or 0
            sev = "high" if a.count >= self.p.gap_high_missing else "medium"
            hits.append(
                Hit(
                    "source_gap",
                    sev,
                    f"source:{a.source}",
                    at,
                    at,
                    0,
                    [
                        f"the audit ingest recorded {a.count:,} missing event(s) from "
                        f"source {a.source} (sequence numbers {a.first_seq:,} to "
                        f"{a.last_seq:,})"
                    ],
                    metric=float(a.count),
                )
            )
        if not hits:
            return [], top
        drafts = store.episodes(hits, {}, self.p)
        _, raised = store.save(self.app, drafts, self.p, origin="live", actor=ACTOR)
        deliver(self.app, raised, self.p, self.sinks)
        return [Raised(a, 0.0) for a in raised], top


class StoreTail:
    """New rows of the event store, in log order, each exactly once."""

    def __init__(self, root: Any, *, from_start: bool = False) -> None:
        from phiguard.storage.events import EventStore

        self.store = EventStore(root)
        self.mark = 0 if from_start else self.store.applied()

    def poll(self) -> pa.Table | None:
        applied = self.store.applied()
        if applied <= self.mark:
            return None
        tables = []
        for part in self.store.parts():
            try:
                first = int(part.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            if self.mark <= first < applied:
                tables.append(pq.read_table(part))
        self.mark = applied
        if not tables:
            return None
        table = pa.concat_tables(tables, promote_options="default")
        return table.sort_by([("leaf_index", "ascending")])


def run(
    app: App,
    p: DetectionSettings | None = None,
    *,
    from_start: bool = False,
    duration: float | None = None,
    sinks: list[Sink] | None = None,
    on_alert: Callable[[Raised], None] | None = None,
    stop: threading.Event | None = None,
) -> Watcher:
    """Tail the event store until ``duration`` seconds pass or ``stop`` is set."""
    p = p or DetectionSettings()
    from phiguard.detection.snapshot import EPOCH

    # Replaying the whole store: nothing came before it, so there is no history to learn from.
    watcher = Watcher.start(app, p, sinks=sinks, baseline_before=EPOCH if from_start else None)
    watcher.on_alert = on_alert
    tail = StoreTail(app.home.events, from_start=from_start)
    gap_mark = max([0, *[a.id or 0 for a in _anomalies(app)]]) if not from_start else 0
    started = time.monotonic()
    try:
        while not (stop and stop.is_set()):
            received = time.monotonic()
            table = tail.poll()
            if table is not None and table.num_rows:
                watcher.feed(table, received)
                watcher.live.prune(to_us(app.clock.now()) or 0)
            raised, gap_mark = watcher.gap_hits(gap_mark)
            for r in raised:
                if on_alert:
                    on_alert(r)
            if duration is not None and time.monotonic() - started >= duration:
                break
            time.sleep(p.watch_poll_seconds)
    finally:
        watcher.close()
    return watcher


def _anomalies(app: App) -> list[Any]:
    try:
        from phiguard.audit.completeness import anomalies
    except ImportError:
        return []
    return anomalies(app, limit=200)


def start_background(
    app: App, p: DetectionSettings | None = None, **kw: Any
) -> tuple[threading.Thread, threading.Event]:
    """Run the watcher in a daemon thread (``phiguard serve`` does this). Set the returned
    event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run, args=(app, p), kwargs={**kw, "stop": stop}, name="phiguard-watch", daemon=True
    )
    thread.start()
    return thread, stop


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


__all__ = [
    "RANK",
    "Raised",
    "StoreTail",
    "Watcher",
    "contain",
    "percentile",
    "run",
    "start_background",
]
