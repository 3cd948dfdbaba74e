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

import contextlib
import csv
import functools
import gc
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phiguard.app import App
from phiguard.crypto.fields import COMPACT_LAYOUTS, COMPACT_MARK
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
_PII_HEAD = (COMPACT_MARK + bytes([1])).decode()  # the patient's layout in COMPACT_LAYOUTS

_FIELD_START = np.frombuffer(b",\t\n", dtype=np.uint8)
_FIELD_END = np.frombuffer(b",\t\r\n", dtype=np.uint8)
_HKID = r"^[A-Z]{1,2}[0-9]{6}(\([0-9A]\)|[0-9A])$"
_HN_DEFAULT = r"^HN[0-9]{8}[0-9A-Z]$"
_CAPS_FIRST = r"^(?P<s>[A-Z0-9'.\-]*[A-Z][A-Z0-9'.\-]*)(?:[ ,]|$)"
# characters JSON escapes, and those str.strip() removes besides " " (see _columns)
_SPECIAL = (
    r'["\\\x{00}-\x{1f}\x{7f}-\x{a0}\x{1680}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}'
    r"\x{205f}\x{3000}\x{feff}]"
)
_BOOLS = ["", "true", "false", "1", "0", "yes", "no", "y", "n", "t", "f"]
_TRUE = ["true", "1", "yes", "y", "t"]

Values = tuple[Any, ...]
Result = tuple[int, list[int] | None, list[Values | str]]  # first line, lines, values/reasons
# the staging table of a bulk load into an empty SQLite PMI (see :func:`stage_rows`)
STAGE_TABLE = "stage"
_STAGE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {STAGE_TABLE} (patient_id TEXT, pii BLOB, hkid_bidx BLOB,"
    " hospital_no_bidx BLOB, surname_bidx BLOB, address_bidx BLOB, sex TEXT,"
    " birth_year INTEGER, cluster TEXT, has_phone INTEGER, has_address INTEGER,"
    " app_registered INTEGER, vip INTEGER, is_canary INTEGER, row_mac BLOB)"
)


@dataclass(frozen=True)
class Staged:
    """What a block left in a staging file: how many rows, and its bad rows with reasons."""

    rows: int
    staged: int
    bad: list[tuple[int, str]]
    file: str | None  # the staging file the good rows went to


@dataclass(frozen=True)
class Block:
    offset: int
    length: int
    first_line: int  # the physical line number of the block's first line


def _lines(data: bytes, end: int | None = None) -> int:
    """Physical lines of ``data[:end]`` as Python's ``newline=""`` reader counts them (\\n,
    \\r\\n, lone \\r). numpy counts a byte several times faster than ``bytes.count``; a
    carriage return is rare, and looked for first."""
    end = len(data) if end is None else end
    n = _count(data, 0x0A, end)
    if data.find(b"\r", 0, end) >= 0:
        n += data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end)
    return n


