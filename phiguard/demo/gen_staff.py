"""The workforce: hospital staff, contractor vendors and their engineers, service accounts.

Clinical staff (doctors, nurses, clerks, pharmacists) work in one department of one cluster
on one shift (day 08-16, evening 16-24, night 00-08) five days in seven; about a third of
them are patients of the hospital themselves (their account carries their ``patient_id``
and home address). Each cluster has IT support staff and a reporting service account.
Vendors hold a data-processing contract (some ended) and employ ``vendor_engineer``
accounts; these, IT support and service accounts work under grants (small scopes, time
windows), clinical staff under their role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from phiguard.demo.gen_common import (
    CLINICAL_DEPTS,
    CLUSTERS,
    DAY,
    DEPT_INDEX,
    DEPT_STAFF_SHARE,
    DEPTS,
    EVENING,
    IT,
    NIGHT,
    PHARM,
    S_STAFF,
    rng_for,
)
from phiguard.demo.gen_names import NameParts, render_names, sample_names
from phiguard.demo.gen_people import Population, cluster_weights, render_addresses

ROLES = ("doctor", "nurse", "clerk", "pharmacist", "it_support", "vendor_engineer", "service")
DOCTOR, NURSE, CLERK, PHARMACIST, IT_SUPPORT, VENDOR_ENGINEER, SERVICE = range(len(ROLES))
CLINICAL_ROLES = (DOCTOR, NURSE, CLERK, PHARMACIST)
_ABBR = {DOCTOR: "dr", NURSE: "rn", CLERK: "clk", PHARMACIST: "ph", IT_SUPPORT: "it"}

VENDORS = (
    ("hc", "Harbour Clinical Systems Ltd"),
    ("lr", "Lion Rock Infotech Ltd"),
    ("pd", "Pearl Delta Data Services Ltd"),
    ("vp", "Victoria Peak Software Ltd"),
    ("kt", "Kai Tak Digital Ltd"),
    ("tm", "Tsing Ma Networks Ltd"),
    ("sf", "Star Ferry Systems Ltd"),
    ("jb", "Junk Bay Analytics Ltd"),
    ("lm", "Lantau Medical IT Ltd"),
    ("sk", "Sai Kung Cloud Services Ltd"),
    ("hr", "Harbourfront Records Management Ltd"),
    ("vx", "Vertex Health Systems Ltd"),
    ("tms", "Tai Mo Shan Imaging Ltd"),
    ("kb", "Kowloon Bay Print Services Ltd"),
    ("cp", "Cyberport Health Solutions Ltd"),
    ("ln", "Lei Yue Mun Network Services Ltd"),
)
SEED_VENDOR = 11  # V012 Vertex Health Systems: the April 2026 contractor
SEED_ENGINEER = 7  # vx-eng-07


@dataclass
class Vendor:
    vendor_id: str
    short: str
    name: str
    contract_id: str
    contract_start: date
    contract_end: date | None
    dpa_signed: bool
    last_assessment: date | None
    engineers: list[int] = field(default_factory=list)


@dataclass
class Grant:
    grant_id: str
    account: int
    scope_cluster: int  # -1 = ALL
    scope_fields: str
    actions: str
    max_rows: int
    valid_from: int  # µs
    valid_to: int  # µs
    purpose: str
    approved_by: int


@dataclass
class Staff:
    account_ids: list[str]
    role: np.ndarray
    dept: np.ndarray
    cluster: np.ndarray  # -1 = ALL
    shift: np.ndarray
    off: np.ndarray  # weekday offset of the two days off
    patient: np.ndarray  # -1 = not a patient
    household: np.ndarray  # -1 = unknown
    vendor: np.ndarray  # -1 = HA staff
    dev0: np.ndarray
    dev1: np.ndarray  # -1 = one device only
    active_from: list[date]
    active_to: list[date | None]
    names: NameParts  # for accounts that are not patients (ignored otherwise)
    street_address: np.ndarray  # -1 = none (non-patient staff with an address on file)
    devices: list[str]
    ips: list[str]
    vendors: list[Vendor]
    grants: list[Grant] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)
    dormant_until: np.ndarray | None = None  # day index before which an account is idle

    @property
    def n(self) -> int:
        return len(self.account_ids)

    def add_device(self, device_id: str, ip: str) -> int:
        self.devices.append(device_id)
        self.ips.append(ip)
        return len(self.devices) - 1

    def on_duty(self, day: date) -> np.ndarray:
        """True for accounts working on ``day`` (HA staff have two days off a week)."""
        return (day.weekday() + self.off) % 7 < 5


def _hospital_devices(
    staff_cluster: np.ndarray, dept: np.ndarray, rng: np.random.Generator, second_rate: float
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    devices: list[str] = []
    ips: list[str] = []
    dev0 = np.empty(len(dept), dtype=np.int32)
    dev1 = np.full(len(dept), -1, dtype=np.int32)
    counters = [0] * len(CLUSTERS)
    for i in range(len(dept)):
        c = int(staff_cluster[i])
        for slot in (0, 1):
            if slot == 1 and rng.random() >= second_rate:
                break
            k = counters[c]
            counters[c] += 1
            devices.append(f"WS-{CLUSTERS[c]}-{DEPTS[dept[i]]}-{k:05d}")
            ips.append(f"10.{10 + c}.{(k // 250) % 250}.{k % 250 + 1}")
            (dev0 if slot == 0 else dev1)[i] = len(devices) - 1
    return devices, ips, dev0, dev1


def make_staff(pop: Population, seed: int, start: date, days: int) -> Staff:
    """Accounts scaled to the population (about one clinical account per 100 patients)."""
    rng = rng_for(seed, S_STAFF)
    total = max(len(CLUSTERS) * 40, pop.n // 100)
    cw = cluster_weights() / cluster_weights().sum()
    role: list[int] = []
    dept: list[int] = []
    cluster: list[int] = []
    shift: list[int] = []
    for c in range(len(CLUSTERS)):
        per_cluster = total * cw[c]
        for d, share in enumerate(DEPT_STAFF_SHARE):
            n = per_cluster * share
            plan = (
                (DOCTOR, max(4, round(n * 0.30)), (DAY, DAY, EVENING, NIGHT), (0.75, 0.10, 0.15)),
                (
                    NURSE,
                    max(6, round(n * 0.55)),
                    (DAY, DAY, EVENING, EVENING, NIGHT, NIGHT),
                    (0.45, 0.30, 0.25),
                ),
                (CLERK, max(2, round(n * 0.15)), (DAY,), (1.0, 0.0, 0.0)),
            )
            for r, count, first, mix in plan:
                for k in range(count):
                    role.append(r)
                    dept.append(DEPT_INDEX[CLINICAL_DEPTS[d]])
                    cluster.append(c)
                    shift.append(first[k] if k < len(first) else int(rng.choice(3, p=mix)))
        for k in range(max(4, round(per_cluster * 0.09))):
            role.append(PHARMACIST)
            dept.append(DEPT_INDEX[PHARM])
            cluster.append(c)
            first_ph = (DAY, EVENING, NIGHT)
            shift.append(first_ph[k] if k < 3 else int(rng.choice(3, p=(0.7, 0.2, 0.1))))
        for _ in range(max(2, round(per_cluster * 0.01))):
            role.append(IT_SUPPORT)
            dept.append(DEPT_INDEX[IT])
            cluster.append(c)
            shift.append(DAY)
    n_ha = len(role)
    role_a = np.array(role, dtype=np.int8)
    dept_a = np.array(dept, dtype=np.int8)
    cluster_a = np.array(cluster, dtype=np.int8)
    counters: dict[tuple[int, int], int] = {}
    account_ids = []
    width = 5 if n_ha > 9_000 * 4 else 4
    for r, c in zip(role, cluster, strict=True):
        k = counters.get((c, r), 0) + 1
        counters[(c, r)] = k
        account_ids.append(f"{CLUSTERS[c].lower()}-{_ABBR[r]}-{k:0{width}d}")
    devices, ips, dev0, dev1 = _hospital_devices(cluster_a, dept_a, rng, second_rate=0.35)
    dev1[role_a == IT_SUPPORT] = -1
    # About a third of the staff are patients too: link them to an adult patient.
    is_patient = rng.random(n_ha) < 0.33
    adults = np.flatnonzero((pop.age >= 22) & (pop.age <= 64) & ~pop.vip)
    linked = rng.choice(adults, min(int(is_patient.sum()), len(adults)), replace=False)
    patient = np.full(n_ha, -1, dtype=np.int64)
    patient[np.flatnonzero(is_patient)[: len(linked)]] = linked
    household = np.where(patient >= 0, pop.household[np.maximum(patient, 0)], -1).astype(np.int64)
    sex = rng.integers(0, 2, n_ha).astype(np.int8)
    names = sample_names(rng, sex)
    street = np.where(rng.random(n_ha) < 0.5, rng.integers(0, 10**9, n_ha), -1)
    active_from = [start - timedelta(days=int(x)) for x in rng.integers(200, 9000, n_ha)]
    staff = Staff(
        account_ids=account_ids,
        role=role_a,
        dept=dept_a,
        cluster=cluster_a,
        shift=np.array(shift, dtype=np.int8),
        off=_days_off(role_a, cluster_a, dept_a, np.array(shift, dtype=np.int8), rng),
        patient=patient,
        household=household,
        vendor=np.full(n_ha, -1, dtype=np.int16),
        dev0=dev0,
        dev1=dev1,
        active_from=active_from,
        active_to=[None] * n_ha,
        names=names,
        street_address=street,
        devices=devices,
        ips=ips,
        vendors=[],
    )
    _add_service_accounts(staff)
    _add_vendors(staff, rng, start, days, pop.n)
    staff.by_id = {a: i for i, a in enumerate(staff.account_ids)}
    staff.dormant_until = np.zeros(staff.n, dtype=np.int32)
    return staff


def _days_off(
    role: np.ndarray,
    cluster: np.ndarray,
    dept: np.ndarray,
    shift: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rotas: within each team (cluster, department, shift) days off are spread evenly, so
    about five in seven of the team are on duty every day. Clerks work Monday to Friday."""
    off = np.zeros(len(role), dtype=np.int8)
    key = (cluster.astype(np.int64) * 100 + dept) * 10 + shift
    for k in np.unique(key):
        team = np.flatnonzero((key == k) & (role != CLERK))
        base = int(rng.integers(0, 7))
        rank = np.arange(len(team))
        # Small teams step by three days so that two colleagues never share both days off.
        step = rank * 3 if len(team) <= 7 else (rank * 7) // len(team)
        off[team] = (base + step) % 7
    return off


