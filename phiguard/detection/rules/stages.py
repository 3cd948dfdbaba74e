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
    daily: bool = False  # computed one local day at a time on engines that chunk (see below)
    # daily only in runs that keep day summaries (rollups.py): a small stage read from every
    # event, cheaper as one pass over all days than as a filtered pass per day, but free to
    # read from a kept summary
    summarised: bool = False
    scratch: bool = False  # daily: holds only the current day (read by the day's other stages)


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
{% if chunk %}  AND ts >= {{ d.ts_lit(chunk[0]) }} AND ts < {{ d.ts_lit(chunk[1]) }}{% endif %}
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
{% if chunk %}  AND ts >= {{ d.ts_lit(chunk[0]) }} AND ts < {{ d.ts_lit(chunk[1]) }}{% endif %}
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

# What explains an access, prepared once from the reference tables so that the per-access
# pass is a handful of joins on small tables instead of a join with every encounter of the
# patient followed by a regrouping of all accesses.
#
# An encounter explains an access of its account (or of an account of its department) whose
# span [first_us, last_us] meets the encounter's window [start - before, end + after] (an open
# encounter never ends). A patient's windows for one account (or one department) are merged
# into disjoint islands; the access meets one of the encounters exactly when it meets one of
# the islands. Each island carries the start of the next one, so the join can keep only the
# last island the access meets: at most one row per access, no regrouping, same answer.
ISLANDS = """
WITH w AS (
  SELECT patient_id, {{ key }} AS k,
         start_us - {{ (p.explain_before_days * 86400000000) | int }} AS s,
         CASE WHEN end_us IS NULL THEN {{ open_end }}
              ELSE end_us + {{ (p.explain_after_days * 86400000000) | int }} END AS e
  FROM encounters
  WHERE patient_id IS NOT NULL AND {{ key }} IS NOT NULL AND start_us IS NOT NULL
), o AS (
  SELECT patient_id, k, s, e,
         max(e) OVER (PARTITION BY patient_id, k ORDER BY s, e
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_e
  FROM w
), g AS (
  SELECT patient_id, k, s, e,
         sum(CASE WHEN prev_e IS NULL OR s > prev_e THEN 1 ELSE 0 END) OVER (
             PARTITION BY patient_id, k ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS isl
  FROM o
), i AS (
  SELECT patient_id, k, min(s) AS s, max(e) AS e FROM g GROUP BY patient_id, k, isl
)
SELECT patient_id, k AS {{ key }}, s, e,
       lead(s) OVER (PARTITION BY patient_id, k ORDER BY s) AS next_s
FROM i
"""
OPEN_END = 4611686018427387904  # 2^62 µs: later than any access

# Households: the surname and home-address blind indexes of account holders, numbered (an
# integer compares faster than two 64-digit keys, a hundred million times over).
HOUSEHOLDS = """
SELECT household, row_number() OVER (ORDER BY household) AS hh FROM (
  SELECT DISTINCT concat(surname_bidx, ':', address_bidx) AS household FROM accounts
  WHERE surname_bidx IS NOT NULL AND address_bidx IS NOT NULL
) k
"""

# What the per-access pass needs to know about an account, slim: its department, vendor,
# own patient record, household, and the local days it may work (contract and validity as day
# numbers; a vendor suspension as an instant).
ACCT_X = """
SELECT a.account_id, a.department, a.vendor_id, coalesce(a.needs_grant, false) AS needs_grant,
       a.patient_id, hh.hh,
       {{ d.day_no('a.active_from') }} AS from_day,
       least({{ d.day_no('a.active_to') }},
             CASE WHEN a.vendor_id IS NOT NULL THEN {{ d.day_no('a.contract_end') }} END)
           AS to_day,
       a.suspended_us
FROM acct a
LEFT JOIN households hh
       ON hh.household = concat(a.surname_bidx, ':', a.address_bidx)
"""

