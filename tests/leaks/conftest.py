from __future__ import annotations

import pytest

from tests.leaks.world import World, build


@pytest.fixture(scope="session")
def world_app(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One small hospital for the whole session (building it is most of these tests' cost);
    scans only add their own records, so tests sharing it stay independent."""
    from datetime import datetime

    from phiguard.app import App
    from phiguard.clock import HKT, FixedClock
    from phiguard.settings import Settings

    root = tmp_path_factory.mktemp("leak-world")
    app = App.init(
        Settings(home=root / "home"), clock=FixedClock(datetime(2026, 4, 3, 9, 0, tzinfo=HKT))
    )
    world = build(app, root)
    yield app, world
    app.close()


@pytest.fixture
def world(world_app) -> World:  # type: ignore[no-untyped-def]
    return world_app[1]


@pytest.fixture
def wapp(world_app):  # type: ignore[no-untyped-def]
    return world_app[0]


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