def _append(
    staff: Staff,
    account_id: str,
    role: int,
    dept: int,
    cluster: int,
    vendor: int,
    dev: int,
    active_from: date,
    active_to: date | None,
) -> int:
    staff.account_ids.append(account_id)
    staff.role = np.append(staff.role, np.int8(role))
    staff.dept = np.append(staff.dept, np.int8(dept))
    staff.cluster = np.append(staff.cluster, np.int8(cluster))
    staff.shift = np.append(staff.shift, np.int8(DAY))
    staff.off = np.append(staff.off, np.int8(0))
    staff.patient = np.append(staff.patient, -1)
    staff.household = np.append(staff.household, -1)
    staff.vendor = np.append(staff.vendor, np.int16(vendor))
    staff.dev0 = np.append(staff.dev0, np.int32(dev))
    staff.dev1 = np.append(staff.dev1, np.int32(-1))
    staff.active_from.append(active_from)
    staff.active_to.append(active_to)
    staff.names = NameParts.concat([staff.names, staff.names.take(np.array([0]))])
    staff.street_address = np.append(staff.street_address, -1)
    return staff.n - 1


def _add_service_accounts(staff: Staff) -> None:
    for c, name in enumerate(CLUSTERS):
        dev = staff.add_device(f"SRV-{name}-RPT01", f"10.{10 + c}.250.10")
        _append(
            staff,
            f"svc-reports-{name.lower()}",
            SERVICE,
            DEPT_INDEX[IT],
            c,
            -1,
            dev,
            date(2019, 7, 1),
            None,
        )


