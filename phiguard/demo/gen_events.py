"""Access events (spec §1.6), streamed hour by hour in bounded memory.

Most events come from care: for each hour, the generator draws events over the encounters
open in that hour (weighted by how busy each kind of encounter is), places each inside the
encounter's window, and gives it to someone of the encounter's department and cluster who
is on shift that hour and on duty that day (often the responsible clinician). A small share
is noise: unexplained look-ups and searches that found nobody. Everything else — ward lists,
nightly exports, contractor and IT work, and the planted scenarios — is prepared up front as
"extras" and merged into the hour it belongs to. Each hour is sorted by time, given
per-source sequence numbers, and written as one Arrow table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from phiguard.demo.gen_batch import (
    ACTIONS,
    CMS,
    EPR,
    ETREAT,
    HOPERAT,
    OUTCOMES,
    PRINT,
    PURPOSES,
    READ,
    REPORTS,
    SEARCH,
    SOURCES,
    TREAT,
    EventBatch,
    FieldTable,
)
from phiguard.demo.gen_common import (
    CLUSTERS,
    DAY_US,
    DEPT_INDEX,
    DEPTS,
    HOUR_US,
    MS,
    S_EVENTS,
    SHIFT_OF_HOUR,
    NoisePool,
    dict_column,
    digits,
    fixed_strings,
    ids,
    local_midnight_us,
    patient_ids,
    rng_for,
    split_counts,
)
from phiguard.demo.gen_encounters import INTENSITY, Encounters
from phiguard.demo.gen_people import Population
from phiguard.demo.gen_staff import CLERK, CLINICAL_ROLES, DOCTOR, NURSE, PHARMACIST, Staff

_ID_PREFIX = np.frombuffer(b"CMSEPRREP", dtype=np.uint8).reshape(3, 3)  # event id prefix
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("source", pa.string()),
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("account_id", pa.string()),
        ("action", pa.string()),
        ("patient_id", pa.string()),
        ("fields", pa.string()),
        ("query_id", pa.string()),
        ("client_ip", pa.string()),
        ("device_id", pa.string()),
        ("purpose", pa.string()),
        ("outcome", pa.string()),
    ]
)
_DICT = pa.dictionary(pa.int32(), pa.string())
# What the writer is handed: the same columns, low-cardinality ones dictionary-encoded.
# Parquet stores them as plain UTF-8 strings (the Arrow schema is not embedded).
_DICT_COLUMNS = {
    "source", "account_id", "action", "fields", "client_ip", "device_id", "purpose", "outcome"
}  # fmt: skip
WRITE_SCHEMA = pa.schema(
    [pa.field(f.name, _DICT) if f.name in _DICT_COLUMNS else f for f in EVENT_SCHEMA]
)

# Events per hour of the day (relative) and the weekend factor.
# fmt: off
HOUR_W = np.array([1.2, 0.9, 0.8, 0.7, 0.7, 0.9, 1.5, 3.0, 5.5, 7.5, 8.0, 8.0,
                   6.5, 7.0, 7.5, 7.5, 7.0, 6.0, 4.5, 3.8, 3.2, 2.6, 2.0, 1.6])
# fmt: on
WEEKEND = 0.65
NOISE_RATE = 0.012  # unexplained look-ups by clinical staff
EMPTY_SEARCH_RATE = 0.008
DENIED_RATE = 0.002
SLICE_ROWS = 1_000_000


# Actions by role: read, search, print, export, update.
_ACTION_P = {
    DOCTOR: (0.72, 0.05, 0.03, 0.0, 0.20),
    NURSE: (0.62, 0.03, 0.05, 0.0, 0.30),
    CLERK: (0.45, 0.25, 0.20, 0.0, 0.10),
    PHARMACIST: (0.78, 0.02, 0.02, 0.0, 0.18),
}
_FIELDS_BY = {
    DOCTOR: (
        "name,sex,dob,hospital_no,diagnosis,medication,notes",
        "name,sex,hospital_no",
        "name,sex,dob,hospital_no,diagnosis",
        "",
        "diagnosis,medication,notes",
    ),
    NURSE: (
        "name,sex,dob,hospital_no,medication,vitals",
        "name,sex,hospital_no",
        "name,sex,hospital_no,medication",
        "",
        "vitals,notes",
    ),
    CLERK: (
        "name,sex,dob,hkid,hospital_no,phone,address",
        "name,sex,hospital_no",
        "name,sex,dob,hospital_no,address",
        "",
        "phone,address",
    ),
    PHARMACIST: (
        "name,sex,dob,hospital_no,allergy,medication",
        "name,sex,hospital_no",
        "name,hospital_no,medication",
        "",
        "medication",
    ),
}


class Pools:
    """Who can be given an event: clinical staff of a (cluster, department) on shift today."""

    def __init__(self, staff: Staff, start: date) -> None:
        self.staff = staff
        self.start = start
        self.ngroups = len(CLUSTERS) * len(DEPTS)
        clinical = np.isin(staff.role, CLINICAL_ROLES) & (staff.cluster >= 0)
        self.clinical = clinical
        self.fallback = self._build(clinical)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _key(self, members: np.ndarray) -> np.ndarray:
        return self.staff.cluster[members].astype(np.int64) * len(DEPTS) + self.staff.dept[members]

    def _build(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        members = np.flatnonzero(mask)
        key = self._key(members)
        order = np.argsort(key, kind="stable")
        members = members[order]
        size = np.bincount(key, minlength=self.ngroups)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        return members, start, size

    def get(self, day: int, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if (day, shift) not in self._cache:
            st = self.staff
            today = self.start + timedelta(days=day)
            assert st.dormant_until is not None
            mask = (
                self.clinical & (st.shift == shift) & st.on_duty(today) & (st.dormant_until <= day)
            )
            members, start, size = self._build(mask)
            fb_members, fb_start, fb_size = self.fallback
            # An empty group borrows the whole department (someone covers the shift).
            empty = size == 0
            members = np.concatenate([members, fb_members])
            start = np.where(empty, fb_start + (len(members) - len(fb_members)), start)
            size = np.where(empty, fb_size, size)
            self._cache[(day, shift)] = (members, start, size)
        return self._cache[(day, shift)]


def noise_pool(pop: Population, staff: Staff, exclude: np.ndarray) -> NoisePool:
    """Patients that random look-ups may touch, by cluster: no VIPs, staff or their families."""
    linked = staff.patient[staff.patient >= 0]
    homes = np.unique(staff.household[staff.household >= 0])
    ok = ~pop.vip & ~exclude & ~np.isin(pop.household, homes)
    ok[linked] = False
    members = np.flatnonzero(ok)
    key = pop.cluster[members]
    order = np.argsort(key, kind="stable")
    members = members[order]
    size = np.bincount(key, minlength=len(CLUSTERS))
    return members, np.concatenate([[0], np.cumsum(size)[:-1]]), size


@dataclass
class Stats:
    encounter_events: int = 0
    noise_events: int = 0
    empty_searches: int = 0
    dropped: int = 0
    extras: int = 0


class EventStream:
    """Yields sorted :class:`EventBatch` slices covering the whole period."""

    def __init__(
        self,
        *,
        pop: Population,
        staff: Staff,
        enc: Encounters,
        extras: EventBatch,
        fields: FieldTable,
        noise: tuple[np.ndarray, np.ndarray, np.ndarray],
        start: date,
        days: int,
        events: int,
        seed: int,
    ) -> None:
        self.pop, self.staff, self.enc, self.extras = pop, staff, enc, extras
        self.start, self.days, self.events, self.seed = start, days, events, seed
        self.noise = noise
        self.pools = Pools(staff, start)
        self.stats = Stats(extras=len(extras))
        self.w0 = local_midnight_us(start)
        order = np.argsort(enc.start, kind="stable")
        self._enc_order = order
        self._enc_start_sorted = enc.start[order]
        # Lookup tables for vectorised role-based choices.
        n_roles = max(CLINICAL_ROLES) + 1
        self._action_cum = np.zeros((n_roles, len(ACTIONS)))
        self._fields = np.zeros((n_roles, len(ACTIONS)), dtype=np.int16)
        for r, p in _ACTION_P.items():
            self._action_cum[r] = np.cumsum(p)
            for a, f in enumerate(_FIELDS_BY[r]):
                self._fields[r, a] = fields(f) if f else 0
        self._search_fields = fields("name,sex,hospital_no")
        self.slices = self._plan()

    @property
    def total(self) -> int:
        return self.events + len(self.extras)

    def _plan(self) -> list[tuple[int, int, int, int]]:
        """``(day, t0, t1, n)`` slices: an hour each, split further when very busy."""
        weights = []
        for d in range(self.days):
            wk = WEEKEND if (self.start + timedelta(days=d)).weekday() >= 5 else 1.0
            weights.append(HOUR_W * wk)
        counts = split_counts(self.events, np.concatenate(weights))
        out = []
        for i, n in enumerate(counts):
            d, h = divmod(i, 24)
            t0 = self.w0 + d * DAY_US + h * HOUR_US
            parts = max(1, -(-int(n) // SLICE_ROWS))
            sub = split_counts(int(n), np.ones(parts))
            for j in range(parts):
                out.append(
                    (d, t0 + j * HOUR_US // parts, t0 + (j + 1) * HOUR_US // parts, int(sub[j]))
                )
        return out

    def __iter__(self) -> Iterator[EventBatch]:
        ex = self.extras
        for i, (day, t0, t1, n) in enumerate(self.slices):
            rng = rng_for(self.seed, S_EVENTS, i)
            main = self._care(rng, day, t0, t1, n)
            lo, hi = np.searchsorted(ex.ts, [t0, t1])
            if i == 0:
                lo = 0
            if i == len(self.slices) - 1:
                hi = len(ex)
            merged = EventBatch.concat([main, ex.take(slice(lo, hi))])
            yield merged.take(np.argsort(merged.ts, kind="stable"))

    def _care(self, rng: np.random.Generator, day: int, t0: int, t1: int, n: int) -> EventBatch:
        enc, st, pop = self.enc, self.staff, self.pop
        upto = int(np.searchsorted(self._enc_start_sorted, t1))
        cand = self._enc_order[:upto]
        act = cand[enc.end[cand] > t0]
        hour = int(((t0 - self.w0) // HOUR_US) % 24)
        shift = int(SHIFT_OF_HOUR[hour])
        members, pstart, psize = self.pools.get(day, shift)
        act = act[~enc.quiet[act]]
        if len(act) == 0 or n == 0:
            return self._noise_only(rng, day, t0, t1, n, members)
        lo = np.maximum(enc.start[act], t0)
        hi = np.minimum(enc.end[act], t1)
        w = INTENSITY[enc.kind[act]] * (hi - lo)
        cum = np.cumsum(w, dtype=np.float64)
        pick = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(act) - 1)
        e = act[pick]
        span = (hi - lo)[pick]
        ts = lo[pick] + (rng.random(n) * span).astype(np.int64)
        ts -= ts % MS
        patient = enc.patient[e]
        g = enc.cluster[e].astype(np.int64) * len(DEPTS) + enc.dept[e]
        account = members[pstart[g] + (rng.random(n) * psize[g]).astype(np.int64)]
        resp = enc.account[e]
        today = self.start + timedelta(days=day)
        duty = st.on_duty(today)
        use_resp = (resp >= 0) & (rng.random(n) < 0.25)
        use_resp &= duty[np.maximum(resp, 0)] & (st.shift[np.maximum(resp, 0)] == shift)
        assert st.dormant_until is not None
        use_resp &= st.dormant_until[np.maximum(resp, 0)] <= day
        account = np.where(use_resp, resp, account).astype(np.int32)
        # Nobody looks up themselves or their own family as part of routine care.
        for attempt in range(2):
            clash = (st.patient[account] == patient) | (
                (st.household[account] >= 0) & (st.household[account] == pop.household[patient])
            )
            if not clash.any():
                break
            if attempt == 0:
                redo = np.flatnonzero(clash)
                account[redo] = members[
                    pstart[g[redo]] + (rng.random(len(redo)) * psize[g[redo]]).astype(np.int64)
                ]
            else:
                keep = ~clash
                self.stats.dropped += int(clash.sum())
                ts, patient, account, e = ts[keep], patient[keep], account[keep], e[keep]
                n = len(ts)
        role = st.role[account]
        action = (rng.random(n)[:, None] > self._action_cum[role]).sum(axis=1).astype(np.int8)
        action = np.minimum(action, len(ACTIONS) - 1)
        fields = self._fields[role, action]
        # Noise: a look-up nobody's encounter explains; a search that found nobody.
        u = rng.random(n)
        noisy = u < NOISE_RATE
        empty = (u >= NOISE_RATE) & (u < NOISE_RATE + EMPTY_SEARCH_RATE)
        if noisy.any():
            patient = patient.copy()
            patient[noisy] = self._noise_patients(rng, st.cluster[account[noisy]])
        patient = np.where(empty, -1, patient)
        action = np.where(empty, SEARCH, action).astype(np.int8)
        fields = np.where(empty, self._search_fields, fields).astype(np.int16)
        self.stats.encounter_events += int(n - noisy.sum() - empty.sum())
        self.stats.noise_events += int(noisy.sum())
        self.stats.empty_searches += int(empty.sum())
        return self._finish(rng, ts, account, action, patient, fields, e_dept=enc.dept[e])

    def _noise_patients(self, rng: np.random.Generator, cluster: np.ndarray) -> np.ndarray:
        members, start, size = self.noise
        c = np.maximum(cluster, 0).astype(np.int64)
        sz = size[c]
        out = members[
            np.minimum(start[c] + (rng.random(len(c)) * sz).astype(np.int64), len(members) - 1)
        ]
        return np.where(sz > 0, out, rng.integers(0, self.pop.n, len(c)))

    def _noise_only(
        self, rng: np.random.Generator, day: int, t0: int, t1: int, n: int, members: np.ndarray
    ) -> EventBatch:
        ts = np.sort(t0 + (rng.random(n) * (t1 - t0)).astype(np.int64))
        ts -= ts % MS
        account = members[rng.integers(0, len(members), n)].astype(np.int32)
        role = self.staff.role[account]
        patient = self._noise_patients(rng, self.staff.cluster[account])
        action = np.full(n, READ, dtype=np.int8)
        self.stats.noise_events += n
        return self._finish(
            rng,
            ts,
            account,
            action,
            patient,
            self._fields[role, READ],
            e_dept=self.staff.dept[account],
        )

    def _finish(
        self,
        rng: np.random.Generator,
        ts: np.ndarray,
        account: np.ndarray,
        action: np.ndarray,
        patient: np.ndarray,
        fields: np.ndarray,
        e_dept: np.ndarray,
    ) -> EventBatch:
        st = self.staff
        n = len(ts)
        u = rng.random(n)
        source = np.where(
            action == READ,
            np.where(u < 0.55, CMS, EPR),
            np.where((action == PRINT) & (u < 0.3), REPORTS, CMS),
        ).astype(np.int8)
        role = st.role[account]
        purpose = np.where(role == CLERK, HOPERAT, TREAT)
        purpose = np.where(
            (e_dept == DEPT_INDEX["AED"]) & (role != CLERK) & (u < 0.6), ETREAT, purpose
        )
        purpose = np.where(rng.random(n) < 0.02, -1, purpose).astype(np.int8)
        dev1 = st.dev1[account]
        device = np.where((dev1 >= 0) & (rng.random(n) < 0.15), dev1, st.dev0[account])
        outcome = (rng.random(n) < DENIED_RATE).astype(np.int8)
        return EventBatch(
            ts,
            source,
            account.astype(np.int32),
            action.astype(np.int8),
            patient.astype(np.int64),
            fields.astype(np.int16),
            np.full(n, -1, dtype=np.int64),
            device.astype(np.int32),
            purpose,
            outcome,
        )


class ArrowEncoder:
    """Turns sorted batches into Arrow tables with event ids and per-source sequence numbers."""

    def __init__(self, staff: Staff, fields: FieldTable) -> None:
        self.accounts = pa.array(staff.account_ids)
        self.devices = pa.array(staff.devices)
        self.ips = pa.array(staff.ips)
        self.fields = pa.array(fields.values)
        self.sources = pa.array(SOURCES)
        self.actions = pa.array(ACTIONS)
        self.purposes = pa.array(PURPOSES)
        self.outcomes = pa.array(OUTCOMES)
        self.next_seq = np.ones(len(SOURCES), dtype=np.int64)

    def encode(self, b: EventBatch) -> pa.Table:
        n = len(b)
        seq = np.empty(n, dtype=np.int64)
        for s in range(len(SOURCES)):
            m = b.source == s
            k = int(np.count_nonzero(m))
            seq[m] = self.next_seq[s] + np.arange(k)
            self.next_seq[s] += k
        event_id = fixed_strings([_ID_PREFIX[b.source.astype(np.int64)], digits(seq, 10)])
        has_patient = b.patient >= 0
        has_query = b.query >= 0
        return pa.Table.from_arrays(
            [
                event_id,
                dict_column(b.source, self.sources),
                pa.array(seq),
                pa.array(b.ts, pa.timestamp("us", tz="UTC")),
                dict_column(b.account, self.accounts),
                dict_column(b.action, self.actions),
                patient_ids(np.maximum(b.patient, 0), has_patient),
                dict_column(b.fields, self.fields),
                ids("q-", np.maximum(b.query, 0), 8, has_query),
                dict_column(b.device, self.ips),
                dict_column(b.device, self.devices),
                dict_column(np.maximum(b.purpose, 0), self.purposes, b.purpose >= 0),
                dict_column(b.outcome, self.outcomes),
            ],
            schema=WRITE_SCHEMA,
        )
