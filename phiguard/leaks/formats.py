"""Format helpers for the leak readers: sniffing a format from its first bytes, finding the
delimiter of a text table, the records of a JSON document, and the HTML table reader."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from phiguard.leaks.streams import detect_encoding, looks_binary

if TYPE_CHECKING:
    from phiguard.leaks.readers import FileInfo, Unit


def reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:120]


def sniff(sample: bytes, name: str) -> str:
    head = sample[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if sample.startswith(b"PK\x03\x04") or sample.startswith(b"PK\x05\x06"):
        return (
            "xlsx"
            if b"xl/" in sample[:SAMPLE_ZIP] or name.lower().endswith((".xlsx", ".xlsm"))
            else "zip"
        )
    if sample.startswith(b"\x1f\x8b"):
        return "gzip"
    if sample.startswith(b"%PDF"):
        return "pdf"
    low = head[:256].lower()
    if low.startswith((b"<!doctype html", b"<html")) or b"<table" in sample[:4096].lower():
        return "html"
    enc = detect_encoding(sample)
    if looks_binary(sample, enc):
        return "binary"
    if head[:1] in {b"[", b"{"} or (
        enc.startswith("utf-16") and sample.decode(enc, "replace").lstrip("\ufeff \r\n")[:1] in "[{"
    ):
        return "ndjson" if is_ndjson(sample) else "json"
    return "text"


SAMPLE_ZIP = 4096


def is_ndjson(sample: bytes) -> bool:
    lines = [x for x in sample.splitlines() if x.strip()][:3]
    if len(lines) < 2 or not lines[0].lstrip().startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(lines[0]), dict) and isinstance(json.loads(lines[1]), dict)
    except ValueError:
        return False


def delimiter(sample_text: str) -> str | None:
    lines = [x for x in sample_text.splitlines()[:30] if x.strip()]
    if len(lines) > 2:
        lines = lines[:-1]  # the last sampled line may be cut
    if len(lines) < 2:
        return None
    best, best_score = None, 0.0
    for d in (",", "\t", ";", "|"):
        counts = [_count_outside_quotes(x, d) for x in lines]
        mode = max(set(counts), key=counts.count)
        if mode < 1:
            continue
        share = counts.count(mode) / len(counts)
        if share >= 0.8 and share * (1 + min(mode, 10) / 10) > best_score:
            best, best_score = d, share * (1 + min(mode, 10) / 10)
    return best


def _count_outside_quotes(line: str, d: str) -> int:
    n, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == d and not quoted:
            n += 1
    return n


def json_rows(doc: Any) -> list[Any]:
    """The records of a JSON document: a top-level list, or the largest list of objects
    anywhere inside (``{"data": {"patients": [...]}}``), or the document itself."""
    if isinstance(doc, list):
        return doc
    best: list[Any] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            if sum(isinstance(x, dict) for x in node) > len(best):
                best = node
            stack.extend(x for x in node if isinstance(x, (dict, list)))
    return best or [doc]


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = " , ".join(
                json.dumps(x, ensure_ascii=False) if isinstance(x, (dict, list)) else str(x)
                for x in v
            )
        elif v is not None:
            out[key] = str(v)
    return out


class HtmlTables(HTMLParser):
    """Table rows as :class:`Row` units, the text around them as :class:`Text` units."""

    def __init__(self, info: FileInfo) -> None:
        super().__init__(convert_charrefs=True)
        from phiguard.leaks.readers import Row, Text  # the unit types live with the reader

        self._row, self._text = Row, Text
        self.info = info
        self.out: list[Unit] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.text: list[str] = []
        self.tables = 0
        self.rows = 0
        self.lines = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables += 1
        elif tag == "tr":
            self.row = []
        elif tag in {"td", "th"}:
            self.cell = []
        elif tag in {"br", "p", "div", "li"}:
            self._flush_text()

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if any(self.row):
                self.rows += 1
                self.out.append(
                    self._row(
                        self.info,
                        f"{self.info.path}#t{self.tables}",
                        f"{self.info.path}:table{self.tables}.{self.rows}",
                        self.row,
                    )
                )
            self.row = None
        elif tag in {"p", "div", "li", "table"}:
            self._flush_text()

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.text.append(data)

    def _flush_text(self) -> None:
        joined = " ".join("".join(self.text).split())
        self.text = []
        if joined:
            self.lines += 1
            self.out.append(self._text(self.info, f"{self.info.path}:text{self.lines}", joined))

    def drain(self) -> list[Unit]:
        out, self.out = self.out, []
        return out
