"""Backups: the restore drill, tampering and truncation, and no plaintext in the file."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pyrage
import pytest

from phiguard.app import App
from phiguard.backup import archive, service, snapshot
from phiguard.errors import CryptoError, HomeError, IntegrityError
from phiguard.storage.importer import import_file
from tests.factories import patient_rows, write_csv, write_events


@pytest.fixture
def populated(sqlite_app: App, tmp_path: Path) -> tuple[App, list[dict[str, str]], Path]:
    rows = patient_rows(30)
    import_file(sqlite_app, "patients", write_csv(tmp_path / "p.csv", rows))
    from phiguard.audit.ingest import ingest_files

    ingest_files(sqlite_app, [write_events(tmp_path / "e.csv", rows)])
    identity = tmp_path / "backup.key"
    service.keygen(sqlite_app, identity)
    return sqlite_app, rows, identity


def test_restore_drill_while_ingesting(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, rows, identity = populated
    from phiguard.audit.ingest import ingest_files

    more = [write_events(tmp_path / f"more{i}.csv", rows, account=f"acct-{i}") for i in range(3)]
    worker = threading.Thread(target=lambda: [ingest_files(app, [m]) for m in more])
    worker.start()
    out = tmp_path / "b.phgbak"
    summary = service.create(app, out)
    worker.join()
    assert summary.tree_size > 0 and out.stat().st_size > 0
    assert service.verify(out, identity)["ok"]
    restored = tmp_path / "restored"
    result = service.restore(out, identity, restored)
    assert result["verified"] and result["tree_size"] >= summary.tree_size
    from sqlalchemy import func, select

    from phiguard.settings import Settings
    from phiguard.storage.models import Patient

    again = App.open(Settings(home=restored))
    try:
        with again.session() as s:
            assert s.scalar(select(func.count()).select_from(Patient)) == 30
    finally:
        again.close()


def test_restore_never_overwrites_a_home(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _, identity = populated
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    with pytest.raises(HomeError, match="never overwrites"):
        service.restore(out, identity, app.home.root)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_or_truncated_backups_are_rejected(populated, tmp_path: Path, damage: str) -> None:  # type: ignore[no-untyped-def]
    app, _, identity = populated
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    data = bytearray(out.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 100]
    out.write_bytes(bytes(data))
    with pytest.raises((CryptoError, IntegrityError)):
        service.verify(out, identity)
    with pytest.raises((CryptoError, IntegrityError)):
        service.restore(out, identity, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_wrong_identity_cannot_read(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = populated
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    from pyrage import x25519

    other = tmp_path / "other.key"
    other.write_text(str(x25519.Identity.generate()) + "\n")
    with pytest.raises(CryptoError):
        service.verify(out, other)


def test_no_plaintext_identifier_in_a_backup(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, rows, _ = populated
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    data = out.read_bytes()
    for r in rows:
        for needle in (r["hkid"], r["name_en"], r["hospital_no"], r["phone"]):
            assert needle.encode() not in data


def test_cli_backup_round_trip(sqlite_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    key = tmp_path / "id.key"
    assert sqlite_cli("backup", "keygen", str(key)).exit_code == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    out = tmp_path / "x.phgbak"
    res = sqlite_cli("backup", "create", str(out))
    assert res.exit_code == 0, res.output
    assert sqlite_cli("backup", "verify", str(out), "--identity", str(key)).exit_code == 0
    res = sqlite_cli(
        "backup", "restore", str(out), "--identity", str(key), "--to", str(tmp_path / "new")
    )
    assert res.exit_code == 0, res.output
    assert "audit log verified" in res.stdout
    bad = sqlite_cli("backup", "verify", str(tmp_path / "missing.phgbak"), "--identity", str(key))
    assert bad.exit_code == 2


def test_no_recipient_is_a_clear_error(sqlite_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    res = sqlite_cli("backup", "create", str(tmp_path / "x.phgbak"))
    assert res.exit_code == 2 and "no backup recipients" in res.stderr


def test_backup_streams_from_the_home_and_leaves_nothing_behind(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = populated
    work = tmp_path / "work"
    work.mkdir()
    snap = snapshot.take(app, work)
    snap.wait_for_database()
    # only the database is copied; everything else is read from the home while archiving
    assert [p.name for p in work.iterdir()] == ["phiguard.db"]
    streamed = [m for m in snap.members if m.path is not None and m.name != "phiguard.db"]
    assert streamed and all(m.path.is_relative_to(app.home.root) for m in streamed)
    snap.close()
    service.create(app, tmp_path / "b.phgbak")
    assert not list(app.home.root.glob(".backup-*"))


def test_a_file_cut_while_it_is_archived_fails_cleanly(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = populated
    work = tmp_path / "work"
    work.mkdir()
    snap = snapshot.take(app, work)
    seg = next(m for m in snap.members if m.name.startswith("audit/journal/"))
    assert seg.path is not None
    os.truncate(seg.path, seg.size // 2)  # as if another process cut it during the backup
    out = tmp_path / "b.phgbak"
    with pytest.raises(HomeError, match="became shorter"):
        archive.write_backup(snap, out, service.home_recipients(app), {})
    snap.close()
    assert list(tmp_path.glob("b.phgbak*")) == []


def test_standard_tools_can_read_a_backup(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """age -d | zstd -d | tar x recovers a home without phiguard (here: rage via pyrage)."""
    app, _, identity = populated
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    plain = pyrage.decrypt(out.read_bytes(), archive.load_identities(identity))
    listing = subprocess.run(
        "zstd -dc | tar -tvf -", input=plain, shell=True, capture_output=True, check=True
    ).stdout.decode()
    assert "home/phiguard.db" in listing and "home/audit/journal/" in listing
    assert listing.rstrip().endswith("MANIFEST.json")


def test_a_backup_can_stream_through_a_pipe(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _, identity = populated
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    recipients = service.home_recipients(app)
    writer = threading.Thread(target=service.write, args=(app, fifo, recipients))
    writer.start()
    restored = service.restore(fifo, identity, tmp_path / "restored")
    writer.join()
    assert restored["verified"] and restored["tree_size"] >= restored["manifest_tree_size"] > 0


def test_derived_detection_files_are_left_out(populated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Day summaries and spill files are rebuilt from the event store; a backup of a home
    that ran detection does not carry them (they can be as large as the events)."""
    app, _, identity = populated
    root = app.home.root / "detection"
    (root / "days" / "day=2026-04-01").mkdir(parents=True)
    (root / "days" / "day=2026-04-01" / "accesses.parquet").write_bytes(b"x" * 1000)
    (root / "spill").mkdir(parents=True, exist_ok=True)
    (root / "spill" / "duckdb_temp_block-1.block").write_bytes(b"y" * 1000)
    (root / "snapshot").mkdir(parents=True, exist_ok=True)
    (root / "snapshot" / "accounts.parquet").write_bytes(b"z")
    out = tmp_path / "b.phgbak"
    service.create(app, out)
    restored = tmp_path / "restored"
    service.restore(out, identity, restored)
    assert (restored / "detection" / "snapshot" / "accounts.parquet").read_bytes() == b"z"
    assert not (restored / "detection" / "days").exists()
    assert not (restored / "detection" / "spill").exists()
