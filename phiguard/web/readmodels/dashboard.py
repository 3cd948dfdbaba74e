"""The dashboard's figures: alerts over time, accesses by hour of day, top-risk accounts and
vendors, open incidents with their clocks. Computed from the domain services and cached
for a few seconds (the page is polled by many screens; the figures move slowly)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from phiguard.app import App
from phiguard.clock import HKT
from phiguard.web.readmodels.activity import by_hour_of_day

SEVERITIES = ("critical", "high", "medium", "low")


@dataclass
class Dashboard:
    days: list[str] = field(default_factory=list)
    alerts_by_day: dict[str, list[int]] = field(default_factory=dict)
    open_by_severity: dict[str, int] = field(default_factory=dict)
    by_hour: list[int] = field(default_factory=list)
    top_accounts: list[tuple[str, float, int]] = field(default_factory=list)
    top_vendors: list[tuple[str, float, int]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)


def compute(app: App, *, days: int = 14) -> Dashboard:
    from phiguard.detection import alerts as alerts_svc
    from phiguard.incidents import cases

    d = Dashboard()
    today = app.clock.now().astimezone(HKT).date()
    d.days = [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    index = {day: i for i, day in enumerate(d.days)}
    d.alerts_by_day = {sev: [0] * days for sev in SEVERITIES}
    account_score: dict[str, float] = defaultdict(float)
    account_n: Counter[str] = Counter()
    vendor_score: dict[str, float] = defaultdict(float)
    vendor_n: Counter[str] = Counter()
    open_sev: Counter[str] = Counter()
    latest = None
    rows = alerts_svc.list_alerts(app, status="all")
    for a in rows:
        day = a.first_ts.astimezone(HKT).date()
        latest = day if latest is None or day > latest else latest
    window_start = today - timedelta(days=days - 1)
    if latest is not None and not window_start <= latest <= today:
        # nothing in the recent window (or a replayed story ahead of the clock): show the
        # fortnight that ends with the latest alert rather than an empty chart
        d.days = [(latest - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
        index = {day: i for i, day in enumerate(d.days)}
    for a in rows:
        key = a.first_ts.astimezone(HKT).date().isoformat()
        if key in index and a.severity in d.alerts_by_day:
            d.alerts_by_day[a.severity][index[key]] += 1
        if a.status != "open":
            continue
        open_sev[a.severity] += 1
        if a.account_id:
            account_score[a.account_id] = max(account_score[a.account_id], a.score)
            account_n[a.account_id] += 1
        if a.vendor_id:
            vendor_score[a.vendor_id] = max(vendor_score[a.vendor_id], a.score)
            vendor_n[a.vendor_id] += 1
    d.open_by_severity = {sev: open_sev.get(sev, 0) for sev in SEVERITIES}
    d.top_accounts = sorted(
        ((k, v, account_n[k]) for k, v in account_score.items()), key=lambda t: (-t[1], -t[2], t[0])
    )[:8]
    d.top_vendors = sorted(
        ((k, v, vendor_n[k]) for k, v in vendor_score.items()), key=lambda t: (-t[1], -t[2], t[0])
    )[:8]
    d.by_hour = by_hour_of_day(app)
    for inc in cases.list_incidents(app):
        if inc["status"] == "closed":
            continue
        full = cases.summary(app, inc["incident_id"])
        inc = dict(inc)
        inc["clocks"] = full["clocks"]
        d.incidents.append(inc)
    return d


class DashboardCache:
    """Stale-while-revalidate: the first request computes; later ones get the cached figures
    at once while one background thread refreshes them when they are older than ``ttl``, so
    no request waits for the ~100 ms of queries behind the page."""

    def __init__(self, app: App, ttl: float = 10.0, max_age: float = 60.0) -> None:
        self.app = app
        self.ttl = ttl
        self.max_age = max_age
        self._value: Dashboard | None = None
        self._at = 0.0  # when the figures were last confirmed current
        self._computed = 0.0  # when they were last computed
        self._mark: tuple[object, ...] | None = None
        self._lock = threading.Lock()
        self._cold = threading.Lock()
        self._refreshing = False

    def _fingerprint(self) -> tuple[object, ...]:
        """What the figures are computed from: the alerts (see
        :func:`~phiguard.web.readmodels.alert_list.fingerprint`), the event store's
        position, the incidents, and the day (the chart's window). While any incident is
        open the figures are recomputed at every refresh."""
        from sqlalchemy import func, select

        from phiguard.incidents.models import Incident
        from phiguard.storage.events import EventStore
        from phiguard.web.readmodels.alert_list import fingerprint

        with self.app.session() as s:
            live = s.scalar(select(func.count()).where(Incident.status != "closed"))
            incidents = tuple(s.execute(select(func.count(), func.count(Incident.closed_at))).one())
        if live:  # open incidents carry clocks that move with time and with their tasks
            return (object(),)  # never equal: recompute at every refresh, as before
        return (
            fingerprint(self.app),
            EventStore.of(self.app).applied(),
            incidents,
            self.app.clock.now().astimezone(HKT).date(),
        )

    def _refresh(self) -> None:
        """Recompute when the inputs changed (and at least every ``max_age`` seconds);
        otherwise only confirm the figures. The check is a few small queries, the
        computation a scan of a week of events."""
        try:
            mark = self._fingerprint()
            now = time.monotonic()
            if mark == self._mark and now - self._computed < self.max_age:
                with self._lock:
                    self._at = now
                return
            value = compute(self.app)
            with self._lock:
                self._value, self._at = value, time.monotonic()
                self._computed, self._mark = self._at, mark
        finally:
            self._refreshing = False

    @property
    def warm(self) -> bool:
        """Whether :meth:`get` answers from memory (no query on the caller's thread)."""
        return self._value is not None

    def get(self) -> Dashboard:
        with self._lock:
            value, stale = self._value, time.monotonic() - self._at > self.ttl
            if value is not None and stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(
                    target=self._refresh, name="dashboard-refresh", daemon=True
                ).start()
        if value is None:
            with self._cold:  # one computation however many requests arrive cold
                if self._value is not None:
                    return self._value
                mark = self._fingerprint()
                value = compute(self.app)
                with self._lock:
                    self._value, self._at = value, time.monotonic()
                    self._computed, self._mark = self._at, mark
        return value
