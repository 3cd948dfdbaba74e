"""Shared intermediate relations the rules read, computed once per run.

Each rule could scan the raw events itself, but the pack would then read 100 million rows a
dozen times. Instead a few passes condense the events into relations at the grain the rules
think in — an account's day, an account's patient on a day, one query — and the rules read
those. ``table`` stages are materialised (DuckDB temp tables, cached Spark DataFrames);
``view`` stages are inlined where used.

Templates see: ``d`` (the engine's dialect macros), ``p`` (DetectionSettings), ``w`` (the
window: ``load_from``/``until`` datetimes or None, ``report_us`` and ``report_dayno``: hits
before those are history only), ``n`` (sample size).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    sql: str
    kind: str = "table"  # table | view
    needs: tuple[str, ...] = ()
    transient: bool = False  # dropped once every stage that reads it is built (memory)


EV = """
SELECT event_id, source, seq, account_id, lower(action) AS action,
       NULLIF(patient_id, '') AS patient_id,
       replace(lower(coalesce(fields, '')), ' ', '') AS fields,
       NULLIF(query_id, '') AS query_id,
       NULLIF(client_ip, '') AS client_ip, NULLIF(device_id, '') AS device_id,
       lower(coalesce(outcome, 'success')) AS outcome,
       {{ d.ts_us('ts') }} AS ts_us,
{% if w.offset_us is not none %}
       {{ d.date_of(d.idiv(d.ts_us('ts') ~ ' + ' ~ w.offset_us, 86400000000)) }} AS day,
       {{ d.idiv(d.ts_us('ts') ~ ' + ' ~ w.offset_us, 86400000000) }} AS dayno,
       {{ d.idiv(d.ts_us('ts') ~ ' + ' ~ w.offset_us, 3600000000) }} % 24 AS hr
{% else %}
       CAST(ts AS DATE) AS day,
       {{ d.day_no('CAST(ts AS DATE)') }} AS dayno,
       hour(ts) AS hr
{% endif %}
FROM events_raw
WHERE account_id IS NOT NULL
{% if w.load_from %}  AND ts >= {{ d.ts_lit(w.load_from) }}{% endif %}
{% if w.until %}  AND ts < {{ d.ts_lit(w.until) }}{% endif %}
"""

EV_ALL = """
SELECT source, seq, {{ d.ts_us('ts') }} AS ts_us,
{% if w.offset_us is not none %}
       {{ d.idiv(d.ts_us('ts') ~ ' + ' ~ w.offset_us, 86400000000) }} AS dayno
{% else %}
       {{ d.day_no('CAST(ts AS DATE)') }} AS dayno
{% endif %}
FROM events_raw
WHERE true
{% if w.load_from %}  AND ts >= {{ d.ts_lit(w.load_from) }}{% endif %}
{% if w.until %}  AND ts < {{ d.ts_lit(w.until) }}{% endif %}
"""

ACCT = """
SELECT a.account_id, a.vendor_id, a.role, a.department, a.cluster, a.active_from, a.active_to,
       a.patient_id, a.surname_bidx, a.address_bidx, a.status, a.needs_grant,
       v.status AS vendor_status, v.contract_start, v.contract_end, v.suspended_us,
       coalesce(g.n_grants, 0) AS n_grants
FROM accounts a
LEFT JOIN vendors v ON v.vendor_id = a.vendor_id
LEFT JOIN (SELECT account_id, count(*) AS n_grants FROM grants GROUP BY account_id) g
       ON g.account_id = a.account_id
