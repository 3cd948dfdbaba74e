"""``phiguard leaks …`` through the real command line."""

from __future__ import annotations

import json

from tests.leaks.pmi import make_people, write_pmi


def _home(cli, tmp_path, n=60):  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    people = make_people(n)
    assert cli("import", "patients", str(write_pmi(tmp_path / "pmi.csv", people))).exit_code == 0
    return people


def test_scan_prints_spec_json(sqlite_cli, tmp_path):
    people = _home(sqlite_cli, tmp_path)
    dump = tmp_path / "dump.csv"
    dump.write_text(
        "姓名,身份證號碼,性別,手術\n"
        + "".join(
            f"{p.name_zh},{p.hkid},{'男' if p.sex == 'M' else '女'},闌尾切除術\n"
            for p in people[:7]
        )
    )
    r = sqlite_cli("leaks", "scan", str(dump), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert list(doc)[:7] == [
        "files",
        "identifiers",
        "fields_exposed",
        "affected_count",
        "affected_patients",
        "unmatched_records",
        "attribution",
    ]
    assert doc["affected_count"] == 7
    assert doc["files"][0]["format"] == "csv" and doc["files"][0]["records"] == 7
    assert doc["identifiers"]["hkid_valid"] == 7
    assert set(doc["affected_patients"][0]) == {"patient_id", "matched_on", "confidence"}
    shown = sqlite_cli("leaks", "show", doc["scan_id"], "--format", "json")
    assert json.loads(shown.stdout)["affected_count"] == 7
    assert doc["scan_id"] in sqlite_cli("leaks", "list").stdout


def test_scan_summary_for_people_and_partial_reads(sqlite_cli, tmp_path):
    people = _home(sqlite_cli, tmp_path)
    dump = tmp_path / "paste.txt"
    dump.write_text("".join(f"{p.name_en} {p.hkid} had Appendicectomy\n" for p in people[:3]))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    r = sqlite_cli("leaks", "scan", str(dump), str(junk))
    assert r.exit_code == 0
    assert "affected patients: 3" in r.stdout
    assert "fields exposed: name, hkid, procedure" in r.stdout
    assert "not read: binary data" in r.stdout


def test_unreadable_input_exits_2_with_one_line(sqlite_cli, tmp_path):
    _home(sqlite_cli, tmp_path, n=5)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = sqlite_cli("leaks", "scan", str(empty))
    assert r.exit_code == 2
    assert "empty file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_plant_and_list_canaries(sqlite_cli, tmp_path):
    _home(sqlite_cli, tmp_path, n=5)
    r = sqlite_cli(
        "leaks", "canaries", "plant", "--vendor", "V012", "--count", "2", "--format", "json"
    )
    assert r.exit_code == 0, r.output
    planted = json.loads(r.stdout)
    assert len(planted) == 2 and planted[0]["vendor_id"] == "V012"
    listed = json.loads(sqlite_cli("leaks", "canaries", "list", "--format", "json").stdout)
    assert {c["patient_id"] for c in listed} == {p["patient_id"] for p in planted}
    assert sqlite_cli("leaks", "canaries", "plant").exit_code == 2


def test_scan_engine_option(sqlite_cli, tmp_path):
    people = _home(sqlite_cli, tmp_path, n=10)
    dump = tmp_path / "paste.txt"
    dump.write_text("".join(f"{p.name_en} {p.hkid}\n" for p in people[:2]))
    r = sqlite_cli("leaks", "scan", str(dump), "--engine", "duckdb", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["affected_count"] == 2
    bad = sqlite_cli("leaks", "scan", str(dump), "--engine", "oracle")
    assert bad.exit_code == 2 and "duckdb or spark" in bad.stderr
