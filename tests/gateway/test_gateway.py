"""The gateway in front of a real PostgreSQL patient administration database, through psycopg
in both the simple and the extended query protocol."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from phiguard.audit.models import AuditSource
from phiguard.gateway import credentials
from phiguard.gateway.session import list_sessions, replay
from tests.gateway.conftest import hkid, start_gateway

KEC_VISIBLE = {f"P{i:05d}" for i in range(300) if i % 3 == 0 and i % 50 != 7}


def wait_for(probe, seconds: float = 10.0):
    """Poll until ``probe()`` is truthy (session ends are written after the disconnect)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def gateway_events(app) -> list[dict]:
    return [
        json.loads(d)
        for _i, d in app.audit.entries(0, None)
        if d.startswith(b"{") and b'"source":"GATEWAY"' in d
    ]


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_reads_are_masked_scoped_and_cut(url, prepare):
    with connect(url) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        cur = conn.execute(
            "SELECT patient_id, hkid, name_en, sex, cluster, phone "
            "FROM patients ORDER BY patient_id",
            prepare=prepare,
        )
        rows = cur.fetchall()
    assert len(rows) == 50  # the grant's row limit
    assert any("cut at 50 rows" in n for n in notices)
    assert {r[0] for r in rows} <= KEC_VISIBLE  # only the grant's cluster, no VIP
    assert all(r[1] == "***" and r[5] == "***" for r in rows)  # hkid, phone: not granted
    assert all(r[2].startswith("CHAN Tai Man") and r[4] == "KEC" for r in rows)


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_point_read_with_parameters(url, prepare):
    with connect(url) as conn:
        got = conn.execute(
            "SELECT name_en, dob, hkid FROM patients WHERE patient_id = %s",
            ("P00003",),
            prepare=prepare,
        ).fetchone()
        other = conn.execute(
            "SELECT name_en FROM patients WHERE patient_id = %s", ("P00001",), prepare=prepare
        ).fetchall()  # a KWC patient
    assert got == ("CHAN Tai Man 3", None, "***")  # dob is a date: masked as NULL
    assert other == []


def test_hidden_key_attributes_rows_to_patients(world, gw, url):
    with connect(url) as conn:
        names = conn.execute(
            "SELECT upper(name_en) FROM patients WHERE patient_id IN ('P00003', 'P00006')"
        ).fetchall()
        assert sorted(names) == [("CHAN TAI MAN 3",), ("CHAN TAI MAN 6",)]  # no extra column
    gw.flush()
    events = gateway_events(world.app)
    mine = [
        e for e in events if e.get("patient_id") in ("P00003", "P00006") and e["action"] == "read"
    ]
    assert {e["patient_id"] for e in mine} >= {"P00003", "P00006"}
    first = next(e for e in events if "gateway" in e and e["gateway"]["kind"] == "select")
    assert "sql_sealed" in first["gateway"] and "SELECT" not in json.dumps(first["gateway"])


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_every_returned_patient_is_sealed_once_in_result_order(world, gw, prepare):
    """The fast path (visible key column, rows forwarded as raw slices): the recorder reads
    the key of every delivered row and seals one event per patient, in result order."""
    url = gw.url(world.credential(world.grant(max_rows=10_000)))
    sql = "SELECT patient_id, name_en FROM patients WHERE sex = %s ORDER BY patient_id DESC"
    with connect(url) as conn:
        rows = conn.execute(sql, ("M",), prepare=prepare).fetchall()
    assert rows and {r[0] for r in rows} <= KEC_VISIBLE
    gw.flush()
    events = gateway_events(world.app)
    first = [
        e
        for e in events
        if "gateway" in e and e["gateway"]["rows"] == len(rows) and e["gateway"]["kind"] == "select"
    ][-1]
    mine = [e["patient_id"] for e in events if e["query_id"] == first["query_id"]]
    assert mine == [r[0] for r in rows]
    assert first["gateway"]["patients"] == len(rows)


def test_events_go_through_ingestion_with_sequence(world, gw, url):
    with connect(url) as conn:
        conn.execute("SELECT 1").fetchall()
    gw.flush()
    with world.app.engine.connect() as c:
        src = c.execute(select(AuditSource).where(AuditSource.source == "GATEWAY")).first()
    assert src is not None and src.low_seq == 0 and src.events == src.high_seq + 1


