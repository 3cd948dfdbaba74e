"""The access-event row of spec §1.6: its columns, types, and vectorised validation.

Every input format (CSV, Parquet, NDJSON, FHIR AuditEvent, syslog) is first turned into a
table of *string* columns named as in the spec; :func:`validate` then checks and types the
whole table at once with Arrow compute kernels, so a million rows cost a few dozen passes
over contiguous buffers rather than a million Python calls. A row that fails a check is
returned as a :class:`RowError` with its line number and a reason that never repeats the
value (a misplaced column could put an HKID where an account id belongs).

Rules, in the order they are checked (the first one a row breaks is its reason):

* ``event_id``, ``source``, ``seq``, ``ts``, ``account_id``, ``action``, ``outcome`` must be
  present and non-empty; the other columns may be absent or empty.
* No value is longer than :data:`MAX_CHARS` bytes (``fields``: :data:`MAX_FIELDS_CHARS`).
* ``source`` is a short code: letters, digits, ``. _ : -``.
* ``seq`` is a whole number 0 ≤ seq < 10^18.
* ``ts`` is ISO-8601 with a time; without an offset it is Hong Kong time (+08:00, spec §0).
* ``action`` is one of read, search, print, export, update; ``outcome`` success or denied
  (both case-insensitive, stored lower-case).

Values are trimmed of surrounding white space; an empty value is stored as null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phiguard.clock import parse_ts

COLUMNS: tuple[str, ...] = (
    "event_id",
    "source",
    "seq",
    "ts",
    "account_id",
    "action",
    "patient_id",
    "fields",
    "query_id",
    "client_ip",
    "device_id",
    "purpose",
    "outcome",
)
REQUIRED: tuple[str, ...] = ("event_id", "source", "seq", "ts", "account_id", "action", "outcome")
OPTIONAL: tuple[str, ...] = tuple(c for c in COLUMNS if c not in REQUIRED)
ACTIONS: tuple[str, ...] = ("read", "search", "print", "export", "update")
OUTCOMES: tuple[str, ...] = ("success", "denied")
MAX_CHARS = 256
MAX_SOURCE_CHARS = 64  # the completeness tables key on the source (String(64) on PostgreSQL)
MAX_FIELDS_CHARS = 4096
MAX_SEQ_DIGITS = 18
HK_OFFSET = "+08:00"  # Hong Kong has kept UTC+8 all year since 1979

TS_TYPE = pa.timestamp("us", tz="UTC")

#: The typed event: exactly the spec columns, as in the generator's ``events.parquet``.
EVENT_SCHEMA = pa.schema(
    [
        pa.field(c, pa.int64() if c == "seq" else TS_TYPE if c == "ts" else pa.string())
        for c in COLUMNS
    ]
)

#: A row of the analytics store: the event, where the log holds it, and when it arrived.
STORE_SCHEMA = EVENT_SCHEMA.append(pa.field("leaf_index", pa.int64())).append(
    pa.field("ingested_at", TS_TYPE)
)

_SOURCE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
_SEQ_RE = rf"^[0-9]{{1,{MAX_SEQ_DIGITS}}}$"
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_OFFSET_RE = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where it is (1-based line; the header of a CSV is line 1) and why."""

    line: int
    reason: str


@dataclass
class Validated:
    """The outcome of :func:`validate`: the good rows typed, and what was wrong with the rest."""

    table: pa.Table  # EVENT_SCHEMA, good rows only, input order kept
    positions: np.ndarray  # index of each good row in the input table
    errors: list[RowError]


def empty_strings(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def string_table(columns: dict[str, Any], n: int) -> pa.Table:
    """A table of the spec columns as strings; missing columns become nulls."""
    arrays = []
    for c in COLUMNS:
        v = columns.get(c)
        if v is None:
            arrays.append(empty_strings(n))
        elif isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v if v.type == pa.string() else pc.cast(v, pa.string()))
        else:
            arrays.append(pa.array(v, pa.string()))
    return pa.table(arrays, names=list(COLUMNS))


