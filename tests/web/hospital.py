"""A small synthetic hospital inside a test home: the demo generator's smallest size,
imported, its events ingested through the audit log, detection run once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phiguard.app import App


@dataclass
class Hospital:
    data: Path
    labels: dict[str, Any]
    alerts: list[dict[str, Any]]
    leak_dump: Path | None

    @property
    def critical(self) -> dict[str, Any]:
        return next(a for a in self.alerts if a["severity"] == "critical")


def build(app: App, folder: Path, *, patients: int = 1000, days: int = 2) -> Hospital:
    from phiguard.audit.ingest import ingest_file
    from phiguard.demo.generator import generate
    from phiguard.detection import alerts as alerts_svc
    from phiguard.detection.service import detect
    from phiguard.storage.importer import import_file

    summary = generate(folder, patients=patients, days=days, seed=1)
    for kind in ("vendors", "accounts", "patients", "grants", "encounters"):
        import_file(app, kind, folder / f"{kind}.csv", actor="test")
    ingest_file(app, folder / "events.parquet")
    detect(app)
    alerts = [
        alerts_svc.as_json(a, app.settings.timezone)
        for a in alerts_svc.list_alerts(app, status="all")
    ]
    labels = json.loads((folder / "labels.json").read_text())
    return Hospital(folder, labels, alerts, summary.leak_dump)
