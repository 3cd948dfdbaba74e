"""Validated HKID and hospital-number extraction at memory speed, over raw bytes.

Regular expressions in Python walk the buffer one position at a time (20-40 MB/s for an HKID
pattern with its optional brackets). This module never loops in Python over bytes. It finds
every run of ASCII digits with NumPy (one pass to classify bytes, one to mark where runs
start and end), keeps the runs of the right length that follow a letter, lifts a small
window of bytes around each such run into a 2-D array, and parses and checksums *all*
candidates at once. The cost is a handful of vector passes over the buffer plus work
proportional to the number of candidates.

What it recognises (ASCII, any case): ``A123456(3)``, ``A123456[3]``, ``A1234563``,
``A123456 3``, ``AB123456(7)``, the full-width bracket ``A123456（3）``; hospital numbers in
phiguard's default shape ``HN`` + 8 digits + check character. The identifier must stand
alone: no letter or digit right before or right after it. Masked HKIDs are not identifiers
one can validate; the record-level detectors (:mod:`phiguard.leaks.detectors`) find them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# full-width brackets in UTF-8
_FW_OPEN = (0xEF, 0xBC, 0x88)
_FW_CLOSE = (0xEF, 0xBC, 0x89)
# A candidate never spans more than this many bytes; chunk boundaries keep this much overlap.
MAX_SPAN = 24
_CONTEXT = 4  # bytes kept before a deferred run: prefix letters and the boundary
# Bytes read per scanned piece. The temporaries of a 1 MiB piece stay in the CPU caches:
# 1.3-1.5× faster than 8 MiB pieces on this machine (docs/bench/leaks.md).
CHUNK = 1 << 20


@dataclass
class Hits:
    """Identifiers found in a buffer.

    Valid ones are kept as NumPy arrays of canonical ASCII bytes (``b"A1234563"``,
    ``b"HN123456784"``), one array per scanned piece; :meth:`hkids` / :meth:`hospital_numbers`
    turn them into Python strings only when asked (that conversion costs more than the scan).
    """

    hkid_valid: list[np.ndarray] = field(default_factory=list)
    hkid_invalid: int = 0
    hospital_no_valid: list[np.ndarray] = field(default_factory=list)
    hospital_no_invalid: int = 0

    @property
    def hkid_valid_count(self) -> int:
        return sum(a.size for a in self.hkid_valid)

    @property
    def hospital_no_valid_count(self) -> int:
        return sum(a.size for a in self.hospital_no_valid)

    def hkids(self) -> list[str]:
        return [b.decode("ascii") for a in self.hkid_valid for b in a.tolist()]

    def hospital_numbers(self) -> list[str]:
        return [b.decode("ascii") for a in self.hospital_no_valid for b in a.tolist()]

    def extend(self, other: Hits) -> None:
        self.hkid_valid.extend(other.hkid_valid)
        self.hkid_invalid += other.hkid_invalid
        self.hospital_no_valid.extend(other.hospital_no_valid)
        self.hospital_no_invalid += other.hospital_no_invalid


def scan_buffer(
    buf: bytes | bytearray | memoryview, *, final: bool = True, skip: int = 0
) -> tuple[Hits, int]:
    """Find identifiers in ``buf``.

    Returns the hits and the offset up to which digit runs were examined: with
    ``final=False`` runs that start in the last :data:`MAX_SPAN` bytes are left for the next
    call. Runs starting before ``skip`` are ignored (they belong to the previous call; the
    bytes are passed again only as context for the letters in front of a run).
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    n = a.size
    hits = Hits()
    if n == 0:
        return hits, 0
    limit = n if final else max(0, n - MAX_SPAN)
    # pad so that windows may read past either end
    pad = np.zeros(n + 2 * MAX_SPAN, dtype=np.uint8)
    pad[MAX_SPAN : MAX_SPAN + n] = a
    isdig = _is_digit(pad)
    edge = np.flatnonzero(isdig[1:] != isdig[:-1]) + 1  # positions where digit-ness flips
    starts = edge[0::2]
    ends = edge[1::2]
    if starts.size > ends.size:  # cannot happen thanks to padding, kept for safety
        starts = starts[: ends.size]
    lengths = ends - starts
    rel = starts - MAX_SPAN
    keep = (lengths >= 6) & (lengths <= 9) & (rel < limit) & (rel >= skip)
    starts, lengths = starts[keep], lengths[keep]
    if starts.size == 0:
        return hits, limit
    letter1 = _is_letter(pad[starts - 1])
    starts, lengths = starts[letter1], lengths[letter1]
    if starts.size:
        w = _window(pad, starts)
        _hkids(w, lengths, hits)
        _hospital_numbers(w, lengths, hits)
    return hits, limit


