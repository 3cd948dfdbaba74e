"""Reference-data import through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from phiguard.app import App
from phiguard.settings import Settings
from phiguard.storage.importer import import_file
from phiguard.storage.models import Account, Encounter, Grant, Patient, Vendor
from tests.factories import patient_rows, write_csv, write_ndjson, write_parquet


def count(app: App, model: type) -> int:
    with app.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_patients_import_in_every_format(app: App, tmp_path: Path) -> None:
    rows = patient_rows(30)
    for writer, name, chunk in (
        (write_csv, "p.csv", rows[:10]),
        (write_parquet, "p.parquet", rows[10:20]),
        (write_ndjson, "p.ndjson", rows[20:]),
    ):
        report = import_file(app, "patients", writer(tmp_path / name, chunk))
        assert (report.inserted, report.rows_bad, report.committed) == (10, 0, True)
    assert count(app, Patient) == 30


def test_identifiers_are_encrypted_and_found_through_the_blind_index(
    app: App, tmp_path: Path
) -> None:
    rows = patient_rows(5)
    import_file(app, "patients", write_csv(tmp_path / "p.csv", rows))
    canonical = rows[3]["hkid"].replace("(", "").replace(")", "")
    with app.session() as s:
        p = s.scalars(
            select(Patient).where(Patient.hkid_bidx == app.blind.digest("hkid", canonical))
        ).one()
        assert p.patient_id == rows[3]["patient_id"]
        assert rows[3]["name_en"].encode() not in p.pii
        pii = app.cipher.decrypt_json(p.pii, b"patient:pii")
    assert pii["name_en"] == rows[3]["name_en"] and pii["hkid"] == canonical


def test_bad_rows_are_counted_with_line_numbers_and_the_rest_imported(
    app: App, tmp_path: Path
) -> None:
    rows = patient_rows(8)
    rows[1]["hkid"] = "A123456(4)"  # wrong check character -> line 3
    rows[2]["cluster"] = "XYZ"  # line 4
    rows[3]["dob"] = "1990-13-45"  # line 5
    rows[4]["patient_id"] = rows[0]["patient_id"]  # duplicate id, line 6
    rows[5]["hkid"] = rows[6]["hkid"]  # duplicate HKID: the later row (line 8) is the bad one
    report = import_file(app, "patients", write_csv(tmp_path / "p.csv", rows))
    by_line = {e.line: e.reason for e in report.errors}
    assert by_line[3] == "hkid check character is wrong"
    assert "cluster" in by_line[4]
    assert "dob" in by_line[5]
    assert "duplicate patient_id" in by_line[6] and "line 2" in by_line[6]
    assert "duplicate HKID" in by_line[8]
    assert (report.rows_bad, report.inserted, report.committed) == (5, 3, True)
    assert count(app, Patient) == 3
    # no reason ever repeats the value it rejected
    assert not any("A123456" in e.reason for e in report.errors)


def test_wrong_encoding_is_a_bad_row_not_a_crash(app: App, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", patient_rows(3))
    data = path.read_bytes().replace("陳大文".encode(), "陳大文".encode("big5"), 1)
    path.write_bytes(data)
    report = import_file(app, "patients", path)
    assert report.rows_bad == 1 and "UTF-8" in report.errors[0].reason
    assert report.inserted == 2


def test_strict_imports_nothing_when_any_row_is_bad(app: App, tmp_path: Path) -> None:
    rows = patient_rows(6)
    rows[5]["sex"] = "Q"
    report = import_file(app, "patients", write_csv(tmp_path / "p.csv", rows), strict=True)
    assert not report.committed and report.rows_bad == 1
    assert count(app, Patient) == 0


def test_a_rolled_back_import_keeps_the_unique_indexes(app: App, tmp_path: Path) -> None:
    """A first load drops and rebuilds the PMI's indexes; rolled back (--strict), the drop
    must be rolled back too, or HKIDs would no longer be unique."""
    rows = patient_rows(4)
    rows[3]["sex"] = "Q"
    report = import_file(app, "patients", write_csv(tmp_path / "a.csv", rows), strict=True)
    assert not report.committed
    import_file(app, "patients", write_csv(tmp_path / "b.csv", patient_rows(2)))
    other = patient_rows(1, start=50)
    other[0]["hkid"] = patient_rows(1)[0]["hkid"]
    report = import_file(app, "patients", write_csv(tmp_path / "c.csv", other))
    assert report.rows_bad == 1 and "HKID already belongs" in report.errors[0].reason
    with app.engine.connect() as conn:
        from sqlalchemy import inspect

        names = {i["name"] for i in inspect(conn).get_indexes("patients")}
    assert {"ix_patients_hkid_bidx", "ix_patients_hospital_no_bidx"} <= names


def test_large_file_loads_through_workers_and_staging(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file big enough for the worker pool (made small here): many blocks, bad rows with
    their line numbers, duplicates found across blocks, nothing left in the home's tmp/."""
    from phiguard.storage import bulk, importer

    monkeypatch.setattr(importer, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(bulk, "BLOCK_BYTES", 8192)
    staged: list[str] = []
    insert = importer._Stage.insert
    monkeypatch.setattr(
        importer._Stage, "insert", lambda self, c, f: (staged.append(f), insert(self, c, f))
    )
    rows = patient_rows(1500)
    rows[700]["dob"] = "1990-02-30"  # line 702
    clean = [r for i, r in enumerate(rows) if i != 700]
    seen: list[tuple[int, int]] = []
    path = write_csv(tmp_path / "p.csv", rows)
    report = import_file(app, "patients", path, progress=lambda d, t: seen.append((d, t)))
    assert (report.rows_total, report.rows_bad, report.inserted) == (1500, 1, 1499)
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert report.errors[0].line == 702 and "dob" in report.errors[0].reason
    assert count(app, Patient) == 1499
    if app.engine.dialect.name == "sqlite":  # the staged load, in several segments
        assert 1 < len(staged) <= importer.MAX_SEGMENTS
    assert not any((app.home.root / "tmp").rglob("*"))
    with app.session() as s:
        from phiguard.storage.models import ImportRun

        run = s.scalars(select(ImportRun)).one()
        assert run.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        p = s.get(Patient, clean[1234]["patient_id"])
        assert p is not None
        assert app.cipher.decrypt_json(p.pii, b"patient:pii")["name_en"] == clean[1234]["name_en"]


def test_a_duplicate_far_apart_in_a_large_file_is_reported_with_both_lines(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phiguard.storage import bulk, importer

    monkeypatch.setattr(importer, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(bulk, "BLOCK_BYTES", 8192)
    rows = patient_rows(1500)
    rows[1400]["hkid"] = rows[10]["hkid"]  # line 1402 repeats line 12
    report = import_file(app, "patients", write_csv(tmp_path / "p.csv", rows))
    assert (report.rows_bad, report.inserted, report.committed) == (1, 1499, True)
    assert report.errors[0].line == 1402 and "line 12" in report.errors[0].reason
    assert count(app, Patient) == 1499
    assert not any((app.home.root / "tmp").rglob("*"))


def test_reimport_is_idempotent_and_changes_are_applied(app: App, tmp_path: Path) -> None:
    rows = patient_rows(10)
    path = write_csv(tmp_path / "p.csv", rows)
    first = import_file(app, "patients", path)
    again = import_file(app, "patients", path)
    assert (first.inserted, again.inserted, again.updated, again.unchanged) == (10, 0, 0, 10)
    rows[2]["cluster"] = "NTWC"
    changed = import_file(app, "patients", write_csv(tmp_path / "p2.csv", rows))
    assert (changed.updated, changed.unchanged) == (1, 9)
    with app.session() as s:
        assert s.get(Patient, rows[2]["patient_id"]).cluster == "NTWC"  # type: ignore[union-attr]


def test_hkid_of_another_patient_in_the_database_is_rejected(app: App, tmp_path: Path) -> None:
    rows = patient_rows(3)
    import_file(app, "patients", write_csv(tmp_path / "a.csv", rows))
    other = patient_rows(1, start=50)
    other[0]["hkid"] = rows[0]["hkid"]
    report = import_file(app, "patients", write_csv(tmp_path / "b.csv", other))
    assert report.rows_bad == 1 and "HKID already belongs" in report.errors[0].reason


def test_other_kinds(app: App, tmp_path: Path) -> None:
    import_file(
        app,
        "vendors",
        write_csv(
            tmp_path / "v.csv",
            [
                {
                    "vendor_id": "V012",
                    "name": "Acme Systems",
                    "contract_id": "C1",
                    "contract_start": "2025-01-01",
                    "contract_end": "2026-12-31",
                    "dpa_signed": "true",
                    "last_assessment": "2025-06-01",
                },
            ],
        ),
    )
    accounts = import_file(
        app,
        "accounts",
        write_csv(
            tmp_path / "a.csv",
            [
                {
                    "account_id": "vx-eng-07",
                    "person_name": "WONG Siu Ming",
                    "employer": "V012",
                    "role": "vendor_engineer",
                    "department": "IT",
                    "cluster": "ALL",
                    "active_from": "2025-01-01",
                    "active_to": "",
                    "patient_id": "",
                    "home_address": "",
                },
                {
                    "account_id": "bad",
                    "person_name": "",
                    "employer": "HA",
                    "role": "doctor",
                    "department": "MED",
                    "cluster": "KEC",
                    "active_from": "2025-02-01",
                    "active_to": "2025-01-01",
                    "patient_id": "",
                    "home_address": "",
                },
            ],
        ),
    )
    assert (accounts.inserted, accounts.rows_bad) == (1, 1)
    grants = import_file(
        app,
        "grants",
        write_csv(
            tmp_path / "g.csv",
            [
                {
                    "grant_id": "G1",
                    "account_id": "vx-eng-07",
                    "scope_cluster": "HKWC",
                    "scope_fields": "name,sex,hospital_no",
                    "actions": "read,search",
                    "max_rows": "50",
                    "valid_from": "2026-04-01T09:00:00+08:00",
                    "valid_to": "2026-04-05T18:00:00+08:00",
                    "purpose": "SYSADMIN",
                    "approved_by": "ha-it-mgr",
                },
                {
                    "grant_id": "G2",
                    "account_id": "vx-eng-07",
                    "scope_cluster": "HKWC",
                    "scope_fields": "*",
                    "actions": "read,teleport",
                    "max_rows": "5",
                    "valid_from": "2026-04-01T09:00:00+08:00",
                    "valid_to": "2026-04-01T08:00:00+08:00",
                    "purpose": "",
                    "approved_by": "",
                },
            ],
        ),
    )
    assert (grants.inserted, grants.rows_bad) == (1, 1)
    enc = import_file(
        app,
        "encounters",
        write_csv(
            tmp_path / "e.csv",
            [
                {
                    "patient_id": "P0000001",
                    "department": "SURG",
                    "account_id": "",
                    "start": "2026-04-01T08:00:00+08:00",
                    "end": "2026-04-03T08:00:00+08:00",
                },
            ]
            * 2,
        ),
    )
    assert (enc.inserted, enc.rows_bad) == (1, 1)
    with app.session() as s:
        g = s.get(Grant, "G1")
        assert g is not None and g.valid_from.isoformat() == "2026-04-01T01:00:00+00:00"
        assert s.get(Vendor, "V012").status == "active"  # type: ignore[union-attr]
        acct = s.get(Account, "vx-eng-07")
        assert acct is not None and b"WONG" not in (acct.person or b"")
    assert count(app, Encounter) == 1


def test_cli_import_reports_and_exit_codes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    rows = patient_rows(4)
    rows[0]["hkid"] = "Z999999(9)"
    path = write_csv(tmp_path / "p.csv", rows)
    res = cli("import", "patients", str(path), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["bad"] == 1 and doc["inserted"] == 3 and doc["errors"][0]["line"] == 2
    strict = cli("import", "patients", str(path), "--strict")
    assert strict.exit_code == 1 and "NOT imported" in strict.stdout
    missing = cli("import", "patients", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    wrong = cli("import", "planets", str(path))
    assert wrong.exit_code == 2


def test_missing_home_is_a_clear_error(sqlite_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = sqlite_cli("import", "patients", str(tmp_path / "x.csv"))
    assert res.exit_code == 2 and "not a phiguard home" in res.stderr


@pytest.mark.parametrize("home_position", ["before", "after"])
def test_home_accepted_before_and_after_the_subcommand(tmp_path: Path, home_position: str) -> None:
    from typer.testing import CliRunner

    from phiguard.cli.main import app as cli_app

    home = str(tmp_path / "h")
    args = ["--home", home, "init"] if home_position == "before" else ["init", "--home", home]
    assert CliRunner().invoke(cli_app, args).exit_code == 0
    assert App.open(Settings(home=Path(home))).home.exists


@pytest.mark.parametrize("quoting", ["minimal", "all"])
def test_bulk_path_gives_the_row_by_row_results(app: App, tmp_path: Path, quoting: str) -> None:
    """The vectorised patients path (Arrow blocks) and the row-by-row converter agree on every
    value, reason and line number, including spellings the fast checks leave to Python — for
    minimal quoting and for every field quoted, header included (as the generator and many
    exporters write)."""
    from phiguard.storage import bulk, converters
    from phiguard.storage.tabular import BadRow, csv_layout, open_tabular

    rows = patient_rows(240)
    odd = [
        ("hkid", "a123456(3)"),
        ("hkid", " K1234567 "),
        ("hkid", "A123456(4)"),
        ("hkid", ""),
        ("hospital_no", "hn1000000"),
        ("hospital_no", "HN100000009"),
        ("dob", "1990-02-30"),
        ("dob", "2000-02-29"),
        ("dob", "1900-02-29"),
        ("dob", "19900101"),
        ("dob", ""),
        ("phone", "+852 9123 4567"),
        ("phone", "123"),
        ("sex", "m"),
        ("sex", ""),
        ("cluster", "kec"),
        ("vip", "TRUE"),
        ("vip", "maybe"),
        ("address", "香港 九龍, 秀茂坪"),
        ("address", "  Flat_1 -- Block  "),
        ("address", "   "),
        ("name_en", "Tai Man CHAN"),
        ("name_en", "CHAN, Tai Man"),
        ("name_en", "O'BRIEN John"),
        ("name_en", "A B"),
        ("name_en", " chan tai man\u3000"),
        ("patient_id", ""),
        ("name_en", "AB CD ef"),
        ("name_en", "CHAN Tai\\Man"),
        ("address", "Flat 1\u00a0Block 2 "),
        ("name_zh", "\u200b陳大文"),
        ("name_zh", "陳大文\u2028"),
        ("patient_id", " P-odd "),
    ]
    for i, (column, value) in enumerate(odd):
        rows[i * 7 + 3][column] = value
    rows[200]["address"] = 'Flat "A", Block 2'  # a block with inner quotes goes through csv
    rows[230]["patient_id"] = rows[229]["patient_id"]
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        mode = csv.QUOTE_ALL if quoting == "all" else csv.QUOTE_MINIMAL
        w = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=mode)
        w.writeheader()
        w.writerows(rows)
    spec = converters.spec_for("patients", app)

    expected = []
    for line, row in open_tabular(path).rows(required=spec.required):
        if isinstance(row, BadRow):
            expected.append((line, row.reason))
            continue
        try:
            v = spec.convert(row)
        except ValueError as exc:
            expected.append((line, str(exc)))
        else:
            expected.append((line, tuple(v[c] for c in bulk.PATIENT_COLUMNS)))

    layout = csv_layout(path, required=spec.required)
    assert layout is not None
    conv = bulk.PatientBlocks(app, path, layout, spec.convert)
    got: list[tuple[int, object]] = []
    fast = 0
    for block in bulk.blocks(path, layout, size=4096):
        first, lines, values = conv(block)
        fast += lines is None
        got.extend(zip(lines if lines is not None else range(first, first + len(values)), values))
    assert fast > 0 and len(got) == len(expected)

    def plain(v: object) -> object:
        if isinstance(v, str):
            return v
        assert isinstance(v, tuple)
        # the bulk path encrypts the compact form of the same document (fields.py)
        return (v[0], app.cipher.decrypt_json(v[1], b"patient:pii"), *v[2:])

    for (line_a, a), (line_b, b) in zip(expected, got, strict=True):
        assert line_a == line_b and plain(a) == plain(b), line_a


def test_a_first_load_sweeps_staging_folders_left_by_a_killed_import(
    app: App, tmp_path: Path
) -> None:
    import os
    import time

    tmp = app.home.root / "tmp"
    tmp.mkdir(exist_ok=True)
    old, fresh = tmp / "import-old", tmp / "import-fresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "segment-000.db").write_bytes(b"tokens only")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    import_file(app, "patients", write_csv(tmp_path / "p.csv", patient_rows(5)))
    if app.engine.dialect.name == "sqlite":  # only the staged load uses the folder
        assert not old.exists()
    assert fresh.exists()  # might be another import's, still running


_KILL_AFTER_INDEXES = """
import os, signal, sys
from pathlib import Path
from phiguard.app import App
from phiguard.settings import Settings
from phiguard.storage import importer

finish = importer._Writer.finish

def finish_then_die(self):
    finish(self)  # the indexes are built, their pages and the table's are in the file
    os.kill(os.getpid(), signal.SIGKILL)

importer._Writer.finish = finish_then_die
app = App.open(Settings(home=Path(sys.argv[1])))
importer.import_file(app, "patients", Path(sys.argv[2]))
"""


def test_a_first_load_killed_before_its_commit_leaves_the_home_as_before(
    sqlite_app: App, tmp_path: Path
) -> None:
    """A first load writes the new pages straight into the database file (rollback journal,
    not the WAL). Killed just before the commit, with the table and its indexes written,
    the next opening of the home rolls the journal back: no patient, the unique indexes in
    place, the database intact and back in WAL mode, and the file imports cleanly."""
    import sqlite3
    import subprocess
    import sys

    home = sqlite_app.home.root
    db = home / "phiguard.db"
    sqlite_app.close()
    size_before = db.stat().st_size
    rows = patient_rows(20_000)
    path = write_csv(tmp_path / "p.csv", rows)
    child = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_INDEXES, str(home), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr
    # the kill hit mid-transaction with pages already in the file: a hot journal is left
    assert (home / "phiguard.db-journal").exists()
    assert db.stat().st_size > size_before + (4 << 20)

    app = App.open(Settings(home=home))
    try:
        assert count(app, Patient) == 0
        with app.engine.connect() as conn:
            from sqlalchemy import inspect

            names = {i["name"] for i in inspect(conn).get_indexes("patients")}
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert {"ix_patients_hkid_bidx", "ix_patients_hospital_no_bidx"} <= names
        assert not (home / "phiguard.db-journal").exists()
        report = import_file(app, "patients", path)
        assert (report.inserted, report.committed) == (20_000, True)
        assert count(app, Patient) == 20_000
    finally:
        app.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_first_load_beside_another_open_connection_keeps_the_wal(
    sqlite_app: App, tmp_path: Path
) -> None:
    """The rollback journal of a first load needs the database to itself; with another
    connection open (a reader in another process) the load runs in the WAL, at once."""
    import sqlite3
    import time

    db = sqlite_app.home.root / "phiguard.db"
    other = sqlite3.connect(db)
    try:
        assert other.execute("SELECT count(*) FROM patients").fetchone() == (0,)
        started = time.monotonic()
        report = import_file(
            sqlite_app, "patients", write_csv(tmp_path / "p.csv", patient_rows(50))
        )
        assert report.committed and time.monotonic() - started < 20  # no busy wait (30 s)
        assert other.execute("SELECT count(*) FROM patients").fetchone() == (50,)
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()


def test_the_block_byte_scans_agree_with_plain_counting() -> None:
    """The line count of a cut block and the test for characters the JSON encoder escapes
    are numpy shortcuts; over random bytes rich in the characters that matter they must
    say what a plain count says."""
    import random

    import numpy as np

    from phiguard.storage import bulk

    def lines(data: bytes) -> int:
        return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")

    def special(data: bytes) -> bool:
        counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
        if counts[:0x20].sum() != counts[0x0A] + counts[0x0D] or counts[[0x5C, 0x7F, 0xC2]].any():
            return True
        return any(counts[seq[0]] and seq in data for seq in bulk._SPECIAL_UTF8)

    rng = random.Random(7)
    alphabet = [b"a", b",", b'"', b"\n", b"\r", b"\r\n", b"\t", b"\\", b"\x7f", b"\xc2\xa0"]
    alphabet += [b"\xe9\x99\xb3", *bulk._SPECIAL_UTF8, b"\xe2\x82\xac", b"\x00"]
    found = set()
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet[: rng.randint(4, len(alphabet))]) for _ in range(20))
        end = rng.randint(0, len(data))
        assert bulk._lines(data, end) == lines(data[:end])
        assert bulk._maybe_special(data) == special(data), data
        found.add(special(data))
    assert found == {True, False}
