from __future__ import annotations

from pathlib import Path

import pytest

from tests.leaks.world import World, build


@pytest.fixture
def world(sqlite_app, tmp_path: Path) -> World:  # type: ignore[no-untyped-def]
    return build(sqlite_app, tmp_path)
