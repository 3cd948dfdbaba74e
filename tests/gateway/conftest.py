"""A patient administration database on the real PostgreSQL server, a phiguard home with a
contractor and a grant, and the gateway running in front of the database.

Module-scoped: one database and one gateway per test module (starting them costs more than
most tests). Tests that change access rights make their own grants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from phiguard.access import common as ac
from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.gateway import credentials
from phiguard.gateway.server import Gateway, GatewayThread
from phiguard.gateway.settings import GatewaySettings
from phiguard.settings import Settings
from phiguard.storage.models import Account, Contract, Grant, Vendor

MAC = b"\x00" * 16
CLUSTERS = ("KEC", "KWC", "HKEC")
SCHEMA = """
CREATE TABLE patients (patient_id text PRIMARY KEY, hkid varchar(12), hospital_no text,
  name_en text, name_zh text, sex char(1), dob date, cluster text NOT NULL,
  phone text, address text, vip boolean NOT NULL DEFAULT false,
  created_at timestamptz DEFAULT now());
CREATE TABLE episodes (episode_id serial PRIMARY KEY, patient_id text REFERENCES patients,
  specialty text, ward text, admitted date, discharged date, diagnosis text);
CREATE TABLE operations (operation_id serial PRIMARY KEY, episode_id int REFERENCES episodes,
  patient_id text REFERENCES patients, procedure_name text, performed date, theatre text);
CREATE TABLE wards (ward text PRIMARY KEY, cluster text, beds int);
CREATE TABLE audit_copy (patient_id text, hkid text);
CREATE VIEW all_patients AS SELECT * FROM patients;
CREATE FUNCTION leak_all() RETURNS SETOF patients LANGUAGE sql AS 'SELECT * FROM patients';
"""


def hkid(i: int) -> str:
    return f"K{100000 + i}({i % 10})"


def fill(conn: psycopg.Connection[Any], n: int) -> None:
    with conn.cursor() as cur:
        rows = []
        for i in range(n):
            cl = CLUSTERS[i % 3]
            rows.append(
                (
                    f"P{i:05d}",
                    hkid(i),
                    f"HN{i:08d}1",
                    f"CHAN Tai Man {i}",
                    "陳大文",
                    "MF"[i % 2],
                    date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
                    cl,
                    f"9{i:07d}",
                    f"{i} Nathan Road",
                    i % 50 == 7,
                )
            )
        cur.executemany(
            "INSERT INTO patients (patient_id, hkid, hospital_no, name_en, name_zh,"
            " sex, dob, cluster, phone, address, vip) VALUES "
            "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            rows,
        )
        cur.execute(
            "INSERT INTO episodes (patient_id, specialty, ward, admitted, diagnosis) "
            "SELECT patient_id, 'SURG', 'W1', date '2026-03-01', 'appendicitis' "
            "FROM patients"
        )
        cur.execute(
            "INSERT INTO operations (episode_id, patient_id, procedure_name, performed,"
            " theatre) SELECT episode_id, patient_id, 'appendectomy', admitted, 'OT2' "
            "FROM episodes"
        )
        cur.execute("INSERT INTO wards VALUES ('W1', 'KEC', 30), ('W2', 'KWC', 20)")


@pytest.fixture(scope="module")
def pas_db(pg_admin: str) -> Iterator[str]:
    """A throwaway patient administration database; yields its libpq URL."""
    name = f"phg_pas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"{pg_admin.rsplit('/', 1)[0]}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
            fill(conn, 300)
        yield url
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class World:
    app: App
    clock: FixedClock

    def grant(
        self,
        account: str = "c1",
        *,
        cluster: str = "KEC",
        fields: str = "name,sex,hospital_no",
        actions: str = "read,search",
        max_rows: int = 50,
        hours: float = 8,
        purpose: str = "SYSADMIN",
        until: datetime | None = None,
    ) -> str:
        gid = ac.new_id("G")
        now = self.clock.now()
        with self.app.session() as s:
            s.add(
                Grant(
                    grant_id=gid,
                    account_id=account,
                    scope_cluster=cluster,
                    scope_fields=fields,
                    actions=actions,
                    max_rows=max_rows,
                    valid_from=now - timedelta(minutes=1),
                    valid_to=until or now + timedelta(hours=hours),
                    purpose=purpose,
                    approved_by="m1",
                    status="active",
                    origin="request",
                )
            )
            ac.bump(s)
        return gid

    def credential(self, grant_id: str) -> credentials.Issued:
        return credentials.issue(self.app, grant_id, actor="c1")


def make_world(home: Path, clock: FixedClock) -> World:
    from phiguard.access.assessments import record_training

    app = App.init(Settings(home=home), clock=clock)
    today = clock.now().astimezone(HKT).date()
    with app.session() as s:
        s.add(
            Vendor(
                vendor_id="V1",
                name="V1 Ltd",
                dpa_signed=True,
                last_assessment=today - timedelta(days=30),
                status="active",
                row_mac=MAC,
            )
        )
        s.flush()
        s.add(
            Contract(
                contract_id="C-V1",
                vendor_id="V1",
                start=today - timedelta(days=100),
                end=today + timedelta(days=100),
                dpa_signed=True,
            )
        )
        for acc, employer, role in (
            ("c1", "V1", "vendor_engineer"),
            ("c2", "V1", "vendor_engineer"),
            ("m1", "HA", "it_manager"),
        ):
            s.add(
                Account(
                    account_id=acc,
                    employer=employer,
                    role=role,
                    department="IT",
                    cluster="ALL",
                    status="active",
                    row_mac=MAC,
                )
            )
    for acc in ("c1", "c2"):
        record_training(
            app,
            acc,
            completed_on=today - timedelta(days=10),
            expires_on=today + timedelta(days=355),
            actor="hr",
        )
    return World(app, clock)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    clock = FixedClock(datetime(2026, 4, 2, 23, 0, tzinfo=HKT))
    w = make_world(tmp_path_factory.mktemp("gw") / "home", clock)
    yield w
    w.app.close()


@dataclass
class Running:
    thread: GatewayThread
    host: str
    port: int
    database: str

    @property
    def gateway(self) -> Gateway:
        return self.thread.gateway

    def url(self, issued: credentials.Issued, **extra: str) -> str:
        base = issued.url(self.host, self.port, self.database)
        return base + "".join(f"&{k}={v}" for k, v in extra.items())

    def flush(self) -> None:
        self.gateway.recorder.flush()


def start_gateway(world: World, upstream: str, **overrides: Any) -> Running:
    database = upstream.rsplit("/", 1)[1]
    settings = GatewaySettings(
        listen="127.0.0.1:0", upstream=upstream, check_seconds=0.1, record_seconds=0.05, **overrides
    )
    thread = GatewayThread(Gateway(world.app, settings))
    host, port = thread.start()
    return Running(thread, host, port, database)


@pytest.fixture(scope="module")
def gw(world: World, pas_db: str) -> Iterator[Running]:
    running = start_gateway(world, pas_db)
    yield running
    running.thread.stop()


@pytest.fixture(scope="module")
def grant(world: World) -> str:
    """c1 may read name, sex and hospital number of up to 50 KEC patients."""
    return world.grant()


@pytest.fixture(scope="module")
def url(world: World, gw: Running, grant: str) -> str:
    return gw.url(world.credential(grant))
