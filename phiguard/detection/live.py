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
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

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

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
COLUMNS = ("event_id", "ts", "account_id", "action", "patient_id", "fields", "query_id",
           "client_ip", "outcome")


@dataclass
class Baselines:
    """What history says about each account, read once from the event store."""

    prev_max: dict[str, int] = field(default_factory=dict)
    hist_days: dict[str, int] = field(default_factory=dict)
    hours: dict[str, np.ndarray] = field(default_factory=dict)
    ips: dict[str, set[str]] = field(default_factory=dict)
    last_day: dict[str, int] = field(default_factory=dict)
    peer: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    first_day: int | None = None

    @classmethod
    def from_store(cls, events_uri: str | None, *, before_us: int, p: DetectionSettings,
                   tz: str, ref: Reference) -> Baselines:
        from phiguard.detection.engines.duckdb import _parquet_source

        b = cls()
        source = _parquet_source(events_uri)
        if source is None:
            return b
        eng = DuckDBEngine.create(settings=type("S", (), {"timezone": tz})(), detect=p)
        try:
            eng.register("accounts", ref.tables["accounts"])
            lo = before_us - p.baseline_days * DAY_US
            eng.view("h", f"""
                SELECT account_id, NULLIF(patient_id, '') AS patient_id, client_ip,
                       lower(coalesce(outcome, 'success')) AS outcome,
                       date_diff('day', DATE '1970-01-01', CAST(ts AS DATE)) AS dayno,
                       hour(ts) AS hr
                FROM {source}
                WHERE epoch_us(ts) >= {lo} AND epoch_us(ts) < {before_us}""")
            days = eng.query("""
                SELECT account_id, dayno, count(DISTINCT patient_id) AS n FROM h
                WHERE outcome = 'success' GROUP BY account_id, dayno""")
            for r in days:
                a = r["account_id"]
                b.prev_max[a] = max(b.prev_max.get(a, 0), int(r["n"]))
                b.hist_days[a] = b.hist_days.get(a, 0) + 1
                b.last_day[a] = max(b.last_day.get(a, -1), int(r["dayno"]))
                b.first_day = min(b.first_day or int(r["dayno"]), int(r["dayno"]))
            for r in eng.query("SELECT account_id, hr, count(*) AS n FROM h GROUP BY ALL"):
                b.hours.setdefault(r["account_id"], np.zeros(24, np.int64))[int(r["hr"])] = r["n"]
            for r in eng.query("SELECT DISTINCT account_id, client_ip FROM h "
                               "WHERE client_ip IS NOT NULL AND client_ip <> ''"):
                b.ips.setdefault(r["account_id"], set()).add(r["client_ip"])
            peer = eng.query("""
                WITH d AS (SELECT h.account_id, a.role, a.department, h.dayno,
                                  count(DISTINCT h.patient_id) AS n
                           FROM h JOIN accounts a USING (account_id)
                           WHERE h.outcome = 'success' GROUP BY ALL),
                     m AS (SELECT role, department, median(n) AS med,
                                  count(DISTINCT account_id) AS k FROM d GROUP BY ALL)
                SELECT m.role, m.department, m.med, m.k, median(abs(d.n - m.med)) AS mad
                FROM d JOIN m USING (role, department) GROUP BY ALL""")
            for r in peer:
                b.peer[(r["role"], r["department"])] = (float(r["med"]), float(r["mad"]),
                                                        int(r["k"]))
        finally:
            eng.close()
        return b


@dataclass
class _Query:
    account_id: str
    query_id: str
    action: str
    first_us: int
    last_us: int = 0
    patients: list[str] = field(default_factory=list)
    level: str | None = None  # highest bulk severity already raised


