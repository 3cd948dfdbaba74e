"""Session recording: every statement, its decision, the rows and the patients it returned,
sealed in the audit log as access events of the gateway's source — through the same
ingestion path as every other source (``ingest_chunks``), so completeness (per-source
``seq``), the event store and detection treat the gateway like the CMS or ePR.

One statement becomes one event per patient returned (spec §1.6: N patients, N rows sharing a
``query_id``), or one event with an empty ``patient_id`` when it returned none (or the rows
cannot be tied to patients). The first event of a statement carries a ``gateway`` object —
the decision and reasons, the relations and fields, the masked fields, rows and bytes, and the
statement text encrypted with the field cipher — which is what ``replay`` reads back. Extra
keys of an NDJSON event are sealed with it and ignored by the event columns.

Sealing happens on a background thread in batches (``record_seconds``): a point read does not
wait for an fsync. Sealing a large result (one event per patient) holds the interpreter for a
while, so while results are streaming the recorder waits for a quiet moment — never longer than
``record_max_lag`` — and the queue is bounded (``record_max_pending`` events, back-pressure
past it). The patient keys of rows the relay forwarded as raw slices are read here, on the
recorder's thread, not on the relay's. If sealing ever fails, the recorder marks itself failed
and the gateway refuses every further statement (fail closed) rather than serve unrecorded data.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from phiguard.access import common as c
from phiguard.audit.ingest_formats import Chunk
from phiguard.audit.models import AuditSource
from phiguard.errors import NotFound
from phiguard.gateway.models import GatewaySession, GatewayStatement

if TYPE_CHECKING:
    from phiguard.app import App

log = logging.getLogger(__name__)
_I = struct.Struct("!i")
_enc = json.encoder.encode_basestring  # C-accelerated JSON string escaping


@dataclass
class StatementRecord:
    session_id: str
    n: int
    ts: datetime
    account_id: str
    grant_id: str
    purpose: str
    client_ip: str
    kind: str
    action: str
    decision: str  # allow, deny, error, cut
    sql: str
    reasons: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    rows: int = 0  # rows the client received
    rows_seen: int = 0  # rows the database produced
    bytes: int = 0
    patients: list[str] = field(default_factory=list)
    # Runs of raw DataRow messages (as forwarded) whose patient key (field ``raw_idx``) the
    # recorder reads on its own thread, so the relay does not walk fields per row.
    raw: list[builtins.bytes] = field(default_factory=list)
    raw_idx: int | None = None
    attributed: bool = True
    fingerprint: str = ""
    ms: float = 0.0

    @property
    def query_id(self) -> str:
        return f"{self.session_id}-{self.n}"

    @property
    def weight(self) -> int:
        """Roughly how many events this record will seal (for the queue bound), plus a
        share for the raw row bytes it holds until its keys are read (1 per 256 bytes)."""
        return 1 + max(self.rows, len(self.patients)) + sum(len(b) for b in self.raw) // 256

    def resolve(self) -> None:
        """Fold the patient keys of the raw rows into ``patients`` (first-seen order)."""
        if not self.raw:
            return
        seen = set(self.patients)
        out = self.patients
        idx = self.raw_idx
        for blob in self.raw:
            if idx is not None:
                for key in data_row_keys(blob, idx):
                    if key not in seen:
                        seen.add(key)
                        out.append(key)
        self.raw = []


def data_row_keys(blob: bytes, idx: int) -> list[str]:
    """Field ``idx`` of each DataRow in a run of whole DataRow messages, decoded (NULLs
    skipped). An offset walk with ``struct``; no per-row lists or message objects."""
    unpack = _I.unpack_from
    out: list[str] = []
    append = out.append
    pos, n = 0, len(blob)
    while pos < n:
        (length,) = unpack(blob, pos + 1)
        end = pos + 1 + length
        f = pos + 7
        for _ in range(idx):
            (size,) = unpack(blob, f)
            f += 4 + (size if size > 0 else 0)
        (size,) = unpack(blob, f)
        if size >= 0:
            append(blob[f + 4 : f + 4 + size].decode("utf-8", "replace"))
        pos = end
    return out


def _context(session_id: str) -> bytes:
    return b"gateway:sql:" + session_id.encode()


class Recorder:
    """Seals statement records in batches on its own thread."""

    def __init__(
        self,
        app: App,
        *,
        source: str = "GATEWAY",
        interval: float = 0.25,
        max_lag: float = 2.0,
        quiet: float = 0.05,
        max_pending: int = 1_000_000,
    ) -> None:
        self.app = app
        self.source = source
        self.interval = interval
        self.max_lag = max(max_lag, interval)
        self.quiet = quiet
        self.max_pending = max_pending
        # monotonic time the relay last forwarded result bytes (set by the relay, read here)
        self.activity = 0.0
        self._since: float | None = None
        self._flushing = 0
        self.failed: BaseException | None = None
        self._pending: list[StatementRecord] = []
        self._weight = 0
        self._cond = threading.Condition()
        self._submitted = 0
        self._sealed = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="gateway-recorder", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self.failed is None

    def submit(self, rec: StatementRecord) -> None:
        """Queue a record. The queue is bounded (``max_pending`` events): past the bound the
        caller waits for the sealer (back-pressure on the relay) rather than let unsealed
        records pile up without limit; if the sealer cannot catch up within a minute the
        recorder fails closed."""
        w = rec.weight
        with self._cond:
            if self._weight + w > self.max_pending and self._pending:
                self._cond.notify_all()
                if not self._cond.wait_for(
                    lambda: (
                        self._weight + w <= self.max_pending
                        or not self._pending
                        or self.failed is not None
                    ),
                    60,
                ):
                    self.failed = RuntimeError(
                        "gateway recorder fell behind by more than "
                        f"{self.max_pending:,} events for a minute"
                    )
            if not self._pending:
                self._since = time.monotonic()
            self._pending.append(rec)
            self._weight += w
            self._submitted += 1
            if len(self._pending) >= 1000 or self._weight >= 50_000:
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything submitted so far is sealed (tests, shutdown)."""
        with self._cond:
            target = self._submitted
            self._flushing += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(
                    lambda: (
                        self._sealed >= target
                        or self.failed is not None
                        or (self._stop and not self._thread.is_alive())
                    ),
                    timeout,
                )
            finally:
                self._flushing -= 1

    def _due(self) -> bool:
        """Whether to seal what is pending now. Sealing 50,000 patient events takes the
        interpreter for seconds, so while results are streaming it waits for a quiet moment
        (``quiet`` seconds without result bytes), but never longer than ``max_lag`` after the
        oldest pending record, nor past half the queue bound, nor when someone flushes."""
        if not self._pending:
            return False
        if self._stop or self._flushing or self._weight * 2 >= self.max_pending:
            return True
        now = time.monotonic()
        age = now - (self._since or now)
        return age >= self.max_lag or (age >= self.interval and now - self.activity >= self.quiet)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._due():
                    self._cond.wait(
                        min(self.quiet, self.interval) if self._pending else self.interval
                    )
                batch, self._pending = self._pending, []
                self._weight, self._since = 0, None
                stopping = self._stop
            if batch and self.failed is None:
                try:
                    self._seal(batch)
                except Exception as exc:  # fail closed: the server checks ``healthy``
                    log.exception("gateway recorder failed; refusing further statements")
                    self.failed = exc
            with self._cond:
                self._sealed += len(batch)
                self._cond.notify_all()
            if stopping and not self._pending:
                return

    # -- sealing ---------------------------------------------------------------------------
    def _seal(self, batch: list[StatementRecord]) -> None:
        from phiguard.audit.ingest import FileResult, ingest_chunks, ingest_lock

        app = self.app
        with ingest_lock(app):
            with app.engine.connect() as conn:
                high = conn.execute(
                    select(AuditSource.high_seq).where(AuditSource.source == self.source)
                ).scalar()
            seq = -1 if high is None else int(high)
            records: list[bytes] = []
            firsts: list[int] = []
            for rec in batch:
                rec.resolve()
                firsts.append(len(records))
                for line in self._events(rec, seq + 1):
                    records.append(line)
                    seq += 1
            chunk = Chunk(records, list(range(1, len(records) + 1)), meta={"format": "ndjson"})
            result = FileResult(name="gateway", format="ndjson")
            ingest_chunks(
                app,
                [chunk],
                result,
                channel="gateway",
                actor="gateway",
                extra={"gateway": self.source},
            )
        if result.rejected:
            raise RuntimeError(
                f"{result.rejected} gateway events were rejected: {result.errors[:1]}"
            )
        header = result.batches[0][0] if result.batches else None
        with app.engine.begin() as conn:
            for rec, first in zip(batch, firsts, strict=True):
                conn.execute(
                    insert(GatewayStatement).values(
                        session_id=rec.session_id,
                        n=rec.n,
                        ts=rec.ts,
                        query_id=rec.query_id,
                        kind=rec.kind[:16],
                        decision=rec.decision,
                        rows=rec.rows,
                        patients=len(rec.patients),
                        leaf_index=None if header is None else header + 1 + first,
                    )
                )
                conn.execute(
                    update(GatewaySession)
                    .where(GatewaySession.session_id == rec.session_id)
                    .values(
                        statements=GatewaySession.statements + 1,
                        refused=GatewaySession.refused + (1 if rec.decision == "deny" else 0),
                        rows=GatewaySession.rows + rec.rows,
                    )
                )

    def _events(self, rec: StatementRecord, seq: int) -> list[bytes]:
        # The statement and the reasons (which may quote names the client typed) are sealed
        # encrypted: a contractor could type an HKID into a query, and the log is a file
        # phiguard writes. Relations and fields are catalog names, safe in the clear.
        token = self.app.cipher.encrypt_json(
            {"sql": rec.sql, "reasons": rec.reasons}, _context(rec.session_id)
        )
        detail = {
            "session": rec.session_id,
            "statement": rec.n,
            "grant": rec.grant_id,
            "kind": rec.kind,
            "decision": rec.decision,
            "relations": rec.relations,
            "fields": rec.fields,
            "masked": rec.masked,
            "rows": rec.rows,
            "rows_seen": rec.rows_seen,
            "bytes": rec.bytes,
            "patients": len(rec.patients),
            "attributed": rec.attributed,
            "fingerprint": rec.fingerprint,
            "ms": round(rec.ms, 3),
            "sql_sealed": base64.b64encode(token).decode(),
        }
        base = {
            "source": self.source,
            "ts": rec.ts.isoformat(),
            "account_id": rec.account_id,
            "action": rec.action,
            "fields": ",".join(rec.fields),
            "query_id": rec.query_id,
            "client_ip": rec.client_ip,
            "device_id": "gateway",
            "purpose": rec.purpose,
            "outcome": "success" if rec.decision in ("allow", "cut") else "denied",
        }
        dumps = json.dumps
        sep = (",", ":")
        pids: list[str | None] = list(rec.patients) or [None]
        first = {
            "event_id": f"{rec.query_id}-0",
            "seq": seq,
            **base,
            "patient_id": pids[0],
            "gateway": detail,
        }
        out = [dumps(first, separators=sep, ensure_ascii=False).encode()]
        if len(pids) > 1:
            # The other events differ only in event_id, seq and patient_id: built from a
            # template, byte for byte what json.dumps would write (same key order, same
            # escaping), without a dict and an encoder call per patient.
            qid = _enc(rec.query_id)[1:-1]
            mid = dumps(base, separators=sep, ensure_ascii=False)[1:-1]
            enc = _enc
            lines = [
                f'{{"event_id":"{qid}-{i}","seq":{seq + i},{mid},"patient_id":{enc(pid)}}}'
                for i, pid in enumerate(rec.patients)
                if i
            ]
            out.extend(line.encode() for line in lines)
        return out