# Who a patient may be to an account, as one small table keyed by patient: a VIP, an account
# holder (a co-worker), or someone of an account holder's household (family when it is this
# account's).
PFLAGS = """
WITH h AS (
  SELECT patient_id, min(account_id) AS holder
  FROM accounts WHERE patient_id IS NOT NULL GROUP BY patient_id
), pt AS (
  SELECT p.patient_id, max(CASE WHEN p.vip THEN 1 ELSE 0 END) = 1 AS vip, max(k.hh) AS hh
  FROM patients p
  LEFT JOIN households k ON k.household = concat(p.surname_bidx, ':', p.address_bidx)
  WHERE p.patient_id IS NOT NULL AND (p.vip OR k.hh IS NOT NULL)
  GROUP BY p.patient_id
)
SELECT coalesce(pt.patient_id, h.patient_id) AS patient_id, coalesce(pt.vip, false) AS vip,
       h.holder, pt.hh
FROM pt FULL OUTER JOIN h ON h.patient_id = pt.patient_id
"""

# Flags of an access, packed into one small integer (one grouping key instead of eight).
FLAGS = {
    "vip": 1,
    "is_self": 2,
    "is_coworker": 4,
    "is_family": 8,
    "by_account": 16,
    "by_department": 32,
    "rep": 64,  # in the report window
    "needs_grant": 128,
}


def flag(name: str, col: str = "flags") -> str:
    """SQL for one flag of ``col`` as a boolean."""
    return f"({{{{ d.idiv('{col}', {FLAGS[name]}) }}}} % 2 = 1)"


# The flags of an access (columns of the same names) packed into one integer.
FLAGS_SUM = "\n           + ".join(
    f"CASE WHEN {name} THEN {bit} ELSE 0 END" for name, bit in FLAGS.items()
)


def meets(island: str, access: str = "g") -> str:
    """Join condition: the access's span meets the island, and it is the last island the
    access meets (so each access joins at most one island; see ISLANDS)."""
    return (
        f"AND {access}.last_us >= {island}.s AND {access}.first_us <= {island}.e\n"
        f"       AND ({island}.next_s IS NULL OR {island}.next_s > {access}.last_us)"
    )


# Which events are accesses to a patient's record (grouped into ACCESS_DAY's accesses, and
# into the accesses of a day summary, rollups.py: one definition for both).
ACCESS_EVENTS = "outcome = 'success' AND patient_id IS NOT NULL"

# Which accesses ACCESS_DAY keeps row by row (the others are folded into counting rows).
KEPT = """NOT (by_account OR by_department) OR vip OR is_self OR is_coworker
                   OR is_family OR needs_grant OR vendor_id IS NOT NULL OR barred"""


