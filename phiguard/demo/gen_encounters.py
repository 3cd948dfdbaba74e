"""Care relationships: admissions, emergency attendances, clinic appointments, pharmacy orders.

Rates are per patient and day, a little above the Hospital Authority's published volumes so
that small synthetic hospitals still have a busy ward. Older patients come more often.
Admissions started before the period (a look-back of 40 days) are kept while still open,
so the wards are full on day one. Each encounter belongs to a department of the patient's
cluster (3% elsewhere) and, often, to a responsible clinician.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from phiguard.demo.gen_common import (
    CLINICAL_DEPTS,
    CLUSTERS,
    DAY,
    DAY_US,
    DEPT_INDEX,
    DEPTS,
    HOUR_US,
    MIN_US,
    PHARM,
    S_ENCOUNTERS,
    SHIFT_OF_HOUR,
    local_midnight_us,
    rng_for,
)
from phiguard.demo.gen_people import Population
from phiguard.demo.gen_staff import DOCTOR, Staff

KINDS = ("admission", "aed_attendance", "appointment", "pharmacy_order")
ADMISSION, AED_VISIT, APPOINTMENT, PHARMACY = range(4)
# Relative access intensity per hour of an encounter (an attendance in AED is busiest).
INTENSITY = np.array([1.0, 3.0, 1.6, 0.4])

RATE_AED = 0.0016
RATE_ELECTIVE = 0.0008
RATE_APPOINTMENT = 0.006
LOOKBACK_DAYS = 40
_ADM_DEPT_W = np.array([0.0, 0.38, 0.20, 0.12, 0.10, 0.08, 0.05, 0.07])  # over CLINICAL_DEPTS
_SOPD_DEPT_W = np.array([0.0, 0.30, 0.20, 0.15, 0.10, 0.08, 0.10, 0.07])
_AED_HOUR_W = np.array(
    [3, 2, 2, 1.5, 1.5, 1.5, 2, 3, 5, 7, 7, 7, 6, 6, 6, 6, 6, 6, 7, 7, 6, 5, 4, 3.0]
)


@dataclass
class Encounters:
    patient: np.ndarray  # int64
    dept: np.ndarray  # int8 index into DEPTS
    account: np.ndarray  # int32, -1 = the whole department
    start: np.ndarray  # int64 µs
    end: np.ndarray  # int64 µs
    kind: np.ndarray  # int8
    cluster: np.ndarray  # int8
    quiet: np.ndarray  # bool: planted for a decoy; draws no routine events

    @property
    def n(self) -> int:
        return len(self.patient)

    @staticmethod
    def concat(parts: list[Encounters]) -> Encounters:
        return Encounters(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def take(self, idx: np.ndarray) -> Encounters:
        return Encounters(*(getattr(self, f)[idx] for f in _FIELDS))

    def sorted(self) -> Encounters:
        """By start time, without duplicates (same patient, department, clinician, window)."""
        order = np.lexsort((self.end, self.account, self.dept, self.patient, self.start))
        e = self.take(order)
        same = np.ones(e.n, dtype=bool)
        if e.n:
            same[0] = False
            for f in ("start", "patient", "dept", "account", "end"):
                col = getattr(e, f)
                same[1:] &= col[1:] == col[:-1]
        return e.take(np.flatnonzero(~same))


_FIELDS = ("patient", "dept", "account", "start", "end", "kind", "cluster", "quiet")


def make_encounters_from(
    patient: np.ndarray,
    dept: np.ndarray | int,
    account: np.ndarray | int,
    start: np.ndarray,
    end: np.ndarray,
    kind: int,
    cluster: np.ndarray | int,
    *,
    quiet: bool = False,
) -> Encounters:
    n = len(patient)
    return Encounters(
        patient.astype(np.int64),
        np.broadcast_to(np.asarray(dept, dtype=np.int8), (n,)).copy(),
        np.broadcast_to(np.asarray(account, dtype=np.int32), (n,)).copy(),
        np.asarray(start, dtype=np.int64),
        np.asarray(end, dtype=np.int64),
        np.full(n, kind, dtype=np.int8),
        np.broadcast_to(np.asarray(cluster, dtype=np.int8), (n,)).copy(),
        np.full(n, quiet, dtype=bool),
    )


class _Doctors:
    """Doctors of each (cluster, department), by shift, for picking a responsible one."""

    def __init__(self, staff: Staff) -> None:
        docs = np.flatnonzero(staff.role == DOCTOR)
        self.n_keys = len(CLUSTERS) * len(DEPTS)
        dept_key = staff.cluster[docs].astype(np.int64) * len(DEPTS) + staff.dept[docs]
        self.any = self._index(docs, dept_key, self.n_keys)
        self.by = self._index(docs, dept_key * 3 + staff.shift[docs], self.n_keys * 3)

    @staticmethod
    def _index(members: np.ndarray, key: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
        order = np.argsort(key, kind="stable")
        size = np.bincount(key, minlength=n)
        return members[order], np.concatenate([[0], np.cumsum(size)[:-1]]), size

    def pick(
        self,
        rng: np.random.Generator,
        cluster: np.ndarray,
        dept: np.ndarray,
        shift: np.ndarray | None,
        rate: float,
    ) -> np.ndarray:
        """A doctor of the row's team (the shift's if given) for ``rate`` of rows, else -1."""
        key = cluster.astype(np.int64) * len(DEPTS) + dept
        members, start, size = self.any
        pick_start, pick_size = start[key], size[key]
        if shift is not None:
            by_members, by_start, by_size = self.by
            k3 = key * 3 + shift
            has = by_size[k3] > 0
            # Shift pools index into by_members; fall back to the whole team where empty.
            u = rng.random(len(key))
            at = by_start[k3] + (u * by_size[k3]).astype(np.int64)
            out_by = by_members[np.minimum(at, max(0, len(by_members) - 1))]
        else:
            has = np.zeros(len(key), dtype=bool)
            out_by = np.zeros(len(key), dtype=np.int64)
        u = rng.random(len(key))
        idx = np.minimum(pick_start + (u * pick_size).astype(np.int64), max(0, len(members) - 1))
        out_any = members[idx] if len(members) else np.full(len(key), -1)
        out = np.where(has, out_by, np.where(pick_size > 0, out_any, -1))
        chosen = rng.random(len(key)) < rate
        return np.where(chosen, out, -1).astype(np.int32)


def _draw_patients(rng: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(cum, rng.random(n) * cum[-1], side="right").astype(np.int64)


def _clinic_cluster(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    away = rng.random(len(home)) < 0.03
    return np.where(away, rng.integers(0, len(CLUSTERS), len(home)), home).astype(np.int8)


def _dept_for(
    rng: np.random.Generator, weights: np.ndarray, age: np.ndarray, sex: np.ndarray
) -> np.ndarray:
    cum = np.cumsum(weights)
    d = np.searchsorted(cum, rng.random(len(age)) * cum[-1], side="right")
    paed, og, med = (CLINICAL_DEPTS.index(x) for x in ("PAED", "OG", "MED"))
    d = np.where(age < 16, paed, np.where(d == paed, med, d))
    d = np.where((d == og) & (sex != 1), med, d)
    return np.array([DEPT_INDEX[CLINICAL_DEPTS[x]] for x in range(len(CLINICAL_DEPTS))])[d]


def make_encounters(
    pop: Population, staff: Staff, seed: int, start: date, days: int, exclude: np.ndarray
) -> Encounters:
    """Encounters touching ``[start, start + days)``; patients in ``exclude`` get none."""
    rng = rng_for(seed, S_ENCOUNTERS)
    w0 = local_midnight_us(start)
    w1 = w0 + days * DAY_US
    age = pop.age.astype(np.float64)
    weight = (0.3 + (age / 45.0) ** 2) * ~exclude
    cum = np.cumsum(weight)
    docs = _Doctors(staff)
    parts: list[Encounters] = []
    aed = DEPT_INDEX["AED"]
    # Emergency attendances (from a day before, so night admissions flow in on day one).
    first_aed = -1
    n_aed = rng.poisson(RATE_AED * pop.n, days - first_aed)
    k = np.repeat(np.arange(first_aed, days), n_aed)
    p = _draw_patients(rng, cum, len(k))
    hour_cum = np.cumsum(_AED_HOUR_W)
    hour = np.searchsorted(hour_cum, rng.random(len(k)) * hour_cum[-1], side="right")
    a_start = w0 + k * DAY_US + hour * HOUR_US + rng.integers(0, 60, len(k)) * MIN_US
    a_len = np.clip(rng.lognormal(np.log(4.0), 0.45, len(k)), 1.5, 12.0)
    a_end = a_start + (a_len * 60).astype(np.int64) * MIN_US
    a_cluster = _clinic_cluster(rng, pop.cluster[p])
    a_doc = docs.pick(rng, a_cluster, np.full(len(k), aed), SHIFT_OF_HOUR[hour], 0.75)
    parts.append(make_encounters_from(p, aed, a_doc, a_start, a_end, AED_VISIT, a_cluster))
    # Admissions: about 30% of attendances, plus elective ones (also before the period).
    via = rng.random(len(k)) < 0.30
    n_el = rng.poisson(RATE_ELECTIVE * pop.n, days + LOOKBACK_DAYS)
    ke = np.repeat(np.arange(-LOOKBACK_DAYS, days), n_el)
    pe = _draw_patients(rng, cum, len(ke))
    e_start = w0 + ke * DAY_US + rng.integers(9 * 60, 17 * 60, len(ke)) * MIN_US
    # Emergency admissions from the look-back period, so the wards are full on day one.
    n_old = rng.poisson(RATE_AED * 0.3 * pop.n, LOOKBACK_DAYS)
    ko = np.repeat(np.arange(-LOOKBACK_DAYS, 0), n_old)
    po = _draw_patients(rng, cum, len(ko))
    o_start = w0 + ko * DAY_US + rng.integers(0, 24 * 60, len(ko)) * MIN_US
    adm_p = np.concatenate([p[via], pe, po])
    adm_start = np.concatenate([a_end[via], e_start, o_start])
    adm_cluster = np.concatenate(
        [a_cluster[via], _clinic_cluster(rng, pop.cluster[np.concatenate([pe, po])])]
    )
    adm_dept = _dept_for(rng, _ADM_DEPT_W, pop.age[adm_p], pop.sex[adm_p])
    los = np.clip(rng.lognormal(np.log(3.0), 0.9, len(adm_p)), 0.25, 45.0)
    los = np.where(adm_dept == DEPT_INDEX["PSY"], los * 3, los)
    adm_end = adm_start + (los * 24 * 60).astype(np.int64) * MIN_US
    adm_doc = docs.pick(rng, adm_cluster, adm_dept, None, 0.6)
    adm = make_encounters_from(adm_p, adm_dept, adm_doc, adm_start, adm_end, ADMISSION, adm_cluster)
    parts.append(adm)
    # Specialist clinic appointments on weekdays: the department holds the whole clinic day.
    weekdays = [d for d in range(days) if (start + timedelta(days=d)).weekday() < 5]
    n_app = rng.poisson(RATE_APPOINTMENT * pop.n, len(weekdays))
    ka = np.repeat(np.array(weekdays, dtype=np.int64), n_app)
    pa_ = _draw_patients(rng, cum, len(ka))
    ap_start = w0 + ka * DAY_US + 8 * HOUR_US
    ap_end = w0 + ka * DAY_US + 18 * HOUR_US
    ap_cluster = _clinic_cluster(rng, pop.cluster[pa_])
    ap_dept = _dept_for(rng, _SOPD_DEPT_W, pop.age[pa_], pop.sex[pa_])
    ap_doc = docs.pick(rng, ap_cluster, ap_dept, np.full(len(ka), DAY), 0.75)
    parts.append(
        make_encounters_from(pa_, ap_dept, ap_doc, ap_start, ap_end, APPOINTMENT, ap_cluster)
    )
    # Pharmacy orders follow admissions, some attendances and half the appointments.
    ph = DEPT_INDEX[PHARM]
    rx_adm = adm.start >= w0 - DAY_US
    rx_app = rng.random(len(ka)) < 0.5
    rx_aed = rng.random(len(k)) < 0.3
    rx_p = np.concatenate([adm.patient[rx_adm], pa_[rx_app], p[rx_aed]])
    rx_s = np.concatenate(
        [
            adm.start[rx_adm] + rng.integers(5, 120, int(rx_adm.sum())) * MIN_US,
            ap_start[rx_app] + 2 * HOUR_US,
            a_end[rx_aed] - HOUR_US,
        ]
    )
    rx_c = np.concatenate([adm.cluster[rx_adm], ap_cluster[rx_app], a_cluster[rx_aed]])
    parts.append(make_encounters_from(rx_p, ph, -1, rx_s, rx_s + 12 * HOUR_US, PHARMACY, rx_c))
    enc = Encounters.concat(parts)
    keep = (enc.end > w0) & (enc.start < w1)
    return enc.take(np.flatnonzero(keep))
