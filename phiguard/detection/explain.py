"""Explanation-based auditing (Fabbri & LeFevre, PVLDB 2011): an access is *explained* when a
care relationship accounts for it — an encounter naming the account, an encounter of the
account's department (the encounter window widened by ``explain_before_days`` and
``explain_after_days``), or, for contractors and service accounts, a grant covering the
patient's cluster at that moment. What remains unexplained is what an investigator reads.

The published figure to beat: more than 94 % of accesses explained at a university hospital.
"""

from __future__ import annotations

from typing import Any

EXPLAIN_SQL = """
SELECT count(*) AS accesses, sum(n) AS events,
       sum(CASE WHEN by_account THEN n ELSE 0 END) AS ev_account,
       sum(CASE WHEN NOT by_account AND by_department THEN n ELSE 0 END) AS ev_department,
       sum(CASE WHEN NOT by_account AND NOT by_department AND by_grant THEN n ELSE 0 END)
           AS ev_grant,
       sum(CASE WHEN explained THEN n ELSE 0 END) AS ev_explained,
       sum(CASE WHEN explained THEN 1 ELSE 0 END) AS acc_explained
FROM access_x
WHERE dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }}
{% if where is defined and where %}  AND ({{ where }}){% endif %}
"""

EXPLAIN_BY_ACCOUNT_SQL = """
SELECT account_id, count(*) AS accesses, sum(n) AS events,
       sum(CASE WHEN explained THEN n ELSE 0 END) AS ev_explained
FROM access_x
WHERE dayno >= {{ w.report_dayno }} AND last_us >= {{ w.report_us }}
GROUP BY account_id
"""


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
    is left is ordinary work, whose explained share is the quality figure (target ≥ 97 %)."""
    from phiguard.detection.pack import render

    def lit(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    where = (
        " AND ".join(
            f"NOT (account_id = {lit(a)} AND last_us >= {int(f)} AND first_us <= {int(to)})"
            for a, f, to in planted
        )
        or "true"
    )
    return summarise(engine.query(render(EXPLAIN_SQL, engine, p, w, where=where)))
