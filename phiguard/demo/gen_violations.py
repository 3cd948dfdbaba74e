"""Contractor violations: access after contract end, after grant expiry, a dormant account
woken from a new address, and slow exfiltration outside a grant's scope."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from phiguard.demo.gen_activity import work_day
from phiguard.demo.gen_batch import (
    CMS,
    HOPERAT,
    READ,
    SEARCH,
    SYSADMIN,
    Extras,
    FieldTable,
)
from phiguard.demo.gen_common import (
    CLUSTER_INDEX,
    MS,
    NoisePool,
    iso_local,
)
from phiguard.demo.gen_plan import (
    Plan,
    Planted,
    choose,
    record_parts,
)
from phiguard.demo.gen_staff import (
    CLERK,
    Grant,
)


def _engineer(p: Plan, vendor_index: int, used: set[int]) -> tuple[int, Grant]:
    vendor = p.staff.vendors[vendor_index]
    eng = vendor.engineers[0]
    used.add(eng)
    p.skip_work.add(eng)
    return eng, next(g for g in p.staff.grants if g.account == eng)


def after_contract_end(p: Plan, rng: np.random.Generator, used: set[int], mid: int) -> None:
    st = p.staff
    vendor = st.vendors[4]
    eng, grant = _engineer(p, 4, used)
    end_day = max(-1, mid - 1)
    vendor.contract_end = p.start + timedelta(days=end_day)
    for other in vendor.engineers:  # the HR feed never heard of the contract's end
        st.active_to[other] = None
    grant.valid_to = max(grant.valid_to, p.at(p.days + 30, 0))
    label = Planted(
        "after-contract-end",
        "after_contract_end",
        False,
        ["after_contract_end"],
        "high",
        eng,
        f"{st.account_ids[eng]} kept using patient data after {vendor.vendor_id}'s contract "
        f"ended on {vendor.contract_end.isoformat()}.",
        details={
            "contract_id": vendor.contract_id,
            "contract_end": vendor.contract_end.isoformat(),
        },
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        for d in range(p.days):
            if d <= end_day:
                work_day(ex, st, fields, noise, rng, grant, d, p.w0, p.start)
                continue
            before = len(ex.parts)
            work_day(ex, st, fields, noise, rng, grant, d, p.w0, p.start, sessions=2, rules=False)
            record_parts(label, ex, before)

    p.emitters.append(emit)


def after_grant_expiry(p: Plan, rng: np.random.Generator, used: set[int], mid: int) -> None:
    st = p.staff
    eng, grant = _engineer(p, 5, used)
    grant.valid_to = p.at(mid, 12)
    label = Planted(
        "after-grant-expiry",
        "after_grant_expiry",
        False,
        ["after_grant_expiry"],
        "high",
        eng,
        f"{st.account_ids[eng]} went on reading patient records after its grant "
        f"{grant.grant_id} expired at {iso_local(grant.valid_to)}.",
        details={"grant_id": grant.grant_id, "grant_valid_to": iso_local(grant.valid_to)},
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        for d in range(p.days):
            if d < mid:
                work_day(ex, st, fields, noise, rng, grant, d, p.w0, p.start)
            elif d <= mid + 1:
                before = len(ex.parts)
                work_day(
                    ex,
                    st,
                    fields,
                    noise,
                    rng,
                    grant,
                    d,
                    p.w0,
                    p.start,
                    sessions=2,
                    hours=(13, 18),
                    rules=False,
                )
                record_parts(label, ex, before)

    p.emitters.append(emit)


def dormant(p: Plan, rng: np.random.Generator, used: set[int], used_patients: set[int]) -> None:
    st, pop = p.staff, p.pop
    clerks = np.flatnonzero((st.role == CLERK) & (st.patient < 0))
    acc = choose(rng, clerks, used)
    day = max(0, p.days - 2) if p.days >= 3 else p.days - 1
    assert st.dormant_until is not None
    st.dormant_until[acc] = p.days + 1  # idle throughout, apart from the scenario
    dev = st.add_device(
        f"LAPTOP-{rng.integers(10**5, 10**6)}",
        f"58.153.{rng.integers(1, 255)}.{rng.integers(1, 255)}",
    )
    c = int(st.cluster[acc])
    pats = np.flatnonzero((pop.cluster == c) & ~pop.vip)
    pats = np.array(
        [
            i
            for i in rng.choice(pats, min(len(pats), 60), replace=False).tolist()
            if i not in used_patients
        ][:25]
    )
    used_patients.update(int(i) for i in pats)
    label = Planted(
        "dormant-reactivated",
        "dormant_reactivated",
        False,
        ["dormant_account", "new_client_ip", "rare_hour", "unexplained_access"],
        "high",
        acc,
        f"{st.account_ids[acc]}, idle for the whole period before, looked up {len(pats)} "
        f"patients late at night from a device and address never seen before ({st.ips[dev]}).",
        details={
            "new_client_ip": st.ips[dev],
            "new_device_id": st.devices[dev],
            "idle_days_before": day,
        },
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        t = p.at(day, 22, 47) + np.sort(rng.integers(0, 40 * 60_000, len(pats))) * MS
        ex.add(
            ts=t,
            source=CMS,
            account=acc,
            action=READ,
            patient=pats,
            fields=fields("name,sex,dob,hkid,hospital_no,phone,address"),
            device=dev,
            purpose=HOPERAT,
        )
        label.record(t, pats)

    p.emitters.append(emit)


def slow_exfiltration(
    p: Plan, rng: np.random.Generator, used: set[int], used_patients: set[int]
) -> None:
    st, pop = p.staff, p.pop
    eng, grant = _engineer(p, 6, used)
    grant.scope_cluster = CLUSTER_INDEX["NTWC"]
    grant.scope_fields = "name,sex,hospital_no"
    grant.max_rows = 20
    outside = CLUSTER_INDEX["NTEC"]
    pool = np.flatnonzero((pop.cluster == outside) & ~pop.vip)
    per_day = 24
    want = min(len(pool), per_day * p.days)
    chosen = [
        i
        for i in rng.choice(pool, min(len(pool), want + 50), replace=False).tolist()
        if i not in used_patients
    ][:want]
    targets = np.array(chosen, dtype=np.int64)
    used_patients.update(chosen)
    label = Planted(
        "slow-exfiltration",
        "slow_exfiltration",
        False,
        ["slow_exfiltration", "outside_grant_scope"],
        "high",
        eng,
        f"{st.account_ids[eng]} collected {len(targets)} distinct NTEC patients a few at a time "
        f"over {p.days} days; its grant covers NTWC only.",
        details={
            "grant_id": grant.grant_id,
            "grant_scope_cluster": "NTWC",
            "target_cluster": "NTEC",
        },
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        f = fields(grant.scope_fields)
        for d, chunk in enumerate(np.array_split(targets, p.days)):
            work_day(ex, st, fields, noise, rng, grant, d, p.w0, p.start, rules=False, sessions=1)
            for q in np.array_split(chunk, max(1, -(-len(chunk) // 4))):
                if len(q) == 0:
                    continue
                t = (
                    p.at(d, int(rng.integers(10, 17)), int(rng.integers(0, 60)))
                    + np.arange(len(q)) * 50 * MS
                )
                h = ex.add(
                    query=True,
                    ts=t,
                    source=CMS,
                    account=eng,
                    action=SEARCH,
                    patient=q,
                    fields=f,
                    device=st.dev0[eng],
                    purpose=SYSADMIN,
                )
                label.handles.append(h)
                label.record(t, q)

    p.emitters.append(emit)
