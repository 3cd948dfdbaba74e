"""Per-source completeness: gaps, duplicates, regressions, heartbeats, and what verify says."""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from phiguard.app import App
from phiguard.audit import completeness
from phiguard.audit.ingest import ingest_body
from phiguard.audit.models import AuditSeqGap
from tests.audit.eventfiles import event


def send(app: App, seqs: list[int], source: str = "CMS") -> list[completeness.Anomaly]:
    body = b"".join(json.dumps(event(s, source=source)).encode() + b"\n" for s in seqs)
    return ingest_body(app, body, "application/x-ndjson").anomalies


def kinds(found: list[completeness.Anomaly]) -> list[tuple[str, int | None, int | None]]:
    return [(a.kind, a.first_seq, a.last_seq) for a in found]


def test_gap_regression_and_duplicate_on_both_databases(app: App) -> None:
    assert send(app, [1, 2, 3]) == []
    assert kinds(send(app, [4, 8, 9])) == [("gap", 5, 7)]
    (status,) = completeness.status(app)
    assert status.open_gaps == [(5, 7)] and not status.complete
    # 6 arrives late: out of order, the gap splits; 2 arrives again: a duplicate
    assert kinds(send(app, [6, 2])) == [("duplicate", 2, 2), ("regression", 6, 6)]
    assert completeness.status(app)[0].open_gaps == [(5, 5), (7, 7)]
    send(app, [5, 7, 10])
    (status,) = completeness.status(app)
    assert status.complete and status.high_seq == 10 and status.events == 11
    gap = [a for a in completeness.anomalies(app) if a.kind == "gap"][0]
    assert gap.status == "closed" and gap.closed_at is not None


def test_an_event_older_than_the_first_opens_a_gap_below(sqlite_app: App) -> None:
    send(sqlite_app, [100, 101])
    assert kinds(send(sqlite_app, [97])) == [("gap", 98, 99), ("regression", 97, 97)]
    assert completeness.status(sqlite_app)[0].open_gaps == [(98, 99)]


def test_sources_are_counted_separately(sqlite_app: App) -> None:
    send(sqlite_app, [1, 2])
    assert send(sqlite_app, [1, 2], source="ePR") == []
    assert kinds(send(sqlite_app, [4], source="ePR")) == [("gap", 3, 3)]
    assert {s.source: s.complete for s in completeness.status(sqlite_app)} == {
        "CMS": True,
        "ePR": False,
    }


def test_alerts_are_written_to_the_audit_log(sqlite_app: App) -> None:
    send(sqlite_app, [1, 5])
    actions = [
        json.loads(e.data)
        for e in sqlite_app.audit.records()
        if e.kind == "action" and e.data.startswith(b"{")
    ]
    gaps = [a for a in actions if a.get("tag") == "audit:source:gap"]
    assert len(gaps) == 1
    assert gaps[0]["subject"] == "CMS" and gaps[0]["detail"]["first_seq"] == 2


def test_heartbeat_flags_a_silent_source_once_and_clears_it(app: App, clock) -> None:  # type: ignore[no-untyped-def]
    send(app, [1])
    send(app, [1], source="ePR")
    completeness.set_heartbeat(app, "ePR", 3600)
    clock.advance(timedelta(seconds=app.settings.heartbeat_seconds + 1))
    flagged = completeness.check_heartbeats(app)
    assert [a.source for a in flagged] == ["CMS"]  # ePR has an hour
    assert completeness.check_heartbeats(app) == []  # flagged once per silence
    clock.advance(timedelta(hours=1))
    assert [a.source for a in completeness.check_heartbeats(app)] == ["ePR"]
    send(app, [2])
    status = {s.source: s for s in completeness.status(app)}
    assert status["CMS"].silent_since is None and status["ePR"].silent_since is not None
    silent = [a for a in completeness.anomalies(app) if a.kind == "silent" and a.source == "CMS"]
    assert silent[0].status == "closed"