# One row per account, patient and day is the grain of explanation-based auditing: what
# explains the access — an encounter of the account or of its department (a grant is added
# later, for the accounts that need one) — who the patient is to the account, and whether
# the account was allowed to work that day at all. A hospital's history holds tens of
# millions of accesses, ~98 % of them explained routine that no rule reads one by one; so
# ACCESS_DAY keeps the others row by row (patient_id set) and folds the routine ones into a
# few counting rows per account and day (patient_id NULL, n_acc accesses). On DuckDB it runs
# one day at a time, which keeps each day's accesses in memory.
#
# Kept row by row: what encounters leave unexplained, every VIP, self, co-worker and family
# access, everything of accounts that need a grant or belong to a vendor, and everything of
# an account on a day it should not have worked (account_status reads all of those).
# ``all_rows`` keeps every access row by row (the quality report's per-span sums).
ACCESS_DAY = (
    """
WITH g AS (
  SELECT account_id, patient_id, min(dayno) AS dayno, count(*) AS n,
         min(ts_us) AS first_us, max(ts_us) AS last_us
  FROM ev
  WHERE ACCESS_EVENTS
  GROUP BY account_id, patient_id{% if not one_day %}, dayno{% endif %}
), j AS (
  SELECT g.account_id, g.patient_id, g.dayno, g.n, g.first_us, g.last_us, a.vendor_id,
         coalesce(a.needs_grant, false) AS needs_grant,
         coalesce(f.vip, false) AS vip,
         (a.patient_id IS NOT NULL AND a.patient_id = g.patient_id) AS is_self,
         (f.holder IS NOT NULL AND (a.patient_id IS NULL OR a.patient_id <> g.patient_id))
             AS is_coworker,
         (f.hh IS NOT NULL AND f.hh = a.hh
          AND (a.patient_id IS NULL OR a.patient_id <> g.patient_id)) AS is_family,
         (a.account_id IS NOT NULL AND ia.s IS NOT NULL) AS by_account,
         (id.s IS NOT NULL) AS by_department,
         (a.account_id IS NULL OR coalesce(g.dayno > a.to_day, false)
          OR coalesce(g.dayno < a.from_day, false)
          OR coalesce(g.last_us >= a.suspended_us, false)) AS barred,
         (g.dayno >= {{ w.report_dayno }} AND g.last_us >= {{ w.report_us }}) AS rep
  FROM g
  LEFT JOIN acct_x a ON a.account_id = g.account_id
  LEFT JOIN isl_account ia ON ia.patient_id = g.patient_id AND ia.account_id = g.account_id
       MEETS_IA
  LEFT JOIN isl_department id ON id.patient_id = g.patient_id AND id.department = a.department
       MEETS_ID
  LEFT JOIN pflags f ON f.patient_id = g.patient_id
), k AS (
  SELECT account_id, dayno, n, first_us, last_us,
{% if all_rows is defined and all_rows %}
         patient_id,
{% else %}
         CASE WHEN KEPT THEN patient_id END AS patient_id,
{% endif %}
         FLAGS_SUM AS flags
  FROM j
)
SELECT account_id, dayno, patient_id, flags, count(*) AS n_acc, CAST(sum(n) AS BIGINT) AS n,
       min(first_us) AS first_us, max(last_us) AS last_us
FROM k
GROUP BY account_id, dayno, patient_id, flags
""".replace("ACCESS_EVENTS", ACCESS_EVENTS)
    .replace("FLAGS_SUM", FLAGS_SUM)
    .replace("KEPT", KEPT)
    .replace("MEETS_IA", meets("ia"))
    .replace("MEETS_ID", meets("id"))
)

# The accesses a rule may look at one by one (see ACCESS_DAY).
ACCESS_SUB = (
    """
SELECT x.account_id, x.patient_id, x.dayno, x.n, x.first_us, x.last_us, a.vendor_id,
"""
    + ", ".join(
        f"{flag(name, 'x.flags')} AS {name}"
        for name in ("needs_grant", "vip", "is_self", "is_coworker", "is_family")
    )
    + ",\n"
    + ", ".join(f"{flag(name, 'x.flags')} AS {name}" for name in ("by_account", "by_department"))
    + """
FROM access_day x LEFT JOIN acct_x a ON a.account_id = x.account_id
WHERE x.patient_id IS NOT NULL
"""
)

# Per account and day: how many patients, how many unexplained, and the explanation report's
# sums (restricted to the report window). Accounts that need a grant are counted from
# access_x once the grants are checked (ACCT_DAY_X).
_X_SUMS = """
CAST(sum({k}) AS BIGINT) AS n_patients,
CAST(sum(CASE WHEN {ex} THEN 0 ELSE {k} END) AS BIGINT) AS n_unexplained,
CAST(sum(CASE WHEN {vip} AND NOT ({ex}) THEN {k} ELSE 0 END) AS BIGINT) AS n_vip,
CAST(sum(CASE WHEN {needs} AND NOT ({gr}) THEN {k} ELSE 0 END) AS BIGINT) AS n_outside_grant,
CAST(sum(CASE WHEN {rep} THEN {k} ELSE 0 END) AS BIGINT) AS r_accesses,
CAST(sum(CASE WHEN {rep} THEN n ELSE 0 END) AS BIGINT) AS r_events,
CAST(sum(CASE WHEN {rep} AND {acc} THEN n ELSE 0 END) AS BIGINT) AS r_ev_account,
CAST(sum(CASE WHEN {rep} AND NOT {acc} AND {dep} THEN n ELSE 0 END) AS BIGINT)
    AS r_ev_department,
CAST(sum(CASE WHEN {rep} AND NOT {acc} AND NOT {dep} AND {gr} THEN n ELSE 0 END)
    AS BIGINT) AS r_ev_grant,
CAST(sum(CASE WHEN {rep} AND {ex} THEN n ELSE 0 END) AS BIGINT) AS r_ev_explained,
CAST(sum(CASE WHEN {rep} AND {ex} THEN {k} ELSE 0 END) AS BIGINT) AS r_acc_explained
"""
_REP = "(dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }})"

