"""The home directory: everything phiguard keeps for one hospital lives under it.

::

    HOME/
      phiguard.json   marker: format version, creation time, database kind
      phiguard.db     operational database (SQLite; absent when database_url is PostgreSQL)
      keys/           kek.json, keyring.json (0700 folder, 0600 files)
      events/         the analytics store: Parquet files of access events, DuckDB catalogue
      audit/          the tamper-evident log, checkpoints
      exports/        files a user explicitly asked phiguard to write with identifiers
      logs/           phiguard's own operational logs (never identifiers or secrets)
      tmp/            scratch files of a running job (e.g. a PMI bulk load's staging
                      files: tokens and blind indexes only), deleted when the job ends
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from phiguard.errors import HomeError

MARKER = "phiguard.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def exists(self) -> bool:
        return self.marker.is_file()

    def require(self) -> None:
        if not self.exists:
            raise HomeError(f"{self.root} is not a phiguard home (run `phiguard init` first)")

    def read_marker(self) -> dict[str, object]:
        self.require()
        return json.loads(self.marker.read_text())

    def create_layout(self, database: str, database_url: str | None = None) -> None:
        """Create the folders and the marker. Refuses to touch an existing home."""
        if self.exists:
            raise HomeError(f"{self.root} is already a phiguard home")
        if self.root.exists() and any(self.root.iterdir()):
            raise HomeError(f"{self.root} exists and is not empty; choose a new folder")
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in (self.keys, self.events, self.audit, self.exports, self.logs):
            sub.mkdir(exist_ok=True)
        os.chmod(self.keys, 0o700)
        doc = {
            "format": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": database,
        }
        if database_url:
            # Remembered so later commands find the same database; a password is never
            # written here (use PGPASSWORD or PHIGUARD_DATABASE_URL in the environment).
            doc["database_url"] = database_url
        self.marker.write_text(json.dumps(doc, indent=1) + "\n")