def _count(data: bytes, byte: int, end: int | None = None) -> int:
    """How often ``byte`` occurs in ``data[:end]``."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8)[:end] == byte))


def blocks(
    path: Path, layout: CsvLayout, size: int | None = None, hasher: Any = None
) -> Iterator[Block]:
    """Cut the data part of ``path`` into blocks at line ends outside quoted fields. The
    whole file is read once; ``hasher`` (e.g. ``hashlib.sha256()``) is fed all of it."""
    size = size or BLOCK_BYTES
    with path.open("rb") as f:
        if hasher is not None:
            hasher.update(f.read(layout.data_offset))
        f.seek(layout.data_offset)
        offset, line, carry = layout.data_offset, 2, b""
        while True:
            chunk = f.read(size)
            if hasher is not None:
                hasher.update(chunk)
            data = carry + chunk
            if not chunk:
                if data:
                    yield Block(offset, len(data), line)
                return
            cut = data.rfind(b"\n") + 1
            # a cut inside a quoted field has an odd number of quotes before it
            while cut > 0 and _count(data, 0x22, cut) % 2 and len(data) < MAX_BLOCK_BYTES:
                cut = data.rfind(b"\n", 0, cut - 1) + 1
            if cut <= 0:
                carry = data
                continue
            yield Block(offset, cut, line)
            line += _lines(data, cut)
            offset += cut
            carry = data[cut:]


class PatientBlocks:
    """Converts blocks of a patients CSV; built before the workers fork, so the keys it holds
    reach them by inheritance, never through a pipe."""

    def __init__(
        self, app: App, path: Path, layout: CsvLayout, convert: Callable[..., dict[str, Any]]
    ) -> None:
        self.path, self.layout, self.convert = path, layout, convert
        self.encrypt_column = app.cipher.encrypt_column
        self.h_hkid = app.blind.column("hkid")
        self.h_hn = app.blind.column("hospital_no")
        self.h_surname_list = app.blind.many("surname")
        self.h_address = app.blind.column("address")
        self.h_row = app.blind.column("row:patients")
        self.hn = app.hospital_no_format

    def __call__(self, block: Block) -> Result:
        was_enabled = gc.isenabled()
        gc.disable()  # a block allocates ~10^5 small objects and no cycles
        try:
            return self._convert(block)
        finally:
            if was_enabled:
                gc.enable()

    def stage_segment(
        self,
        segment: tuple[int, list[Block]],
        folder: Path,
        on_block: Callable[[Block], None] | None = None,
    ) -> Staged:
        """:meth:`stage` for a run of blocks into one staging file of its own (the
        segment's number names it); ``on_block`` hears of each block done."""
        number, run = segment
        target = folder / f"segment-{number:03d}.db"
        rows, staged, bad = 0, 0, []
        for block in run:
            result = self.stage(block, target)
            rows, staged = rows + result.rows, staged + result.staged
            bad.extend(result.bad)
            if on_block is not None:
                on_block(block)
        return Staged(rows, staged, bad, str(target) if staged else None)

    def stage(self, block: Block, target: Path) -> Staged:
        """Convert ``block`` and append its good rows to the staging file ``target``
        (through ADBC, straight from Arrow buffers); only counts and bad rows travel back."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            data = self._read(block)
            table = self._arrow(data)
            if table is None:
                _, lines, values = self._exact(data, block.first_line)
                fast, numbered = None, list(zip(lines or (), values, strict=True))
            else:
                fast, _, slow = self._columns(table, _maybe_special(data))
                numbered = [(block.first_line + pos, v) for pos, v in slow]
            bad = [(line, v) for line, v in numbered if isinstance(v, str)]
            good = [v for _, v in numbered if not isinstance(v, str)]
            staged = stage_rows(target, fast, good)
            rows = len(numbered) + (0 if fast is None else fast.num_rows)
            return Staged(rows, staged, bad, str(target) if staged else None)
        finally:
            if was_enabled:
                gc.enable()

    def _read(self, block: Block) -> bytes:
        with self.path.open("rb") as f:
            f.seek(block.offset)
            return f.read(block.length)

    def _convert(self, block: Block) -> Result:
        data = self._read(block)
        table = self._arrow(data)
        if table is None:
            return self._exact(data, block.first_line)
        return block.first_line, None, self._fast(table, _maybe_special(data))

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
        if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
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
        if table.num_rows != _count(data, 0x0A) + (not data.endswith(b"\n")):
            return None
        return table.combine_chunks()

    def _fast(self, table: Any, special: bool = True) -> list[Values | str]:
        """The rows of ``table`` in order: value tuples, or reasons for bad rows."""
        fast, positions, slow = self._columns(table, special)
        out: list[Values | str] = [""] * table.num_rows
        if fast is not None:
            values = [fast.column(i).to_pylist() for i in range(fast.num_columns)]
            for pos, row in zip(positions, zip(*values, strict=True), strict=True):
                out[pos] = row
        for pos, v in slow:
            out[pos] = v
        return out

    def _columns(
        self, table: Any, special: bool = True
    ) -> tuple[Any, list[int], list[tuple[int, Values | str]]]:
        """Convert a block column by column: an Arrow table of the rows every vectorised
        check accepts (in :data:`PATIENT_COLUMNS` order), their positions, and the other rows
        through the ordinary converter (a value tuple or the reason it is bad)."""
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
        ok &= hkid_ok | np.asarray(pc.equal(raw_hkid, ""))
        hkid = pc.if_else(pa.array(hkid_ok), canon, None)

        raw_hn = col("hospital_no")
        hn_python = not self.hn.uses_default_check
        if not hn_python:
            hn_shape = pc.match_substring_regex(raw_hn, _HN_DEFAULT)
            hn11 = pc.if_else(hn_shape, raw_hn, "HN000000000")
            ok &= np.asarray(pc.equal(raw_hn, "")) | (
                np.asarray(hn_shape) & _mod11(hn11, 11, 2, (9, 8, 7, 6, 5, 4, 3, 2))
            )

        raw_dob = col("dob")
        dob_shape = np.asarray(pc.match_substring_regex(raw_dob, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
        dob_ok, years = _dates(pc.if_else(pa.array(dob_shape), raw_dob, "2000-01-01"))
        dob_empty = np.asarray(pc.equal(raw_dob, ""))
        ok &= (dob_ok & dob_shape) | dob_empty

        raw_phone = col("phone")
        ok &= np.asarray(pc.match_substring_regex(raw_phone, r"^([0-9]{8})?$"))
        raw_sex = col("sex")
        ok &= np.asarray(pc.is_in(raw_sex, pa.array(["", "M", "F", "U"])))
        raw_cluster = col("cluster")
        ok &= np.asarray(pc.is_in(raw_cluster, pa.array(sorted(n.CLUSTERS))))
        flags = []
        for name in ("app_registered", "vip"):
            raw = col(name)
            ok &= np.asarray(pc.is_in(raw, pa.array(_BOOLS)))
            flags.append(pc.is_in(raw, pa.array(_TRUE)))

        # Free text goes the vectorised way only without characters that JSON escapes or
        # that str.strip() treats as space beyond " ": then trimming " " is str.strip() and
        # '"' + value + '"' is the JSON encoder's output.
        texts = [col(c) for c in ("patient_id", "name_en", "name_zh", "address")]
        for text in texts if special else ():
            ok &= ~np.asarray(pc.match_substring_regex(text, _SPECIAL))
        pid, name_en, name_zh, address = (pc.utf8_trim(t, " ") for t in texts)
        ok &= np.asarray(pc.not_equal(pid, "")) & np.asarray(pc.not_equal(name_en, ""))

        positions = np.flatnonzero(ok)
        slow = [(int(i), self._one(table, int(i))) for i in np.flatnonzero(~ok)]
        if not len(positions):
            return None, [], slow
        keep = pa.array(ok)

        def f(arr: Any) -> Any:
            return pc.filter(arr, keep)

        def nulled(arr: Any) -> Any:  # "" → null
            return pc.if_else(pc.equal(arr, ""), None, arr)

        pid, name_en, cluster = f(pid), f(name_en), f(raw_cluster)
        hkid, name_zh, address = f(hkid), nulled(f(name_zh)), nulled(f(address))
        phone, dob = nulled(f(raw_phone)), nulled(f(raw_dob))
        if hn_python:
            hn = pa.array([self.hn.normalise(v) if v else None for v in f(raw_hn).to_pylist()])
        else:
            hn = nulled(f(raw_hn))
        sex = f(pc.if_else(pc.equal(raw_sex, ""), "U", raw_sex))
        app_reg, vip = f(flags[0]), f(flags[1])

        def q(arr: Any) -> Any:
            return pc.fill_null(pc.binary_join_element_wise('"', arr, '"', ""), "null")

        pii = pc.binary_join_element_wise(
            '{"hkid":', q(hkid), ',"hospital_no":', q(hn), ',"name_en":', q(name_en),
            ',"name_zh":', q(name_zh), ',"dob":', q(dob), ',"phone":', q(phone),
            ',"address":', q(address), "}", "",
        )  # fmt: skip
        # what is encrypted is the compact form of the same document (fields.COMPACT_LAYOUTS);
        # the row MAC stays over the JSON, byte for byte what the row-by-row path computes
        doc = {
            "hkid": hkid, "hospital_no": hn, "name_en": name_en, "name_zh": name_zh,
            "dob": dob, "phone": phone, "address": address,
        }  # fmt: skip
        compact = pc.binary_join_element_wise(
            _PII_HEAD, *(pc.fill_null(doc[k], "") for k in COMPACT_LAYOUTS[1]), "\x1f"
        )
        mac_input = pc.binary_join_element_wise(
            pid, "\x1f", sex, "\x1f", cluster, "\x1f",
            pc.if_else(app_reg, "1", "0"), pc.if_else(vip, "1", "0"), "\x1f", pii, "",
        )  # fmt: skip

        # the common spelling "CHAN Tai Man": a first token in capitals is the surname
        # whatever follows (see normalise.surname); other spellings are worked out per row
        first = pc.struct_field(pc.extract_regex(name_en, _CAPS_FIRST), [0])
        caps = pc.fill_null(pc.greater_equal(pc.utf8_length(first), 2), False)
        surname = pc.if_else(caps, first, None)
        if not pc.all(caps).as_py():
            names = name_en.to_pylist()
            others = [None if c else n.surname(names[i]) for i, c in enumerate(caps.to_pylist())]
            surname = pc.if_else(caps, surname, pa.array(others, pa.string()))
        # the address key: ASCII addresses column-wise, others (NFKC) per row
        plain = pc.fill_null(pc.string_is_ascii(address), True)
        akey = pc.utf8_trim(
            pc.replace_substring_regex(pc.ascii_upper(address), "[^A-Z0-9]+", " "), " "
        )
        if not pc.all(plain).as_py():
            addresses = address.to_pylist()
            others = [
                None if p else n.address_key(addresses[i]) for i, p in enumerate(plain.to_pylist())
            ]
            akey = pc.if_else(plain, akey, pa.array(others, pa.string()))
        akey = pc.if_else(pc.equal(akey, ""), None, akey)

        fast = pa.Table.from_arrays(
            [
                pid,
                self.encrypt_column(compact, PII_CONTEXT),
                self.h_hkid(hkid),
                self.h_hn(hn),
                self._surnames(surname),
                self.h_address(akey),
                sex,
                pc.if_else(f(pa.array(dob_empty)), None, f(pa.array(years, pa.int64()))),
                cluster,
                pc.is_valid(phone),
                pc.is_valid(address),
                app_reg,
                vip,
                pa.array(np.zeros(len(positions), dtype=bool)),
                self.h_row(mac_input),
            ],
            names=list(PATIENT_COLUMNS),
        )
        return fast, positions.tolist(), slow

    def _surnames(self, surname: Any) -> Any:
        """Surname blind indexes, each distinct surname keyed once (a PMI has few)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        coded = pc.dictionary_encode(surname)
        keys = self.h_surname_list([s.encode() for s in coded.dictionary.to_pylist()])
        return pc.take(pa.array(keys, pa.binary()), coded.indices)

    def _one(self, table: Any, i: int) -> Values | str:
        """Row ``i`` through the ordinary converter (for the precise reason, or a spelling
        the vectorised checks do not cover)."""
        row = {name: table.column(name)[i].as_py() for name in table.column_names}
        return self.row_values({k: (v if v != "" else None) for k, v in row.items()})


def stage_rows(target: Path, fast: Any, rows: list[Values]) -> int:
    """Append the vectorised rows ``fast`` (an Arrow table) and ``rows`` (tuples in
    :data:`PATIENT_COLUMNS` order) to the staging table of ``target``; returns how many.
    ADBC's SQLite driver binds whole Arrow columns in C: about a sixth of the cost of
    ``executemany`` over the same tuples. The file holds only tokens and blind indexes,
    never a plaintext identifier, and is deleted when the import ends.

    ADBC's low-level API, not its DB-API module: that one imports ``pyarrow.dataset`` and
    with it pandas, 0.2 s of start-up in every worker."""
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite
    import pyarrow as pa

    types = _stage_types()
    tables = [] if fast is None or not fast.num_rows else [fast.cast(_stage_schema())]
    if rows:
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(v, types[c]) for c, v in zip(PATIENT_COLUMNS, cols, strict=True)]
        tables.append(pa.Table.from_arrays(arrays, schema=_stage_schema()))
    if not tables:
        return 0
    # a new connection starts in autocommit mode; the driver ingests in one transaction
    with (
        contextlib.closing(adbc_driver_sqlite.connect(str(target))) as db,
        contextlib.closing(adbc.AdbcConnection(db)) as conn,
    ):
        # a scratch file: rebuilt, never recovered
        for sql in ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", _STAGE_DDL):
            with contextlib.closing(adbc.AdbcStatement(conn)) as stmt:
                stmt.set_sql_query(sql)
                stmt.execute_update()
        for table in tables:
            with contextlib.closing(adbc.AdbcStatement(conn)) as stmt:
                stmt.set_options(
                    **{
                        adbc.INGEST_OPTION_TARGET_TABLE: STAGE_TABLE,
                        adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_APPEND,
                    }
                )
                stmt.bind_stream(table)
                stmt.execute_update()
    return sum(t.num_rows for t in tables)


