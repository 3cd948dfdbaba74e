"""A small hospital for the breach-response tests: patients imported through the real
importer (encrypted PII, blind indexes), a contractor vendor with accounts and a grant, and
a leak-scan JSON in spec §3.2 shape naming some of the patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phiguard.app import App
from phiguard.incidents.settings import IncidentSettings
from phiguard.storage.importer import import_file
from phiguard.storage.models import Account, Grant, Vendor
from tests.factories import patient_rows, write_csv

MAC = b"\x00" * 16
FIELDS = ["name", "sex", "hkid", "hospital_no", "procedure"]


def hospital_rows(n: int = 24) -> list[dict[str, str]]:
    """Patients with every reachability: P0 app+SMS+post, odd ids have the app, a few have
    no phone, P0000003 has nothing at all (call list), P0000005 has only an address."""
    rows = patient_rows(n)
    for r in rows:
        r["name_zh"] = "陳大文"
    rows[3].update(phone="", address="", app_registered="false")
    rows[5].update(phone="", app_registered="false")
    rows[7].update(phone="")
    return rows


class Hospital:
    def __init__(self, app: App, tmp: Path, n: int = 24) -> None:
        self.app, self.tmp = app, tmp
        self.rows = hospital_rows(n)
        import_file(app, "patients", write_csv(tmp / "patients.csv", self.rows))
        with app.session() as s:
            s.add(
                Vendor(
                    vendor_id="V012",
                    name="Sysmaint Ltd",
                    dpa_signed=False,
                    status="active",
                    row_mac=MAC,
                )
            )
            s.flush()
            for acct in ("vx-eng-07", "vx-eng-08"):
                s.add(
                    Account(
                        account_id=acct,
                        employer="V012",
                        role="vendor_engineer",
                        department="IT",
                        cluster="ALL",
                        status="active",
                        row_mac=MAC,
                    )
                )
            s.add(
                Account(
                    account_id="ha-doc-1",
                    employer="HA",
                    role="doctor",
                    department="SURG",
                    cluster="KEC",
                    status="active",
                    row_mac=MAC,
                )
            )
            s.flush()
            now = app.clock.now()
            from datetime import timedelta

            s.add(
                Grant(
                    grant_id="G-1",
                    account_id="vx-eng-07",
                    scope_cluster="HKWC",
                    scope_fields="name,sex",
                    actions="read",
                    max_rows=50,
                    valid_from=now - timedelta(days=1),
                    valid_to=now + timedelta(days=30),
                    purpose="HOPERAT",
                    approved_by="ha-doc-1",
                    status="active",
                )
            )

    @property
    def ids(self) -> list[str]:
        return [r["patient_id"] for r in self.rows]

    def scan(
        self,
        count: int | None = None,
        *,
        ids: list[str] | None = None,
        name: str = "scan.json",
        attribution: bool = True,
        **extra: Any,
    ) -> Path:
        chosen = ids if ids is not None else self.ids[: count or len(self.ids)]
        doc = {
            "files": [{"path": "dump.csv", "bytes": 1234, "format": "csv", "records": len(chosen)}],
            "identifiers": {
                "hkid_valid": len(chosen),
                "hkid_invalid": 0,
                "hospital_no": len(chosen),
            },
            "fields_exposed": FIELDS,
            "affected_count": len(chosen),
            "affected_patients": [
                {"patient_id": p, "matched_on": ["hkid", "name_en"], "confidence": 1.0}
                for p in chosen
            ],
            "unmatched_records": 0,
            "attribution": [
                {
                    "account_id": "vx-eng-07",
                    "vendor_id": "V012",
                    "query_id": "q-88812",
                    "score": 0.98,
                    "coverage": 1.0,
                    "evidence": "the export on 2026-04-03 01:12 returned every leaked patient",
                }
            ]
            if attribution
            else [],
        }
        doc.update(extra)
        path = self.tmp / name
        path.write_text(json.dumps(doc))
        return path


@pytest.fixture
def cfg() -> IncidentSettings:
    return IncidentSettings(cap653_designated=True)


@pytest.fixture
def hospital(app: App, tmp_path: Path) -> Hospital:
    return Hospital(app, tmp_path)


@pytest.fixture
def sqlite_hospital(sqlite_app: App, tmp_path: Path) -> Hospital:
    return Hospital(sqlite_app, tmp_path)


def secrets_of(rows: list[dict[str, str]]) -> list[str]:
    """Plaintext identifiers that must never appear in a file phiguard writes on its own."""
    out = []
    for r in rows:
        out += [
            r["hkid"],
            r["hkid"].replace("(", "").replace(")", ""),
            r["hospital_no"],
            r["name_en"],
        ]
        if r["phone"]:
            out.append(r["phone"])
    return out