def _add_vendors(
    staff: Staff, rng: np.random.Generator, start: date, days: int, n_pat: int
) -> None:
    n_vendors = min(len(VENDORS), 12 + n_pat // 1_500_000)
    for v in range(n_vendors):
        short, name = VENDORS[v]
        c_start = start - timedelta(days=int(rng.integers(120, 1500)))
        c_end: date | None = c_start + timedelta(days=3 * 365)
        if c_end is not None and c_end < start + timedelta(days=days + 30):
            c_end = start + timedelta(days=days + int(rng.integers(60, 700)))
        if v in (2, 9):  # two vendors whose contracts ended before this period
            c_end = start - timedelta(days=int(rng.integers(20, 200)))
        vendor = Vendor(
            vendor_id=f"V{v + 1:03d}",
            short=short,
            name=name,
            contract_id=f"C-{c_start.year}-{v + 1:03d}",
            contract_start=c_start,
            contract_end=c_end,
            dpa_signed=bool(rng.random() < 0.85) or v == SEED_VENDOR,
            last_assessment=(
                None
                if rng.random() < 0.15
                else min(start, c_end or start) - timedelta(days=int(rng.integers(30, 800)))
            ),
        )
        staff.vendors.append(vendor)
        n_eng = 8 if v == SEED_VENDOR else int(rng.integers(2, 5))
        for k in range(1, n_eng + 1):
            dev = staff.add_device(f"VDI-{vendor.vendor_id}-{k:02d}", f"172.20.{v + 1}.{10 + k}")
            active_to = c_end if c_end is not None and c_end < start else None
            i = _append(
                staff,
                f"{short}-eng-{k:02d}",
                VENDOR_ENGINEER,
                DEPT_INDEX[IT],
                -1,
                v,
                dev,
                c_start,
                active_to,
            )
            vendor.engineers.append(i)


def make_grants(staff: Staff, seed: int, start_us: int, end_us: int) -> None:
    """Grants for vendor engineers, IT support and service accounts (small scopes, windows)."""
    rng = rng_for(seed, S_STAFF, 1)
    day = 86_400 * 1_000_000
    it_by_cluster = [
        np.flatnonzero((staff.role == IT_SUPPORT) & (staff.cluster == c))
        for c in range(len(CLUSTERS))
    ]
    grants: list[Grant] = []

    def approver(c: int, not_self: int) -> int:
        pool = [int(i) for i in it_by_cluster[c % len(CLUSTERS)] if i != not_self]
        return pool[0] if pool else int(it_by_cluster[(c + 1) % len(CLUSTERS)][0])

    def add(
        account: int,
        cluster: int,
        fields: str,
        actions: str,
        rows: int,
        lo: int,
        hi: int,
        purpose: str,
        by: int,
    ) -> None:
        grants.append(
            Grant(
                f"G{len(grants) + 1:06d}",
                account,
                cluster,
                fields,
                actions,
                rows,
                lo,
                hi,
                purpose,
                by,
            )
        )

    field_choices = ("name,sex,hospital_no", "hospital_no,dob,sex", "name,hospital_no,diagnosis")
    for vendor in staff.vendors:
        c_start = (vendor.contract_start - date(1970, 1, 1)).days * day
        for i in vendor.engineers:
            scope = int(rng.integers(0, len(CLUSTERS)))
            lo = max(c_start, start_us - int(rng.integers(20, 90)) * day)
            hi = end_us + int(rng.integers(15, 60)) * day
            if vendor.contract_end is not None:
                ended = (vendor.contract_end - date(1970, 1, 1)).days * day
                if ended < start_us:  # the contract ended before this period: so did the grant
                    hi = ended
                    lo = max(c_start, ended - int(rng.integers(30, 120)) * day)
            add(
                i,
                scope,
                field_choices[int(rng.integers(0, 3))],
                "read,search",
                int(rng.choice([20, 50, 100])),
                lo,
                hi,
                "SYSADMIN",
                approver(scope, i),
            )
    for it in np.flatnonzero(staff.role == IT_SUPPORT).tolist():
        c = int(staff.cluster[it])
        add(
            it,
            c,
            "name,sex,dob,hospital_no",
            "read,search",
            20,
            start_us - 180 * day,
            end_us + 185 * day,
            "SYSADMIN",
            approver(c + 1, it),
        )
    staff.grants = grants


def add_service_grants(
    staff: Staff, start_us: int, end_us: int, rows_by_cluster: list[int]
) -> None:
    day = 86_400 * 1_000_000
    for i in np.flatnonzero(staff.role == SERVICE):
        c = int(staff.cluster[i])
        it = np.flatnonzero((staff.role == IT_SUPPORT) & (staff.cluster == c))
        staff.grants.append(
            Grant(
                f"G{len(staff.grants) + 1:06d}",
                int(i),
                c,
                "name,sex,dob,hospital_no,diagnosis",
                "export",
                rows_by_cluster[c],
                start_us - 365 * day,
                end_us + 365 * day,
                "HOPERAT",
                int(it[0]),
            )
        )


def person_names(staff: Staff, pop: Population) -> tuple[list[str | None], list[str | None]]:
    """``(person_name, home_address)`` per account, from the PMI for staff who are patients."""
    names = render_names(staff.names)[0].to_pylist()
    linked = staff.patient >= 0
    pat_names = render_names(pop.names.take(staff.patient[linked]))[0].to_pylist()
    pat_addr = render_addresses(pop.address[staff.patient[linked]]).to_pylist()
    out_names: list[str | None] = list(names)
    out_addr: list[str | None] = [None] * staff.n
    for j, i in enumerate(np.flatnonzero(linked)):
        out_names[i] = pat_names[j]
        out_addr[i] = pat_addr[j]
    for i in np.flatnonzero(~linked & (staff.street_address >= 0)):
        out_addr[i] = _street(int(staff.street_address[i]), int(max(staff.cluster[i], 0)))
    for i in np.flatnonzero(staff.role == SERVICE):
        out_names[i] = None
    return out_names, out_addr


_STREETS = (
    ("King's Road", "North Point, Hong Kong"),
    ("Pok Fu Lam Road", "Pok Fu Lam, Hong Kong"),
    ("Waterloo Road", "Ho Man Tin, Kowloon"),
    ("Hip Wo Street", "Kwun Tong, Kowloon"),
    ("Nathan Road", "Mong Kok, Kowloon"),
    ("Tai Po Road", "Sha Tin, New Territories"),
    ("Castle Peak Road", "Tuen Mun, New Territories"),
)


def _street(code: int, cluster: int) -> str:
    """A private-building address on a main road: never one of the PMI's estate addresses."""
    street, area = _STREETS[cluster % len(_STREETS)]
    number = code % 900 + 1
    floor = (code // 900) % 30 + 1
    flat = "ABCDEFGH"[(code // 27_000) % 8]
    return f"Flat {flat}, {floor}/F, {number} {street}, {area}"
