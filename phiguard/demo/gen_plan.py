"""The plan of planted scenarios and the labels that describe them.

Planting happens in two steps. ``gen_scenarios.plan`` runs before encounters are drawn: it
picks the actors and their targets, adjusts contracts, grants and staff (an account left
dormant, a contract that ends mid-period), keeps targets out of routine care so that their
look-ups stay unexplained, and adds the encounters decoys need. :meth:`Plan.emit` runs once
encounters and routine extras exist and adds the scenario events; labels are completed after
the extras are sorted and their query ids are known.

Every label says what happened (kind, account, vendor, patients, window, events), which rules
should fire (``expected_rules``) and how severe the alert should be: at least
``expected_min_severity`` for a scenario, at most ``max_severity`` for a decoy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from phiguard.demo.gen_batch import (
    Extras,
    FieldTable,
)
from phiguard.demo.gen_common import (
    DAY_US,
    HOUR_US,
    MIN_US,
    NoisePool,
    iso_local,
    local_midnight_us,
    patient_id,
)
from phiguard.demo.gen_encounters import (
    Encounters,
)
from phiguard.demo.gen_people import Population
from phiguard.demo.gen_staff import (
    CLERK,
    DOCTOR,
    NURSE,
    Staff,
)


@dataclass
class Planted:
    """One scenario's label, filled in as its events are added."""

    id: str
    kind: str
    decoy: bool
    rules: list[str]
    severity: str  # min severity for scenarios, max severity for decoys
    account: int
    description: str
    patients: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    events: int = 0
    handles: list[int] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    keep_patient_ids: bool = True

    def record(self, ts: np.ndarray, patients: np.ndarray) -> None:
        self.events += len(ts)
        if len(ts):
            self.ts.extend([int(ts.min()), int(ts.max())])
        self.patients.extend(int(p) for p in np.unique(patients[patients >= 0]))


@dataclass
class Plan:
    pop: Population
    staff: Staff
    seed: int
    start: date
    days: int
    exclude: np.ndarray
    encounters: list[Encounters] = field(default_factory=list)
    skip_work: set[int] = field(default_factory=set)
    planted: list[Planted] = field(default_factory=list)
    actors: dict[str, int] = field(default_factory=dict)
    used_accounts: set[int] = field(default_factory=set)
    export_patients: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    emitters: list[Callable[[Extras, FieldTable, NoisePool], None]] = field(default_factory=list)

    @property
    def w0(self) -> int:
        return local_midnight_us(self.start)

    def at(self, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
        return self.w0 + day * DAY_US + hour * HOUR_US + minute * MIN_US + second * 1_000_000

    def emit(self, ex: Extras, fields: FieldTable, noise: NoisePool) -> None:
        for fn in self.emitters:
            fn(ex, fields, noise)

    def labels(self, ex: Extras) -> list[dict[str, Any]]:
        st = self.staff
        out = []
        for p in self.planted:
            vendor = int(st.vendor[p.account])
            label: dict[str, Any] = {
                "id": p.id,
                "kind": p.kind,
                "decoy": p.decoy,
                "description": p.description,
                "expected_rules": p.rules,
                ("max_severity" if p.decoy else "expected_min_severity"): p.severity,
                "account_id": st.account_ids[p.account],
                "vendor_id": st.vendors[vendor].vendor_id if vendor >= 0 else None,
                "first_ts": iso_local(min(p.ts)) if p.ts else None,
                "last_ts": iso_local(max(p.ts) + 999_999) if p.ts else None,
                "event_count": p.events,
                "patient_count": len(set(p.patients)),
                "query_ids": [ex.query_id(h) for h in p.handles],
                "details": p.details,
            }
            if p.keep_patient_ids:
                label["patient_ids"] = [patient_id(i) for i in sorted(set(p.patients))]
            out.append(label)
        return out


def choose(
    rng: np.random.Generator, candidates: np.ndarray, used: set[int], *fallbacks: np.ndarray
) -> int:
    """A random unused candidate; when none is left, the first fallback set that has one
    (looser criteria, in order), so a scenario is planted for every seed and size."""
    free = np.array([], dtype=np.int64)
    for pool in (candidates, *fallbacks):
        free = np.array([c for c in pool.tolist() if c not in used], dtype=np.int64)
        if len(free):
            break
    if len(free) == 0:
        raise RuntimeError("no candidate left for a scenario")
    got = int(free[rng.integers(0, len(free))])
    used.add(got)
    return got


def clinical_staff_patients(staff: Staff, pop: Population) -> np.ndarray:
    return np.flatnonzero(
        np.isin(staff.role, (DOCTOR, NURSE, CLERK))
        & (staff.patient >= 0)
        & (pop.address[np.maximum(staff.patient, 0)] >= 0)
    )


def make_on_duty(staff: Staff, account: int, today: date) -> None:
    """Rearrange the account's days off so that it works ``today``."""
    staff.off[account] = (-today.weekday()) % 7


def record_parts(label: Planted, ex: Extras, before: int) -> None:
    for part in ex.parts[before:]:
        label.record(part.ts, part.patient)
        if part.query[0] >= 0:
            label.handles.append(int(part.query[0]))


def noise_in(noise: NoisePool, cluster: int) -> np.ndarray:
    members, start, size = noise
    return members[start[cluster] : start[cluster] + size[cluster]]
