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
    # progress counts the file on disk (compressed), so it ends at the file's size
    assert tab.bytes_read == tab.size == csv_gz.stat().st_size
    nd = open_tabular(nd_gz)
    assert [row for _, row in nd.rows()] == [{"patient_id": "P1", "sex": "F"}]


def test_progress_through_a_large_gzipped_file_never_passes_its_size(tmp_path: Path) -> None:
    body = b"patient_id,sex\n" + b"".join(b"P%07d,F\n" % i for i in range(200_000))
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(body))
    tab = open_tabular(path)
    seen = []
    for n, _ in enumerate(tab.rows(required=("patient_id",))):
        if n % 20_000 == 0:
            seen.append(tab.bytes_read)
    assert seen == sorted(seen) and max(seen) <= tab.size
    assert 0 < seen[len(seen) // 2] < tab.size  # it moves along the file
