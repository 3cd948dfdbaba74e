"""Attribution: which account, and which query or export, the leaked set came from.

Two kinds of evidence:

* **Canary (honey) records.** phiguard plants fictitious patients per vendor and per bulk
  export (:mod:`phiguard.leaks.canaries`). Nobody else ever received them, so a canary in a
  dump names its recipient with certainty (score 1.0).
* **Access events.** Every account and every query/export that touched leaked patients is a
  candidate source. Each gets its *coverage* (share of the leaked set it returned) and the
  probability that it leaked, from the guilty-agent model of Papadimitriou & Garcia-Molina
  (IEEE TKDE 2011): with ``V_t`` the set of sources that received leaked record ``t`` and
  ``p`` the chance the leaker got ``t`` some other way,
  ``Pr{G_i | S} = 1 - prod_{t in S ∩ R_i} (1 - (1 - p) / |V_t|)``.
  The ranking score is ``Pr{G_i | S} × coverage``: a clinician who saw three of the leaked
  patients in the course of care may well have "received" them, but explains almost nothing.

An account's many small queries (slow exfiltration) are summed at account level; an account
entry is only listed beside its best query when it explains clearly more than that query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from phiguard.app import App
from phiguard.clock import HKT
from phiguard.storage.models import Account

P_ELSEWHERE = 0.2  # p of the guilty-agent model
ACCOUNT_GAIN = 0.05  # list an account beside its best query only if it covers this much more
TOP = 10


@dataclass
class Source:
    account_id: str
    query_id: str | None
    covered: int
    guilt: float
    returned: int = 0  # patients the query/account returned in all
    action: str = ""
    first: datetime | None = None
    last: datetime | None = None
    queries: int = 0

    def score(self, leaked: int) -> float:
        return self.guilt * (self.covered / leaked if leaked else 0.0)


def _events(app: App, con: Any | None) -> Any:
    if con is not None:
        return con
    from phiguard.storage.events import EventStore

    return EventStore.of(app).connect()


def _where(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    sql, params = "", []
    if since is not None:
        sql += " AND ts >= ?"
        params.append(since)
    if until is not None:
        sql += " AND ts <= ?"
        params.append(until)
    return sql, params


def rank_sources(
    app: App,
    leaked: list[str],
    *,
    canaries: list[dict[str, Any]] | None = None,
    con: Any | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    p: float = P_ELSEWHERE,
) -> list[dict[str, Any]]:
    """Ranked attribution entries (spec §3.2 ``attribution``), best first."""
    out: list[dict[str, Any]] = []
    vendors: dict[str, str | None] = {}
    n = len(leaked)
    for c in canaries or []:
        out.append(
            {
                "account_id": c.get("account_id"),
                "vendor_id": c.get("vendor_id"),
                "query_id": c.get("query_id"),
                "score": 1.0,
                "coverage": None,
                "kind": "canary",
                "evidence": c["evidence"],
            }
        )
    if n:
        sources = _score(app, leaked, con, since, until, p)
        vendors = _vendors(app, {s.account_id for s in sources})
        for s in sources[:TOP]:
            out.append(_entry(s, n, vendors))
    for entry in out:
        if entry.get("vendor_id") is None and entry.get("account_id"):
            entry["vendor_id"] = vendors.get(entry["account_id"]) or _vendors(
                app, {entry["account_id"]}
            ).get(entry["account_id"])
    return out


def _score(
    app: App,
    leaked: list[str],
    con: Any | None,
    since: datetime | None,
    until: datetime | None,
    p: float,
) -> list[Source]:
    import pyarrow as pa

    db = _events(app, con)
    window, params = _where(since, until)
    db.register("_leaked", pa.table({"patient_id": sorted(set(leaked))}))
    try:
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _hit AS
            SELECT account_id, coalesce(nullif(query_id, ''), NULL) AS query_id, action, ts,
                   e.patient_id
            FROM events e SEMI JOIN _leaked l ON e.patient_id = l.patient_id
            WHERE outcome = 'success' AND action IN ('read', 'search', 'print', 'export')
            {window}""",
            params,
        )
        one = 1.0 - p
        accounts = db.execute(f"""
            WITH ap AS (SELECT DISTINCT account_id, patient_id FROM _hit),
                 vt AS (SELECT patient_id, count(*) AS n FROM ap GROUP BY patient_id),
                 agg AS (
                    SELECT ap.account_id, count(*) AS covered,
                           sum(ln(greatest(1 - {one} / vt.n, 1e-300))) AS lg
                    FROM ap JOIN vt USING (patient_id) GROUP BY ap.account_id)
            SELECT a.account_id, a.covered, 1 - exp(a.lg) AS guilt,
                   h.first, h.last, h.queries
            FROM agg a JOIN (SELECT account_id, min(ts) AS first, max(ts) AS last,
                                    count(DISTINCT query_id) AS queries
                             FROM _hit GROUP BY account_id) h USING (account_id)
            ORDER BY a.covered * (1 - exp(a.lg)) DESC LIMIT 200""").fetchall()
        queries = db.execute(f"""
            WITH qp AS (SELECT DISTINCT query_id, patient_id FROM _hit WHERE query_id IS NOT NULL),
                 vq AS (SELECT patient_id, count(*) AS n FROM qp GROUP BY patient_id),
                 agg AS (
                    SELECT qp.query_id, count(*) AS covered,
                           sum(ln(greatest(1 - {one} / vq.n, 1e-300))) AS lg
                    FROM qp JOIN vq USING (patient_id) GROUP BY qp.query_id)
            SELECT a.query_id, a.covered, 1 - exp(a.lg) AS guilt, h.account_id, h.action, h.first
            FROM agg a JOIN (SELECT query_id, any_value(account_id) AS account_id,
                                    any_value(action) AS action, min(ts) AS first
                             FROM _hit WHERE query_id IS NOT NULL GROUP BY query_id) h
                 USING (query_id)
            ORDER BY a.covered * (1 - exp(a.lg)) DESC LIMIT 200""").fetchall()
        q_sources = [
            Source(r[3], r[0], int(r[1]), float(r[2]), action=r[4], first=r[5]) for r in queries
        ]
        a_sources = [
            Source(
                r[0], None, int(r[1]), float(r[2]), first=r[3], last=r[4], queries=int(r[5] or 0)
            )
            for r in accounts
        ]
        _totals(db, q_sources, a_sources, window, params)
    finally:
        db.execute("DROP TABLE IF EXISTS _hit")
        db.unregister("_leaked")
    n = len(set(leaked))
    best_query: dict[str, int] = {}
    for q in q_sources:
        best_query[q.account_id] = max(best_query.get(q.account_id, 0), q.covered)
    keep = list(q_sources)
    for a in a_sources:
        if a.covered - best_query.get(a.account_id, 0) > ACCOUNT_GAIN * n:
            keep.append(a)
    # best score first; on a tie the narrower source (a query, then fewer rows) first
    keep.sort(
        key=lambda s: (
            -round(s.score(n), 6),
            s.query_id is None,
            s.returned or 0,
            s.account_id,
            s.query_id or "",
        )
    )
    return keep