def test_verify_findings_come_from_the_log_not_the_tables(sqlite_app: App) -> None:
    send(sqlite_app, [1, 2, 6])
    findings = completeness.verify_findings(sqlite_app)
    assert ("source CMS", "3 event(s) never received: seq 3–5", True) in findings
    # someone deletes the open gap from the database to hide it
    with sqlite_app.engine.begin() as conn:
        conn.execute(delete(AuditSeqGap))
    assert completeness.status(sqlite_app)[0].complete
    findings = completeness.verify_findings(sqlite_app)
    assert any("disagrees with the sealed events" in m and err for _, m, err in findings)
    assert any("never received: seq 3–5" in m for _, m, _ in findings)


def test_verify_through_the_cli_reports_the_gap(sqlite_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.audit.eventfiles import events, write_csv

    sqlite_cli("init")
    rows = events(2) + events(1, start=5)
    sqlite_cli("ingest", str(write_csv(tmp_path / "g.csv", rows)))
    res = sqlite_cli("audit", "verify")
    assert res.exit_code == 1 and "2 event(s) never received: seq 3–4" in res.output
    src = sqlite_cli("audit", "sources")
    assert src.exit_code == 1 and "missing seq 3–4" in src.output
    doc = json.loads(sqlite_cli("audit", "sources", "--format", "json").stdout)
    assert doc[0]["open_gaps"] == [[3, 4]] and doc[0]["complete"] is False


def _naive(seen: list[int]) -> tuple[list[tuple[int, int]], int]:
    """Gaps between the lowest and highest seq ever seen, by brute force."""
    have = set(seen)
    lo, hi = min(have), max(have)
    gaps: list[tuple[int, int]] = []
    for s in range(lo, hi + 1):
        if s not in have:
            if gaps and gaps[-1][1] == s - 1:
                gaps[-1] = (gaps[-1][0], s)
            else:
                gaps.append((s, s))
    return gaps, hi


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=12), min_size=1, max_size=6))
def test_tracked_gaps_always_match_a_brute_force_recount(batches) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa
    from sqlalchemy import create_engine, select

    from phiguard.audit.events import EVENT_SCHEMA
    from phiguard.audit.models import AuditAnomaly, AuditSource
    from phiguard.clock import parse_ts
    from phiguard.storage.base import Base

    engine = create_engine("sqlite://")
    Base.metadata.create_all(
        engine, tables=[AuditSource.__table__, AuditSeqGap.__table__, AuditAnomaly.__table__]
    )
    now = parse_ts("2026-04-03T09:00:00+08:00")
    seen: list[int] = []
    leaf = 0
    for seqs in batches:
        rows = [event(s) for s in seqs]
        table = pa.table(
            {c: [r[c] if c != "ts" else parse_ts(r[c]) for r in rows] for c in EVENT_SCHEMA.names},
            schema=EVENT_SCHEMA,
        )
        with engine.begin() as conn:
            found = completeness.apply_batch(conn, table, np.arange(leaf, leaf + len(seqs)), now)
        leaf += len(seqs)
        seen.extend(seqs)
        assert sum(a.count for a in found if a.kind == "duplicate") == sum(
            s in seen[: len(seen) - len(seqs)] or s in seqs[:i] for i, s in enumerate(seqs)
        )
    gaps, hi = _naive(seen)
    with engine.connect() as conn:
        tracked = [
            tuple(r)
            for r in conn.execute(
                select(AuditSeqGap.first_seq, AuditSeqGap.last_seq).order_by(AuditSeqGap.first_seq)
            )
        ]
        high = conn.execute(select(AuditSource.high_seq)).scalar()
    assert tracked == gaps and high == hi


def test_stored_anomalies_read_back_with_their_count(sqlite_app: App) -> None:
    send(sqlite_app, [1, 2, 6])
    (gap,) = [a for a in completeness.anomalies(sqlite_app) if a.kind == "gap"]
    assert gap.count == 3
    assert gap.describe() == "CMS: 3 event(s) missing (seq 3–5)"
    assert gap.as_dict()["count"] == 3
