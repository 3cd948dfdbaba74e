"""The synthetic population: patients grouped in households, with HKIDs and hospital numbers.

People live in households (1-6 members) that share an address and, mostly, a surname:
children take the father's surname, spouses keep their own, as in Hong Kong. Each household
lives in one cluster, drawn by catchment population. Every person is a handful of integers
(see :class:`Population`); :func:`render_patients` turns any slice of them into the rows of
spec §1.1.

HKIDs are unique, carry a correct check character (the same arithmetic as
:func:`phiguard.identifiers.hkid_check_char`, vectorised) and use one- and two-letter
prefixes. Hospital numbers are unique and made exactly as
:meth:`phiguard.identifiers.HospitalNumberFormat.make` makes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phiguard.demo.gen_common import (
    CLUSTERS,
    S_PEOPLE,
    const_bytes,
    digits,
    fixed_strings,
    patient_ids,
    rng_for,
    sorted_unique,
    unique_sample,
)
from phiguard.demo.gen_names import NameParts, render_names, sample_names

# HKID prefixes: mostly one letter; two-letter prefixes (X…, WX) are rarer.
HKID_PREFIXES: tuple[str, ...] = (
    *"ABCDEGHKMPRSVYZ",
    "WX",
    "XA",
    "XB",
    "XC",
    "XD",
    "XE",
    "XG",
    "XH",
)
_PREFIX_W = np.array(
    [4, 3, 5, 5, 5, 4, 4, 5, 2, 5, 3, 3, 3, 4, 5, 0.6, 1, 0.5, 0.5, 0.3, 0.3, 0.2, 0.2]
)
_HKID_WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2])

# Age bands (5 years) of the people who use public hospitals: older than the population.
_AGE_W = np.array([5, 4, 4, 4, 5, 6, 7, 7, 7, 7, 8, 9, 10, 10, 9, 8, 6, 4, 2, 1], dtype=float)
_HOUSEHOLD_W = np.array([0.20, 0.28, 0.24, 0.18, 0.07, 0.03])
# Address space per estate: blocks x floors x units.
_BLOCKS, _FLOORS, _UNITS = 60, 45, 24


@cache
def places() -> dict[str, Any]:
    text = resources.files("phiguard.demo").joinpath("data", "places.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)["clusters"]
    return data


def cluster_weights() -> np.ndarray:
    p = places()
    return np.array([p[c]["population"] for c in CLUSTERS], dtype=float)


@cache
def _estates() -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(suffix strings "Estate, District, Region", start, count)`` per cluster."""
    text: list[str] = []
    start, count = [], []
    for c in CLUSTERS:
        start.append(len(text))
        for district, region, estates in places()[c]["areas"]:
            text.extend(f"{e}, {district}, {region}" for e in estates)
        count.append(len(text) - start[-1])
    return pa.array(text), np.array(start), np.array(count)


