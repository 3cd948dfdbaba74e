"""Activity charts: an account's records touched per hour around an alert against its own
usual hour-of-day profile, and the hospital-wide accesses by hour of day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from phiguard.app import App
from phiguard.clock import HKT, parse_ts
from phiguard.web.readmodels.events import query


@dataclass(frozen=True)
class Activity:
    labels: list[str]
    values: list[float]
    baseline: list[float]
    mark: int | None


def around(
    app: App, account_id: str, first_ts: str | datetime, *, hours: int = 24, baseline_days: int = 28
) -> Activity | None:
    """Distinct patients per hour in the ``hours`` before and after ``first_ts`` (HKT),
    with the account's mean for that hour of day over the previous ``baseline_days``."""
    centre = parse_ts(first_ts) if isinstance(first_ts, str) else first_ts
    centre = centre.astimezone(HKT).replace(minute=0, second=0, microsecond=0)
    start, end = centre - timedelta(hours=hours // 2), centre + timedelta(hours=hours // 2)
    rows = query(
        app,
        """
        SELECT date_trunc('hour', ts AT TIME ZONE 'Asia/Hong_Kong') AS h,
               count(DISTINCT patient_id)
        FROM {events} WHERE account_id = ? AND ts >= ? AND ts < ? GROUP BY 1""",
        [account_id, start, end],
    )
    base = query(
        app,
        """
        SELECT hour(ts AT TIME ZONE 'Asia/Hong_Kong') AS hod,
               count(DISTINCT (patient_id, date_trunc('hour', ts))) / ?::DOUBLE
        FROM {events} WHERE account_id = ? AND ts >= ? AND ts < ? GROUP BY 1""",
        [baseline_days, account_id, start - timedelta(days=baseline_days), start],
    )
    if not rows and not base:
        return None
    by_hour = {h.replace(tzinfo=None): n for h, n in rows}
    by_hod = {int(h): float(v) for h, v in base}
    labels: list[str] = []
    values: list[float] = []
    baseline: list[float] = []
    t = start
    mark = None
    while t < end:
        local = t.replace(tzinfo=None)
        if t == centre:
            mark = len(labels)
        labels.append(local.strftime("%H:00"))
        values.append(float(by_hour.get(local, 0)))
        baseline.append(round(by_hod.get(local.hour, 0.0), 2))
        t += timedelta(hours=1)
    return Activity(labels, values, baseline, mark)


def by_hour_of_day(app: App, *, days: int = 7) -> list[int]:
    """Accesses by hour of day (HKT) over the last ``days`` days of events."""
    rows = query(
        app,
        """
        WITH last AS (SELECT max(ts) AS m FROM {events})
        SELECT hour(ts AT TIME ZONE 'Asia/Hong_Kong'), count(*) FROM {events}, last
        WHERE ts > last.m - to_days(?) GROUP BY 1""",
        [days],
    )
    counts = [0] * 24
    for h, n in rows:
        counts[int(h)] = int(n)
    return counts
