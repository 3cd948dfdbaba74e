"""Grant-aware rules: the contractor-specific signals the privacy products do not have.

* ``outside_grant`` — a query or record touched outside every grant of the account: wrong
  cluster, fields or action, more rows than the grant allows, or outside its window.
* ``after_contract_end`` / ``account_expired`` / ``suspended_vendor`` / ``unknown_account`` —
  the account should not have been able to work at all.
"""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.base import VERBS, Context, Hit, Rule, num, plural, samples

OUTSIDE_GRANT = """
SELECT account_id, dayno,
       count(*) AS n_units, sum(n_rows) AS n_rows, max(n_rows) AS max_unit_rows,
       min(first_us) AS first_us, max(last_us) AS last_us,
       sum(CASE WHEN grant_id IS NULL THEN 1 ELSE 0 END) AS n_no_grant,
       sum(CASE WHEN grant_id IS NOT NULL AND ok_window = 0 THEN 1 ELSE 0 END) AS n_window,
       sum(CASE WHEN grant_id IS NOT NULL AND ok_cluster = 0 THEN 1 ELSE 0 END) AS n_cluster,
       sum(CASE WHEN grant_id IS NOT NULL AND ok_action = 0 THEN 1 ELSE 0 END) AS n_action,
       sum(CASE WHEN grant_id IS NOT NULL AND ok_fields = 0 THEN 1 ELSE 0 END) AS n_fields,
       sum(CASE WHEN grant_id IS NOT NULL AND ok_rows = 0 THEN 1 ELSE 0 END) AS n_over_rows,
       max(CASE WHEN action IN ('export', 'print') AND max_rows IS NOT NULL
                     AND n_rows >= {{ p.grant_overrun_factor_critical }} * max_rows
                THEN n_rows ELSE 0 END) AS overrun_export_rows,
       {{ d.sorted_set('cl_min') }} AS clusters_lo,
       {{ d.sorted_set('cl_max') }} AS clusters_hi,
       {{ d.sorted_set('action') }} AS actions,
       {{ d.sorted_set('grant_id') }} AS grant_ids,
       {{ d.merge_samples('sample', n) }} AS sample
FROM gcheck
WHERE NOT covered AND last_us >= {{ w.report_us }} AND dayno >= {{ w.report_dayno }}
GROUP BY account_id, dayno
"""


def _grant_text(g: dict[str, Any]) -> str:
    scope = "all clusters" if g["scope_cluster"] == "ALL" else f"{g['scope_cluster']} only"
    fields = "all fields" if g["scope_fields"] == "*" else g["scope_fields"].replace(",", ", ")
    return (
        f"the grant covers {scope}, {num(g['max_rows'])} rows at most, "
        f"for {g['actions'].replace(',', '/')} of {fields}"
    )


