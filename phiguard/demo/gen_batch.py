"""Events as integer columns, and the extras prepared before streaming.

An :class:`EventBatch` holds events as small integers (indices into the vocabularies below
and into the staff's account and device lists); the Arrow encoder turns them into strings
only when they are written. :class:`Extras` collects the events prepared up front (ward
lists, exports, contractor work, scenarios) and numbers their multi-row queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIONS = ("read", "search", "print", "export", "update")
READ, SEARCH, PRINT, EXPORT, UPDATE = range(len(ACTIONS))
SOURCES = ("CMS", "ePR", "REPORTS")
CMS, EPR, REPORTS = range(len(SOURCES))
PURPOSES = ("TREAT", "ETREAT", "HOPERAT", "SYSADMIN")
TREAT, ETREAT, HOPERAT, SYSADMIN = range(len(PURPOSES))
OUTCOMES = ("success", "denied")
SUCCESS, DENIED = 0, 1


class FieldTable:
    """The ``fields`` strings events use, interned to small integers."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        if value not in self._index:
            self._index[value] = len(self.values)
            self.values.append(value)
        return self._index[value]


@dataclass
class EventBatch:
    """Events as integer columns (indices into the tables above and the staff's)."""

    ts: np.ndarray
    source: np.ndarray
    account: np.ndarray
    action: np.ndarray
    patient: np.ndarray  # -1 = no patient
    fields: np.ndarray
    query: np.ndarray  # -1 = not part of a multi-row query
    device: np.ndarray
    purpose: np.ndarray  # -1 = empty
    outcome: np.ndarray

    def take(self, idx: np.ndarray | slice) -> EventBatch:
        return EventBatch(*(getattr(self, f)[idx] for f in _BATCH_FIELDS))

    @staticmethod
    def concat(parts: list[EventBatch]) -> EventBatch:
        return EventBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in _BATCH_FIELDS))

    def __len__(self) -> int:
        return len(self.ts)


_BATCH_FIELDS = (
    "ts",
    "source",
    "account",
    "action",
    "patient",
    "fields",
    "query",
    "device",
    "purpose",
    "outcome",
)
_DTYPES = (
    np.int64,
    np.int8,
    np.int32,
    np.int8,
    np.int64,
    np.int16,
    np.int64,
    np.int32,
    np.int8,
    np.int8,
)


def batch(**cols: object) -> EventBatch:
    n = np.asarray(cols["ts"]).size
    values = [
        np.broadcast_to(np.asarray(cols[f], dtype=dt), (n,)).copy()
        for f, dt in zip(_BATCH_FIELDS, _DTYPES, strict=True)
    ]
    return EventBatch(*values)


@dataclass
class Extras:
    """Events prepared before streaming: ward lists, exports, contractor work, scenarios."""

    parts: list[EventBatch] = field(default_factory=list)
    groups: int = 0
    final: EventBatch | None = None
    _query_no: np.ndarray | None = None

    def add(self, *, query: bool = False, **cols: object) -> int:
        """Add rows; with ``query=True`` they share a new query id. Returns the group handle."""
        handle = -1
        if query:
            handle = self.groups
            self.groups += 1
        cols.setdefault("query", handle)
        cols.setdefault("outcome", SUCCESS)
        self.parts.append(batch(**cols))
        return handle

    def finalize(self) -> EventBatch:
        """Sort by time and number the queries in the order they start (``q-00000001``…)."""
        empty = batch(
            ts=np.zeros(0, np.int64),
            source=0,
            account=0,
            action=0,
            patient=0,
            fields=0,
            query=0,
            device=0,
            purpose=0,
            outcome=0,
        )
        b = EventBatch.concat([empty, *self.parts])
        b = b.take(np.argsort(b.ts, kind="stable"))
        first_seen = np.full(self.groups, np.iinfo(np.int64).max)
        q = b.query >= 0
        np.minimum.at(first_seen, b.query[q], np.flatnonzero(q))
        order = np.argsort(first_seen, kind="stable")
        number = np.empty(self.groups, dtype=np.int64)
        number[order] = np.arange(1, self.groups + 1)
        self._query_no = number
        b.query = np.where(q, number[np.maximum(b.query, 0)] if self.groups else -1, -1)
        self.final = b
        self.parts = []
        return b

    def query_id(self, handle: int) -> str:
        assert self._query_no is not None, "finalize() first"
        return f"q-{int(self._query_no[handle]):08d}"
