"""Byte streams for the leak readers: sniffing, encodings, bounded lines, archive-bomb guards.

Every reader works on a forward-only binary stream (a file, a ZIP member, a gzip stream) and
never holds more than a bounded buffer of it: lines are read with a length limit, and a line
longer than the limit is handed on in pieces instead of being assembled.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from charset_normalizer import from_bytes

from phiguard.errors import InputError

SAMPLE = 64 * 1024


@dataclass
class Limits:
    """Limits against archive bombs and monsters. Every one is reported when it bites."""

    max_total_bytes: int = 16 << 30  # uncompressed bytes read from all archives of one scan
    max_ratio: float = 250.0  # uncompressed / compressed, per compressed stream
    max_depth: int = 4  # archives inside archives
    max_files: int = 20_000  # members across all archives of one scan
    max_line_chars: int = 1 << 20  # a longer line is read in pieces as free text
    max_in_memory: int = 256 << 20  # formats that need the whole file (XLSX, PDF, JSON, ZIP in ZIP)


class BombError(InputError):
    """An archive expands beyond the limits; what was read before stays in the result."""


class Budget:
    """Counts uncompressed bytes and archive members across a whole scan."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.files = 0

    def take_file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise BombError(
                f"more than {self.limits.max_files} archive members: {name} and the rest not read"
            )

    def take(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_total_bytes:
            raise BombError(
                f"archives expand beyond {self.limits.max_total_bytes >> 20} MiB in total "
                "(archive bomb?)"
            )


class Counting(io.RawIOBase):
    """Counts the bytes read through it (compressed input, for progress and ratios)."""

    def __init__(self, raw: Any, hasher: Any = None) -> None:
        self.raw = raw
        self.count = 0
        self.hasher = hasher

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        if self.hasher is not None:
            self.hasher.update(data)
        return n


class Guarded(io.RawIOBase):
    """Decompressed bytes, checked against the scan budget and the compression ratio."""

    def __init__(
        self,
        inner: Any,
        compressed: Counting | None,
        budget: Budget,
        name: str,
        declared: int | None = None,
    ) -> None:
        self.inner = inner
        self.compressed = compressed
        self.budget = budget
        self.name = name
        self.declared = declared
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        # read1 hands over each decompressed piece as soon as it exists: a stream truncated
        # later still yields everything before the cut (read(n) would drop it with the error)
        reader = getattr(self.inner, "read1", None) or self.inner.read
        data = reader(min(len(b), 1 << 16))
        n = len(data)
        b[:n] = data
        self.count += n
        self.budget.take(n)
        if self.declared is not None and self.count > self.declared:
            raise BombError(
                f"{self.name}: expands beyond its declared size (forged archive header)"
            )
        if self.compressed is not None and self.count > (1 << 20):
            ratio = self.count / max(1, self.compressed.count)
            if ratio > self.budget.limits.max_ratio:
                raise BombError(
                    f"{self.name}: compression ratio above {self.budget.limits.max_ratio:.0f}:1 "
                    "(archive bomb?); the rest was not read"
                )
        return n


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read for sniffing."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self.prefix = prefix
        self.pos = 0
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.pos < len(self.prefix):
            n = min(len(b), len(self.prefix) - self.pos)
            b[:n] = self.prefix[self.pos : self.pos + n]
            self.pos += n
            return n
        data = self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def read_sample(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The first bytes of a stream, and a stream that still starts at the beginning."""
    chunks = []
    got = 0
    while got < SAMPLE:
        data = stream.read(SAMPLE - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    sample = b"".join(chunks)
    return sample, io.BufferedReader(Prefixed(sample, stream), buffer_size=1 << 20)


# -- encodings ----------------------------------------------------------------------------
_CANDIDATES = ["utf_8", "utf_16", "big5", "gb18030", "cp1252"]


def detect_encoding(sample: bytes) -> str:
    """UTF-8, UTF-16 (with or without BOM), Big5 or GB18030 — whatever the sample says."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    even = sample[0:2000:2]
    odd = sample[1:2000:2]
    if len(sample) >= 4:
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    try:
        _decode_prefix(sample, "utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(sample, cp_isolation=_CANDIDATES).best()
    if best is None:
        return "utf-8"
    enc = str(best.encoding)
    return "big5" if enc == "big5" else "gb18030" if enc in {"gb18030", "gb2312", "gbk"} else enc


def _decode_prefix(sample: bytes, enc: str) -> str:
    # a sample may end in the middle of a multi-byte character: decode incrementally
    return codecs.getincrementaldecoder(enc)("strict").decode(sample, final=False)


def looks_binary(sample: bytes, encoding: str) -> bool:
    if not sample or encoding.startswith("utf-16"):
        return False
    head = sample[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > 0.05 * len(head)


class DecodedText:
    """Text decoded with replacement characters for undecodable bytes — and a count of
    them, so a wrong or mixed encoding is reported instead of silently garbling names."""

    def __init__(self, buffered: BinaryIO, encoding: str) -> None:
        self._text = io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline="")
        self.replaced = 0

    def readline(self, limit: int = -1) -> str:
        line = self._text.readline(limit)
        if "\ufffd" in line:
            self.replaced += line.count("\ufffd")
        return line

    def read(self, n: int = -1) -> str:
        data = self._text.read(n)
        if "\ufffd" in data:
            self.replaced += data.count("\ufffd")
        return data


def text_stream(buffered: BinaryIO, encoding: str) -> DecodedText:
    return DecodedText(buffered, encoding)


def bounded_lines(text: DecodedText, limit: int) -> Iterator[tuple[int, str, bool]]:
    """``(line_number, text, complete)``. A line longer than ``limit`` characters comes out
    in pieces with ``complete=False``, cut at a separator where possible so that an
    identifier is not split; memory stays bounded whatever the file holds."""
    line_no = 0
    carry = ""
    while True:
        part = text.readline(limit)
        if not part:
            if carry:
                yield line_no, carry, False
            return
        if part.endswith(("\n", "\r")) or len(part) < limit:
            if carry:
                yield line_no, carry + part, False
                carry = ""
            else:
                line_no += 1
                yield line_no, part, True
            continue
        # an overlong line: emit pieces, keeping a tail that may hold a cut identifier
        if not carry:
            line_no += 1
        piece = carry + part
        cut = max(piece.rfind(c, len(piece) - 256) for c in ",;\t| ")
        if cut <= 0:
            cut = len(piece) - 32
        yield line_no, piece[:cut], False
        carry = piece[cut:]
