"""The gateway: an asyncio server speaking the PostgreSQL protocol in front of the real
database.

Per connection: startup (SSLRequest answered ``S`` and TLS started when a certificate is
configured, ``N`` otherwise; GSSENCRequest always ``N``; CancelRequest mapped to the real
backend), SCRAM-SHA-256 authentication of the contractor with a short-lived credential
(:mod:`phiguard.gateway.credentials`), the grant's standing checked, a connection to the real
database as the service role, and then the :class:`~phiguard.gateway.relay.Relay`.

A watcher re-checks every live session's grant, account and vendor every ``check_seconds``
(and at once when access rights change in this process): a revoked, expired or used grant, a
disabled account or a suspended vendor ends the session with a FATAL ``57P01`` message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from phiguard.access import common as ac
from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import UsageError
from phiguard.gateway import protocol as pq
from phiguard.gateway.catalog import Catalog, DataMap
from phiguard.gateway.credentials import live_credential, standing_problem, terms_of
from phiguard.gateway.policy import Policy, Scope
from phiguard.gateway.relay import Relay
from phiguard.gateway.session import Recorder, close_session, open_session
from phiguard.gateway.settings import GatewaySettings
from phiguard.gateway.upstream import AuthFailed, ScramServer, Upstream, connect, send_cancel
from phiguard.storage.models import Account, Grant

log = logging.getLogger(__name__)

#: What a client may pass on to the database in its startup packet.
PASSED_PARAMS = ("application_name", "DateStyle", "TimeZone", "extra_float_digits")


@dataclass
class SessionInfo:
    session_id: str
    account_id: str
    vendor_id: str | None
    purpose: str
    client_ip: str
    scope: Scope
    credential_id: str
    database: str
    tls: bool
    upstream_pid: int = 0
    upstream_secret: int = 0
    key: tuple[int, int] = (0, 0)
    relay: Relay | None = field(default=None, repr=False)


class Gateway:
    def __init__(
        self, app: App, settings: GatewaySettings | None = None, *, catalog: Catalog | None = None
    ) -> None:
        self.app = app
        self.settings = settings or GatewaySettings()
        self.upstream = Upstream.parse(self.settings.upstream)
        self.catalog = catalog or Catalog.load(
            self.upstream.dsn, DataMap.load(self.settings.datamap)
        )
        self.key_columns = {
            (t.oid, num)
            for t in self.catalog.tables.values()
            if t.key
            for num, name in t.attnums.items()
            if name == t.key
        }
        self.recorder = Recorder(
            app,
            source=self.settings.source,
            interval=self.settings.record_seconds,
            max_lag=self.settings.record_max_lag,
            max_pending=self.settings.record_max_pending,
        )
        self.sessions: dict[str, SessionInfo] = {}
        self.by_key: dict[tuple[int, int], SessionInfo] = {}
        self._policies: dict[Scope, Policy] = {}
        self.ssl: ssl.SSLContext | None = None
        if self.settings.tls_cert:
            if not self.settings.tls_key:
                raise UsageError("tls_cert needs tls_key")
            self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl.load_cert_chain(str(self.settings.tls_cert), str(self.settings.tls_key))
        self.server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        host, _, port = self.settings.listen.rpartition(":")
        try:
            self.server = await asyncio.start_server(
                self._handle, host or "127.0.0.1", int(port), limit=1 << 20
            )
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot listen on {self.settings.listen}: {exc}") from None
        self._watcher = asyncio.ensure_future(self._watch())
        sock = self.server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
        if self.server:
            self.server.close()
        for info in list(self.sessions.values()):
            if info.relay:
                await info.relay.terminate("the gateway is shutting down")
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=30)
        if self.server:
            await self.server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)

    def policy_for(self, scope: Scope) -> Policy:
        p = self._policies.get(scope)
        if p is None:
            p = self._policies[scope] = Policy(self.catalog, scope)
        return p

    # -- one connection -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        peer = writer.get_extra_info("peername") or ("?", 0)
        info: SessionInfo | None = None
        if len(self.sessions) >= self.settings.max_sessions:
            await _fatal(writer, "too many gateway sessions", "53300")
            return
        try:
            info, up = await asyncio.wait_for(
                self._startup(reader, writer, str(peer[0])), self.settings.auth_timeout
            )
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except _Refuse as exc:
            await _fatal(writer, str(exc), exc.code)
            return
        if info is None or up is None:
            writer.close()
            return
        relay = Relay(self, info, reader, writer, up.reader, up.writer)
        info.relay = relay
        self.sessions[info.session_id] = info
        self.by_key[info.key] = info
        reason = "ended"
        try:
            reason = await relay.run()
        finally:
            self.sessions.pop(info.session_id, None)
            self.by_key.pop(info.key, None)
            await self._off_loop(self._ended, info, reason)

    async def _off_loop(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _startup(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
    ) -> tuple[SessionInfo | None, Any]:
        tls = False
        while True:
            try:
                code, payload = await pq.read_startup(reader)
            except pq.ProtocolError as exc:
                raise _Refuse(str(exc), "08P01") from None
            if code == pq.SSL_REQUEST and not tls:
                if self.ssl is None:
                    writer.write(b"N")
                    continue
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.ssl)
                tls = True
                continue
            if code == pq.GSSENC_REQUEST:
                writer.write(b"N")
                continue
            if code == pq.CANCEL_REQUEST and len(payload) >= 8:
                key = (int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:8], "big"))
                target = self.by_key.get(key)
                if target is not None:
                    await self.cancel_upstream(target)
                writer.close()
                return None, None
            if code != pq.PROTOCOL_3:
                raise _Refuse(
                    f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}", "0A000"
                )
            break
        try:
            params = pq.startup_params(payload)
        except pq.ProtocolError as exc:
            raise _Refuse(str(exc), "08P01") from None
        if self.ssl is not None and self.settings.require_tls and not tls:
            raise _Refuse("this gateway requires TLS (sslmode=require)", "28000")
        enc = params.get("client_encoding", "UTF8").upper().replace("-", "")
        if enc not in ("UTF8", "UNICODE"):
            raise _Refuse("the gateway speaks UTF8 only (client_encoding)", "22021")
        user = params.get("user", "")
        database = params.get("database") or user
        if database != self.upstream.database:
            raise _Refuse(f'database "{database}" is not served by this gateway', "3D000")
        info = await self._authenticate(reader, writer, user, ip, tls, database)
        passed = {k: v for k, v in params.items() if k in PASSED_PARAMS}
        passed.update(
            {
                "client_encoding": "UTF8",
                "search_path": self.catalog.datamap.schema,
                "application_name": f"phiguard-gateway {info.session_id}",
            }
        )
        options = {
            "options": f"-c search_path={self.catalog.datamap.schema} "
            "-c standard_conforming_strings=on"
        }
        try:
            up = await connect(
                self.upstream, {k: v for k, v in passed.items() if k != "search_path"} | options
            )
        except (TimeoutError, OSError, AuthFailed, pq.ProtocolError) as exc:
            log.warning("gateway: upstream connection failed: %s", exc)
            raise _Refuse("the gateway cannot reach the database right now", "08006") from None
        info.upstream_pid, info.upstream_secret = up.pid, up.secret
        info.key = (secrets.randbits(31), secrets.randbits(31))
        out = bytearray(pq.auth(0))
        for m in up.parameters:
            out += m
        out += pq.backend_key(*info.key)
        out += pq.ready_for_query(b"I")
        writer.write(out)
        await writer.drain()
        await self._off_loop(self._started, info)
        return info, up

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        user: str,
        ip: str,
        tls: bool,
        database: str,
    ) -> SessionInfo:
        found = await self._off_loop(self._lookup, user)
        if found is None:  # run the exchange on a decoy so unknown users look the same
            salt, it, stored, server = (
                secrets.token_bytes(16),
                4096,
                secrets.token_bytes(32),
                secrets.token_bytes(32),
            )
        else:
            cred = found["cred"]
            salt, it, stored, server = cred.salt, cred.iterations, cred.stored_key, cred.server_key
        scram = ScramServer(salt, it, stored, server)
        writer.write(pq.auth(10, b"SCRAM-SHA-256\x00\x00"))
        await writer.drain()
        try:
            kind, body = await pq.read_message(reader, 8192)
            if kind != b"p":
                raise AuthFailed("expected a SASL response")
            c = pq.Cursor(body)
            if c.cstr() != "SCRAM-SHA-256":
                raise AuthFailed("unsupported SASL mechanism")
            size = c.int32()
            first = c.take(size).decode() if size >= 0 else ""
            writer.write(pq.auth(11, scram.first(first).encode()))
            await writer.drain()
            kind, body = await pq.read_message(reader, 8192)
            if kind != b"p":
                raise AuthFailed("expected a SASL response")
            final = scram.final(body.decode())
            if found is None:
                raise AuthFailed("unknown user")
        except (AuthFailed, pq.ProtocolError, UnicodeDecodeError) as exc:
            await self._off_loop(self._auth_failed, user, ip, str(exc))
            raise _Refuse(f'password authentication failed for user "{user}"', "28P01") from None
        if found.get("problem"):
            await self._off_loop(self._auth_failed, user, ip, found["problem"])
            raise _Refuse(f"access refused: {found['problem']}", "28000")
        writer.write(pq.auth(12, final.encode()))
        return SessionInfo(
            session_id=ac.new_id("GS"),
            account_id=found["account_id"],
            vendor_id=found["vendor_id"],
            purpose=found["purpose"],
            client_ip=ip,
            scope=found["scope"],
            credential_id=found["cred"].credential_id,
            database=database,
            tls=tls,
        )

    # -- database work (run off the event loop) ---------------------------------------------------
    def _lookup(self, grant_id: str) -> dict[str, Any] | None:
        cred = live_credential(self.app, grant_id)
        if cred is None:
            return None
        now = self.app.clock.now()
        with self.app.session() as s:
            grant = s.get(Grant, grant_id)
            if grant is None:
                return None
            account = s.get(Account, grant.account_id)
            allow, over = terms_of(s, grant.grant_id)
            fields = (
                None
                if grant.scope_fields.strip() == "*"
                else frozenset(f.strip() for f in grant.scope_fields.split(",") if f.strip())
            )
            scope = Scope(
                grant_id=grant.grant_id,
                cluster=grant.scope_cluster,
                fields=fields,
                actions=frozenset(a.strip() for a in grant.actions.split(",")),
                max_rows=grant.max_rows,
                contractor=bool(account and account.employer != "HA"),
                allow=allow,
                over_limit=over,
                mask_text=self.settings.mask_text,
            )
            return {
                "cred": cred,
                "account_id": grant.account_id,
                "purpose": grant.purpose,
                "vendor_id": account.vendor_id if account else None,
                "scope": scope,
                "problem": standing_problem(s, grant, now),
            }

    def _started(self, info: SessionInfo) -> None:
        open_session(
            self.app,
            {
                "session_id": info.session_id,
                "grant_id": info.scope.grant_id,
                "account_id": info.account_id,
                "vendor_id": info.vendor_id,
                "credential_id": info.credential_id,
                "client_ip": info.client_ip,
                "tls": info.tls,
                "database": info.database,
                "started_at": self.app.clock.now(),
            },
        )
        self.app.record(
            Tag.GATEWAY_SESSION_STARTED,
            actor=info.account_id,
            subject=info.session_id,
            grant_id=info.scope.grant_id,
            client_ip=info.client_ip,
            tls=info.tls,
            database=info.database,
        )

    def _ended(self, info: SessionInfo, reason: str) -> None:
        self.recorder.flush(timeout=10)
        close_session(self.app, info.session_id, reason)
        self.app.record(
            Tag.GATEWAY_SESSION_ENDED,
            actor=info.account_id,
            subject=info.session_id,
            grant_id=info.scope.grant_id,
            reason=reason,
        )

    def _auth_failed(self, user: str, ip: str, why: str) -> None:
        self.app.record(Tag.GATEWAY_AUTH_FAILED, actor=user[:64] or "?", subject=ip, reason=why)

    def note_protocol(self, info: SessionInfo, what: str) -> None:
        """A malformed or oversized message: recorded, never fatal to the gateway."""
        loop = asyncio.get_running_loop()
        loop.run_in_executor(
            None,
            lambda: self.app.record(
                Tag.GATEWAY_PROTOCOL_REFUSED,
                actor=info.account_id,
                subject=info.session_id,
                what=what[:200],
            ),
        )

    async def cancel_upstream(self, info: SessionInfo) -> None:
        await send_cancel(self.upstream, info.upstream_pid, info.upstream_secret)

    # -- standing ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_seconds)
            if self.sessions:
                try:
                    await self.check_now()
                except Exception:  # keep watching; a failed check is retried next time
                    log.exception("gateway: standing check failed")

    async def check_now(self) -> None:
        """End every session whose grant, account or vendor no longer allows it."""
        live = list(self.sessions.values())
        problems = await self._off_loop(self._problems, [i.scope.grant_id for i in live])
        for info in live:
            why = problems.get(info.scope.grant_id)
            if why and info.relay is not None:
                await info.relay.terminate(why)

    def _problems(self, grant_ids: list[str]) -> dict[str, str]:
        now = self.app.clock.now()
        out: dict[str, str] = {}
        with self.app.session() as s:
            for g in s.scalars(select(Grant).where(Grant.grant_id.in_(set(grant_ids)))):
                why = standing_problem(s, g, now)
                if why:
                    out[g.grant_id] = why
        for gid in set(grant_ids) - {g for g in out}:
            with self.app.session() as s:
                if s.get(Grant, gid) is None:
                    out[gid] = f"grant {gid} no longer exists"
        return out


class _Refuse(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def _fatal(writer: asyncio.StreamWriter, message: str, code: str) -> None:
    try:
        writer.write(pq.error_response(message, code=code, severity="FATAL"))
        await asyncio.wait_for(writer.drain(), 2)
    except (TimeoutError, ConnectionError):
        pass
    writer.close()


class GatewayThread:
    """The gateway on its own event loop in a background thread (tests, the demo, serve)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.address: tuple[str, int] | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="phiguard-gateway", daemon=True)

    def start(self) -> tuple[str, int]:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.address is not None
        return self.address

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.address = self.loop.run_until_complete(self.gateway.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def check_now(self) -> None:
        self.call(self.gateway.check_now())

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self.call(self.gateway.stop(), timeout=60)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(30)
