"""PostgreSQL frontend/backend protocol 3.0: framing, parsing and building of the messages the
gateway reads and writes, with size limits.

Every reader here checks lengths before it trusts them: a length below 4, above the limit,
or a C string without its terminator raises :class:`ProtocolError`, which the server turns
into a clean ``08P01`` error for the client (the gateway itself keeps running).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from dataclasses import dataclass

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000

_I = struct.Struct("!i")
_HI = struct.Struct("!ci")
_H = struct.Struct("!h")
_IH = struct.Struct("!IH")


class ProtocolError(Exception):
    """The peer broke the protocol; the message is safe to show to the client."""

    sqlstate = "08P01"


# -- reading -------------------------------------------------------------------------------
async def read_startup(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One length-prefixed startup packet: (code, payload after the code)."""
    head = await reader.readexactly(4)
    (length,) = _I.unpack(head)
    if length < 8 or length > MAX_STARTUP:
        raise ProtocolError(f"invalid startup packet length {length}")
    body = await reader.readexactly(length - 4)
    (code,) = _I.unpack_from(body)
    return code, body[4:]


def startup_params(payload: bytes) -> dict[str, str]:
    """The name/value pairs of a StartupMessage (after the protocol version)."""
    if not payload.endswith(b"\x00"):
        raise ProtocolError("startup packet is not terminated")
    parts = payload[:-1].split(b"\x00")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    if len(parts) % 2:
        raise ProtocolError("startup packet has a name without a value")
    out: dict[str, str] = {}
    try:
        for i in range(0, len(parts), 2):
            out[parts[i].decode()] = parts[i + 1].decode()
    except UnicodeDecodeError:
        raise ProtocolError("startup packet is not valid UTF-8") from None
    return out


async def read_message(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bytes]:
    """One typed message: (type byte, body)."""
    head = await reader.readexactly(5)
    kind, length = _HI.unpack(head)
    if length < 4:
        raise ProtocolError(f"invalid message length {length}")
    if length - 4 > limit:
        # Refuse without reading it into memory; the stream cannot be resynchronised after.
        raise ProtocolError(
            f"message of {length - 4:,} bytes is larger than the limit of {limit:,}"
        )
    body = await reader.readexactly(length - 4) if length > 4 else b""
    return kind, body


def split_messages(buf: bytearray, pos: int = 0) -> Iterator[tuple[int, int, int]]:
    """Complete messages in ``buf`` from ``pos`` as (type, start, end); the caller removes
    ``buf[:last end]`` afterwards. Used on the trusted upstream stream."""
    n = len(buf)
    unpack = _I.unpack_from
    while n - pos >= 5:
        (length,) = unpack(buf, pos + 1)
        end = pos + 1 + length
        if end > n:
            break
        yield buf[pos], pos, end
        pos = end