def _clean(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Trim white space and turn empty strings into nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null read as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse_ts(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Cast ISO-8601 strings to UTC microseconds; returns (timestamps, bad mask)."""
    n = len(text)
    shaped = _mask(pc.match_substring_regex(text, _TS_RE))
    present = _mask(pc.is_valid(text))
    bad = present & ~shaped
    has_offset = _mask(pc.match_substring_regex(text, _OFFSET_RE))
    fixed = pc.if_else(
        pa.array(has_offset | ~shaped),
        text,
        pc.binary_join_element_wise(text, pa.scalar(HK_OFFSET), pa.scalar("")),
    )
    usable = pc.if_else(pa.array(shaped), fixed, pa.scalar(None, pa.string()))
    try:
        return pc.cast(usable, TS_TYPE), bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # A well-shaped but impossible value (month 13, 25:00) fails the whole cast; find it
    # one value at a time. Rare by construction, so the slow path does not matter.
    out: list[datetime | None] = []
    bad = bad.copy()
    for i, v in enumerate(usable.to_pylist()):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(parse_ts(v))
        except ValueError:
            out.append(None)
            bad[i] = True
    assert len(out) == n
    return pa.array(out, TS_TYPE), bad


def validate(strings: pa.Table, lines: np.ndarray) -> Validated:
    """Check and type a table of string columns; ``lines[i]`` is row *i*'s line number."""
    n = strings.num_rows
    cols = {
        c: _clean(strings.column(c)) if c in strings.column_names else empty_strings(n)
        for c in COLUMNS
    }
    reason: list[str | None] = [None] * n
    bad = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, why: str) -> None:
        new = mask & ~bad
        if new.any():
            for i in np.flatnonzero(new):
                reason[i] = why
            bad[new] = True

    for c in REQUIRED:
        flag(~_mask(pc.is_valid(cols[c])), f"{c} is missing or empty")
    for c in COLUMNS:
        # bytes, not characters: O(1) per value from the offsets (a CJK character is 3)
        limit = {"fields": MAX_FIELDS_CHARS, "source": MAX_SOURCE_CHARS}.get(c, MAX_CHARS)
        flag(
            _mask(pc.greater(pc.binary_length(cols[c]), limit)), f"{c} is longer than {limit} bytes"
        )
    flag(
        ~_mask(pc.match_substring_regex(cols["source"], _SOURCE_RE)) & ~bad,
        "source may hold only letters, digits and . _ : -",
    )
    seq_ok = _mask(pc.match_substring_regex(cols["seq"], _SEQ_RE))
    flag(~seq_ok, f"seq is not a whole number of at most {MAX_SEQ_DIGITS} digits")
    ts, ts_bad = _parse_ts(cols["ts"])
    flag(ts_bad, "ts is not an ISO-8601 date and time (e.g. 2026-04-03T01:12:00+08:00)")
    action = pc.utf8_lower(cols["action"])
    flag(~_mask(pc.is_in(action, pa.array(ACTIONS))), f"action must be one of {', '.join(ACTIONS)}")
    outcome = pc.utf8_lower(cols["outcome"])
    flag(~_mask(pc.is_in(outcome, pa.array(OUTCOMES))), "outcome must be success or denied")

    good = np.flatnonzero(~bad)
    take = pa.array(good, pa.int64())
    seq_text = pc.if_else(pa.array(seq_ok), cols["seq"], pa.scalar(None, pa.string()))
    typed = {
        **cols,
        "seq": pc.cast(seq_text, pa.int64()),
        "ts": ts,
        "action": action,
        "outcome": outcome,
    }
    if len(good) == n:
        table = pa.table([typed[c] for c in COLUMNS], schema=EVENT_SCHEMA)
    else:
        table = pa.table([typed[c].take(take) for c in COLUMNS], schema=EVENT_SCHEMA)
    errors = [RowError(int(lines[i]), reason[i] or "invalid") for i in np.flatnonzero(bad)]
    return Validated(table=table, positions=good, errors=errors)


def to_store(table: pa.Table, leaf_index: np.ndarray, ingested_at: datetime) -> pa.Table:
    """Add the two store columns to a validated table."""
    n = table.num_rows
    at_us = int(ingested_at.timestamp() * 1_000_000)
    stamp = pa.array(np.full(n, at_us, dtype=np.int64)).cast(TS_TYPE)
    return table.append_column(
        STORE_SCHEMA.field("leaf_index"), pa.array(leaf_index, pa.int64())
    ).append_column(STORE_SCHEMA.field("ingested_at"), stamp)


def iso(ts: datetime) -> str:
    """An event time as the spec writes it: ISO-8601 in Hong Kong time with its offset."""
    from phiguard.clock import HKT

    return ts.astimezone(HKT).isoformat()


__all__ = [
    "ACTIONS",
    "COLUMNS",
    "EVENT_SCHEMA",
    "OPTIONAL",
    "OUTCOMES",
    "REQUIRED",
    "STORE_SCHEMA",
    "RowError",
    "Validated",
    "iso",
    "string_table",
    "to_store",
    "validate",
]
