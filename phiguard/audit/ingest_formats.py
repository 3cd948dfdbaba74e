"""Input formats of ``phiguard ingest``: from received bytes to *records*, and back to rows.

Two steps, kept apart on purpose:

1. **Framing** splits what was received into records — the exact bytes of one event each:
   a CSV record (one physical line, or several when a quoted value holds a newline), an
   NDJSON line, one FHIR ``AuditEvent`` (a line of FHIR NDJSON, or the resource's own bytes
   sliced out of a ``Bundle``), one syslog message. These bytes are what the audit log seals.
   Line terminators are not part of a record. Parquet has no record bytes: each row is
   written as a line of canonical CSV (see :func:`parquet_chunks`) and the whole file's
   SHA-256 goes into the batch header.
2. **Decoding** turns a list of records (plus the batch header's context, e.g. the CSV
   header line) into a table of string columns. The same function runs at ingest and when
   the analytics store is rebuilt from the log, so the store is a pure function of the log.

Framing errors (bad encoding, an oversized record, a quote never closed) and decoding
errors (wrong number of fields, bad JSON, an invalid FHIR resource) are reported per record
with its line number; the record is left out and the rest goes on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from phiguard.audit.events import COLUMNS, RowError, string_table
from phiguard.errors import InputError

MAX_RECORD_BYTES = 64 * 1024
MAX_QUOTED_LINES = 1000  # a quoted value longer than this many lines is a stray quote
BLOCK_BYTES = 8 * 1024 * 1024
LINE_COLUMN = "\x00line"


@dataclass
class Chunk:
    """Up to one batch worth of records from one input, with their starting line numbers."""

    records: list[bytes]
    lines: list[int]
    errors: list[RowError] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # what decoding needs (CSV header …)
    bytes_read: int = 0


@dataclass
class Parsed:
    """Decoded records: string columns, and for each row the index of its record."""

    strings: pa.Table
    rows: np.ndarray
    errors: list[RowError]


# -- framing ------------------------------------------------------------------------------
class _Lines:
    """Physical lines of a byte stream, read in large blocks, numbered from 1."""

    def __init__(self, stream: BinaryIO, counter: Callable[[], int] | None = None) -> None:
        self.stream = stream
        self.lineno = 0
        self.bytes_read = 0
        self.counter = counter

    def raw_blocks(self) -> Iterator[bytes]:
        """Large runs of whole lines (without the final newline), in order."""
        tail = b""
        while True:
            try:
                block = self.stream.read(BLOCK_BYTES)
            except EOFError as exc:  # gzip stream cut short
                raise InputError(f"the file is truncated ({exc})") from exc
            except OSError as exc:
                raise InputError(f"cannot read the file: {exc}") from exc
            self.bytes_read = self.counter() if self.counter else self.bytes_read + len(block)
            if not block:
                if tail:
                    yield tail
                return
            data = tail + block
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            tail = data[cut + 1 :]
            yield data[:cut]

    def blocks(self) -> Iterator[list[bytes]]:
        for raw in self.raw_blocks():
            yield raw.split(b"\n")


def fast_lines(
    buf: bytes, base: int, quotes: bool
) -> tuple[list[bytes], list[int], list[RowError]] | None:
    """Split a run of whole lines into records with NumPy doing the per-line checks.

    Returns None when a line needs the careful path (a quote left open: odd number of
    ``"``), else (records, their line numbers, errors for oversized lines). Blank lines are
    skipped and a trailing CR is dropped.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    bad_utf8: set[int] = set()
    if not buf.isascii():
        try:
            buf.decode("utf-8")
        except UnicodeDecodeError:
            for i, part in enumerate(buf.split(b"\n")):
                if not part.isascii() and not _is_utf8(part):
                    bad_utf8.add(i)
    n = len(ends) + 1
    if quotes:
        q = np.flatnonzero(arr == 34)
        if len(q):
            per_line = np.bincount(np.searchsorted(ends, q), minlength=n)
            if (per_line & 1).any():
                return None
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(arr)]))
    lengths = stops - starts
    parts = buf.split(b"\n")
    if len(arr):
        for i in np.flatnonzero((lengths > 0) & (arr[np.maximum(stops - 1, 0)] == 13)).tolist():
            parts[i] = parts[i][:-1]
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(n, np.uint8)
    suspect = np.flatnonzero((lengths == 0) | (first == 32) | (first == 9) | (first == 13))
    drop = {int(i) for i in suspect if not parts[i].strip()}
    long = np.flatnonzero(lengths > MAX_RECORD_BYTES)
    errors = [RowError(base + int(i) + 1, _framing_error(0, parts[i]) or "too long") for i in long]
    drop.update(int(i) for i in long)
    for i in sorted(bad_utf8 - drop):
        errors.append(RowError(base + i + 1, "not valid UTF-8 (wrong encoding?)"))
        drop.add(i)
    if not drop:
        return parts, list(range(base + 1, base + 1 + n)), errors
    keep = [i for i in range(n) if i not in drop]
    return [parts[i] for i in keep], [base + 1 + i for i in keep], errors


