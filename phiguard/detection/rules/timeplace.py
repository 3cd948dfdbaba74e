"""Time and place: an hour rare for the account, a dormant account waking up, a client address
or device never seen before, one account working from two places at once.

Rare hours and new clients are *supporting* signals: on their own they only feed the anomaly
score; next to another hit in the same episode they add their reason and weight.
"""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.base import Context, Hit, Rule, num, plural

RARE_HOUR = """
WITH tot AS (
  SELECT account_id, dayno,
         sum(n_events) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS t_n,
         count(*) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS t_days
  FROM acct_day
), hh AS (
  SELECT account_id, dayno, hr, n, first_us, last_us,
         sum(n) OVER (PARTITION BY account_id, hr ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS h_n
  FROM acct_hour
), rare AS (
  SELECT hh.account_id, hh.dayno, hh.hr, hh.n, hh.first_us, hh.last_us,
         coalesce(hh.h_n, 0) AS h_n, tot.t_n, tot.t_days
  FROM hh JOIN tot ON tot.account_id = hh.account_id AND tot.dayno = hh.dayno
  WHERE hh.dayno >= {{ w.report_dayno }} AND hh.last_us >= {{ w.report_us }}
    AND hh.n >= {{ p.rare_hour_min_events }}
    AND tot.t_n >= {{ p.rare_hour_min_history_events }}
    AND tot.t_days >= {{ p.rare_hour_min_history_days }}
    AND coalesce(hh.h_n, 0) < {{ p.rare_hour_max_share }} * tot.t_n
)
SELECT rare.account_id, rare.dayno, {{ d.sorted_set('rare.hr') }} AS hours,
       sum(rare.n) AS n, sum(rare.h_n) AS h_n, max(rare.t_n) AS t_n,
       max(rare.t_days) AS t_days, min(rare.first_us) AS first_us, max(rare.last_us) AS last_us,
       max(ad.n_patients) AS n_patients
FROM rare JOIN acct_day ad ON ad.account_id = rare.account_id AND ad.dayno = rare.dayno
GROUP BY rare.account_id, rare.dayno
"""


