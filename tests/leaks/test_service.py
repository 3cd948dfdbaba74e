"""Scans are recorded (on SQLite and PostgreSQL); canaries; the patient-facing check."""

from __future__ import annotations

import csv
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from phiguard.errors import PermissionDenied, UsageError
from phiguard.leaks import canaries
from phiguard.leaks.check import MemoryCodeSender, answer_with_code, patient_check, request_code
from phiguard.leaks.linkage import load_patients
from phiguard.leaks.models import LeakScanPatient
from phiguard.leaks.scan import affected_patient_ids, affected_patients, get_scan, scan
from phiguard.storage.models import Patient
from tests.leaks.pmi import decoy_hkids, import_pmi, make_people


def _dump(path: Path, people, extra_rows=()):  # type: ignore[no-untyped-def]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "sex", "hkid", "procedure"])
        for p in people:
            w.writerow([p.name_en, p.sex, p.hkid, "Appendicectomy"])
        w.writerows(extra_rows)
    return path


def test_a_scan_is_recorded_with_its_affected_set_and_logged(app, audit, tmp_path):
    people = make_people(120)
    import_pmi(app, tmp_path, people)
    decoy = decoy_hkids(random.Random(1), 1, {p.hkid for p in people})[0]
    dump = _dump(tmp_path / "leak.csv", people[:40], [["CHAN Tai Man", "M", decoy, "x"]])
    result = scan(app, [dump], actor="investigator-1")
    assert result["affected_count"] == 40 and result["unmatched_records"] == 1
    rec = get_scan(app, result["scan_id"])
    assert rec["actor"] == "investigator-1" and rec["affected_count"] == 40
    assert rec["files"][0]["sha256"] == result["files"][0]["sha256"]
    assert len(rec["result_sha256"]) == 64
    assert affected_patient_ids(app, result["scan_id"]) == sorted(p.patient_id for p in people[:40])
    stored = affected_patients(app, result["scan_id"])
    assert stored == sorted(result["affected_patients"], key=lambda p: p["patient_id"])
    (entry,) = [e for e in audit.entries if e["tag"] == "leaks:scan:completed"]
    assert entry["actor"] == "investigator-1" and entry["subject"] == result["scan_id"]
    assert entry["result_sha256"] == rec["result_sha256"]
    assert people[0].hkid_canonical not in json.dumps(entry)  # no identifier in the log


def test_a_canary_names_its_recipient_with_certainty_and_is_never_counted(
    sqlite_app, sqlite_audit, tmp_path
):
    people = make_people(80)
    import_pmi(sqlite_app, tmp_path, people)
    (c,) = canaries.plant(
        sqlite_app, actor="dpo", vendor_id="V012", query_id="q-501", label="March export"
    )
    with sqlite_app.session() as s:
        row = s.get(Patient, c.patient_id)
        assert row is not None and row.is_canary
    pii = load_patients(sqlite_app, [c.patient_id])[c.patient_id]
    dump = _dump(
        tmp_path / "leak.csv", people[:10], [[pii.name_en, pii.sex, pii.hkid, "Appendicectomy"]]
    )
    result = scan(sqlite_app, [dump], actor="t")
    assert result["affected_count"] == 10  # the canary is not an affected patient
    assert c.patient_id not in {p["patient_id"] for p in result["affected_patients"]}
    assert result["unmatched_records"] == 0
    top = result["attribution"][0]
    assert top["vendor_id"] == "V012" and top["query_id"] == "q-501" and top["score"] == 1.0
    assert "canary" in top["evidence"]
    assert any(e["tag"] == "leaks:canary:planted" for e in sqlite_audit.entries)
    assert canaries.registry(sqlite_app)[0]["label"] == "March export"
    with pytest.raises(UsageError):
        canaries.plant(sqlite_app, actor="dpo")


def test_patient_check_answers_only_sessions_and_code_holders(
    sqlite_app, sqlite_audit, tmp_path, clock
):
    people = make_people(50)
    import_pmi(sqlite_app, tmp_path, people)
    scan(sqlite_app, [_dump(tmp_path / "leak.csv", people[:5])], actor="t")
    leaked, safe = people[0], people[30]

    answer = patient_check(sqlite_app, leaked.patient_id, actor=f"patient:{leaked.patient_id}")
    assert answer["affected"] and answer["incidents"][0]["fields"] == [
        "name",
        "sex",
        "hkid",
        "procedure",
    ]
    assert patient_check(sqlite_app, safe.patient_id, actor="p")["affected"] is False

    sender = MemoryCodeSender()
    challenge = request_code(sqlite_app, leaked.hkid.lower(), sender=sender)
    ((phone, text),) = sender.sent
    assert phone == leaked.phone and leaked.hkid_canonical not in text
    code = text.split("code is ")[1][:6]
    with pytest.raises(PermissionDenied):
        answer_with_code(sqlite_app, challenge, "000000" if code != "000000" else "111111")
    assert answer_with_code(sqlite_app, challenge, code)["affected"] is True
    with pytest.raises(PermissionDenied):  # single use
        answer_with_code(sqlite_app, challenge, code)

    # an unknown (but valid) HKID gets the same kind of answer and no SMS: no enumeration
    stranger = decoy_hkids(random.Random(2), 1, {p.hkid for p in people})[0]
    other = request_code(sqlite_app, stranger, sender=sender)
    assert isinstance(other, str) and len(sender.sent) == 1
    with pytest.raises(PermissionDenied):
        answer_with_code(sqlite_app, other, code)

    # expiry and rate limit
    challenge = request_code(sqlite_app, leaked.hkid, sender=sender)
    code = sender.sent[-1][1].split("code is ")[1][:6]
    clock.advance(timedelta(minutes=11))
    with pytest.raises(PermissionDenied):
        answer_with_code(sqlite_app, challenge, code)
    request_code(sqlite_app, leaked.hkid, sender=sender)
    with pytest.raises(PermissionDenied, match="too many"):
        request_code(sqlite_app, leaked.hkid, sender=sender)
    with pytest.raises(UsageError):
        request_code(sqlite_app, "A123456(4)", sender=sender)  # wrong check character
    tags = [e["tag"] for e in sqlite_audit.entries]
    assert "leaks:check:answered" in tags and "leaks:check:code-sent" in tags


def test_stored_affected_sets_hold_patient_ids_only(sqlite_app, tmp_path):
    people = make_people(30)
    import_pmi(sqlite_app, tmp_path, people)
    scan(sqlite_app, [_dump(tmp_path / "leak.csv", people[:3])], actor="t")
    with sqlite_app.session() as s:
        rows = s.execute(select(LeakScanPatient)).scalars().all()
    assert {r.patient_id for r in rows} == {p.patient_id for p in people[:3]}
    db = b"".join(f.read_bytes() for f in sqlite_app.home.root.glob("phiguard.db*"))
    for p in people[:3]:
        assert p.hkid_canonical.encode() not in db and p.surname.encode() + b" " not in db