class LiveEvaluator:
    """Feed it Arrow batches of access events (spec §1.6 columns, any order); get hits."""

    def __init__(self, ref: Reference, baselines: Baselines, p: DetectionSettings,
                 tz: str = "Asia/Hong_Kong") -> None:
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
        self.holders = {r["patient_id"]: r["account_id"] for r in ref.rows("accounts")
                        if r["patient_id"]}
        self.selves = {f"{a}\x00{r['patient_id']}" for a, r in self.accounts.items()
                       if r["patient_id"]}
        self.family = {f"{r['account_id']}\x00{r['patient_id']}" for r in self.db.query("""
            SELECT a.account_id, p.patient_id FROM accounts a JOIN patients p
              ON p.surname_bidx = a.surname_bidx AND p.address_bidx = a.address_bidx
            WHERE a.patient_id IS NULL OR a.patient_id <> p.patient_id""")}
        special = self.vip | set(self.holders) | {k.split("\x00")[1] for k in self.family}
        self.care: dict[str, list[tuple[str, str | None, int, int | None]]] = {}
        for e in ref.rows("encounters"):
            if e["patient_id"] in special:
                self.care.setdefault(e["patient_id"], []).append(
                    (e["department"], e["account_id"], e["start_us"], e["end_us"]))
        self.day_patients: dict[tuple[str, int], set[str]] = {}
        self.day_level: dict[tuple[str, int], str] = {}
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
        """How many of ``patient_ids`` an encounter of the account or its department explains."""
        if not patient_ids:
            return 0
        dept = (self.accounts.get(account_id) or {}).get("department") or ""
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        tbl = pa.table({"patient_id": pa.array(sorted(set(patient_ids)), pa.string())})
        self.db.con.register("_ids", tbl)
        try:
            row = self.db.con.execute(f"""
                SELECT count(DISTINCT i.patient_id) FROM _ids i JOIN encounters e
                  ON e.patient_id = i.patient_id
                WHERE (e.account_id = ? OR e.department = ?)
                  AND {at_us} >= e.start_us - {before}
                  AND (e.end_us IS NULL OR {at_us} <= e.end_us + {after})""",
                [account_id, dept]).fetchall()
        finally:
            self.db.con.unregister("_ids")
        return int(row[0][0]) if row else 0

    def _cares(self, account_id: str, patient_id: str, at_us: int) -> bool:
        dept = (self.accounts.get(account_id) or {}).get("department")
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        for d, acc, start, end in self.care.get(patient_id, ()):
            if (acc == account_id or d == dept) and at_us >= start - before and (
                    end is None or at_us <= end + after):
                return True
        return False

    def _hit(self, rule: str, severity: str, acc: str, first: int, last: int, n: int,
             text: str, sample: list[str] | None = None, *, standalone: bool = True,
             dayno: int | None = None) -> Hit:
        return Hit(rule, severity, acc, first, last, n, [text],
                   sorted(set(sample or []))[: self.p.sample_size], acc,
                   self.ctx.vendor_of(acc), standalone=standalone, dayno=dayno)

    # -- the batch -----------------------------------------------------------------------------
    def feed(self, table: pa.Table) -> list[Hit]:
        if table.num_rows == 0:
            return []
        cols = {c: table.column(c) for c in COLUMNS if c in table.column_names}
        ts = cols["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        df = pd.DataFrame({
            c: cols[c].to_pandas() if c in cols else None for c in COLUMNS if c != "ts"
        })
        df["ts_us"] = ts.to_numpy(zero_copy_only=False)
        df["patient_id"] = df["patient_id"].replace("", None)
        df["query_id"] = df["query_id"].replace("", None)
        df["outcome"] = df["outcome"].fillna("success").str.lower()
        df["action"] = df["action"].fillna("").str.lower()
        df["fields"] = df["fields"].fillna("").str.lower().str.replace(" ", "", regex=False)
        df = df.sort_values(["ts_us", "event_id"], kind="stable")
        off = self._offset_us(int(df["ts_us"].iloc[0]))
        df["dayno"] = (df["ts_us"] + off) // DAY_US
        df["hr"] = ((df["ts_us"] + off) // HOUR_US) % 24
        self.events_seen += len(df)
        hits: list[Hit] = []
        ok = df[df["outcome"] == "success"]
        hits += self._denied(df[df["outcome"] == "denied"])
        hits += self._status(ok)
        hits += self._grants(ok)
        hits += self._relations(ok)
        hits += self._bulk(ok)
        hits += self._daily(ok)
        hits += self._time_place(df)
        return hits

    def _denied(self, d: pd.DataFrame) -> list[Hit]:
        out = []
        window = self.p.denied_window_minutes * 60_000_000
        for acc, grp in d.groupby("account_id", sort=True):
            q = self.denied.setdefault(acc, deque())
            for t in grp["ts_us"].tolist():
                q.append(t)
                while q and q[0] < t - window:
                    q.popleft()
                level = ("high" if len(q) >= self.p.denied_high else
                         "medium" if len(q) >= self.p.denied_min else None)
                if level and self._once("denied", acc, level, str(t // DAY_US)):
                    out.append(self._hit(
                        "denied_burst", level, acc, q[0], t, len(q),
                        f"was refused {plural(len(q), 'time')} {self.ctx.span(q[0], t)}, "
                        f"up to {num(len(q))} within {self.p.denied_window_minutes} minutes"))
        return out

    def _status(self, ok: pd.DataFrame) -> list[Hit]:
        out = []
        for acc, grp in ok.groupby("account_id", sort=True):
            a = self.accounts.get(acc)
            first, last = int(grp["ts_us"].min()), int(grp["ts_us"].max())
            day = int(grp["dayno"].iloc[0])
            pts = list(grp["patient_id"].dropna())
            if a is None:
                if self._once("unknown", acc, str(day)):
                    out.append(self._hit("unknown_account", "high", acc, first, last,
                                         len(set(pts)), "an account that is not in the account "
                                         f"register touched patient records {self.ctx.span(first, last)}",
                                         pts, dayno=day))
                continue
            vendor = self.vendors.get(a["vendor_id"] or "")
            local = self.ctx.local(first).date()
            if vendor and vendor["contract_end"] and local > vendor["contract_end"] and \
                    self._once("contract", acc, str(day)):
                out.append(self._hit(
                    "after_contract_end", "high", acc, first, last, len(set(pts)),
                    f"worked {self.ctx.span(first, last)} for vendor {a['vendor_id']}, whose "
                    f"contract ended on {vendor['contract_end']}", pts, dayno=day))
            if ((a["active_to"] and local > a["active_to"]) or
                    (a["active_from"] and local < a["active_from"])) and \
                    self._once("expired", acc, str(day)):
                out.append(self._hit(
                    "account_expired", "high", acc, first, last, len(set(pts)),
                    f"used {self.ctx.span(first, last)} outside the account's validity "
                    f"({a['active_from'] or '…'} to {a['active_to'] or '…'})", pts, dayno=day))
            if vendor and vendor["suspended_us"] and last >= vendor["suspended_us"] and \
                    self._once("suspended", acc, str(day)):
                out.append(self._hit(
                    "suspended_vendor", "critical", acc, first, last, len(set(pts)),
                    f"used {self.ctx.span(first, last)} although vendor {a['vendor_id']} is "
                    "suspended", pts, dayno=day))
        return out

    def _relations(self, ok: pd.DataFrame) -> list[Hit]:
        pid = ok["patient_id"]
        pair = ok["account_id"] + "\x00" + pid.fillna("")
        masks = {
            "vip": pid.isin(self.vip),
            "coworker": pid.isin(self.holders.keys()) & ~pair.isin(self.selves),
            "self": pair.isin(self.selves),
            "family": pair.isin(self.family),
        }
        out = []
        for kind, mask in masks.items():
            for r in ok[mask].itertuples(index=False):
                acc, patient, t = r.account_id, r.patient_id, int(r.ts_us)
                if kind in ("vip", "coworker") and (self._cares(acc, patient, t) or
                                                    self._grant_covers(acc, patient, t)):
                    continue
                if kind == "family" and self._cares(acc, patient, t):
                    continue
                if not self._once("rel", kind, acc, patient, str(r.dayno)):
                    continue
                rule, text = {
                    "vip": ("vip_no_relationship", "opened the record of a VIP/restricted "
                            "patient {span} with no encounter of the account or its department"),
                    "coworker": ("coworker", "opened the record of a co-worker (a patient who "
                                 "is also an account holder) {span} with no care relationship"),
                    "self": ("self_access", "opened the account holder's own patient record "
                             "{span}"),
                    "family": ("family", "opened the record of a patient with the account "
                               "holder's surname and home address {span}, without being their "
                               "clinician"),
                }[kind]
                out.append(self._hit(rule, "high", acc, t, t, 1,
                                     text.format(span=self.ctx.span(t, t)), [patient],
                                     dayno=int(r.dayno)))
        return out

    def _grant_covers(self, acc: str, patient: str, t: int) -> bool:
        return self.grant_ok.get((acc, patient), False)

    # -- grants ------------------------------------------------------------------------------
    def _grants(self, ok: pd.DataFrame) -> list[Hit]:
        sub = ok[ok["account_id"].isin(self.needs_grant)]
        if sub.empty:
            return []
        sub = sub.assign(qkey=sub["query_id"].fillna(sub["event_id"]))
        rows = pa.Table.from_pandas(
            sub[["account_id", "qkey", "patient_id", "ts_us"]], preserve_index=False)
        self.db.con.register("_g", rows)
        before = int(self.p.explain_before_days * DAY_US)
        after = int(self.p.explain_after_days * DAY_US)
        try:
            # per event: the patient's registered cluster and the clusters where it was cared
            # for at the time ('*' = an encounter naming no clinician: unknown cluster)
            looked = self.db.query(f"""
                SELECT g.account_id, g.qkey, g.patient_id, g.ts_us, p.cluster AS p_cluster,
                       list_sort(list(DISTINCT coalesce(ac.cluster, '*'))
                           FILTER (WHERE e.patient_id IS NOT NULL)) AS e_clusters
                FROM _g g
                LEFT JOIN patients p ON p.patient_id = g.patient_id
                LEFT JOIN encounters e ON e.patient_id = g.patient_id
                     AND g.ts_us >= e.start_us - {before}
                     AND (e.end_us IS NULL OR g.ts_us <= e.end_us + {after})
                LEFT JOIN accounts ac ON ac.account_id = e.account_id
                GROUP BY ALL""")
        finally:
            self.db.con.unregister("_g")
        where = {(r["account_id"], r["qkey"], r["patient_id"], r["ts_us"]):
                 (r["p_cluster"], r["e_clusters"] or []) for r in looked}
        out = []
        for (acc, qkey), grp in sub.groupby(["account_id", "qkey"], sort=True):
            unit = self.grant_units.setdefault((acc, qkey), {
                "rows": 0, "first": int(grp["ts_us"].min()), "patients": [],
                "action": grp["action"].iloc[0], "fields": grp["fields"].iloc[0],
                "out": {}, "level": None})
            unit["rows"] += int(grp["patient_id"].notna().sum())
            unit["last"] = int(grp["ts_us"].max())
            unit["patients"] += list(grp["patient_id"].dropna())
            grants = self.grants.get(acc, [])
            best, best_bad = None, None
            for g in grants:
                bad = self._grant_problems(g, unit, grp, where)
                if best_bad is None or len(bad) < len(best_bad):
                    best, best_bad = g, bad
            covered = bool(grants) and not best_bad
            unit["covered"] = covered
            for pid in grp["patient_id"].dropna():
                self.grant_ok[(acc, pid)] = covered
            if covered:
                continue
            rows = unit["rows"]
            overrun = (best is not None and unit["action"] in ("export", "print")
                       and rows >= self.p.bulk_rows_min
                       and rows >= self.p.grant_overrun_factor_critical * best["max_rows"])
            level = ("critical" if rows >= self.p.grant_violation_rows_critical or overrun
                     else "high")
            if unit["level"] == level:
                continue
            unit["level"] = level
            clusters = sorted({where.get((acc, qkey, pid, int(t)), (None, []))[0] or "?"
                               for pid, t in zip(grp["patient_id"], grp["ts_us"],
                                                 strict=True) if pid})
            verb = VERBS.get(unit["action"], unit["action"])
            text = (f"{verb} {plural(rows, 'patient record')}"
                    f"{' from ' + '/'.join(clusters) if clusters else ''} "
                    f"{self.ctx.span(unit['first'], unit['last'])} outside any grant")
            text += ("; " + _grant_text(best) + " — " + ", ".join(best_bad or [])) if best \
                else "; the account has no grant at all"
            out.append(self._hit("outside_grant", level, acc, unit["first"], unit["last"], rows,
                                 text, unit["patients"][:50], dayno=int(grp["dayno"].iloc[0])))
        return out

    def _grant_problems(self, g: dict[str, Any], unit: dict[str, Any], grp: pd.DataFrame,
                        where: dict[Any, Any]) -> list[str]:
        bad = []
        if not (g["valid_from_us"] <= unit["first"] and unit["last"] < g["valid_to_us"]):
            bad.append("outside the grant's time window")
        if g["scope_cluster"] != "ALL":
            out = unit["out"].setdefault(g["grant_id"], 0)
            for pid, t in zip(grp["patient_id"], grp["ts_us"], strict=True):
                if pid is None:
                    continue
                home, cared = where.get((grp["account_id"].iloc[0],
                                         unit_key(grp), pid, int(t)), (None, []))
                if home != g["scope_cluster"] and not (
                        {g["scope_cluster"], "*", "ALL"} & set(cared)):
                    out += 1
            unit["out"][g["grant_id"]] = out
            if out:
                bad.append("another cluster")
        if f",{unit['action']}," not in f",{g['actions']},":
            bad.append("an action the grant does not allow")
        if g["scope_fields"] != "*" and unit["fields"] and \
                not set(unit["fields"].split(",")) <= set(g["scope_fields"].split(",")):
            bad.append("fields the grant does not cover")
        if unit["rows"] > g["max_rows"]:
            bad.append(f"more rows than allowed ({num(unit['rows'])} so far)")
        return bad

    # -- volume ------------------------------------------------------------------------------
    def _bulk(self, ok: pd.DataFrame) -> list[Hit]:
        q = ok[ok["query_id"].notna()]
        out = []
        for (acc, qid), grp in q.groupby(["account_id", "query_id"], sort=True):
            st = self.queries.get((acc, qid))
            if st is None:
                st = self.queries[(acc, qid)] = _Query(acc, qid, grp["action"].iloc[0],
                                                       int(grp["ts_us"].min()))
            st.last_us = int(grp["ts_us"].max())
            st.patients += list(grp["patient_id"].dropna())
            rows = len(st.patients)
            if rows < self.p.bulk_rows_min:
                continue
            level = ("critical" if rows >= self.p.bulk_rows_critical else
                     "high" if rows >= self.p.bulk_rows_high else "medium")
            if st.level == level:
                continue
            if (self.grant_units.get((acc, qid)) or {}).get("covered"):
                continue  # within a valid grant: scope, fields, action and row limit respected
            explained = self._explained(acc, st.patients, st.last_us) / max(len(set(st.patients)), 1)
            if explained >= self.p.explained_share_benign:
                level = "low"
                if st.level == "low":
                    continue
            st.level = level
            prev = self.b.prev_max.get(acc)
            verb = VERBS.get(st.action, st.action)
            text = (f"{verb} {plural(rows, 'patient record')} "
                    f"{self.ctx.span(st.first_us, st.last_us)} in one query (still running)")
            text += (f"; this account's previous daily maximum was {num(prev)}" if prev
                     else "; no earlier activity of this account on record")
            out.append(self._hit("bulk_export", level, acc, st.first_us, st.last_us, rows,
                                 text, st.patients[:50],
                                 dayno=int(grp["dayno"].iloc[0])))
        return out

    def _daily(self, ok: pd.DataFrame) -> list[Hit]:
        out = []
        p = self.p
        for (acc, day), grp in ok[ok["patient_id"].notna()].groupby(
                ["account_id", "dayno"], sort=True):
            s = self.day_patients.setdefault((acc, int(day)), set())
            s.update(grp["patient_id"].tolist())
            n = len(s)
            if n < p.daily_min_patients:
                continue
            prev, hist = self.b.prev_max.get(acc, 0), self.b.hist_days.get(acc, 0)
            if hist >= p.daily_min_history_days and n <= p.daily_own_factor * prev:
                continue
            a = self.accounts.get(acc) or {}
            med, mad, k = self.b.peer.get((a.get("role"), a.get("department")), (0.0, 0.0, 0))
            if k >= 3 and n <= med + p.daily_peer_mads * max(mad, 1.0):
                continue
            first, last = int(grp["ts_us"].min()), int(grp["ts_us"].max())
            explained = self._explained(acc, sorted(s), last)
            unexplained = n - explained
            level = ("low" if explained / n >= p.explained_share_benign else
                     "high" if unexplained >= p.bulk_rows_min else "medium")
            key = (acc, int(day))
            if self.day_level.get(key) == level:
                continue
            self.day_level[key] = level
            text = f"touched {plural(n, 'patient')} on {self.ctx.day(first)} so far"
            if hist and prev:
                text += f"; {ratio(n, prev)} this account's previous daily maximum of {num(prev)}"
            text += f"; {num(unexplained)} of them unexplained by any encounter"
            out.append(self._hit("daily_volume", level, acc, first, last, n, text,
                                 sorted(s)[:50], dayno=int(day)))
        return out

    # -- time and place ----------------------------------------------------------------------
    def _time_place(self, df: pd.DataFrame) -> list[Hit]:
        out = []
        p = self.p
        for (acc, day), grp in df.groupby(["account_id", "dayno"], sort=True):
            day = int(day)
            first, last = int(grp["ts_us"].min()), int(grp["ts_us"].max())
            last_day = self.b.last_day.get(acc)
            if last_day is not None and day - last_day >= p.dormant_days and \
                    self._once("dormant", acc, str(day)):
                ips = sorted(set(grp["client_ip"].dropna()) - self.b.ips.get(acc, set()))
                text = (f"active again on {self.ctx.day(first)} after {day - last_day} days "
                        "without any activity")
                if ips:
                    text += f", from a new client address {', '.join(ips[:3])}"
                out.append(self._hit("dormant_reactivated", "high" if ips else "medium", acc,
                                     first, last, int(grp["patient_id"].nunique()), text,
                                     dayno=day))
            hours = self.b.hours.get(acc)
            if hours is not None and hours.sum() >= p.rare_hour_min_history_events and \
                    self.b.hist_days.get(acc, 0) >= p.rare_hour_min_history_days:
                for hr, n in grp.groupby("hr").size().items():
                    if n >= p.rare_hour_min_events and \
                            hours[int(hr)] < p.rare_hour_max_share * hours.sum() and \
                            self._once("hour", acc, str(day), str(hr)):
                        out.append(self._hit(
                            "rare_hour", "low", acc, first, last, int(n),
                            f"worked {int(hr):02d}:00–{(int(hr) + 1) % 24:02d}:00 on "
                            f"{self.ctx.day(first)}, an hour in which it did {num(hours[int(hr)])}"
                            f" of its {num(hours.sum())} earlier events",
                            standalone=False, dayno=day))
            if self.b.hist_days.get(acc, 0) >= p.new_client_min_history_days:
                known = self.b.ips.setdefault(acc, set())
                for ip in sorted(set(grp["client_ip"].dropna()) - known):
                    known.add(ip)
                    out.append(self._hit(
                        "new_client", "low", acc, first, last, 0,
                        f"used client address {ip} for the first time on {self.ctx.day(first)}",
                        standalone=False, dayno=day))
        return out

    def prune(self, now_us: int) -> None:
        """Forget queries idle for an hour and days older than yesterday."""
        idle = now_us - HOUR_US
        self.queries = {k: v for k, v in self.queries.items() if v.last_us >= idle}
        today = now_us // DAY_US
        self.day_patients = {k: v for k, v in self.day_patients.items() if k[1] >= today - 1}
        self.grant_units = {k: v for k, v in self.grant_units.items()
                            if v.get("last", now_us) >= idle}


def unit_key(grp: pd.DataFrame) -> str:
    return str(grp["qkey"].iloc[0])
