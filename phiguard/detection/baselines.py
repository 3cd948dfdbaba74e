"""What history says about each account, read once from the event store when the live
watcher starts: its previous daily maximum of distinct patients, its active days, its usual
hours and client addresses, its last active day, and its peer group's median and MAD."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phiguard.detection.engines.duckdb import DuckDBEngine
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference

DAY_US = 86_400_000_000


@dataclass
class Baselines:
    """What history says about each account, read once from the event store."""

    prev_max: dict[str, int] = field(default_factory=dict)
    hist_days: dict[str, int] = field(default_factory=dict)
    hours: dict[str, np.ndarray] = field(default_factory=dict)
    hour_total: dict[str, int] = field(default_factory=dict)
    ips: dict[str, set[str]] = field(default_factory=dict)
    last_day: dict[str, int] = field(default_factory=dict)
    peer: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    first_day: int | None = None

    @classmethod
    def from_store(
        cls,
        events_uri: str | None,
        *,
        before_us: int,
        p: DetectionSettings,
        tz: str,
        ref: Reference,
    ) -> Baselines:
        from phiguard.detection.engines.duckdb import _parquet_source

        b = cls()
        source = _parquet_source(events_uri)
        if source is None:
            return b
        eng = DuckDBEngine.create(settings=type("S", (), {"timezone": tz})(), detect=p)
        try:
            eng.register("accounts", ref.tables["accounts"])
            lo = before_us - p.baseline_days * DAY_US
            eng.view(
                "h",
                f"""
                SELECT account_id, NULLIF(patient_id, '') AS patient_id, client_ip,
                       lower(coalesce(outcome, 'success')) AS outcome,
                       date_diff('day', DATE '1970-01-01', CAST(ts AS DATE)) AS dayno,
                       hour(ts) AS hr
                FROM {source}
                WHERE epoch_us(ts) >= {lo} AND epoch_us(ts) < {before_us}""",
            )
            days = eng.query("""
                SELECT account_id, dayno, count(DISTINCT patient_id) AS n FROM h
                WHERE outcome = 'success' GROUP BY account_id, dayno""")
            for r in days:
                a = r["account_id"]
                b.prev_max[a] = max(b.prev_max.get(a, 0), int(r["n"]))
                b.hist_days[a] = b.hist_days.get(a, 0) + 1
                b.last_day[a] = max(b.last_day.get(a, -1), int(r["dayno"]))
                b.first_day = min(b.first_day or int(r["dayno"]), int(r["dayno"]))
            for r in eng.query("SELECT account_id, hr, count(*) AS n FROM h GROUP BY ALL"):
                b.hours.setdefault(r["account_id"], np.zeros(24, np.int64))[int(r["hr"])] = r["n"]
                b.hour_total[r["account_id"]] = b.hour_total.get(r["account_id"], 0) + int(r["n"])
            for r in eng.query(
                "SELECT DISTINCT account_id, client_ip FROM h "
                "WHERE client_ip IS NOT NULL AND client_ip <> ''"
            ):
                b.ips.setdefault(r["account_id"], set()).add(r["client_ip"])
            peer = eng.query("""
                WITH d AS (SELECT h.account_id, a.role, a.department, h.dayno,
                                  count(DISTINCT h.patient_id) AS n
                           FROM h JOIN accounts a USING (account_id)
                           WHERE h.outcome = 'success' GROUP BY ALL),
                     m AS (SELECT role, department, median(n) AS med,
                                  count(DISTINCT account_id) AS k FROM d GROUP BY ALL)
                SELECT m.role, m.department, m.med, m.k, median(abs(d.n - m.med)) AS mad
                FROM d JOIN m USING (role, department) GROUP BY ALL""")
            for r in peer:
                b.peer[(r["role"], r["department"])] = (
                    float(r["med"]),
                    float(r["mad"]),
                    int(r["k"]),
                )
        finally:
            eng.close()
        return b
