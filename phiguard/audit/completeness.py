"""Per-source completeness: sequence gaps, duplicates, regressions, and silent sources.

Every source numbers its events (``seq``, +1 each). phiguard keeps, per source, the highest
``seq`` received and the ranges still missing below it. Each arriving event is one of:

* **in order** — ``seq`` = highest + 1; nothing to say.
* **gap** — ``seq`` > highest + 1: the numbers in between are missing. A gap stays *open*
  until every number in it has arrived; it is an alert as soon as it is seen.
* **regression** — ``seq`` < highest and it was missing: the stream went backwards (late,
  out-of-order delivery). It fills part of a gap; the gap closes when it is full.
* **duplicate** — ``seq`` was already received (a resend, or a source whose counter was
  reset). The event is still sealed — the log keeps what arrived — and flagged.

The first event of a new source starts its count: numbers below it are not a gap, since the
source may have existed before phiguard listened. A source that sends nothing for longer
than its heartbeat interval (``Settings.heartbeat_seconds``, or a per-source value) is
flagged **silent** by :func:`check_heartbeats`; its next event clears the flag.

Everything here runs inside the ingest lock, in the same database transaction that moves
the ``applied`` high-water mark, so replaying the log rebuilds exactly the same state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from phiguard.audit.models import AuditAnomaly, AuditSeqGap, AuditSource
from phiguard.audit.tags import Tag

if TYPE_CHECKING:
    from phiguard.app import App

_SOURCES = AuditSource.__table__
MAX_ANOMALY_ROWS = 200  # per source per batch; more runs are summarised in one row
KINDS = ("gap", "duplicate", "regression", "silent")


@dataclass
class Anomaly:
    source: str
    kind: str
    first_seq: int | None
    last_seq: int | None
    count: int
    leaf_index: int | None = None
    detected_at: datetime | None = None
    id: int | None = None
    status: str = "open"
    detail: str | None = None
    closed_at: datetime | None = None

    def describe(self) -> str:
        span = (
            f"seq {self.first_seq}"
            if self.first_seq == self.last_seq
            else f"seq {self.first_seq}–{self.last_seq}"
        )
        if self.kind == "gap":
            return f"{self.source}: {self.count:,} event(s) missing ({span})"
        if self.kind == "duplicate":
            return f"{self.source}: {self.count:,} duplicate event(s) ({span} already received)"
        if self.kind == "regression":
            return f"{self.source}: {self.count:,} event(s) arrived out of order ({span})"
        return f"{self.source}: silent — {self.detail or 'no events within the heartbeat interval'}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["detected_at"] = self.detected_at.isoformat() if self.detected_at else None
        d["closed_at"] = self.closed_at.isoformat() if self.closed_at else None
        d["message"] = self.describe()
        return d


def _runs(values: list[tuple[int, int]]) -> Iterator[tuple[int, int, int, int]]:
    """Group (seq, leaf) pairs into runs of consecutive seq: (first, last, count, first leaf)."""
    if not values:
        return
    first, leaf = values[0]
    last, count = first, 1
    for s, lf in values[1:]:
        if s == last + 1:
            last, count = s, count + 1
            continue
        yield first, last, count, leaf
        first, last, count, leaf = s, s, 1, lf
    yield first, last, count, leaf


class _Gaps:
    """The open gaps of one source as sorted, disjoint [first, last] ranges."""

    def __init__(self, ranges: list[tuple[int, int, int | None]]) -> None:
        self.ranges = sorted(ranges)
        self.changed = False

    def take(self, s: int) -> int | bool | None:
        """Remove ``s`` if it is missing; returns the range's anomaly id (or True), else False."""
        import bisect

        i = bisect.bisect_right(self.ranges, (s, float("inf"), None)) - 1
        if i < 0:
            return False
        a, b, aid = self.ranges[i]
        if not a <= s <= b:
            return False
        self.changed = True
        parts = [(x, y, aid) for x, y in ((a, s - 1), (s + 1, b)) if x <= y]
        self.ranges[i : i + 1] = parts
        return aid if aid is not None else True

    def add(self, a: int, b: int, aid: int | None) -> None:
        import bisect

        bisect.insort(self.ranges, (a, b, aid), key=lambda r: (r[0], r[1]))
        self.changed = True


def apply_batch(
    conn: Connection, table: pa.Table, leaves: np.ndarray, now: datetime
) -> list[Anomaly]:
    """Update per-source state for a batch of validated events; return the new anomalies."""
    if table.num_rows == 0:
        return []
    sources = table.column("source")
    found: list[Anomaly] = []
    names = pc.unique(sources).to_pylist()
    for src in names:
        # only the two columns needed, and no copy at all for a one-source batch (the usual
        # case): filtering the whole table copied every string column
        seq_col, ts_col, lf = table.column("seq"), table.column("ts"), leaves
        if len(names) > 1:
            mask = pc.equal(sources, src)
            seq_col, ts_col = pc.filter(seq_col, mask), pc.filter(ts_col, mask)
            lf = leaves[np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)]
        seqs = seq_col.to_numpy()
        max_ts = pc.max(ts_col).as_py()
        found.extend(_apply_source(conn, src, seqs, lf, max_ts, now))
    return found


