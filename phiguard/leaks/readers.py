"""Readers: any leaked file in, a stream of rows and text lines out.

Formats are recognised by their bytes, not their names: ZIP (and XLSX, which is a ZIP with a
workbook in it), gzip, PDF, HTML, JSON / NDJSON, delimited text (CSV, TSV, ``;`` or ``|``,
any quoting), plain text, and — when nothing fits — binary data, which is still searched
for HKIDs and hospital numbers byte by byte. Archives are opened recursively under the
:class:`~phiguard.leaks.streams.Limits` (total size, ratio, depth, member count).

A reader yields :class:`Row` and :class:`Text` units and fills its :class:`FileInfo`
(records, problems). A problem never stops the scan: it is written down and the rest is read,
so the result always says what was *not* read.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from phiguard.leaks.fastscan import CHUNK, Hits, scan_chunks
from phiguard.leaks.formats import (
    HtmlTables,
    delimiter,
    flatten,
    json_rows,
    reason,
    sniff,
)
from phiguard.leaks.streams import (
    BombError,
    Budget,
    Counting,
    DecodedText,
    Guarded,
    Limits,
    Prefixed,
    bounded_lines,
    detect_encoding,
    read_sample,
    text_stream,
)


@dataclass
class FileInfo:
    path: str
    bytes: int
    format: str = "unknown"
    records: int = 0
    encoding: str | None = None
    problems: list[str] = field(default_factory=list)
    sha256: str | None = None  # top-level files only: what exactly was scanned

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "bytes": self.bytes,
            "format": self.format,
            "records": self.records,
        }
        if self.encoding and self.encoding not in {"utf-8", "ascii"}:
            out["encoding"] = self.encoding
        if self.problems:
            out["not_read"] = self.problems
        return out


@dataclass(slots=True)
class Row:
    info: FileInfo
    table: str  # rows of one table share this key (file, sheet)
    where: str
    cells: list[str]
    header: list[str] | None = None  # set when the format names its columns (JSON, NDJSON)


@dataclass(slots=True)
class Text:
    info: FileInfo
    where: str
    text: str


@dataclass(slots=True)
class RawHits:
    """Identifiers found in bytes that are not text (binary junk, a database file)."""

    info: FileInfo
    where: str
    hits: Hits


Unit = Row | Text | RawHits


class Reader:
    """Reads the files of one scan; ``infos`` lists every file and member seen."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.budget = Budget(self.limits)
        self.infos: list[FileInfo] = []
        self.progress: Counting | None = None  # the top-level file being read

    def read_paths(self, paths: list[Path]) -> Iterator[Unit]:
        for path in paths:
            info = FileInfo(str(path), 0)
            self.infos.append(info)
            if not path.is_file():
                info.problems.append("no such file")
                continue
            info.bytes = path.stat().st_size
            if info.bytes == 0:
                info.format = "empty"
                info.problems.append("empty file: nothing to read")
                continue
            with path.open("rb") as raw:
                hasher = hashlib.sha256()
                self.progress = Counting(raw, hasher)
                stream = io.BufferedReader(self.progress, buffer_size=1 << 20)
                yield from self._guard(info, lambda s=stream, i=info: self._read(s, i, 0))
                for chunk in iter(lambda r=raw: r.read(1 << 20), b""):  # type: ignore[misc]
                    hasher.update(chunk)  # the part a reader did not need
                info.sha256 = hasher.hexdigest()

    def _guard(self, info: FileInfo, body: Any) -> Iterator[Unit]:
        try:
            yield from body()
        except BombError as exc:
            info.problems.append(str(exc))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            info.problems.append(f"stopped reading: {reason(exc)}; the rest was not read")
        except UnicodeError as exc:
            info.problems.append(f"stopped reading: cannot decode ({exc.__class__.__name__})")
        except RecursionError:
            info.problems.append("nested too deeply; not read")

    # -- dispatch ---------------------------------------------------------------------
    def _read(self, stream: BinaryIO, info: FileInfo, depth: int) -> Iterator[Unit]:
        sample, stream = read_sample(stream)
        if not sample:
            info.format = "empty"
            info.problems.append("empty file: nothing to read")
            return
        kind = sniff(sample, info.path)
        info.format = kind
        if kind in {"zip", "xlsx", "pdf", "json"}:
            data = stream.read(self.limits.max_in_memory + 1)
            if len(data) > self.limits.max_in_memory:
                too_big = f"larger than {self.limits.max_in_memory >> 20} MiB"
                if kind != "json":
                    info.problems.append(
                        f"{too_big}, which a {kind} file needs in memory: not read"
                    )
                    return
                # too big to parse whole: search it as free text, streaming
                info.problems.append(f"{too_big}: not parsed as JSON, searched as free text")
                info.format = "text"
                rest = io.BufferedReader(Prefixed(data, stream), 1 << 20)
                yield from self._text(rest, info, sample=sample, delimited=False)
                return
            if kind == "zip":
                yield from self._zip(data, info, depth)
            elif kind == "xlsx":
                yield from self._xlsx(data, info)
            elif kind == "pdf":
                yield from self._pdf(data, info)
            else:
                yield from self._json(data, info)
        elif kind == "gzip":
            yield from self._gzip(stream, info, depth)
        else:
            yield from self._text_like(stream, sample, info, kind)

    # -- archives -----------------------------------------------------------------------
    def _gzip(self, stream: BinaryIO, info: FileInfo, depth: int) -> Iterator[Unit]:
        if depth >= self.limits.max_depth:
            info.problems.append(f"archive nested deeper than {self.limits.max_depth}: not read")
            return
        base = info.path.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
        base = (
            base[:-3]
            if base.lower().endswith(".gz")
            else base[:-4]
            if base.lower().endswith(".tgz")
            else "data"
        )
        inner = FileInfo(f"{info.path}!{base}", 0)
        self.infos.append(inner)
        counted = Counting(stream)
        guarded = Guarded(gzip.GzipFile(fileobj=counted), counted, self.budget, inner.path)
        try:
            yield from self._guard(
                inner,
                lambda: self._read(io.BufferedReader(guarded, 1 << 20), inner, depth + 1),
            )
        finally:
            inner.bytes = guarded.count
        info.records = inner.records

    def _zip(self, data: bytes, info: FileInfo, depth: int) -> Iterator[Unit]:
        if depth >= self.limits.max_depth:
            info.problems.append(f"archive nested deeper than {self.limits.max_depth}: not read")
            return
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            info.problems.append("not a readable ZIP archive (truncated or damaged): not read")
            return
        with zf:
            for member in zf.infolist():
                if member.is_dir():
                    continue
                inner = FileInfo(f"{info.path}!{member.filename}", member.file_size)
                self.infos.append(inner)
                try:
                    self.budget.take_file(inner.path)
                except BombError as exc:
                    info.problems.append(str(exc))
                    return
                ratio = member.file_size / max(1, member.compress_size)
                if member.file_size > (1 << 20) and ratio > self.limits.max_ratio:
                    inner.problems.append(
                        f"compression ratio {ratio:.0f}:1 above {self.limits.max_ratio:.0f}:1 "
                        "(archive bomb?): not read"
                    )
                    continue
                if member.flag_bits & 0x1:
                    inner.problems.append("encrypted ZIP member: not read")
                    continue
                yield from self._guard(
                    inner, lambda m=member, i=inner: self._member(zf, m, i, depth)
                )
                info.records += inner.records

    def _member(
        self, zf: zipfile.ZipFile, member: zipfile.ZipInfo, inner: FileInfo, depth: int
    ) -> Iterator[Unit]:
        with zf.open(member) as raw:
            counted = Counting(raw)
            guarded = Guarded(counted, None, self.budget, inner.path, declared=member.file_size)
            yield from self._read(io.BufferedReader(guarded, 1 << 20), inner, depth + 1)

    # -- whole-file formats ---------------------------------------------------------------
    def _xlsx(self, data: bytes, info: FileInfo) -> Iterator[Unit]:
        import datetime as dt

        from openpyxl import load_workbook

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                total = sum(m.file_size for m in zf.infolist())
            if total > self.limits.max_in_memory * 4 or total > len(data) * self.limits.max_ratio:
                info.problems.append("workbook expands too far (archive bomb?): not read")
                return
            self.budget.take(total)
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except BombError:
            raise
        except Exception as exc:  # openpyxl raises many unrelated types for a bad workbook
            info.problems.append(f"not a readable XLSX workbook ({reason(exc)}): not read")
            return
        try:
            for ws in wb.worksheets:
                table = f"{info.path}!{ws.title}"
                for i, values in enumerate(ws.iter_rows(values_only=True), start=1):
                    cells = [
                        ""
                        if v is None
                        else (
                            v.date().isoformat()
                            if isinstance(v, dt.datetime)
                            else v.isoformat()
                            if isinstance(v, dt.date)
                            else str(v)
                        )
                        for v in values
                    ]
                    if any(cells):
                        yield Row(info, table, f"{info.path}:{ws.title}!{i}", cells)
        finally:
            wb.close()

    def _pdf(self, data: bytes, info: FileInfo) -> Iterator[Unit]:
        from pdfminer.high_level import extract_pages
        from pdfminer.layout import LTTextContainer

        pages = 0
        try:
            for pages, page in enumerate(extract_pages(io.BytesIO(data)), start=1):
                for element in page:
                    if isinstance(element, LTTextContainer):
                        for j, line in enumerate(element.get_text().splitlines(), start=1):
                            if line.strip():
                                yield Text(info, f"{info.path}:p{pages}.{j}", line)
        except Exception as exc:  # pdfminer raises many types for a damaged file
            info.problems.append(
                f"PDF unreadable after page {pages} ({reason(exc)}): rest not read"
            )
        if pages == 0 and not info.problems:
            info.problems.append("PDF has no text layer (scanned image?): not read")

    def _json(self, data: bytes, info: FileInfo) -> Iterator[Unit]:
        enc = detect_encoding(data[:65536])
        try:
            doc = json.loads(data.decode(enc, errors="replace"))
        except ValueError as exc:
            info.problems.append(f"not valid JSON ({str(exc)[:60]}): read as plain text instead")
            info.format = "text"
            yield from self._text(io.BytesIO(data), info, sample=data[:65536], delimited=False)
            return
        rows = json_rows(doc)
        for i, item in enumerate(rows, start=1):
            if isinstance(item, dict):
                flat = flatten(item)
                yield Row(
                    info,
                    f"{info.path}#json",
                    f"{info.path}:[{i}]",
                    list(flat.values()),
                    header=list(flat.keys()),
                )
            elif isinstance(item, str):
                yield Text(info, f"{info.path}:[{i}]", item)

    # -- line-based formats ---------------------------------------------------------------
    def _text_like(
        self, stream: BinaryIO, sample: bytes, info: FileInfo, kind: str
    ) -> Iterator[Unit]:
        if kind == "binary":
            info.problems.append(
                "binary data in no format phiguard reads: only searched byte by byte for HKIDs "
                "and hospital numbers"
            )
            hits = scan_chunks(iter(lambda: stream.read(CHUNK), b""))
            yield RawHits(info, info.path, hits)
            return
        if kind == "ndjson":
            yield from self._ndjson(stream, sample, info)
        elif kind == "html":
            yield from self._html(stream, sample, info)
        else:
            yield from self._text(stream, info, sample=sample)

    def _decoded(self, stream: BinaryIO, sample: bytes, info: FileInfo) -> DecodedText:
        enc = detect_encoding(sample)
        info.encoding = enc
        return text_stream(stream, enc)

    def _text(
        self, stream: BinaryIO, info: FileInfo, *, sample: bytes, delimited: bool = True
    ) -> Iterator[Unit]:
        text = self._decoded(stream, sample, info)
        lines = bounded_lines(text, self.limits.max_line_chars)
        sep = delimiter(sample.decode(info.encoding or "utf-8", errors="replace"))
        if delimited and info.format in {"text", "csv"} and sep:
            info.format = "tsv" if sep == "\t" else "csv"
            yield from self._csv(lines, sep, info)
        else:
            info.format = "text" if info.format in {"csv", "text"} else info.format
            overlong = 0
            for n, line, complete in lines:
                overlong += not complete
                if line.strip():
                    yield Text(info, f"{info.path}:{n}", line)
            if overlong:
                info.problems.append(
                    f"lines longer than {self.limits.max_line_chars} characters were read in pieces"
                )
        _count_replacements(text, info)

    def _csv(
        self, lines: Iterator[tuple[int, str, bool]], delimiter: str, info: FileInfo
    ) -> Iterator[Unit]:
        csv.field_size_limit(self.limits.max_line_chars)
        side: list[Text] = []
        state = {"line": 0}

        def feed() -> Iterator[str]:
            for n, line, complete in lines:
                state["line"] = n
                if complete:
                    yield line
                else:
                    side.append(Text(info, f"{info.path}:{n}", line))

        reader = csv.reader(feed(), delimiter=delimiter)
        overlong = set()
        table = f"{info.path}#csv"
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                info.problems.append(f"line {state['line']}: unreadable CSV ({exc}); skipped")
                continue
            for t in side:
                overlong.add(t.where)
                yield t
            side.clear()
            if any(c.strip() for c in cells):
                yield Row(info, table, f"{info.path}:{state['line']}", cells)
        for t in side:
            overlong.add(t.where)
            yield t
        if overlong:
            info.problems.append(
                f"{len(overlong)} line(s) longer than {self.limits.max_line_chars} characters: "
                "their columns were not read, only searched as free text"
            )

    def _ndjson(self, stream: BinaryIO, sample: bytes, info: FileInfo) -> Iterator[Unit]:
        text = self._decoded(stream, sample, info)
        bad = 0
        for n, line, complete in bounded_lines(text, self.limits.max_line_chars):
            if not line.strip():
                continue
            try:
                obj = json.loads(line) if complete else None
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                flat = flatten(obj)
                yield Row(
                    info,
                    f"{info.path}#ndjson",
                    f"{info.path}:{n}",
                    list(flat.values()),
                    header=list(flat.keys()),
                )
            else:
                bad += 1
                yield Text(info, f"{info.path}:{n}", line)
        if bad:
            info.problems.append(f"{bad} line(s) were not JSON objects: searched as free text")
        _count_replacements(text, info)

    def _html(self, stream: BinaryIO, sample: bytes, info: FileInfo) -> Iterator[Unit]:
        text = self._decoded(stream, sample, info)
        parser = HtmlTables(info)
        while True:
            chunk = text.read(1 << 20)
            if not chunk:
                break
            parser.feed(chunk)
            yield from parser.drain()
        parser.close()
        yield from parser.drain()
        _count_replacements(text, info)


# -- helpers ----------------------------------------------------------------------------
def _count_replacements(text: DecodedText, info: FileInfo) -> None:
    # errors="replace" keeps reading past bytes the encoding cannot decode; say so
    bad = text.replaced
    if bad:
        info.problems.append(f"{bad} characters could not be decoded as {info.encoding}")
