"""Planted scenarios detection must find: the seed export and relationship snooping.

The contractor violations live in :mod:`gen_violations`, the decoys in :mod:`gen_decoys`;
:func:`plan` places them all (see :mod:`gen_plan` for how planting works).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from phiguard.demo import gen_violations
from phiguard.demo.gen_batch import (
    CMS,
    EPR,
    EXPORT,
    READ,
    REPORTS,
    SYSADMIN,
    TREAT,
    Extras,
    FieldTable,
)
from phiguard.demo.gen_common import (
    CLUSTER_INDEX,
    DAY,
    MS,
    S_SCENARIOS,
    NoisePool,
    patient_id,
    rng_for,
)
from phiguard.demo.gen_people import Population
from phiguard.demo.gen_plan import (
    Plan,
    Planted,
    choose,
    clinical_staff_patients,
)
from phiguard.demo.gen_staff import (
    CLERK,
    NURSE,
    SEED_ENGINEER,
    SEED_VENDOR,
    Staff,
)

SEED_FIELDS = "name,sex,hkid,hospital_no,procedure"


def plan(pop: Population, staff: Staff, seed: int, start: date, days: int) -> Plan:
    rng = rng_for(seed, S_SCENARIOS)
    p = Plan(pop, staff, seed, start, days, exclude=np.zeros(pop.n, dtype=bool))
    used_accounts = p.used_accounts
    used_patients: set[int] = set()
    last = days - 1
    mid = days // 2

    # -- the seed: a contractor's night-time bulk export of one cluster ------------------------
    vendor = staff.vendors[SEED_VENDOR]
    eng = vendor.engineers[SEED_ENGINEER - 1]
    used_accounts.add(eng)
    grant = next(g for g in staff.grants if g.account == eng)
    grant.scope_cluster = CLUSTER_INDEX["HKWC"]
    grant.scope_fields = "name,sex,hospital_no"
    grant.actions = "read,search"
    grant.max_rows = 50
    kec = np.flatnonzero(pop.cluster == CLUSTER_INDEX["KEC"])
    size = min(56_000, int(len(kec) * 0.75))
    p.export_patients = np.sort(rng.choice(kec, size, replace=False))
    seed_label = Planted(
        "seed-bulk-export",
        "bulk_export",
        False,
        ["bulk_export", "outside_grant_scope", "volume_above_baseline", "rare_hour"],
        "critical",
        eng,
        f"{staff.account_ids[eng]} of {vendor.vendor_id} exported {size:,} KEC patients "
        "at night; its grant covers HKWC only, 50 rows at most, without export or HKIDs.",
        details={
            "grant_id": grant.grant_id,
            "grant_scope_cluster": "HKWC",
            "grant_max_rows": 50,
            "grant_actions": grant.actions,
            "grant_fields": grant.scope_fields,
            "export_cluster": "KEC",
            "fields": SEED_FIELDS,
        },
    )
    p.planted.append(seed_label)

    def emit_seed(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        t0, t1 = p.at(last, 1, 12), p.at(last, 1, 40, 11)
        ts = t0 + (np.arange(size, dtype=np.int64) * (t1 - t0)) // max(1, size - 1)
        ts -= ts % MS
        h = ex.add(
            query=True,
            ts=ts,
            source=REPORTS,
            account=eng,
            action=EXPORT,
            patient=p.export_patients,
            fields=fields(SEED_FIELDS),
            device=staff.dev0[eng],
            purpose=SYSADMIN,
        )
        seed_label.handles.append(h)
        seed_label.record(ts, p.export_patients)

    p.emitters.append(emit_seed)

    # -- relationship snooping: VIP, co-worker, family, self ---------------------------------
    vip = choose(rng, np.flatnonzero(pop.vip), used_patients)
    c_vip = int(pop.cluster[vip])
    nurse = choose(
        rng,
        np.flatnonzero(
            (staff.role == NURSE)
            & (staff.cluster == c_vip)
            & (staff.shift == DAY)
            & (staff.patient < 0)
        ),
        used_accounts,
    )
    _snoop(
        p,
        rng,
        "vip-snooping",
        "vip_snooping",
        ["vip_access", "unexplained_access"],
        nurse,
        np.array([vip]),
        min(1, last),
        (14, 5),
        3,
        f"a nurse opened the record of a VIP patient ({patient_id(vip)}) with no care relationship",
    )

    staff_patients = clinical_staff_patients(staff, pop)
    colleague = choose(rng, staff_patients, used_accounts)
    c, d = int(staff.cluster[colleague]), int(staff.dept[colleague])
    peers = np.flatnonzero(
        (staff.cluster == c)
        & (staff.dept == d)
        & np.isin(staff.role, (NURSE, CLERK))
        & (staff.shift == DAY)
        & (staff.patient < 0)
    )
    if len(peers) == 0:
        peers = np.flatnonzero((staff.cluster == c) & (staff.role == NURSE) & (staff.patient < 0))
    snooper = choose(rng, peers, used_accounts)
    target = int(staff.patient[colleague])
    used_patients.add(target)
    _snoop(
        p,
        rng,
        "coworker-snooping",
        "coworker_snooping",
        ["coworker_access", "unexplained_access"],
        snooper,
        np.array([target]),
        min(2, last),
        (12, 40),
        2,
        f"looked up a colleague's own patient record ({staff.account_ids[colleague]} is "
        f"patient {patient_id(target)})",
        details={"colleague_account_id": staff.account_ids[colleague]},
    )

    who, member = _family_pair(p, rng, used_accounts, used_patients)
    _snoop(
        p,
        rng,
        "family-snooping",
        "family_snooping",
        ["family_access", "unexplained_access"],
        who,
        np.array([member]),
        min(3, last),
        (21, 30),
        2,
        f"looked up a family member ({patient_id(member)}: same surname and home address)",
    )

    me = choose(rng, clinical_staff_patients(staff, pop), used_accounts)
    own = int(staff.patient[me])
    used_patients.add(own)
    _snoop(
        p,
        rng,
        "self-access",
        "self_access",
        ["self_access"],
        me,
        np.array([own]),
        min(4, last),
        (10, 15),
        2,
        "opened their own patient record",
    )

    # -- contractor violations ----------------------------------------------------------------
    gen_violations.after_contract_end(p, rng, used_accounts, mid)
    gen_violations.after_grant_expiry(p, rng, used_accounts, mid)
    gen_violations.dormant(p, rng, used_accounts, used_patients)
    gen_violations.slow_exfiltration(p, rng, used_accounts, used_patients)

    for i in used_patients:
        p.exclude[i] = True
    p.actors = {lbl.id: lbl.account for lbl in p.planted}
    return p


def _snoop(
    p: Plan,
    rng: np.random.Generator,
    sid: str,
    kind: str,
    rules: list[str],
    account: int,
    targets: np.ndarray,
    day: int,
    hm: tuple[int, int],
    reads: int,
    text: str,
    details: dict[str, Any] | None = None,
) -> None:
    st = p.staff
    label = Planted(
        sid,
        kind,
        False,
        rules,
        "high",
        account,
        f"{st.account_ids[account]} {text}.",
        details=details or {},
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        t = p.at(day, *hm) + np.sort(rng.integers(0, 15 * 60_000, reads)) * MS
        pats = np.resize(targets, reads)
        ex.add(
            ts=t,
            source=np.where(np.arange(reads) % 2 == 0, CMS, EPR),
            account=account,
            action=READ,
            patient=pats,
            fields=fields("name,sex,dob,hkid,hospital_no,phone,address,diagnosis"),
            device=st.dev0[account],
            purpose=TREAT,
        )
        label.record(t, pats)

    p.emitters.append(emit)


def _family_pair(
    p: Plan, rng: np.random.Generator, used_accounts: set[int], used_patients: set[int]
) -> tuple[int, int]:
    """A staff member and a relative: same surname, same household address."""
    pop, st = p.pop, p.staff
    order = np.argsort(pop.household, kind="stable")
    hh_sorted = pop.household[order]
    for a in rng.permutation(clinical_staff_patients(st, pop)).tolist():
        if a in used_accounts:
            continue
        me = int(st.patient[a])
        lo, hi = np.searchsorted(hh_sorted, [pop.household[me], pop.household[me] + 1])
        kin = [
            int(i)
            for i in order[lo:hi]
            if i != me
            and pop.address[i] == pop.address[me]
            and pop.names.surname[i] == pop.names.surname[me]
            and i not in used_patients
        ]
        if kin:
            used_accounts.add(a)
            used_patients.add(kin[0])
            return a, kin[0]
    # A tiny population may have none: move a patient into a staff member's home.
    a = choose(rng, clinical_staff_patients(st, pop), used_accounts)
    me = int(st.patient[a])
    other = int(rng.integers(0, pop.n))
    while other == me or other in used_patients or pop.vip[other]:
        other = int(rng.integers(0, pop.n))
    pop.household[other] = pop.household[me]
    pop.address[other] = pop.address[me]
    pop.names.surname[other] = pop.names.surname[me]
    pop.names.foreign[other] = pop.names.foreign[me]
    used_patients.add(other)
    return a, other
