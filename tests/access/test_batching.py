"""Decisions from concurrent callers: same answers as decide(), every one durable in the
audit log before it is answered, failures reach every caller of the group."""

from __future__ import annotations

import json
import threading

import pytest

from phiguard.access.batching import DecisionBatcher
from phiguard.access.pdp import decide
from phiguard.errors import DurabilityError, UsageError


def _decisions(app) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    for e in app.audit.find(lambda e: True, kind="action"):
        doc = json.loads(e.data)
        if doc.get("tag") == "access:decision:made":
            out.append(doc)
    return out


def test_concurrent_questions_get_decide_answers_and_every_one_is_logged_first(
    sqlite_app, sqlite_world
):
    app = sqlite_app
    sqlite_world.grant(fields="name,sex", actions="read", max_rows=20)
    expected_allow = decide(app, account="c1", action="read", patient="P1", record=False)
    expected_deny = decide(app, account="c1", action="export", cluster="KEC", rows=99, record=False)
    batcher = DecisionBatcher(app)
    logged_when_answered: list[int] = []
    answers: list[dict] = []
    lock = threading.Lock()
    done_all = threading.Event()
    n = 40

    def done(result, error):  # type: ignore[no-untyped-def]
        assert error is None
        with lock:
            answers.append(result)
            logged_when_answered.append(len(_decisions(app)))
            if len(answers) == n:
                done_all.set()

    questions = [
        dict(account="c1", action="read", patient="P1")
        if i % 2 == 0
        else dict(account="c1", action="export", cluster="KEC", rows=99)
        for i in range(n)
    ]
    threads = [threading.Thread(target=batcher.submit, args=(q, done)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done_all.wait(30)
    batcher.close()
    assert sorted(a["decision"] for a in answers) == ["allow"] * 20 + ["deny"] * 20
    assert expected_allow in answers and expected_deny in answers
    records = _decisions(app)
    assert len(records) == n
    # a caller is answered only once its own record is in the log
    assert min(logged_when_answered) >= 1
    assert batcher.decisions == n and 1 <= batcher.groups <= n
    deny = next(r for r in records if r["detail"]["decision"] == "deny")
    assert deny["actor"] == "c1" and deny["subject"] == "KEC" and deny["detail"]["rows"] == 99


def test_a_group_holds_many_decisions_in_one_append(sqlite_app, sqlite_world):
    app = sqlite_app
    batcher = DecisionBatcher(app)
    gate = threading.Event()
    real = batcher._record
    sizes: list[int] = []

    def slow_record(records):  # type: ignore[no-untyped-def]
        gate.wait(10)  # hold the first group while the rest queue up behind it
        sizes.append(len(records))
        real(records)

    batcher._record = slow_record  # type: ignore[method-assign]
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                batcher.decide(timeout=30, account="c1", action="read", patient="P1")
            )
        )
        for _ in range(12)
    ]
    threads[0].start()
    for t in threads[1:]:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(results) == 12 and sum(sizes) == 12 and len(sizes) < 12
    assert len(_decisions(app)) == 12
    batcher.close()


def test_bad_usage_is_an_error_and_not_recorded(sqlite_app, sqlite_world):
    batcher = DecisionBatcher(sqlite_app)
    with pytest.raises(UsageError, match="unknown action"):
        batcher.decide(timeout=30, account="c1", action="dance")
    assert _decisions(sqlite_app) == []
    batcher.close()


def test_a_failed_append_answers_nobody(sqlite_app, sqlite_world):
    batcher = DecisionBatcher(sqlite_app)

    def broken(records):  # type: ignore[no-untyped-def]
        raise DurabilityError("disk gone")

    batcher._record = broken  # type: ignore[method-assign]
    with pytest.raises(DurabilityError):
        batcher.decide(timeout=30, account="c1", action="read", patient="P1")
    batcher.close()
    with pytest.raises(UsageError, match="shutting down"):
        batcher.decide(timeout=30, account="c1", action="read", patient="P1")


def test_single_use_grant_is_used_once_under_concurrency(sqlite_app, sqlite_world):
    sqlite_world.grant(fields="name,sex", actions="read", max_rows=20, single_use=True)
    batcher = DecisionBatcher(sqlite_app)
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                batcher.decide(timeout=30, account="c1", action="read", patient="P1")
            )
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert [r["decision"] for r in results].count("allow") == 1