def _apply_source(
    conn: Connection,
    src: str,
    seqs: np.ndarray,
    leaves: np.ndarray,
    max_ts: datetime | None,
    now: datetime,
) -> list[Anomaly]:
    state = conn.execute(select(_SOURCES).where(_SOURCES.c.source == src)).first()
    n = len(seqs)
    if state is None:
        high = None
        conn.execute(
            insert(AuditSource).values(
                source=src,
                low_seq=int(seqs[0]),
                high_seq=int(seqs[0]) - 1,
                events=0,
                first_seen=now,
                last_seen=now,
                last_event_ts=max_ts,
            )
        )
        high = int(seqs[0]) - 1
        low = int(seqs[0])
        events = 0
        last_ts = max_ts
        silent = None
    else:
        high, events, low = state.high_seq, state.events, state.low_seq
        last_ts, silent = _utc(state.last_event_ts), state.silent_since
    anomalies: list[Anomaly] = []
    # fast path: the batch continues the sequence exactly (the normal case)
    if n and seqs[0] == high + 1 and (n == 1 or bool((np.diff(seqs) == 1).all())):
        new_high = int(seqs[-1])
        new_low = low
    else:
        gap_rows = conn.execute(
            select(AuditSeqGap.first_seq, AuditSeqGap.last_seq, AuditSeqGap.anomaly_id).where(
                AuditSeqGap.source == src
            )
        ).all()
        gaps = _Gaps([(a, b, c) for a, b, c in gap_rows])
        dups: list[tuple[int, int]] = []
        late: list[tuple[int, int]] = []
        filled: set[int] = set()
        for s, leaf in zip(seqs.tolist(), leaves.tolist(), strict=True):
            if s == high + 1:
                high = s
            elif s > high + 1:
                an = Anomaly(src, "gap", high + 1, s - 1, s - 1 - high, leaf, now)
                an.id = _insert(conn, an)
                anomalies.append(an)
                gaps.add(high + 1, s - 1, an.id)
                high = s
            elif s < low:
                # before the first number ever seen: the source's history starts earlier
                if s < low - 1:
                    an = Anomaly(src, "gap", s + 1, low - 1, low - 1 - s, leaf, now)
                    an.id = _insert(conn, an)
                    anomalies.append(an)
                    gaps.add(s + 1, low - 1, an.id)
                low = s
                late.append((s, leaf))
            else:
                taken = gaps.take(s)
                if taken is False:
                    dups.append((s, leaf))
                else:
                    late.append((s, leaf))
                    if isinstance(taken, int) and not isinstance(taken, bool):
                        filled.add(taken)
        new_high, new_low = high, low
        for kind, items in (("duplicate", sorted(dups)), ("regression", sorted(late))):
            runs = list(_runs(items))
            for first, last, count, leaf in runs[:MAX_ANOMALY_ROWS]:
                an = Anomaly(src, kind, first, last, count, leaf, now)
                an.id = _insert(conn, an)
                anomalies.append(an)
            if len(runs) > MAX_ANOMALY_ROWS:
                rest = runs[MAX_ANOMALY_ROWS:]
                an = Anomaly(
                    src,
                    kind,
                    rest[0][0],
                    rest[-1][1],
                    sum(r[2] for r in rest),
                    rest[0][3],
                    now,
                    detail=f"{len(rest)} further runs summarised",
                )
                an.id = _insert(conn, an)
                anomalies.append(an)
        if gaps.changed:
            conn.execute(delete(AuditSeqGap).where(AuditSeqGap.source == src))
            if gaps.ranges:
                conn.execute(
                    insert(AuditSeqGap),
                    [
                        {"source": src, "first_seq": a, "last_seq": b, "anomaly_id": aid}
                        for a, b, aid in gaps.ranges
                    ],
                )
            still_open = {aid for _, _, aid in gaps.ranges}
            done = [aid for aid in filled if aid not in still_open]
            if done:
                conn.execute(
                    update(AuditAnomaly)
                    .where(AuditAnomaly.id.in_(done))
                    .values(status="closed", closed_at=now)
                )
    values: dict[str, Any] = {
        "high_seq": max(new_high, high),
        "low_seq": new_low,
        "events": events + n,
        "last_seen": now,
        "last_event_ts": (
            max(t for t in (last_ts, max_ts) if t is not None) if (last_ts or max_ts) else None
        ),
    }
    if silent is not None:
        values["silent_since"] = None
        conn.execute(
            update(AuditAnomaly)
            .where(
                AuditAnomaly.source == src,
                AuditAnomaly.kind == "silent",
                AuditAnomaly.status == "open",
            )
            .values(status="closed", closed_at=now)
        )
    conn.execute(update(AuditSource).where(AuditSource.source == src).values(**values))
    return anomalies


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """Core rows bypass the ORM's type decorator on some paths; make datetimes aware UTC."""
    from datetime import UTC

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _insert(conn: Connection, an: Anomaly) -> int:
    result = conn.execute(
        insert(AuditAnomaly).values(
            source=an.source,
            kind=an.kind,
            first_seq=an.first_seq,
            last_seq=an.last_seq,
            count=an.count,
            detected_at=an.detected_at,
            leaf_index=an.leaf_index,
            status="open",
            detail=an.detail,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def raise_alerts(app: App, anomalies: list[Anomaly], actor: str = "ingest") -> None:
    """Write each new anomaly to the audit log (one action entry each, capped)."""
    tags = {
        "gap": Tag.SEQ_GAP,
        "duplicate": Tag.SEQ_DUPLICATE,
        "regression": Tag.SEQ_REGRESSION,
        "silent": Tag.SOURCE_SILENT,
    }
    for an in anomalies[:MAX_ANOMALY_ROWS]:
        app.record(
            tags[an.kind],
            actor=actor,
            subject=an.source,
            kind=an.kind,
            first_seq=an.first_seq,
            last_seq=an.last_seq,
            count=an.count,
            leaf_index=an.leaf_index,
            anomaly_id=an.id,
        )


def check_heartbeats(app: App, now: datetime | None = None) -> list[Anomaly]:
    """Flag every source silent for longer than its heartbeat interval (once per silence)."""
    now = now or app.clock.now()
    default = int(getattr(app.settings, "heartbeat_seconds", 900))
    flagged: list[Anomaly] = []
    with app.engine.begin() as conn:
        rows = conn.execute(select(_SOURCES).where(_SOURCES.c.silent_since.is_(None))).all()
        for src in rows:
            interval = timedelta(seconds=src.heartbeat_seconds or default)
            if now - _utc(src.last_seen) <= interval:
                continue
            detail = (
                f"nothing received since {src.last_seen.isoformat(timespec='seconds')}"
                f" (heartbeat interval {int(interval.total_seconds())} s)"
            )
            an = Anomaly(
                src.source, "silent", src.high_seq, src.high_seq, 0, None, now, detail=detail
            )
            an.id = _insert(conn, an)
            conn.execute(
                update(AuditSource).where(AuditSource.source == src.source).values(silent_since=now)
            )
            flagged.append(an)
    raise_alerts(app, flagged, actor="heartbeat")
    return flagged


def set_heartbeat(app: App, source: str, seconds: int | None) -> None:
    """Give one source its own heartbeat interval (None: back to the setting)."""
    with app.engine.begin() as conn:
        done = conn.execute(
            update(AuditSource)
            .where(AuditSource.source == source)
            .values(heartbeat_seconds=seconds)
        )
        if done.rowcount == 0:
            from phiguard.errors import NotFound

            raise NotFound(f"no source {source!r} has sent events yet")


@dataclass
class SourceStatus:
    source: str
    high_seq: int
    events: int
    last_seen: datetime
    last_event_ts: datetime | None
    silent_since: datetime | None
    open_gaps: list[tuple[int, int]]
    missing: int

    @property
    def complete(self) -> bool:
        return not self.open_gaps and self.silent_since is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "high_seq": self.high_seq,
            "events": self.events,
            "last_seen": self.last_seen.isoformat(),
            "last_event_ts": self.last_event_ts.isoformat() if self.last_event_ts else None,
            "silent_since": self.silent_since.isoformat() if self.silent_since else None,
            "open_gaps": [list(g) for g in self.open_gaps],
            "missing": self.missing,
            "complete": self.complete,
        }


def status(app: App) -> list[SourceStatus]:
    """Per-source completeness as it stands: what ``audit verify`` and the console show."""
    out = []
    with app.engine.connect() as conn:
        gaps: dict[str, list[tuple[int, int]]] = {}
        for source, first, last in conn.execute(
            select(AuditSeqGap.source, AuditSeqGap.first_seq, AuditSeqGap.last_seq).order_by(
                AuditSeqGap.first_seq
            )
        ):
            gaps.setdefault(source, []).append((first, last))
        for s in conn.execute(select(_SOURCES).order_by(_SOURCES.c.source)).all():
            g = gaps.get(s.source, [])
            out.append(
                SourceStatus(
                    s.source,
                    s.high_seq,
                    s.events,
                    s.last_seen,
                    s.last_event_ts,
                    s.silent_since,
                    g,
                    sum(b - a + 1 for a, b in g),
                )
            )
    return out


def anomalies(app: App, *, open_only: bool = False, limit: int = 1000) -> list[Anomaly]:
    with app.engine.connect() as conn:
        t = AuditAnomaly.__table__
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if open_only:
            q = q.where(t.c.status == "open")
        return [
            Anomaly(
                a.source,
                a.kind,
                a.first_seq,
                a.last_seq,
                # ``a.count`` is typed as tuple.count; only SQLAlchemy's special-name
                # accessor makes it the column, so read the column by name
                a._mapping["count"],
                a.leaf_index,
                a.detected_at,
                a.id,
                a.status,
                a.detail,
                a.closed_at,
            )
            for a in conn.execute(q).all()
        ]


def as_json(items: list[Anomaly]) -> str:
    return json.dumps([a.as_dict() for a in items], ensure_ascii=False)


__all__ = [
    "Anomaly",
    "SourceStatus",
    "anomalies",
    "apply_batch",
    "check_heartbeats",
    "raise_alerts",
    "set_heartbeat",
    "status",
]


# -- verification: completeness recomputed from the log itself ----------------------------
@dataclass
class LogSource:
    source: str
    events: int
    first_seq: int
    high_seq: int
    duplicates: int
    gaps: list[tuple[int, int]]


def from_log(app: App) -> dict[str, LogSource]:
    """Per-source completeness computed from the sealed events alone (not the tables).

    The database tables are convenient but not tamper-evident; ``audit verify`` therefore
    recomputes every source's sequence coverage from the log and compares.
    """
    from phiguard.audit.ingest import _batches_in_log

    seqs: dict[str, list[np.ndarray]] = {}
    for batch in _batches_in_log(app, 0, app.audit.size):
        if batch is None or isinstance(batch, int) or batch.table.num_rows == 0:
            continue
        t = batch.table
        src_col = t.column("source")
        for src in pc.unique(src_col).to_pylist():
            s = t.filter(pc.equal(src_col, src)).column("seq").to_numpy()
            seqs.setdefault(src, []).append(s)
    out = {}
    for src, parts in seqs.items():
        allv = np.concatenate(parts)
        uniq = np.unique(allv)
        jumps = np.flatnonzero(np.diff(uniq) > 1)
        gaps = [(int(uniq[j]) + 1, int(uniq[j + 1]) - 1) for j in jumps]
        out[src] = LogSource(
            src, len(allv), int(uniq[0]), int(uniq[-1]), len(allv) - len(uniq), gaps
        )
    return out


def verify_findings(app: App) -> list[tuple[str, str, bool]]:
    """``(where, message, is_error)`` for ``phiguard audit verify`` (docs/dev/contracts.md).

    Errors: a sequence gap in the sealed events (events the source numbered but the log
    never received), or a completeness table that disagrees with the log. Warnings:
    duplicates, and sources silent beyond their heartbeat.
    """
    findings: list[tuple[str, str, bool]] = []
    truth = from_log(app)
    tables = {s.source: s for s in status(app)}
    for src, t in sorted(truth.items()):
        where = f"source {src}"
        for a, b in t.gaps[:20]:
            n = b - a + 1
            findings.append(
                (
                    where,
                    f"{n:,} event(s) never received: seq {a}–{b}"
                    if n > 1
                    else f"1 event never received: seq {a}",
                    True,
                )
            )
        if len(t.gaps) > 20:
            findings.append((where, f"… and {len(t.gaps) - 20:,} more gaps", True))
        if t.duplicates:
            findings.append((where, f"{t.duplicates:,} duplicate seq value(s) received", False))
        row = tables.get(src)
        if row is None:
            findings.append(
                (
                    where,
                    "has sealed events but no completeness record "
                    "(run any ingest to replay, or the table was altered)",
                    True,
                )
            )
            continue
        missing_tbl = {(a, b) for a, b in row.open_gaps}
        missing_log = set(t.gaps)
        if row.high_seq != t.high_seq or missing_tbl != missing_log:
            findings.append(
                (
                    where,
                    "the completeness table disagrees with the sealed events "
                    f"(table: high seq {row.high_seq}, {len(missing_tbl)} open gaps; "
                    f"log: high seq {t.high_seq}, {len(missing_log)} gaps)",
                    True,
                )
            )
        if row.silent_since is not None:
            since = row.silent_since.isoformat(timespec="seconds")
            findings.append((where, f"silent since {since}", False))
    for src in sorted(set(tables) - set(truth)):
        findings.append(
            (
                f"source {src}",
                "is in the completeness table but has no sealed events in the log",
                True,
            )
        )
    return findings