# -- session rows ---------------------------------------------------------------------------
def open_session(app: App, row: dict[str, Any]) -> None:
    with app.session() as s:
        s.add(GatewaySession(**row, statements=0, refused=0, rows=0))


def close_session(app: App, session_id: str, reason: str) -> None:
    with app.session() as s:
        sess = s.get(GatewaySession, session_id)
        if sess is not None and sess.ended_at is None:
            sess.ended_at, sess.end_reason = app.clock.now(), reason[:500]


def list_sessions(
    app: App, *, grant_id: str | None = None, account_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    with app.session() as s:
        q = select(GatewaySession)
        if grant_id:
            q = q.where(GatewaySession.grant_id == grant_id)
        if account_id:
            q = q.where(GatewaySession.account_id == account_id)
        rows = s.scalars(q.order_by(GatewaySession.started_at.desc()).limit(limit))
        return [
            {
                "session_id": r.session_id,
                "grant_id": r.grant_id,
                "account_id": r.account_id,
                "vendor_id": r.vendor_id,
                "client_ip": r.client_ip,
                "tls": r.tls,
                "database": r.database,
                "started_at": c.iso(r.started_at),
                "ended_at": c.iso(r.ended_at),
                "end_reason": r.end_reason,
                "statements": r.statements,
                "refused": r.refused,
                "rows": r.rows,
            }
            for r in rows
        ]


def replay(app: App, session_id: str) -> dict[str, Any]:
    """What the contractor ran and what came back, read from the sealed log entries."""
    with app.session() as s:
        sess = s.get(GatewaySession, session_id)
        if sess is None:
            raise NotFound(f"unknown gateway session {session_id!r}")
        info = list_sessions(app, grant_id=sess.grant_id, limit=10_000)
        index = list(
            s.scalars(
                select(GatewayStatement)
                .where(GatewayStatement.session_id == session_id)
                .order_by(GatewayStatement.n)
            )
        )
    head = next(x for x in info if x["session_id"] == session_id)
    steps = []
    for st in index:
        entry = None
        if st.leaf_index is not None:
            for _i, data in app.audit.entries(st.leaf_index, st.leaf_index + 1):
                entry = json.loads(data)
        if entry is None or entry.get("query_id") != st.query_id:
            entry = _scan_for(app, st.query_id)
        steps.append(_step(app, session_id, entry, st.leaf_index))
    return {**head, "steps": steps}


def _scan_for(app: App, query_id: str) -> dict[str, Any] | None:
    needle = f'"query_id":"{query_id}"'.encode()
    for _i, data in app.audit.entries(0, None):
        if needle in data and b'"gateway":{' in data:
            return json.loads(data)
    return None


def _step(
    app: App, session_id: str, entry: dict[str, Any] | None, leaf: int | None
) -> dict[str, Any]:
    if entry is None:
        return {"missing": True, "leaf_index": leaf}
    g = dict(entry.get("gateway") or {})
    token = g.pop("sql_sealed", None)
    sealed: dict[str, Any] = {}
    if token:
        sealed = app.cipher.decrypt_json(base64.b64decode(token), _context(session_id))
    return {
        "n": g.get("statement"),
        "ts": entry.get("ts"),
        "leaf_index": leaf,
        "query_id": entry.get("query_id"),
        "outcome": entry.get("outcome"),
        "sql": sealed.get("sql"),
        "reasons": sealed.get("reasons", []),
        **{k: v for k, v in g.items() if k not in ("session", "statement")},
    }