"""

# One row per account, patient and day: the grain of explanation-based auditing.
ACCESS = """
SELECT g.*, {{ d.row_id() }} AS aid FROM (
  SELECT account_id, patient_id, dayno, count(*) AS n,
         min(ts_us) AS first_us, max(ts_us) AS last_us
  FROM ev
  WHERE outcome = 'success' AND patient_id IS NOT NULL
  GROUP BY account_id, patient_id, dayno
) g
"""

# Each access with what explains it (an encounter of the account, one of its department, a
# grant covering the patient's cluster at the time) and who the patient is to the account.
ACCESS_X = """
WITH m AS (
  -- the accesses some encounter explains, keyed by the access's row id: a join and a
  -- GROUP BY on one integer (a patient's several encounters must not multiply the access)
  SELECT x.aid,
         max(CASE WHEN e.account_id = x.account_id THEN 1 ELSE 0 END) AS by_account,
         max(CASE WHEN e.department = a.department THEN 1 ELSE 0 END) AS by_department
  FROM access x
  JOIN accounts a ON a.account_id = x.account_id
  JOIN encounters e ON e.patient_id = x.patient_id
  WHERE (e.account_id = x.account_id OR e.department = a.department)
    AND x.last_us >= e.start_us - {{ (p.explain_before_days * 86400000000) | int }}
    AND (e.end_us IS NULL
         OR x.first_us <= e.end_us + {{ (p.explain_after_days * 86400000000) | int }})
  GROUP BY x.aid
), gr AS (
  -- explained by a grant: the access belongs to a unit of work that a grant fully covers
  SELECT DISTINCT v.account_id, v.patient_id, v.dayno, 1 AS by_grant
  FROM gev v JOIN gcheck c ON c.account_id = v.account_id AND c.qkey = v.qkey
                           AND c.action = v.action AND c.fields = v.fields
  WHERE c.covered AND v.patient_id IS NOT NULL
), holders AS (
  SELECT patient_id, min(account_id) AS holder
  FROM accounts WHERE patient_id IS NOT NULL GROUP BY patient_id
)
SELECT x.account_id, x.patient_id, x.dayno, x.n, x.first_us, x.last_us,
       a.vendor_id, coalesce(a.needs_grant, false) AS needs_grant,
       coalesce(pt.vip, false) AS vip,
       (a.patient_id IS NOT NULL AND a.patient_id = x.patient_id) AS is_self,
       (h.holder IS NOT NULL AND (a.patient_id IS NULL OR a.patient_id <> x.patient_id))
           AS is_coworker,
       (a.surname_bidx IS NOT NULL AND pt.surname_bidx = a.surname_bidx
        AND a.address_bidx IS NOT NULL AND pt.address_bidx = a.address_bidx
        AND (a.patient_id IS NULL OR a.patient_id <> x.patient_id)) AS is_family,
       coalesce(m.by_account, 0) = 1 AS by_account,
       coalesce(m.by_department, 0) = 1 AS by_department,
       coalesce(gr.by_grant, 0) = 1 AS by_grant,
       (coalesce(m.by_account, 0) = 1 OR coalesce(m.by_department, 0) = 1
        OR coalesce(gr.by_grant, 0) = 1) AS explained
FROM access x
LEFT JOIN m ON m.aid = x.aid
LEFT JOIN accounts a ON a.account_id = x.account_id
LEFT JOIN patients pt ON pt.patient_id = x.patient_id
LEFT JOIN holders h ON h.patient_id = x.patient_id
LEFT JOIN gr ON gr.account_id = x.account_id AND gr.patient_id = x.patient_id
            AND gr.dayno = x.dayno
"""

# One row per account and day: volumes, denials, night work, and how much was explained.
ACCT_DAY = """
WITH e AS (
  SELECT account_id, dayno, min(day) AS day, count(*) AS n_events,
         sum(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS n_denied,
         sum(CASE WHEN outcome = 'success' AND action IN ('export', 'print') THEN 1 ELSE 0 END)
             AS n_exported,
         sum(CASE WHEN hr < 7 OR hr >= 22 THEN 1 ELSE 0 END) AS n_night,
         min(ts_us) AS first_us, max(ts_us) AS last_us
  FROM ev GROUP BY account_id, dayno
), x AS (
  SELECT account_id, dayno, count(*) AS n_patients,
         sum(CASE WHEN explained THEN 0 ELSE 1 END) AS n_unexplained,
         sum(CASE WHEN vip AND NOT explained THEN 1 ELSE 0 END) AS n_vip,
         sum(CASE WHEN needs_grant AND NOT by_grant THEN 1 ELSE 0 END) AS n_outside_grant
  FROM access_x GROUP BY account_id, dayno
), c AS (
  SELECT account_id, dayno, count(DISTINCT client_ip) AS n_ips,
         count(DISTINCT device_id) AS n_devices
  FROM acct_client GROUP BY account_id, dayno
)
SELECT e.account_id, e.dayno, e.day, e.n_events, e.n_denied, e.n_exported, e.n_night,
       e.first_us, e.last_us,
       coalesce(x.n_patients, 0) AS n_patients, coalesce(x.n_unexplained, 0) AS n_unexplained,
       coalesce(x.n_vip, 0) AS n_vip, coalesce(x.n_outside_grant, 0) AS n_outside_grant,
       coalesce(c.n_ips, 0) AS n_ips, coalesce(c.n_devices, 0) AS n_devices
FROM e
LEFT JOIN x ON x.account_id = e.account_id AND x.dayno = e.dayno
LEFT JOIN c ON c.account_id = e.account_id AND c.dayno = e.dayno
"""

ACCT_CLIENT = """
SELECT account_id, dayno, client_ip, device_id, count(*) AS n,
       min(ts_us) AS first_us, max(ts_us) AS last_us
FROM ev GROUP BY account_id, dayno, client_ip, device_id
"""

ACCT_HOUR = """
SELECT account_id, dayno, hr, count(*) AS n, min(ts_us) AS first_us, max(ts_us) AS last_us
FROM ev GROUP BY account_id, dayno, hr
"""

# One row per query or export (rows sharing a query_id).
QUERIES = """
SELECT account_id, query_id, min(action) AS action, max(fields) AS fields,
       count(patient_id) AS n_rows, min(ts_us) AS first_us, max(ts_us) AS last_us,
       min(dayno) AS dayno
FROM ev
WHERE query_id IS NOT NULL AND outcome = 'success'
GROUP BY account_id, query_id
"""

# Events of accounts that need a grant (contractors, IT support, service accounts): few.
GEV = """
SELECT e.account_id, coalesce(e.query_id, e.event_id) AS qkey, e.action, e.fields,
       e.patient_id, e.ts_us, e.dayno, pt.cluster AS p_cluster
FROM ev e
JOIN accounts a ON a.account_id = e.account_id AND a.needs_grant
LEFT JOIN patients pt ON pt.patient_id = e.patient_id
WHERE e.outcome = 'success'
"""

# Units of work of those accounts: a query, or a lone event.
GUNITS = """
SELECT account_id, qkey, action, fields,
       count(patient_id) AS n_rows, min(ts_us) AS first_us, max(ts_us) AS last_us,
       min(dayno) AS dayno, min(p_cluster) AS cl_min, max(p_cluster) AS cl_max,
       {{ d.sample('patient_id', n) }} AS sample
FROM gev
GROUP BY account_id, qkey, action, fields
"""

# How many rows of each unit fall outside each grant's cluster. A patient is inside when
# registered in the cluster, or cared for there at the time: an encounter (widened like the
# explanations) whose clinician works in the cluster — or names no clinician, whose cluster
# is then unknown and given the benefit of the doubt. A nightly export of a cluster's
# discharges includes patients registered elsewhere; a dump of another cluster does not.
GSCOPE = """
WITH pe AS (
  SELECT DISTINCT v.account_id, v.qkey, v.patient_id, coalesce(ac.cluster, '*') AS e_cluster
  FROM gev v
  JOIN encounters en ON en.patient_id = v.patient_id
   AND v.ts_us >= en.start_us - {{ (p.explain_before_days * 86400000000) | int }}
   AND (en.end_us IS NULL
        OR v.ts_us <= en.end_us + {{ (p.explain_after_days * 86400000000) | int }})
  LEFT JOIN accounts ac ON ac.account_id = en.account_id
), ok AS (
  SELECT DISTINCT pe.account_id, pe.qkey, pe.patient_id, g.grant_id
  FROM pe JOIN grants g ON g.account_id = pe.account_id
  WHERE pe.e_cluster = g.scope_cluster OR pe.e_cluster = '*' OR pe.e_cluster = 'ALL'
)
SELECT v.account_id, v.qkey, v.action, v.fields, g.grant_id,
       sum(CASE WHEN v.patient_id IS NOT NULL AND g.scope_cluster <> 'ALL'
                     AND (v.p_cluster IS NULL OR v.p_cluster <> g.scope_cluster)
                     AND ok.grant_id IS NULL THEN 1 ELSE 0 END) AS n_out_cluster
FROM gev v
JOIN grants g ON g.account_id = v.account_id
LEFT JOIN ok ON ok.account_id = v.account_id AND ok.qkey = v.qkey
            AND ok.patient_id = v.patient_id AND ok.grant_id = g.grant_id
GROUP BY v.account_id, v.qkey, v.action, v.fields, g.grant_id
"""

# Each unit against each grant of its account; the best-matching grant decides.
GCHECK = """
WITH pairs AS (
  SELECT u.*, g.grant_id, g.valid_to_us, g.max_rows, g.scope_cluster,
         coalesce(s.n_out_cluster, 0) AS n_out_cluster,
         CASE WHEN u.first_us >= g.valid_from_us AND u.last_us < g.valid_to_us
              THEN 1 ELSE 0 END AS ok_window,
         CASE WHEN g.scope_cluster = 'ALL' OR coalesce(s.n_out_cluster, 0) = 0
              THEN 1 ELSE 0 END AS ok_cluster,
         CASE WHEN concat(',', g.actions, ',') LIKE concat('%,', u.action, ',%')
              THEN 1 ELSE 0 END AS ok_action,
         CASE WHEN g.scope_fields = '*' OR u.fields = ''
                   OR {{ d.csv_subset('u.fields', 'g.scope_fields') }} THEN 1 ELSE 0 END
              AS ok_fields,
         CASE WHEN u.n_rows <= g.max_rows THEN 1 ELSE 0 END AS ok_rows
  FROM gunits u
  LEFT JOIN grants g ON g.account_id = u.account_id
  LEFT JOIN gscope s ON s.account_id = u.account_id AND s.qkey = u.qkey
                    AND s.action = u.action AND s.fields = u.fields AND s.grant_id = g.grant_id
), ranked AS (
  SELECT pairs.*,
         row_number() OVER (
           PARTITION BY account_id, qkey, action, fields
           ORDER BY ok_window + ok_cluster + ok_action + ok_fields + ok_rows DESC,
                    valid_to_us DESC NULLS LAST, grant_id NULLS LAST) AS rk
  FROM pairs
)
SELECT account_id, qkey, action, fields, n_rows, first_us, last_us, dayno, cl_min, cl_max,
       sample, grant_id, max_rows, scope_cluster, n_out_cluster,
       ok_window, ok_cluster, ok_action, ok_fields, ok_rows,
       (ok_window + ok_cluster + ok_action + ok_fields + ok_rows = 5) AS covered
FROM ranked WHERE rk = 1
"""

STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage("ev", EV, "view"),
        Stage("ev_all", EV_ALL, "view"),
        Stage("acct", ACCT, "view"),
        Stage("access", ACCESS, "table", ("ev",), transient=True),
        Stage("access_x", ACCESS_X, "table", ("access", "gev", "gcheck")),
        Stage("acct_client", ACCT_CLIENT, "table", ("ev",)),
        Stage("acct_day", ACCT_DAY, "table", ("ev", "access_x", "acct_client")),
        Stage("acct_hour", ACCT_HOUR, "table", ("ev",)),
        Stage("queries", QUERIES, "table", ("ev",)),
        Stage("gev", GEV, "table", ("ev",)),
        Stage("gunits", GUNITS, "table", ("gev",)),
        Stage("gscope", GSCOPE, "table", ("gev",)),
        Stage("gcheck", GCHECK, "table", ("gunits", "gscope")),
    ]
}


def closure(names: tuple[str, ...] | list[str]) -> list[str]:
    """The stages ``names`` need, dependencies first, in a stable order."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in STAGES[name].needs:
            visit(dep)
        order.append(name)

    for n in names:
        visit(n)
    return order
