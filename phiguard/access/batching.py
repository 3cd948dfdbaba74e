"""Deciding concurrent questions in groups, with one durable audit append per group.

Every decision must be in the audit log before its answer leaves the server. Written one by
one, each decision waits for its own fsync; the audit log's group commit merges concurrent
writers, but only the ones that happen to be waiting at the same moment, and each still
pays a thread hand-off and a frame of its own. The batcher turns the many small writes into
few larger ones:

* callers :meth:`DecisionBatcher.submit` a question with a completion callback and return at
  once (an ``async`` route awaits a future; nothing blocks the event loop);
* one worker thread takes everything queued (up to ``max_batch``), evaluates each question
  with :func:`phiguard.access.pdp.evaluate_request` — exactly the steps of
  :func:`phiguard.access.pdp.decide`, single-use grants consumed by compare-and-set — and
  appends all the records as **one** batch of ``action`` entries (one write, one fsync);
* only when that append has returned (durable) are the callbacks called with the answers.
  If the append fails, every caller of the group gets the error and no answer.

While one group is being written the next one queues, so under load a group holds every
request that arrived during one fsync. A question that is bad usage (``UsageError``) gets
its error and no record, as with :func:`~phiguard.access.pdp.decide`.

The entries are byte-for-byte what :meth:`phiguard.audit.log.AuditLog.record_action` writes
for one decision (same JSON document, kind ``action``, source ``phiguard``); a group of one
goes through ``app.record`` itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from phiguard.access.pdp import evaluate_request
from phiguard.audit.tags import Tag
from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.app import App

log = logging.getLogger("phiguard.access")

#: called once per question: (answer, None) when durable, or (None, error)
Done = Callable[[dict[str, Any] | None, BaseException | None], None]

ACTION_SOURCE = "phiguard"  # the source AuditLog.record_action writes under
IDLE_SECONDS = 5.0  # the worker thread ends after this long without a question


class DecisionBatcher:
    """One per app (see :func:`batcher_for`); thread-safe; its worker starts on first use."""

    def __init__(self, app: App, *, max_batch: int = 512) -> None:
        self.app = app
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[tuple[dict[str, Any], Done]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.groups = 0  # appends written (for tests and the benchmark)
        self.decisions = 0  # decisions answered

    def submit(self, question: dict[str, Any], done: Done) -> None:
        """Queue one question (the keyword arguments of :func:`~phiguard.access.pdp.decide`);
        ``done`` is called from the worker thread once its record is durable."""
        with self._cv:
            if self._closed:
                raise UsageError("the decision point is shutting down")
            self._queue.append((question, done))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="phiguard-decisions", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def decide(self, timeout: float | None = None, **question: Any) -> dict[str, Any]:
        """Blocking convenience for threads: submit and wait for the durable answer."""
        box: list[Any] = []
        ready = threading.Event()

        def done(result: dict[str, Any] | None, error: BaseException | None) -> None:
            box.append((result, error))
            ready.set()

        self.submit(question, done)
        if not ready.wait(timeout):
            raise TimeoutError("no decision in time")
        result, error = box[0]
        if error is not None:
            raise error
        return result

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # -- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._queue and not self._closed:
                    self._cv.wait(IDLE_SECONDS)
                if not self._queue:  # closed, or idle: a later submit starts a new worker
                    self._thread = None
                    return
                group = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            try:
                self._decide_group(group)
            except BaseException as exc:  # never leave a caller waiting
                log.exception("decision group failed")
                for _, done in group:
                    _call(done, None, exc)

    def _decide_group(self, group: list[tuple[dict[str, Any], Done]]) -> None:
        answered: list[tuple[dict[str, Any], dict[str, Any], Done]] = []
        for question, done in group:
            try:
                result, record = evaluate_request(self.app, **question)
            except Exception as exc:  # bad usage: an error, and nothing recorded
                _call(done, None, exc)
                continue
            answered.append((result, record, done))
        if not answered:
            return
        try:
            self._record([r for _, r, _ in answered])
        except BaseException as exc:
            for _, _, done in answered:
                _call(done, None, exc)
            return
        self.groups += 1
        self.decisions += len(answered)
        for result, _, done in answered:
            _call(done, result, None)

    def _record(self, records: list[dict[str, Any]]) -> None:
        if len(records) == 1:
            self.app.record(Tag.DECISION, **records[0])
            return
        now = self.app.clock.now().isoformat()
        raws = []
        for r in records:
            detail = dict(r)
            actor, subject = detail.pop("actor"), detail.pop("subject")
            doc = {
                "ts": now,
                "tag": str(Tag.DECISION),
                "actor": actor,
                "subject": subject,
                "detail": detail,
            }
            raws.append(json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode())
        self.app.audit.append_batch(ACTION_SOURCE, raws, kind="action")


def _call(done: Done, result: dict[str, Any] | None, error: BaseException | None) -> None:
    try:
        done(result, error)
    except Exception:  # a caller's callback must not stop the worker
        log.exception("decision callback failed")


_LOCK = threading.Lock()


def batcher_for(app: App) -> DecisionBatcher:
    with _LOCK:
        batcher = app.__dict__.get("_access_batcher")
        if batcher is None:
            batcher = DecisionBatcher(app)
            app.__dict__["_access_batcher"] = batcher
    return batcher
