"""Without a server on 127.0.0.1:5432 the suite starts a throwaway PostgreSQL itself; prove
that path works (it is what keeps the PostgreSQL half of the suite from ever being skipped)."""

from __future__ import annotations

import psycopg
import pytest

from phiguard.storage.base import make_engine, upgrade
from tests import pg


@pytest.mark.slow
def test_throwaway_server_runs_the_migrations() -> None:
    with pg._throwaway_server() as dsn, pg.fresh_database(dsn) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            tables = {r[0] for r in conn.execute("select tablename from pg_tables")}
    assert {"patients", "accounts", "grants", "alembic_version"} <= tables