def _framing_error(start: int, rec: bytes) -> str | None:
    if len(rec) > MAX_RECORD_BYTES:
        return f"record is {len(rec):,} bytes, longer than the limit of {MAX_RECORD_BYTES:,}"
    return None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_chunks(lines: _Lines, batch: int, first: int = 0) -> Iterator[Chunk]:
    """One record per non-empty line (NDJSON, FHIR NDJSON)."""
    chunk = Chunk([], [])
    for raw in lines.raw_blocks():
        fast = fast_lines(raw, lines.lineno, quotes=False)
        assert fast is not None  # only the quote check can refuse a block
        recs, nums, errs = fast
        lines.lineno += raw.count(b"\n") + 1
        chunk.records.extend(recs)
        chunk.lines.extend(nums)
        chunk.errors.extend(errs)
        while len(chunk.records) >= batch:
            full, chunk = _split(chunk, batch)
            yield _finish(full, lines)
    if chunk.records or chunk.errors:
        yield _finish(chunk, lines)


def _split(chunk: Chunk, batch: int) -> tuple[Chunk, Chunk]:
    """The first ``batch`` records (with the errors on lines before the next record), and
    the rest."""
    head = Chunk(chunk.records[:batch], chunk.lines[:batch])
    rest = Chunk(chunk.records[batch:], chunk.lines[batch:])
    cut = rest.lines[0] if rest.lines else float("inf")
    head.errors = [e for e in chunk.errors if e.line < cut]
    rest.errors = [e for e in chunk.errors if e.line >= cut]
    return head, rest


def _finish(chunk: Chunk, lines: _Lines) -> Chunk:
    chunk.errors.sort(key=lambda e: e.line)
    chunk.bytes_read = lines.bytes_read
    return chunk


