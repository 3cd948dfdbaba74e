"""Helpers shared by the audit-log tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.log import AuditLog
from phiguard.audit.verify import Report, verify_log
from phiguard.clock import FixedClock
from phiguard.settings import Settings


def reopen(home: Path, clock: FixedClock | None = None) -> App:
    return App.open(Settings(home=home), clock=clock, migrate=False)


def verify_home(home: Path) -> Report:
    app = reopen(home)
    try:
        return verify_log(AuditLog(app))
    finally:
        app.close()


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def home(tmp_path: Path, clock: FixedClock) -> Iterator[Path]:
    """A fresh SQLite home; the app is closed before the test gets the folder."""
    path = tmp_path / "home"
    App.init(Settings(home=path), clock=clock).close()
    yield path