@dataclass
class Population:
    """``n`` patients; index ``i`` is patient ``P{i+1:07d}``."""

    n: int
    ref_day: date
    cluster: np.ndarray  # int8
    sex: np.ndarray  # int8: 0 M, 1 F, 2 U
    dob: np.ndarray  # int32 days since 1970-01-01
    names: NameParts
    household: np.ndarray  # int32
    address: np.ndarray  # int64 address code of the household, -1 = no address on file
    hkid: np.ndarray  # int64 prefix_index * 1e6 + digits, -1 = none
    hn_serial: np.ndarray  # int64 8-digit serial of the hospital number
    phone: np.ndarray  # int64 8-digit number, -1 = none
    app: np.ndarray  # bool
    vip: np.ndarray  # bool

    @property
    def age(self) -> np.ndarray:
        today = (self.ref_day - date(1970, 1, 1)).days
        return ((today - self.dob) // 365.25).astype(np.int16)


def hkid_check_chars(code: np.ndarray) -> np.ndarray:
    """Check characters (ASCII codes) for HKID codes ``prefix_index * 1e6 + digits``."""
    pidx = code // 1_000_000
    num = code % 1_000_000
    first = np.array([36 if len(p) == 1 else ord(p[0]) - 55 for p in HKID_PREFIXES])
    second = np.array([ord(p[-1]) - 55 for p in HKID_PREFIXES])
    total = first[pidx] * 9 + second[pidx] * 8
    d = digits(num, 6).astype(np.int64) - 48
    total = total + d @ _HKID_WEIGHTS[2:]
    r = total % 11
    return np.where(r == 0, 48, np.where(r == 1, 65, 48 + 11 - r)).astype(np.uint8)


def render_hkids(code: np.ndarray, *, style: str = "display") -> pa.Array:
    """HKIDs as strings: ``display`` ``A123456(3)``, ``bare`` ``A1234563``; null where -1."""
    valid = code >= 0
    c = np.where(valid, code, 0)
    pidx = c // 1_000_000
    n = len(c)
    pre = np.full((n, 2), 32, dtype=np.uint8)  # placeholder spaces, removed below
    two = np.array([len(p) == 2 for p in HKID_PREFIXES])[pidx]
    letters = np.array([[ord(p[0]), ord(p[-1])] for p in HKID_PREFIXES], dtype=np.uint8)[pidx]
    pre[:, 0] = np.where(two, letters[:, 0], letters[:, 1])
    pre[:, 1] = letters[:, 1]
    chk = hkid_check_chars(c)[:, None]
    body = digits(c % 1_000_000, 6)
    tail = [const_bytes("(", n), chk, const_bytes(")", n)] if style == "display" else [chk]
    # Two-letter rows use both prefix bytes; one-letter rows only the first.
    two_rows = fixed_strings([pre, body, *tail])
    one_rows = fixed_strings([pre[:, :1], body, *tail])
    out = pc.if_else(pa.array(two), two_rows, one_rows)
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def hospital_no_check_chars(serial: np.ndarray) -> np.ndarray:
    d = digits(serial, 8).astype(np.int64) - 48
    r = (d @ np.arange(9, 1, -1)) % 11
    return np.where(r == 0, 48, np.where(r == 1, 65, 48 + 11 - r)).astype(np.uint8)


def render_hospital_nos(serial: np.ndarray) -> pa.Array:
    n = len(serial)
    return fixed_strings(
        [const_bytes("HN", n), digits(serial, 8), hospital_no_check_chars(serial)[:, None]]
    )


def render_addresses(code: np.ndarray) -> pa.Array:
    """``Flat 1208, 12/F, Block 7, Ping Tin Estate, Lam Tin, Kowloon``; null where -1."""
    valid = code >= 0
    c = np.where(valid, code, 0)
    unit = c % _UNITS + 1
    floor = (c // _UNITS) % _FLOORS + 1
    block = (c // (_UNITS * _FLOORS)) % _BLOCKS + 1
    estate = c // (_UNITS * _FLOORS * _BLOCKS)
    table, _, _ = _estates()
    flat = pc.binary_join_element_wise(
        "Flat", pc.cast(pa.array(floor * 100 + unit), pa.string()), " "
    )
    floor_s = pc.binary_join_element_wise(pc.cast(pa.array(floor), pa.string()), "/F", "")
    block_s = pc.binary_join_element_wise("Block", pc.cast(pa.array(block), pa.string()), " ")
    text = pc.binary_join_element_wise(
        flat, floor_s, block_s, table.take(pa.array(estate.astype(np.int32))), ", "
    )
    return pc.if_else(pa.array(valid), text, pa.scalar(None, pa.string()))


def address_code(cluster: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct address codes in ``cluster`` (repeats only past the space's size)."""
    _, start, count = _estates()
    per_estate = _BLOCKS * _FLOORS * _UNITS
    space = int(count[cluster]) * per_estate
    local = unique_sample(rng, space, n) if n <= space else rng.integers(0, space, n)
    return local + int(start[cluster]) * per_estate


def _unique_hkids(rng: np.random.Generator, n: int) -> np.ndarray:
    cum = np.cumsum(_PREFIX_W)
    got = np.empty(0, dtype=np.int64)
    while len(got) < n:
        k = int((n - len(got)) * 1.05) + 16
        pidx = np.searchsorted(cum, rng.random(k) * cum[-1], side="right")
        got = sorted_unique(np.concatenate([got, pidx * 1_000_000 + rng.integers(0, 1_000_000, k)]))
    rng.shuffle(got)
    return got[:n]


def make_population(n: int, seed: int, ref_day: date) -> Population:
    """``n`` patients living in households, reproducibly from ``seed``."""
    rng = rng_for(seed, S_PEOPLE)
    # Households and their members (in household order; shuffled into patient ids below).
    sizes = 1 + np.searchsorted(np.cumsum(_HOUSEHOLD_W), rng.random(n // 2 + 64), side="right")
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    hh = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)[:n]
    pos = np.arange(n) - np.concatenate([[0], np.cumsum(sizes)[:-1]])[hh]
    n_hh = int(hh[-1]) + 1 if n else 0
    hh_cluster = np.searchsorted(
        np.cumsum(cluster_weights()), rng.random(n_hh) * cluster_weights().sum(), side="right"
    ).astype(np.int8)
    hh_address = np.empty(n_hh, dtype=np.int64)
    for c in range(len(CLUSTERS)):
        members = np.flatnonzero(hh_cluster == c)
        hh_address[members] = address_code(c, rng, len(members))
    # Ages: head from the hospital-user pyramid, spouse close to it, then children or a parent.
    band = np.searchsorted(np.cumsum(_AGE_W), rng.random(n_hh) * _AGE_W.sum(), side="right")
    head_age = np.clip(band * 5 + rng.integers(0, 5, n_hh), 24, 99)
    base = head_age[hh]
    child = base - rng.integers(20, 46, n)
    child = np.where(child < 0, rng.integers(0, 16, n), child)
    elder = base + rng.integers(24, 34, n)
    age = np.where(pos == 0, base, np.where(pos == 1, base + rng.integers(-6, 7, n), 0))
    is_elder = (pos >= 2) & (rng.random(n) < 0.2) & (elder <= 100)
    age = np.where(pos >= 2, np.where(is_elder, elder, np.maximum(child, 0)), age)
    age = np.clip(age, 0, 100)
    sex = rng.integers(0, 2, n).astype(np.int8)
    head_sex = sex[np.concatenate([[0], np.cumsum(sizes)[:-1]])][hh]
    sex = np.where(pos == 1, 1 - head_sex, sex).astype(np.int8)
    sex[rng.random(n) < 0.001] = 2
    # Surnames: the household's (the father's) for head, children and the father's parent.
    hh_names = sample_names(rng, np.zeros(n_hh, dtype=np.int8))
    own = sample_names(rng, np.where(sex == 2, 0, sex).astype(np.int8))
    keeps_own = (pos == 1) | (is_elder & (sex == 1))
    surname = np.where(keeps_own, own.surname, hh_names.surname[hh])
    names = sample_names(rng, np.where(sex == 2, 0, sex).astype(np.int8), surname=surname)
    # Shuffle households into patient order so ids do not reveal families.
    perm = rng.permutation(n)
    today = (ref_day - date(1970, 1, 1)).days
    dob = (today - age[perm] * 365.25 - rng.integers(0, 365, n)).astype(np.int32)
    hh_p = hh[perm]
    hkid = _unique_hkids(rng, n)
    no_hkid = ((age[perm] < 1) & (rng.random(n) < 0.7)) | (rng.random(n) < 0.01)
    hkid[no_hkid] = -1
    phone = np.where(
        rng.random(n) < 0.5, 90_000_000, np.where(rng.random(n) < 0.5, 60_000_000, 50_000_000)
    ) + rng.integers(0, 10_000_000, n)
    a = age[perm]
    phone[((a < 12) & (rng.random(n) < 0.8)) | (rng.random(n) < 0.06)] = -1
    address = hh_address[hh_p].copy()
    address[rng.random(n) < 0.04] = -1
    app = rng.random(n) < np.where((a >= 18) & (a <= 75), 0.48, 0.18)
    vip = np.zeros(n, dtype=bool)
    adults = np.flatnonzero(a >= 30)
    if len(adults):
        vip[rng.choice(adults, min(len(adults), max(5, n // 5000)), replace=False)] = True
    return Population(
        n=n,
        ref_day=ref_day,
        cluster=hh_cluster[hh_p],
        sex=sex[perm],
        dob=dob,
        names=names.take(perm),
        household=hh_p,
        address=address,
        hkid=hkid,
        hn_serial=unique_sample(rng, 100_000_000, n),
        phone=phone,
        app=app,
        vip=vip,
    )


PATIENT_COLUMNS = (
    "patient_id",
    "hkid",
    "hospital_no",
    "name_en",
    "name_zh",
    "sex",
    "dob",
    "cluster",
    "phone",
    "address",
    "app_registered",
    "vip",
)
_SEX = pa.array(["M", "F", "U"])
_CLUSTER_ARR = pa.array(list(CLUSTERS))


def render_patients(pop: Population, idx: np.ndarray) -> pa.Table:
    """The PMI rows (spec §1.1) of the patients at ``idx``."""
    name_en, name_zh = render_names(pop.names.take(idx))
    phone = pop.phone[idx]
    return pa.table(
        {
            "patient_id": patient_ids(idx),
            "hkid": render_hkids(pop.hkid[idx]),
            "hospital_no": render_hospital_nos(pop.hn_serial[idx]),
            "name_en": name_en,
            "name_zh": name_zh,
            "sex": _SEX.take(pa.array(pop.sex[idx].astype(np.int32))),
            "dob": pa.array(pop.dob[idx], pa.date32()),
            "cluster": _CLUSTER_ARR.take(pa.array(pop.cluster[idx].astype(np.int32))),
            "phone": fixed_strings([digits(np.maximum(phone, 0), 8)], phone >= 0),
            "address": render_addresses(pop.address[idx]),
            "app_registered": pa.array(pop.app[idx]),
            "vip": pa.array(pop.vip[idx]),
        }
    )