def test_copy_select_to_stdout_needs_export_and_is_masked(world, gw):
    plain = gw.url(world.credential(world.grant(max_rows=5)))
    with (
        connect(plain) as conn,
        pytest.raises(
            psycopg.errors.InsufficientPrivilege,
            match="does not allow export",
        ),
        conn.cursor().copy("COPY (SELECT hkid FROM patients) TO STDOUT") as cp,
    ):
        cp.read()
    export = gw.url(world.credential(world.grant(actions="read,export", max_rows=5)))
    sql = (
        "COPY (SELECT patient_id, hkid, name_en FROM patients ORDER BY 1) TO STDOUT "
        "WITH (FORMAT csv, HEADER)"
    )
    with connect(export) as conn, conn.cursor().copy(sql) as cp:
        data = b"".join(bytes(b) for b in cp)
    lines = data.decode().splitlines()
    assert lines[0] == "patient_id,hkid,name_en"
    assert len(lines) == 6 and all(",***," in ln for ln in lines[1:])
    gw.flush()
    copies = [e for e in gateway_events(world.app) if e["action"] == "export"]
    assert {e["patient_id"] for e in copies} >= {ln.split(",")[0] for ln in lines[1:]}


def test_cursor_fetches_count_against_the_limit(url):
    with connect(url) as conn, conn.transaction():
        conn.execute("DECLARE c CURSOR FOR SELECT patient_id, hkid FROM patients")
        first = conn.execute("FETCH 30 FROM c").fetchall()
        second = conn.execute("FETCH 30 FROM c").fetchall()
        third = conn.execute("FETCH 30 FROM c").fetchall()
    assert (len(first), len(second), len(third)) == (30, 20, 0)
    assert all(r[1] == "***" for r in first + second)


def test_over_limit_refused_when_the_grant_says_so(world, gw):
    gid = world.grant(max_rows=10)
    credentials.set_terms(world.app, gid, actor="m1", over_limit="refuse")
    with connect(gw.url(world.credential(gid))) as conn:
        assert len(conn.execute("SELECT patient_id FROM patients LIMIT 10").fetchall()) == 10
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="more than 10 rows"):
            conn.execute("SELECT patient_id FROM patients").fetchall()
        with conn.transaction():  # inside a transaction the refusal fails it, as PostgreSQL would
            with pytest.raises(psycopg.errors.ProgramLimitExceeded):
                conn.execute("SELECT patient_id FROM patients", prepare=True).fetchall()
            assert conn.info.transaction_status.name == "INERROR"
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
            raise psycopg.Rollback()
        assert conn.execute("SELECT count(*) FROM patients").fetchone()[0] == len(KEC_VISIBLE)


def test_sessions_are_recorded_and_replayable(world, gw):
    grant = world.grant()
    issued = world.credential(grant)
    with connect(gw.url(issued)) as conn:
        conn.execute("SELECT name_en FROM patients WHERE patient_id = 'P00003'").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM patients WHERE hkid = '{hkid(3)}'; DROP TABLE wards")
    gw.flush()
    (session,) = wait_for(
        lambda: [s for s in list_sessions(world.app, grant_id=grant) if s["ended_at"]]
    )
    assert session["statements"] == 3 and session["refused"] == 2
    info = replay(world.app, session["session_id"])
    kinds = [(s["kind"], s["decision"]) for s in info["steps"]]
    assert ("select", "allow") in kinds and ("DROP", "deny") in kinds
    drop = next(s for s in info["steps"] if s["kind"] == "DROP")
    assert "DDL" in drop["reasons"][0] and "DROP TABLE wards" in drop["sql"]
    assert all(s["leaf_index"] is not None for s in info["steps"])
    # the identifier typed into the statement is sealed encrypted, never in the clear
    raw = b"".join(d for _i, d in world.app.audit.entries(0, None))
    assert hkid(3).encode() not in raw


def test_tls_when_a_certificate_is_configured(world, pas_db, grant, tmp_path: Path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    running = start_gateway(world, pas_db, tls_cert=cert, tls_key=key)
    try:
        issued = world.credential(grant)
        url = issued.url(running.host, running.port, running.database, tls=True)
        with connect(url) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT count(*) FROM wards").fetchone() == (2,)
        plain = issued.url(running.host, running.port, running.database, tls=False)
        with pytest.raises(psycopg.OperationalError, match="requires TLS"):
            connect(plain)
    finally:
        running.thread.stop()