@functools.cache
def _stage_schema() -> Any:
    import pyarrow as pa

    types = _stage_types()
    return pa.schema([(c, types[c]) for c in PATIENT_COLUMNS])


@functools.cache
def _stage_types() -> dict[str, Any]:
    import pyarrow as pa

    kinds = {"patient_id": pa.string(), "sex": pa.string(), "cluster": pa.string()}
    kinds.update(
        {c: pa.binary() for c in PATIENT_COLUMNS if c == "pii" or c.endswith(("_bidx", "_mac"))}
    )
    kinds["birth_year"] = pa.int64()
    for c in ("has_phone", "has_address", "app_registered", "vip", "is_canary"):
        kinds[c] = pa.bool_()
    return kinds


def _plain_quotes(data: bytes) -> bool:
    """True when every quote opens or closes a field and none is doubled: the quoting on
    which Arrow and Python's ``csv`` are known to agree. (Vectorised: a quoted CSV has two
    quotes per field.)"""
    raw = np.frombuffer(data, dtype=np.uint8)
    q = np.flatnonzero(raw == 0x22)
    if not len(q):
        return True
    gap_before = np.diff(q, prepend=-1)  # 1 + bytes between this quote and the previous
    gap_after = np.diff(q, append=len(raw))
    if (gap_before[1:] == 1).any():
        return False  # "" (a doubled quote or an empty quoted field)
    prev = raw[np.maximum(q - 1, 0)]
    nxt = raw[np.minimum(q + 1, len(raw) - 1)]
    mid = (
        (gap_before > 1)
        & ~np.isin(prev, _FIELD_START)
        & (gap_after > 1)
        & ~np.isin(nxt, _FIELD_END)
    )
    return not mid.any()