def assess_outside_grant(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    rows = int(r["n_rows"])
    clusters = sorted(set(r["clusters_lo"] or []) | set(r["clusters_hi"] or []))
    where = f" from {'/'.join(clusters)}" if clusters else ""
    verbs = "/".join(VERBS.get(a, a) for a in r["actions"] or []) or "touched"
    lead = (
        f"{verbs} {plural(rows, 'patient record')}{where} "
        f"{c.span(r['first_us'], r['last_us'])} outside any grant"
    )
    why: list[str] = []
    grants = {g["grant_id"]: g for g in c.grants.get(acc, [])}
    if r["n_no_grant"]:
        why.append("the account has no grant at all")
    used = [grants[g] for g in (r["grant_ids"] or []) if g in grants]
    for g in used[:2]:
        why.append(_grant_text(g))
    problems = []
    if r["n_cluster"]:
        problems.append("another cluster")
    if r["n_over_rows"]:
        problems.append(f"more rows than allowed (largest query {num(r['max_unit_rows'])})")
    if r["n_action"]:
        problems.append("an action the grant does not allow")
    if r["n_fields"]:
        problems.append("fields the grant does not cover")
    if r["n_window"]:
        ended = [g for g in used if g["valid_to_us"] <= r["first_us"]]
        if ended:
            problems.append(f"after the grant ended on {c.day(ended[-1]['valid_to_us'])}")
        else:
            problems.append("outside the grant's time window")
    text = lead + ("; " + "; ".join(why) if why else "")
    if problems:
        text += " — " + ", ".join(problems)
    overrun = int(r["overrun_export_rows"] or 0) >= c.p.bulk_rows_min
    severity = "critical" if rows >= c.p.grant_violation_rows_critical or overrun else "high"
    return [
        Hit(
            "outside_grant",
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
        )
    ]


# Day-level conditions, read from the account-day summary instead of the raw events; only a
# vendor suspension has a time of day (the first and last access after it come from the day's
# span, clipped to the suspension).
ACCOUNT_STATUS = """
WITH f AS (
  SELECT d.account_id, d.dayno, d.day, d.first_us, d.last_us, d.n_events,
         a.account_id IS NULL AS unknown_account,
         (a.vendor_id IS NOT NULL AND a.contract_end IS NOT NULL AND d.day > a.contract_end)
             AS after_contract,
         ((a.active_to IS NOT NULL AND d.day > a.active_to)
          OR (a.active_from IS NOT NULL AND d.day < a.active_from)) AS expired,
         (a.suspended_us IS NOT NULL AND d.last_us >= a.suspended_us) AS suspended,
         a.suspended_us
  FROM acct_day d LEFT JOIN acct a ON a.account_id = d.account_id
  WHERE d.n_events > d.n_denied AND d.last_us >= {{ w.report_us }}
    AND d.dayno >= {{ w.report_dayno }}
), hits AS (
  SELECT * FROM f WHERE unknown_account OR after_contract OR expired OR suspended
), pts AS (
  -- for a suspension only the patients touched after it count
  SELECT x.account_id, x.dayno,
         sum(CASE WHEN hits.unknown_account OR hits.after_contract OR hits.expired
                       OR x.last_us >= hits.suspended_us THEN 1 ELSE 0 END) AS n_patients,
         min(CASE WHEN hits.suspended THEN greatest(x.first_us, hits.suspended_us) END)
             AS first_after,
         {{ d.sample('x.patient_id', n, 'true') }} AS sample
  FROM access_x x JOIN hits ON hits.account_id = x.account_id AND hits.dayno = x.dayno
  WHERE hits.unknown_account OR hits.after_contract OR hits.expired
     OR x.last_us >= hits.suspended_us
  GROUP BY x.account_id, x.dayno
)
SELECT hits.account_id, hits.dayno, hits.day,
       CASE WHEN hits.suspended AND NOT (hits.unknown_account OR hits.after_contract
                                         OR hits.expired)
            THEN coalesce(pts.first_after, greatest(hits.first_us, hits.suspended_us))
            ELSE hits.first_us END AS first_us,
       hits.last_us, hits.n_events, coalesce(pts.n_patients, 0) AS n_patients,
       CASE WHEN hits.unknown_account THEN 1 ELSE 0 END AS n_unknown,
       CASE WHEN hits.after_contract THEN 1 ELSE 0 END AS n_after_contract,
       CASE WHEN hits.expired THEN 1 ELSE 0 END AS n_expired,
       CASE WHEN hits.suspended THEN 1 ELSE 0 END AS n_suspended,
       pts.sample
FROM hits LEFT JOIN pts ON pts.account_id = hits.account_id AND pts.dayno = hits.dayno
"""


def assess_account_status(r: dict[str, Any], c: Context) -> list[Hit]:
    acc = r["account_id"]
    a = c.accounts.get(acc) or {}
    vendor = a.get("vendor_id")
    v = c.ref.vendors_by_id().get(vendor) if vendor else None
    pts, span = int(r["n_patients"]), c.span(r["first_us"], r["last_us"])
    common = dict(sample=samples(r["sample"]), account_id=acc, vendor_id=vendor, dayno=r["dayno"])
    hits = []
    if r["n_unknown"]:
        hits.append(
            Hit(
                "unknown_account",
                "high",
                acc,
                r["first_us"],
                r["last_us"],
                pts,
                [
                    f"an account that is not in the account register touched "
                    f"{plural(pts, 'patient')} {span}"
                ],
                **common,
            )
        )
    if r["n_after_contract"] and v:
        hits.append(
            Hit(
                "after_contract_end",
                "critical" if pts >= 50 else "high",
                acc,
                r["first_us"],
                r["last_us"],
                pts,
                [
                    f"worked {span} for vendor {vendor}, whose contract ended on "
                    f"{v['contract_end']}; touched {plural(pts, 'patient')}"
                ],
                **common,
            )
        )
    if r["n_expired"]:
        window = f"valid {a.get('active_from') or '…'} to {a.get('active_to') or '…'}"
        hits.append(
            Hit(
                "account_expired",
                "high",
                acc,
                r["first_us"],
                r["last_us"],
                pts,
                [
                    f"used {span} outside the account's validity ({window}); touched "
                    f"{plural(pts, 'patient')}"
                ],
                **common,
            )
        )
    if r["n_suspended"] and v:
        hits.append(
            Hit(
                "suspended_vendor",
                "critical",
                acc,
                r["first_us"],
                r["last_us"],
                pts,
                [
                    f"used {span} although vendor {vendor} is suspended; "
                    f"accesses to {plural(pts, 'patient')} succeeded that day"
                ],
                **common,
            )
        )
    return hits


RULES = [
    Rule(
        "outside_grant",
        "grant",
        "Access outside every grant of the account",
        OUTSIDE_GRANT,
        assess_outside_grant,
        needs=("gcheck",),
    ),
    Rule(
        "account_status",
        "grant",
        "Account used after its contract, validity or vendor ended",
        ACCOUNT_STATUS,
        assess_account_status,
        needs=("acct_day", "acct", "access_x"),
        emits=("unknown_account", "after_contract_end", "account_expired", "suspended_vendor"),
    ),
]
