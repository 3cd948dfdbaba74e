"""Volume rules: bulk queries and exports, busy days against the account's own history and its
peers, vendor-wide volume, and slow exfiltration accumulated over days.

Explanation-based filtering applies throughout: volume that encounters or a valid grant
explain (an emergency doctor's busy shift, a clerk printing for their own department, a
service account's nightly export under its grant) is at most ``low``.
"""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.base import VERBS, Context, Hit, Rule, num, plural, ratio, samples
from phiguard.detection.rules.grant import _grant_text

BULK = """
WITH b AS (
  SELECT * FROM queries
  WHERE n_rows >= {{ p.bulk_rows_min }} AND last_us >= {{ w.report_us }}
    AND dayno >= {{ w.report_dayno }}
), r AS (
  SELECT e.account_id, e.query_id, e.patient_id, e.dayno
  FROM qev e JOIN b ON e.account_id = b.account_id AND e.query_id = b.query_id
  WHERE e.patient_id IS NOT NULL
), cl AS (
  SELECT r.account_id, r.query_id, coalesce(pt.cluster, '?') AS cluster, count(*) AS n,
         -- access_x holds every access an encounter leaves unexplained: one it lacks is explained
         sum(CASE WHEN coalesce(x.explained, true) THEN 1 ELSE 0 END) AS n_explained
  FROM r
  LEFT JOIN patients pt ON pt.patient_id = r.patient_id
  LEFT JOIN access_x x ON x.account_id = r.account_id AND x.patient_id = r.patient_id
                      AND x.dayno = r.dayno
  GROUP BY r.account_id, r.query_id, coalesce(pt.cluster, '?')
), cls AS (
  SELECT account_id, query_id,
         {{ d.sorted_set("concat(cluster, '=', " ~ d.to_str('n') ~ ")") }} AS clusters,
         sum(n_explained) AS n_explained
  FROM cl GROUP BY account_id, query_id
), smp AS (
  SELECT account_id, query_id, {{ d.sample('patient_id', n) }} AS sample
  FROM r GROUP BY account_id, query_id
), prev AS (
  SELECT b.account_id, b.query_id, max(ad.n_patients) AS prev_max, count(ad.dayno) AS prev_days
  FROM b JOIN acct_day ad ON ad.account_id = b.account_id AND ad.dayno < b.dayno
                         AND ad.dayno >= b.dayno - {{ p.baseline_days }}
  GROUP BY b.account_id, b.query_id
), gc AS (
  SELECT account_id, qkey, min(CASE WHEN covered THEN 1 ELSE 0 END) AS all_covered
  FROM gcheck GROUP BY account_id, qkey
)
SELECT b.account_id, b.query_id, b.action, b.n_rows, b.first_us, b.last_us, b.dayno,
       cls.clusters, coalesce(cls.n_explained, 0) AS n_explained,
       prev.prev_max, coalesce(prev.prev_days, 0) AS prev_days,
       coalesce(gc.all_covered, 0) AS all_covered, smp.sample
FROM b
LEFT JOIN cls ON cls.account_id = b.account_id AND cls.query_id = b.query_id
LEFT JOIN smp ON smp.account_id = b.account_id AND smp.query_id = b.query_id
LEFT JOIN prev ON prev.account_id = b.account_id AND prev.query_id = b.query_id
LEFT JOIN gc ON gc.account_id = b.account_id AND gc.qkey = b.query_id
"""


def _clusters(items: list[str] | None) -> list[tuple[str, int]]:
    out = []
    for item in items or []:
        name, _, n = item.rpartition("=")
        out.append((name, int(n)))
    return sorted(out, key=lambda t: (-t[1], t[0]))


def _where(clusters: list[tuple[str, int]]) -> str:
    known = [(c, n) for c, n in clusters if c != "?"]
    if not known:
        return ""
    if len(known) == 1:
        return f" from {known[0][0]}"
    top = ", ".join(c for c, _ in known[:3])
    return f" from {top}" + (f" and {len(known) - 3} more clusters" if len(known) > 3 else "")


