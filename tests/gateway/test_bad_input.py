"""Bad input is refused cleanly: the session and the gateway stay healthy, and the attempt is
in the audit log."""

from __future__ import annotations

import os
import socket
import struct

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phiguard.gateway import protocol as pq
from phiguard.gateway.policy import Policy, Scope
from tests.gateway.test_gateway import gateway_events


def raw_roundtrip(conn: psycopg.Connection, data: bytes) -> list[tuple[bytes, bytes]]:
    """Send raw bytes on a psycopg connection's socket; read messages up to ReadyForQuery."""
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    sock.setblocking(True)
    sock.settimeout(10)
    try:
        sock.sendall(data)
        buf, out = b"", []
        while True:
            while len(buf) >= 5:
                (n,) = struct.unpack("!i", buf[1:5])
                if len(buf) < n + 1:
                    break
                out.append((buf[:1], buf[5 : n + 1]))
                buf = buf[n + 1 :]
                if out[-1][0] in (b"Z",) or (out[-1][0] == b"E" and b"SFATAL" in out[-1][1]):
                    return out
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buf += chunk
    finally:
        sock.close()


def errors(msgs: list[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [pq.error_fields(b) for k, b in msgs if k == b"E"]


def healthy(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT name_en FROM patients WHERE patient_id = 'P00003'").fetchone() == (
        "CHAN Tai Man 3",
    )


@pytest.fixture
def conn(url):
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def test_malformed_messages_are_refused_and_the_session_goes_on(conn):
    broken_parse = pq.message(b"P", b"s1\x00SELECT 1")  # no terminators
    broken_bind = pq.message(b"B", b"\x00\x00\x00\x01\x00")  # truncated counts
    for bad in (broken_parse, broken_bind, pq.message(b"E", b"x")):
        msgs = raw_roundtrip(conn, bad + pq.message(b"S"))
        (err,) = errors(msgs)
        assert err["S"] == "ERROR" and err["C"] in ("08P01", "34000")
        assert msgs[-1][0] == b"Z"
        assert healthy(conn)


def test_unknown_message_type_and_fast_path_calls(conn):
    msgs = raw_roundtrip(conn, pq.message(b"F", b"\x00\x00\x00\x01"))
    assert "fast-path" in errors(msgs)[0]["M"] and msgs[-1][0] == b"Z"
    assert healthy(conn)
    msgs = raw_roundtrip(conn, pq.message(b"!", b"junk") + pq.message(b"S"))
    assert errors(msgs)[0]["C"] == "08P01"
    assert healthy(conn)


def test_oversized_message_is_skipped_not_held(conn, gw):
    huge = "x" * (gw.gateway.settings.max_message_bytes + 10)
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="larger than"):
        conn.execute(f"SELECT '{huge}'")
    assert healthy(conn)


def test_broken_framing_ends_only_that_session(url, gw):
    conn = psycopg.connect(url, autocommit=True)
    msgs = raw_roundtrip(conn, b"Q\x00\x00\x00\x02")  # length below 4
    assert errors(msgs)[0]["S"] == "FATAL"
    conn.close()
    with psycopg.connect(url, autocommit=True) as other:  # the gateway carries on
        assert healthy(other)


def test_garbage_instead_of_a_startup_packet(gw, url):
    for junk in (
        b"\x00\x00\x00\x08\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x00\x00\x00\x10" + b"\x00\x03\x00\x00" + b"user\x00",
    ):
        with socket.create_connection((gw.host, gw.port), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            reply = s.recv(4096)
        assert reply == b"" or reply[:1] == b"E"
    with psycopg.connect(url, autocommit=True) as c:
        assert healthy(c)


@pytest.mark.parametrize(
    "sql",
    [
        "FROBNICATE patients",
        "SELECT name_en FROM patients; DROP TABLE wards",
        "SELECT 1; SELECT 2; TRUNCATE episodes",
        "SELECT name_en FROM patients /* ; */ ; DELETE FROM wards",
        "SELECT 1 -- harmless\n; DROP TABLE wards",
        "/* leading */ DROP /* middle */ TABLE wards",
        "SELECT 1;;;; DROP TABLE wards",
        "select 1; CoPy wards TO '/tmp/x'",
    ],
)
@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_hidden_statements_refuse_the_whole_string(conn, pas_db, sql, prepare):
    with pytest.raises(psycopg.Error):
        conn.execute(sql, prepare=prepare)
    assert healthy(conn)
    with psycopg.connect(pas_db) as direct:  # nothing of it ran
        assert direct.execute("SELECT count(*) FROM wards").fetchone() == (2,)
        assert direct.execute("SELECT count(*) FROM episodes").fetchone() == (300,)


def test_comments_and_strings_that_look_like_statements_are_data(conn):
    assert conn.execute("SELECT $$; DROP TABLE wards; $$ AS s").fetchone() == (
        "; DROP TABLE wards; ",
    )
    assert conn.execute("SELECT 'it''s -- not a comment' /* ; DROP */").fetchone() == (
        "it's -- not a comment",
    )
    assert conn.execute("SELECT count(*) FROM wards -- ; DROP TABLE wards").fetchone() == (2,)


def test_refused_attempts_are_in_the_audit_log(world, gw, conn):
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT 1; DROP TABLE wards")
    gw.flush()
    denied = [e for e in gateway_events(world.app) if e["outcome"] == "denied"]
    assert denied and all(e["gateway"]["decision"] == "deny" for e in denied if "gateway" in e)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(sql=st.text(max_size=120))
def test_policy_never_crashes_on_arbitrary_text(gw, sql):
    scope = Scope("G-x", "KEC", frozenset({"name"}), frozenset({"read"}), 10)
    plan = Policy(gw.gateway.catalog, scope).plan(sql)
    for j in plan.statements:
        assert j.allowed or j.reasons
