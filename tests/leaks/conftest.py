from __future__ import annotations

from pathlib import Path

import pytest

from tests.leaks.world import World, build


@pytest.fixture
def world(sqlite_app, tmp_path: Path) -> World:  # type: ignore[no-untyped-def]
    return build(sqlite_app, tmp_path)


class Recorder:
    """Wraps the app's audit log and remembers what was recorded (same contract)."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner
        self.entries: list[dict] = []

    def record_action(self, tag, *, actor, subject, detail):  # type: ignore[no-untyped-def]
        self.inner.record_action(tag, actor=actor, subject=subject, detail=detail)
        self.entries.append({"tag": str(tag), "actor": actor, "subject": subject, **detail})

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


@pytest.fixture
def audit(app):  # type: ignore[no-untyped-def]
    rec = Recorder(app.audit)
    app.__dict__["audit"] = rec
    return rec


@pytest.fixture
def sqlite_audit(sqlite_app):  # type: ignore[no-untyped-def]
    rec = Recorder(sqlite_app.audit)
    sqlite_app.__dict__["audit"] = rec
    return rec