def _grant_clause(c: Context, account_id: str, at_us: int) -> str:
    grants = c.grants.get(account_id, [])
    if not grants:
        return ""
    current = [g for g in grants if g["valid_from_us"] <= at_us < g["valid_to_us"]]
    if current:
        return "; " + _grant_text(current[-1])
    last = grants[-1]
    return f"; its last grant ended on {c.day(last['valid_to_us'])} ({_grant_text(last)[4:]})"


def _history(prev_days: int, prev_max: int | None) -> str:
    if prev_days and prev_max is not None:
        return f"; this account's previous daily maximum was {num(prev_max)}"
    return "; no earlier activity of this account on record"


def assess_bulk(r: dict[str, Any], c: Context) -> list[Hit]:
    if r["all_covered"]:
        return []  # within a valid grant: scope, fields, action and row limit all respected
    acc, rows = r["account_id"], int(r["n_rows"])
    clusters = _clusters(r["clusters"])
    verb = VERBS.get(r["action"], r["action"] or "returned")
    text = (
        f"{verb} {plural(rows, 'patient record')}{_where(clusters)} "
        f"{c.span(r['first_us'], r['last_us'])} in one query"
        + _grant_clause(c, acc, r["first_us"])
        + _history(r["prev_days"], r["prev_max"])
    )
    explained = int(r["n_explained"]) / rows if rows else 0.0
    if explained >= c.p.explained_share_benign:
        severity = "low"
        text += f"; {explained:.0%} of these patients have an encounter that explains it"
    elif rows >= c.p.bulk_rows_critical:
        severity = "critical"
    elif rows >= c.p.bulk_rows_high:
        severity = "high"
    else:
        severity = "medium"
    return [
        Hit(
            "bulk_export",
            severity,
            acc,
            r["first_us"],
            r["last_us"],
            rows,
            [text],
            samples(r["sample"]),
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
            ref=str(r["query_id"]),
        )
    ]


DAILY = """
WITH own AS (
  SELECT account_id, dayno, day, n_patients, n_unexplained, first_us, last_us,
         max(n_patients) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS prev_max,
         count(*) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS prev_days
  FROM acct_day
), peer AS (
  SELECT a.role, a.department, {{ d.quantile('ad.n_patients', 0.5) }} AS med,
         count(DISTINCT ad.account_id) AS n_peers
  FROM acct_day ad JOIN accounts a ON a.account_id = ad.account_id
  GROUP BY a.role, a.department
), mad AS (
  SELECT a.role, a.department, {{ d.quantile('abs(ad.n_patients - peer.med)', 0.5) }} AS mad
  FROM acct_day ad JOIN accounts a ON a.account_id = ad.account_id
  JOIN peer ON peer.role = a.role AND peer.department = a.department
  GROUP BY a.role, a.department
), h AS (
  SELECT o.*, a.role, a.department, peer.med, peer.n_peers, mad.mad
  FROM own o
  LEFT JOIN accounts a ON a.account_id = o.account_id
  LEFT JOIN peer ON peer.role = a.role AND peer.department = a.department
  LEFT JOIN mad ON mad.role = a.role AND mad.department = a.department
  WHERE o.dayno >= {{ w.report_dayno }} AND o.last_us >= {{ w.report_us }}
    AND o.n_patients >= {{ p.daily_min_patients }}
    AND (o.prev_days < {{ p.daily_min_history_days }}
         OR o.n_patients > {{ p.daily_own_factor }} * o.prev_max)
    AND (peer.n_peers IS NULL OR peer.n_peers < 3
         OR o.n_patients > peer.med + {{ p.daily_peer_mads }} * greatest(mad.mad, 1.0))
), smp AS (
  SELECT x.account_id, x.dayno, {{ d.sample('x.patient_id', n, 'NOT x.explained') }} AS sample
  FROM access_x x JOIN h ON h.account_id = x.account_id AND h.dayno = x.dayno
  GROUP BY x.account_id, x.dayno
)
SELECT h.*, smp.sample FROM h
LEFT JOIN smp ON smp.account_id = h.account_id AND smp.dayno = h.dayno
"""


