"""The bulk path of a patient-master-index import: CSV blocks, vectorised checks, tuples.

A 7.5-million-row PMI spends most of its time on per-field Python (HKID and hospital-number
check characters, dates, booleans) around the cryptography that cannot be avoided. Here a
block of the file (a few MB cut at line ends) is parsed by pyarrow and every column is checked
at once (regular expressions in Arrow, check characters and calendar dates with numpy). A
Python loop remains only for what is per row by nature: the JSON of the identifiers, one
AES-GCM token, the HMAC blind indexes and the row MAC. Rows come out as tuples in
:data:`PATIENT_COLUMNS` order, ready for ``executemany`` or ``COPY``.

Exactness: a row that any vectorised check does not accept goes through the ordinary
converter (:func:`phiguard.storage.converters.spec_for`), which gives the precise reason; a
block that Arrow might read differently from Python's ``csv`` module (odd quoting, NUL, lone
carriage returns, blank lines, wrong field counts, bad UTF-8) is read by the ``csv`` module
instead. Either way the rows, reasons and line numbers are those of the sequential reader.
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote
from pathlib import Path
from typing import Any

import numpy as np

from phiguard.app import App
from phiguard.storage import normalise as n
from phiguard.storage.tabular import BadRow, CsvLayout, csv_records

PATIENT_COLUMNS = (
    "patient_id",
    "pii",
    "hkid_bidx",
    "hospital_no_bidx",
    "surname_bidx",
    "address_bidx",
    "sex",
    "birth_year",
    "cluster",
    "has_phone",
    "has_address",
    "app_registered",
    "vip",
    "is_canary",
    "row_mac",
)
BLOCK_BYTES = 4 << 20
MAX_BLOCK_BYTES = 64 << 20  # cut here even if quotes look unbalanced (malformed file)
PII_CONTEXT = b"patient:pii"

_FIELD_START = frozenset(b",\t\n")
_FIELD_END = frozenset(b",\t\r\n")
_HKID = r"^[A-Z]{1,2}[0-9]{6}(\([0-9A]\)|[0-9A])$"
_HN_DEFAULT = r"^HN[0-9]{8}[0-9A-Z]$"
_CAPS_FIRST = r"^(?P<s>[A-Z0-9'.\-]*[A-Z][A-Z0-9'.\-]*)(?:[ ,]|$)"
_BOOLS = ["", "true", "false", "1", "0", "yes", "no", "y", "n", "t", "f"]
_TRUE = ["true", "1", "yes", "y", "t"]

Values = tuple[Any, ...]
Result = tuple[int, list[int] | None, list[Values | str]]  # first line, lines, values/reasons


@dataclass(frozen=True)
class Block:
    offset: int
    length: int
    first_line: int  # the physical line number of the block's first line


def _lines(data: bytes) -> int:
    """Physical lines as Python's ``newline=""`` reader counts them (\\n, \\r\\n, lone \\r)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def blocks(path: Path, layout: CsvLayout, size: int = BLOCK_BYTES) -> Iterator[Block]:
    """Cut the data part of ``path`` into blocks at line ends outside quoted fields."""
    with path.open("rb") as f:
        f.seek(layout.data_offset)
        offset, line, carry = layout.data_offset, 2, b""
        while True:
            chunk = f.read(size)
            data = carry + chunk
            if not chunk:
                if data:
                    yield Block(offset, len(data), line)
                return
            cut = data.rfind(b"\n") + 1
            # a cut inside a quoted field has an odd number of quotes before it
            while cut > 0 and data.count(b'"', 0, cut) % 2 and len(data) < MAX_BLOCK_BYTES:
                cut = data.rfind(b"\n", 0, cut - 1) + 1
            if cut <= 0:
                carry = data
                continue
            yield Block(offset, cut, line)
            line += _lines(data[:cut])
            offset += cut
            carry = data[cut:]


