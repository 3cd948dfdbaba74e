"""Consistent snapshots of a live home, taken without stopping ingestion.

Each part of the home has its own way to a consistent copy:

* the operational SQLite database: SQLite's online backup API (a transactionally consistent
  copy while writers continue);
* the audit log: :meth:`AuditLog.snapshot_to` when the log offers it (a prefix of its
  append-only files up to a durable state), otherwise a copy under the log's own lock;
* the event store: its Parquet parts are immutable once written, so the copy takes the
  ``applied`` mark first and then only parts below it — a store that is behind the log is
  brought up to date from the log on first open after a restore;
* keys and the home marker: small files, copied as they are.

Exports (files a user asked phiguard to write with identifiers) and operational logs are
never part of a backup.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phiguard.app import App

EXCLUDED_TOP = frozenset({"exports", "logs", "tmp", "audit.lock"})


@dataclass
class Snapshot:
    folder: Path  # a home-shaped tree ready to archive
    checkpoint: str | None  # the audit log's latest signed checkpoint in the snapshot
    tree_size: int
    database: str


def _copy_sqlite(src: Path, dst: Path) -> None:
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def _copy_audit(app: App, dst: Path) -> None:
    log = app.audit
    snap = getattr(log, "snapshot_to", None)
    if snap is not None:
        snap(dst)
        return
    # Fallback for a log without its own snapshot: its files only grow or are replaced
    # atomically, so copying the durable state first and the append-only files after it
    # yields a prefix that recovery accepts (it replays frames past the state, drops a tail).
    dst.mkdir(parents=True)
    src = app.home.audit
    state = src / "state.json"
    if state.exists():
        shutil.copy2(state, dst / "state.json")
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or rel == Path("state.json") or path.name.endswith(".tmp"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)


def _copy_events(app: App, dst: Path) -> None:
    from phiguard.storage.events import STATE_FILE, EventStore

    store = EventStore.of(app)
    applied = store.applied()  # read first: every part below it is complete and immutable
    dst.mkdir(parents=True, exist_ok=True)
    for part in store.parts():
        first = store.first_index(part)
        if first is not None and first < applied:
            target = dst / part.relative_to(store.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(part, target)
    (dst / STATE_FILE).write_text(json.dumps({"applied": applied}))


def take(app: App, folder: Path) -> Snapshot:
    """Copy a consistent view of ``app``'s home into ``folder`` (which must not exist)."""
    root = app.home.root
    folder.mkdir(parents=True)
    os.chmod(folder, 0o700)
    # order matters: the checkpoint first (the copy holds at least the tree it signs), then
    # events (every part copied is covered by the audit copy), then the audit log
    checkpoint, size = _latest_checkpoint(app)
    _copy_events(app, folder / "events")
    _copy_audit(app, folder / "audit")
    db = root / "phiguard.db"
    database = "sqlite" if db.exists() else "external"
    if db.exists():
        _copy_sqlite(db, folder / "phiguard.db")
    for entry in sorted(root.iterdir()):
        if entry.name in EXCLUDED_TOP or entry.name in {"events", "audit"}:
            continue
        if entry.name.startswith(".backup-"):
            continue  # a backup in progress (this one's own work folder among them)
        if entry.name.startswith("phiguard.db"):
            continue  # the WAL and shm files are folded into the backup-API copy
        if entry.is_dir():
            shutil.copytree(entry, folder / entry.name)
        else:
            shutil.copy2(entry, folder / entry.name)
    return Snapshot(folder, checkpoint, size, database)


def _latest_checkpoint(app: App) -> tuple[str | None, int]:
    note = app.audit.latest_checkpoint()
    if note is None:
        return None, 0
    text = note.decode()
    return text, int(text.splitlines()[1])  # C2SP body: origin, size, root