def assess_daily(r: dict[str, Any], c: Context) -> list[Hit]:
    acc, n, unexplained = r["account_id"], int(r["n_patients"]), int(r["n_unexplained"])
    parts = [f"touched {plural(n, 'patient')} on {r['day']}"]
    if r["prev_days"] and r["prev_max"]:
        parts.append(
            f"{ratio(n, r['prev_max'])} this account's previous daily maximum of "
            f"{num(r['prev_max'])}"
        )
    if r["med"] is not None and r["n_peers"] and r["n_peers"] >= 3:
        parts.append(
            f"its peers ({r['role']}, {r['department']}) touch a median of "
            f"{num(round(r['med']))} a day"
        )
    parts.append(f"{num(unexplained)} of them unexplained by any encounter or grant")
    share = 1 - unexplained / n if n else 1.0
    if share >= c.p.explained_share_benign:
        severity = "low"
    elif unexplained >= c.p.bulk_rows_min:
        severity = "high"
    else:
        severity = "medium"
    return [
        Hit(
            "daily_volume",
            severity,
            acc,
            r["first_us"],
            r["last_us"],
            n,
            ["; ".join(parts)],
            samples(r["sample"]),
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
        )
    ]


VENDOR = """
WITH vd AS (
  SELECT vendor_id, dayno, {{ d.date_of('dayno') }} AS day,
         count(DISTINCT patient_id) AS n_patients,
         count(DISTINCT account_id) AS n_accounts,
         count(DISTINCT CASE WHEN NOT explained THEN patient_id END) AS n_unexplained,
         min(first_us) AS first_us, max(last_us) AS last_us
  FROM access_x WHERE vendor_id IS NOT NULL GROUP BY vendor_id, dayno
), h AS (
  SELECT vd.*,
         max(n_patients) OVER (PARTITION BY vendor_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS prev_max,
         count(*) OVER (PARTITION BY vendor_id ORDER BY dayno
             RANGE BETWEEN {{ p.baseline_days }} PRECEDING AND 1 PRECEDING) AS prev_days
  FROM vd
), hits AS (
  SELECT * FROM h
  WHERE dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }}
    AND n_accounts >= 2 AND n_patients >= {{ p.vendor_daily_min_patients }}
    AND (prev_days = 0 OR n_patients > {{ p.vendor_daily_factor }} * prev_max)
), per AS (
  SELECT x.vendor_id, x.dayno, x.account_id, count(*) AS n
  FROM access_x x JOIN hits ON hits.vendor_id = x.vendor_id AND hits.dayno = x.dayno
  GROUP BY x.vendor_id, x.dayno, x.account_id
), top AS (
  SELECT vendor_id, dayno, account_id, n,
         row_number() OVER (PARTITION BY vendor_id, dayno ORDER BY n DESC, account_id) AS rk
  FROM per
), smp AS (
  SELECT x.vendor_id, x.dayno, {{ d.sample('x.patient_id', n, 'NOT x.explained') }} AS sample
  FROM access_x x JOIN hits ON hits.vendor_id = x.vendor_id AND hits.dayno = x.dayno
  GROUP BY x.vendor_id, x.dayno
)
SELECT hits.*, top.account_id, top.n AS top_n, smp.sample
FROM hits
JOIN top ON top.vendor_id = hits.vendor_id AND top.dayno = hits.dayno AND top.rk = 1
LEFT JOIN smp ON smp.vendor_id = hits.vendor_id AND smp.dayno = hits.dayno
"""


def assess_vendor(r: dict[str, Any], c: Context) -> list[Hit]:
    n, unexplained = int(r["n_patients"]), int(r["n_unexplained"])
    text = (
        f"vendor {r['vendor_id']}'s {r['n_accounts']} accounts together touched "
        f"{plural(n, 'patient')} on {r['day']}"
    )
    if r["prev_days"] and r["prev_max"]:
        text += (
            f", {ratio(n, r['prev_max'])} the vendor's previous daily maximum of "
            f"{num(r['prev_max'])}"
        )
    text += f"; the busiest account, {r['account_id']}, touched {num(r['top_n'])}"
    text += f"; {num(unexplained)} unexplained by any encounter or grant"
    share = 1 - unexplained / n if n else 1.0
    severity = (
        "low"
        if share >= c.p.explained_share_benign
        else ("high" if unexplained >= c.p.bulk_rows_min else "medium")
    )
    return [
        Hit(
            "vendor_volume",
            severity,
            r["account_id"],
            r["first_us"],
            r["last_us"],
            n,
            [text],
            samples(r["sample"]),
            r["account_id"],
            r["vendor_id"],
            dayno=r["dayno"],
        )
    ]