class Cursor:
    """Reads fields out of one message body, bounds-checked."""

    __slots__ = ("body", "pos")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def cstr(self) -> str:
        end = self.body.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolError("string without terminator")
        raw = self.body[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ProtocolError("string is not valid UTF-8") from None

    def int32(self) -> int:
        if self.pos + 4 > len(self.body):
            raise ProtocolError("message is truncated")
        (v,) = _I.unpack_from(self.body, self.pos)
        self.pos += 4
        return int(v)

    def int16(self) -> int:
        if self.pos + 2 > len(self.body):
            raise ProtocolError("message is truncated")
        (v,) = _H.unpack_from(self.body, self.pos)
        self.pos += 2
        return int(v)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise ProtocolError("message is truncated")
        out = self.body[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        out = self.body[self.pos :]
        self.pos = len(self.body)
        return out

    def done(self) -> None:
        if self.pos != len(self.body):
            raise ProtocolError("message has trailing bytes")


# -- the client messages the gateway looks into ----------------------------------------------
def parse_query(body: bytes) -> str:
    c = Cursor(body)
    text = c.cstr()
    c.done()
    return text


@dataclass(frozen=True, slots=True)
class ParseMsg:
    name: str
    query: str
    param_types: tuple[int, ...]


def parse_parse(body: bytes) -> ParseMsg:
    c = Cursor(body)
    name, query = c.cstr(), c.cstr()
    n = c.int16()
    if n < 0:
        raise ProtocolError("negative parameter count")
    types = tuple(c.int32() for _ in range(n))
    c.done()
    return ParseMsg(name, query, types)


@dataclass(frozen=True, slots=True)
class BindMsg:
    portal: str
    statement: str
    result_formats: tuple[int, ...]


def parse_bind(body: bytes) -> BindMsg:
    c = Cursor(body)
    portal, statement = c.cstr(), c.cstr()
    nf = c.int16()
    if nf < 0:
        raise ProtocolError("negative format count")
    for _ in range(nf):
        c.int16()
    np_ = c.int16()
    if np_ < 0:
        raise ProtocolError("negative parameter count")
    for _ in range(np_):
        size = c.int32()
        if size >= 0:
            c.take(size)
        elif size != -1:
            raise ProtocolError("invalid parameter length")
    nr = c.int16()
    if nr < 0:
        raise ProtocolError("negative result format count")
    formats = tuple(c.int16() for _ in range(nr))
    c.done()
    return BindMsg(portal, statement, formats)


def parse_target(body: bytes) -> tuple[str, str]:
    """Describe / Close: ('S' or 'P', name)."""
    c = Cursor(body)
    kind = c.take(1).decode("latin-1")
    if kind not in ("S", "P"):
        raise ProtocolError("Describe/Close must name a statement (S) or a portal (P)")
    name = c.cstr()
    c.done()
    return kind, name


def parse_execute(body: bytes) -> tuple[str, int]:
    c = Cursor(body)
    portal = c.cstr()
    max_rows = c.int32()
    c.done()
    return portal, max_rows


# -- building ------------------------------------------------------------------------------
def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I.pack(len(body) + 4) + body


def _fields(items: list[tuple[bytes, str]]) -> bytes:
    out = bytearray()
    for code, value in items:
        out += code + value.encode("utf-8", "replace").replace(b"\x00", b"") + b"\x00"
    out += b"\x00"
    return bytes(out)


def error_response(
    message_text: str,
    *,
    code: str = "42501",
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    items = [(b"S", severity), (b"V", severity), (b"C", code), (b"M", message_text)]
    if detail:
        items.append((b"D", detail))
    if hint:
        items.append((b"H", hint))
    return message(b"E", _fields(items))


def notice_response(
    message_text: str, *, code: str = "01000", severity: str = "WARNING", detail: str | None = None
) -> bytes:
    items = [(b"S", severity), (b"V", severity), (b"C", code), (b"M", message_text)]
    if detail:
        items.append((b"D", detail))
    return message(b"N", _fields(items))


def error_fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse body, by code letter."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        end = body.find(b"\x00", pos + 1)
        if end < 0:
            break
        out[chr(body[pos])] = body[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return out


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def auth(code: int, data: bytes = b"") -> bytes:
    return message(b"R", _I.pack(code) + data)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", name.encode() + b"\x00" + value.encode() + b"\x00")


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def command_complete(tag: str) -> bytes:
    return message(b"C", tag.encode() + b"\x00")


def startup_message(params: dict[str, str]) -> bytes:
    body = (
        _I.pack(PROTOCOL_3)
        + b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in params.items())
        + b"\x00"
    )
    return _I.pack(len(body) + 4) + body


def query_message(text: str) -> bytes:
    return message(b"Q", text.encode() + b"\x00")


def parse_message(name: str, query: str, param_types: tuple[int, ...]) -> bytes:
    body = (
        name.encode()
        + b"\x00"
        + query.encode()
        + b"\x00"
        + _H.pack(len(param_types))
        + b"".join(_I.pack(t) for t in param_types)
    )
    return message(b"P", body)


# -- result rows ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    name: str
    table_oid: int
    attnum: int
    type_oid: int
    raw: bytes  # the field's bytes after the name (18 bytes), for rebuilding


def parse_row_description(body: bytes) -> list[Column]:
    c = Cursor(body)
    n = c.int16()
    cols = []
    for _ in range(n):
        name = c.cstr()
        raw = c.take(18)
        table_oid, attnum = _IH.unpack_from(raw, 0)
        (type_oid,) = struct.unpack_from("!I", raw, 6)
        cols.append(Column(name, table_oid, attnum, type_oid, raw))
    return cols


def build_row_description(cols: list[Column]) -> bytes:
    body = _H.pack(len(cols)) + b"".join(col.name.encode() + b"\x00" + col.raw for col in cols)
    return message(b"T", body)


def data_row_fields(body: bytes | memoryview) -> list[bytes | None]:
    (n,) = _H.unpack_from(body, 0)
    pos = 2
    out: list[bytes | None] = []
    for _ in range(n):
        (size,) = _I.unpack_from(body, pos)
        pos += 4
        if size < 0:
            out.append(None)
        else:
            out.append(bytes(body[pos : pos + size]))
            pos += size
    return out


def data_row_field(buf: bytes | bytearray, start: int, index: int) -> bytes | None:
    """Field ``index`` of the DataRow message starting at ``buf[start]`` (its type byte)."""
    pos = start + 7
    unpack = _I.unpack_from
    for _ in range(index):
        (size,) = unpack(buf, pos)
        pos += 4 + (size if size > 0 else 0)
    (size,) = unpack(buf, pos)
    if size < 0:
        return None
    return bytes(buf[pos + 4 : pos + 4 + size])


def build_data_row(fields: list[bytes | None]) -> bytes:
    parts = [_H.pack(len(fields))]
    for f in fields:
        if f is None:
            parts.append(_I.pack(-1))
        else:
            parts.append(_I.pack(len(f)))
            parts.append(f)
    return message(b"D", b"".join(parts))
