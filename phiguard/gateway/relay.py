"""One live gateway session: the relay between a contractor's client and the real database.

Two tasks run per session. The *client side* reads every message, judges statements
(:mod:`phiguard.gateway.policy` + the policy decision point), forwards what is allowed
(rewritten) and, for each message that will be answered, queues an *expectation*. The
*upstream side* reads the database's answers in bulk, matches them to the expectations in
order, and applies what the grant demands to result rows on the way: the row limit (cut or
refuse), stripping of the hidden patient-key column, and collection of the patient ids that
go into the audit log.

A refused statement is never sent. Instead the relay sends the database a statement that
fails to parse and swaps the database's syntax error for its own refusal: the database then
goes through exactly the error path PostgreSQL defines (the transaction is marked failed,
extended-protocol messages are skipped until Sync), so client and server never disagree
about the state of the session.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from phiguard.access import common as ac
from phiguard.access.pdp import Question, grant_misses, pdp_for
from phiguard.gateway import protocol as pq
from phiguard.gateway.policy import Judgement, Plan
from phiguard.gateway.session import StatementRecord, data_row_keys

if TYPE_CHECKING:
    from phiguard.gateway.server import Gateway, SessionInfo

BOGUS = "phiguard refused"
HARD_CAP = 1 << 30
RAW_HOLD = 64 << 20  # bytes of result rows a run holds for the recorder to read keys from
_D, _T, _C, _E, _Z, _I, _H, _d, _c = (ord(x) for x in "DTCEZIHdc")
_ASYNC = frozenset(ord(x) for x in "NSA")
_TXN_END = ("COMMIT", "END", "ROLLBACK", "ABORT")


class Target:
    """A prepared statement, portal or cursor: its judgement and what it has returned."""

    __slots__ = ("delivered", "j", "pid_idx", "sql")

    def __init__(self, j: Judgement, sql: str) -> None:
        self.j, self.sql, self.delivered = j, sql, 0
        self.pid_idx: int | None = None  # the patient-key column, once the rows are described


class Run:
    """The result of one executed statement, as it streams back."""

    __slots__ = (
        "buffer",
        "bytes",
        "copy",
        "done",
        "header",
        "hidden",
        "j",
        "limit",
        "over",
        "pid_idx",
        "pids",
        "pidset",
        "raw",
        "rec",
        "refuse",
        "relay",
        "seen",
        "sent",
        "t0",
        "target",
    )

    def __init__(
        self, relay: Relay, j: Judgement, rec: StatementRecord, target: Target | None = None
    ) -> None:
        scope = relay.info.scope
        self.relay, self.j, self.rec, self.target = relay, j, rec, target
        limited = j.limited or (target is not None and target.j.limited)
        base = target.j if target is not None else j
        already = target.delivered if target is not None else 0
        self.limit = max(0, scope.max_rows - already) if limited else 1 << 62
        self.hidden = base.hidden_key
        self.refuse = limited and scope.over_limit == "refuse"
        self.pid_idx: int | None = target.pid_idx if target is not None else None
        self.seen = self.sent = self.bytes = 0
        self.pids: list[str] = []
        self.pidset: set[str] = set()
        self.raw: list[bytes] = []
        self.buffer: list[bytes] | None = [] if self.refuse else None
        self.over = self.copy = self.done = False
        self.header = False
        self.t0 = time.perf_counter()

    # -- rows -------------------------------------------------------------------------------
    def describe(self, body: bytes) -> bytes:
        cols = pq.parse_row_description(body)
        if self.hidden and cols and cols[-1].name == "__phiguard_pid":
            self.pid_idx = len(cols) - 1
            cols = cols[:-1]
            out = pq.build_row_description(cols)
        else:
            out = pq.message(b"T", body)
            if self.pid_idx is None:
                keys = self.relay.gw.key_columns
                for i, col in enumerate(cols):
                    if (col.table_oid, col.attnum) in keys:
                        self.pid_idx = i
                        break
        if self.target is not None:
            self.target.pid_idx = self.pid_idx
        return out

    def data(self, buf: bytearray, s: int, e: int, out: bytearray) -> None:
        self.seen += 1
        if self.seen == 1 and self.pid_idx is None and self.target is not None:
            self.pid_idx = self.target.pid_idx  # described after this run was queued
        if self.seen > self.limit:
            self.over = True
            return
        if self.hidden:
            fields = pq.data_row_fields(memoryview(buf)[s + 5 : e])
            pid = fields.pop()
            msg = pq.build_data_row(fields)
        else:
            msg = bytes(buf[s:e])
            pid = pq.data_row_field(buf, s, self.pid_idx) if self.pid_idx is not None else None
        self._keep(msg, pid, out)

    def copy_data(self, buf: bytearray, s: int, e: int, out: bytearray) -> None:
        if self.header:  # the CSV header line is not a row
            self.header = False
            line = bytes(buf[s + 5 : e])
            if self.hidden:
                line = line[: line.rfind(b"," if self.j.copy_csv else b"\t")] + b"\n"
            self._emit(pq.message(b"d", line), out)
            return
        self.seen += 1
        if self.seen > self.limit:
            self.over = True
            return
        line = bytes(buf[s + 5 : e])
        pid = None
        if self.hidden:
            cut = line.rfind(b"," if self.j.copy_csv else b"\t")
            pid = line[cut + 1 :].rstrip(b"\r\n").strip(b'"')
            line = line[:cut] + b"\n"
        self._keep(pq.message(b"d", line), pid, out)

    def _keep(self, msg: bytes, pid: bytes | None, out: bytearray) -> None:
        self.sent += 1
        self.bytes += len(msg)
        if pid is not None:
            p = pid.decode("utf-8", "replace")
            if p not in self.pidset:
                self.pidset.add(p)
                self.pids.append(p)
        self._emit(msg, out)

    def add_keys(self, keys: list[str]) -> None:
        pids, pidset = self.pids, self.pidset
        for p in keys:
            if p not in pidset:
                pidset.add(p)
                pids.append(p)

    def _emit(self, msg: bytes, out: bytearray) -> None:
        if self.buffer is not None:
            self.buffer.append(msg)
        else:
            out += msg

    # -- ends -------------------------------------------------------------------------------
    def complete(self, tag: str, out: bytearray) -> None:
        """CommandComplete (or PortalSuspended when ``tag`` is None)."""
        scope = self.relay.info.scope
        if self.over and self.refuse:
            self.buffer = None
            self.pids, self.sent = [], 0
            out += pq.error_response(
                f"refused: this statement returns more than {scope.max_rows:,} rows, the limit "
                f"of grant {scope.grant_id}",
                code="54000",
                hint="narrow the query; the grant refuses larger results rather than cut them",
            )
            self.finish(
                "deny",
                [f"returned more than {scope.max_rows:,} rows; the grant refuses larger results"],
            )
            self.relay.after_synthetic_error()
            return
        if self.buffer:
            for m in self.buffer:
                out += m
        self.buffer = [] if self.refuse else None
        if self.over:
            out += pq.notice_response(
                f"result cut at {scope.max_rows:,} rows by grant {scope.grant_id} "
                f"(the query produced {self.seen:,})",
                code="01000",
            )
        if tag is None:
            out += pq.message(b"s")
        else:
            if self.over:
                verb = tag.rsplit(" ", 1)[0]
                if verb.split(" ")[0] in ("SELECT", "FETCH", "COPY", "MOVE"):
                    tag = f"{verb} {self.sent}"
            out += pq.command_complete(tag)
        if self.target is not None:
            self.target.delivered += self.sent
        self.finish("cut" if self.over else "allow", [])

    def fail(self, code: str) -> None:
        self.finish("error", [f"the database returned an error ({code})"])

    def finish(self, decision: str, reasons: list[str]) -> None:
        if self.done:
            return
        self.done = True
        r = self.rec
        r.decision, r.reasons = decision, r.reasons + reasons
        r.rows, r.rows_seen, r.bytes = self.sent, self.seen, self.bytes
        r.patients = self.pids
        r.raw, r.raw_idx = (self.raw, self.pid_idx) if self.sent else ([], None)
        base = self.target.j if self.target is not None else self.j
        r.attributed = not base.protected or self.pid_idx is not None or self.hidden
        r.ms = (time.perf_counter() - self.t0) * 1000
        self.relay.gw.recorder.submit(r)
        self.relay.rows += self.sent


class Exp:
    """What the relay expects from upstream next, in order."""

    __slots__ = ("error", "i", "kind", "run", "runs", "target")

    def __init__(
        self,
        kind: str,
        *,
        run: Run | None = None,
        runs: list[Run] | None = None,
        error: bytes = b"",
        target: Target | None = None,
    ) -> None:
        self.kind, self.run, self.runs, self.i = kind, run, runs or [], 0
        self.error, self.target = error, target


class Relay:
    def __init__(
        self,
        gw: Gateway,
        info: SessionInfo,
        cr: asyncio.StreamReader,
        cw: asyncio.StreamWriter,
        ur: asyncio.StreamReader,
        uw: asyncio.StreamWriter,
    ) -> None:
        self.gw, self.info = gw, info
        self.cr, self.cw, self.ur, self.uw = cr, cw, ur, uw
        self.policy = gw.policy_for(info.scope)
        self.exps: deque[Exp] = deque()
        self.stmts: dict[str, Target] = {}
        self.portals: dict[str, Target] = {}
        self.cursors: dict[str, Target] = {}
        self.n = 0
        self.rows = 0
        self.suppress = False
        self.txn_failed = False
        self.closed = False
        self.cur: Run | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.end_reason = "client disconnected"
        self._pending_txn_fail = False

    async def run(self) -> str:
        self.tasks = [
            asyncio.ensure_future(self.client_side()),
            asyncio.ensure_future(self.upstream_side()),
        ]
        done, pending = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        for t in done:
            exc = t.exception() if not t.cancelled() else None
            if exc is not None and not isinstance(
                exc, (ConnectionError, asyncio.IncompleteReadError)
            ):
                self.end_reason = f"internal error: {type(exc).__name__}"
                await self.terminate(f"internal gateway error ({type(exc).__name__})", code="XX000")
        self._close_streams()
        return self.end_reason

    async def terminate(self, reason: str, *, code: str = "57P01") -> None:
        """End the session now, with a FATAL message the client can show."""
        if self.closed:
            return
        self.closed = True
        self.end_reason = reason
        try:
            self.cw.write(
                pq.error_response(f"terminating connection: {reason}", code=code, severity="FATAL")
            )
            await asyncio.wait_for(self.cw.drain(), 2)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        if self.info.upstream_pid:
            await self.gw.cancel_upstream(self.info)
        self._close_streams()
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()

    def _close_streams(self) -> None:
        for w, farewell in ((self.uw, pq.message(b"X")), (self.cw, b"")):
            try:
                if farewell and not w.is_closing():
                    w.write(farewell)
                w.close()
            except (ConnectionError, RuntimeError):
                pass

    # -- client side --------------------------------------------------------------------------
    async def _read(self) -> tuple[bytes, bytes | None]:
        head = await self.cr.readexactly(5)
        kind, length = head[:1], int.from_bytes(head[1:], "big", signed=True)
        if length < 4 or length > HARD_CAP:
            raise pq.ProtocolError(f"invalid message length {length}")
        size = length - 4
        if size > self.gw.settings.max_message_bytes:
            while size:  # skip it without holding it: the stream stays in step
                size -= len(await self.cr.readexactly(min(size, 1 << 20)))
            return kind, None
        return kind, (await self.cr.readexactly(size) if size else b"")

    async def client_side(self) -> None:
        while not self.closed:
            try:
                kind, body = await self._read()
            except pq.ProtocolError as exc:
                self.gw.note_protocol(self.info, str(exc))
                await self.terminate(str(exc), code="08P01")
                return
            if kind == b"X":
                self.end_reason = "client ended the session"
                return
            if body is None:
                limit = self.gw.settings.max_message_bytes
                self.gw.note_protocol(self.info, f"oversized {kind!r} message")
                self.refuse(
                    kind,
                    f"message larger than the gateway's limit of {limit:,} bytes; refused",
                    code="54000",
                    simple=kind in (b"Q", b"F"),
                )
            else:
                try:
                    self.on_client(kind, body)
                except pq.ProtocolError as exc:
                    self.gw.note_protocol(self.info, str(exc))
                    self.refuse(
                        kind, f"malformed message: {exc}", code="08P01", simple=kind in (b"Q", b"F")
                    )
            await self.uw.drain()

    def on_client(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self.on_query(pq.parse_query(body))
        elif kind == b"P":
            self.on_parse(pq.parse_parse(body), body)
        elif kind == b"B":
            msg = pq.parse_bind(body)
            st = self.stmts.get(msg.statement)
            if st is None:
                self.refuse(
                    kind,
                    f"prepared statement {msg.statement!r} was not prepared "
                    "through this gateway session",
                    code="26000",
                    simple=False,
                )
                return
            self.portals[msg.portal] = Target(st.j, st.sql)
            self._send(b"B", body, Exp("bind"))
        elif kind == b"D":
            what, name = pq.parse_target(body)
            target = (self.stmts if what == "S" else self.portals).get(name)
            self._send(b"D", body, Exp("describe", target=target))
        elif kind == b"E":
            portal, _max = pq.parse_execute(body)
            target = self.portals.get(portal)
            if target is None:
                self.refuse(
                    kind, f"portal {portal!r} is unknown to the gateway", code="34000", simple=False
                )
                return
            j = target.j
            if j.protected:
                problems = self.pdp(j)
                if problems:
                    self.deny(j, target.sql, problems, simple=False)
                    return
            rec = self.record(j, target.sql, "allow")
            self._send(b"E", body, Exp("execute", run=Run(self, j, rec, target)))
        elif kind == b"C":
            what, name = pq.parse_target(body)
            (self.stmts if what == "S" else self.portals).pop(name, None)
            self._send(b"C", body, Exp("close"))
        elif kind == b"S":
            self._send(b"S", body, Exp("sync"))
        elif kind == b"H":
            self._send(b"H", body, None)
        elif kind == b"F":
            self.refuse(kind, "fast-path function calls (large objects) are refused", simple=True)
        elif kind in (b"d", b"c", b"f"):
            return  # COPY FROM is refused, so there is never a copy-in to feed
        else:
            raise pq.ProtocolError(f"unexpected message type {kind!r}")

    def _send(self, kind: bytes, body: bytes, exp: Exp | None) -> None:
        if exp is not None:
            self.exps.append(exp)
        self.uw.write(pq.message(kind, body))

    def refuse(self, kind: bytes, reason: str, *, code: str = "42501", simple: bool) -> None:
        """Answer with an error through the database's own error path (see module doc)."""
        err = pq.error_response(reason, code=code)
        if simple:
            self.exps.append(Exp("refused_q", error=err))
            self.uw.write(pq.query_message(BOGUS))
        else:
            self.exps.append(Exp("refused_x", error=err))
            self.uw.write(pq.parse_message("", BOGUS, ()))

    def deny(self, j: Judgement, sql: str, reasons: list[str], *, simple: bool) -> None:
        rec = self.record(j, sql, "deny")
        rec.reasons = reasons
        self.gw.recorder.submit(rec)
        self.refuse(
            b"Q", "refused by phiguard: " + "; ".join(reasons), code=j.sqlstate, simple=simple
        )

    def record(self, j: Judgement, sql: str, decision: str) -> StatementRecord:
        self.n += 1
        info = self.info
        return StatementRecord(
            session_id=info.session_id,
            n=self.n,
            ts=self.gw.app.clock.now(),
            account_id=info.account_id,
            grant_id=info.scope.grant_id,
            purpose=info.purpose,
            client_ip=info.client_ip,
            kind=j.kind,
            action=j.action,
            decision=decision,
            sql=sql,
            reasons=list(j.reasons),
            relations=j.relations,
            fields=j.fields,
            masked=j.masked,
            fingerprint=j.fingerprint,
        )

    def pdp(self, j: Judgement) -> list[str]:
        """The decision point's word on this statement under the session's grant."""
        if not self.gw.recorder.healthy:
            return ["the gateway cannot record statements right now"]
        info, scope = self.info, self.info.scope
        point = pdp_for(self.gw.app)
        q = Question(
            info.account_id,
            j.action,
            ac.epoch(self.gw.app.clock.now()),
            frozenset(j.fields),
            1,
            info.purpose,
            "" if scope.cluster == "ALL" else scope.cluster,
        )
        verdict = point.decide_question(q)
        sub = point.subject(info.account_id)
        mine = next((g for g in (sub.grants if sub else ()) if g.grant_id == scope.grant_id), None)
        misses = grant_misses(mine, q) if mine is not None else ["it is not held any more"]
        if verdict.allowed and not misses:
            return []
        return (
            verdict.reasons
            if not verdict.allowed
            else [f"grant {scope.grant_id} does not cover this: " + "; ".join(misses)]
        )

    def on_query(self, sql: str) -> None:
        plan: Plan = self.policy.plan(sql)
        if self.txn_failed:
            first = plan.statements[0] if plan.statements else None
            if first is None or first.kind != "transaction":
                self.refuse(
                    b"Q",
                    "current transaction is aborted, commands ignored until end "
                    "of transaction block",
                    code="25P02",
                    simple=True,
                )
                return
        bad = plan.refused
        if bad is None:
            for j in plan.statements:
                target = self.cursors.get(j.cursor or "") if j.kind in ("fetch", "move") else None
                if j.kind in ("fetch", "move") and target is None:
                    j.allowed, j.reasons = (
                        False,
                        [f"cursor {j.cursor!r} was not declared through this gateway session"],
                    )
                    j.sqlstate = "34000"
                elif (target.j if target else j).protected:
                    problems = self.pdp(target.j if target else j)
                    if problems:
                        j.allowed, j.reasons = False, problems
                if not j.allowed:
                    bad = j
                    break
        if bad is not None:
            for j in plan.statements:
                rec = self.record(j, sql, "deny")
                rec.reasons = (
                    j.reasons
                    if not j.allowed
                    else ["not run: another statement in the same string was refused"]
                )
                self.gw.recorder.submit(rec)
            self.refuse(
                b"Q",
                "refused by phiguard: " + "; ".join(bad.reasons),
                code=bad.sqlstate,
                simple=True,
            )
            return
        runs = []
        text = plan.text
        for j in plan.statements:
            target = None
            if j.kind == "declare" and j.cursor:
                self.cursors[j.cursor] = Target(j, j.sql)
            elif j.kind in ("fetch", "move"):
                target = self.cursors.get(j.cursor or "")
            elif j.kind == "close":
                if j.cursor is None:
                    self.cursors.clear()
                else:
                    self.cursors.pop(j.cursor, None)
            elif j.kind == "discard":
                self.cursors.clear()
            runs.append(Run(self, j, self.record(j, j.sql, "allow"), target))
        if self.txn_failed and plan.statements and plan.statements[0].kind == "transaction":
            words = plan.statements[0].sql.strip().split(None, 1)
            if words and words[0].upper() in ("COMMIT", "END"):
                text = "ROLLBACK"  # a failed transaction cannot commit
        self.exps.append(Exp("query", runs=runs))
        self.uw.write(pq.query_message(text if plan.statements else ""))

    def on_parse(self, msg: pq.ParseMsg, body: bytes) -> None:
        plan = self.policy.plan(msg.query)
        if len(plan.statements) > 1:
            j = plan.statements[0]
            self.deny(
                j,
                msg.query,
                ["cannot insert multiple commands into a prepared statement"],
                simple=False,
            )
            return
        if not plan.statements:
            self.stmts[msg.name] = Target(Judgement("empty", True, ""), "")
            self._send(b"P", body, Exp("parse"))
            return
        j = plan.statements[0]
        if j.allowed and j.kind in ("fetch", "move", "declare", "close"):
            j.allowed, j.reasons = (
                False,
                ["cursors are supported in the simple query protocol only"],
            )
        if j.allowed and j.protected:
            problems = self.pdp(j)
            if problems:
                j.allowed, j.reasons = False, problems
        if not j.allowed:
            self.stmts.pop(msg.name, None)
            self.deny(j, msg.query, j.reasons, simple=False)
            return
        self.stmts[msg.name] = Target(j, msg.query)
        self.exps.append(Exp("parse"))
        self.uw.write(pq.parse_message(msg.name, j.sql, msg.param_types))

    # -- upstream side ------------------------------------------------------------------------
    async def upstream_side(self) -> None:
        buf = bytearray()
        read = self.ur.read
        recorder, monotonic = self.gw.recorder, time.monotonic
        while not self.closed:
            chunk = await read(1 << 18)
            if not chunk:
                if not self.closed:
                    await self.terminate("the database closed the connection", code="08006")
                return
            buf += chunk
            out = bytearray()
            pos, n = 0, len(buf)
            while True:
                pos = self._rows_fast(buf, out, pos)
                if n - pos < 5:
                    break
                end = pos + 1 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
                if end > n:
                    break
                self.on_upstream(buf[pos], buf, pos, end, out)
                pos = end
            del buf[:pos]
            recorder.activity = monotonic()
            if out and not self.closed:
                self.cw.write(out)
                await self.cw.drain()

    def _rows_fast(self, buf: bytearray, out: bytearray, pos: int) -> int:
        """The hot path of a large result: a run of DataRows for a run that neither strips a
        column nor buffers, forwarded as one slice; returns where it stopped."""
        run = self.cur
        if run is None or run.hidden or run.buffer is not None or self.suppress:
            return pos
        if run.seen == 0 and run.pid_idx is None and run.target is not None:
            run.pid_idx = run.target.pid_idx
        start, n = pos, len(buf)
        room = run.limit - run.seen
        count = 0
        # Only the framing is walked here (type byte and length per row); the patient key
        # of each row is read later, on the recorder's thread, from a copy of the slice.
        while n - pos >= 5 and buf[pos] == _D and count < room:
            end = pos + 1 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if end > n:
                break
            count += 1
            pos = end
        if count:
            chunk = bytes(memoryview(buf)[start:pos])
            out += chunk
            if run.pid_idx is not None:
                if run.bytes < RAW_HOLD:
                    run.raw.append(chunk)
                else:  # a huge result: read its keys now rather than hold all its bytes
                    for blob in [*run.raw, chunk]:
                        run.add_keys(data_row_keys(blob, run.pid_idx))
                    run.raw = []
            run.seen += count
            run.sent += count
            run.bytes += pos - start
        return pos

    def on_upstream(self, kind: int, buf: bytearray, s: int, e: int, out: bytearray) -> None:
        if kind == _D and self.cur is not None and not self.suppress:
            self.cur.data(buf, s, e, out)
            return
        if kind in _ASYNC:
            out += buf[s:e]
            return
        if kind == _Z:
            self.on_ready(bytes(buf[s + 5 : e]), out)
            return
        if self.suppress:
            return
        exp = self.exps[0] if self.exps else None
        if exp is None:
            out += buf[s:e]  # nothing expected (should not happen): pass it on
            return
        body = bytes(buf[s + 5 : e])
        k = exp.kind
        if k == "query":
            self.on_query_result(exp, kind, body, buf, s, e, out)
        elif k == "execute":
            self.on_run_message(exp.run, kind, body, buf, s, e, out, extended=True)
        elif kind == _E:
            self.on_error(exp, body, out)
        elif k == "describe" and kind == _T:
            run_target = exp.target
            if run_target is not None and run_target.j.hidden_key:
                cols = pq.parse_row_description(body)
                if cols and cols[-1].name == "__phiguard_pid":
                    run_target.pid_idx = len(cols) - 1
                    out += pq.build_row_description(cols[:-1])
                else:
                    out += buf[s:e]
            else:
                if run_target is not None:
                    keys = self.gw.key_columns
                    cols = pq.parse_row_description(body)
                    run_target.pid_idx = next(
                        (i for i, col in enumerate(cols) if (col.table_oid, col.attnum) in keys),
                        None,
                    )
                out += buf[s:e]
            self.exps.popleft()
        else:
            out += buf[s:e]
            if k in ("parse", "bind", "close") or (k == "describe" and kind == ord("n")):
                self.exps.popleft()

    def on_query_result(
        self, exp: Exp, kind: int, body: bytes, buf: bytearray, s: int, e: int, out: bytearray
    ) -> None:
        if exp.i >= len(exp.runs):
            out += buf[s:e]
            return
        run = exp.runs[exp.i]
        if kind == _E:
            run.fail(pq.error_fields(body).get("C", "?"))
            for other in exp.runs[exp.i + 1 :]:
                other.finish("error", ["not run: an earlier statement failed"])
            exp.i = len(exp.runs)
            self.cur = None
            out += buf[s:e]
            return
        if kind == _I:
            run.finish("allow", [])
            exp.i += 1
            out += buf[s:e]
            return
        if self.on_run_message(run, kind, body, buf, s, e, out, extended=False):
            exp.i += 1

    def on_run_message(
        self,
        run: Run | None,
        kind: int,
        body: bytes,
        buf: bytearray,
        s: int,
        e: int,
        out: bytearray,
        *,
        extended: bool,
    ) -> bool:
        """Feed one result message to ``run``; True when the run is complete."""
        assert run is not None
        if kind == _T:
            self.cur = run
            out += run.describe(body)
            return False
        if kind == _C:
            self.cur = None
            run.complete(body.rstrip(b"\x00").decode(), out)
        elif kind == _D:
            self.cur = run
            run.data(buf, s, e, out)
            return False
        elif kind == ord("s"):
            self.cur = None
            run.complete(None, out)  # type: ignore[arg-type]
        elif kind == _H:
            run.copy, run.header = True, run.j.copy_header
            if run.hidden and len(body) >= 3:
                n = int.from_bytes(body[1:3], "big")
                body = body[:1] + (n - 1).to_bytes(2, "big") + body[3 : 3 + 2 * (n - 1)]
            out += pq.message(b"H", body)
            return False
        elif kind == _d:
            run.copy_data(buf, s, e, out)
            return False
        elif kind == _c:
            if not (run.over and run.refuse):
                run._emit(bytes(buf[s:e]), out)
            return False
        elif kind == _E:
            self.cur = None
            run.fail(pq.error_fields(body).get("C", "?"))
            out += buf[s:e]
            if extended:
                self.exps.popleft()
                self._drop_until_sync()
            return True
        elif kind == _I:
            run.finish("allow", [])
            out += buf[s:e]
        else:
            out += buf[s:e]
            return False
        if extended and self.exps and self.exps[0].run is run:
            self.exps.popleft()
        return True

    def on_error(self, exp: Exp, body: bytes, out: bytearray) -> None:
        if exp.kind in ("refused_q", "refused_x"):
            out += exp.error
        else:
            out += pq.message(b"E", body)
        if exp.kind not in ("refused_q", "sync", "query"):
            self.exps.popleft()
            self._drop_until_sync()

    def _drop_until_sync(self) -> None:
        while self.exps and self.exps[0].kind not in ("sync", "query", "refused_q"):
            dropped = self.exps.popleft()
            if dropped.run is not None:
                dropped.run.finish("error", ["not run: skipped after an error"])

    def after_synthetic_error(self) -> None:
        """Our own error replaced a result: the client now expects nothing until
        ReadyForQuery, and a failed transaction if one was open."""
        self.suppress = True
        self.cur = None
        self._pending_txn_fail = True

    def on_ready(self, status: bytes, out: bytearray) -> None:
        while self.exps:
            exp = self.exps.popleft()
            for r in ([exp.run] if exp.run else []) + exp.runs:
                if not r.done:
                    r.finish("error", ["not delivered"])
            if exp.kind in ("sync", "query", "refused_q"):
                break
        if self.suppress and getattr(self, "_pending_txn_fail", False) and status == b"T":
            self.txn_failed = True
        self._pending_txn_fail = False
        self.suppress = False
        self.cur = None
        if status == b"I":
            self.txn_failed = False
        if self.txn_failed and status == b"T":
            status = b"E"
        out += pq.ready_for_query(status)
