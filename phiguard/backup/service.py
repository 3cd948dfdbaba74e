"""Backup services: key generation, create, verify, restore, retention, scheduling.

The CLI and the console call these; see :mod:`phiguard.backup.archive` for the file format and
:mod:`phiguard.backup.snapshot` for how a live home is copied consistently.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrage import x25519

import phiguard
from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.backup import archive, snapshot
from phiguard.crypto.keyring import write_private
from phiguard.errors import HomeError, InputError, IntegrityError, UsageError
from phiguard.settings import Settings

RECIPIENTS_FILE = "backup-recipients.txt"


def recipients_path(app: App) -> Path:
    return app.home.keys / RECIPIENTS_FILE


def home_recipients(app: App) -> list[x25519.Recipient]:
    path = recipients_path(app)
    if not path.exists():
        return []
    return [
        archive.parse_recipient(line)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def keygen(app: App, identity_out: Path, *, actor: str = "cli") -> str:
    """Create an age identity at ``identity_out`` (0600, to be kept OFF this machine) and add
    its recipient to the home, so future backups are encrypted to it. Returns the recipient."""
    if identity_out.exists():
        raise UsageError(f"{identity_out} exists; refusing to overwrite an identity")
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = app.clock.now().isoformat(timespec="seconds")
    write_private(
        identity_out,
        (
            f"# phiguard backup identity, created {created}\n# recipient: {recipient}\n{identity}\n"
        ).encode(),
    )
    path = recipients_path(app)
    existing = (
        path.read_text() if path.exists() else "# age recipients every backup is encrypted to\n"
    )
    write_private(path, (existing + recipient + "\n").encode())
    app.record(Tag.BACKUP_RECIPIENT_ADDED, actor=actor, subject=recipient)
    return recipient


@dataclass
class BackupSummary:
    path: Path
    bytes: int
    files: int
    tree_size: int
    checkpoint: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "files": self.files,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
        }


def create(
    app: App, out: Path, *, extra_recipients: Sequence[str] = (), actor: str = "cli"
) -> BackupSummary:
    """Back the home up into ``out`` and record it in the audit log."""
    recipients = home_recipients(app) + [archive.parse_recipient(r) for r in extra_recipients]
    if out.exists():
        raise UsageError(f"{out} exists; choose a new file name")
    summary = write(app, out, recipients)
    app.record(
        Tag.BACKUP_CREATED,
        actor=actor,
        subject=out.name,
        bytes=summary.bytes,
        tree_size=summary.tree_size,
        files=summary.files,
    )
    return summary


def write(
    app: App, out: Path, recipients: list[x25519.Recipient], *, work_dir: Path | None = None
) -> BackupSummary:
    """Snapshot the home and archive it into ``out`` (a new file, or a pipe to stream it
    elsewhere); writes nothing into the home but the database copy, in a private work folder
    (``work_dir``, default: inside the home, so it is on the same disk and as protected),
    deleted afterwards. Records nothing: :func:`create` is the user-facing call."""
    if not recipients:
        raise InputError("no backup recipients: add one with `phiguard backup keygen`")
    if out.exists() and not archive.is_stream(out):
        raise UsageError(f"{out} exists; choose a new file name")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a folder")
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=work_dir or app.home.root))
    try:
        snap = snapshot.take(app, work)
        meta = {
            "created": app.clock.now().isoformat(timespec="seconds"),
            "phiguard": phiguard.__version__,
            "database": snap.database,
            "checkpoint": snap.checkpoint,
            "tree_size": snap.tree_size,
        }
        try:
            manifest = archive.write_backup(snap, out, recipients, meta)
        finally:
            snap.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = 0 if archive.is_stream(out) else out.stat().st_size
    return BackupSummary(out, size, len(manifest["files"]), snap.tree_size, snap.checkpoint)


def verify(path: Path, identity_file: Path) -> dict[str, Any]:
    """Decrypt and check every file against the manifest, without restoring anything."""
    result = archive.read_backup(path, archive.load_identities(identity_file))
    m = result.manifest
    return {
        "ok": True,
        "files": len(result.files),
        "tree_size": m.get("tree_size"),
        "created": m.get("created"),
        "database": m.get("database"),
    }


def restore(
    path: Path, identity_file: Path, new_home: Path, *, database_url: str | None = None
) -> dict[str, Any]:
    """Restore into ``new_home`` (which must not exist), then verify its audit log and that
    the log holds the checkpoint recorded in the manifest."""
    if new_home.exists() and any(new_home.iterdir()):
        raise HomeError(f"{new_home} exists and is not empty; restore never overwrites a home")
    identities = archive.load_identities(identity_file)
    partial = new_home.with_name(new_home.name + ".restoring")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        result = archive.read_backup(path, identities, extract_to=partial)
        os.chmod(partial / "keys", 0o700)
        if new_home.exists():
            new_home.rmdir()
        partial.rename(new_home)  # its files and folders were fsynced by read_backup
        archive.fsync_dir(new_home.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    m = result.manifest
    if m.get("database") != "sqlite" and not database_url:
        raise UsageError(
            "this backup's operational database was external (PostgreSQL): restore "
            "it with pg_restore and pass --database-url"
        )
    settings = Settings(home=new_home, database_url=database_url)
    app = App.open(settings)
    try:
        from phiguard.audit.verify import verify_log

        # A live snapshot may hold node-file tails past the durable state (the tree files are
        # copied after the journal while ingestion goes on). Opening the writer runs the log's
        # own crash recovery, which cuts them back, exactly as after a crash of the source.
        app.audit.publish()
        report = verify_log(app.audit)
        if not report.ok:
            raise IntegrityError(f"restored audit log does not verify: {report.findings[0]}")
        expected = m.get("checkpoint")
        if expected:
            size = int(expected.splitlines()[1])
            root = base64.b64decode(expected.splitlines()[2])
            if app.audit.size < size or app.audit.root_at(size) != root:
                raise IntegrityError(
                    "restored audit log does not contain the manifest's checkpoint"
                )
        return {
            "home": str(new_home),
            "files": len(result.files),
            "tree_size": app.audit.size,
            "manifest_tree_size": m.get("tree_size"),
            "verified": True,
        }
    finally:
        app.close()


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (``*.phgbak``) in ``folder``."""
    if keep < 1:
        raise UsageError("keep must be at least 1")
    backups = sorted(folder.glob("*.phgbak"), key=lambda p: p.stat().st_mtime, reverse=True)
    gone = backups[keep:]
    for p in gone:
        p.unlink()
    return gone


class BackupScheduler:
    """Takes a backup every ``interval`` seconds into ``folder`` and keeps the newest ``keep``.

    Started by ``phiguard serve`` when ``PHIGUARD_BACKUP_DIR`` is set. Runs in a daemon thread;
    a failed backup is recorded and retried at the next interval, never silently dropped.
    """

    def __init__(self, app: App, folder: Path, interval: float, keep: int) -> None:
        self.app, self.folder, self.interval, self.keep = app, folder, interval, keep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None
        self.taken: list[Path] = []

    def run_once(self) -> Path:
        stamp = self.app.clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        out = self.folder / f"phiguard-{stamp}.phgbak"
        create(self.app, out, actor="scheduler")
        prune(self.folder, self.keep)
        self.taken.append(out)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:
                self.last_error = exc
                self.app.record(
                    Tag.BACKUP_FAILED,
                    actor="scheduler",
                    subject=str(self.folder),
                    error=type(exc).__name__,
                )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="backup-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


__all__ = ["BackupScheduler", "create", "keygen", "prune", "restore", "verify", "write"]