ACCT_DAY_XD = (
    "SELECT account_id, dayno,"
    + _X_SUMS.format(
        k="n_acc",
        ex=f"({flag('by_account')} OR {flag('by_department')})",
        gr="false",
        rep=flag("rep"),
        vip=flag("vip"),
        needs=flag("needs_grant"),
        acc=flag("by_account"),
        dep=flag("by_department"),
    )
    + f"FROM access_day WHERE NOT {flag('needs_grant')} GROUP BY account_id, dayno\n"
)

# The accesses of access_sub with the grant explanation: explained by a grant when the access
# belongs to a unit of work that a grant fully covers. An access absent from access_x is
# explained by an encounter and is nobody special to the account.
ACCESS_X = """
WITH gr AS (
  SELECT DISTINCT v.account_id, v.patient_id, v.dayno, 1 AS by_grant
  FROM gev v JOIN gcheck c ON c.account_id = v.account_id AND c.qkey = v.qkey
                           AND c.action = v.action AND c.fields = v.fields
  WHERE c.covered AND v.patient_id IS NOT NULL
)
SELECT x.account_id, x.patient_id, x.dayno, x.n, x.first_us, x.last_us, x.vendor_id,
       x.needs_grant, x.vip, x.is_self, x.is_coworker, x.is_family, x.by_account,
       x.by_department, coalesce(gr.by_grant, 0) = 1 AS by_grant,
       (x.by_account OR x.by_department OR coalesce(gr.by_grant, 0) = 1) AS explained
FROM access_sub x
LEFT JOIN gr ON gr.account_id = x.account_id AND gr.patient_id = x.patient_id
            AND gr.dayno = x.dayno
"""

ACCT_DAY_X = (
    "SELECT * FROM acct_day_xd\nUNION ALL\nSELECT account_id, dayno,"
    + _X_SUMS.format(
        k="1",
        ex="explained",
        gr="by_grant",
        rep=_REP,
        vip="vip",
        needs="needs_grant",
        acc="by_account",
        dep="by_department",
    )
    + "FROM access_x WHERE needs_grant GROUP BY account_id, dayno\n"
)

