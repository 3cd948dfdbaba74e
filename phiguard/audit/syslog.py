"""An IHE ATNA-style syslog listener: RFC 5424 over TCP (RFC 6587), TLS per RFC 5425.

Framing: octet counting (``MSG-LEN SP SYSLOG-MSG``, RFC 6587 §3.4.1, the only framing RFC
5425 allows); a frame that starts with ``<`` is read as non-transparent framing (one
message per line, RFC 6587 §3.4.2) for plain-TCP senders that only do that. A frame that
cannot be delimited (a bad length, a frame over :data:`MAX_FRAME`) ends the connection:
there is no safe way to find the next message. Everything received before it is still
sealed, and an ``ERR`` line says why.

Durability: messages are collected per connection and sealed as one batch when
:data:`BATCH_MESSAGES` have arrived or :data:`FLUSH_SECONDS` passed since the first of
them. Syslog has no acknowledgement, so the listener provides two: after each batch is
durable it writes ``ACK <frames> <accepted> <rejected>\\n`` on the connection (a sender
that reads it knows exactly which messages are safe), and on a clean close it seals
everything before closing its side — a sender that half-closes and waits for the
listener's close knows its whole stream is durable. A message that cannot be mapped to an
event is rejected (counted, logged to ``HOME/logs/syslog.log`` with its frame number and
reason, never its content) and leaves no trace in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phiguard.audit.ingest_formats import Chunk
from phiguard.errors import PhiguardError, UsageError

if TYPE_CHECKING:
    from phiguard.app import App

MAX_FRAME = 256 * 1024
BATCH_MESSAGES = 5000
FLUSH_SECONDS = 0.05
QUEUE_FRAMES = 20_000
log = logging.getLogger("phiguard.syslog")


class FramingError(Exception):
    pass


_EOF = object()


def tls_context(
    cert: Path, key: Path | None = None, client_ca: Path | None = None
) -> ssl.SSLContext:
    """A server context for RFC 5425: TLS 1.2+, optionally requiring client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the syslog TLS certificate/key: {exc}") from exc
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(client_ca))
    return ctx


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One syslog message, or None at a clean end of stream."""
    try:
        first = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return None
    if first == b"<":  # non-transparent framing: up to LF
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
        except asyncio.LimitOverrunError as exc:
            raise FramingError("a line-framed message is too long") from exc
        return (first + line).rstrip(b"\r\n")
    if not first.isdigit() or first == b"0":
        raise FramingError("expected an octet count (RFC 6587) or '<'")
    digits = first
    while True:
        c = await reader.readexactly(1)
        if c == b" ":
            break
        if not c.isdigit() or len(digits) >= 7:
            raise FramingError("bad octet count")
        digits += c
    n = int(digits)
    if n > MAX_FRAME:
        raise FramingError(f"a message of {n:,} bytes is over the limit of {MAX_FRAME:,}")
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise FramingError("the connection closed inside a message (truncated)") from exc


@dataclass
class ConnectionStats:
    peer: str
    frames: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class SyslogListener:
    """The listener. ``start()`` runs it on its own thread and event loop; ``stop()`` ends
    it after sealing what every open connection has sent."""

    def __init__(
        self,
        app: App,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ack: bool = True,
        batch_messages: int = BATCH_MESSAGES,
        flush_seconds: float = FLUSH_SECONDS,
        heartbeat_check_seconds: float = 60.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.ack = ack
        self.batch_messages = batch_messages
        self.flush_seconds = flush_seconds
        self.heartbeat_check_seconds = heartbeat_check_seconds
        self.stats: list[ConnectionStats] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logger = _file_logger(app)

    @classmethod
    def from_settings(cls, app: App) -> SyslogListener | None:
        s = app.settings
        if s.syslog_port is None:
            return None
        ctx = None
        if s.syslog_tls_cert is not None:
            ctx = tls_context(s.syslog_tls_cert, s.syslog_tls_key, s.syslog_tls_client_ca)
        return cls(app, s.syslog_host, s.syslog_port, ssl_context=ctx)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> int:
        """Start on a background thread; returns the bound port."""
        self._thread = threading.Thread(target=self._run, name="phiguard-syslog", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise PhiguardError("the syslog listener did not start in time")
        if self._failure is not None:
            raise UsageError(f"cannot start the syslog listener: {self._failure}")
        return self.port

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported through start()
            self._failure = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._handle,
                self.host,
                self.port,
                ssl=self.ssl_context,
                limit=MAX_FRAME + 16,
            )
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self._stopping = asyncio.Event()
        self._ready.set()
        beat = asyncio.ensure_future(self._heartbeats())
        await self._stopping.wait()
        beat.cancel()
        self._server.close()
        await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)

    def __enter__(self) -> SyslogListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _heartbeats(self) -> None:
        from phiguard.audit.completeness import check_heartbeats

        while True:
            await asyncio.sleep(self.heartbeat_check_seconds)
            try:
                await asyncio.to_thread(check_heartbeats, self.app)
            except Exception as exc:  # keep listening; the next round retries
                self._logger.warning("heartbeat check failed: %s", exc)

    # -- connections -------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        stats = ConnectionStats(peer=f"{peer[0]}:{peer[1]}" if peer else "?")
        self.stats.append(stats)
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_FRAMES)
        feeder = asyncio.ensure_future(self._feed(reader, queue))
        pending: list[bytes] = []
        first_at = 0.0
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                wait = None
                if pending:
                    wait = max(0.0, self.flush_seconds - (time.monotonic() - first_at))
                done, _ = await asyncio.wait({getter}, timeout=wait)
                if not done:
                    await self._commit(pending, stats, writer)
                    pending = []
                    continue
                item, getter = getter.result(), None
                if item is _EOF:
                    break
                if isinstance(item, FramingError):
                    await self._commit(pending, stats, writer)
                    pending = []
                    stats.errors.append(str(item))
                    self._logger.warning("%s: closing: %s", stats.peer, item)
                    await self._write(writer, f"ERR {item}\n".encode())
                    break
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)
                if len(pending) >= self.batch_messages:
                    await self._commit(pending, stats, writer)
                    pending = []
            await self._commit(pending, stats, writer)
        except Exception as exc:  # a durability failure: say so and drop the connection
            stats.errors.append(str(exc))
            self._logger.error("%s: %s", stats.peer, exc)
            await self._write(writer, f"ERR {exc}\n".encode())
        finally:
            feeder.cancel()
            if getter is not None:
                getter.cancel()
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _feed(self, reader: asyncio.StreamReader, queue: asyncio.Queue[Any]) -> None:
        try:
            while True:
                frame = await read_frame(reader)
                if frame is None:
                    break
                await queue.put(frame)
        except FramingError as exc:
            await queue.put(exc)
            return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        await queue.put(_EOF)

    async def _commit(
        self, frames: list[bytes], stats: ConnectionStats, writer: asyncio.StreamWriter
    ) -> None:
        if not frames:
            return
        first_no = stats.frames + 1
        stats.frames += len(frames)
        result = await asyncio.to_thread(
            seal_messages, self.app, frames, first_no, stats.peer, self.ssl_context is not None
        )
        stats.accepted += result.accepted
        stats.rejected += result.rejected
        for e in result.errors:
            self._logger.warning("%s: frame %d rejected: %s", stats.peer, e.line, e.reason)
        if self.ack:
            await self._write(
                writer, f"ACK {stats.frames} {stats.accepted} {stats.rejected}\n".encode()
            )

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(data)
            await writer.drain()


def seal_messages(
    app: App, frames: list[bytes], first_no: int = 1, peer: str | None = None, tls: bool = False
) -> Any:
    """Seal a list of syslog messages as batches (one per source); returns the FileResult."""
    from phiguard.audit.ingest import FileResult, ingest_chunks

    chunk = Chunk(
        records=list(frames),
        lines=list(range(first_no, first_no + len(frames))),
        meta={"format": "syslog"},
    )
    result = FileResult(name="syslog", format="syslog")
    extra = {"peer": peer, "tls": tls}
    ingest_chunks(app, [chunk], result, channel="syslog", actor="syslog", extra=extra)
    return result


def _file_logger(app: App) -> logging.Logger:
    logger = logging.getLogger(f"phiguard.syslog.{id(app)}")
    if not logger.handlers:
        try:
            app.home.logs.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(app.home.logs / "syslog.log")
        except OSError:
            handler = logging.NullHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def send(
    host: str,
    port: int,
    messages: list[bytes],
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,
    on_ack: Callable[[str], None] | None = None,
) -> list[str]:
    """A minimal RFC 5425/6587 sender (tests, benchmarks, the demo): octet-counted frames,
    half-close, then read the listener's replies until it closes. Returns the reply lines."""
    import socket

    raw = socket.create_connection((host, port), timeout=timeout)
    sock: Any = raw
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host)
    try:
        sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        if ssl_context is None:
            sock.shutdown(socket.SHUT_WR)
        else:
            # TLS cannot half-close portably: signal the end with a zero-length read window
            sock.sendall(b"")
        replies: list[str] = []
        buf = b""
        while True:
            if (
                ssl_context is not None
                and replies
                and replies[-1].startswith("ACK")
                and int(replies[-1].split()[1]) >= len(messages)
            ):
                break
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for ln in lines:
                text = ln.decode("utf-8", "replace")
                replies.append(text)
                if on_ack is not None:
                    on_ack(text)
        return replies
    finally:
        with contextlib.suppress(OSError):
            sock.close()


__all__ = ["SyslogListener", "read_frame", "seal_messages", "send", "tls_context"]