def csv_chunks(lines: _Lines, batch: int) -> Iterator[Chunk]:
    """CSV records, quote-aware: a record continues while a quoted value is open.

    A line with an odd number of ``"`` opens (or closes) a quoted value. A record whose quote
    never closes within :data:`MAX_QUOTED_LINES` lines or :data:`MAX_RECORD_BYTES` bytes, or
    before the end of the file, is reported at its first line and the lines after it are
    read again as records of their own, so one stray quote costs one row, not the file.
    """
    header: bytes | None = None
    header_line = 0
    chunk = Chunk([], [])
    open_rec: list[tuple[int, bytes]] = []
    open_bytes = 0
    meta: dict[str, Any] = {}

    def delim_byte() -> int:
        return ord(meta.get("delimiter", ","))

    def emit(start: int, rec: bytes) -> None:
        nonlocal header, header_line
        if rec.endswith(b"\r"):
            rec = rec[:-1]
        if not rec.strip():
            return
        if header is None:
            header, header_line = rec, start
            meta.update(csv_header_meta(rec))
            return
        why = _framing_error(start, rec)
        if why is None and not rec.isascii() and not _is_utf8(rec):
            why = "not valid UTF-8 (wrong encoding?)"
        if why:
            chunk.errors.append(RowError(start, why))
        else:
            chunk.records.append(rec)
            chunk.lines.append(start)

    def feed(items: list[tuple[int, bytes]]) -> None:
        nonlocal open_rec, open_bytes
        queue = list(reversed(items))
        while queue:
            no, ln = queue.pop()
            odd = ln.count(b'"') & 1
            if not open_rec:
                if odd and _opens_quote(ln, delim_byte()):
                    open_rec = [(no, ln)]
                    open_bytes = len(ln)
                else:
                    emit(no, ln)
                continue
            open_rec.append((no, ln))
            open_bytes += len(ln) + 1
            if odd:
                emit(open_rec[0][0], b"\n".join(x[1] for x in open_rec))
                open_rec = []
            elif len(open_rec) > MAX_QUOTED_LINES or open_bytes > MAX_RECORD_BYTES:
                start = open_rec[0][0]
                chunk.errors.append(
                    RowError(start, "a quoted value is never closed (stray quote?)")
                )
                rest = open_rec[1:]
                open_rec = []
                queue.extend(reversed(rest))

    yielded = False
    for raw in lines.raw_blocks():
        while header is None and raw:  # the header line(s) first, then the fast path
            first, _sep, raw = raw.partition(b"\n")
            lines.lineno += 1
            feed([(lines.lineno, first)])
            if open_rec:  # a quoted header spanning lines: read the rest line by line
                raw = raw
                break
        if not raw:
            continue
        base = lines.lineno
        fast = None if (header is None or open_rec) else fast_lines(raw, base, quotes=True)
        if fast is not None:
            recs, nums, errs = fast
            lines.lineno = base + raw.count(b"\n") + 1
            chunk.records.extend(recs)
            chunk.lines.extend(nums)
            chunk.errors.extend(errs)
            while len(chunk.records) >= batch:
                full, chunk = _split(chunk, batch)
                yield _finish_csv(full, lines, meta)
                yielded = True
            continue
        block = raw.split(b"\n")
        lines.lineno += len(block)
        slow = header is None or bool(open_rec)
        recs, nums, errs = chunk.records, chunk.lines, chunk.errors
        # Fast path for the common line: no open quote before it and an even number of
        # quotes in it, so it is one whole record. Anything else goes through feed().
        for i, ln in enumerate(block):
            if slow or (b'"' in ln and ln.count(b'"') & 1):
                feed([(base + i + 1, ln)])
                slow = header is None or bool(open_rec)
                recs, nums, errs = chunk.records, chunk.lines, chunk.errors
                continue
            if ln[-1:] == b"\r":
                ln = ln[:-1]
            if len(ln) > MAX_RECORD_BYTES:
                errs.append(RowError(base + i + 1, _framing_error(0, ln) or "too long"))
            elif not ln.isascii() and not _is_utf8(ln):
                errs.append(RowError(base + i + 1, "not valid UTF-8 (wrong encoding?)"))
            elif ln and not ln.isspace():
                recs.append(ln)
                nums.append(base + i + 1)
        while len(chunk.records) >= batch:
            full, chunk = _split(chunk, batch)
            yield _finish_csv(full, lines, meta)
            yielded = True
    if open_rec:
        start = open_rec[0][0]
        rest = open_rec[1:]
        open_rec = []
        chunk.errors.append(
            RowError(start, "a quoted value is not closed at the end of the file (truncated?)")
        )
        feed(rest)
        if open_rec:  # the re-read lines opened another quote: give up on them too
            chunk.errors.append(RowError(open_rec[0][0], "a quoted value is never closed"))
    if header is None:
        raise InputError("the file is empty (no header row)")
    if chunk.records or chunk.errors or not yielded:
        yield _finish_csv(chunk, lines, meta)


def _finish_csv(chunk: Chunk, lines: _Lines, meta: dict[str, Any]) -> Chunk:
    chunk.meta = {"format": "csv", **meta}
    return _finish(chunk, lines)


def _opens_quote(line: bytes, delim: int) -> bool:
    """Whether a CSV line ends inside a quoted value (a quote counts only at a field's start)."""
    quoted = False
    at_start = True
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quoted:
            if c == 34:  # '"'
                if i + 1 < n and line[i + 1] == 34:
                    i += 1
                else:
                    quoted = False
        elif c == delim:
            at_start = True
            i += 1
            continue
        elif c == 34 and at_start:
            quoted = True
        at_start = False
        i += 1
    return quoted


def csv_header_meta(header: bytes) -> dict[str, Any]:
    """Parse and check a CSV header line; what the batch header records about it."""
    if header.startswith(b"\xef\xbb\xbf"):
        header = header[3:]
    if header.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16; save it as UTF-8")
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("the header row is not valid UTF-8 (wrong encoding?)") from exc
    delimiter = "\t" if text.count("\t") > text.count(",") else ","
    names = [h.strip() for h in next(csv.reader([text], delimiter=delimiter))]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"the header names column {name!r} twice")
        seen.add(name)
    missing = [
        c
        for c in ("event_id", "source", "seq", "ts", "account_id", "action", "outcome")
        if c not in seen
    ]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    return {"header": text, "delimiter": delimiter}