def _maybe_special(data: bytes) -> bool:
    """Whether a block may hold a character of :data:`_SPECIAL` (then every text column is
    checked with the regular expression; otherwise none needs to be). Byte-level and
    conservative: a UTF-8 lead sequence of any such character counts. (Membership tests and
    one numpy comparison: a histogram of the block's bytes cost 16 ms per 4 MB.)"""
    controls = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) < 0x20))
    if controls:
        ends = _count(data, 0x0A) + (data.count(b"\r") if b"\r" in data else 0)
        if controls != ends:
            return True
    if b"\\" in data or b"\x7f" in data or b"\xc2" in data:
        return True
    return any(seq[:1] in data and seq in data for seq in _SPECIAL_UTF8)


_SPECIAL_UTF8 = (b"\xe1\x9a\x80", b"\xe2\x80", b"\xe2\x81\x9f", b"\xe3\x80\x80", b"\xef\xbb\xbf")


def _mod11(arr: Any, width: int, start: int, weights: tuple[int, ...]) -> np.ndarray:
    """HKID-style check characters over fixed-width ASCII strings (space = 36, A-Z = 10-35):
    the weighted sum of ``weights`` from ``start``, then ``0``/``A``/``11 - r``."""
    v = _CHAR_VALUE[_ascii_matrix(arr, width)]
    total = v[:, start : start + len(weights)] @ np.array(weights, dtype=np.int32)
    r = total % 11
    expected = np.where(r == 0, 0, np.where(r == 1, 10, 11 - r))
    result: np.ndarray = v[:, start + len(weights)] == expected
    return result


_BYTES = np.arange(256, dtype=np.int32)
# the value of a character in a check-character sum (only space, digits and A-Z pass the
# shape checks before this is used)
_CHAR_VALUE = np.where(_BYTES == 32, 36, np.where(_BYTES >= 65, _BYTES - 55, _BYTES - 48))


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


__all__ = [
    "PATIENT_COLUMNS",
    "STAGE_TABLE",
    "Block",
    "PatientBlocks",
    "Staged",
    "blocks",
    "stage_rows",
]