SLOW = """
WITH o AS (
  SELECT account_id, patient_id, min(dayno) AS d0
  FROM access_x WHERE NOT explained GROUP BY account_id, patient_id
), nd AS (
  SELECT account_id, d0 AS dayno, count(*) AS n_new FROM o GROUP BY account_id, d0
), roll AS (
  SELECT account_id, dayno,
         sum(n_new) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.slow_window_days - 1 }} PRECEDING AND CURRENT ROW) AS n_win,
         count(*) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.slow_window_days - 1 }} PRECEDING AND CURRENT ROW) AS days_win,
         min(dayno) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.slow_window_days - 1 }} PRECEDING AND CURRENT ROW) AS start_day,
         max(n_new) OVER (PARTITION BY account_id ORDER BY dayno
             RANGE BETWEEN {{ p.slow_window_days - 1 }} PRECEDING AND CURRENT ROW) AS peak
  FROM nd
), best AS (
  SELECT account_id, dayno, n_win, days_win, start_day, peak FROM (
    SELECT roll.*, row_number() OVER (PARTITION BY account_id ORDER BY n_win DESC, dayno) AS rk
    FROM roll
    WHERE dayno >= {{ w.report_dayno }} AND n_win >= {{ p.slow_min_patients }}
      AND days_win >= {{ p.slow_min_days }}
  ) t WHERE rk = 1
), tot AS (
  -- everyone the account touched in those days, explained or not: read from the events
  -- (access_x keeps only the accesses that need a second look)
  SELECT b.account_id, count(DISTINCT e.patient_id) AS n_all,
         min(e.ts_us) AS first_us, max(e.ts_us) AS last_us
  FROM best b JOIN ev e ON e.account_id = b.account_id
   AND e.dayno >= b.start_day AND e.dayno <= b.dayno
  WHERE e.outcome = 'success' AND e.patient_id IS NOT NULL
  GROUP BY b.account_id
), smp AS (
  SELECT b.account_id, {{ d.sample('x.patient_id', n, 'NOT x.explained') }} AS sample
  FROM best b JOIN access_x x ON x.account_id = b.account_id
   AND x.dayno >= b.start_day AND x.dayno <= b.dayno
  GROUP BY b.account_id
)
SELECT b.*, tot.n_all, tot.first_us, tot.last_us, smp.sample
FROM best b JOIN tot ON tot.account_id = b.account_id
LEFT JOIN smp ON smp.account_id = b.account_id
WHERE b.n_win >= {{ p.slow_min_unexplained_share }} * tot.n_all
  AND tot.last_us >= {{ w.report_us }}
"""


def assess_slow(r: dict[str, Any], c: Context) -> list[Hit]:
    acc, n = r["account_id"], int(r["n_win"])
    text = (
        f"touched {plural(n, 'patient')} that no encounter, department or grant explains, "
        f"spread over {r['days_win']} days between {c.day(r['first_us'])} and "
        f"{c.day(r['last_us'])} (at most {num(r['peak'])} new in one day) — "
        f"{n / max(int(r['n_all']), 1):.0%} of everyone it touched in that time"
    )
    return [
        Hit(
            "slow_exfiltration",
            "high",
            acc,
            r["first_us"],
            r["last_us"],
            n,
            [text],
            samples(r["sample"]),
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
        )
    ]


RULES = [
    Rule(
        "bulk_export",
        "volume",
        "Bulk query or export",
        BULK,
        assess_bulk,
        needs=("queries", "qev", "access_x", "acct_day", "gcheck"),
    ),
    Rule(
        "daily_volume",
        "volume",
        "Busy day against own history and peers",
        DAILY,
        assess_daily,
        needs=("acct_day", "access_x"),
    ),
    Rule(
        "vendor_volume",
        "volume",
        "Vendor-wide volume across its accounts",
        VENDOR,
        assess_vendor,
        needs=("access_x",),
    ),
    Rule(
        "slow_exfiltration",
        "volume",
        "Out-of-scope patients accumulated over days",
        SLOW,
        assess_slow,
        needs=("access_x", "ev"),
    ),
]
