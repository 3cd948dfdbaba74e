"""The recorder's queue and its per-patient event lines (no database needed)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

from phiguard.gateway import protocol as pq
from phiguard.gateway.session import Recorder, StatementRecord, data_row_keys


def record(n: int, *, rows: int = 0, patients: list[str] | None = None) -> StatementRecord:
    return StatementRecord(
        session_id="GS-1",
        n=n,
        ts=datetime(2026, 4, 2, 1, 5, tzinfo=UTC),
        account_id="gw-eng-07",
        grant_id="G-1",
        purpose="SYSADMIN",
        client_ip="10.0.0.9",
        kind="select",
        action="read",
        decision="allow",
        sql="SELECT 1",
        fields=["name"],
        rows=rows,
        patients=list(patients or []),
    )


def test_queue_is_bounded_and_everything_is_sealed_in_order() -> None:
    gate = threading.Event()
    sealed: list[int] = []
    rec = Recorder(SimpleNamespace(), interval=0.01, max_lag=0.01, max_pending=20)

    def slow_seal(batch: list[StatementRecord]) -> None:
        gate.wait(5)
        sealed.extend(r.n for r in batch)

    rec._seal = slow_seal  # type: ignore[method-assign]
    high = 0
    for n in range(1, 8):
        if n == 4:  # the sealer is stuck until now: the fourth record must wait for it
            gate.set()
        rec.submit(record(n, rows=5))
        high = max(high, rec._weight)
        assert rec._weight <= 20
    rec.flush(timeout=10)
    rec.close()
    assert sealed == list(range(1, 8)) and high > 0 and rec.healthy


def test_patient_events_are_exactly_what_json_would_write() -> None:
    cipher = SimpleNamespace(encrypt_json=lambda obj, ctx: b"sealed")
    rec = Recorder.__new__(Recorder)
    rec.app, rec.source = SimpleNamespace(cipher=cipher), "GATEWAY"
    pids = ["P0000001", 'odd"id\\', "陳\n\u2028", "P\x01"]
    lines = rec._events(record(3, rows=4, patients=pids), 10)
    events = [json.loads(line) for line in lines]
    assert [e["patient_id"] for e in events] == pids
    assert [e["seq"] for e in events] == [10, 11, 12, 13]
    assert "gateway" in events[0] and all("gateway" not in e for e in events[1:])
    for line, ev in zip(lines[1:], events[1:], strict=True):
        assert line == json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode()


def test_keys_are_read_from_raw_rows() -> None:
    blob = b"".join(
        pq.build_data_row(f)
        for f in ([b"P1", None, b"x"], [None, b"y", b"z"], ["陳".encode(), b"", b"q"])
    )
    assert data_row_keys(blob, 0) == ["P1", "陳"]
    assert data_row_keys(blob, 1) == ["y", ""]
    r = record(1, rows=3, patients=["P9"])
    r.raw, r.raw_idx = [blob, blob], 0
    r.resolve()
    assert r.patients == ["P9", "P1", "陳"] and r.raw == []