# One row per account and day: volumes, denials, night work, and how much was explained.
ACCT_DAY = """
WITH e AS (
  SELECT account_id, dayno, {{ d.date_of('dayno') }} AS day,
         CAST(sum(n) AS BIGINT) AS n_events, CAST(sum(n_denied) AS BIGINT) AS n_denied,
         CAST(sum(n_exported) AS BIGINT) AS n_exported,
         CAST(sum(CASE WHEN hr < 7 OR hr >= 22 THEN n ELSE 0 END) AS BIGINT) AS n_night,
         min(first_us) AS first_us, max(last_us) AS last_us
  FROM acct_hour GROUP BY account_id, dayno
), x AS (
  SELECT account_id, dayno, n_patients, n_unexplained, n_vip, n_outside_grant
  FROM acct_day_x
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

# One row per account, day and hour (the account-day's volumes are summed from it).
ACCT_HOUR = """
SELECT account_id, dayno, hr, count(*) AS n,
       CAST(sum(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS BIGINT) AS n_denied,
       CAST(sum(CASE WHEN outcome = 'success' AND action IN ('export', 'print')
                     THEN 1 ELSE 0 END) AS BIGINT) AS n_exported,
       min(ts_us) AS first_us, max(ts_us) AS last_us
FROM ev GROUP BY account_id, dayno, hr
"""

# The events of queries and exports (rows sharing a query_id): few, read by the bulk rule.
QEV = """
SELECT account_id, query_id, action, fields, patient_id, ts_us, dayno
FROM ev
WHERE query_id IS NOT NULL AND outcome = 'success'
"""

# Denied attempts (few), read by the denied-burst rule.
DENIED = """
SELECT account_id, dayno, ts_us, patient_id FROM ev WHERE outcome = 'denied'
"""

# Per source and day: how many events and the range of their sequence numbers (every event,
# with or without an account), read by the source-gap rule.
SOURCE_DAY = """
SELECT source, dayno, count(*) AS n, min(seq) AS lo, max(seq) AS hi
FROM ev_all WHERE seq IS NOT NULL GROUP BY source, dayno
"""

# One row per query or export.
QUERIES = """
SELECT account_id, query_id, min(action) AS action, max(fields) AS fields,
       count(patient_id) AS n_rows, min(ts_us) AS first_us, max(ts_us) AS last_us,
       min(dayno) AS dayno
FROM qev
GROUP BY account_id, query_id
"""

# Events of accounts that need a grant (contractors, IT support, service accounts): few.
GEV0 = """
SELECT e.account_id, coalesce(e.query_id, e.event_id) AS qkey, e.action, e.fields,
       e.patient_id, e.ts_us, e.dayno
FROM ev e
JOIN accounts a ON a.account_id = e.account_id AND a.needs_grant
WHERE e.outcome = 'success'
"""

# …with the patient's cluster (a second step: the engine then knows these events are far
# fewer than the patients, and looks the patients up in a table of the events, not the
# other way round).
GEV = """
SELECT e.*, pt.cluster AS p_cluster
FROM gev0 e LEFT JOIN patients pt ON pt.patient_id = e.patient_id
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


def _islands(key: str) -> str:
    return ISLANDS.replace("{{ key }}", key).replace("{{ open_end }}", str(OPEN_END))


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage("ev", EV, "view"),
        Stage("ev_all", EV_ALL, "view"),
        Stage("acct", ACCT, "table"),
        Stage("isl_account", _islands("account_id"), "table"),
        Stage("isl_department", _islands("department"), "table"),
        Stage("households", HOUSEHOLDS, "table"),
        Stage("acct_x", ACCT_X, "table", ("acct", "households")),
        Stage("pflags", PFLAGS, "table", ("households",)),
        Stage(
            "access_day",
            ACCESS_DAY,
            "table",
            ("ev", "acct_x", "isl_account", "isl_department", "pflags"),
            transient=True,
            daily=True,
            scratch=True,
        ),
        Stage(
            "access_sub",
            ACCESS_SUB,
            "table",
            ("access_day", "acct_x"),
            transient=True,
            daily=True,
        ),
        Stage("acct_day_xd", ACCT_DAY_XD, "table", ("access_day",), transient=True, daily=True),
        Stage("access_x", ACCESS_X, "table", ("access_sub", "gev", "gcheck")),
        Stage("acct_day_x", ACCT_DAY_X, "table", ("acct_day_xd", "access_x")),
        Stage("acct_client", ACCT_CLIENT, "table", ("ev",), daily=True),
        Stage("acct_day", ACCT_DAY, "table", ("acct_hour", "acct_day_x", "acct_client")),
        Stage("acct_hour", ACCT_HOUR, "table", ("ev",), daily=True),
        Stage("qev", QEV, "table", ("ev",)),
        Stage("denied", DENIED, "table", ("ev",), summarised=True),
        Stage("source_day", SOURCE_DAY, "table", ("ev_all",), summarised=True),
        Stage("queries", QUERIES, "table", ("qev",)),
        Stage("gev0", GEV0, "table", ("ev",), transient=True),
        Stage("gev", GEV, "table", ("gev0",)),
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