def parquet_chunks(path: Any, batch: int) -> Iterator[Chunk]:
    """Parquet rows as lines of canonical CSV (all columns, timestamps ISO-8601, UTF-8).

    Parquet has no per-row bytes to seal, so each row is sealed in this canonical form and
    the batch header carries the SHA-256 of the Parquet file itself.
    """
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"not a readable Parquet file (truncated?): {exc}") from exc
    names = pf.schema_arrow.names
    missing = [
        c
        for c in ("event_id", "source", "seq", "ts", "account_id", "action", "outcome")
        if c not in names
    ]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    row = 0
    header_meta: dict[str, Any] | None = None
    total_rows = max(pf.metadata.num_rows, 1)
    size = Path(path).stat().st_size
    try:
        for rb in pf.iter_batches(batch_size=batch):
            table = _canonical_strings(pa.Table.from_batches([rb]))
            buf = io.BytesIO()
            pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
            holder = _Lines(io.BytesIO(buf.getvalue()))
            for ch in csv_chunks(holder, batch=1 << 62):
                header_meta = header_meta or ch.meta
                # lines of the canonical CSV count the header; Parquet rows count from 1
                ch.lines = [row + ln - 1 for ln in ch.lines]
                ch.errors = [RowError(row + e.line - 1, e.reason) for e in ch.errors]
                ch.meta = {**header_meta, "origin": "parquet"}
                ch.bytes_read = size * min(row + rb.num_rows, total_rows) // total_rows
                yield ch
            row += rb.num_rows
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not a readable Parquet file (truncated?): {exc}") from exc


_ISO_UTC = "%Y-%m-%dT%H:%M:%S%z"  # Arrow's %S carries the microseconds: 16:00:01.000000


