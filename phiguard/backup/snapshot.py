"""Consistent snapshots of a live home, taken without stopping ingestion or copying the home.

A snapshot is a list of :class:`Member` s: for each file of the backup, either the bytes to
store (small files that may be replaced while the backup runs, read once at snapshot time) or
a file and how many of its first bytes to store (files that are immutable or only grow). The
archive streams the second kind straight from the home, so nothing but the operational
database is copied. Each part of the home has its own way to a consistent view:

* the event store: its Parquet parts are immutable once written, so the snapshot reads the
  ``applied`` mark first and then takes only the parts below it — a store that is behind the
  log is brought up to date from the log on first open after a restore;
* the audit log: ``state.json`` is read first (it only moves forward, and everything it
  describes is durable); then every journal segment and ``checkpoints.log`` is taken up to
  its length at that moment (they only grow: a prefix that recovery accepts — it replays
  the frames past the state and cuts a torn tail), and every ``tree/NN.nodes`` file up to
  the nodes of the state's tree (those are durable and never rewritten; recovery rebuilds
  the rest from the journal);
* the operational SQLite database: SQLite's online backup API into the work folder (a
  transactionally consistent copy while writers continue); this is the only copy made;
* keys, ``log.json`` and the home marker: small files, read into memory.

Exports (files a user asked phiguard to write with identifiers) and operational logs are
never part of a backup.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phiguard.errors import HomeError

if TYPE_CHECKING:
    from phiguard.app import App

EXCLUDED_TOP = frozenset({"exports", "logs", "tmp", "audit.lock"})
#: derived from the event store and rebuilt by the next run when missing: detection's day
#: summaries (docs/dev/detection.md, ADR 10) and DuckDB's spill files
DERIVED = ("detection/days/", "detection/spill/")
#: audit files that only grow; anything else under audit/ is small and read whole
_APPEND_ONLY = ("journal/", "checkpoints.log")


@dataclass
class Member:
    """One file of the backup, by its path relative to the home."""

    name: str
    mode: int
    mtime: float
    data: bytes | None = None  # stored as is
    path: Path | None = None  # or: the first ``size`` bytes of this file
    size: int = 0
    compress: bool = True  # False: zstd cannot shrink it (ciphertext, hashes)

    @property
    def length(self) -> int:
        return len(self.data) if self.data is not None else self.size


@dataclass
class Snapshot:
    members: list[Member]
    checkpoint: str | None  # the audit log's latest signed checkpoint in the snapshot
    tree_size: int
    database: str
    _db_copy: threading.Thread | None = field(default=None, repr=False)
    _db_error: list[BaseException] = field(default_factory=list, repr=False)

    def wait_for_database(self) -> None:
        """Block until the database copy (running since :func:`take`) is complete."""
        if self._db_copy is not None:
            self._db_copy.join()
            self._db_copy = None
        if self._db_error:
            raise self._db_error[0]

    def close(self) -> None:
        """Wait for the database copy without raising (after a failure elsewhere)."""
        if self._db_copy is not None:
            self._db_copy.join()
            self._db_copy = None


def _read(path: Path, name: str) -> Member:
    st = path.stat()
    return Member(name, stat.S_IMODE(st.st_mode), st.st_mtime, data=path.read_bytes())


def _prefix(path: Path, name: str, size: int | None = None) -> Member:
    st = path.stat()
    length = st.st_size if size is None else min(size, st.st_size)
    return Member(name, stat.S_IMODE(st.st_mode), st.st_mtime, path=path, size=length)


def _events(app: App) -> list[Member]:
    from phiguard.storage.events import STATE_FILE, EventStore

    store = EventStore.of(app)
    applied = store.applied()  # read first: every part below it is complete and immutable
    members = []
    for part in store.parts():
        first = store.first_index(part)
        if first is not None and first < applied:
            members.append(_prefix(part, "events/" + part.relative_to(store.root).as_posix()))
    state = json.dumps({"applied": applied}).encode()
    members.append(Member(f"events/{STATE_FILE}", 0o600, 0.0, data=state))
    return members


def _audit(app: App) -> list[Member]:
    src = app.home.audit
    state_path = src / "state.json"
    members = []
    tree_size = 0
    if state_path.exists():
        state = _read(state_path, "audit/state.json")
        members.append(state)
        assert state.data is not None
        tree_size = int(json.loads(state.data)["size"])
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if rel == "state.json" or path.name.endswith(".tmp") or not path.is_file():
            continue
        name = "audit/" + rel
        if rel.startswith(_APPEND_ONLY):
            members.append(_prefix(path, name))
            # journal frames are AES-GCM ciphertext but for their small headers
            members[-1].compress = not rel.startswith("journal/")
        elif rel.startswith("tree/") and path.name.endswith(".nodes"):
            level = int(path.name.split(".")[0])
            members.append(_prefix(path, name, (tree_size >> level) * 32))
            members[-1].compress = False  # SHA-256 hashes
        else:
            members.append(_read(path, name))
    return members


def _copy_sqlite(src: Path, dst: Path) -> None:
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dst)
        try:
            target.execute("PRAGMA synchronous=OFF")  # a work copy, deleted after the backup
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def take(app: App, work: Path) -> Snapshot:
    """Fix a consistent view of ``app``'s home; ``work`` (an empty private folder) receives
    the copy of the operational database, which continues in a background thread until
    :meth:`Snapshot.wait_for_database` (the archive streams the other files meanwhile)."""
    root = app.home.root
    # order matters: the checkpoint first (the snapshot holds at least the tree it signs),
    # then events (every part taken is covered by the audit log's state), then the audit log
    checkpoint, size = _latest_checkpoint(app)
    members = _events(app)
    members += _audit(app)
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name in EXCLUDED_TOP or name in {"events", "audit"} or name.startswith(".backup-"):
            continue  # .backup-*: a backup in progress (this one's own work folder among them)
        if name.startswith("phiguard.db"):
            continue  # the WAL and shm files are folded into the backup-API copy
        if entry.is_dir():
            for path in sorted(entry.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if path.is_file() and not rel.startswith(DERIVED):
                    members.append(_read(path, rel))
        elif entry.is_file():
            members.append(_read(entry, name))
    db = root / "phiguard.db"
    snap = Snapshot(members, checkpoint, size, "sqlite" if db.exists() else "external")
    if db.exists():
        copy = work / "phiguard.db"

        def run() -> None:
            try:
                _copy_sqlite(db, copy)
            except BaseException as exc:  # re-raised by wait_for_database
                snap._db_error.append(exc)

        snap._db_copy = threading.Thread(target=run, name="backup-sqlite", daemon=True)
        snap._db_copy.start()
        members.append(Member("phiguard.db", 0o600, 0.0, path=copy, size=-1))
    return snap


def resolve(member: Member) -> Member:
    """Fill in the size of a member whose file was still being written at snapshot time."""
    if member.path is not None and member.size < 0:
        st = os.stat(member.path)
        member.size, member.mtime = st.st_size, st.st_mtime
    return member


def _latest_checkpoint(app: App) -> tuple[str | None, int]:
    note = app.audit.latest_checkpoint()
    if note is None:
        return None, 0
    text = note.decode()
    try:
        return text, int(text.splitlines()[1])  # C2SP body: origin, size, root
    except (IndexError, ValueError) as exc:
        raise HomeError("the audit log's latest checkpoint is unreadable") from exc
