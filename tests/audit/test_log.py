"""The log as its callers use it: appends, receipts, reading back, checkpoints, recovery."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit import journal as jn
from phiguard.audit.checkpoint import Checkpoint, SignedNote, open_checkpoint
from phiguard.audit.log import AuditLog
from phiguard.audit.merkle import leaf_hash, naive_root, verify_consistency, verify_inclusion
from phiguard.audit.tags import Tag
from phiguard.clock import FixedClock
from phiguard.errors import DurabilityError, UsageError
from tests.audit.conftest import reopen, verify_home


def _cp(note: bytes) -> Checkpoint:
    return Checkpoint.parse_body(SignedNote.parse(note).text)


def test_new_home_has_sealed_genesis_and_checkpoint(app: App) -> None:
    log = app.audit
    assert log.size == 1
    note = log.latest_checkpoint()
    assert note is not None
    cp = open_checkpoint(note, log.verifier).checkpoint
    assert (cp.origin, cp.size) == (log.origin, 1)
    ((index, data),) = list(log.entries())
    assert index == 0 and data == (app.home.audit / "log.json").read_bytes()
    assert not (app.home.audit / "actions.interim.jsonl").exists()


def test_append_batch_receipt_and_exact_bytes(sqlite_app: App) -> None:
    log = sqlite_app.audit
    rows = [
        b"E1,CMS,1,2026-04-02T09:00:00+08:00,dr-chan,read,P0001",
        b"\xff\x00 raw \r\n bytes",
        b"",
    ]
    r = log.append_batch("CMS", rows)
    assert (r.first_index, r.count, r.tree_size) == (1, 3, 4)
    assert r.root == log.root_at(4)
    got = dict(log.entries(1, 4))
    assert got == {1: rows[0], 2: rows[1], 3: rows[2]}
    rec = next(log.records(2, 3))
    assert (rec.kind, rec.source, rec.data) == ("event", "CMS", rows[1])
    assert leaf_hash(rec.leaf) == log.leaf_hash(2)


def test_roots_match_naive_tree_over_many_batches(sqlite_app: App) -> None:
    log = sqlite_app.audit
    for n in (1, 7, 4096, 5000, 3):  # crosses frame boundaries
        log.append_batch("ePR", [b"row %d" % i for i in range(n)])
    size = log.size
    hashes = [log.leaf_hash(i) for i in range(size)]
    assert log.root_at(size) == naive_root(hashes)
    for index in (0, 1, 4100, size - 1):
        verify_inclusion(
            index, size, hashes[index], log.inclusion_proof(index, size), naive_root(hashes)
        )
    verify_consistency(
        100, size, naive_root(hashes[:100]), naive_root(hashes), log.consistency_proof(100, size)
    )


def test_actions_are_entries_of_kind_action(sqlite_app: App) -> None:
    sqlite_app.record(Tag.GRANT_APPROVED, actor="it-sec-01", subject="grant:G7", rows=5)
    rec = list(sqlite_app.audit.records())[-1]
    doc = json.loads(rec.data)
    assert rec.kind == "action"
    assert (doc["tag"], doc["actor"], doc["subject"], doc["detail"]) == (
        "access:grant:approved",
        "it-sec-01",
        "grant:G7",
        {"rows": 5},
    )


@pytest.mark.parametrize(
    ("source", "entries", "kind"),
    [
        ("", [b"x"], "event"),
        ("CMS", [], "event"),
        ("CMS", ["text"], "event"),
        ("CMS", [b"x"], "gossip"),
        ("x" * 300, [b"x"], "event"),
    ],
)
def test_bad_batches_are_refused_without_a_trace(
    sqlite_app: App, source: str, entries: list, kind: str
) -> None:
    log = sqlite_app.audit
    before = log.size
    seg = sorted((sqlite_app.home.audit / "journal").glob("*.seg"))[-1].stat().st_size
    with pytest.raises(UsageError):
        log.append_batch(source, entries, kind=kind)
    assert log.size == before
    assert sorted((sqlite_app.home.audit / "journal").glob("*.seg"))[-1].stat().st_size == seg


def test_concurrent_appends_are_group_committed(sqlite_app: App) -> None:
    calls = []
    import os

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        os.fsync(fd)

    log = AuditLog(sqlite_app, fsync=counting_fsync, interval=0)
    receipts = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(25):
            r = log.append_batch(f"SRC{t}", [b"%d-%d-%d" % (t, i, k) for k in range(10)])
            with lock:
                receipts.append(r)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(receipts) == 150
    firsts = sorted(r.first_index for r in receipts)
    assert firsts == list(range(1, 1 + 1500, 10))  # no overlap, no hole
    assert len(calls) < 150  # batches shared fsyncs
    report = verify_home(sqlite_app.home.root)
    assert report.ok, report.findings


def test_publisher_signs_while_events_arrive(sqlite_app: App) -> None:
    log = AuditLog(sqlite_app, interval=0.05)
    import time

    for _ in range(6):
        log.append_batch("CMS", [b"a", b"b"])
        time.sleep(0.06)
    before_close = len(list(log.checkpoints()))
    log.close()
    assert before_close >= 3
    sizes = [_cp(n).size for n in log.checkpoints()]
    assert sizes == sorted(sizes) and sizes[-1] == 13


def test_reopen_recovers_and_continues(home: Path, clock: FixedClock) -> None:
    app = reopen(home, clock)
    app.audit.append_batch("CMS", [b"one", b"two"])
    app.close()
    app = reopen(home, clock)
    r = app.audit.append_batch("CMS", [b"three"])
    assert r.first_index == 3
    app.close()
    assert verify_home(home).ok


def test_entries_are_encrypted_at_rest(home: Path, clock: FixedClock) -> None:
    app = reopen(home, clock)
    secret = b"HKID A123456(3) CHAN Tai Man"
    app.audit.append_batch("CMS", [secret])
    app.close()
    for p in (home / "audit").rglob("*"):
        if p.is_file():
            assert b"A123456" not in p.read_bytes(), p


def test_periods_get_their_own_keys(home: Path, clock: FixedClock) -> None:
    app = reopen(home, clock)
    app.audit.append_batch("CMS", [b"april"])
    clock.advance(timedelta(days=31))
    app.audit.append_batch("CMS", [b"may"])
    app.close()
    assert sorted(p.name for p in (home / "audit" / "keys").glob("*.key")) == [
        "0000-00.key",
        "2026-04.key",
        "2026-05.key",
    ]
    assert verify_home(home).ok


def test_failed_fsync_stops_the_writer_and_loses_nothing_acknowledged(
    home: Path, clock: FixedClock
) -> None:
    import os

    app = reopen(home, clock)
    state = {"fail": False}

    def fsync(fd: int) -> None:
        if state["fail"]:
            raise OSError(5, "Input/output error")
        os.fsync(fd)

    log = AuditLog(app, fsync=fsync, interval=0)
    acked = [log.append_batch("CMS", [b"kept-%d" % i]) for i in range(5)]
    state["fail"] = True
    with pytest.raises(DurabilityError, match="Input/output error|stopped"):
        log.append_batch("CMS", [b"not acknowledged"])
    state["fail"] = False  # the disk "recovers": the writer still refuses, no retry
    with pytest.raises(DurabilityError, match="stopped"):
        log.append_batch("CMS", [b"after the failure"])
    log.close()
    app.close()
    app = reopen(home, clock)
    got = dict(app.audit.entries())
    for r in acked:
        assert got[r.first_index].startswith(b"kept-")
    assert b"after the failure" not in got.values()
    app.audit.publish()
    app.close()
    assert verify_home(home).ok


def test_torn_tail_is_dropped_on_recovery(home: Path, clock: FixedClock) -> None:
    app = reopen(home, clock)
    app.audit.append_batch("CMS", [b"acknowledged"])
    app.close()
    seg = sorted((home / "audit" / "journal").glob("*.seg"))[-1]
    app = reopen(home, clock)
    prepared = jn.prepare(
        jn.KIND_EVENT, "CMS", 0, [b"half-written"], app.audit.keys.for_writing(202604), 202604
    )
    with seg.open("ab") as f:
        f.write(prepared.finalise(2)[:40])  # a crash in the middle of a write
    app.close()
    app = reopen(home, clock)
    r = app.audit.append_batch("CMS", [b"next"])
    assert r.first_index == 2
    assert dict(app.audit.entries())[1] == b"acknowledged"
    app.close()
    assert verify_home(home).ok


def test_two_processes_share_a_home(home: Path, clock: FixedClock) -> None:
    a, b = reopen(home, clock), reopen(home, clock)
    ra = a.audit.append_batch("CMS", [b"from a"])
    rb = b.audit.append_batch("ePR", [b"from b"])
    ra2 = a.audit.append_batch("CMS", [b"a again"])
    assert (ra.first_index, rb.first_index, ra2.first_index) == (1, 2, 3)
    a.close()
    b.close()
    assert verify_home(home).ok
