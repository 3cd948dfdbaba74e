"""From reader units to leaked person-records, with exact identifier counts and exposed fields.

Tables get their column categories once, from the header (or from a sample of values when
the first row is data, not a header); each row then becomes a :class:`LeakRecord`. Free text
goes through the prose detectors. Binary data contributes only the identifiers the byte
scanner found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from phiguard.leaks.detectors import Detector, LeakRecord
from phiguard.leaks.headers import (
    EXPOSED_FIELD,
    category_for_header,
    infer_columns,
    looks_like_header,
)
from phiguard.leaks.readers import FileInfo, RawHits, Row, Text, Unit

SAMPLE_ROWS = 50


@dataclass
class _Table:
    cats: list[str | None] | None = None
    pending: list[Row] = field(default_factory=list)


@dataclass
class Collected:
    records: list[LeakRecord] = field(default_factory=list)
    hkid_valid: int = 0
    hkid_invalid: int = 0
    hkid_masked: int = 0
    hospital_no: int = 0
    hospital_no_invalid: int = 0
    fields: set[str] = field(default_factory=set)

    def identifiers(self) -> dict[str, int]:
        return {
            "hkid_valid": self.hkid_valid,
            "hkid_invalid": self.hkid_invalid,
            "hospital_no": self.hospital_no,
            "hkid_masked": self.hkid_masked,
            "hospital_no_invalid": self.hospital_no_invalid,
        }

    @property
    def fields_exposed(self) -> list[str]:
        order = ["name", "sex", "hkid", "hospital_no", "dob", "phone", "address", "procedure"]
        exposed = {EXPOSED_FIELD[f] for f in self.fields if f in EXPOSED_FIELD}
        return [f for f in order if f in exposed]


class RecordBuilder:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.out = Collected()
        self._tables: dict[str, _Table] = {}
        self._header_cats: dict[tuple[str, ...], list[str | None]] = {}
        # records of one dump share a handful of field combinations: keep one set of each
        # (a per-record set is a third of a record's memory on a multi-GB dump)
        self._fieldsets: dict[frozenset[str], set[str]] = {}

    def feed(self, units: Iterable[Unit]) -> Collected:
        for unit in units:
            if isinstance(unit, Row):
                self._row(unit)
            elif isinstance(unit, Text):
                self._add(unit.info, self.detector.from_text(unit.where, unit.text), rows=0)
            elif isinstance(unit, RawHits):
                self._raw(unit)
        for key in list(self._tables):
            self._flush(key)
        return self.out

    # -- tables -----------------------------------------------------------------------
    def _row(self, row: Row) -> None:
        if row.header is not None:
            key = tuple(row.header)
            cats = self._header_cats.get(key)
            if cats is None:
                cats = [
                    category_for_header(h.rsplit(".", 1)[-1]) or category_for_header(h)
                    for h in row.header
                ]
                self._header_cats[key] = cats
            self._add(row.info, self.detector.from_row(row.where, cats, row.cells), rows=1)
            return
        table = self._tables.setdefault(row.table, _Table())
        if table.cats is None:
            table.pending.append(row)
            if len(table.pending) >= SAMPLE_ROWS:
                self._flush(row.table)
            return
        self._add(row.info, self.detector.from_row(row.where, table.cats, row.cells), rows=1)

    def _flush(self, key: str) -> None:
        table = self._tables[key]
        if table.cats is not None or not table.pending:
            return
        rows = table.pending
        first = rows[0].cells
        if looks_like_header(first, self.detector.kind):
            header: list[str] | None = first
            data = rows[1:]
        else:
            header, data = None, rows
        table.cats = infer_columns(header, [r.cells for r in data], self.detector.kind)
        table.pending = []
        for r in data:
            self._add(r.info, self.detector.from_row(r.where, table.cats, r.cells), rows=1)

    # -- accounting ---------------------------------------------------------------------
    def _add(self, info: FileInfo, records: list[LeakRecord], *, rows: int) -> None:
        info.records += rows
        for rec in records:
            if not rec.personal:
                continue
            if not rows:
                info.records += 1
            o = self.out
            o.records.append(rec)
            o.hkid_valid += rec.hkid is not None
            o.hkid_invalid += rec.hkid_invalid
            o.hkid_masked += rec.hkid_masked is not None
            o.hospital_no += rec.hospital_no is not None
            o.hospital_no_invalid += rec.hospital_no_invalid
            o.fields |= rec.fields
            key = frozenset(rec.fields)
            rec.fields = self._fieldsets.setdefault(key, set(key))

    def _raw(self, unit: RawHits) -> None:
        hits = unit.hits
        records = [LeakRecord(unit.where, hkid=h, fields={"hkid"}) for h in hits.hkids()]
        records += [
            LeakRecord(unit.where, hospital_no=h, fields={"hospital_no"})
            for h in hits.hospital_numbers()
        ]
        self.out.hkid_invalid += hits.hkid_invalid
        self.out.hospital_no_invalid += hits.hospital_no_invalid
        self._add(unit.info, records, rows=0)
