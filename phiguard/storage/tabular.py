"""Readers for the tabular inputs of spec §1: CSV (header row), Parquet, NDJSON.

Each yields ``(line, row)`` where ``line`` is the 1-based physical line of the row in the
file (the header is line 1 in CSV; Parquet rows count from 1) so errors point a person at
the right place, and ``row`` maps column names to strings (or ``None``). A row that cannot be
decoded is yielded as a :class:`BadRow` instead of stopping the read: the caller counts it
and goes on. Extra columns are kept; callers ignore what they do not know.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phiguard.errors import InputError

FORMATS = ("csv", "parquet", "ndjson")
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


Row = dict[str, str | None]


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".gz",):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return "ndjson"
    raise InputError(f"{path.name}: unknown file type (expected .csv, .parquet or .ndjson)")


class CountingReader(io.RawIOBase):
    """Wraps a binary file and counts bytes read, for progress bars."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)
        self.count += n
        return n


def _has_surrogates(values: Any) -> bool:
    if "".join(values).isascii():  # the common case, checked in one C call
        return False
    for v in values:
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _open_text(counter: CountingReader) -> io.TextIOWrapper:
    buffered = io.BufferedReader(counter, buffer_size=1 << 20)
    # surrogateescape keeps undecodable bytes as lone surrogates: the row is then reported
    # as "not valid UTF-8" with its line number instead of aborting the whole file.
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")


def read_csv(
    counter: CountingReader, *, required: tuple[str, ...] = ()
) -> Iterator[tuple[int, Row | BadRow]]:
    """Rows of a CSV or TSV file; the delimiter is read off the header line."""
    text = _open_text(counter)
    first = text.readline()
    if not first.strip():
        raise InputError("file is empty (no header row)")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    if _has_surrogates(header):
        raise InputError("header row is not valid UTF-8")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    yield from csv_records(reader, header)


def csv_records(
    reader: Any, header: list[str], line_offset: int = 0
) -> Iterator[tuple[int, Row | BadRow]]:
    """The rows of a ``csv.reader`` positioned after the header; ``line_offset`` is added to
    the reader's line count (for a block that starts further into the file)."""
    width = len(header)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num + line_offset
            yield line, BadRow(line, f"unreadable CSV: {exc}")
            continue
        line = reader.line_num + line_offset  # the physical line on which this record ends
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if _has_surrogates(values):
            yield line, BadRow(line, "not valid UTF-8 (wrong encoding?)")
        elif len(values) != width:
            yield line, BadRow(line, f"has {len(values)} fields, the header has {width}")
        else:
            yield line, {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)}


@dataclass(frozen=True)
class CsvLayout:
    """Where the data of a plain (uncompressed) CSV file starts, for block-wise readers."""

    header: list[str]
    delimiter: str
    data_offset: int  # byte offset of the first data line; the header is line 1


def csv_layout(path: Path, *, required: tuple[str, ...] = ()) -> CsvLayout | None:
    """The header of a plain CSV file, checked as :func:`read_csv` checks it; ``None`` when
    the file needs the sequential reader (compressed, or a header line that is not a plain
    ``\\n``-terminated line)."""
    if path.name.lower().endswith(".gz"):
        return None
    with path.open("rb") as f:
        raw = f.readline(MAX_LINE_BYTES)
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    # quoted names ("patient_id","hkid",… as many exporters write them) are fine as long as
    # every quote pairs up on this line; anything else goes to the sequential reader
    if not raw.endswith(b"\n") or b"\r" in body or body.count(b'"') % 2:
        return None
    first = raw.decode("utf-8-sig", errors="surrogateescape")
    if not first.strip():
        raise InputError("file is empty (no header row)")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    try:
        names = next(csv.reader([first], delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    header = [h.strip() for h in names]
    if _has_surrogates(header):
        raise InputError("header row is not valid UTF-8")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    return CsvLayout(header, delimiter, len(raw))


def read_ndjson(
    counter: CountingReader, *, required: tuple[str, ...] = ()
) -> Iterator[tuple[int, Row | BadRow]]:
    buffered = io.BufferedReader(counter, buffer_size=1 << 20)
    for line_no, raw in enumerate(buffered, start=1):
        if len(raw) > MAX_LINE_BYTES:
            yield line_no, BadRow(line_no, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            yield line_no, BadRow(line_no, "not valid UTF-8 (wrong encoding?)")
            continue
        except ValueError as exc:
            yield line_no, BadRow(line_no, f"not valid JSON: {str(exc)[:80]}")
            continue
        if not isinstance(obj, dict):
            yield line_no, BadRow(line_no, "not a JSON object")
            continue
        missing = [c for c in required if c not in obj]
        if missing:
            yield line_no, BadRow(line_no, f"missing field(s): {', '.join(missing)}")
            continue
        yield line_no, {k: _stringify(v) for k, v in obj.items()}


def read_parquet(
    path: Path, *, required: tuple[str, ...] = ()
) -> Iterator[tuple[int, Row | BadRow]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path.name}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}")
    line = 0
    for batch in pf.iter_batches(batch_size=65_536):
        cols = {n: batch.column(n).to_pylist() for n in batch.schema.names}
        for i in range(batch.num_rows):
            line += 1
            yield line, {n: _stringify(cols[n][i]) for n in cols}


def _stringify(v: Any) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    return str(v)


@dataclass
class TabularFile:
    """An open tabular input with a byte counter for progress."""

    path: Path
    format: str
    size: int
    _counter: CountingReader | None = None
    _compressed: io.BufferedIOBase | None = None  # the .gz file under the decompressor

    @property
    def bytes_read(self) -> int:
        """How far into the file on disk (compressed bytes for .gz), for progress bars."""
        if self.format == "parquet":
            return self.size
        if self._compressed is not None:
            return self.size if self._compressed.closed else self._compressed.tell()
        return self._counter.count if self._counter else 0

    def rows(self, *, required: tuple[str, ...] = ()) -> Iterator[tuple[int, Row | BadRow]]:
        """Yield ``(line, row_or_bad)``; CSV lines are physical lines, the header is line 1."""
        if self.format == "parquet":
            yield from read_parquet(self.path, required=required)
            return
        with self.path.open("rb") as raw:
            source: io.BufferedIOBase = raw
            if self.path.name.lower().endswith(".gz"):
                source = gzip.GzipFile(fileobj=raw)
                self._compressed = raw
            self._counter = CountingReader(source)
            if self.format == "csv":
                yield from read_csv(self._counter, required=required)
            else:
                yield from read_ndjson(self._counter, required=required)


def open_tabular(path: Path, fmt: str | None = None) -> TabularFile:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}")
    return TabularFile(path=path, format=fmt, size=path.stat().st_size)
