"""Security is the product: no file phiguard writes under its home holds a plaintext HKID,
hospital number, name, phone number or address. This test populates a home through every
path that takes identifiers in and greps every byte of every file under it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from phiguard.app import App
from phiguard.storage.importer import import_file
from tests.factories import patient_rows, write_csv


def _needles(rows: list[dict[str, str]]) -> list[bytes]:
    out: list[bytes] = []
    for r in rows:
        hkid = r["hkid"]
        canonical = hkid.replace("(", "").replace(")", "")
        out += [
            hkid.encode(),
            canonical.encode(),
            r["hospital_no"].encode(),
            r["phone"].encode(),
            r["name_en"].encode(),
            r["address"].encode(),
        ]
        out += [v.encode("utf-16-le") for v in (canonical, r["name_en"])]
    return out


def _populate(app: App, tmp_path: Path) -> list[dict[str, str]]:
    rows = patient_rows(40)
    for r in rows[::3]:
        r["name_zh"] = "歐陽志明"
    import_file(app, "patients", write_csv(tmp_path / "patients.csv", rows))
    import_file(
        app,
        "accounts",
        write_csv(
            tmp_path / "accounts.csv",
            [
                {
                    "account_id": "ha-doc-1",
                    "person_name": rows[0]["name_en"],
                    "employer": "HA",
                    "role": "doctor",
                    "department": "MED",
                    "cluster": "KEC",
                    "active_from": "2020-01-01",
                    "active_to": "",
                    "patient_id": rows[0]["patient_id"],
                    "home_address": rows[0]["address"],
                },
            ],
        ),
    )
    if importlib.util.find_spec("phiguard.audit.ingest") is not None:
        from phiguard.audit.ingest import ingest_files
        from tests.factories import write_events

        ingest_files(app, [write_events(tmp_path / "events.csv", rows)])
    return rows


def test_no_identifier_in_any_file_of_a_populated_home(sqlite_app: App, tmp_path: Path) -> None:
    rows = _populate(sqlite_app, tmp_path)
    sqlite_app.close()
    needles = _needles(rows) + ["歐陽志明".encode()]
    files = [p for p in sqlite_app.home.root.rglob("*") if p.is_file()]
    assert any(p.name == "phiguard.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, (
                f"plaintext identifier found in {path.relative_to(sqlite_app.home.root)}"
            )
