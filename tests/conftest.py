"""Shared fixtures.

``app`` is a fresh home in a temporary folder, run once on SQLite and once on the real
PostgreSQL server (the ``backend`` parameter): the same tests prove both. ``sqlite_app`` is
for tests that are about something other than the operational database. ``cli`` invokes the
real Typer app through its runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from tests import pg


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    with pg.server() as dsn:
        yield dsn


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 4, 2, 9, 0, tzinfo=HKT))


def _make_app(home: Path, url: str | None, clock: FixedClock) -> App:
    settings = Settings(home=home, database_url=url)
    return App.init(settings, clock=clock)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    admin = request.getfixturevalue("pg_admin")
    with pg.fresh_database(admin) as url:
        yield url


@pytest.fixture
def app(tmp_path: Path, database_url: str | None, clock: FixedClock) -> Iterator[App]:
    phg = _make_app(tmp_path / "home", database_url, clock)
    yield phg
    phg.close()


@pytest.fixture
def sqlite_app(tmp_path: Path, clock: FixedClock) -> Iterator[App]:
    phg = _make_app(tmp_path / "home", None, clock)
    yield phg
    phg.close()


class Cli:
    """Runs ``phiguard`` in-process against one home."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.runner = CliRunner()
        self.env = env or {}

    def __call__(self, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        from phiguard.cli.main import app

        return self.runner.invoke(
            app,
            ["--home", str(self.home), *args],
            input=input,
            env=self.env,
            catch_exceptions=False,
        )


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None) -> Cli:
    env = {"PHIGUARD_DATABASE_URL": database_url} if database_url else {}
    return Cli(tmp_path / "home", env)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")
