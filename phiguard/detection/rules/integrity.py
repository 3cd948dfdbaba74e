"""Completeness and denials: holes in a source's sequence numbers (events that never arrived
— found in the events themselves and recorded by the audit ingest), and bursts of denied
attempts by one account."""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.base import Context, Hit, Rule, num, plural, samples

SOURCE_GAP = """
WITH s AS (
  SELECT source, dayno, n, lo, hi FROM source_day
), x AS (
  SELECT s.*, lag(hi) OVER (PARTITION BY source ORDER BY dayno) AS prev_hi,
         lag(dayno) OVER (PARTITION BY source ORDER BY dayno) AS prev_dayno
  FROM s
), flagged AS (
  SELECT source, dayno, coalesce(prev_dayno, dayno) AS from_day FROM x
  WHERE dayno >= {{ w.report_dayno }}
    AND greatest(hi - lo + 1 - n, 0)
        + CASE WHEN prev_hi IS NOT NULL AND lo > prev_hi + 1 THEN lo - prev_hi - 1 ELSE 0 END
        >= {{ p.gap_min_missing }}
), e AS (
  SELECT v.source, v.seq, v.ts_us,
         lag(v.seq) OVER (PARTITION BY v.source ORDER BY v.seq, v.ts_us) AS prev_seq,
         lag(v.ts_us) OVER (PARTITION BY v.source ORDER BY v.seq, v.ts_us) AS prev_us
  FROM ev_all v JOIN flagged f ON f.source = v.source
   AND v.dayno >= f.from_day AND v.dayno <= f.dayno
  WHERE v.seq IS NOT NULL
)
SELECT DISTINCT source, prev_seq + 1 AS first_missing, seq - 1 AS last_missing,
       seq - prev_seq - 1 AS missing, prev_us AS first_us, ts_us AS last_us
FROM e
WHERE seq - prev_seq > 1 AND ts_us >= {{ w.report_us }}
"""


def assess_gap(r: dict[str, Any], c: Context) -> list[Hit]:
    missing = int(r["missing"])
    if missing < c.p.gap_min_missing:
        return []
    text = (
        f"source {r['source']} is missing {plural(missing, 'event')} (sequence numbers "
        f"{num(r['first_missing'])} to {num(r['last_missing'])}) between "
        f"{c.local(r['first_us']):%Y-%m-%d %H:%M} and {c.local(r['last_us']):%H:%M}: "
        "accesses in that span cannot be checked"
    )
    severity = "high" if missing >= c.p.gap_high_missing else "medium"
    return [
        Hit(
            "source_gap",
            severity,
            f"source:{r['source']}",
            r["first_us"],
            r["last_us"],
            0,
            [text],
            metric=float(missing),
        )
    ]


RECORDED_GAP = """
SELECT source, first_seq, last_seq, missing, detected_us FROM gaps
WHERE detected_us IS NOT NULL AND detected_us >= {{ w.report_us }}
{% if w.until_us %}  AND detected_us < {{ w.until_us }}{% endif %}
"""


def assess_recorded_gap(r: dict[str, Any], c: Context) -> list[Hit]:
    missing = int(r["missing"])
    if missing < c.p.gap_min_missing:
        return []
    text = (
        f"the audit ingest recorded {plural(missing, 'missing event')} from source "
        f"{r['source']} (sequence numbers {num(r['first_seq'])} to {num(r['last_seq'])})"
    )
    severity = "high" if missing >= c.p.gap_high_missing else "medium"
    return [
        Hit(
            "source_gap",
            severity,
            f"source:{r['source']}",
            r["detected_us"],
            r["detected_us"],
            0,
            [text],
            metric=float(missing),
        )
    ]


DENIED = """
WITH dn AS (
  SELECT account_id, dayno, ts_us, patient_id,
         count(*) OVER (PARTITION BY account_id ORDER BY ts_us
             RANGE BETWEEN {{ p.denied_window_minutes * 60000000 }} PRECEDING AND CURRENT ROW)
             AS n_win
  FROM denied WHERE dayno >= {{ w.report_dayno }} - 1
)
SELECT account_id, dayno, max(n_win) AS peak, count(*) AS n_denied,
       count(DISTINCT patient_id) AS n_patients, min(ts_us) AS first_us, max(ts_us) AS last_us,
       {{ d.sample('patient_id', n) }} AS sample
FROM dn
WHERE dayno >= {{ w.report_dayno }} AND ts_us >= {{ w.report_us }}
GROUP BY account_id, dayno
HAVING max(n_win) >= {{ p.denied_min }}
"""


def assess_denied(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    refused = plural(int(r["n_denied"]), "time")
    text = (
        f"was refused {refused} {c.span(r['first_us'], r['last_us'])}"
        f", up to {num(r['peak'])} within {c.p.denied_window_minutes} minutes"
    )
    severity = "high" if int(r["peak"]) >= c.p.denied_high else "medium"
    return [
        Hit(
            "denied_burst",
            severity,
            acc,
            r["first_us"],
            r["last_us"],
            int(r["n_patients"]),
            [text],
            samples(r["sample"]),
            acc,
            c.vendor_of(acc),
            dayno=r["dayno"],
            metric=float(r["n_denied"]),
        )
    ]


RULES = [
    Rule(
        "source_gap",
        "integrity",
        "Events missing from a source",
        SOURCE_GAP,
        assess_gap,
        needs=("source_day", "ev_all"),
    ),
    Rule(
        "recorded_gap",
        "integrity",
        "Gaps the audit ingest recorded",
        RECORDED_GAP,
        assess_recorded_gap,
        emits=("source_gap",),
    ),
    Rule(
        "denied_burst",
        "integrity",
        "Burst of denied attempts",
        DENIED,
        assess_denied,
        needs=("denied",),
    ),
]