_OFF = np.arange(-3, 14)  # window around a run of digits: 3 bytes before, 14 from its start
# mod-11 remainder -> expected check byte: 0 -> '0', 1 -> 'A', r -> 11 - r as a digit
_CHECK = np.array([48, 65, *(48 + 11 - r for r in range(2, 11))], dtype=np.uint8)


def _is_digit(b: np.ndarray) -> np.ndarray:
    return (b - 48) < 10


def _is_letter(b: np.ndarray) -> np.ndarray:
    return ((b & 0xDF) - 65) < 26


def _is_alnum(b: np.ndarray) -> np.ndarray:
    return _is_digit(b) | _is_letter(b)


def _window(pad: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The bytes at offsets -3 .. 13 around each run start, one *row per offset*: a gather
    of short rows (cheap) transposed once, so that every test below reads a contiguous row
    instead of a column strided across candidates (~15× faster per test)."""
    return np.ascontiguousarray(sliding_window_view(pad, _OFF.size)[starts + _OFF[0]].T)


def _checksum(w: np.ndarray, first: int, weights: tuple[int, ...], base: np.ndarray) -> np.ndarray:
    """Expected check byte from ``base`` plus the digit rows ``first ..`` times ``weights``.
    int16 is enough (at most 255 × 44) and halves the memory traffic of int32."""
    total = base.astype(np.int16)
    for k, weight in enumerate(weights, start=first):
        total += w[k].astype(np.int16) * np.int16(weight)
    return _CHECK[total % 11]


def _hkids(w: np.ndarray, lengths: np.ndarray, hits: Hits) -> None:
    """HKID spellings among all candidates at once. No candidate is dropped before the end:
    compacting the 17-row window costs more than testing a few rows of extra candidates."""
    six, bare = lengths == 6, lengths == 7  # A1234563: the check is the seventh digit
    if not (six.any() or bare.any()):
        return
    # Row k holds, for every candidate, the byte at offset k - 3 from its first digit.
    lead, p2, p1 = w[0], w[1], w[2]
    c0, c1, c2, c3 = w[9], w[10], w[11], w[12]
    two = _is_letter(p2)
    ok = ~_is_alnum(np.where(two, lead, p2))  # a word boundary before the prefix
    is_chk1 = _is_digit(c1) | ((c1 & 0xDF) == 65)
    bracket = six & ((c0 == 40) | (c0 == 91)) & is_chk1 & ((c2 == 41) | (c2 == 93))
    spaced = six & (c0 == 32) & is_chk1  # A123456 3
    bare_a = six & ((c0 & 0xDF) == 65)  # A123456A
    fw = six & (c0 == _FW_OPEN[0]) & (c1 == _FW_OPEN[1]) & (c2 == _FW_OPEN[2])
    if fw.any():
        fw &= (_is_digit(c3) | ((c3 & 0xDF) == 65)) & (w[13] == _FW_CLOSE[0])
        fw &= (w[14] == _FW_CLOSE[1]) & (w[15] == _FW_CLOSE[2])
    chk = np.where(bare | bare_a, c0, np.where(fw, c3, c1))
    # the byte after an unbracketed identifier must not continue a word
    trail = np.where(spaced, c2, c1)
    found = ok & (bracket | fw | ((bare | bare_a | spaced) & ~_is_alnum(trail)))
    n_found = int(np.count_nonzero(found))
    if not n_found:
        return
    # letters count as 10 (A) .. 35 (Z); a missing first letter as 36 (space)
    first = np.where(two, (p2 & 0xDF).astype(np.int16) - 55, np.int16(36))
    base = first * 9 + ((p1 & 0xDF).astype(np.int16) - 55) * 8 - 48 * 27
    chk_up = np.where((chk & 0xDF) == 65, np.uint8(65), chk)
    valid = found & (_checksum(w, 3, (7, 6, 5, 4, 3, 2), base) == chk_up)
    n_valid = int(np.count_nonzero(valid))
    hits.hkid_invalid += n_found - n_valid
    if n_valid:
        # canonical form as fixed-width bytes: a one-letter HKID ends in a NUL pad, which
        # NumPy's 'S9' drops, so the array holds exactly 'A1234563' / 'AB1234567'
        wv, tw, cv = w[1:9].compress(valid, axis=1), two[valid], chk_up[valid]
        rows = np.empty((9, n_valid), dtype=np.uint8)  # built by rows, transposed once
        rows[0] = np.where(tw, wv[0], wv[1]) & 0xDF
        rows[1] = np.where(tw, wv[1] & 0xDF, wv[2])
        rows[2:7] = np.where(tw, wv[2:7], wv[3:8])
        rows[7] = np.where(tw, wv[7], cv)
        rows[8] = np.where(tw, cv, 0)
        hits.hkid_valid.append(np.ascontiguousarray(rows.T).view("S9").ravel())


def _hospital_numbers(w: np.ndarray, lengths: np.ndarray, hits: Hits) -> None:
    eight, nine = lengths == 8, lengths == 9
    if not (eight.any() or nine.any()):
        return
    # rows 0 .. 12 of the window: offsets -3 .. 9 from the first digit
    hn = ((w[1] & 0xDF) == ord("H")) & ((w[2] & 0xDF) == ord("N")) & ~_is_alnum(w[0])
    c = w[11]
    letter_chk = _is_letter(c)
    hn &= (nine | (eight & letter_chk)) & ~_is_alnum(w[12])
    n_hn = int(np.count_nonzero(hn))
    if not n_hn:
        return
    c = np.where(letter_chk, c & 0xDF, c)
    base = np.full(w.shape[1], -48 * 44, dtype=np.int16)  # 44 = 9 + 8 + … + 2
    valid = hn & (_checksum(w, 3, (9, 8, 7, 6, 5, 4, 3, 2), base) == c)
    n_valid = int(np.count_nonzero(valid))
    hits.hospital_no_invalid += n_hn - n_valid
    if n_valid:
        rows = np.empty((11, n_valid), dtype=np.uint8)
        rows[0], rows[1] = ord("H"), ord("N")
        rows[2:10] = w[3:11].compress(valid, axis=1)
        rows[10] = c[valid]
        hits.hospital_no_valid.append(np.ascontiguousarray(rows.T).view("S11").ravel())


def scan_chunks(chunks: Iterable[bytes]) -> Hits:
    """Scan a stream of byte chunks (any size) with bounded memory."""
    total = Hits()
    carry = b""
    skip = 0
    for chunk in chunks:
        if not chunk:
            continue
        buf = carry + chunk if carry else chunk
        found, upto = scan_buffer(buf, final=False, skip=skip)
        total.extend(found)
        back = min(upto, _CONTEXT)
        carry = bytes(buf[upto - back :])
        skip = back
    if carry:
        found, _ = scan_buffer(carry, final=True, skip=skip)
        total.extend(found)
    return total
