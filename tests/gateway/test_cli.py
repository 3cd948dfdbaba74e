"""``phiguard gateway credential / terms / sessions / replay`` through the CLI runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg

from tests.conftest import Cli


def test_credential_sessions_and_replay(world, gw, pas_db):
    cli = Cli(
        world.app.home.root,
        env={
            "PHIGUARD_GATEWAY_UPSTREAM": pas_db,
            "PHIGUARD_GATEWAY_LISTEN": f"{gw.host}:{gw.port}",
        },
    )
    # the CLI runs on the real clock, the gateway on the test's: a window covering both
    gid = world.grant(until=datetime.now(UTC) + timedelta(hours=8))
    res = cli("gateway", "credential", "--grant", gid, "--as", "c1")
    assert res.exit_code == 0, res.output
    url = res.stdout.strip().splitlines()[0]
    assert url.startswith(f"postgresql://{gid}:") and f"{gw.port}/" in url
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM wards").fetchone() == (2,)
    gw.flush()
    from tests.gateway.test_gateway import wait_for

    wait_for(
        lambda: json.loads(cli("gateway", "sessions", "--grant", gid, "--format", "json").stdout)[
            0
        ]["ended_at"]
    )
    sessions = json.loads(cli("gateway", "sessions", "--grant", gid, "--format", "json").stdout)
    assert sessions[0]["statements"] == 1
    res = cli("gateway", "replay", sessions[0]["session_id"])
    assert res.exit_code == 0 and "SELECT count(*) FROM wards" in res.stdout


def test_bad_usage_is_one_line(world, gw, pas_db):
    cli = Cli(world.app.home.root, env={"PHIGUARD_GATEWAY_UPSTREAM": pas_db})
    res = cli("gateway", "credential", "--grant", "G-nope")
    assert res.exit_code == 2 and "unknown grant" in res.stderr
    res = cli("gateway", "terms", "--grant", world.grant(), "--allow", "everything", "--as", "m1")
    assert res.exit_code == 2 and "ddl or function:NAME" in res.stderr
    res = cli("gateway", "terms", "--grant", world.grant(), "--over-limit", "refuse", "--as", "c1")
    assert res.exit_code == 1 and "contractor" in res.stderr
    res = cli("gateway", "replay", "GS-nope")
    assert res.exit_code == 2
