"""Shared pieces of the synthetic-hospital generator: constants, random streams, time, Arrow.

Everything the generator emits at scale is built column-wise with NumPy and handed to
Arrow without a Python loop per row: identifiers of a fixed shape (``P0001234``,
``CMS0000000123``) are written as a byte matrix and wrapped as an Arrow string array
directly; low-cardinality strings are dictionary arrays over a small table.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phiguard.clock import HKT

CLUSTERS: tuple[str, ...] = ("HKEC", "HKWC", "KCC", "KEC", "KWC", "NTEC", "NTWC")
CLUSTER_INDEX = {c: i for i, c in enumerate(CLUSTERS)}

# Clinical departments in every cluster, with the share of clinical staff working there
# (matched to the access load their encounters generate, so workloads are even).
CLINICAL_DEPTS: tuple[str, ...] = ("AED", "MED", "SURG", "ORTH", "OG", "PAED", "PSY", "ONC")
DEPT_STAFF_SHARE = np.array([0.08, 0.29, 0.16, 0.10, 0.08, 0.07, 0.10, 0.06])
PHARM = "PHARM"
IT = "IT"
DEPTS: tuple[str, ...] = (*CLINICAL_DEPTS, PHARM, IT)
DEPT_INDEX = {d: i for i, d in enumerate(DEPTS)}

# Shift buckets by hour of day: day 08-16, evening 16-24, night 00-08.
DAY, EVENING, NIGHT = 0, 1, 2
SHIFT_OF_HOUR = np.array([NIGHT] * 8 + [DAY] * 8 + [EVENING] * 8, dtype=np.int8)

# Fixed offset: Hong Kong has kept +08:00 all year since 1979.
HK_OFFSET_US = 8 * 3600 * 1_000_000
US = 1_000_000
MS = 1_000
MIN_US = 60 * US
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
EPOCH = datetime(1970, 1, 1, tzinfo=HKT).date()

# Patients random look-ups may touch, by cluster: (members, start, size).
NoisePool = tuple[np.ndarray, np.ndarray, np.ndarray]

# Stream ids for independent random streams (so one part never shifts another's draws).
S_PEOPLE, S_STAFF, S_ENCOUNTERS, S_EXTRAS, S_SCENARIOS, S_EVENTS, S_DUMP, S_RENDER = range(8)


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent, reproducible random stream for ``(seed, *stream)``."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *stream]))


def local_midnight_us(day: date) -> int:
    """The instant (µs since the Unix epoch) at which ``day`` begins in Hong Kong."""
    return (day - date(1970, 1, 1)).days * DAY_US - HK_OFFSET_US


def us_to_datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=HKT) + timedelta(microseconds=int(us) + HK_OFFSET_US)


def iso_local(us: int) -> str:
    """``2026-04-03T01:12:00+08:00`` for an instant in µs (whole seconds)."""
    return us_to_datetime(us - us % US).isoformat()


def iso_local_array(us: np.ndarray, *, millis: bool = False) -> pa.Array:
    """ISO-8601 local-time strings with ``+08:00`` for an array of µs instants."""
    unit = "ms" if millis else "s"
    local = pa.array(np.asarray(us, dtype=np.int64) + HK_OFFSET_US, pa.timestamp("us"))
    text = pc.strftime(local.cast(pa.timestamp(unit), safe=False), "%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, "+08:00", "")


# Every 4-digit group as four ASCII bytes packed in a uint32: one division and one gather
# per four digits instead of a division per digit.
_QUADS = np.frombuffer(b"".join(f"{i:04d}".encode() for i in range(10_000)), dtype=np.uint32)


def digits(nums: np.ndarray, width: int) -> np.ndarray:
    """An ``(n, width)`` uint8 matrix of ASCII digits, zero-padded."""
    x = np.asarray(nums, dtype=np.int64)
    groups = -(-width // 4)
    out = np.empty((len(x), groups), dtype=np.uint32)
    for g in range(groups - 1, -1, -1):
        out[:, g] = _QUADS[x % 10_000]
        x = x // 10_000
    return out.view(np.uint8).reshape(len(x), groups * 4)[:, groups * 4 - width :]


def const_bytes(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text)))


def fixed_strings(parts: list[np.ndarray], valid: np.ndarray | None = None) -> pa.StringArray:
    """Concatenate ``(n, w_i)`` ASCII byte matrices row-wise into one Arrow string array.

    ``valid`` (bool array) marks rows that are present; the others become nulls.
    """
    n = parts[0].shape[0]
    mat = np.ascontiguousarray(np.concatenate(parts, axis=1)) if len(parts) > 1 else parts[0]
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    width = mat.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    bitmap = None
    null_count = 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(valid.astype(np.uint8), bitorder="little"))
        null_count = int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(mat.reshape(-1)), bitmap, null_count
    )


def ids(prefix: str, nums: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded ``nums``: e.g. ``ids("P", [1234], 7) -> ["P0001234"]``."""
    n = len(nums)
    return fixed_strings([const_bytes(prefix, n), digits(nums, width)], valid)


def patient_ids(idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Patient ids for 0-based patient indices: ``P`` + 7 digits (``P0000001`` …)."""
    return ids("P", np.asarray(idx, dtype=np.int64) + 1, 7, valid)


def patient_id(i: int) -> str:
    return f"P{i + 1:07d}"


def dict_column(indices: np.ndarray, table: pa.Array, valid: np.ndarray | None = None) -> pa.Array:
    """A dictionary-encoded string column: cheap to build, written to Parquet as plain strings."""
    idx = pa.array(np.asarray(indices, dtype=np.int32), mask=None if valid is None else ~valid)
    return pa.DictionaryArray.from_arrays(idx, table)


def weighted_choice(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices drawn with probability proportional to ``weights`` (with replacement)."""
    cum = np.cumsum(weights, dtype=np.float64)
    if n == 0 or cum[-1] <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(cum) - 1)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; ``np.unique``'s hash path is slow on big int arrays)."""
    s = np.sort(values, kind="stable")
    if len(s) == 0:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def unique_sample(rng: np.random.Generator, space: int, n: int) -> np.ndarray:
    """``n`` distinct integers from ``[0, space)`` in random order (bounded memory)."""
    if n > space:
        raise ValueError("sample larger than its space")
    got = np.empty(0, dtype=np.int64)
    while len(got) < n:
        extra = rng.integers(0, space, int((n - len(got)) * 1.1) + 16)
        got = sorted_unique(np.concatenate([got, extra]))
    rng.shuffle(got)
    return got[:n]


def split_counts(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing exactly to ``total``, proportional to ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    raw = w / w.sum() * total
    counts = np.floor(raw).astype(np.int64)
    rest = int(total - counts.sum())
    if rest:
        order = np.argsort(-(raw - counts), kind="stable")[:rest]
        counts[order] += 1
    return counts