def _totals(db: Any, qs: list[Source], accs: list[Source], window: str, params: list[Any]) -> None:
    """How many patients each top source returned in all (precision, for the evidence)."""
    top_q = [q.query_id for q in qs[: TOP * 2]]
    top_a = [a.account_id for a in accs[: TOP * 2]]
    if top_q:
        marks = ",".join("?" * len(top_q))
        got = dict(
            db.execute(
                "SELECT query_id, count(DISTINCT patient_id) FROM events "
                f"WHERE query_id IN ({marks}) "
                f"AND outcome = 'success' {window} GROUP BY query_id",
                top_q + params,
            ).fetchall()
        )
        for q in qs:
            q.returned = int(got.get(q.query_id, 0))
    if top_a:
        marks = ",".join("?" * len(top_a))
        got = dict(
            db.execute(
                "SELECT account_id, count(DISTINCT patient_id) FROM events "
                f"WHERE account_id IN ({marks}) "
                f"AND outcome = 'success' AND patient_id <> '' {window} GROUP BY account_id",
                top_a + params,
            ).fetchall()
        )
        for a in accs:
            a.returned = int(got.get(a.account_id, 0))


def _vendors(app: App, accounts: set[str]) -> dict[str, str | None]:
    if not accounts:
        return {}
    with app.session() as s:
        rows = s.execute(
            select(Account.account_id, Account.employer).where(
                Account.account_id.in_(sorted(accounts))
            )
        ).all()
    return {a: (None if e == "HA" else e) for a, e in rows}


def _when(ts: datetime | None) -> str:
    if ts is None:
        return "?"
    if ts.tzinfo is None:
        from datetime import UTC

        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(HKT).strftime("%Y-%m-%d %H:%M")


def _entry(s: Source, n: int, vendors: dict[str, str | None]) -> dict[str, Any]:
    coverage = s.covered / n
    if s.query_id is not None:
        what = {"export": "export", "print": "print run", "search": "search"}.get(s.action, "query")
        evidence = (
            f"the {what} {s.query_id} by {s.account_id} on {_when(s.first)} returned "
            f"{s.covered:,} of the {n:,} leaked patients"
        )
        if s.returned:
            evidence += f" ({s.returned:,} patients in all)"
        kind = "query"
    else:
        evidence = (
            f"account {s.account_id} accessed {s.covered:,} of the {n:,} leaked patients "
            f"between {_when(s.first)} and {_when(s.last)}"
            + (f" over {s.queries:,} queries" if s.queries > 1 else "")
        )
        kind = "account"
    return {
        "account_id": s.account_id,
        "vendor_id": vendors.get(s.account_id),
        "query_id": s.query_id,
        "score": round(s.score(n), 4),
        "coverage": round(coverage, 4),
        "kind": kind,
        "evidence": evidence,
    }
