"""Routine work that is not one look-up per encounter: prepared before streaming.

- Ward lists: each morning a nurse of each ward lists its inpatients (one multi-row search).
- Nightly exports: each cluster's reporting service account exports the previous day's
  discharges and attendances at about 02:00, under its grant.
- Contractor engineers and IT support do a little work on weekdays, inside their grants.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from phiguard.demo.gen_batch import (
    CMS,
    EXPORT,
    HOPERAT,
    READ,
    REPORTS,
    SEARCH,
    SYSADMIN,
    TREAT,
    Extras,
    FieldTable,
)
from phiguard.demo.gen_common import (
    CLUSTERS,
    DAY,
    DAY_US,
    HOUR_US,
    MIN_US,
    MS,
    S_EXTRAS,
    NoisePool,
    local_midnight_us,
    rng_for,
)
from phiguard.demo.gen_encounters import ADMISSION, PHARMACY, Encounters
from phiguard.demo.gen_staff import IT_SUPPORT, NURSE, SERVICE, VENDOR_ENGINEER, Grant, Staff


def ward_lists(
    ex: Extras,
    enc: Encounters,
    staff: Staff,
    fields: FieldTable,
    *,
    seed: int,
    start: date,
    days: int,
) -> None:
    rng = rng_for(seed, S_EXTRAS, 1)
    w0 = local_midnight_us(start)
    f = fields("name,sex,hospital_no")
    nurses = staff.role == NURSE
    for d in range(days):
        today = start + timedelta(days=d)
        duty = staff.on_duty(today) & nurses & (staff.shift == DAY)
        assert staff.dormant_until is not None
        duty &= staff.dormant_until <= d
        t = w0 + d * DAY_US + 8 * HOUR_US + 10 * MIN_US
        open_now = np.flatnonzero(
            (enc.kind == ADMISSION) & (enc.start <= t) & (enc.end > t + HOUR_US)
        )
        if len(open_now) == 0:
            continue
        key = enc.cluster[open_now].astype(np.int64) * 100 + enc.dept[open_now]
        order = np.argsort(key, kind="stable")
        open_now, key = open_now[order], key[order]
        bounds = np.flatnonzero(np.diff(key)) + 1
        for grp in np.split(open_now, bounds):
            c, dept = int(enc.cluster[grp[0]]), int(enc.dept[grp[0]])
            who = np.flatnonzero(duty & (staff.cluster == c) & (staff.dept == dept))
            if len(who) == 0:
                continue
            account = int(who[rng.integers(0, len(who))])
            rows = np.unique(enc.patient[grp])[:40]
            if (staff.patient[account] == rows).any():
                continue
            t0 = t + int(rng.integers(0, 40)) * MIN_US
            ex.add(
                query=True,
                ts=t0 + np.arange(len(rows)) * 3 * MS,
                source=CMS,
                account=account,
                action=SEARCH,
                patient=rows,
                fields=f,
                device=staff.dev0[account],
                purpose=TREAT,
            )


def nightly_exports(
    ex: Extras,
    enc: Encounters,
    staff: Staff,
    fields: FieldTable,
    *,
    seed: int,
    start: date,
    days: int,
) -> tuple[list[int], dict[int, list[int]]]:
    """Each night's export per cluster.

    Returns the largest export per cluster and the query handles per service account.
    """
    rng = rng_for(seed, S_EXTRAS, 2)
    w0 = local_midnight_us(start)
    f = fields("name,sex,dob,hospital_no,diagnosis")
    largest = [0] * len(CLUSTERS)
    handles: dict[int, list[int]] = {}
    services = np.flatnonzero(staff.role == SERVICE)
    relevant = enc.kind != PHARMACY
    for d in range(days):
        lo, hi = w0 + (d - 1) * DAY_US, w0 + d * DAY_US
        ended = np.flatnonzero(relevant & (enc.end >= lo) & (enc.end < hi))
        for account in services:
            c = int(staff.cluster[account])
            rows = np.unique(enc.patient[ended[enc.cluster[ended] == c]])
            if len(rows) == 0:
                continue
            largest[c] = max(largest[c], len(rows))
            t0 = (
                hi
                + 2 * HOUR_US
                + int(rng.integers(0, 10)) * MIN_US
                + int(rng.integers(0, 60_000)) * MS
            )
            h = ex.add(
                query=True,
                ts=t0 + np.arange(len(rows)) * 2 * MS,
                source=REPORTS,
                account=account,
                action=EXPORT,
                patient=rows,
                fields=f,
                device=staff.dev0[account],
                purpose=HOPERAT,
            )
            handles.setdefault(int(account), []).append(h)
    return largest, handles


def _pick_noise(rng: np.random.Generator, noise: NoisePool, cluster: int, k: int) -> np.ndarray:
    members, start, size = noise
    c = max(cluster, 0)
    if size[c] == 0:
        return rng.integers(0, max(1, len(members)), k)
    return members[start[c] + rng.integers(0, size[c], k)]


def grant_work(
    ex: Extras,
    staff: Staff,
    fields: FieldTable,
    noise: NoisePool,
    *,
    seed: int,
    start: date,
    days: int,
    skip: set[int],
) -> None:
    """Weekday work of vendor engineers and IT support, inside their grants.

    Accounts in ``skip`` are driven by a scenario instead.
    """
    rng = rng_for(seed, S_EXTRAS, 3)
    w0 = local_midnight_us(start)
    for g in staff.grants:
        a = g.account
        if a in skip or staff.role[a] not in (VENDOR_ENGINEER, IT_SUPPORT):
            continue
        for d in range(days):
            work_day(ex, staff, fields, noise, rng, g, d, w0, start)


def work_day(
    ex: Extras,
    staff: Staff,
    fields: FieldTable,
    noise: NoisePool,
    rng: np.random.Generator,
    g: Grant,
    d: int,
    w0: int,
    start: date,
    *,
    sessions: int | None = None,
    cluster: int | None = None,
    hours: tuple[int, int] = (9, 18),
    rules: bool = True,
) -> tuple[int, np.ndarray]:
    """One working day of small look-ups for grant ``g``: ``(rows added, patients touched)``.

    With ``rules`` (the default) nothing happens on weekends, outside the grant's window or
    after the vendor's contract end; scenarios turn that off to plant violations.
    """
    a = g.account
    today = start + timedelta(days=d)
    day0 = w0 + d * DAY_US
    none = np.zeros(0, dtype=np.int64)
    if rules and (
        today.weekday() >= 5 or not (g.valid_from <= day0 + hours[0] * HOUR_US < g.valid_to)
    ):
        return 0, none
    if rules and staff.role[a] == VENDOR_ENGINEER:
        vendor = staff.vendors[int(staff.vendor[a])]
        if vendor.contract_end is not None and vendor.contract_end < today:
            return 0, none
    f = fields(g.scope_fields)
    purpose = SYSADMIN
    patients: list[np.ndarray] = []
    n_sessions = sessions if sessions is not None else int(rng.poisson(1.1))
    added = 0
    target = g.scope_cluster if cluster is None else cluster
    for _ in range(min(n_sessions, 4)):
        t = (
            day0
            + int(rng.integers(hours[0] * 60, hours[1] * 60 - 30)) * MIN_US
            + int(rng.integers(0, 60_000)) * MS
        )
        rows = min(g.max_rows, int(rng.integers(1, 6)))
        pats = _pick_noise(rng, noise, target if target >= 0 else int(rng.integers(0, 7)), rows)
        ex.add(
            query=True,
            ts=t + np.arange(rows) * 40 * MS,
            source=CMS,
            account=a,
            action=SEARCH,
            patient=pats,
            fields=f,
            device=staff.dev0[a],
            purpose=purpose,
        )
        reads = pats[: int(rng.integers(1, min(3, rows) + 1))]
        ex.add(
            ts=t + 20_000 * MS + np.arange(len(reads)) * 45_000 * MS,
            source=CMS,
            account=a,
            action=READ,
            patient=reads,
            fields=f,
            device=staff.dev0[a],
            purpose=purpose,
        )
        added += rows + len(reads)
        patients.append(pats)
    return added, np.concatenate([none, *patients])