class PatientBlocks:
    """Converts blocks of a patients CSV; built before the workers fork, so the keys it holds
    reach them by inheritance, never through a pipe."""

    def __init__(
        self, app: App, path: Path, layout: CsvLayout, convert: Callable[..., dict[str, Any]]
    ) -> None:
        self.path, self.layout, self.convert = path, layout, convert
        self.encrypt_many = app.cipher.encrypt_many
        self.d_hkid = app.blind.prepared("hkid")
        self.d_hn = app.blind.prepared("hospital_no")
        self.d_surname = app.blind.prepared("surname")
        self.d_address = app.blind.prepared("address")
        self.d_row = app.blind.prepared("row:patients")
        self.hn = app.hospital_no_format

    def __call__(self, block: Block) -> Result:
        was_enabled = gc.isenabled()
        gc.disable()  # a block allocates ~10^5 small objects and no cycles
        try:
            return self._convert(block)
        finally:
            if was_enabled:
                gc.enable()

    def _convert(self, block: Block) -> Result:
        with self.path.open("rb") as f:
            f.seek(block.offset)
            data = f.read(block.length)
        table = self._arrow(data)
        if table is None:
            return self._exact(data, block.first_line)
        return block.first_line, None, self._fast(table)

    # -- the exact (sequential-reader) path -------------------------------------------------

    def row_values(self, row: dict[str, str | None]) -> Values | str:
        try:
            v = self.convert(row)
        except ValueError as exc:
            return str(exc)
        return tuple(v[c] for c in PATIENT_COLUMNS)

    def _exact(self, data: bytes, first_line: int) -> Result:
        text = data.decode("utf-8", errors="surrogateescape")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.layout.delimiter)
        lines: list[int] = []
        out: list[Values | str] = []
        for line, row in csv_records(reader, self.layout.header, first_line - 1):
            lines.append(line)
            out.append(row.reason if isinstance(row, BadRow) else self.row_values(row))
        return first_line, lines, out

    # -- the vectorised path --------------------------------------------------------------

    def _arrow(self, data: bytes) -> Any:
        """The block as an Arrow table of strings, or ``None`` when only ``csv`` reads it
        the way the sequential reader would."""
        import pyarrow as pa
        from pyarrow import csv as pacsv

        if not data or b"\0" in data or not _plain_quotes(data):
            return None
        if data.count(b"\r") != data.count(b"\r\n"):
            return None
        header = self.layout.header
        if len(set(header)) != len(header):
            return None
        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=header, use_threads=False, block_size=len(data) + 1
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.layout.delimiter, newlines_in_values=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={h: pa.string() for h in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        # one record per physical line, so row i is line first_line + i
        if table.num_rows != data.count(b"\n") + (not data.endswith(b"\n")):
            return None
        return table.combine_chunks()

    def _fast(self, table: Any) -> list[Values | str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = table.num_rows
        empty = pa.array([""] * rows, pa.string())

        def col(name: str) -> Any:
            return table.column(name).chunk(0) if name in table.column_names and rows else empty

        ok = np.ones(rows, dtype=bool)

        raw_hkid = col("hkid")
        hkid_shape = pc.match_substring_regex(raw_hkid, _HKID)
        canon = pc.replace_substring(pc.replace_substring(raw_hkid, "(", ""), ")", "")
        canon9 = pc.utf8_lpad(pc.if_else(hkid_shape, canon, "A00000000"), 9, " ")
        hkid_ok = np.asarray(hkid_shape) & _mod11(canon9, 9, 0, (9, 8, 7, 6, 5, 4, 3, 2))
        hkid_empty = np.asarray(pc.equal(raw_hkid, ""))
        ok &= hkid_ok | hkid_empty
        hkids = pc.if_else(pa.array(hkid_ok), canon, None).to_pylist()

        raw_hn = col("hospital_no")
        hn_empty = np.asarray(pc.equal(raw_hn, ""))
        hn_python = not self.hn.uses_default_check
        if not hn_python:
            hn_shape = pc.match_substring_regex(raw_hn, _HN_DEFAULT)
            hn11 = pc.if_else(hn_shape, raw_hn, "HN000000000")
            ok &= hn_empty | (np.asarray(hn_shape) & _mod11(hn11, 11, 2, (9, 8, 7, 6, 5, 4, 3, 2)))
        hns = raw_hn.to_pylist()

        raw_dob = col("dob")
        dob_shape = np.asarray(pc.match_substring_regex(raw_dob, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
        dob10 = pc.if_else(pa.array(dob_shape), raw_dob, "2000-01-01")
        dob_ok, years = _dates(dob10)
        dob_ok &= dob_shape
        dob_empty = np.asarray(pc.equal(raw_dob, ""))
        ok &= dob_ok | dob_empty
        dobs = raw_dob.to_pylist()
        year_list = years.tolist()

        raw_phone = col("phone")
        ok &= np.asarray(pc.match_substring_regex(raw_phone, r"^([0-9]{8})?$"))
        phones = raw_phone.to_pylist()

        raw_sex = col("sex")
        ok &= np.asarray(pc.is_in(raw_sex, pa.array(["", "M", "F", "U"])))
        sexes = raw_sex.to_pylist()
        raw_cluster = col("cluster")
        ok &= np.asarray(pc.is_in(raw_cluster, pa.array(sorted(n.CLUSTERS))))
        clusters = raw_cluster.to_pylist()
        bools = []
        for name in ("app_registered", "vip"):
            raw = col(name)
            ok &= np.asarray(pc.is_in(raw, pa.array(_BOOLS)))
            bools.append(np.asarray(pc.is_in(raw, pa.array(_TRUE))).tolist())

        raw_addr = col("address")
        addr_ascii = np.asarray(pc.string_is_ascii(raw_addr)).tolist()
        akeys = pc.utf8_trim(
            pc.replace_substring_regex(pc.ascii_upper(raw_addr), "[^A-Z0-9]+", " "), " "
        ).to_pylist()
        addresses = raw_addr.to_pylist()
        pids = col("patient_id").to_pylist()
        raw_name = col("name_en")
        names = raw_name.to_pylist()
        # the common spelling "CHAN Tai Man": a first token in capitals is the surname
        # whatever follows (see normalise.surname); other spellings are worked out per row
        first = pc.struct_field(pc.extract_regex(raw_name, _CAPS_FIRST), [0])
        surnames = pc.if_else(
            pc.fill_null(pc.greater_equal(pc.utf8_length(first), 2), False), first, None
        ).to_pylist()
        names_zh = col("name_zh").to_pylist()

        return self._encrypt(
            ok.tolist(),
            pids,
            hkids,
            hns,
            hn_python,
            names,
            names_zh,
            dobs,
            dob_empty.tolist(),
            year_list,
            phones,
            addresses,
            addr_ascii,
            akeys,
            sexes,
            clusters,
            bools,
            surnames,
            table,
        )

    def _encrypt(
        self,
        ok: list[bool],
        pids: list[str],
        hkids: list[str | None],
        hns: list[str],
        hn_python: bool,
        names: list[str],
        names_zh: list[str],
        dobs: list[str],
        dob_empty: list[bool],
        years: list[int],
        phones: list[str],
        addresses: list[str],
        addr_ascii: list[bool],
        akeys: list[str],
        sexes: list[str],
        clusters: list[str],
        bools: list[list[bool]],
        surnames: list[str | None],
        table: Any,
    ) -> list[Values | str]:
        d_hkid, d_hn, d_sur, d_addr, d_row = (
            self.d_hkid,
            self.d_hn,
            self.d_surname,
            self.d_address,
            self.d_row,
        )
        surname_of, address_key, hn_norm = n.surname, n.address_key, self.hn.normalise
        apps, vips = bools
        out: list[Any] = []
        plain: list[bytes] = []
        slots: list[int] = []
        for i in range(len(pids)):
            pid, name_en = pids[i].strip(), names[i].strip()
            hn = hns[i] or None
            if hn is not None and hn_python:
                try:
                    hn = hn_norm(hn)
                except Exception:
                    ok[i] = False
            if not (ok[i] and pid and name_en):
                out.append(self._one(table, i))
                continue
            hkid = hkids[i]
            address = addresses[i].strip() or None
            dob = None if dob_empty[i] else dobs[i]
            phone = phones[i] or None
            s = _pii_json(hkid, hn, name_en, names_zh[i].strip() or None, dob, phone, address)
            sex = sexes[i] or "U"
            app_reg, vip = apps[i], vips[i]
            surname = surnames[i] or surname_of(name_en)
            akey = (akeys[i] or None) if addr_ascii[i] else address_key(address)
            mac = d_row(f"{pid}\x1f{sex}\x1f{clusters[i]}\x1f{app_reg:d}{vip:d}\x1f{s}")
            slots.append(len(out))
            plain.append(s.encode())
            out.append(
                [
                    pid,
                    None,
                    d_hkid(hkid) if hkid else None,
                    d_hn(hn) if hn else None,
                    d_sur(surname) if surname else None,
                    d_addr(akey) if akey else None,
                    sex,
                    None if dob is None else years[i],
                    clusters[i],
                    phone is not None,
                    address is not None,
                    app_reg,
                    vip,
                    False,
                    mac,
                ]
            )
        for slot, token in zip(slots, self.encrypt_many(plain, PII_CONTEXT), strict=True):
            row = out[slot]
            row[1] = token
            out[slot] = tuple(row)
        return out

    def _one(self, table: Any, i: int) -> Values | str:
        """Row ``i`` through the ordinary converter (for the precise reason, or a spelling
        the vectorised checks do not cover)."""
        row = {name: table.column(name)[i].as_py() for name in table.column_names}
        return self.row_values({k: (v if v != "" else None) for k, v in row.items()})


def _q(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _pii_json(
    hkid: str | None,
    hn: str | None,
    name_en: str,
    name_zh: str | None,
    dob: str | None,
    phone: str | None,
    address: str | None,
) -> str:
    """Exactly ``json.dumps(dict(...), ensure_ascii=False, separators=(",", ":"))`` of the
    identifiers (the converter's document; the row MAC covers it byte for byte), written
    with the JSON encoder's own string escaper in a quarter of the time."""
    return (
        f'{{"hkid":{_q(hkid)},"hospital_no":{_q(hn)},"name_en":{_quote(name_en)},'
        f'"name_zh":{_q(name_zh)},"dob":{_q(dob)},"phone":{_q(phone)},"address":{_q(address)}}}'
    )


def _plain_quotes(data: bytes) -> bool:
    """True when every quote opens or closes a field and none is doubled: the quoting on
    which Arrow and Python's ``csv`` are known to agree."""
    parts = data.split(b'"')
    start, end = _FIELD_START, _FIELD_END
    for i in range(1, len(parts)):
        before, after = parts[i - 1], parts[i]
        if not before and i > 1:
            return False  # "" (a doubled quote or an empty quoted field)
        if before and before[-1] not in start and after and after[0] not in end:
            return False  # a quote in the middle of a field
    return True


def _mod11(arr: Any, width: int, start: int, weights: tuple[int, ...]) -> np.ndarray:
    """HKID-style check characters over fixed-width ASCII strings (space = 36, A-Z = 10-35):
    the weighted sum of ``weights`` from ``start``, then ``0``/``A``/``11 - r``."""
    chars = _ascii_matrix(arr, width)
    v = chars.astype(np.int64)
    v = np.where(v == 32, 36, np.where(v >= 65, v - 55, v - 48))
    total = v[:, start : start + len(weights)] @ np.array(weights, dtype=np.int64)
    r = total % 11
    expected = np.where(r == 0, 0, np.where(r == 1, 10, 11 - r))
    result: np.ndarray = v[:, start + len(weights)] == expected
    return result


def _ascii_matrix(arr: Any, width: int) -> np.ndarray:
    """The bytes of a string array whose values all have ``width`` bytes, as a matrix."""
    arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
    if len(arr) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)
    offsets = offsets[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(len(arr), width)


_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _dates(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validity and year of ``YYYY-MM-DD`` strings (all of that shape)."""
    m = _ascii_matrix(arr, 10).astype(np.int64) - 48
    year = m[:, 0] * 1000 + m[:, 1] * 100 + m[:, 2] * 10 + m[:, 3]
    month = m[:, 5] * 10 + m[:, 6]
    day = m[:, 8] * 10 + m[:, 9]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    good_month = (month >= 1) & (month <= 12)
    dim = _DAYS[np.where(good_month, month, 1)] + ((month == 2) & leap)
    valid = (year >= 1) & good_month & (day >= 1) & (day <= dim)
    return valid, year


__all__ = ["PATIENT_COLUMNS", "Block", "PatientBlocks", "blocks"]
