"""Explanation-based auditing (Fabbri & LeFevre, PVLDB 2011): an access is *explained* when a
care relationship accounts for it — an encounter naming the account, an encounter of the
account's department (the encounter window widened by ``explain_before_days`` and
``explain_after_days``), or, for contractors and service accounts, a grant covering the
patient's cluster at that moment. What remains unexplained is what an investigator reads.

The published figure to beat: more than 94 % of accesses explained at a university hospital.
"""

from __future__ import annotations

from typing import Any

from phiguard.detection.rules.stages import flag

# The sums per account-day were taken while the accesses streamed past (stage acct_day_x,
# restricted to the report window there); the report adds them up.
EXPLAIN_SQL = """
SELECT sum(r_accesses) AS accesses, sum(r_events) AS events,
       sum(r_ev_account) AS ev_account, sum(r_ev_department) AS ev_department,
       sum(r_ev_grant) AS ev_grant, sum(r_ev_explained) AS ev_explained,
       sum(r_acc_explained) AS acc_explained
FROM acct_day_x
"""

EXPLAIN_BY_ACCOUNT_SQL = """
SELECT account_id, sum(r_accesses) AS accesses, sum(r_events) AS events,
       sum(r_ev_explained) AS ev_explained
FROM acct_day_x
GROUP BY account_id
HAVING sum(r_accesses) > 0
"""

# The same sums over the accesses of some accounts in some spans, from the events (the
# account filter reaches the scan; used to set labelled scenarios apart from benign work).
EXPLAIN_SPANS_SQL = """
WITH x AS (
  SELECT a.*, BY_ACCOUNT AS by_account, BY_DEPARTMENT AS by_department,
         coalesce(gr.by_grant, 0) = 1 AS by_grant
  FROM ({{ access_sql }}) a
  LEFT JOIN (
    SELECT DISTINCT v.account_id, v.patient_id, v.dayno, 1 AS by_grant
    FROM gev v JOIN gcheck c ON c.account_id = v.account_id AND c.qkey = v.qkey
                             AND c.action = v.action AND c.fields = v.fields
    WHERE c.covered AND v.patient_id IS NOT NULL
  ) gr ON gr.account_id = a.account_id AND gr.patient_id = a.patient_id AND gr.dayno = a.dayno
  WHERE a.account_id IN ({{ accounts }})
)
SELECT count(*) AS accesses, sum(n) AS events,
       sum(CASE WHEN by_account THEN n ELSE 0 END) AS ev_account,
       sum(CASE WHEN NOT by_account AND by_department THEN n ELSE 0 END) AS ev_department,
       sum(CASE WHEN NOT by_account AND NOT by_department AND by_grant THEN n ELSE 0 END)
           AS ev_grant,
       sum(CASE WHEN by_account OR by_department OR by_grant THEN n ELSE 0 END) AS ev_explained,
       sum(CASE WHEN by_account OR by_department OR by_grant THEN 1 ELSE 0 END) AS acc_explained
FROM x
WHERE dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }} AND ({{ where }})
""".replace("BY_ACCOUNT", flag("by_account", "a.flags")).replace(
    "BY_DEPARTMENT", flag("by_department", "a.flags")
)

SUMS = (
    "accesses",
    "events",
    "ev_account",
    "ev_department",
    "ev_grant",
    "ev_explained",
    "acc_explained",
)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn the one-row aggregate into the report ``phiguard detect`` prints."""
    r = rows[0] if rows else {}
    events = int(r.get("events") or 0)
    accesses = int(r.get("accesses") or 0)

    def share(x: Any, total: int) -> float:
        return round(int(x or 0) / total, 4) if total else 1.0

    return {
        "events": events,
        "accesses": accesses,
        "explained_events": int(r.get("ev_explained") or 0),
        "explained_share": share(r.get("ev_explained"), events),
        "explained_access_share": share(r.get("acc_explained"), accesses),
        "by_account_encounter": share(r.get("ev_account"), events),
        "by_department_encounter": share(r.get("ev_department"), events),
        "by_grant": share(r.get("ev_grant"), events),
    }


def benign_report(
    engine: Any, p: Any, w: Any, planted: list[tuple[str, int, int]]
) -> dict[str, Any]:
    """The explanation report without the planted accesses of a labelled data set: each
    ``(account_id, first_us, last_us)`` removes that account's accesses in that span. What
    is left is ordinary work, whose explained share is the quality figure (target ≥ 97 %).
    Needs a finished :func:`~phiguard.detection.pack.run_pack` on ``engine``."""
    from phiguard.detection.pack import render
    from phiguard.detection.rules.stages import STAGES

    total = (engine.query(render(EXPLAIN_SQL, engine, p, w)) or [{}])[0]
    if not planted:
        return summarise([total])

    def lit(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    where = " OR ".join(
        f"(account_id = {lit(a)} AND last_us >= {int(f)} AND first_us <= {int(to)})"
        for a, f, to in planted
    )
    sql = render(
        EXPLAIN_SPANS_SQL,
        engine,
        p,
        w,
        access_sql=render(STAGES["access_day"].sql, engine, p, w, all_rows=True),
        accounts=", ".join(sorted({lit(a) for a, _, _ in planted})),
        where=where,
    )
    part = (engine.query(sql) or [{}])[0]
    return summarise([{k: int(total.get(k) or 0) - int(part.get(k) or 0) for k in SUMS}])
