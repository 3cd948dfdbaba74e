"""Decoys: busy but legitimate work that detection must not escalate to high or critical."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from phiguard.demo.gen_batch import (
    CMS,
    ETREAT,
    HOPERAT,
    PRINT,
    READ,
    REPORTS,
    TREAT,
    UPDATE,
    Extras,
    FieldTable,
)
from phiguard.demo.gen_common import (
    CLUSTER_INDEX,
    CLUSTERS,
    DAY,
    DEPT_INDEX,
    MIN_US,
    MS,
    S_SCENARIOS,
    NoisePool,
    patient_id,
    rng_for,
)
from phiguard.demo.gen_encounters import (
    ADMISSION,
    AED_VISIT,
    APPOINTMENT,
    make_encounters_from,
)
from phiguard.demo.gen_names import tables
from phiguard.demo.gen_plan import (
    Plan,
    Planted,
    choose,
    make_on_duty,
    noise_in,
)
from phiguard.demo.gen_staff import (
    CLERK,
    DOCTOR,
)


def plant_decoys(p: Plan, noise: NoisePool) -> None:
    """Decoys need patients from the noise pool and encounters; call after :func:`plan`."""
    rng = rng_for(p.seed, S_SCENARIOS, 2)
    used = p.used_accounts
    _busy_emergency_doctor(p, rng, noise, used)
    _clerk_batch_print(p, rng, noise, used)
    _common_surname(p, rng, noise, used)


def _busy_emergency_doctor(
    p: Plan, rng: np.random.Generator, noise: NoisePool, used: set[int]
) -> None:
    st = p.staff
    c = CLUSTER_INDEX["KWC"]
    aed = DEPT_INDEX["AED"]
    day = min(2, p.days - 1)
    aed_doctor = (st.role == DOCTOR) & (st.dept == aed) & (st.patient < 0)
    doc = choose(
        rng,
        np.flatnonzero(aed_doctor & (st.cluster == c) & (st.shift == DAY)),
        used,
        np.flatnonzero(aed_doctor & (st.cluster == c)),  # any shift: make_on_duty rosters them
        np.flatnonzero(aed_doctor),
    )
    c = int(st.cluster[doc])
    make_on_duty(st, doc, p.start + timedelta(days=day))
    k = 60
    pats = rng.choice(noise_in(noise, c), k, replace=False)
    start = p.at(day, 8) + np.sort(rng.integers(0, 6 * 60, k)) * MIN_US
    end = start + rng.integers(120, 360, k) * MIN_US
    p.encounters.append(make_encounters_from(pats, aed, doc, start, end, AED_VISIT, c, quiet=True))
    label = Planted(
        "decoy-busy-emergency-doctor",
        "busy_emergency_doctor",
        True,
        ["volume_above_baseline"],
        "medium",
        doc,
        f"{st.account_ids[doc]} worked a very busy day shift in the emergency department: "
        f"hundreds of accesses, every one to a patient under their care.",
        details={"encounters": k, "shift": "08:00-16:00"},
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, _: NoisePool) -> None:
        per = rng.integers(4, 9, k)
        e = np.repeat(np.arange(k), per)
        hi = np.minimum(end, p.at(day, 15, 59))
        t = start[e] + (rng.random(len(e)) * (hi - start)[e]).astype(np.int64)
        t -= t % MS
        action = np.where(rng.random(len(e)) < 0.25, UPDATE, READ)
        ex.add(
            ts=t,
            source=CMS,
            account=doc,
            action=action,
            patient=pats[e],
            fields=np.where(
                action == READ,
                fields("name,sex,dob,hospital_no,diagnosis,medication,notes"),
                fields("diagnosis,medication,notes"),
            ),
            device=st.dev0[doc],
            purpose=np.where(rng.random(len(e)) < 0.6, ETREAT, TREAT),
        )
        label.record(t, pats[e])

    p.emitters.append(emit)


def _clerk_batch_print(p: Plan, rng: np.random.Generator, noise: NoisePool, used: set[int]) -> None:
    st = p.staff
    c = CLUSTER_INDEX["KCC"]
    med = DEPT_INDEX["MED"]
    weekdays = [d for d in range(p.days) if (p.start + timedelta(days=d)).weekday() < 5]
    day = weekdays[0] if weekdays else 0
    clerk = choose(
        rng, np.flatnonzero((st.role == CLERK) & (st.cluster == c) & (st.dept == med)), used
    )
    make_on_duty(st, clerk, p.start + timedelta(days=day))
    k = 120
    pool = noise_in(noise, c)
    pats = np.sort(rng.choice(pool, min(k, len(pool)), replace=False))
    p.encounters.append(
        make_encounters_from(
            pats,
            med,
            -1,
            np.full(len(pats), p.at(day, 8)),
            np.full(len(pats), p.at(day, 18)),
            APPOINTMENT,
            c,
            quiet=True,
        )
    )
    label = Planted(
        "decoy-clerk-batch-print",
        "clerk_batch_print",
        True,
        ["bulk_print"],
        "medium",
        clerk,
        f"{st.account_ids[clerk]} printed {len(pats)} clinic labels and letters for today's "
        "appointments of their own department in one batch.",
        details={"department": "MED", "cluster": "KCC"},
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, _: NoisePool) -> None:
        t = p.at(day, 10, 5) + np.arange(len(pats)) * 300 * MS
        h = ex.add(
            query=True,
            ts=t,
            source=REPORTS,
            account=clerk,
            action=PRINT,
            patient=pats,
            fields=fields("name,sex,dob,hospital_no,address"),
            device=st.dev0[clerk],
            purpose=HOPERAT,
        )
        label.handles.append(h)
        label.record(t, pats)

    p.emitters.append(emit)


def _common_surname(p: Plan, rng: np.random.Generator, noise: NoisePool, used: set[int]) -> None:
    st, pop = p.staff, p.pop
    c = CLUSTER_INDEX["NTEC"]
    surg = DEPT_INDEX["SURG"]
    day = min(1, p.days - 1)
    chan = tables().surname_index("CHAN")
    doc = choose(
        rng,
        np.flatnonzero(
            (st.role == DOCTOR) & (st.cluster == c) & (st.dept == surg) & (st.shift == DAY)
        ),
        used,
    )
    make_on_duty(st, doc, p.start + timedelta(days=day))
    pool = noise_in(noise, c)
    chans = pool[np.isin(pop.names.surname[pool], chan) & (pop.address[pool] >= 0)]
    home = int(chans[0])  # the doctor's own PMI record: a CHAN with a home address
    st.patient[doc] = home
    st.household[doc] = pop.household[home]
    others = chans[(pop.household[chans] != pop.household[home])][1:13]
    start = np.full(len(others), p.at(day, 9)) - rng.integers(0, 2 * 24 * 60, len(others)) * MIN_US
    end = (
        np.full(len(others), p.at(day, 9))
        + rng.integers(24 * 60, 4 * 24 * 60, len(others)) * MIN_US
    )
    p.encounters.append(
        make_encounters_from(others, surg, doc, start, end, ADMISSION, c, quiet=True)
    )
    label = Planted(
        "decoy-common-surname",
        "common_surname",
        True,
        ["family_access"],
        "medium",
        doc,
        f"{st.account_ids[doc]} (surname CHAN) treated {len(others)} unrelated CHAN patients "
        "under their care: same surname, different homes.",
        details={"surname": "CHAN", "doctor_patient_id": patient_id(home)},
    )
    p.planted.append(label)

    def emit(ex: Extras, fields: FieldTable, _: NoisePool) -> None:
        e = np.repeat(np.arange(len(others)), 3)
        t = p.at(day, 9, 30) + np.sort(rng.integers(0, 6 * 60 * 60_000, len(e))) * MS
        ex.add(
            ts=t,
            source=CMS,
            account=doc,
            action=READ,
            patient=others[e],
            fields=fields("name,sex,dob,hospital_no,diagnosis,medication,notes"),
            device=st.dev0[doc],
            purpose=TREAT,
        )
        label.record(t, others[e])

    p.emitters.append(emit)


def service_labels(p: Plan, handles: dict[int, list[int]], ex: Extras) -> None:
    """Label every nightly export as a decoy (one label per service account)."""
    st = p.staff
    b = ex.final
    assert b is not None
    for account, hs in sorted(handles.items()):
        rows = b.account == account
        label = Planted(
            f"decoy-nightly-export-{CLUSTERS[int(st.cluster[account])].lower()}",
            "service_nightly_export",
            True,
            ["bulk_export"],
            "medium",
            account,
            f"{st.account_ids[account]} ran its nightly export of the previous day's discharges "
            "and attendances under a valid grant.",
            keep_patient_ids=False,
        )
        label.record(b.ts[rows], b.patient[rows])
        label.handles = hs
        grant = next(g for g in st.grants if g.account == account)
        label.details = {
            "grant_id": grant.grant_id,
            "grant_max_rows": grant.max_rows,
            "nights": len(hs),
        }
        p.planted.append(label)
