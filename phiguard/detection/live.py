"""The live evaluator: the rules that can fire while an export is still running.

Batch detection re-reads days of events; the live path sees each micro-batch once and keeps
just enough state to notice the event that crosses a threshold: rows per query so far,
distinct patients per account and day, denied attempts in the last minutes, grant checks per
unit of work. Baselines (an account's previous daily maximum, its usual hours and addresses,
its last active day, its peers' medians) are read once from the event store at start.

Work per batch is vectorised (pandas over Arrow, set lookups for VIPs, staff-patients and
family pairs); the large reference tables (patients, encounters) stay in an in-memory DuckDB
and are joined only with the few rows that need them (contractors' events, a query that just
crossed a threshold). The live rules are the same rules as the batch pack and word their
reasons the same way; a later batch run completes the alert the live path raised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phiguard.detection.baselines import DAY_US, Baselines
from phiguard.detection.engines.duckdb import DuckDBEngine
from phiguard.detection.rules.base import (
    VERBS,
    Context,
    Hit,
    num,
    plural,
    ratio,
)
from phiguard.detection.rules.grant import _grant_text
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference

EPOCH_DAY = date(1970, 1, 1)
HOUR_US = 3_600_000_000
COLUMNS = (
    "event_id",
    "ts",
    "account_id",
    "action",
    "patient_id",
    "fields",
    "query_id",
    "client_ip",
    "outcome",
)


@dataclass
class _Query:
    account_id: str
    query_id: str
    action: str
    first_us: int
    last_us: int = 0
    patients: list[str] = field(default_factory=list)
    level: str | None = None  # highest bulk severity already raised
    explained_checked: int = 0


class LiveEvaluator:
    """Feed it Arrow batches of access events (spec §1.6 columns, any order); get hits."""

    def __init__(
        self, ref: Reference, baselines: Baselines, p: DetectionSettings, tz: str = "Asia/Hong_Kong"
    ) -> None:
        self.p, self.ref, self.b = p, ref, baselines
        self.ctx = Context.build(p, ref, tz)
        self.zone = ZoneInfo(tz)
        self.accounts = self.ctx.accounts
        self.vendors = ref.vendors_by_id()
        self.grants = self.ctx.grants
        self.needs_grant = {a for a, r in self.accounts.items() if r["needs_grant"]}
        self.db = DuckDBEngine.create(settings=type("S", (), {"timezone": tz})(), detect=p)
        for name in ("patients", "encounters", "accounts"):
            self.db.register(name, ref.tables[name])
        pats = ref.tables["patients"]
        self.vip = set(pats.filter(pats["vip"]).column("patient_id").to_pylist())
        self.holders = {
            r["patient_id"]: r["account_id"] for r in ref.rows("accounts") if r["patient_id"]
        }
        self.selves = {
            f"{a}\x00{r['patient_id']}" for a, r in self.accounts.items() if r["patient_id"]
        }
        self.family = {
            f"{r['account_id']}\x00{r['patient_id']}"
            for r in self.db.query("""
            SELECT a.account_id, p.patient_id FROM accounts a JOIN patients p
              ON p.surname_bidx = a.surname_bidx AND p.address_bidx = a.address_bidx
            WHERE a.patient_id IS NULL OR a.patient_id <> p.patient_id""")
        }
        special = self.vip | set(self.holders) | {k.split("\x00")[1] for k in self.family}
        self.care: dict[str, list[tuple[str, str | None, int, int | None]]] = {}
        for e in ref.rows("encounters"):
            if e["patient_id"] in special:
                self.care.setdefault(e["patient_id"], []).append(
                    (e["department"], e["account_id"], e["start_us"], e["end_us"])
                )
        self.day_patients: dict[tuple[str, int], set[str]] = {}
        self.day_level: dict[tuple[str, int], str] = {}
        self._needs_grant_arr = pa.array(sorted(self.needs_grant), pa.string())
        self._vip_arr = pa.array(sorted(self.vip), pa.string())
        self._holder_arr = pa.array(sorted(self.holders), pa.string())
        self._self_arr = pa.array(sorted(self.selves), pa.string())
        self._family_arr = pa.array(sorted(self.family), pa.string())
        self.day_checked: dict[tuple[str, int], int] = {}
        self.own = {a: r["patient_id"] for a, r in self.accounts.items() if r["patient_id"]}
        self.queries: dict[tuple[str, str], _Query] = {}
        self.denied: dict[str, deque[int]] = {}
        self.fired: set[tuple[str, ...]] = set()
        self.grant_units: dict[tuple[str, str], dict[str, Any]] = {}
        self.grant_ok: dict[tuple[str, str], bool] = {}  # (account, patient) → last unit covered
        self.events_seen = 0

    def close(self) -> None:
        self.db.close()

    # -- helpers -----------------------------------------------------------------------------
    def _offset_us(self, ts_us: int) -> int:
        from phiguard.detection.snapshot import from_us

        off = from_us(ts_us).astimezone(self.zone).utcoffset()
        return int(off.total_seconds() * 1_000_000) if off else 0

    def _once(self, *key: str) -> bool:
        if key in self.fired:
            return False
        self.fired.add(key)
        return True

    def _explained(self, account_id: str, patient_ids: list[str], at_us: int) -> int:
        """How many of ``patient_ids`` an encounter of the account or its department, or a
        grant that covered the account's work on them, explains."""
        if not patient_ids:
            return 0
        granted = {p for p in patient_ids if self.grant_ok.get((account_id, p))}
        rest = sorted(set(patient_ids) - granted)
        return len(granted) + self._encounter_explained(account_id, rest, at_us)

    def _encounter_explained(self, account_id: str, patient_ids: list[str], at_us: int) -> int:
        if not patient_ids:
            return 0
        dept = (self.accounts.get(account_id) or {}).get("department") or ""
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        tbl = pa.table({"patient_id": pa.array(sorted(set(patient_ids)), pa.string())})
        self.db.con.register("_ids", tbl)
        try:
            row = self.db.con.execute(
                f"""
                SELECT count(DISTINCT i.patient_id) FROM _ids i JOIN encounters e
                  ON e.patient_id = i.patient_id
                WHERE (e.account_id = ? OR e.department = ?)
                  AND {at_us} >= e.start_us - {before}
                  AND (e.end_us IS NULL OR {at_us} <= e.end_us + {after})""",
                [account_id, dept],
            ).fetchall()
        finally:
            self.db.con.unregister("_ids")
        return int(row[0][0]) if row else 0

    def _cares(self, account_id: str, patient_id: str, at_us: int) -> bool:
        dept = (self.accounts.get(account_id) or {}).get("department")
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        for d, acc, start, end in self.care.get(patient_id, ()):
            if (
                (acc == account_id or d == dept)
                and at_us >= start - before
                and (end is None or at_us <= end + after)
            ):
                return True
        return False

    def _hit(
        self,
        rule: str,
        severity: str,
        acc: str,
        first: int,
        last: int,
        n: int,
        text: str,
        sample: list[str] | None = None,
        *,
        standalone: bool = True,
        dayno: int | None = None,
        ref: str = "",
    ) -> Hit:
        return Hit(
            rule,
            severity,
            acc,
            first,
            last,
            n,
            [text],
            sorted(set(sample or []))[: self.p.sample_size],
            acc,
            self.ctx.vendor_of(acc),
            standalone=standalone,
            dayno=dayno,
            ref=ref,
        )

    # -- the batch -----------------------------------------------------------------------------
    def feed(self, table: pa.Table) -> list[Hit]:
        """Summarise the batch with Arrow's vectorised group-bys and set lookups, then run the
        few checks its rows call for in Python.

        Per event nothing runs in Python: spans, hourly counts, first addresses, distinct
        patients per account-day and rows per query are Arrow aggregations; VIPs, staff
        patients, own records and family pairs are ``is_in`` lookups. Python loops over the
        groups and the flagged rows only. Reference joins happen only for contractors' rows
        and crossed thresholds."""
        n = table.num_rows
        if n == 0:
            return []
        names = set(table.column_names)
        ts_arr = table.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        ts_np = ts_arr.to_numpy(zero_copy_only=False)
        if n > 1 and (np.diff(ts_np) < 0).any():
            order = np.argsort(ts_np, kind="stable")
            table, ts_np = table.take(pa.array(order)), ts_np[order]

        def col(c: str, lower: bool = False) -> list[Any]:
            if c not in names:
                return [None] * n
            a = table.column(c)
            if lower:
                a = pc.utf8_lower(a.cast(pa.string()))
            return a.to_pylist()

        off = self._offset_us(int(ts_np[0]))
        days_np = (ts_np + off) // DAY_US
        ts = ts_np.tolist()
        days = days_np.tolist()
        acc, pid, qid = col("account_id"), col("patient_id"), col("query_id")
        action, fields, eid = col("action", True), col("fields", True), col("event_id")
        self.events_seen += n

        def nulled(c: str) -> pa.Array:
            if c not in names:
                return pa.nulls(n, pa.string())
            a = table.column(c).cast(pa.string()).combine_chunks()
            return pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)

        outcome = pc.utf8_lower(pc.coalesce(nulled("outcome"), pa.scalar("success")))
        t = pa.table(
            {
                "a": table.column("account_id").cast(pa.string()).combine_chunks(),
                "p": nulled("patient_id"),
                "q": nulled("query_id"),
                "ip": nulled("client_ip"),
                "d": pa.array(days_np),
                "h": pa.array(((ts_np + off) // HOUR_US) % 24),
                "ts": pa.array(ts_np),
                "i": pa.array(np.arange(n)),
            }
        )
        # vectorised summaries: spans per account-day, events per hour, first use of an address
        g = t.group_by(["a", "d"], use_threads=False).aggregate(
            [("ts", "min"), ("ts", "max"), ("ts", "count")]
        )
        spans = {
            (a, d): [lo, hi, k]
            for a, d, lo, hi, k in zip(
                g["a"].to_pylist(),
                g["d"].to_pylist(),
                g["ts_min"].to_pylist(),
                g["ts_max"].to_pylist(),
                g["ts_count"].to_pylist(),
                strict=True,
            )
        }
        g = t.group_by(["a", "d", "h"], use_threads=False).aggregate([("ts", "count")])
        hour_n = dict(
            zip(
                zip(g["a"].to_pylist(), g["d"].to_pylist(), g["h"].to_pylist(), strict=True),
                g["ts_count"].to_pylist(),
                strict=True,
            )
        )
        g = (
            t.filter(pc.is_valid(t["ip"]))
            .group_by(["a", "ip"], use_threads=False)
            .aggregate([("d", "min"), ("ts", "min")])
        )
        new_ips = dict(
            zip(
                zip(g["a"].to_pylist(), g["ip"].to_pylist(), strict=True),
                zip(g["d_min"].to_pylist(), g["ts_min"].to_pylist(), strict=True),
                strict=True,
            )
        )
        is_denied = pc.equal(outcome, "denied")
        denied = np.flatnonzero(is_denied.to_numpy(zero_copy_only=False)).tolist()
        ok = t.filter(pc.invert(is_denied))
        grant_rows = ok.filter(pc.is_in(ok["a"], value_set=self._needs_grant_arr))["i"].to_pylist()
        okp = ok.filter(pc.is_valid(ok["p"]))
        pair = pc.binary_join_element_wise(okp["a"], okp["p"], "\x00")
        special_mask = pc.or_(
            pc.or_(
                pc.is_in(okp["p"], value_set=self._vip_arr),
                pc.is_in(okp["p"], value_set=self._holder_arr),
            ),
            pc.or_(
                pc.is_in(pair, value_set=self._self_arr), pc.is_in(pair, value_set=self._family_arr)
            ),
        )
        special = okp.filter(special_mask)["i"].to_pylist()
        # distinct patients per account-day: one set update per group, in C
        g = okp.group_by(["a", "d"], use_threads=False).aggregate([("p", "distinct")])
        touched_days: set[tuple[str, int]] = set()
        for a, d, ps in zip(
            g["a"].to_pylist(), g["d"].to_pylist(), g["p_distinct"].to_pylist(), strict=True
        ):
            key = (a, d)
            ds = self.day_patients.get(key)
            if ds is None:
                ds = self.day_patients[key] = set()
            ds.update(ps)
            touched_days.add(key)
        # rows of each query so far
        touched_queries: set[tuple[str, str]] = set()
        qt = okp.filter(pc.is_valid(okp["q"]))
        if qt.num_rows:
            g = qt.group_by(["a", "q"], use_threads=False).aggregate(
                [("p", "list"), ("ts", "min"), ("ts", "max"), ("i", "min")]
            )
            for a, q, ps, lo, hi, i0 in zip(
                g["a"].to_pylist(),
                g["q"].to_pylist(),
                g["p_list"].to_pylist(),
                g["ts_min"].to_pylist(),
                g["ts_max"].to_pylist(),
                g["i_min"].to_pylist(),
                strict=True,
            ):
                st = self.queries.get((a, q))
                if st is None:
                    st = self.queries[(a, q)] = _Query(a, q, action[i0] or "", lo)
                st.last_us = max(st.last_us, hi)
                st.patients.extend(ps)
                touched_queries.add((a, q))

        cols = _Cols(acc, pid, qid, ts, days, action, fields, eid)
        hits: list[Hit] = []
        hits += self._denied(denied, cols)
        hits += self._status(spans)
        hits += self._grants(grant_rows, cols)
        hits += self._relations(special, cols)
        hits += self._bulk(touched_queries)
        hits += self._daily(touched_days, spans)
        hits += self._time_place(spans, hour_n, new_ips)
        return hits

    def _denied(self, rows: list[int], c: _Cols) -> list[Hit]:
        out = []
        window = self.p.denied_window_minutes * 60_000_000
        for i in rows:
            acc, t = c.acc[i], c.ts[i]
            q = self.denied.setdefault(acc, deque())
            q.append(t)
            while q and q[0] < t - window:
                q.popleft()
            level = (
                "high"
                if len(q) >= self.p.denied_high
                else "medium"
                if len(q) >= self.p.denied_min
                else None
            )
            if level and self._once("denied", acc, level, str(c.days[i])):
                out.append(
                    self._hit(
                        "denied_burst",
                        level,
                        acc,
                        q[0],
                        t,
                        len(q),
                        f"was refused {plural(len(q), 'time')} {self.ctx.span(q[0], t)}, "
                        f"up to {num(len(q))} within {self.p.denied_window_minutes} minutes",
                        dayno=c.days[i],
                    )
                )
        return out

    def _status(self, spans: dict[tuple[str, int], list[int]]) -> list[Hit]:
        out = []
        for (acc, day), (first, last, _n) in spans.items():
            a = self.accounts.get(acc)
            local = EPOCH_DAY + timedelta(days=day)
            vendor = self.vendors.get(a["vendor_id"] or "") if a else None
            flags = [] if a else ["unknown"]
            if vendor and vendor["contract_end"] and local > vendor["contract_end"]:
                flags.append("contract")
            if a and (
                (a["active_to"] and local > a["active_to"])
                or (a["active_from"] and local < a["active_from"])
            ):
                flags.append("expired")
            if vendor and vendor["suspended_us"] and last >= vendor["suspended_us"]:
                flags.append("suspended")
            flags = [f for f in flags if self._once(f, acc, str(day))]
            if not flags:
                continue
            pts = sorted(self.day_patients.get((acc, day), ()))
            span = self.ctx.span(first, last)
            vid = a["vendor_id"] if a else None
            for f in flags:
                rule, sev, text = {
                    "unknown": (
                        "unknown_account",
                        "high",
                        "an account that is not in the account "
                        f"register touched patient records {span}",
                    ),
                    "contract": (
                        "after_contract_end",
                        "high",
                        f"worked {span} for vendor {vid}, "
                        f"whose contract ended on {vendor and vendor['contract_end']}",
                    ),
                    "expired": (
                        "account_expired",
                        "high",
                        f"used {span} outside the account's "
                        f"validity ({(a and a['active_from']) or '…'} to "
                        f"{(a and a['active_to']) or '…'})",
                    ),
                    "suspended": (
                        "suspended_vendor",
                        "critical",
                        f"used {span} although vendor {vid} is suspended",
                    ),
                }[f]
                out.append(self._hit(rule, sev, acc, first, last, len(pts), text, pts, dayno=day))
        return out

    def _relations(self, rows: list[int], c: _Cols) -> list[Hit]:
        texts = {
            "vip": (
                "vip_no_relationship",
                "opened the record of a VIP/restricted patient {span} "
                "with no encounter of the account or its department",
            ),
            "coworker": (
                "coworker",
                "opened the record of a co-worker (a patient who is also an "
                "account holder) {span} with no care relationship",
            ),
            "self": ("self_access", "opened the account holder's own patient record {span}"),
            "family": (
                "family",
                "opened the record of a patient with the account holder's "
                "surname and home address {span}, without being their clinician",
            ),
        }
        out = []
        for i in rows:
            acc, patient, t, day = c.acc[i], c.pid[i], c.ts[i], c.days[i]
            mine = self.own.get(acc) == patient
            kinds = [
                k
                for k, hit in (
                    ("vip", patient in self.vip),
                    ("coworker", patient in self.holders and not mine),
                    ("self", mine),
                    ("family", f"{acc}\x00{patient}" in self.family),
                )
                if hit
            ]
            for kind in kinds:
                if kind in ("vip", "coworker") and (
                    self._cares(acc, patient, t) or self.grant_ok.get((acc, patient), False)
                ):
                    continue
                if kind == "family" and self._cares(acc, patient, t):
                    continue
                if not self._once("rel", kind, acc, patient, str(day)):
                    continue
                rule, text = texts[kind]
                out.append(
                    self._hit(
                        rule,
                        "high",
                        acc,
                        t,
                        t,
                        1,
                        text.format(span=self.ctx.span(t, t)),
                        [patient],
                        dayno=day,
                    )
                )
        return out

    # -- grants ------------------------------------------------------------------------------
    def _grants(self, rows: list[int], c: _Cols) -> list[Hit]:
        if not rows:
            return []
        qkeys = [c.qid[i] or c.eid[i] or f"#{c.ts[i]}" for i in rows]
        sub = pa.table(
            {
                "i": pa.array(rows, pa.int64()),
                "account_id": pa.array([c.acc[i] for i in rows], pa.string()),
                "patient_id": pa.array([c.pid[i] for i in rows], pa.string()),
                "ts_us": pa.array([c.ts[i] for i in rows], pa.int64()),
            }
        )
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        self.db.con.register("_g", sub)
        try:
            # per event: the patient's registered cluster and the clusters where it was cared
            # for at the time ('*' = an encounter naming no clinician: unknown cluster)
            looked = self.db.query(f"""
                SELECT g.i, p.cluster AS p_cluster,
                       list_sort(list(DISTINCT coalesce(ac.cluster, '*'))
                           FILTER (WHERE e.patient_id IS NOT NULL)) AS e_clusters
                FROM _g g
                LEFT JOIN patients p ON p.patient_id = g.patient_id
                LEFT JOIN encounters e ON e.patient_id = g.patient_id
                     AND g.ts_us >= e.start_us - {before}
                     AND (e.end_us IS NULL OR g.ts_us <= e.end_us + {after})
                LEFT JOIN accounts ac ON ac.account_id = e.account_id
                GROUP BY g.i, p.cluster""")
        finally:
            self.db.con.unregister("_g")
        where = {r["i"]: (r["p_cluster"], set(r["e_clusters"] or [])) for r in looked}
        units: dict[tuple[str, str], list[int]] = {}
        for i, q in zip(rows, qkeys, strict=True):
            units.setdefault((c.acc[i], q), []).append(i)
        out = []
        for (acc, qkey), idx in units.items():
            unit = self.grant_units.get((acc, qkey))
            if unit is None:
                unit = self.grant_units[(acc, qkey)] = {
                    "rows": 0,
                    "first": c.ts[idx[0]],
                    "patients": [],
                    "clusters": set(),
                    "action": c.action[idx[0]] or "",
                    "fields": c.fields[idx[0]] or "",
                    "out": {},
                    "level": None,
                    "covered": False,
                }
            unit["last"] = c.ts[idx[-1]]
            for i in idx:
                if c.pid[i]:
                    unit["rows"] += 1
                    unit["patients"].append(c.pid[i])
                    unit["clusters"].add(where.get(i, (None, set()))[0] or "?")
            grants = self.grants.get(acc, [])
            best, best_bad = None, None
            for g in grants:
                bad = self._grant_problems(g, unit, idx, c, where)
                if best_bad is None or len(bad) < len(best_bad):
                    best, best_bad = g, bad
            covered = bool(grants) and not best_bad
            unit["covered"] = covered
            for i in idx:
                if c.pid[i]:
                    self.grant_ok[(acc, c.pid[i])] = covered
            if covered:
                continue
            rows_n = unit["rows"]
            overrun = (
                best is not None
                and unit["action"] in ("export", "print")
                and rows_n >= self.p.bulk_rows_min
                and rows_n >= self.p.grant_overrun_factor_critical * best["max_rows"]
            )
            level = (
                "critical" if rows_n >= self.p.grant_violation_rows_critical or overrun else "high"
            )
            if unit["level"] == level:
                continue
            unit["level"] = level
            clusters = sorted(unit["clusters"] - {"?"})
            verb = VERBS.get(unit["action"], unit["action"])
            text = (
                f"{verb} {plural(rows_n, 'patient record')}"
                f"{' from ' + '/'.join(clusters) if clusters else ''} "
                f"{self.ctx.span(unit['first'], unit['last'])} outside any grant"
            )
            text += (
                ("; " + _grant_text(best) + " — " + ", ".join(best_bad or []))
                if best
                else "; the account has no grant at all"
            )
            out.append(
                self._hit(
                    "outside_grant",
                    level,
                    acc,
                    unit["first"],
                    unit["last"],
                    rows_n,
                    text,
                    unit["patients"][:50],
                    dayno=c.days[idx[0]],
                    ref=qkey,
                )
            )
        return out

    def _grant_problems(
        self,
        g: dict[str, Any],
        unit: dict[str, Any],
        idx: list[int],
        c: _Cols,
        where: dict[int, tuple[str | None, set[str]]],
    ) -> list[str]:
        bad = []
        if not (g["valid_from_us"] <= unit["first"] and unit["last"] < g["valid_to_us"]):
            bad.append("outside the grant's time window")
        if g["scope_cluster"] != "ALL":
            scope = g["scope_cluster"]
            ok = {scope, "*", "ALL"}
            out = unit["out"].get(g["grant_id"], 0)
            for i in idx:
                if c.pid[i]:
                    home, cared = where.get(i, (None, set()))
                    if home != scope and not (ok & cared):
                        out += 1
            unit["out"][g["grant_id"]] = out
            if out:
                bad.append("another cluster")
        if f",{unit['action']}," not in f",{g['actions']},":
            bad.append("an action the grant does not allow")
        if (
            g["scope_fields"] != "*"
            and unit["fields"]
            and not set(unit["fields"].replace(" ", "").split(","))
            <= set(g["scope_fields"].split(","))
        ):
            bad.append("fields the grant does not cover")
        if unit["rows"] > g["max_rows"]:
            bad.append(f"more rows than allowed ({num(unit['rows'])} so far)")
        return bad

    # -- volume ------------------------------------------------------------------------------
    def _bulk(self, touched: set[tuple[str, str]]) -> list[Hit]:
        out = []
        for key in sorted(touched):
            st = self.queries[key]
            acc, qid = key
            rows = len(st.patients)
            if rows < self.p.bulk_rows_min:
                continue
            level = (
                "critical"
                if rows >= self.p.bulk_rows_critical
                else "high"
                if rows >= self.p.bulk_rows_high
                else "medium"
            )
            if st.level == level or (st.level == "low" and st.explained_checked >= rows / 2):
                continue
            if (self.grant_units.get((acc, qid)) or {}).get("covered"):
                continue  # within a valid grant: scope, fields, action and row limit respected
            distinct = set(st.patients)
            explained = self._explained(acc, list(distinct), st.last_us) / max(len(distinct), 1)
            st.explained_checked = rows
            if explained >= self.p.explained_share_benign:
                if st.level == "low":
                    continue
                level = "low"
            st.level = level
            prev = self.b.prev_max.get(acc)
            verb = VERBS.get(st.action, st.action)
            text = (
                f"{verb} {plural(rows, 'patient record')} "
                f"{self.ctx.span(st.first_us, st.last_us)} in one query (still running)"
            )
            text += (
                f"; this account's previous daily maximum was {num(prev)}"
                if prev
                else "; no earlier activity of this account on record"
            )
            day = (st.first_us + self._offset_us(st.first_us)) // DAY_US
            out.append(
                self._hit(
                    "bulk_export",
                    level,
                    acc,
                    st.first_us,
                    st.last_us,
                    rows,
                    text,
                    st.patients[:50],
                    dayno=day,
                    ref=qid,
                )
            )
        return out

    def _daily(
        self, touched: set[tuple[str, int]], spans: dict[tuple[str, int], list[int]]
    ) -> list[Hit]:
        out = []
        p = self.p
        for key in sorted(touched):
            acc, day = key
            s = self.day_patients[key]
            n = len(s)
            if n < p.daily_min_patients:
                continue
            prev, hist = self.b.prev_max.get(acc, 0), self.b.hist_days.get(acc, 0)
            if hist >= p.daily_min_history_days and n <= p.daily_own_factor * prev:
                continue
            a = self.accounts.get(acc) or {}
            peer_key = (str(a.get("role")), str(a.get("department")))
            med, mad, k = self.b.peer.get(peer_key, (0.0, 0.0, 0))
            if k >= 3 and n <= med + p.daily_peer_mads * max(mad, 1.0):
                continue
            checked = self.day_checked.get(key, 0)
            if checked and n < checked * 1.5:
                continue  # re-check the explanation only as the day keeps growing
            self.day_checked[key] = n
            first, last = spans[key][0], spans[key][1]
            explained = self._explained(acc, sorted(s), last)
            unexplained = n - explained
            level = (
                "low"
                if explained / n >= p.explained_share_benign
                else "high"
                if unexplained >= p.bulk_rows_min
                else "medium"
            )
            if self.day_level.get(key) == level:
                continue
            self.day_level[key] = level
            text = f"touched {plural(n, 'patient')} on {self.ctx.day(first)} so far"
            if hist and prev:
                text += f"; {ratio(n, prev)} this account's previous daily maximum of {num(prev)}"
            text += f"; {num(unexplained)} of them unexplained by any encounter"
            out.append(
                self._hit(
                    "daily_volume", level, acc, first, last, n, text, sorted(s)[:50], dayno=day
                )
            )
        return out

    # -- time and place ----------------------------------------------------------------------
    def _time_place(
        self,
        spans: dict[tuple[str, int], list[int]],
        hour_n: dict[tuple[str, int, int], int],
        new_ips: dict[tuple[str, str], tuple[int, int]],
    ) -> list[Hit]:
        out = []
        p = self.p
        fresh: dict[tuple[str, int], list[str]] = {}
        for (acc, ip), (day, _t) in new_ips.items():
            known = self.b.ips.setdefault(acc, set())
            if ip not in known:
                known.add(ip)
                fresh.setdefault((acc, day), []).append(ip)
        for (acc, day), (first, last, _n) in spans.items():
            last_day = self.b.last_day.get(acc)
            if (
                last_day is not None
                and day - last_day >= p.dormant_days
                and self._once("dormant", acc, str(day))
            ):
                ips = sorted(fresh.get((acc, day), []))
                text = (
                    f"active again on {self.ctx.day(first)} after {day - last_day} days "
                    "without any activity"
                )
                if ips:
                    text += f", from a new client address {', '.join(ips[:3])}"
                out.append(
                    self._hit(
                        "dormant_reactivated",
                        "high" if ips else "low",
                        acc,
                        first,
                        last,
                        len(self.day_patients.get((acc, day), ())),
                        text,
                        dayno=day,
                    )
                )
            if self.b.hist_days.get(acc, 0) >= p.new_client_min_history_days:
                for ip in sorted(fresh.get((acc, day), [])):
                    out.append(
                        self._hit(
                            "new_client",
                            "low",
                            acc,
                            first,
                            last,
                            0,
                            f"used client address {ip} for the first time on {self.ctx.day(first)}",
                            standalone=False,
                            dayno=day,
                        )
                    )
        for (acc, day, hr), n in hour_n.items():
            hours = self.b.hours.get(acc)
            if hours is None or n < p.rare_hour_min_events:
                continue
            total = int(self.b.hour_total.get(acc, 0))
            if (
                total < p.rare_hour_min_history_events
                or self.b.hist_days.get(acc, 0) < p.rare_hour_min_history_days
                or hours[hr] >= p.rare_hour_max_share * total
            ):
                continue
            if self._once("hour", acc, str(day), str(hr)):
                first, last = spans[(acc, day)][0], spans[(acc, day)][1]
                out.append(
                    self._hit(
                        "rare_hour",
                        "low",
                        acc,
                        first,
                        last,
                        n,
                        f"worked {hr:02d}:00–{(hr + 1) % 24:02d}:00 on {self.ctx.day(first)}, an "
                        f"hour in which it did {num(hours[hr])} of its {num(total)} earlier events",
                        standalone=False,
                        dayno=day,
                    )
                )
        return out

    def prune(self, now_us: int) -> None:
        """Forget queries idle for an hour and days older than yesterday."""
        idle = now_us - HOUR_US
        self.queries = {k: v for k, v in self.queries.items() if v.last_us >= idle}
        today = now_us // DAY_US
        self.day_patients = {k: v for k, v in self.day_patients.items() if k[1] >= today - 1}
        self.grant_units = {
            k: v for k, v in self.grant_units.items() if v.get("last", now_us) >= idle
        }


@dataclass(slots=True)
class _Cols:
    acc: list[Any]
    pid: list[Any]
    qid: list[Any]
    ts: list[int]
    days: list[int]
    action: list[Any]
    fields: list[Any]
    eid: list[Any]
