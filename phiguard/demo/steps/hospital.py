"""Chapter 1: a synthetic hospital, imported into an encrypted home."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from phiguard.demo.story import Story
from phiguard.storage.importer import import_file
from phiguard.storage.models import Account, Patient, Vendor

ORDER = ("vendors", "accounts", "patients", "grants", "encounters")


def _find(data: Path, kind: str) -> Path:
    for ext in ("csv", "parquet", "ndjson"):
        p = data / f"{kind}.{ext}"
        if p.exists():
            return p
    raise FileNotFoundError(data / f"{kind}.csv")


def run(story: Story) -> None:
    app = story.app
    story.chapter("1 · The hospital")
    for kind in ORDER:
        rep = import_file(app, kind, _find(story.data, kind), actor="demo")
        story.say(f"  imported {rep.inserted:>9,} {kind:<11} ({rep.rows_bad} bad rows)")
    with app.session() as s:
        by_cluster = Counter(
            dict(s.execute(select(Patient.cluster, func.count()).group_by(Patient.cluster)).all())
        )
        contractors = s.scalar(
            select(func.count()).select_from(Account).where(Account.employer != "HA")
        )
        vendors = s.scalar(select(func.count()).select_from(Vendor))
    clusters = ", ".join(f"{c} {n:,}" for c, n in sorted(by_cluster.items()))
    story.say(f"  patients by cluster: {clusters}")
    story.say(f"  {vendors} vendors with {contractors} contractor accounts")
    db = app.home.root / "phiguard.db"
    where = "in PostgreSQL" if not db.exists() else f"in {db.name}"
    story.say(
        f"  every HKID, hospital number, name, phone and address is AES-256-GCM encrypted {where};"
        " lookups go through keyed HMAC blind indexes"
    )