def assess_rare_hour(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    hours = ", ".join(f"{h:02d}:00–{(h + 1) % 24:02d}:00" for h in r["hours"] or [])
    text = (
        f"worked {hours} on {c.day(r['first_us'])} ({plural(int(r['n']), 'event')}), "
        f"hours in which it did {num(r['h_n'])} of its {num(r['t_n'])} events over the "
        f"previous {r['t_days']} active days"
    )
    return [
        Hit(
            "rare_hour",
            "low",
            acc,
            r["first_us"],
            r["last_us"],
            int(r["n_patients"]),
            [text],
            [],
            acc,
            c.vendor_of(acc),
            standalone=False,
            dayno=r["dayno"],
        )
    ]


# A "place" is the network a client address sits in (the first two octets of an IPv4
# address, e.g. one hospital's 10.14.x.x): two workstations on one ward are one place, a
# ward and a home broadband line are two.
PLACE = (
    "CASE WHEN regexp_extract({ip}, '^([0-9]+[.][0-9]+)[.]', 1) = '' THEN {ip} "
    "ELSE regexp_extract({ip}, '^([0-9]+[.][0-9]+)[.]', 1) END"
)

DORMANT = """
WITH g AS (
  SELECT account_id, dayno, day, first_us, last_us, n_events, n_patients,
         lag(dayno) OVER (PARTITION BY account_id ORDER BY dayno) AS prev_dayno,
         lag(day) OVER (PARTITION BY account_id ORDER BY dayno) AS prev_day
  FROM acct_day
), lo AS (
  SELECT min(dayno) AS d_min, min(day) AS day_min FROM acct_day
), hits AS (
  -- idle for dormant_days between two active days, or since the start of the data read
  -- (for an account that existed then: its active_from is not later)
  SELECT g.*, lo.day_min FROM g
  CROSS JOIN lo
  LEFT JOIN accounts a ON a.account_id = g.account_id
  WHERE g.dayno >= {{ w.report_dayno }} AND g.last_us >= {{ w.report_us }}
    AND ((g.prev_dayno IS NOT NULL AND g.dayno - g.prev_dayno >= {{ p.dormant_days }})
         OR (g.prev_dayno IS NULL
             AND g.dayno - lo.d_min >= {{ [p.dormant_days, p.dormant_unseen_days] | min }}
             AND a.account_id IS NOT NULL
             AND (a.active_from IS NULL OR a.active_from <= lo.day_min)))
), places AS (
  SELECT account_id, {place} AS place, min(dayno) AS d0
  FROM acct_client WHERE client_ip IS NOT NULL GROUP BY 1, 2
), everyone AS (
  SELECT place, min(d0) AS g0 FROM places GROUP BY place
), fresh AS (
  -- client addresses in a network new to the account (or, for an account with no history,
  -- new to the whole hospital) on the day it woke up
  SELECT hits.account_id, hits.dayno, {{ d.sorted_set('c.client_ip') }} AS new_ips
  FROM hits
  JOIN acct_client c ON c.account_id = hits.account_id AND c.dayno = hits.dayno
  JOIN places pl ON pl.account_id = c.account_id AND pl.place = {place_c}
  JOIN everyone ev ON ev.place = pl.place
  WHERE c.client_ip IS NOT NULL AND pl.d0 = hits.dayno
    AND (hits.prev_dayno IS NOT NULL OR ev.g0 = hits.dayno)
  GROUP BY hits.account_id, hits.dayno
)
SELECT hits.*, fresh.new_ips FROM hits
LEFT JOIN fresh ON fresh.account_id = hits.account_id AND fresh.dayno = hits.dayno
"""
DORMANT = DORMANT.replace("{place_c}", PLACE.format(ip="c.client_ip")).replace(
    "{place}", PLACE.format(ip="client_ip")
)


def assess_dormant(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    if r["prev_dayno"] is not None:
        gap = int(r["dayno"]) - int(r["prev_dayno"])
        text = (
            f"active again on {r['day']} after {gap} days without any activity (last "
            f"active {r['prev_day']})"
        )
    else:
        text = (
            f"active on {r['day']} for the first time since at least {r['day_min']} "
            "(no earlier activity on record)"
        )
    text += f"; touched {plural(int(r['n_patients']), 'patient')}"
    new_ips = r["new_ips"] or []
    if new_ips:
        text += (
            f", from {'a network' if len(new_ips) == 1 else 'networks'} never seen "
            f"{'for this account' if r['prev_dayno'] is not None else 'in the hospital'} "
            f"({', '.join(new_ips[:3])})"
        )
    # Idle spells alone are common (leave, part-time staff): low, unless the account also
    # came back from somewhere new, or other hits join it in the same episode.
    severity = "high" if new_ips else "low"
    return [
        Hit(
            "dormant_reactivated",
            severity,
            acc,
            r["first_us"],
            r["last_us"],
            int(r["n_patients"]),
            [text],
            [],
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
        )
    ]


NEW_CLIENT = """
WITH firsts AS (
  SELECT account_id, 'ip' AS kind, client_ip AS val, min(dayno) AS d0
  FROM acct_client WHERE client_ip IS NOT NULL GROUP BY account_id, client_ip
  UNION ALL
  SELECT account_id, 'device' AS kind, device_id AS val, min(dayno) AS d0
  FROM acct_client WHERE device_id IS NOT NULL GROUP BY account_id, device_id
), hist AS (
  SELECT account_id, dayno, n_patients, first_us, last_us,
         count(*) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS prev_days
  FROM acct_day
)
SELECT f.account_id, f.d0 AS dayno,
       {{ d.sorted_set("CASE WHEN f.kind = 'ip' THEN f.val END") }} AS ips,
       {{ d.sorted_set("CASE WHEN f.kind = 'device' THEN f.val END") }} AS devices,
       max(h.prev_days) AS prev_days, max(h.n_patients) AS n_patients,
       min(h.first_us) AS first_us, max(h.last_us) AS last_us
FROM firsts f JOIN hist h ON h.account_id = f.account_id AND h.dayno = f.d0
WHERE f.d0 >= {{ w.report_dayno }} AND h.last_us >= {{ w.report_us }}
  AND h.prev_days >= {{ p.new_client_min_history_days }}
GROUP BY f.account_id, f.d0
"""


def assess_new_client(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    parts = []
    if r["ips"]:
        parts.append(f"client address {', '.join(r['ips'][:3])}")
    if r["devices"]:
        parts.append(f"device {', '.join(r['devices'][:3])}")
    text = (
        f"used {' and '.join(parts)} for the first time on {c.day(r['first_us'])}, "
        f"never seen in its previous {r['prev_days']} active days"
    )
    return [
        Hit(
            "new_client",
            "low",
            acc,
            r["first_us"],
            r["last_us"],
            int(r["n_patients"]),
            [text],
            [],
            acc,
            c.vendor_of(acc),
            standalone=False,
            dayno=r["dayno"],
        )
    ]


TWO_PLACES = (
    """
WITH c AS (
  SELECT account_id, dayno FROM acct_client WHERE client_ip IS NOT NULL
  GROUP BY account_id, dayno
  HAVING count(DISTINCT """
    + PLACE.format(ip="client_ip")
    + """) >= 2
), e AS (
  SELECT e.account_id, e.dayno, e.ts_us, e.client_ip,
         """
    + PLACE.format(ip="e.client_ip")
    + """ AS place,
         lag("""
    + PLACE.format(ip="e.client_ip")
    + """) OVER (PARTITION BY e.account_id, e.dayno
                                ORDER BY e.ts_us, e.event_id) AS prev_place,
         lag(e.ts_us) OVER (PARTITION BY e.account_id, e.dayno
                            ORDER BY e.ts_us, e.event_id) AS prev_us
  FROM ev e JOIN c ON c.account_id = e.account_id AND c.dayno = e.dayno
  WHERE e.client_ip IS NOT NULL AND e.dayno >= {{ w.report_dayno }}
), s AS (
  SELECT account_id, dayno, count(*) AS n_switches, min(prev_us) AS first_us,
         max(ts_us) AS last_us, {{ d.sorted_set('client_ip') }} AS ips
  FROM e
  WHERE prev_place <> place AND ts_us - prev_us <= {{ p.two_places_seconds * 1000000 }}
  GROUP BY account_id, dayno
  HAVING count(*) >= {{ p.two_places_min_switches }}
)
SELECT s.*, ad.n_patients FROM s
JOIN acct_day ad ON ad.account_id = s.account_id AND ad.dayno = s.dayno
WHERE s.last_us >= {{ w.report_us }}
"""
)


def assess_two_places(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    ips = r["ips"] or []
    text = (
        f"worked from {len(ips)} networks at once on {c.day(r['first_us'])}: "
        f"switched between them {r['n_switches']} times, each within "
        f"{c.p.two_places_seconds} s "
        f"({', '.join(ips[:4])}) — the account looks shared"
    )
    return [
        Hit(
            "two_places",
            "medium",
            acc,
            r["first_us"],
            r["last_us"],
            int(r["n_patients"]),
            [text],
            [],
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
        )
    ]


RULES = [
    Rule(
        "rare_hour",
        "time_place",
        "Activity at an hour rare for the account",
        RARE_HOUR,
        assess_rare_hour,
        needs=("acct_day", "acct_hour"),
    ),
    Rule(
        "dormant_reactivated",
        "time_place",
        "Dormant account reactivated",
        DORMANT,
        assess_dormant,
        needs=("acct_day", "acct_client"),
    ),
    Rule(
        "new_client",
        "time_place",
        "New client address or device",
        NEW_CLIENT,
        assess_new_client,
        needs=("acct_day", "acct_client"),
    ),
    Rule(
        "two_places",
        "time_place",
        "One account active from two places at once",
        TWO_PLACES,
        assess_two_places,
        needs=("acct_day", "acct_client", "ev"),
    ),
]
