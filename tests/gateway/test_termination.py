"""Credentials live and die with their grant; live sessions end at once when the grant is
revoked or expires or the vendor is suspended."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from phiguard.access import grants, vendors
from phiguard.errors import Conflict
from phiguard.gateway import credentials
from tests.gateway.test_gateway import wait_for


def _dies(conn: psycopg.Connection, gw) -> str:
    """Run queries until the gateway ends the session; the client's error message."""
    gw.thread.check_now()
    with pytest.raises(psycopg.OperationalError) as info:
        for _ in range(50):
            conn.execute("SELECT count(*) FROM wards").fetchall()
            gw.thread.check_now()
    return str(info.value)


def test_revoking_the_grant_ends_the_session(world, gw):
    gid = world.grant()
    with psycopg.connect(gw.url(world.credential(gid)), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM wards").fetchone() == (2,)
        grants.revoke(world.app, gid, "m1", "maintenance window closed")
        message = _dies(conn, gw)
    assert "terminating connection" in message and f"grant {gid} is revoked" in message


def test_expiry_ends_the_session_and_the_credential(world, gw):
    gid = world.grant(hours=1)
    issued = world.credential(gid)
    with psycopg.connect(gw.url(issued), autocommit=True) as conn:
        conn.execute("SELECT 1").fetchall()
        world.clock.advance(timedelta(hours=2))
        try:
            message = _dies(conn, gw)
        finally:
            world.clock.advance(timedelta(hours=-2))
    assert "expired" in message
    world.clock.advance(timedelta(hours=2))
    try:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(gw.url(issued))
        with pytest.raises(Conflict, match="expired"):
            credentials.issue(world.app, gid, actor="c1")
    finally:
        world.clock.advance(timedelta(hours=-2))


def test_suspending_the_vendor_ends_every_session_of_its_people(world, gw, pas_db):
    g1, g2 = world.grant("c2"), world.grant("c2", cluster="KWC")
    c1 = psycopg.connect(gw.url(world.credential(g1)), autocommit=True)
    c2 = psycopg.connect(gw.url(world.credential(g2)), autocommit=True)
    with c1, c2:
        vendors.suspend(world.app, "V1", reason="suspected leak", actor="m1")
        try:
            assert "vendor V1 is suspended" in _dies(c1, gw)
            assert "vendor V1 is suspended" in _dies(c2, gw)
        finally:
            vendors.resume(world.app, "V1", reason="cleared", actor="m1")
            for acc in ("c1", "c2"):
                vendors.enable_account(world.app, acc, reason="cleared", actor="m1")
    assert wait_for(lambda: not gw.gateway.sessions)


def test_wrong_secret_unknown_grant_and_replaced_credentials_are_refused(world, gw):
    gid = world.grant()
    old = world.credential(gid)
    new = world.credential(gid)  # issuing again revokes the previous credential
    bad = credentials.Issued(old.credential_id, gid, "c1", "not-the-secret", old.expires_at)
    ghost = credentials.Issued(old.credential_id, "G-nope", "c1", old.secret, old.expires_at)
    for issued in (old, bad, ghost):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(gw.url(issued))
    with psycopg.connect(gw.url(new), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with world.app.session() as s:
        from phiguard.gateway.models import GatewayCredential

        kept = s.get(GatewayCredential, new.credential_id)
        assert new.secret.encode() not in kept.stored_key + kept.server_key + kept.salt