def _iso_utc(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """``strftime(col, _ISO_UTC)`` of UTC microsecond timestamps, byte for byte, ~10x faster.

    Arrow's per-value ``strftime`` was the largest cost of Parquet ingestion (1.1 µs a row);
    casting the zone-less instants to text gives ``YYYY-MM-DD HH:MM:SS.ffffff`` in one pass,
    and two more make it the same canonical form (``T``, ``+0000``). A sample is compared
    with ``strftime`` first, so an Arrow whose cast formats differently falls back to it.
    """
    import pyarrow.compute as pc

    text = pc.cast(pc.cast(col, pa.timestamp("us")), pa.string())
    fast = pc.binary_join_element_wise(pc.utf8_replace_slice(text, 10, 11, "T"), "+0000", "")
    if not pc.strftime(col.slice(0, 64), format=_ISO_UTC).equals(fast.slice(0, 64)):
        return pc.strftime(col, format=_ISO_UTC)
    return fast


def _canonical_strings(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    cols, names = [], []
    for name, col in zip(table.column_names, table.columns, strict=True):
        t = col.type
        if pa.types.is_timestamp(t):
            if t.tz is None:
                col = pc.assume_timezone(col, "Asia/Hong_Kong")
            col = _iso_utc(pc.cast(col, pa.timestamp("us", tz="UTC")))
        elif pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_dictionary(t):
            col = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                pa.string(),
            )
        elif not pa.types.is_string(t):
            col = pc.cast(col, pa.string())
        cols.append(col)
        names.append(name)
    return pa.table(cols, names=names)


# -- FHIR Bundle: slice each resource's exact bytes out of the body --------------------
_TOKEN = None


def bundle_resources(body: bytes) -> tuple[list[bytes], list[int]]:
    """The exact bytes of each ``entry[].resource`` of a FHIR Bundle, with its line number.

    The Bundle is parsed once with :mod:`json` to be sure it is valid; a small scanner then
    finds where each resource object begins and ends, so the audit log seals the bytes the
    sender wrote rather than a re-serialisation.
    """
    import re

    global _TOKEN
    if _TOKEN is None:
        _TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as exc:
        raise InputError("the Bundle is not valid UTF-8") from exc
    except ValueError as exc:
        raise InputError(f"the Bundle is not valid JSON: {str(exc)[:80]}") from exc
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise InputError("expected a FHIR Bundle (resourceType Bundle)")
    if not isinstance(doc.get("entry", []), list):
        raise InputError("Bundle.entry is not a list")
    stack: list[str] = []  # container kinds: "{" or "["
    keys: list[str | None] = []  # the key of each open container within its parent
    last_key: str | None = None
    expect_key = False
    spans: list[tuple[int, int]] = []
    start = -1
    for m in _TOKEN.finditer(body):
        tok = m.group()
        ch = tok[:1]
        if ch == b'"':
            if stack and stack[-1] == "{" and expect_key:
                last_key = json.loads(tok)
            continue
        if ch in (b"{", b"["):
            parent_key = last_key if stack and stack[-1] == "{" else None
            # path Bundle{ entry[ {  resource{  → depth 3 object under key "resource"
            if (
                ch == b"{"
                and len(stack) == 3
                and parent_key == "resource"
                and keys[1] == "entry"
                and stack[:3] == ["{", "[", "{"]
            ):
                start = m.start()
            stack.append(ch.decode())
            keys.append(parent_key)
            expect_key = ch == b"{"
            last_key = None
        elif ch in (b"}", b"]"):
            if len(stack) == 4 and start >= 0 and ch == b"}" and keys[3] == "resource":
                spans.append((start, m.end()))
                start = -1
            stack.pop()
            keys.pop()
            expect_key = False
        elif ch == b":":
            expect_key = False
        elif ch == b",":
            expect_key = bool(stack) and stack[-1] == "{"
    records, lines = [], []
    line, pos = 1, 0
    for a, b in spans:
        line += body.count(b"\n", pos, a)
        pos = a
        records.append(body[a:b])
        lines.append(line)
    expected = sum(1 for e in doc.get("entry", []) if isinstance(e, dict) and "resource" in e)
    if len(records) != expected:  # cannot happen for valid JSON; guard the scanner anyway
        raise InputError("could not locate every Bundle.entry.resource")
    return records, lines


# -- decoding -----------------------------------------------------------------------------
def decode_csv(meta: dict[str, Any], records: list[bytes], lines: list[int]) -> Parsed:
    """Parse CSV records against the batch's header with Arrow's CSV reader in one call.

    Each record is prefixed with its index as an extra first column, so rows that Arrow
    skips (wrong number of fields) are reported precisely and the survivors map back to
    their records without per-row Python. A record that Arrow reads as anything but exactly
    one row (only possible for malformed quoting) is reported rather than guessed at.
    """
    import pyarrow.compute as pc

    delim = meta["delimiter"]
    names = [h.strip() for h in next(csv.reader([meta["header"]], delimiter=delim))]
    n = len(records)
    if n == 0:
        return Parsed(string_table({}, 0), np.zeros(0, np.int64), [])
    width = len(names)
    wanted = {f"\x01{i}": name for i, name in enumerate(names) if name in COLUMNS}
    fast = _decode_csv_plain(records, delim, width, wanted)
    if fast is not None:
        return fast
    d = delim.encode()
    buf = b"\n".join([b"%d%s%s" % (i, d, r) for i, r in enumerate(records)])
    reported: dict[int, str] = {}

    def invalid(row: Any) -> str:
        head = row.text.split(delim, 1)[0]
        if head.isdigit() and int(head) < n:
            reported.setdefault(
                int(head), f"has {row.actual_columns - 1} fields, the header has {width}"
            )
        return "skip"

    column_names = [LINE_COLUMN, *[f"\x01{i}" for i in range(width)]]
    try:
        table = pacsv.read_csv(
            io.BytesIO(buf),
            read_options=pacsv.ReadOptions(
                column_names=column_names, use_threads=False, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delim, newlines_in_values=True, invalid_row_handler=invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in column_names},
                include_columns=[LINE_COLUMN, *wanted],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InputError(f"unreadable CSV: {exc}") from exc
    idx_text = table.column(LINE_COLUMN)
    numeric = pc.fill_null(pc.match_substring_regex(idx_text, r"^[0-9]{1,12}$"), False)
    idx = pc.cast(pc.if_else(numeric, idx_text, pa.scalar("-1")), pa.int64()).to_numpy()
    ok = (idx >= 0) & (idx < n)
    counts = np.bincount(idx[ok], minlength=n)
    ok &= counts[np.where(ok, idx, 0)] == 1  # a record read as exactly one row
    if not ok.all():
        table = table.filter(pa.array(ok))
        idx = idx[ok]
    for i in np.flatnonzero(counts != 1):
        reported.setdefault(int(i), "cannot be read as one CSV record (misplaced quote?)")
    errors = sorted((RowError(lines[i], why) for i, why in reported.items()), key=lambda e: e.line)
    strings = string_table({wanted[c]: table.column(c) for c in wanted}, table.num_rows)
    return Parsed(strings, idx.astype(np.int64), errors)


def _decode_csv_plain(
    records: list[bytes], delim: str, width: int, wanted: dict[str, str]
) -> Parsed | None:
    """Parse without the index column; valid only if Arrow returns one row per record and
    rejects none. Returns None when that is not so (the caller then takes the exact path)."""
    trouble = False

    def invalid(row: Any) -> str:
        nonlocal trouble
        trouble = True
        return "skip"

    names = [f"\x01{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(b"\n".join(records)),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=True, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delim, newlines_in_values=True, invalid_row_handler=invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                include_columns=list(wanted),
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if trouble or table.num_rows != len(records):
        return None
    strings = string_table({wanted[c]: table.column(c) for c in wanted}, table.num_rows)
    return Parsed(strings, np.arange(len(records), dtype=np.int64), [])


def _cell(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    if type(v) is int:
        return str(v)
    if type(v) is float and v.is_integer():
        return str(int(v))
    raise TypeError


def decode_ndjson(records: list[bytes], lines: list[int]) -> Parsed:
    """One JSON object per record with the spec's keys; numbers are accepted for seq."""
    loads = json.loads
    out: list[tuple[Any, ...]] = []
    rows: list[int] = []
    errors: list[RowError] = []
    cols = COLUMNS
    for i, rec in enumerate(records):
        try:
            obj = loads(rec)
        except UnicodeDecodeError:
            errors.append(RowError(lines[i], "not valid UTF-8 (wrong encoding?)"))
            continue
        except ValueError as exc:
            errors.append(RowError(lines[i], f"not valid JSON ({str(exc).split(':')[0]})"))
            continue
        if type(obj) is not dict:
            errors.append(RowError(lines[i], "not a JSON object"))
            continue
        try:
            out.append(tuple([_cell(obj.get(c)) for c in cols]))
        except TypeError:
            bad = next(c for c in cols if not isinstance(obj.get(c), (str, int, float, type(None))))
            errors.append(RowError(lines[i], f"{bad} must be a string"))
            continue
        rows.append(i)
    return _from_tuples(out, rows, errors)


def _from_tuples(out: list[tuple[Any, ...]], rows: list[int], errors: list[RowError]) -> Parsed:
    n = len(out)
    if n:
        columns = {c: list(v) for c, v in zip(COLUMNS, zip(*out, strict=True), strict=True)}
    else:
        columns = {}
    return Parsed(string_table(columns, n), np.asarray(rows, dtype=np.int64), errors)


def decode_fhir(records: list[bytes], lines: list[int]) -> Parsed:
    from phiguard.audit.fhir import FhirError, audit_event_to_row

    out: list[tuple[Any, ...]] = []
    rows: list[int] = []
    errors: list[RowError] = []
    for i, rec in enumerate(records):
        try:
            obj = json.loads(rec)
        except UnicodeDecodeError:
            errors.append(RowError(lines[i], "not valid UTF-8 (wrong encoding?)"))
            continue
        except ValueError as exc:
            errors.append(RowError(lines[i], f"not valid JSON ({str(exc).split(':')[0]})"))
            continue
        try:
            row = audit_event_to_row(obj)
        except FhirError as exc:
            errors.append(RowError(lines[i], f"invalid FHIR AuditEvent: {exc}"))
            continue
        out.append(tuple(row.get(c) for c in COLUMNS))
        rows.append(i)
    return _from_tuples(out, rows, errors)


def decode_syslog(records: list[bytes], lines: list[int]) -> Parsed:
    from phiguard.audit.ingest_syslog import SyslogError, message_to_row

    out: list[tuple[Any, ...]] = []
    rows: list[int] = []
    errors: list[RowError] = []
    for i, rec in enumerate(records):
        try:
            row = message_to_row(rec)
        except SyslogError as exc:
            errors.append(RowError(lines[i], str(exc)))
            continue
        out.append(tuple(row.get(c) for c in COLUMNS))
        rows.append(i)
    return _from_tuples(out, rows, errors)


def decode(meta: dict[str, Any], records: list[bytes], lines: list[int]) -> Parsed:
    """Decode records of any format; ``meta`` is the batch header (format and context)."""
    fmt = meta["format"]
    if fmt == "csv":
        return decode_csv(meta, records, lines)
    if fmt == "ndjson":
        return decode_ndjson(records, lines)
    if fmt == "fhir":
        return decode_fhir(records, lines)
    if fmt == "syslog":
        return decode_syslog(records, lines)
    raise InputError(f"unknown record format {fmt!r}")
