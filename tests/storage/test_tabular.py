"""Tabular input files: gzip is read transparently through the byte counter."""

from __future__ import annotations

import gzip
from pathlib import Path

from phiguard.storage.tabular import open_tabular


def test_gzipped_csv_and_ndjson_read_like_plain_files(tmp_path: Path) -> None:
    csv_gz = tmp_path / "patients.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"patient_id,sex\nP1,F\nP2,M\n"))
    nd_gz = tmp_path / "patients.ndjson.gz"
    nd_gz.write_bytes(gzip.compress(b'{"patient_id": "P1", "sex": "F"}\n'))
    tab = open_tabular(csv_gz)
    assert [row for _, row in tab.rows(required=("patient_id",))] == [
        {"patient_id": "P1", "sex": "F"},
        {"patient_id": "P2", "sex": "M"},
    ]
    assert tab.bytes_read == 25  # the decompressed bytes that went through the counter
    nd = open_tabular(nd_gz)
    assert [row for _, row in nd.rows()] == [{"patient_id": "P1", "sex": "F"}]
